"""tests.models.write_scripted_model: a real GGUF, run by llama.cpp, whose reply is known."""

from __future__ import annotations

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.events import Done, Token
from lcchat.engine.gguf_info import read_gguf
from lcchat.engine.session import open_session
from tests import models

HOSTILE = "\x1b]0;PWNED\x07\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2J"


def reply_of(path, message: str = "hello", **overrides) -> tuple[str, str]:
    values = {"model.path": str(path), "model.n_ctx": 256, "sampling.max_tokens": 64, **overrides}
    session = open_session(load_profile("default", values))
    try:
        events = list(session.send(message))
        done = events[-1]
        assert isinstance(done, Done)
        return "".join(e.text for e in events if isinstance(e, Token)), done.finish_reason
    finally:
        session.model.close()


def test_the_reply_is_the_script_at_any_temperature(tmp_path) -> None:
    text = "Hello **world**: the answer is\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    path = models.write_scripted_model(tmp_path / "s.gguf", text)
    assert reply_of(path) == (text, "stop")
    assert reply_of(path, "something else entirely", **{"sampling.temperature": 1.0, "sampling.seed": 3}) == (text, "stop")


def test_a_reply_may_hold_escape_sequences_as_its_tokens(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "e.gguf", ["\x1b]0;PWNED\x07", "\x1b]52;c;ZWNobyBwd25lZA==\x07", "\x1b[2J"])
    assert reply_of(path) == (HOSTILE, "stop")


def test_loop_never_ends_by_itself(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "l.gguf", ["tick", " tock"], loop=True)
    text, reason = reply_of(path, **{"sampling.max_tokens": 7})
    assert (text, reason) == ("tick tock" * 3 + "tick", "length")


def test_a_scripted_reply_and_a_chosen_template_compose(tmp_path) -> None:
    template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    path = models.write_scripted_model(tmp_path / "t.gguf", "templated reply", chat_template=template)
    assert read_gguf(path).chat_template == template
    assert reply_of(path) == ("templated reply", "stop")


def test_script_pieces_are_new_tokens_that_join_to_the_text() -> None:
    taken = {"aba", "bab"}
    pieces = models.script_pieces("abababab", taken=taken)
    assert "".join(pieces) == "abababab"
    assert len(set(pieces)) == len(pieces) and not set(pieces) & taken


def test_pieces_that_repeat_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unique"):
        models.write_scripted_model(tmp_path / "d.gguf", ["same", "same"])


def test_retry_reads_the_prompt_from_the_cache_and_says_so(tmp_path) -> None:
    from lcchat.engine.events import Stats

    path = models.write_scripted_model(tmp_path / "r.gguf", "the same reply")
    session = open_session(load_profile("default", {"model.path": str(path), "model.n_ctx": 256}))
    try:
        list(session.send("hello"))
        final = [e for e in session.retry() if isinstance(e, Stats) and e.final][0]
        assert final.prompt_cached and final.summary().startswith("prompt cached")
    finally:
        session.model.close()
