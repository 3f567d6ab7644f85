"""What the REPL writes: streamed and whole replies, figures, notices, colour, the live toolbar."""

from __future__ import annotations

import io
import re
import time

from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output

from lcchat.commands.registry import Result
from lcchat.engine.events import Notice
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.errors import LcchatError
from lcchat.repl.render import Printer
from tests.repl.conftest import ENTER, FakeMonitor, plain

COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-9]|4[0-9]|9[0-7]|38;5;\d+|38;2;[\d;]+)m")


def test_streamed_tokens_are_written_as_they_come_and_nothing_else(drive) -> None:
    """Each token costs its own bytes: no redraw, no escape sequence around it."""
    tokens = ["alpha ", "beta ", "gamma ", "delta"]
    run = drive("go" + ENTER, replies=[tokens], delay=0.04)  # slower than the flush interval
    for token in tokens:
        assert token in run.writes, token


def test_stream_off_prints_the_reply_whole_when_done(drive) -> None:
    tokens = ["alpha ", "beta ", "gamma ", "delta"]
    run = drive("/stream off" + ENTER + "go" + ENTER, replies=[tokens], delay=0.02)
    whole = [w for w in run.writes if "alpha" in w]
    assert len(whole) == 1 and "alpha beta gamma delta" in whole[0]
    assert not any(w == "beta " for w in run.writes)
    assert re.search(r"4 tokens", run.text)


def test_stream_off_from_the_profile(drive) -> None:
    from lcchat.config.schema import Profile

    profile = Profile(name="p")
    profile.ui.stream = False
    session = fake_session(FakeModel(replies=[["a ", "b"]]), profile)
    run = drive("go" + ENTER, session=session)
    assert run.repl.state.stream is False
    assert any("a b" in w for w in run.writes)


def test_notices_at_start_are_warnings_in_yellow(drive) -> None:
    session = fake_session(FakeModel())
    session.notices = [Notice("the model has no chat template; using ChatML", "warning")]
    run = drive("", session=session)
    assert "warning: the model has no chat template; using ChatML" in run.text
    assert "\x1b[33mwarning: the model has no chat template" in run.raw


def test_notices_during_a_reply(drive) -> None:
    run = drive("/set max_tokens 3" + ENTER + "go" + ENTER, replies=[["a", "b", "c", "d", "e"]])
    assert "abc" in run.text
    assert "the reply reached max_tokens (3); /set max_tokens N allows longer ones" in run.text
    lines = run.text.splitlines()
    i = next(i for i, line in enumerate(lines) if "reached max_tokens" in line)
    assert "3 tokens" in lines[i + 1]  # then the figures


def test_a_warning_notice_during_a_reply_gets_its_own_line(drive) -> None:
    from lcchat.engine.events import Done, Stats, Token

    session = fake_session(FakeModel())
    session.send = lambda text: iter([Token("hi there"), Notice("hid special-token text: <s>", "warning"),
                                      Stats(completion_tokens=2, context_used=9, context_size=64, final=True),
                                      Done("stop", "hi there")])
    run = drive("go" + ENTER, session=session)
    lines = run.text.splitlines()
    i = lines.index("hi there")
    assert lines[i + 1] == "warning: hid special-token text: <s>"
    assert "2 tokens · ctx 9/64 (14%)" in lines[i + 2]


def test_errors_are_red_and_say_error(drive) -> None:
    run = drive("/nosuch" + ENTER)
    assert "\x1b[31merror: Unknown command /nosuch." in run.raw


