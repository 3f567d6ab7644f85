"""The "Thinking" block of a reasoning model's reply: above the answer, dimmed, with a live
token count and the time it has taken in its title while the model thinks; collapsed when
the answer starts, and opened again with a click on its title (or Enter when focused).

The text is cleaned (textsafe.clean) like everything else the TUI shows from a model.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.text import Text
from textual.widgets import Collapsible, Static

from lcchat.textsafe import clean


class ThinkingBlock(Collapsible):
    DEFAULT_CSS = """
    ThinkingBlock {
        background: transparent;
        border-top: none;
        padding: 0;
        margin: 0;
        height: auto;
        &:focus-within { background-tint: $foreground 0%; }
    }
    ThinkingBlock > Contents { padding: 0 0 0 2; }
    ThinkingBlock CollapsibleTitle { color: $lc-muted; padding: 0; }
    ThinkingBlock .thinking-text { color: $lc-muted; text-style: italic; }
    """

    clock: Callable[[], float] = staticmethod(time.monotonic)  # tests fix the time shown

    def __init__(self, *, collapsed: bool = False) -> None:
        self.body = Static("", markup=False, classes="thinking-text")
        super().__init__(self.body, title="Thinking…", collapsed=collapsed)
        self.text = ""
        self.tokens = 0
        self.running = True
        self.started = self.clock()
        self.ended: float | None = None

    def add(self, fragment: str) -> None:
        """More thinking text."""
        self.text += fragment
        self.body.update(Text(clean(self.text)))
        self._retitle()

    def count(self, tokens: int) -> None:
        """The thinking tokens so far (from the live Stats)."""
        if tokens > self.tokens:
            self.tokens = tokens
            self._retitle()

    def end(self) -> None:
        """The answer starts (or the reply ended): the block closes; a click opens it."""
        if not self.running:
            return
        self.running = False
        self.ended = self.clock()
        self.collapsed = True
        self._retitle()

    def _retitle(self) -> None:
        seconds = (self.ended if self.ended is not None else self.clock()) - self.started
        tokens = f"{self.tokens} token{'s' if self.tokens != 1 else ''}, " if self.tokens else ""
        lead = "Thinking…" if self.running else "Thought for"
        self.title = f"{lead} {tokens}{seconds:.0f} s"
