"""Printing between prompts: reply text, command results, figures, notices and errors.

Everything goes through the prompt-toolkit Output the REPL was given, under one lock (the
live toolbar writes from a thread of its own). The text is plain, with a few SGR codes:
colours only when the terminal has them and NO_COLOR is unset, none at all on a dumb
terminal. Meaning never rests on colour alone: errors and warnings say so in words.
"""

from __future__ import annotations

import base64
import os
import textwrap
import threading
import time

from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.utils import get_cwidth, is_dumb_terminal

from lcchat.commands.advice import phrase
from lcchat.commands.registry import Result
from lcchat.engine.events import LEVEL_PREFIX, Notice, Stats
from lcchat.textsafe import clean

_SGR = {"dim": "2", "bold": "1", "reverse": "7", "red": "31", "yellow": "33", "cyan": "36"}
_COLOURS = {"red", "yellow", "cyan"}

def osc52(text: str) -> str:
    """The escape sequence that asks the terminal to put `text` on the clipboard (OSC 52);
    it travels with the output, so it works over SSH. The text goes base64-encoded, so no
    control character in it reaches the terminal."""
    return "\x1b]52;c;" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "\x07"


def output_term(output: Output) -> str:
    return getattr(output, "term", None) or os.environ.get("TERM", "")


def is_dumb(output: Output) -> bool:
    return is_dumb_terminal(output_term(output))


def colour_allowed(output: Output) -> bool:
    if os.environ.get("NO_COLOR") or is_dumb(output):
        return False
    depth = ColorDepth.from_env() or output.get_default_color_depth()
    return depth != ColorDepth.DEPTH_1_BIT