def test_no_color_means_no_colour_escapes(drive, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    session = fake_session(FakeModel(replies=[["fine"]]))
    session.notices = [Notice("a warning", "warning")]
    run = drive("/nosuch" + ENTER + "hi" + ENTER + "/help" + ENTER, session=session)
    assert not COLOUR.search(run.raw), COLOUR.search(run.raw)
    assert "error: Unknown command /nosuch." in run.text  # the words still say it
    assert "warning: a warning" in run.text


def test_a_monochrome_terminal_gets_no_colour(monkeypatch) -> None:
    out = io.StringIO()
    output = Vt100_Output(out, lambda: Size(24, 80), term="xterm", default_color_depth=None)
    monkeypatch.setenv("PROMPT_TOOLKIT_COLOR_DEPTH", "DEPTH_1_BIT")
    p = Printer(output)
    p.error("bad")
    p.warning("careful")
    assert not COLOUR.search(out.getvalue())
    assert "error: bad" in out.getvalue()


def test_a_dumb_terminal_gets_no_escape_sequences_from_us() -> None:
    out = io.StringIO()
    output = Vt100_Output(out, lambda: Size(24, 80), term="dumb")
    p = Printer(output)
    p.error("bad")
    p.dim("figures")
    p.result(Result("Table:", rows=[("a", "1")]))
    p.clear_screen()
    assert "\x1b" not in out.getvalue()


def test_model_text_cannot_send_escape_sequences(drive) -> None:
    run = drive("go" + ENTER, replies=[["safe ", "\x1b]52;c;ZXZpbA==\x07", "\x1b[2J", "end"]])
    assert "\x1b]52;c;ZXZpbA==" not in run.raw
    assert "\x1b[2J" not in run.raw
    assert "safe ␛]52;c;ZXZpbA==␇␛[2Jend" in run.text


def test_model_text_cannot_send_escape_sequences_with_stream_off(drive) -> None:
    """/stream off prints the reply whole at the end: that path cleans it too."""
    run = drive("/stream off" + ENTER + "go" + ENTER, replies=[["safe ", "\x1b]52;c;ZXZpbA==\x07", "\x1b[2J", "end"]])
    assert "\x1b]52;c;ZXZpbA==" not in run.raw
    assert "\x1b[2J" not in run.raw and "\x07" not in run.raw
    assert "safe ␛]52;c;ZXZpbA==␇␛[2Jend" in run.text


def test_table_aligns_and_wraps(drive) -> None:
    out = io.StringIO()
    output = Vt100_Output(out, lambda: Size(24, 60), term="xterm")
    p = Printer(output, colour=False, attributes=False)
    p.table([("short", "x"), ("longer key", "v " * 40), ("a key far too long to align with the rest", "z")])
    lines = out.getvalue().replace("\r", "").splitlines()
    assert lines[0] == "  short       x"
    assert lines[1].startswith("  longer key  v v")
    assert all(len(line) < 60 for line in lines)
    assert lines[1].index("v") == lines[2].index("v")  # wrapped under the value column
    assert lines[-2] == "  a key far too long to align with the rest"
    assert lines[-1].strip() == "z"


TOOLBAR_DRAW = re.compile(r"\x1b7\x1b\[24;1H(.*?)\x1b\[K\x1b8")


class WaitForToolbar(FakeModel):
    """Before some tokens, waits until the live toolbar has been drawn once more: the
    reply spans redraws however fast or slow the machine is."""

    out = None
    at = (8, 16, 24)

    def make_sampler(self, sampling):
        sampler = super().make_sampler(sampling)
        inner, count = sampler.sample, [0]

        def sample():
            count[0] += 1
            if count[0] in self.at:
                before = len(TOOLBAR_DRAW.findall(self.out.getvalue()))
                deadline = time.monotonic() + 30
                while len(TOOLBAR_DRAW.findall(self.out.getvalue())) <= before and time.monotonic() < deadline:
                    time.sleep(0.005)
            return inner()

        sampler.sample = sample
        return sampler


def test_live_toolbar_while_streaming(drive) -> None:
    monitor = FakeMonitor()
    tokens = [f"t{i} " for i in range(25)]
    model = WaitForToolbar(replies=[tokens])

    def keep_output(repl):
        model.out = repl.printer.output.stdout

    run = drive("go" + ENTER, model=model, live_toolbar=True, toolbar_every=0.05, monitor=monitor,
                before=keep_output)
    raw = run.raw
    setup = "\x1bD\x1b7\x1b[1;23r\x1b8\x1b[1A"  # the last row kept for the line
    assert setup in raw
    start = raw.index(setup)
    assert raw.index("\x1b7\x1b[r\x1b8\x1b[J", start) > raw.index("t24", start)  # given back after the reply
    drawn = TOOLBAR_DRAW.findall(raw)
    assert len(drawn) >= 4  # drawn at the start, then redrawn while the reply streamed
    line = plain(drawn[-1])
    assert "t/s" in line and "RSS 300M" in line and "RAM 3.0/16.0G" in line and "VRAM —" in line
    assert re.search(r"ctx \d+/2048 \d+%", line)
    assert len(line) == 79  # one column short of the edge: no wrap, no scroll
    assert monitor.calls < len(drawn)  # sampled once per `every` (1 s), not per redraw or token


def test_live_toolbar_costs_nothing_per_token(drive) -> None:
    tokens = [f"t{i} " for i in range(20)]
    run = drive("go" + ENTER, replies=[tokens], delay=0.03, live_toolbar=True, toolbar_every=60)
    for token in tokens:
        assert token in run.writes  # written alone: the line is not redrawn per token


def test_live_toolbar_on_a_tiny_terminal_is_skipped(drive) -> None:
    drive.rows = 3
    run = drive("go" + ENTER, replies=[["x"]], live_toolbar=True)
    assert "\x1b[1;2r" not in run.raw
    assert "x" in run.text


def test_bottom_toolbar_text_at_the_prompt(drive) -> None:
    run = drive("hi" + ENTER, replies=[["a", "b"]], monitor=FakeMonitor(vram=True))
    line = run.repl._bottom_toolbar()
    assert "RAM 3.0/16.0G" in line and "VRAM 2.0/24.0G" in line
    assert re.search(r"[\d.]+ t/s", line)
    assert len(line) == 80


def test_printer_notice_levels() -> None:
    out = io.StringIO()
    p = Printer(Vt100_Output(out, lambda: Size(24, 80), term="xterm"), colour=True)
    p.notice(Notice("dropped 2 oldest messages", "warning"))
    p.notice(Notice("reached max_tokens"))
    raw = out.getvalue()
    assert "\x1b[33mwarning: dropped 2 oldest messages" in raw
    assert "\x1b[2mreached max_tokens" in raw


def test_live_toolbar_follows_a_resize(drive) -> None:
    import os
    import signal

    from tests.repl.test_interrupts import InterruptingModel

    def shrink():
        drive.rows = 20
        os.kill(os.getpid(), signal.SIGWINCH)

    model = InterruptingModel(replies=[[f"t{i} " for i in range(40)]], delay=0.01, after=10, hook=shrink)
    run = drive("go" + ENTER, model=model, live_toolbar=True, toolbar_every=0.05)
    raw = run.raw
    first = raw.index("\x1b[1;23r")
    # margins reset, the old line erased wherever it went, the new last row kept
    resize = raw.index("\x1b7\x1b[r\x1b8\x1b[J\x1bD\x1b7\x1b[1;19r\x1b8\x1b[1A", first)
    assert "\x1b7\x1b[20;1H" in raw[resize:]
    assert "t39" in run.text


def test_start_up_notices_and_errors_from_a_model_file_are_shown_cleaned(drive) -> None:
    session = fake_session(FakeModel(replies=[["ok"]]))
    session.notices = [Notice("the chat template refused the conversation: \x1b]0;PWNED\x07\x1b[2J", "warning")]

    def fail(text):
        raise LcchatError("template said \x1b]52;c;ZXZpbA==\x07")

    run = drive("go" + ENTER, session=session, before=lambda repl: setattr(repl, "send", fail))
    assert "\x1b]0;PWNED" not in run.raw and "\x1b]52;" not in run.raw and "\x1b[2J" not in run.raw
    assert "refused the conversation: ␛]0;PWNED␇␛[2J" in run.text
    assert "error: template said ␛]52;c;ZXZpbA==␇" in run.text


def wrapped(chunks: list[str], columns: int) -> list[str]:
    out = io.StringIO()
    p = Printer(Vt100_Output(out, lambda: Size(24, columns), term="xterm"))
    for chunk in chunks:
        p.stream(chunk)
    p.flush()
    return out.getvalue().split("\r\n")


def test_reply_text_wraps_at_word_boundaries() -> None:
    text = "The wrapping of long replies must never cut bod ies in two: words that fit stay whole."
    lines = wrapped([text[i:i + 3] for i in range(0, len(text), 3)], 20)
    assert all(len(line) <= 20 for line in lines)
    assert [w for line in lines for w in line.split()] == text.split()  # every word whole, in order
    assert lines[:2] == ["The wrapping of long", "replies must never "]  # a full line, then the space breaks it


def test_a_word_longer_than_a_line_is_split_and_kept_whole() -> None:
    word = "x" * 50
    lines = wrapped(["see ", word[:20], word[20:], " end"], 20)
    assert "".join(lines).replace(" ", "") == "see" + word + "end"
    assert all(len(line) <= 20 for line in lines)


def test_wide_characters_and_tabs_count_their_cells() -> None:
    lines = wrapped(["你好你好你好 ", "你好你好你好 ", "\tend"], 14)
    assert lines == ["你好你好你好 ", "你好你好你好 ", "end"]  # 2 cells each; the tab at the edge breaks the line


def test_a_long_notice_wraps_between_words_at_80_columns(drive) -> None:
    session = fake_session(FakeModel())
    words = [f"word{i}" for i in range(40)]  # 250 columns: the terminal alone would cut words in two
    session.notices = [Notice(" ".join(words), "warning")]
    run = drive("", session=session)
    lines = [line for line in run.text.splitlines() if "word" in line]
    assert len(lines) > 2 and all(len(line) < 80 for line in lines)
    assert " ".join(" ".join(lines).split()) == "warning: " + " ".join(words)


def test_a_message_too_long_for_the_context_says_what_to_do_in_a_chat(drive) -> None:
    from lcchat.engine.fake import FakeModel, fake_session

    run = drive("z" * 500 + ENTER, session=fake_session(FakeModel(n_ctx=64)))
    said = " ".join(run.text.split())  # as one line, wherever the printer wrapped it
    assert re.search(r"error: the message is \d+ tokens with the system prompt, but the context holds 64; "
                     r"shorten it, or start lcchat again with a larger n_ctx \(-c\)", said), said
    assert run.messages() == []


def test_a_conversation_too_long_under_the_error_policy_suggests_clear(drive) -> None:
    from lcchat.engine.events import ContextFull, Done, Error
    from lcchat.engine.fake import FakeModel, fake_session

    session = fake_session(FakeModel())
    session.send = lambda text: iter([Error("the conversation is full", 2, ContextFull(900, 512, 64, alone=False)),
                                      Done("error", "")])
    run = drive("more" + ENTER, session=session)
    said = " ".join(run.text.split())
    assert "error: the conversation is full; /clear makes room, or start lcchat again with a larger n_ctx (-c)" in said
