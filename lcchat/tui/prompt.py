"""The input box: a TextArea where Enter sends and Shift+Enter, Ctrl+J or Alt+Enter
adds a line. It grows with its text up to MAX_LINES, then scrolls. Up on the first line
and Down on the last walk through what was sent before; Tab completes slash commands."""

from __future__ import annotations

from typing import Callable

from textual import events
from textual.message import Message
from textual.widgets import TextArea

MAX_LINES = 6
NEWLINE_KEYS = ("shift+enter", "ctrl+j", "alt+enter", "newline")


class PromptInput(TextArea):
    DEFAULT_CSS = f"""
    PromptInput {{
        height: auto;
        min-height: 3;
        max-height: {MAX_LINES + 2};
        border: round $lc-border;
        border-title-color: $lc-title;
        border-subtitle-color: $lc-muted;
        padding: 0 1;
    }}
    PromptInput:focus {{ border: round $lc-assistant; }}
    PromptInput.-busy {{ border: round $lc-notice; }}
    """

    class Submitted(Message):
        def __init__(self, prompt: "PromptInput", text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

    def __init__(self, *, completer: Callable[[str], list[str]] | None = None, id: str | None = "prompt") -> None:
        super().__init__("", id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
                         highlight_cursor_line=False, placeholder="Message, or /help")
        self.completer = completer
        self.sent: list[str] = []
        self._history_pos: int | None = None
        self._draft = ""

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            self._stop(event)
            text = self.text
            if text.strip():
                # Clear now, not when the app has handled it: keys typed meanwhile start the next message.
                self.remember(text)
                self.clear_input()
                self.post_message(self.Submitted(self, text))
            return
        if key in NEWLINE_KEYS:
            self._stop(event)
            start, end = self.selection
            self._replace_via_keyboard("\n", start, end)
            return
        if key == "tab" and self.completer is not None and self.text.startswith("/") and "\n" not in self.text:
            self._stop(event)
            self.complete()
            return
        if key == "up" and self.cursor_location[0] == 0 and self._recall(-1):
            self._stop(event)
            return
        if key == "down" and self.cursor_location[0] == self.document.line_count - 1 and self._recall(+1):
            self._stop(event)
            return
        await super()._on_key(event)

    @staticmethod
    def _stop(event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    # --- history

    def remember(self, text: str) -> None:
        if text.strip() and (not self.sent or self.sent[-1] != text):
            self.sent.append(text)
        self._history_pos = None

    def _recall(self, step: int) -> bool:
        if not self.sent:
            return False
        if self._history_pos is None:
            if step > 0:
                return False
            self._draft = self.text
            pos = len(self.sent) - 1
        else:
            pos = self._history_pos + step
        if pos < 0:
            return True  # at the oldest: stay
        if pos >= len(self.sent):
            self._history_pos = None
            self._set(self._draft)
            return True
        self._history_pos = pos
        self._set(self.sent[pos])
        return True

    def _set(self, text: str) -> None:
        self.load_text(text)
        last = self.document.line_count - 1
        self.move_cursor((last, len(self.document.get_line(last))))

    # --- completion

    def complete(self) -> list[str]:
        """Complete the slash command or argument under the cursor; returns the choices."""
        assert self.completer is not None
        text = self.text
        choices = self.completer(text)
        if not choices:
            return []
        head, _, _ = text.rpartition(" ")
        prefix = _common_prefix(choices)
        word = text[len(head) + 1:] if head else text
        if len(choices) == 1:
            new = (head + " " if head else "") + choices[0] + " "
        elif len(prefix) > len(word):
            new = (head + " " if head else "") + prefix
        else:
            return choices
        self._set(new)
        return choices

    def clear_input(self) -> None:
        self.load_text("")
        self._history_pos = None

    def give_back(self, text: str) -> None:
        """Put a message the app did not take back in the box (before anything typed since)."""
        typed = self.text
        self._set(text + ("\n" + typed if typed.strip() else ""))


def _common_prefix(words: list[str]) -> str:
    if not words:
        return ""
    first, last = min(words), max(words)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]
