"""Text from outside (a model's reply, a GGUF file's metadata, a template's error) made
safe to show on a terminal.

A terminal obeys the control characters in what it is sent: ESC starts sequences that
retitle the window (OSC 0), write the clipboard (OSC 52), clear the screen or move the
cursor; BEL, BS and CR rewrite what is already shown. None of that may come from a model
or a model file. `clean` makes every control character visible instead (ESC shows as
␛, BEL as ␇, a C1 control as �), keeps tab and newline, and drops CR so that CR LF line
ends read as LF. Every path that shows such text on a terminal uses it: the REPL, the TUI
transcript, pipe mode on a terminal, `lcchat history show`, error lines and -v logs.
Writing to a pipe or a file keeps the bytes as they are: scripts may need them.
`one_line` is for a name inside a message (a file name a server sent): escaped, one line,
bounded in length.
"""

from __future__ import annotations

from typing import TextIO

# C0 controls show as the Unicode control pictures (U+2400 + code), DEL as ␡; C1 controls
# (which some terminals obey as 8-bit CSI, OSC...) as the replacement character.
_CONTROLS: dict[int, str | None] = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_CONTROLS[0x7F] = "\u2421"
_CONTROLS.update({c: "\ufffd" for c in range(0x80, 0xA0)})
_CONTROLS[0x0D] = None


def clean(text: str) -> str:
    """`text` with no live control characters: each is shown as a visible symbol (CR is
    dropped); tab and newline are kept."""
    return text.translate(_CONTROLS)


def one_line(text: str, limit: int = 200) -> str:
    """A name from outside (a file name from a server or the cache, a repository id) fit for
    one line of a message: every character that is not printable, newline included, shown
    as its Python escape (``\\x1b``, ``\\n``), and the length bounded to `limit` with "…"."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is a terminal (False for a pipe, a file, or a stream without a fd)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def for_stream(text: str, stream: TextIO | None) -> str:
    """`text` cleaned when `stream` is a terminal, as it is otherwise (pipes keep the bytes)."""
    return clean(text) if is_terminal(stream) else text
