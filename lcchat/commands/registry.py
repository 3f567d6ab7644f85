"""The one slash-command registry, shared by the REPL and the TUI.

Each command is declared once with its name, aliases, argument synopsis, help and an
argument completer, and returns a Result: data, never terminal output. What only a
front-end can do (leave, clear its screen, open an editor, stream a reply, write to the
clipboard) is asked for with Result.action, a typed value from actions.py, and each
front-end does it its own way. Whether a line is a command at all is parse.py's rule.

Adding a command is one place: a function declared here with @registry.command in the
module for its topic (imported by lcchat/commands/__init__.py). Only a new kind of action
also needs a case in each front-end's match.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from lcchat.commands.actions import Action
from lcchat.commands.parse import CommandLine, parse_line

@dataclass
class Result:
    text: str = ""  # plain text for the user (may hold simple Markdown)
    rows: list[tuple[str, str]] | None = None  # a two-column table, shown after text
    error: bool = False
    action: Action | None = None  # what the front-end does after showing the text


@dataclass
class FrontState:
    """Front-end settings that commands may read and change."""

    stream: bool = True
    vi_mode: bool = False
    theme: str = "dark"
    themes: list[str] = field(default_factory=list)  # names the front-end can show
    keys: str = ""  # the front-end's keys, as /help lists them
    show_thinking: bool = True  # a reasoning model's thinking as text; off: one live line (/think hide)


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

    def run(self, ctx: Context, command: CommandLine) -> Result:
        """Run a parsed command. Never raises for a user's mistake: it returns an error."""
        cmd = self.get(command.name)
        if cmd is None:
            hint = self.suggest(command.name)
            tip = f" Did you mean /{hint}?" if hint else ""
            return Result(f"Unknown command /{command.name}.{tip} /help lists them.", error=True)
        try:
            return cmd.handler(ctx, command.arg.strip())
        except UsageError as exc:
            return Result(f"{exc} Usage: {cmd.usage}", error=True)

    def dispatch(self, ctx: Context, line: str) -> Result:
        """Run a "/name args" line (tests and the palette); a line that parse_line reads as a
        message is an error here."""
        parsed = parse_line(line)
        if not isinstance(parsed, CommandLine):
            return Result(f"{line!r} is not a command.", error=True)
        return self.run(ctx, parsed)

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
