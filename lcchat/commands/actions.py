"""What a command asks its front-end to do, as typed values.

A command returns a Result whose `action` is one of these (or None: show the text and
carry on). Each front-end handles them with one `match` over the types below; a new kind
of action is a new class here and a new case in each front-end's match. The commands say
what is wanted, never how: leaving, clearing a screen, opening an editor, streaming a
reply and writing to a clipboard are each done the front-end's own way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Union


@dataclass(frozen=True)
class Exit:
    """Leave the chat."""


@dataclass(frozen=True)
class Clear:
    """Clear the screen or transcript (the session is already cleared)."""


@dataclass(frozen=True)
class Edit:
    """Open the user's editor on `initial`; send what they save (an empty file cancels)."""

    initial: str = ""


@dataclass(frozen=True)
class Generate:
    """A reply: calling `produce` gives the engine's event iterator (/retry)."""

    produce: Callable[[], Iterator[Any]]


@dataclass(frozen=True)
class Task:
    """Long work that is not a reply (switch model, quantize, read a history back):
    calling it gives the event iterator (Progress, Notice, Error, Done); session.cancel()
    stops it. It is shown as progress, not as an assistant turn; with `rebuild` the
    conversation was replaced (/load) and the front-end draws it again."""

    produce: Callable[[], Iterator[Any]] = field(repr=False)
    what: str
    rebuild: bool = False

    def __call__(self) -> Iterator[Any]:
        return self.produce()


@dataclass(frozen=True)
class Copy:
    """Put `text` on the clipboard."""

    text: str


@dataclass(frozen=True)
class Theme:
    """Switch to the theme `name` (the command checked it is one of FrontState.themes)."""

    name: str


@dataclass(frozen=True)
class Settings:
    """Front-end settings in FrontState changed (stream, vi mode): read them again."""


Action = Union[Exit, Clear, Edit, Generate, Task, Copy, Theme, Settings]
