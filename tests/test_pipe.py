"""Pipe mode in-process (pipe.compose, pipe.run, pipe.read_stdin) on a scripted model:
what goes to stdout and stderr, --json, exit status, Ctrl+C and a closed pipe.
tests/test_cli.py runs the installed command end to end."""

from __future__ import annotations

import io
import json
import time

import pytest

from lcchat import pipe
from lcchat.engine.events import Done, Error, Notice, Progress, Stats, Thinking, Token
from lcchat.engine.fake import FakeModel, fake_session


def run(session, text: str = "q", **kwargs) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = pipe.run(session, text, out=out, err=err, **kwargs)
    return status, out.getvalue(), err.getvalue()


def scripted(*events):
    """A session stand-in whose send() yields `events`."""
    session = fake_session(FakeModel())
    session.sent = []
    session.send = lambda text: (session.sent.append(text), iter(events))[1]
    return session


@pytest.mark.parametrize("stdin, question, expected", [
    ("notes\nmore notes\n", "Summarise", "notes\nmore notes\n\nSummarise"),
    ("\n\nnotes\n\n", "  Summarise  ", "notes\n\nSummarise"),
    ("", "just a question", "just a question"),
    (None, "just a question", "just a question"),
    ("  \n \n", "q", "q"),  # blank stdin is no context
    ("only stdin\n", None, "only stdin"),
    ("only stdin\n", "   ", "only stdin"),
    ("  indented\n", "q", "  indented\n\nq"),  # only blank lines are trimmed from the context
    ("XX x X\n", "q", "XX x X\n\nq"),
    (None, None, ""),
])
def test_compose_puts_stdin_first_as_context(stdin, question, expected) -> None:
    assert pipe.compose(stdin, question) == expected


def test_read_stdin_replaces_invalid_utf8(monkeypatch) -> None:
    class Stdin:
        buffer = io.BytesIO(b"caf\xe9 ok \xf0\x9f\x98\x80")

    monkeypatch.setattr("sys.stdin", Stdin())
    assert pipe.read_stdin() == "caf\ufffd ok \U0001F600"


def test_the_answer_alone_goes_to_stdout_with_a_final_newline() -> None:
    session = fake_session(FakeModel(replies=[["Hel", "lo"]]))
    status, out, err = run(session, "hi")
    assert (status, out, err) == (0, "Hello\n", "")
    assert session.conversation.messages[0].content == "hi"


def test_an_answer_ending_in_a_newline_gets_no_second_one() -> None:
    assert run(scripted(Token("a\n"), Done("stop", "a\n")))[1] == "a\n"


def test_no_answer_prints_nothing() -> None:
    assert run(scripted(Done("stop", "")))[1:] == ("", "")


def test_verbose_shows_notices_progress_and_figures_on_stderr() -> None:
    session = scripted(Progress("prompt", 512, 1024), Notice("careful"), Token("x"),
                       Stats(completion_tokens=3, tokens_per_s=2.0, context_used=10, context_size=100),
                       Done("stop", "x"))
    session.notices = [Notice("said at start", "warning")]
    status, out, err = run(session, verbose=True)
    assert status == 0 and out == "x\n"
    assert err.splitlines() == ["lcchat: said at start", "lcchat: prompt 512/1024", "lcchat: careful",
                                "lcchat: " + Stats(completion_tokens=3, tokens_per_s=2.0, context_used=10,
                                                   context_size=100).summary()]


def test_without_verbose_stderr_stays_empty() -> None:
    session = scripted(Progress("prompt", 1, 2), Notice("careful"), Token("x"), Stats(completion_tokens=3),
                       Done("stop", "x"))
    session.notices = [Notice("said at start", "warning")]
    assert run(session)[2] == ""


def test_no_figures_line_for_an_empty_reply_even_verbose() -> None:
    assert run(scripted(Stats(completion_tokens=0), Done("stop", "")), verbose=True)[2] == ""


def test_an_error_is_one_line_and_its_exit_status() -> None:
    status, out, err = run(scripted(Error("the message is too long", 2), Done("error", "")))
    assert (status, out, err) == (2, "", "lcchat: the message is too long\n")
    assert run(scripted(Error("llama.cpp failed"), Done("error", "")))[0] == 1


def test_pipe_mode_advises_flags_not_slash_commands() -> None:
    """The engine states the fact (ContextFull, ReplyLimit); pipe mode says which flag helps."""
    from lcchat.engine.events import ContextFull, ReplyLimit

    alone = Error("the message is 900 tokens", 2, ContextFull(900, 512, 64, alone=True))
    assert run(scripted(alone, Done("error", "")))[2] == "lcchat: the message is 900 tokens; shorten it or raise n_ctx (-c)\n"
    whole = Error("the conversation needs 900 tokens", 2, ContextFull(900, 512, 64, alone=False))
    assert run(scripted(whole, Done("error", "")))[2] == "lcchat: the conversation needs 900 tokens; raise n_ctx (-c)\n"
    limit = Notice("the reply reached max_tokens (3)", fact=ReplyLimit(3))
    err = run(scripted(Token("abc"), limit, Done("length", "abc")), verbose=True)[2]
    assert "lcchat: the reply reached max_tokens (3); -n N allows longer ones\n" in err and "/set" not in err


