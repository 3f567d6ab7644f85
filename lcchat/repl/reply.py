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
from typing import Callable, Iterator

from lcchat.commands.advice import phrase
from lcchat.engine.events import Done, Error, Event, Notice, Progress, Stats, Token
from lcchat.engine.worker import Streamed
from lcchat.repl.render import Printer
from lcchat.repl.terminal import quiet_input, sigint_handler
from lcchat.repl.toolbar import Figures, LiveToolbar, toolbar_text

INTERRUPTED = "[interrupted]"


class ReplyView:
    """What one reply showed: text as it came (or whole at the end), then the figures."""

    def __init__(self, printer: Printer, *, stream: bool, doing: str = "reading prompt…"):
        self.printer = printer
        self.stream = stream
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
        if isinstance(event, Token):
            self.progress = None
            self.parts.append(event.text)
            if self.stream:
                p.stream(event.text)
        elif isinstance(event, Stats):
            self.stats = event
            p.flush()  # text held back by the flush interval goes out within a Stats period
        elif isinstance(event, Progress):
            self.progress = event
        elif isinstance(event, Notice):
            if self.stream and self.done is None:
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

    def finish(self, *, interrupted: bool) -> None:
        p = self.printer
        p.flush()
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
        if self.parts or stats is not None or interrupted:
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
             doing: str = "reading prompt…") -> ReplyView:
        """Show the events of `produce()` (a reply, or other long work such as /quant);
        `doing` is what the toolbar says until the first figures come."""
        view = ReplyView(self.printer, stream=stream, doing=doing)
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
                        first = not view.parts and isinstance(event, Token)
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
                            width=width)
