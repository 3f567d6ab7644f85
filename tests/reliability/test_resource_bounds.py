"""n_ctx and threads at the command line: bounded before llama.cpp sees them.

Each lcchat run here is under RLIMIT_AS, so a regression (llama.cpp allocating a KV cache
of hundreds of GB) fails the test rather than taking the machine's memory.
"""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info, quant
from lcchat.engine.model import bounded_threads, usable_cpus
from tests import models
from tests.reliability.helpers import answered, clean_failure, run

ADDRESS_SPACE = 8 * 2**30  # enough for Python, llama.cpp and a small model; far below any refused cache


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@pytest.mark.parametrize("n_ctx", ["4294967808", str(10**12), "2000000000"])
def test_an_impossible_n_ctx_is_one_line_and_exit_2(tiny_model: Path, n_ctx: str) -> None:
    """4294967808 used to wrap to 512 (llama.cpp's n_ctx is 32 bits), 10**12 exited 1 and
    2,000,000,000 ran for 49 s before the OOM killer ended it."""
    line = clean_failure(run(["-m", tiny_model, "-c", n_ctx, "-n", "2", "hi"], preexec_fn=limited), 2)
    assert "n_ctx" in line and "at most 16777216" in line and n_ctx in line, line


def test_a_kv_cache_larger_than_memory_is_refused_before_loading(smollm2: Path) -> None:
    """SmolLM2's KV cache at 16M tokens is 360 GiB: refused, with the largest -c that fits."""
    line = clean_failure(run(["-m", smollm2, "-c", "16777216", "-n", "2", "hi"], preexec_fn=limited), 2)
    assert "n_ctx 16,777,216 needs a" in line and "KV cache" in line and "memory available" in line, line
    assert "use -c " in line, line
    fits = int(line.split("use -c ")[1].split()[0])
    # the advice holds: that context is accepted (the run itself is not needed here)
    info = gguf_info.load_checked(smollm2)
    assert quant.context_problem(info, ModelSettings(n_ctx=fits)) is None


def test_a_profile_with_n_ctx_0_and_a_huge_training_context_is_refused(tmp_path: Path) -> None:
    """n_ctx = 0 means the training context: a file claiming 16M tokens is refused the same way."""
    model = models.write_tiny_model(tmp_path / "long.gguf", n_ctx_train=2**24,
                                    metadata={"llama.attention.key_length": 4096,
                                              "llama.attention.value_length": 4096})
    line = clean_failure(run(["-m", model, "-c", "0", "-n", "2", "hi"], preexec_fn=limited), 2)
    assert "n_ctx 16,777,216 needs a" in line, line


def test_context_problem_uses_the_quant_memory_estimate(tiny_model: Path) -> None:
    info = gguf_info.load_checked(tiny_model)
    settings = ModelSettings(n_ctx=100_000)
    estimate = quant.estimate_memory(info, settings, available_ram=None)
    free = estimate.kv_ram // 2
    problem = quant.context_problem(info, settings, available_ram=free)
    assert problem is not None and problem.startswith("n_ctx 100,000 needs a ")
    assert quant.context_problem(info, settings, available_ram=estimate.kv_ram + estimate.runtime) is None
    assert quant.context_problem(info, settings, available_ram=None) is None  # unknown: no refusal


def test_too_many_threads_are_clamped_with_a_notice(tiny_model: Path) -> None:
    """n_threads = 100000 used to kill the process inside the OpenMP runtime (SIGSEGV)."""
    result = run(["-v", "-m", tiny_model, "-t", "100000", "-n", "4", "--temp", "0", "hi"], preexec_fn=limited)
    answered(result)
    cap = min(usable_cpus(), 512)
    assert f"n_threads = 100000 is more than the {cap} CPUs lcchat can use here; using {cap}" in result.stderr.decode()


def test_bounded_threads() -> None:
    notices: list[str] = []
    assert bounded_threads(0, "n_threads", notices) == 0  # 0: automatic, chosen later
    assert bounded_threads(1, "n_threads", notices) == 1
    assert bounded_threads(10**6, "n_threads_batch", notices) == min(usable_cpus(), 512)
    assert len(notices) == 1 and notices[0].startswith("n_threads_batch = 1000000 is more than")
