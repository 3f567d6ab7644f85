"""llama-cli's performance flags (-fa, -b, -ctk/-ctv, -tb) reach llama.cpp's context.

Each flag is followed from the command line through the profile to the context llama.cpp
creates: llama.cpp's own log line or its getters say what it was given, so a setting
dropped on the way fails here. Bad values are a usage error: one line, exit 2.
"""

from __future__ import annotations

import logging
import os
import re

import pytest

from lcchat import cli
from lcchat.engine.session import open_session
from tests.test_cli import one_line_error, run

# lcchat gives llama.cpp no more threads than the CPUs it may use (engine/model.py), so
# `-tb 2` is 2 only where there are two: under `taskset -c 0`, or in a mutation run, it is 1.
needs_two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                    reason="-tb 2 needs two usable CPUs (lcchat caps threads at them)")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.parts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.parts.append(record.getMessage())


def open_logged(argv: list[str]):
    """Open a session from lcchat's command line and return it with llama.cpp's log."""
    logger = logging.getLogger("lcchat.llama")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        session = open_session(cli.profile_from_args(cli.build_parser().parse_args(argv)))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return session, "\n".join(handler.parts)


def llama_says(log: str, key: str) -> str:
    """The value llama.cpp printed for `key` when it created the context."""
    found = re.search(rf"{key}\s*=\s*(\S+)", log)
    assert found, f"llama.cpp did not log {key}"
    return found.group(1)


@pytest.mark.parametrize(("flags", "llama_value", "shown"), [
    ([], "disabled", "auto"),  # "auto" on the CPU alone: off (measured slower at long contexts)
    (["-fa", "auto"], "disabled", "auto"),
    (["-fa", "auto", "-ctv", "f32", "-ngl", "1"], "auto", "auto"),  # with a GPU: llama.cpp's own auto
    (["--flash-attn", "on"], "enabled", "on"),
    (["-fa", "off"], "disabled", "off"),
])
def test_flash_attention_reaches_llama_cpp(tiny_model, flags, llama_value, shown) -> None:
    session, log = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", *flags, "hi"])
    try:
        assert llama_says(log, "flash_attn") == llama_value
        assert session.model.describe()["flash_attn"] == shown
    finally:
        session.model.close()


@needs_two_cpus
def test_batch_cache_types_and_batch_threads_reach_llama_cpp(tiny_model) -> None:
    # f32/bf16: the tiny model's 16-wide heads take no quantized (32-block) cache type
    session, log = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", "-tb", "2", "-b", "64",
                                "-ctk", "f32", "--cache-type-v", "bf16", "hi"])
    try:
        import llama_cpp

        assert llama_says(log, "n_batch") == "64" and llama_says(log, "n_ubatch") == "64"
        assert re.search(r"K \(f32\).*V \(bf16\)", log), "llama.cpp's KV cache line names other types"
        assert (llama_cpp.llama_n_threads(session.model._ctx), llama_cpp.llama_n_threads_batch(session.model._ctx)) == (1, 2)
        shown = session.model.describe()
        assert (shown["threads"], shown["n_batch"], shown["cache_type"]) == ("1/2", 64, "f32/bf16")
    finally:
        session.model.close()


def test_batch_threads_default_to_every_physical_core(tiny_model) -> None:
    from lcchat.engine.model import physical_cores, usable_cpus

    session, _ = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", "hi"])
    try:
        import llama_cpp

        assert llama_cpp.llama_n_threads(session.model._ctx) == 1
        assert llama_cpp.llama_n_threads_batch(session.model._ctx) == max(1, min(physical_cores(), usable_cpus()))
    finally:
        session.model.close()


def test_a_quantized_v_cache_with_flash_attention_off_is_one_line_and_exit_2(tiny_model) -> None:
    line = one_line_error(run(["-m", str(tiny_model), "-ctv", "q8_0", "-fa", "off", "hi"]), 2)
    assert "cache_type_v = 'q8_0' needs flash attention" in line


