"""Pipe and one-shot mode: `echo question | lcchat`, `lcchat "question"`, `cat f | lcchat "sum up"`.

Only the answer goes to stdout, streamed; diagnostics go to stderr and only with -v,
except one transient progress line while a long prompt is read, on a terminal.
On a terminal the answer's control characters are made visible (textsafe.clean); to a
pipe or a file its bytes go out as the model wrote them.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Callable, TextIO

from lcchat.engine.events import ContextFull, Done, Error, Notice, Progress, ReplyLimit, Stats, Thinking, Token
from lcchat.engine.session import ChatSession
from lcchat.engine.worker import Streamed
from lcchat.errors import EXIT_INTERRUPTED, EXIT_OK
from lcchat.textsafe import clean, is_terminal


# json.dumps escapes C0 controls but not DEL and C1 (0x7f-0x9f), which some terminals obey:
# written as \u escapes, the JSON means the same and is safe anywhere.
_C1 = re.compile("[\x7f-\x9f]")


def read_stdin() -> str:
    """All of stdin as text; invalid UTF-8 is replaced, not fatal."""
    data = sys.stdin.buffer.read()
    return data.decode("utf-8", "replace")


def compose(stdin_text: str | None, question: str | None) -> str:
    """stdin as context and the argument as the question, as in `cat notes | llm "summarize"`."""
    context = (stdin_text or "").strip("\n")
    question = (question or "").strip()
    if context.strip() and question:
        return f"{context}\n\n{question}"
    return question or context


PROGRESS_AFTER_S = 1.0  # a prompt read for longer than this gets a progress line on a terminal


class ProgressLine:
    """One transient line on stderr while a long prompt is read ("reading 3,120 tokens…
    40%"), when stderr is a terminal and the reading has taken over PROGRESS_AFTER_S; it is
    erased before the answer, so stdout's text starts on a clean line."""

    def __init__(self, err: TextIO, clock: Callable[[], float]) -> None:
        self.err = err
        self.clock = clock
        self.on = is_terminal(err)
        self.started = clock()
        self.shown = False

    def update(self, event: Progress) -> None:
        if not self.on or not event.total or self.clock() - self.started < PROGRESS_AFTER_S:
            return
        of = " of history" if event.what == "history" else ""
        self.err.write(f"\rreading {event.total:,} tokens{of}… {100 * event.done // event.total}%\x1b[K")
        self.err.flush()
        self.shown = True

    def erase(self) -> None:
        if self.shown:
            self.err.write("\r\x1b[K")
            self.err.flush()
            self.shown = False


def advise(event: Notice | Error) -> str:
    """The event's message, with what to do about it in pipe mode: which flag to change
    (the chat front-ends suggest slash commands instead: lcchat/commands/advice.py)."""
    text = event.text if isinstance(event, Notice) else event.message
    match event.fact:
        case ContextFull(alone=True):
            return f"{text}; shorten it or raise n_ctx (-c)"
        case ContextFull():
            return f"{text}; raise n_ctx (-c)"
        case ReplyLimit():
            return f"{text}; -n N allows longer ones"
    return text


def run(session: ChatSession, text: str, *, as_json: bool = False, verbose: bool = False,
        out: TextIO | None = None, err: TextIO | None = None, clock: Callable[[], float] = time.monotonic,
        reasoning: bool = False) -> int:
    """Answer one message; returns the exit status (0, 1, 2, or 130 after Ctrl+C). A reasoning
    model's thinking never goes to stdout: --json puts it under "reasoning", and with
    `reasoning` (--reasoning) it streams to stderr, cleaned."""
    out = out or sys.stdout
    err = err or sys.stderr
    shown = clean if is_terminal(out) else str
    progress = ProgressLine(err, clock) if not verbose else None
    if verbose:
        for notice in session.notices:
            print(f"lcchat: {clean(notice.text)}", file=err)
    stream = Streamed(lambda: session.send(text), session.cancel)
    status = EXIT_OK
    finish = "stop"
    reply: list[str] = []
    thinking: list[str] = []
    stats = Stats()
    broken: BrokenPipeError | None = None
    for event in stream:
        try:
            if broken is not None:
                continue  # the reader has gone: let the turn end and be recorded
            if progress is not None and not isinstance(event, Progress):
                progress.erase()
            if isinstance(event, Token):
                reply.append(event.text)
                if not as_json:
                    out.write(shown(event.text))
                    out.flush()
            elif isinstance(event, Thinking):
                thinking.append(event.text)
                if reasoning:
                    err.write(clean(event.text))
                    err.flush()
            elif isinstance(event, Stats):
                stats = event
            elif isinstance(event, Done):
                finish = event.finish_reason
            elif isinstance(event, Error):
                print(f"lcchat: {clean(advise(event))}", file=err)
                status = event.code
                finish = "error"
            elif isinstance(event, Notice) and verbose:
                print(f"lcchat: {clean(advise(event))}", file=err)
            elif isinstance(event, Progress) and verbose:
                print(f"lcchat: {clean(event.what)} {event.done}/{event.total}", file=err)
            elif isinstance(event, Progress) and progress is not None:
                progress.update(event)
        except KeyboardInterrupt:  # Ctrl+C while writing: same as while waiting
            stream.interrupt()
        except BrokenPipeError as exc:  # `lcchat ... | head -1`: stop the reply, keep the turn
            broken = exc
            if not stream.interrupted:
                stream.interrupt()
    if progress is not None:
        progress.erase()
    if broken is not None:
        raise broken  # the CLI leaves quietly
    text_out = "".join(reply)
    if reasoning and thinking:
        err.write("\n")
        err.flush()
    if as_json:
        document = json.dumps({"text": text_out, "reasoning": "".join(thinking),
                               "finish_reason": "interrupted" if stream.interrupted else finish,
                               "stats": stats.as_json()}, ensure_ascii=False)
        out.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", document) + "\n")
    elif text_out and not text_out.endswith("\n"):
        out.write("\n")
    out.flush()
    if verbose and stats.completion_tokens:
        print(f"lcchat: {stats.summary()}", file=err)
    if stream.interrupted:
        return EXIT_INTERRUPTED
    return status
