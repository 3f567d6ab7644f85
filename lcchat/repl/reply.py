"""Playing one reply in the terminal: tokens, Ctrl+C, the live toolbar, the figures after.

The reply runs in a worker thread (engine.worker.Streamed); this thread prints. While it
streams, prompt-toolkit is not running, so:
- Ctrl+C reaches us as SIGINT. Our handler makes the first one cancel the reply (the engine
  stops within one token, or aborts prompt evaluation) without raising anywhere, so it can
  never land half-way through our own printing; a second one stops waiting.
- keys typed meanwhile are not echoed into the reply; they wait in the terminal's input
  queue and reach the next prompt as typeahead.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Iterator

from lcchat.commands.advice import phrase
from lcchat.engine.events import Done, Error, Event, Notice, Progress, Stats, Thinking, Token
from lcchat.engine.protocol import server_of
from lcchat.engine.worker import Streamed
from lcchat.repl.render import Printer
from lcchat.repl.terminal import quiet_input, sigint_handler
from lcchat.repl.toolbar import Figures, LiveToolbar, toolbar_text

INTERRUPTED = "[interrupted]"


class ReplyView:
    """What one reply showed: text as it came (or whole at the end), then the figures."""

    def __init__(self, printer: Printer, *, stream: bool, doing: str = "reading prompt…",
                 show_thinking: bool = True, clock: Callable[[], float] = time.monotonic):
        self.printer = printer
        self.stream = stream
        # A reasoning model's thinking: dimmed text, or with show_thinking off one live line
        # ("thinking… 412 tokens, 9 s"); either way it ends before the answer starts.
        self.show_thinking = show_thinking
        self.clock = clock
        self.thinking: list[str] = []
        self._thinking_since: float | None = None
        self._thinking_open = False  # the thinking is being shown now
        self._thinking_tokens = 0
        self.doing = doing  # what the toolbar says until the first figures
        self.parts: list[str] = []
        self.stats: Stats | None = None
        self.progress: Progress | None = None
        self.done: Done | None = None
        self.errors: list[str] = []
        self._held: list[Notice] = []  # shown after the reply: it is printed whole, or has ended

    @property
    def waiting(self) -> bool:
        """No reply text or figures yet (the prompt is being read)."""
        return not self.parts and self.stats is None

    @property
    def text(self) -> str:
        return self.done.text if self.done is not None else "".join(self.parts)

    def feed(self, event: Event) -> None:
        p = self.printer
        if isinstance(event, Thinking):
            self.progress = None
            self.thinking.append(event.text)
            if self._thinking_since is None:
                self._thinking_since = self.clock()
            if self.stream:
                self._think(event.text)
        elif isinstance(event, Token):
            self.progress = None
            self._end_thinking()
            self.parts.append(event.text)
            if self.stream:
                p.stream(event.text)
        elif isinstance(event, Stats):
            self.stats = event
            self._thinking_tokens = event.reasoning_tokens
            if self._thinking_open and not self.show_thinking:
                p.status(self._thinking_line("thinking…"), "dim")
            p.flush()  # text held back by the flush interval goes out within a Stats period
        elif isinstance(event, Progress):
            self.progress = event
        elif isinstance(event, Notice):
            if self.stream and self.done is None:
                self._end_thinking()
                p.flush()
                p.notice(event)
            else:
                self._held.append(event)
        elif isinstance(event, Error):
            message = phrase(event)  # the fact, and what to do about it here
            self.errors.append(message)
            p.flush()
            p.error(message)
        elif isinstance(event, Done):
            self.done = event

    def _thinking_line(self, lead: str) -> str:
        seconds = (self.clock() - self._thinking_since) if self._thinking_since is not None else 0.0
        return f"{lead} {self._thinking_tokens} tokens, {seconds:.0f} s"

    def _think(self, text: str) -> None:
        p = self.printer
        if not self._thinking_open:
            self._thinking_open = True
            p.end_line()
            if self.show_thinking:
                p.styled("dim")
            else:
                p.status(self._thinking_line("thinking…"), "dim")  # then with each Stats
        if self.show_thinking:
            p.stream(text)

    def _end_thinking(self) -> None:
        """The answer starts (or the reply ends): close the thinking, a blank line after it."""
        if not self._thinking_open:
            return
        self._thinking_open = False
        p = self.printer
        if self.show_thinking:
            p.flush()
            p.styled()
            p.end_line()
        elif p.attributes:
            p.status(self._thinking_line("thought for"), "dim")
            p.end_line()
        else:
            p.dim(self._thinking_line("thought for"))
        p.text("\n")

    def finish(self, *, interrupted: bool) -> None:
        p = self.printer
        self._end_thinking()
        p.flush()
        if not self.stream and self.thinking and self.show_thinking:
            p.end_line()
            p.dim("".join(self.thinking))
        elif not self.stream and self.thinking:
            p.dim(self._thinking_line("thought for"))
        if not self.stream and self.text:
            p.end_line()
            p.stream(self.text, whole=True)
        interrupted = interrupted or (self.done is not None and self.done.finish_reason == "interrupted")
        if interrupted:
            mark = p.style(INTERRUPTED, "yellow")
            p.text((mark if p.at_line_start else " " + mark) + "\n")
        else:
            p.end_line()
        for notice in self._held:
            p.notice(notice)
        stats = self.stats
        if stats is not None and (stats.completion_tokens or not interrupted):
            p.stats(stats)
        if self.parts or self.thinking or stats is not None or interrupted:
            p.text("\n")


class ReplyPlayer:
    """Plays replies for one session. `interrupt()` is what the first Ctrl+C does."""

    def __init__(self, session, printer: Printer, *, figures: Figures | None = None,
                 live_toolbar: bool = False, input_fd: int | None = None, toolbar_every: float = 1.0):
        self.session = session
        self.printer = printer
        self.figures = figures or Figures(None)
        self.live_toolbar = live_toolbar
        self.input_fd = input_fd
        self.toolbar_every = toolbar_every
        self._current: Streamed | None = None
        self._lock = threading.Lock()

    def interrupt(self) -> bool:
        """Cancel the reply being played (any thread). False when there is none, or when it
        was already cancelled."""
        with self._lock:
            stream = self._current
            if stream is None or stream.interrupted:
                return False
            stream.interrupted = True
        self.session.cancel()
        return True

    def _on_sigint(self, signum, frame) -> None:
        if not self.interrupt():
            raise KeyboardInterrupt

    def play(self, produce: Callable[[], Iterator[Event]], *, stream: bool = True,
             doing: str = "reading prompt…", show_thinking: bool = True) -> ReplyView:
        """Show the events of `produce()` (a reply, or other long work such as /quant);
        `doing` is what the toolbar says until the first figures come; show_thinking off
        (/think hide) shows a reasoning model's thinking as one live line."""
        view = ReplyView(self.printer, stream=stream, doing=doing, show_thinking=show_thinking)
        streamed = Streamed(produce, self.session.cancel)
        toolbar = LiveToolbar(self.printer, lambda width: self.toolbar_line(view, width),
                              every=self.toolbar_every) if self.live_toolbar else None
        abandoned = False
        with self._lock:
            self._current = streamed
        try:
            with sigint_handler(self._on_sigint), quiet_input(self.input_fd), toolbar or contextlib.nullcontext():
                try:
                    for event in streamed:
                        first = not view.parts and not view.thinking and isinstance(event, (Token, Thinking))
                        view.feed(event)
                        if first and toolbar is not None:
                            toolbar.refresh()  # "reading prompt…" becomes a speed
                except KeyboardInterrupt:  # a second Ctrl+C: stop waiting for the engine
                    abandoned = True
        finally:
            with self._lock:
                self._current = None
        view.finish(interrupted=streamed.interrupted or abandoned)
        return view

    def toolbar_line(self, view: ReplyView, width: int) -> str:
        s = self.session
        return toolbar_text(stats=view.stats, snapshot=self.figures.snapshot(), context_used=s.context_used,
                            context_size=s.context_size, progress=view.progress,
                            waiting=view.doing if view.waiting else False,
                            width=width, remote=bool(server_of(s.model)))
