"""The one slash-command registry, shared by the REPL and the TUI.

Each command is declared once with its name, aliases, argument synopsis, help and an
argument completer, and returns a Result: data, never terminal output. What only a
front-end can do (leave, clear its screen, open an editor, stream a reply, write to the
clipboard) is asked for with Result.action, and each front-end does it its own way.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

# Actions a front-end carries out after a command:
EXIT = "exit"  # leave the chat
CLEAR = "clear"  # clear the screen/transcript (the session is already cleared)
EDIT = "edit"  # open the user's editor; send what they save (data: initial text)
GENERATE = "generate"  # a reply: stream events from data (a callable returning an event iterator)
TASK = "task"  # long work that is not a reply (switch model, quantize, read a history): data is a Task
COPY = "copy"  # put data (text) on the clipboard with OSC 52
THEME = "theme"  # switch to theme data
SETTINGS = "settings"  # front-end settings changed (stream, vi mode): re-read FrontState


class Task:
    """Long work a command asks a front-end to run in the background: calling it gives the
    event iterator (Progress, Notice, Error, Done). session.cancel() stops it. It is not a
    reply, so it is shown as progress, not as an assistant turn; with `rebuild` the
    conversation was replaced (/load) and the front-end redraws it."""

    def __init__(self, produce: Callable[[], Iterator[Any]], what: str, *, rebuild: bool = False):
        self._produce = produce
        self.what = what
        self.rebuild = rebuild

    def __call__(self) -> Iterator[Any]:
        return self._produce()


@dataclass
class Result:
    text: str = ""  # plain text for the user (may hold simple Markdown)
    rows: list[tuple[str, str]] | None = None  # a two-column table, shown after text
    error: bool = False
    action: str | None = None
    data: Any = None


@dataclass
class FrontState:
    """Front-end settings that commands may read and change."""

    stream: bool = True
    vi_mode: bool = False
    theme: str = "dark"
    themes: list[str] = field(default_factory=list)  # names the front-end can show
    frontend: str = "repl"  # "repl" | "tui"


@dataclass
class Context:
    session: Any  # engine.session.ChatSession
    state: FrontState
    recorder: Any = None  # store.recorder.Recorder: the run's, handed to the front-end by lcchat/runtime.py


Handler = Callable[[Context, str], Result]
Completer = Callable[[Context, str], Iterable[str]]


@dataclass
class Command:
    name: str
    handler: Handler
    help: str
    args: str = ""  # synopsis, e.g. "[on|off]"
    aliases: tuple[str, ...] = ()
    complete: Completer | None = None
    details: str = ""  # longer help for /help NAME

    @property
    def usage(self) -> str:
        return f"/{self.name} {self.args}".rstrip()


class Registry:
    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}
        self._names: dict[str, Command] = {}

    def command(self, name: str, *, help: str, args: str = "", aliases: tuple[str, ...] = (),
                complete: Completer | None = None, details: str = "") -> Callable[[Handler], Handler]:
        """Decorator that declares a command."""

        def register(handler: Handler) -> Handler:
            cmd = Command(name, handler, help, args, aliases, complete, details)
            self._commands[name] = cmd
            for key in (name, *aliases):
                if key in self._names:
                    raise ValueError(f"/{key} is declared twice")
                self._names[key] = cmd
            return handler

        return register

    def commands(self) -> list[Command]:
        return list(self._commands.values())

    def names(self) -> list[str]:
        """Every name and alias."""
        return sorted(self._names)

    def get(self, name: str) -> Command | None:
        return self._names.get(name.lstrip("/"))

    def suggest(self, name: str) -> str | None:
        hits = difflib.get_close_matches(name.lstrip("/"), self.names(), n=1, cutoff=0.5)
        return hits[0] if hits else None

    def dispatch(self, ctx: Context, line: str) -> Result:
        """Run a "/name args" line. Never raises for a user's mistake: it returns an error."""
        name, _, arg = line.strip().lstrip("/").partition(" ")
        cmd = self.get(name)
        if cmd is None:
            hint = self.suggest(name)
            tip = f" Did you mean /{hint}?" if hint else ""
            return Result(f"Unknown command /{name}.{tip} /help lists them.", error=True)
        try:
            return cmd.handler(ctx, arg.strip())
        except UsageError as exc:
            return Result(f"{exc} Usage: {cmd.usage}", error=True)

    def completions(self, ctx: Context | None, text: str) -> list[str]:
        """Completions for a partial line ("/se", "/set tem"); whole words to insert."""
        if not text.startswith("/"):
            return []
        name, space, arg = text[1:].partition(" ")
        if not space:
            return ["/" + n for n in self.names() if n.startswith(name)]
        cmd = self.get(name)
        if cmd is None or cmd.complete is None or ctx is None:
            return []
        words = arg.split(" ")
        prefix = words[-1]
        return [c for c in cmd.complete(ctx, arg) if c.startswith(prefix)]


class UsageError(Exception):
    """Raised by a handler for bad arguments; the registry adds the usage line."""


registry = Registry()
