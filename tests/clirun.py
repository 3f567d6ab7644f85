"""`lcchat.cli.main(argv)` run in this process, for tests that must see a change to cli.py.

tests/test_cli.py runs the installed command in a child process, as a person does; a
child imports the checkout, so mutation testing (benchmarks/mutation.py) cannot see a
mutant of cli.py through it. This harness calls main() itself, with:

- the arguments, stdin as bytes (a terminal or not), and stdout/stderr captured as text
  (each a terminal or not);
- the exit status whether main returns it or raises SystemExit (argparse's usage errors,
  --help, --version);
- HOME, the XDG directories and LCCHAT_HOME in the test's tmp_path (no user config);
- no model loaded and no real front-end: `open_session` gives a session over the fake
  model (lcchat/engine/fake.py) and records the profile it was given; the REPL and the
  TUI are stand-ins that record which one was started, with what, and return `status`;
- the terminal's size and TERM as the test sets them;
- signal handlers and the loggers (root, lcchat, lcchat.llama) put back as they were
  after each call.

    cli = Cli(monkeypatch, tmp_path)
    result = cli("-m", "x.gguf", "hello")        # stdin empty, not a terminal: pipe mode
    result = cli(stdin_tty=True)                  # a terminal: interactive (the stand-in)
"""

from __future__ import annotations

import io
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcchat.engine.fake import FakeModel, fake_session


# File descriptors no process has (os calls on them fail with EBADF, an OSError): what a
# captured stream answers to fileno(), so that code asking for its terminal size gets the
# test's size for a "terminal" and OSError otherwise, and nothing can write to the real
# fd 1 or 2 of the test process.
TTY_FD, NOT_TTY_FD = 1_000_001, 1_000_002


class _Stream(io.TextIOWrapper):
    """A text stream over bytes that says whether it is a terminal as the test chose."""

    def __init__(self, data: bytes = b"", *, tty: bool = False, encoding: str = "utf-8") -> None:
        super().__init__(io.BytesIO(data), encoding=encoding, errors="strict", newline=None,
                         write_through=True)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty

    def fileno(self) -> int:
        return TTY_FD if self._tty else NOT_TTY_FD

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8", "replace")  # type: ignore[attr-defined]


@dataclass
class Started:
    """A front-end the run started: "repl" or "tui", with what it was given."""

    mode: str
    profile: Any
    verbose: bool
    recorder: Any


@dataclass
class Result:
    status: int
    out: str
    err: str
    opened: list = field(default_factory=list)  # the profiles open_session was given
    sessions: list = field(default_factory=list)  # the fake sessions it returned
    started: list = field(default_factory=list)  # the front-ends started (Started)
    runs: list = field(default_factory=list)  # the runtime.Run objects made

    def err_line(self) -> str:
        """The one line of stderr a usage error or a failure gives (and checks it is one)."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        return lines[0]


class Cli:
    """Runs lcchat.cli.main in-process; see the module's docstring."""

    def __init__(self, monkeypatch, tmp_path: Path) -> None:
        self.monkeypatch = monkeypatch
        self.replies: list[list[str]] = []  # what the fake model says, reply by reply
        self.status = 0  # what the stand-in REPL or TUI returns
        self.size: tuple[int, int] | None = (80, 24)  # the terminal's size; None: not a terminal
        self.open_error: BaseException | None = None  # raised by open_session, when set
        self.on_open: Any = None  # called with the profile when the session opens, when set
        home = tmp_path / "home"
        for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            path = home if name == "HOME" else home / name.lower()
            path.mkdir(parents=True, exist_ok=True)
            monkeypatch.setenv(name, str(path))
        monkeypatch.setenv("LCCHAT_HOME", str(tmp_path / "lcchat-home"))
        monkeypatch.setenv("TERM", "xterm")
        monkeypatch.setenv("COLUMNS", "80")
        for name in ("NO_COLOR", "LCCHAT_NO_HISTORY", "LINES"):
            monkeypatch.delenv(name, raising=False)
        self._result: Result | None = None
        monkeypatch.setattr("lcchat.engine.session.open_session", self._open_session)
        monkeypatch.setattr("lcchat.repl.app.run_repl", self._front_end("repl"))
        monkeypatch.setattr("lcchat.tui.app.run_tui", self._front_end("tui"))
        monkeypatch.setattr(os, "get_terminal_size", self._terminal_size)
        from lcchat import runtime

        harness = self

        class Run(runtime.Run):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, **kwargs)
                assert harness._result is not None
                harness._result.runs.append(self)

        monkeypatch.setattr(runtime, "Run", Run)

    # ------------------------------------------------------------ stand-ins

    def _open_session(self, profile, *, on_progress=None, cancel=None):
        assert self._result is not None
        self._result.opened.append(profile)
        if self.on_open is not None:
            self.on_open(profile)
        if self.open_error is not None:
            raise self.open_error
        session = fake_session(FakeModel(replies=[list(r) for r in self.replies]), profile)
        self._result.sessions.append(session)
        return session

    def _front_end(self, mode: str):
        def run(profile, *, open_session, recorder=None, verbose=False, **_):
            assert self._result is not None
            self._result.started.append(Started(mode, profile, verbose, recorder))
            return self.status

        return run

    def _terminal_size(self, fd: int = 1) -> os.terminal_size:
        if self.size is None or fd != TTY_FD:
            raise OSError("not a terminal")
        return os.terminal_size(self.size)

    # ------------------------------------------------------------ running

    def __call__(self, *argv: str, stdin: bytes | None = b"", stdin_tty: bool = False,
                 stdout_tty: bool = False, stderr_tty: bool = False, encoding: str = "utf-8",
                 from_sys_argv: bool = False) -> Result:
        """main(argv) with this stdin (None: no stdin at all); the result once it returns.
        `encoding`: stdout's and stderr's (as a C locale would make them: "ascii").
        from_sys_argv: main() reads the arguments from sys.argv, as the console script does."""
        from lcchat import cli

        result = self._result = Result(status=-1, out="", err="")
        out, err = _Stream(tty=stdout_tty, encoding=encoding), _Stream(tty=stderr_tty, encoding=encoding)
        stdin_stream = None if stdin is None else _Stream(stdin, tty=stdin_tty)
        handlers = {sig: signal.getsignal(sig) for sig in _signals()}
        loggers = {name: _logger_state(name) for name in ("", "lcchat", "lcchat.llama")}  # "": the root
        try:
            with self.monkeypatch.context() as m:
                m.setattr(sys, "stdin", stdin_stream)
                m.setattr(sys, "stdout", out)
                m.setattr(sys, "stderr", err)
                # main(argv) must not read sys.argv: it holds other words unless the test wants it read
                m.setattr(sys, "argv", ["lcchat", *argv] if from_sys_argv else ["lcchat", "--not-these"])
                try:
                    status = cli.main() if from_sys_argv else cli.main(list(argv))
                except SystemExit as exit_:
                    code = exit_.code
                    if code is not None and not isinstance(code, int):
                        print(code, file=err)
                        code = 1
                    status = code or 0
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            for name, state in loggers.items():
                _restore_logger(name, state)
        result.status = status
        result.out, result.err = out.text(), err.text()
        return result


