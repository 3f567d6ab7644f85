"""The engine on real llama.cpp: tiny random-weight models, and SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.events import Done, Notice, Stats, Token
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.session import open_session
from tests import models


def profile_for(path: Path, **overrides):
    values = {"model.path": str(path), "sampling.seed": 7, **overrides}
    return load_profile("default", values)


def collect(events):
    events = list(events)
    return "".join(e.text for e in events if isinstance(e, Token)), events


@pytest.fixture(scope="module")
def tiny_session(tiny_model):
    session = open_session(profile_for(tiny_model, **{"model.n_ctx": 512, "sampling.max_tokens": 40}))
    yield session
    session.model.close()


def test_tiny_model_chats_without_leaking_template_tokens(tiny_session) -> None:
    text, events = collect(tiny_session.send("hello world"))
    assert isinstance(events[-1], Done)
    assert "<|im_start|>" not in text and "<|im_end|>" not in text
    stats = [e for e in events if isinstance(e, Stats) and e.final][0]
    assert stats.prompt_tokens > 0 and stats.context_size == 512
    assert stats.context_used == tiny_session.context_used
    text.encode("utf-8")  # whole characters only: no lone surrogates


def test_turn_three_evaluates_only_what_was_added(tiny_session) -> None:
    """With replies as a model trained on the format writes them (their tokens as inside the
    whole prompt: scripted, since a random model's replies re-tokenize differently), each
    turn evaluates only the text after what the cache holds."""
    from lcchat.engine.session import ChatSession
    from tests.profiles.test_prompt_fidelity import Scripted, reply_tokens

    tiny_session.clear()  # an empty KV cache for the session below
    model = Scripted(tiny_session.model)
    session = ChatSession(model=model, profile=tiny_session.profile, formatter=tiny_session.formatter)
    messages = []
    for question, reply in (("the sky is blue", "yes it is"), ("the cat and the dog", "a cat"),
                            ("what is the capital of France", "Paris")):
        messages.append({"role": "user", "content": question})
        model.replies.append(reply_tokens(session, model, messages, reply))
        used_before = session.context_used
        _, events = collect(session.send(question))
        messages.append({"role": "assistant", "content": reply})
        stats = [e for e in events if isinstance(e, Stats) and e.final][0]
        assert stats.prompt_eval_tokens == stats.prompt_tokens - used_before, (stats, used_before)


@pytest.fixture(scope="module")
def chatty_model(tmp_path_factory) -> Path:
    """Wide enough that, greedy, it never says EOS: its reply runs until something stops it."""
    return models.write_tiny_model(tmp_path_factory.mktemp("chatty") / "chatty.gguf", n_embd=256, n_head=4,
                                   n_head_kv=4, n_ff=512, n_layer=4, n_ctx_train=8192)


def test_reply_to_the_end_of_a_full_kv_cache_stops_cleanly(chatty_model) -> None:
    session = open_session(profile_for(chatty_model, **{"model.n_ctx": 256, "context.reserve": 8,
                                                        "sampling.max_tokens": -1, "sampling.temperature": 0.0}))
    try:
        text, events = collect(session.send("hi"))
        done = events[-1]
        assert done == Done("length", text)
        assert any(isinstance(e, Notice) and "end of the context window (256 tokens)" in e.text for e in events)
        assert session.context_used == session.context_size - 1  # filled, never past the end
        assert session.conversation.messages[-1].content == text and text
        text2, events2 = collect(session.send("again"))  # the window moves on; still usable
        assert isinstance(events2[-1], Done) and not [e for e in events2 if type(e).__name__ == "Error"]
        assert session.context_used <= session.context_size
    finally:
        session.model.close()


class TestSamplingReachesLlamaCpp:
    """The sampling settings reach llama.cpp's sampler (the fake model ignores them)."""

    @pytest.fixture(scope="class")
    def session(self, tiny_model):
        session = open_session(profile_for(tiny_model, **{"model.n_ctx": 256, "sampling.max_tokens": 24,
                                                          "sampling.top_k": 0, "sampling.top_p": 1.0,
                                                          "sampling.min_p": 0.0}))
        yield session
        session.model.close()

    @staticmethod
    def reply(session, **sampling) -> str:
        session.clear()
        defaults = dict(temperature=1.5, top_k=0, seed=7)
        for key, value in {**defaults, **sampling}.items():
            setattr(session.sampling, key, value)
        text, events = collect(session.send("the sky is"))
        assert events[-1].finish_reason in ("stop", "length")
        return text

    def test_greedy_is_deterministic(self, session) -> None:
        first = self.reply(session, temperature=0.0, seed=1)
        assert first
        assert self.reply(session, temperature=0.0, seed=2) == first  # no randomness left to seed

    def test_a_seed_reproduces_a_sampled_reply_and_another_seed_changes_it(self, session) -> None:
        replies = {seed: self.reply(session, seed=seed) for seed in (1, 2, 3)}
        assert self.reply(session, seed=2) == replies[2]
        assert len(set(replies.values())) > 1  # temperature 1.5 really samples

    def test_top_k_1_is_greedy(self, session) -> None:
        greedy = self.reply(session, temperature=0.0)
        assert all(self.reply(session, top_k=1, seed=seed) == greedy for seed in (1, 2, 3))
        assert any(self.reply(session, top_k=0, seed=seed) != greedy for seed in (1, 2, 3))


def test_utf8_split_across_tokens_comes_out_whole() -> None:
    class ByteModel(FakeModel):
        PIECES = {1001: "é".encode()[:1], 1002: "é".encode()[1:], 1003: "😀".encode()[:3], 1004: "😀".encode()[3:]}

        def piece(self, token):
            return self.PIECES.get(token) or super().piece(token)

        def make_sampler(self, sampling):
            from lcchat.engine.fake import EOG, _FakeSampler

            return _FakeSampler(self, [1001, 1002, 1003, 1004, EOG])

    text, events = collect(fake_session(ByteModel()).send("x"))
    assert text == "é😀"
    assert all("\ufffd" not in e.text for e in events if isinstance(e, Token))


def test_cancel_during_prompt_evaluation_aborts_the_batch_and_the_model_survives(tmp_path) -> None:
    """A cancel that comes while llama.cpp computes a batch stops that batch (its abort
    callback), not only the next one. The cancel is made from inside the first decode
    call, just before llama.cpp starts computing: no timing involved."""
    path = models.write_tiny_model(tmp_path / "wide.gguf", n_embd=256, n_head=4, n_head_kv=4, n_ff=512,
                                   n_layer=4, n_ctx_train=8192)
    session = open_session(profile_for(path, **{"model.n_ctx": 8192, "model.n_batch": 2048,
                                                "model.n_threads": 1, "sampling.max_tokens": 4}))
    model = session.model
    real_decode = model.decode
    statuses: list[int] = []

    def decode_cancelled_midway(tokens, n_past, **kwargs):
        session.cancel()  # as a Ctrl+C arriving while the batch is being computed
        statuses.append(real_decode(tokens, n_past, **kwargs))
        return statuses[-1]

    model.decode = decode_cancelled_midway
    long_message = " ".join(["the cat and the dog"] * 1200)
    _, events = collect(session.send(long_message))
    model.decode = real_decode
    assert events[-1] == Done("interrupted", "")
    assert statuses == [2]  # llama.cpp gave up on the batch it was computing: aborted
    assert session.loop.cached == []  # and nothing half-evaluated is taken for cached
    text, events = collect(session.send("hello"))
    assert isinstance(events[-1], Done) and events[-1].finish_reason in ("stop", "length")
    model.close()


def test_native_log_stays_off_stderr(tiny_model, capfd) -> None:
    session = open_session(profile_for(tiny_model, **{"model.n_ctx": 128, "sampling.max_tokens": 4}))
    collect(session.send("hi"))
    session.model.close()
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""


@pytest.mark.smollm2
def test_smollm2_knows_paris(smollm2) -> None:
    session = open_session(load_profile("smollm2", {"sampling.temperature": 0.0, "sampling.seed": 1,
                                                    "sampling.max_tokens": 64}))
    text, events = collect(session.send("What is the capital of France?"))
    assert "Paris" in text
    assert "<|im_start|>" not in text and "<|im_end|>" not in text
    assert events[-1].finish_reason in ("stop", "length")
    assert session.model.describe()["quant"] == "Q4_1"


@pytest.mark.smollm2
def test_smollm2_multi_turn_evaluates_only_the_new_tokens(smollm2) -> None:
    session = open_session(load_profile("smollm2", {"sampling.temperature": 0.0, "sampling.max_tokens": 24}))
    used = 0
    for question in ("What is the capital of France?", "And of Italy?", "Which is bigger?"):
        _, events = collect(session.send(question))
        stats = [e for e in events if isinstance(e, Stats) and e.final][0]
        assert stats.prompt_eval_tokens == stats.prompt_tokens - used
        used = stats.context_used


@pytest.mark.parametrize("load, expected", [([3.0, 5.0], 2), ([98.0, 4.0], 1), ([99.0, 97.0], 1), ([60.0, 40.0], 1)])
def test_auto_threads_leaves_out_cores_other_processes_keep_busy(monkeypatch, load, expected) -> None:
    import psutil

    from lcchat.engine import model

    monkeypatch.setattr(model, "physical_cores", lambda: 2)
    monkeypatch.setattr(model, "usable_cpus", lambda: 2)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None, percpu=False: load)
    assert model.auto_threads() == expected


