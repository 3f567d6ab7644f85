"""repl.render.Printer on a StringIO-backed vt100 output: line handling, styles, colour
rules, tables, results and what reaches the terminal from model or command text."""

from __future__ import annotations

import io

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output

from lcchat.commands.registry import Result
from lcchat.engine.events import Notice, Stats
from lcchat.repl import render
from lcchat.repl.render import Printer


class Out(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def printer(*, columns: int = 80, term: str = "xterm", **kwargs) -> tuple[Printer, Out]:
    out = Out()
    output = Vt100_Output(out, lambda: Size(rows=24, columns=columns), term=term)
    return Printer(output, **kwargs), out


def test_text_turns_newlines_into_cr_lf_and_tracks_the_line_start() -> None:
    p, out = printer(colour=False)
    assert p.at_line_start
    p.text("one\r\ntwo")
    assert out.getvalue() == "one\r\ntwo" and not p.at_line_start
    p.text("\n")
    assert p.at_line_start and out.getvalue().endswith("two\r\n")
    p.text("")
    assert p.at_line_start


def test_end_line_adds_a_newline_only_mid_line() -> None:
    p, out = printer(colour=False)
    p.end_line()
    assert out.getvalue() == ""
    p.text("abc")
    p.end_line()
    p.end_line()
    assert out.getvalue() == "abc\r\n"


def test_line_starts_on_a_fresh_line() -> None:
    p, out = printer(colour=False, attributes=False)
    p.text("partial")
    p.line("whole")
    p.line()
    assert out.getvalue() == "partial\r\nwhole\r\n\r\n"


def test_raw_writes_as_is_and_flushes_unless_asked_not_to() -> None:
    p, out = printer()
    out.flushes = 0
    p.raw("\x1b7", flush=False)
    assert out.flushes == 0
    p.raw("\x1b8")
    assert out.getvalue() == "\x1b7\x1b8" and out.flushes == 1


def test_style_uses_sgr_codes_and_colour_only_when_allowed() -> None:
    p, _ = printer(colour=True, attributes=True)
    assert p.style("x", "bold", "red") == "\x1b[1;31mx\x1b[0m"
    assert p.style("x", "dim") == "\x1b[2mx\x1b[0m"
    assert p.style("", "bold") == ""
    assert p.style("x") == "x" and p.style("x", "blink") == "x"
    mono, _ = printer(colour=False, attributes=True)
    assert mono.style("x", "bold", "red") == "\x1b[1mx\x1b[0m" and mono.style("x", "red") == "x"
    plain, _ = printer(colour=True, attributes=False)
    assert plain.style("x", "bold", "red") == "x" and plain.colour is False


def test_notices_warnings_and_errors_say_so_in_words() -> None:
    p, out = printer(colour=True, attributes=True)
    p.notice(Notice("just so you know"))
    p.notice(Notice("careful", "warning"))
    p.error("broken")
    p.info("plain")
    text = out.getvalue()
    assert "\x1b[2mjust so you know\x1b[0m\r\n" in text
    assert "\x1b[33mwarning: careful\x1b[0m\r\n" in text
    assert "\x1b[31merror: broken\x1b[0m\r\n" in text
    assert text.endswith("plain\r\n")


def test_stats_are_one_dim_line() -> None:
    p, out = printer(colour=False, attributes=False)
    stats = Stats(completion_tokens=3, tokens_per_s=1.5, context_used=5, context_size=10)
    p.stats(stats)
    assert out.getvalue() == stats.summary() + "\r\n"


@pytest.mark.parametrize("env, term, expected", [
    ({}, "xterm-256color", True),
    ({"NO_COLOR": "1"}, "xterm-256color", False),
    ({}, "dumb", False),
    ({"PROMPT_TOOLKIT_COLOR_DEPTH": "DEPTH_1_BIT"}, "xterm-256color", False),
    ({"PROMPT_TOOLKIT_COLOR_DEPTH": "DEPTH_8_BIT"}, "xterm", True),
    ({"NO_COLOR": "1", "PROMPT_TOOLKIT_COLOR_DEPTH": "DEPTH_8_BIT"}, "xterm", False),  # NO_COLOR wins
])
def test_colour_rules(monkeypatch, env, term, expected) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("PROMPT_TOOLKIT_COLOR_DEPTH", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    p, _ = printer(term=term)
    assert p.colour is expected
    assert p.attributes is (term != "dumb")


def test_output_term_falls_back_to_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "dumb")

    class Bare:
        pass

    assert render.output_term(Bare()) == "dumb" and render.is_dumb(Bare())


def test_columns_come_from_the_output_or_default_to_80() -> None:
    assert printer(columns=132)[0].columns() == 132
    broken, _ = printer()
    broken.output.get_size = lambda: (_ for _ in ()).throw(OSError("no size"))
    assert broken.columns() == 80
    zero, _ = printer(columns=0)
    assert zero.columns() == 80


def lines_of(out: Out) -> list[str]:
    return out.getvalue().replace("\r", "").splitlines()


def test_table_columns_align_on_the_widest_short_key() -> None:
    p, out = printer(colour=False, attributes=False)
    p.table([("a", "1"), ("abcd", "2")])
    assert lines_of(out) == ["  a     1", "  abcd  2"]


def test_table_a_key_of_exactly_20_still_aligns() -> None:
    p, out = printer(colour=False, attributes=False)
    p.table([("k" * 20, "v"), ("a", "1")])
    assert lines_of(out) == ["  " + "k" * 20 + "  v", "  a" + " " * 21 + "1"]


def test_table_values_fill_the_line_up_to_the_last_column_but_one() -> None:
    p, out = printer(columns=40, colour=False, attributes=False)
    p.table([("key", "b" * 32)])  # 2 + 3 + 2 + 32 = 39 columns
    assert lines_of(out) == ["  key  " + "b" * 32]


def test_table_wraps_down_to_a_room_of_20() -> None:
    p, out = printer(columns=26, colour=False, attributes=False)  # indent 5, room 20
    p.table([("k", "aaaa bbbb cccc dddd eeee ffff")])
    assert lines_of(out) == ["  k  aaaa bbbb cccc dddd", "     eeee ffff"]


def test_table_keys_wider_than_20_go_on_their_own_line() -> None:
    p, out = printer(colour=False, attributes=False)
    key = "k" * 21
    p.table([(key, "v"), ("short", "w")])
    assert lines_of(out) == [f"  {key}", " " * 9 + "v", "  short  w"]


def test_table_of_only_long_keys_indents_values_by_24() -> None:
    p, out = printer(colour=False, attributes=False)
    p.table([("k" * 25, "v")])
    assert lines_of(out)[1] == " " * 24 + "v"


def test_table_wraps_values_to_the_terminal_and_keeps_their_lines() -> None:
    p, out = printer(columns=40, colour=False, attributes=False)
    p.table([("key", "one two three four five six seven eight nine ten eleven"), ("multi", "first\nsecond"),
             ("empty", "")])
    lines = lines_of(out)
    assert all(len(line) <= 39 for line in lines), lines
    assert lines[0].startswith("  key    one two")
    assert lines[1].startswith(" " * 9) and lines[1].strip()
    assert "  multi  first" in lines and " " * 9 + "second" in lines
    assert lines[-1].rstrip() == "  empty"


def test_table_on_a_narrow_terminal_does_not_wrap() -> None:
    p, out = printer(columns=25, colour=False, attributes=False)
    value = "a long value that would wrap into many narrow lines"
    p.table([("key", value)])
    assert lines_of(out) == ["  key  " + value]


def test_table_wraps_without_breaking_on_hyphens() -> None:
    p, out = printer(columns=40, colour=False, attributes=False)
    p.table([("k", "aaaa bbbb cccc dddd eeee ffff-gggg-hhhh")])
    assert any(line.strip().endswith("ffff-gggg-hhhh") for line in lines_of(out))


def test_table_keys_are_bold_and_empty_tables_print_nothing() -> None:
    p, out = printer(colour=False, attributes=True)
    p.table([])
    assert out.getvalue() == ""
    p.table([("k", "v")])
    assert out.getvalue() == "  \x1b[1mk\x1b[0m  v\r\n"


def test_wide_characters_align_by_display_width() -> None:
    p, out = printer(colour=False, attributes=False)
    p.table([("日本", "x"), ("abc", "y")])
    assert lines_of(out) == ["  日本  x", "  abc   y"]


def test_results_are_cleaned_and_errors_are_red() -> None:
    p, out = printer(colour=True, attributes=True)
    p.result(Result("line one\nline\x1b two"))
    p.result(Result("bad \x07", error=True))
    p.result(Result("", rows=[("k\x1b", "v\x9b")]))
    text = out.getvalue()
    assert "line one\r\nline␛ two\r\n" in text  # control characters are shown, not sent
    assert "\x1b[31merror: bad ␇\x1b[0m" in text
    assert "k␛" in text and "v\ufffd" in text
    assert "\x1b\x1b" not in text and "\x07" not in text and "\x9b" not in text


def test_clear_screen_erases_only_on_a_capable_terminal() -> None:
    p, out = printer()
    p.text("x")
    p.clear_screen()
    assert out.getvalue() == "x\x1b[2J\x1b[0;0H" and p.at_line_start
    dumb, out = printer(term="dumb")
    dumb.text("x")
    dumb.clear_screen()
    assert out.getvalue() == "x" and dumb.at_line_start
