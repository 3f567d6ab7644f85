"""The one rule for what a line typed at a prompt is: a command or a message.

Both front-ends call parse_line, so `/help`, `//etc` and ` /usr` mean the same in each:

- `/name args` at the very start of the text is a command. Its argument is everything
  after the name, further lines included (so /system can take a prompt of several lines).
- `//text` is a message: the first slash is dropped, so it sends `/text`.
- Anything else, including text that starts with a space before the slash, is a message,
  sent as typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMAND = re.compile(r"/(\S*)\s*(.*)", re.DOTALL)


@dataclass(frozen=True)
class CommandLine:
    """A command as typed: its name (without the slash) and its argument."""

    name: str
    arg: str = ""

    @property
    def line(self) -> str:
        return f"/{self.name} {self.arg}".rstrip()


@dataclass(frozen=True)
class Message:
    """Text for the model."""

    text: str


def parse_line(text: str) -> CommandLine | Message:
    """A command or a message, by the rule above."""
    if text.startswith("//"):
        return Message(text[1:])
    if text.startswith("/"):
        m = _COMMAND.fullmatch(text.rstrip())
        if m is not None:  # always, for text starting with "/"
            return CommandLine(m.group(1), m.group(2))
    return Message(text)