@pytest.mark.parametrize("figures", [True, False])
def test_auto_threads_are_no_more_than_the_cpus_this_process_may_use(monkeypatch, figures) -> None:
    """Pinned to one CPU of an idle 2-core machine (taskset, a container's CPU set), two
    threads would share that CPU and wait for each other: one thread, figures or not."""
    import psutil

    from lcchat.engine import model

    def no_figures(interval=None, percpu=False):
        raise RuntimeError("no CPU figures here")

    monkeypatch.setattr(model, "physical_cores", lambda: 2)
    monkeypatch.setattr(model, "usable_cpus", lambda: 1)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.setattr(psutil, "cpu_percent",
                        (lambda interval=None, percpu=False: [0.0, 0.0]) if figures else no_figures)
    assert model.auto_threads() == 1


def test_spm_vocab_without_byte_tokens_survives_characters_it_lacks(tmp_path) -> None:
    """llama.cpp aborts the process when such a vocab meets a character it cannot spell
    (it falls back to byte tokens that are not there). Run in a child: an abort must fail
    the test, not end the test run."""
    import subprocess

    from tests.commandline import lcchat_cmd
    from tests.models import write_vocab_model

    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["<unk>", "<s>", "</s>", "\u2581", *letters, *("\u2581" + c for c in letters), "<|im_start|>", "<|im_end|>"]
    path = write_vocab_model(tmp_path / "nobytes.gguf", tokens, eos_token="<|im_end|>")
    result = subprocess.run([*lcchat_cmd(), "-m", str(path), "-c", "256", "-n", "4", "hi 😀 é\nnew line"],
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-500:]



def test_speller_replaces_only_what_the_vocab_cannot_spell_and_keeps_special_tokens() -> None:
    from lcchat.engine.model import _Speller

    tokens = ["<unk>", "<s>", "\u2581", "a", "b", "?", "<|im_start|>", "\u2581ab"]
    types = [2, 3, 1, 1, 1, 1, 3, 1]
    speller = _Speller(tokens, types)
    assert speller("<|im_start|>ab\n😀b") == "<|im_start|>ab ?b"
    assert speller("ab ba") == "ab ba"  # nothing to do