@pytest.mark.parametrize(("flags", "says"), [
    (["-ctk", "q4_0"], "cache_type_k = 'q4_0' (-ctk) does not fit tiny.gguf: its attention heads hold 16 values "
                       "and q4_0 packs 32 per block"),
    (["-ctk", "q8_0", "-fa", "on"], "cache_type_k = 'q8_0' (-ctk) does not fit tiny.gguf"),
    (["--cache-type-v", "q8_0"], "cache_type_v = 'q8_0' (-ctv) does not fit tiny.gguf"),
])
def test_a_cache_type_the_heads_cannot_take_is_one_line_and_exit_2(tiny_model, flags, says) -> None:
    """Checked from the GGUF's head size before llama.cpp creates the context: llama.cpp
    would refuse it as a failed context ("too little memory?"), or with flash attention off
    run with attention reading across quantized blocks."""
    line = one_line_error(run(["-m", str(tiny_model), "-c", "256", *flags, "hi"]), 2)
    assert says in line and "use f16, bf16 or f32" in line


@pytest.mark.parametrize(("flags", "says"), [
    (["-fa", "yes"], "--flash-attn: invalid choice: 'yes'"),
    (["-b", "0"], "model.n_batch: must be at least 1, not 0"),
    (["--batch-size", "many"], "--batch-size: invalid int value"),
    (["-ctk", "q9_0"], "model.cache_type_k: 'q9_0' is not one of"),
    (["--cache-type-v", "f8"], "model.cache_type_v: 'f8' is not one of"),
    (["-tb", "-2"], "model.n_threads_batch: must be at least 0, not -2"),
])
def test_bad_values_are_one_line_and_exit_2(tiny_model, flags, says) -> None:
    line = one_line_error(run(["-m", str(tiny_model), *flags, "hi"]), 2)
    assert says in line


@pytest.mark.parametrize("mode", ["lookup", "auto"])
def test_speculative_decoding_turns_auto_flash_attention_on(tiny_model, mode) -> None:
    """With flash attention off, llama.cpp's CPU attention rounds a batch's logits unlike one
    token's, so a verified draft could change a greedy reply; "auto" is on when speculating."""
    session, log = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", "--spec", mode, "hi"])
    try:
        assert llama_says(log, "flash_attn") == "enabled"
    finally:
        session.close()


def test_an_explicit_flash_attention_off_is_kept_when_speculating(tiny_model) -> None:
    session, log = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", "--spec", "lookup", "-fa", "off", "hi"])
    try:
        assert llama_says(log, "flash_attn") == "disabled"
        from lcchat.commands.spec import flash_attn_on

        assert not flash_attn_on(session)
    finally:
        session.close()


def test_a_kv_state_fingerprint_records_flash_attention_as_applied(tiny_model) -> None:
    """A V cache is laid out differently with flash attention on: a state saved with "auto"
    on the CPU (off) must not be restored into a context with it on."""
    import dataclasses

    from lcchat.engine.model import state_fingerprint

    session, _ = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", "hi"])
    try:
        model = session.model

        def fingerprint(flash_attn):
            settings = dataclasses.replace(model.settings, flash_attn=flash_attn)
            return state_fingerprint(tiny_model, n_ctx=256, settings=settings, load=model.load, backend_version="x")

        assert fingerprint("auto") == fingerprint(False) != fingerprint(True)
    finally:
        session.close()


@needs_two_cpus
def test_a_prompt_runs_on_the_batch_threads_and_a_draft_on_the_generation_threads(tiny_model) -> None:
    """llama.cpp runs any batch of 2+ tokens on n_threads_batch: a prompt gains from every
    core, but a speculative draft of a few tokens stalls when one of them shares a core."""
    import llama_cpp

    session, _ = open_logged(["-m", str(tiny_model), "-c", "256", "-t", "1", "-tb", "2", "hi"])
    try:
        model = session.model
        assert model.decode(list(range(40)), 0) == 0
        assert llama_cpp.llama_n_threads_batch(model._ctx) == 2
        assert model.decode_batch([1, 2, 3], 40) == 0
        assert (llama_cpp.llama_n_threads(model._ctx), llama_cpp.llama_n_threads_batch(model._ctx)) == (1, 1)
        assert model.decode([4, 5], 43) == 0  # a few tokens lcchat writes itself: a small batch too
        assert llama_cpp.llama_n_threads_batch(model._ctx) == 1
        assert model.decode(list(range(50, 90)), 45) == 0
        assert llama_cpp.llama_n_threads_batch(model._ctx) == 2
    finally:
        session.model.close()