def test_a_message_too_long_for_the_context_in_pipe_mode() -> None:
    status, _, err = run(fake_session(FakeModel(n_ctx=64)), "z" * 500)
    assert status == 2
    assert err.startswith("lcchat: the message is ") and err.endswith("; shorten it or raise n_ctx (-c)\n")


def test_json_is_one_object_with_text_finish_reason_and_stats() -> None:
    stats = Stats(prompt_tokens=5, completion_tokens=2, context_used=7, context_size=64)
    status, out, err = run(scripted(Token("a"), Token("b"), stats, Done("length", "ab")), as_json=True)
    assert status == 0 and err == ""
    assert out.endswith("}\n") and out.count("\n") == 1
    assert json.loads(out) == {"text": "ab", "reasoning": "", "finish_reason": "length", "stats": stats.as_json()}


def test_json_of_an_error() -> None:
    status, out, _ = run(scripted(Error("bad", 2), Done("error", "")), as_json=True)
    assert status == 2 and json.loads(out)["finish_reason"] == "error"
    status, out, _ = run(scripted(Error("bad", 2)), as_json=True)  # an error ends the turn even without Done
    assert status == 2 and json.loads(out)["finish_reason"] == "error"


def test_json_finish_reason_is_stop_unless_told_otherwise() -> None:
    assert json.loads(run(scripted(Token("a")), as_json=True)[1])["finish_reason"] == "stop"


def test_ctrl_c_in_json_mode_says_interrupted_whatever_the_engine_said() -> None:
    class CtrlC(Token):
        """Ctrl+C arriving while this token is handled."""

        def __getattribute__(self, name):
            if name == "text":
                raise KeyboardInterrupt
            return super().__getattribute__(name)

    status, out, _ = run(scripted(CtrlC("a"), Token("b"), Done("stop", "ab")), as_json=True)
    assert status == 130 and json.loads(out)["finish_reason"] == "interrupted"


def test_json_keeps_non_ascii_as_is() -> None:
    out = run(scripted(Token("café 😀"), Done("stop", "café 😀")), as_json=True)[1]
    assert "café 😀" in out


class WaitsForCancel(FakeModel):
    """Generates two tokens, then waits for the cancel before the third: the reply is
    still running whenever the test's interruption comes."""

    def make_sampler(self, sampling):
        sampler = super().make_sampler(sampling)
        inner, count = sampler.sample, [0]

        def sample():
            count[0] += 1
            if count[0] == 3:
                deadline = time.monotonic() + 30
                while not self.abort_requested and time.monotonic() < deadline:
                    time.sleep(0.001)
            return inner()

        sampler.sample = sample
        return sampler


def test_ctrl_c_while_writing_cancels_the_reply_and_exits_130() -> None:
    class Interrupting(io.StringIO):
        def write(self, s):
            if s == "b":
                raise KeyboardInterrupt
            return super().write(s)

    session = fake_session(WaitsForCancel(replies=[["a", "b", "c", "d", "e"]]))
    out = Interrupting()
    status = pipe.run(session, "q", out=out, err=io.StringIO())
    assert status == 130
    last = session.conversation.messages[-1]
    assert last.interrupted and last.content.startswith("ab")  # the turn is kept, marked


def test_a_closed_pipe_stops_the_reply_keeps_the_turn_and_is_raised_for_the_cli() -> None:
    class Closed(io.StringIO):
        tries = 0

        def write(self, s):
            self.tries += 1
            raise BrokenPipeError

    session = fake_session(WaitsForCancel(replies=[["a", "b", "c"] * 100]))
    closed = Closed()
    with pytest.raises(BrokenPipeError):
        pipe.run(session, "q", out=closed, err=io.StringIO())
    assert closed.tries == 1  # nothing more is written to a pipe that has gone
    last = session.conversation.messages[-1]
    assert last.role == "assistant" and last.interrupted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_prompt_shows_one_progress_line_on_a_terminal_erased_before_the_answer() -> None:
    """On a terminal stderr, reading a prompt for PROGRESS_AFTER_S or longer shows one
    line that each Progress rewrites and the first other event erases, once."""
    times = [100.0, 100.0, 100.0 + pipe.PROGRESS_AFTER_S, 102.0]  # ProgressLine(), then one read per Progress

    def clock() -> float:
        return times.pop(0) if len(times) > 1 else times[0]

    session = scripted(Progress("history", 10, 1000), Progress("history", 500, 1000), Progress("prompt", 999, 1000),
                       Notice("said only with -v"), Token("Hi"), Token(" there"), Done("stop", "Hi there"))
    out, err = io.StringIO(), Terminal()
    assert pipe.run(session, "q", out=out, err=err, clock=clock) == 0
    assert out.getvalue() == "Hi there\n"
    assert err.getvalue() == ("\rreading 1,000 tokens of history\u2026 50%\x1b[K"  # not at 0 s: too soon
                              "\rreading 1,000 tokens\u2026 99%\x1b[K"
                              "\r\x1b[K")  # erased once


def test_thinking_goes_to_stderr_only_with_reasoning_and_into_json() -> None:
    events = (Thinking("hm"), Thinking("m"), Token("a"), Done("stop", "a"))
    assert run(scripted(*events)) == (0, "a\n", "")  # not shown by default
    assert run(scripted(*events), reasoning=True) == (0, "a\n", "hmm\n")
    status, out, err = run(scripted(*events), as_json=True)
    assert (status, err, json.loads(out)["reasoning"]) == (0, "", "hmm")