class Printer:
    """Writes to a prompt-toolkit Output. `colour` allows colour codes; `attributes` allows
    dim/bold/reverse (off on a dumb terminal)."""

    FLUSH_EVERY_S = 0.025  # reply text is flushed at most this often (fewer, fuller packets over SSH)

    def __init__(self, output: Output, *, colour: bool | None = None, attributes: bool | None = None):
        self.output = output
        self.attributes = (not is_dumb(output)) if attributes is None else attributes
        self.colour = (colour_allowed(output) if colour is None else colour) and self.attributes
        self.lock = threading.RLock()
        self.at_line_start = True
        self._last_flush = 0.0
        self._pending = False
        self._column = 0  # where the cursor is on its line, in cells
        self._word = ""  # reply text held until its word ends (stream)

    # ------------------------------------------------------------ low level

    def style(self, text: str, *styles: str) -> str:
        codes = [_SGR[s] for s in styles if s in _SGR and (self.colour or s not in _COLOURS)]
        if not codes or not self.attributes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def raw(self, data: str, *, flush: bool = True) -> None:
        """Write escape sequences or text as they are."""
        with self.lock:
            self.output.write_raw(data)
            if flush:
                self.output.flush()
                self._pending = False

    def text(self, text: str, *, flush: bool = True) -> None:
        """Write text; newlines become CR LF (the terminal may be in raw mode)."""
        if not text:
            return
        with self.lock:
            head, newline, tail = text.rpartition("\n")
            self._column = get_cwidth(tail) if newline else self._column + get_cwidth(text)
            self._put(text, flush)

    def _put(self, text: str, flush: bool) -> None:
        if not text:
            return
        with self.lock:
            self.output.write_raw(text.replace("\r\n", "\n").replace("\n", "\r\n"))
            self.at_line_start = text.endswith("\n")
            if flush:
                self.output.flush()
                self._pending = False
            else:
                self._pending = True

    def stream(self, text: str, *, whole: bool = False) -> None:
        """Reply text as it arrives, wrapped at word boundaries (a word that fits on a line
        is never split at the terminal's edge), flushed at most every FLUSH_EVERY_S.

        The word being written is held until it ends (a space or a newline arrives), so it
        can start a new line if it would cross the edge; flush() writes what is held.
        whole=True: `text` is all there is (a reply shown at once): nothing is held."""
        now = time.monotonic()
        due = now - self._last_flush >= self.FLUSH_EVERY_S
        with self.lock:
            width = self.columns()
            out: list[str] = []
            for ch in clean(text):
                if ch in " \t\n":
                    out.append(self._take_word(width))
                    out.append(self._gap(ch, width))
                else:
                    self._word += ch
                    if get_cwidth(self._word) > width:  # longer than a line: it has to be split
                        out.append(self._take_word(width))
            if whole:
                out.append(self._take_word(width))
            self._put("".join(out), due or whole)
        if due:
            self._last_flush = now

    def _take_word(self, width: int) -> str:
        """The held word as it is to be written: on a new line if it would cross the edge
        here but fits on a line of its own; split at the edge if it fits on none."""
        word, self._word = self._word, ""
        if not word:
            return ""
        w = get_cwidth(word)
        if self._column + w <= width:
            self._column += w
            return word
        if w <= width:
            self._column = w
            return "\n" + word
        out = []
        for ch in word:  # too long for any line: fill this one, then go on below
            cw = get_cwidth(ch)
            if self._column + cw > width:
                out.append("\n")
                self._column = 0
            out.append(ch)
            self._column += cw
        return "".join(out)

    def _gap(self, ch: str, width: int) -> str:
        """A space, tab or newline after a word; a space or tab at the edge becomes the line break."""
        if ch == "\n":
            self._column = 0
            return ch
        after = (self._column // 8 + 1) * 8 if ch == "\t" else self._column + 1
        if after > width:
            self._column = 0
            return "\n"
        self._column = after
        return ch

    def flush(self) -> None:
        with self.lock:
            if self._word:
                self._put(self._take_word(self.columns()), False)
            if self._pending:
                self.output.flush()
                self._pending = False

    def end_line(self) -> None:
        """Make sure what comes next starts on a line of its own."""
        self.flush()
        if not self.at_line_start:
            self.text("\n")

    def line(self, text: str = "", *styles: str) -> None:
        """One line of text (cleaned of control characters: it may come from a model file),
        wrapped at spaces to the terminal's width so that no word is cut in two."""
        self._styled_line(self.style(self._fit(clean(text)), *styles))

    def _fit(self, text: str) -> str:
        width = self.columns() - 1
        if width < 20 or all(get_cwidth(part) <= width for part in text.split("\n")):
            return text
        out = []
        for part in text.split("\n"):
            indent = part[: len(part) - len(part.lstrip(" "))]
            out += textwrap.wrap(part, width, subsequent_indent=indent, break_long_words=False,
                                 break_on_hyphens=False, drop_whitespace=True) or [""]
        return "\n".join(out)

    def _styled_line(self, styled: str) -> None:
        self.end_line()
        self.text(styled + "\n")

    # ------------------------------------------------------------ kinds of line

    def info(self, text: str) -> None:
        self.line(text)

    def dim(self, text: str) -> None:
        self.line(text, "dim")

    def styled(self, *styles: str) -> None:
        """Start writing in `styles` (none: back to plain), where the terminal allows it;
        streamed text in between keeps them (a reasoning model's thinking, dimmed)."""
        if not self.attributes:
            return
        self.flush()
        on = self.style("x", *styles)
        self.raw(on[: on.index("x")] if styles and on != "x" else "\x1b[0m")

    def status(self, text: str, *styles: str) -> None:
        """A line that says how something goes, written over each time (\r, erase to its end):
        one line for the thinking with /think hide. On a dumb terminal nothing: done() says it."""
        if not self.attributes:
            return
        with self.lock:
            self.raw("\r\x1b[K" + self.style(self._fit(clean(text)).split("\n")[0], *styles))
            self.at_line_start = False
            self._column = 0

    def warning(self, text: str) -> None:
        self.line(LEVEL_PREFIX["warning"] + text, "yellow")

    def error(self, text: str) -> None:
        self.line(LEVEL_PREFIX["error"] + text, "red")

    def notice(self, notice: Notice) -> None:
        text = phrase(notice)  # the fact, and what to do about it here
        if notice.level == "warning":
            self.warning(text)
        else:
            self.dim(text)

    def stats(self, stats: Stats) -> None:
        self.dim(stats.summary())

    def columns(self) -> int:
        try:
            return int(self.output.get_size().columns) or 80
        except Exception:  # noqa: BLE001
            return 80

    def table(self, rows: list[tuple[str, str]]) -> None:
        """Two aligned columns, the right one wrapped to the terminal; a left column wider
        than 20 puts its value on the next line rather than push every row right."""
        if not rows:
            return
        width = max((w for w in (get_cwidth(k) for k, _ in rows) if w <= 20), default=20)
        indent = " " * (width + 4)
        room = self.columns() - len(indent) - 1
        for key, value in rows:
            key, value = clean(str(key)), clean(str(value))
            lines: list[str] = []
            for part in str(value).split("\n"):
                lines += (textwrap.wrap(part, room, break_on_hyphens=False) or [""]) if room >= 20 else [part]
            lines = lines or [""]
            label = self.style(key, "bold")
            if get_cwidth(key) > width:
                self._styled_line(f"  {label}")
                self.line(indent + lines[0])
            else:
                self._styled_line(f"  {label}{' ' * (width - get_cwidth(key))}  {lines[0]}")
            for more in lines[1:]:
                self.line(indent + more)

    def result(self, result: Result) -> None:
        if result.text:
            text = clean(result.text)
            if result.error:
                self.error(text)
            else:
                for part in text.split("\n"):
                    self.line(part)
        if result.rows:
            self.table(result.rows)

    def clear_screen(self) -> None:
        with self.lock:
            if self.attributes:
                self.output.erase_screen()
                self.output.cursor_goto(0, 0)
                self.output.flush()
            self.at_line_start = True
