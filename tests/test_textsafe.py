"""lcchat.textsafe: the one cleaning function every path to a terminal uses."""

from __future__ import annotations

import io

from lcchat.textsafe import clean, for_stream, is_terminal


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
