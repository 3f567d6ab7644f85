"""lcchat.textsafe: the one cleaning function every path to a terminal uses."""

from __future__ import annotations

import io

from lcchat.textsafe import clean, for_stream, is_terminal, one_line


def test_clean_shows_controls_and_keeps_tabs_and_newlines() -> None:
    assert clean("a\tb\nc\r\n\x07\x1b\x9b\x7f\x00") == "a\tb\nc\n␇␛\ufffd␡␀"


def test_clean_leaves_printable_text_alone() -> None:
    text = "héllo 你好 👨‍👩‍👧 مرحبا e\u0301 ␛"
    assert clean(text) == text


def test_no_control_character_survives() -> None:
    every = "".join(map(chr, range(0x00, 0x100)))
    assert not [c for c in clean(every) if (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) < 0xA0]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_for_stream_cleans_only_for_a_terminal() -> None:
    assert for_stream("\x1b[2J", Tty()) == "␛[2J"
    assert for_stream("\x1b[2J", io.StringIO()) == "\x1b[2J"  # pipes and files keep the bytes
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(closed) and not is_terminal(None)


def test_pipe_mode_cleans_for_a_terminal_and_keeps_bytes_for_a_pipe() -> None:
    import json

    from lcchat import pipe
    from lcchat.engine.fake import FakeModel, fake_session

    reply = ["\x1b]0;PWNED\x07", "\x9b2J", " ok"]
    tty, piped, as_json = Tty(), io.StringIO(), io.StringIO()
    for out, kw in ((tty, {}), (piped, {}), (as_json, {"as_json": True})):
        assert pipe.run(fake_session(FakeModel(replies=[reply])), "hi", out=out, err=io.StringIO(), **kw) == 0
    assert tty.getvalue() == "␛]0;PWNED␇\ufffd2J ok\n"
    assert piped.getvalue() == "".join(reply) + "\n"
    document = as_json.getvalue()
    assert "\x9b" not in document and "\\u009b" in document  # C1 escaped: JSON that is safe anywhere
    assert json.loads(document)["text"] == "".join(reply)


class Script:
    """A session stand-in whose reply is a fixed list of events."""

    notices: list[str] = []

    def __init__(self, events) -> None:
        self.events = events

    def send(self, text):
        yield from self.events

    def cancel(self) -> None:
        pass


def test_pipe_mode_shows_a_long_prompts_progress_on_a_terminal_and_erases_it() -> None:
    from lcchat import pipe
    from lcchat.engine.events import Done, Progress, Token

    events = [Progress("prompt", 512, 3120), Progress("prompt", 1248, 3120), Progress("prompt", 3120, 3120),
              Token("answer"), Done("stop", "answer")]
    ticks = iter(range(100))
    clock = lambda: next(ticks) * 0.6  # noqa: E731 - each look at the clock is 0.6 s later
    out, err = io.StringIO(), Tty()
    assert pipe.run(Script(events), "hi", out=out, err=err, clock=clock) == 0
    assert out.getvalue() == "answer\n"
    shown = err.getvalue()
    assert "reading 3,120 tokens… 40%" in shown and "reading 3,120 tokens… 16%" not in shown  # after a second
    assert shown.endswith("\r\x1b[K")  # erased before the answer
    quiet = io.StringIO()  # not a terminal: nothing
    assert pipe.run(Script(events), "hi", out=io.StringIO(), err=quiet, clock=iter(range(100)).__next__) == 0
    assert quiet.getvalue() == ""


def test_one_line_escapes_newlines_and_controls_and_bounds_the_length() -> None:
    assert one_line("a\nb\x1b[2J\u202e") == "a\\nb\\x1b[2J\\u202e"
    assert one_line("x" * 50, 10) == "x" * 9 + "…"