def _signals() -> list[int]:
    return [getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name)]


def _logger_state(name: str) -> tuple:
    logger = logging.getLogger(name)
    return list(logger.handlers), logger.level, logger.propagate


def _restore_logger(name: str, state: tuple) -> None:
    logger = logging.getLogger(name)
    logger.handlers[:] = state[0]
    logger.setLevel(state[1])
    logger.propagate = state[2]


# ---------------------------------------------------------------- the command-line interface, as data

INTERFACE = Path(__file__).with_name("cli_interface.json")


def interface() -> dict:
    """Every flag of `lcchat`, `lcchat profiles` and `lcchat history` as the parsers define it (names,
    metavar, help, type, choices, default, group), in a form that does not depend on the
    Python version's help layout. tests/cli_interface.json holds the reviewed copy;
    `python -m tests.clirun` writes it again after a deliberate change."""
    from lcchat import cli
    from lcchat.store import cli as history

    return {"lcchat": _parser(cli.build_parser()), "lcchat profiles": _parser(cli.build_profiles_parser()),
            "lcchat history": _parser(history.build_parser())}


def _parser(parser) -> dict:
    import argparse

    groups = []
    for group in parser._action_groups:
        actions = []
        for action in group._group_actions:
            entry = {
                "flags": list(action.option_strings), "dest": action.dest, "kind": type(action).__name__,
                "metavar": action.metavar, "help": action.help, "nargs": action.nargs, "const": action.const,
                "default": action.default, "type": getattr(action.type, "__name__", action.type),
                "choices": list(action.choices) if action.choices is not None and not isinstance(
                    action, argparse._SubParsersAction) else None,
            }
            if action.option_strings or isinstance(action, argparse._SubParsersAction):
                entry["required"] = action.required  # (a "*" positional's changed in Python 3.13)
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                entry["commands"] = {name: {"help": helps.get(name), **_parser(sub)}
                                     for name, sub in action.choices.items()}
            if action.option_strings and "version" in action.option_strings[-1]:
                entry["version"] = action.version  # type: ignore[attr-defined]
            actions.append(entry)
        groups.append({"title": group.title, "description": group.description, "actions": actions})
    exclusive = [[a.dest for a in g._group_actions] for g in parser._mutually_exclusive_groups]
    return {"prog": parser.prog, "description": parser.description, "epilog": parser.epilog,
            "class": type(parser).__name__, "groups": groups, "exclusive": exclusive}


if __name__ == "__main__":
    import json

    INTERFACE.write_text(json.dumps(interface(), indent=1, ensure_ascii=False, default=repr) + "\n",
                         encoding="utf-8")
    print(f"wrote {INTERFACE}")
