"""The plain REPL: a prompt-toolkit prompt, the shared slash commands, streamed replies.

`run_repl(profile, open_session=...)` is what `lcchat --repl` runs (lcchat/runtime.py
gives it the opener and the run's Recorder): it loads the model, then hands the session
to `Repl`, which tests build directly with a fake session, a pipe input and a StringIO
output. The loop catches everything per turn: a failed turn is one red line, never a
traceback, and the chat goes on.
"""

from __future__ import annotations

import logging
import os
import shutil
import textwrap
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from prompt_toolkit import PromptSession
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.output import ColorDepth, Output
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.styles import Style

from lcchat import editor
from lcchat.commands import builtin  # noqa: F401 - declares the commands
from lcchat.commands.actions import Clear, Copy, Edit, Exit, Generate, Settings, Task, Theme
from lcchat.commands.parse import CommandLine, parse_line
from lcchat.commands.registry import Context, FrontState, Registry, registry as default_registry
from lcchat.engine.events import Event
from lcchat.engine.protocol import server_of
from lcchat.errors import EXIT_INTERRUPTED, EXIT_OK, LcchatError
from lcchat.textsafe import clean
from lcchat.repl.completer import SlashCompleter
from lcchat.repl.keybindings import build_key_bindings, strip_block
from lcchat.repl.render import Printer, is_dumb, osc52
from lcchat.repl.terminal import sigint_ignored
from lcchat.repl.reply import ReplyPlayer, ReplyView
from lcchat.repl.toolbar import Figures, toolbar_text

if TYPE_CHECKING:
    from lcchat.engine.session import ChatSession
    from lcchat.store.recorder import Recorder

log = logging.getLogger("lcchat.repl")

PROMPT = ">>> "
CONTINUATION = "... "
QUIT_HINT = "Press Ctrl+D or type /exit to quit."
HISTORY_FILE = "repl_history"
KEYS = ("Enter sends · Alt+Enter or Ctrl+J adds a line · \"\"\" starts and ends a block · "
        "Ctrl+C stops a reply · Ctrl+D leaves")  # as /help lists them


class PrivateFileHistory(FileHistory):
    """prompt-toolkit's FileHistory in a file only the user can read (mode 0600), in a
    directory only the user can enter (0700): prompts may hold private text."""

    def __init__(self, filename: str | os.PathLike[str]) -> None:
        path = Path(filename)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
        super().__init__(str(path))


def history_path() -> Path:
    from lcchat.paths import data_dir

    return data_dir() / HISTORY_FILE


class Repl:
    """One interactive chat over `session` (an engine.session.ChatSession).

    input/output are prompt-toolkit's (None: the terminal). recorder: the run's
    store.recorder.Recorder, for the commands (None: they attach one when first needed;
    one whose `record` is False: --no-history). history: a History, a path,
    or None for the default file in the data dir. live_toolbar: draw the status line while
    replies stream (None: when the output is a real, non-dumb terminal).
    """

    def __init__(self, session: ChatSession, *, input: Input | None = None, output: Output | None = None,
                 state: FrontState | None = None, registry: Registry | None = None, recorder: Recorder | None = None,
                 history: History | str | os.PathLike[str] | None = None, monitor: object = "auto",
                 live_toolbar: bool | None = None, toolbar_every: float = 1.0,
                 env: dict[str, str] | None = None) -> None:
        from prompt_toolkit.input import create_input
        from prompt_toolkit.output import create_output

        self.session = session
        self.input = input or create_input()
        self.output = output or create_output()
        self.env = env
        ui = session.profile.ui
        self.state = state or FrontState(stream=ui.stream, vi_mode=ui.vi_mode, theme=ui.theme, keys=KEYS)
        self.registry = registry or default_registry
        self.ctx = Context(session, self.state, recorder=recorder)
        self.printer = Printer(self.output)
        self.dumb = is_dumb(self.output)
        if monitor == "auto":
            monitor = _open_monitor()
        self.figures = Figures(monitor)  # type: ignore[arg-type]
        if live_toolbar is None:
            live_toolbar = isinstance(self.output, Vt100_Output) and not self.dumb and _is_tty(self.output)
        self.player = ReplyPlayer(session, self.printer, figures=self.figures, live_toolbar=live_toolbar,
                                  input_fd=_fileno(self.input), toolbar_every=toolbar_every)
        self.startup_warnings: list[str] = []
        if history is None and recorder is not None and not recorder.record:
            history = InMemoryHistory()  # --no-history: what is typed is not written either
        elif history is None or not isinstance(history, History):
            path = history_path() if history is None else Path(history)
            try:
                history = PrivateFileHistory(path)
            except OSError as exc:  # LCCHAT_HOME a file, a read-only disk: carry on
                history = InMemoryHistory()
                self.startup_warnings.append(f"cannot keep the input history in {path} "
                                             f"({exc.strerror or exc}); it is kept in memory for this session")
        self.history = history
        self.prompt = self._make_prompt()

    # ------------------------------------------------------------ the prompt

    def _make_prompt(self) -> PromptSession:
        colour = self.printer.colour
        style = Style.from_dict({
            "prompt": "bold" if self.printer.attributes else "",
            "bottom-toolbar": "reverse" if self.printer.attributes else "noreverse",
            "bottom-toolbar.text": "",
            "completion-menu.completion": "reverse" if not colour else "bg:#444444 #ffffff",
            "completion-menu.completion.current": "noreverse bold" if not colour else "bg:#00afaf #000000",
        })
        return PromptSession(
            input=self.input,
            output=self.output,
            history=self.history,
            completer=SlashCompleter(self.registry, lambda: self.ctx),
            complete_while_typing=Condition(lambda: self.prompt.default_buffer.text.startswith("/")),
            reserve_space_for_menu=6,
            key_bindings=build_key_bindings(),
            prompt_continuation=lambda width, line, wrap: CONTINUATION.rjust(width),
            bottom_toolbar=None if self.dumb else self._bottom_toolbar,
            enable_open_in_editor=True,
            enable_suspend=True,
            style=style,
            include_default_pygments_style=False,
            color_depth=None if colour else ColorDepth.DEPTH_1_BIT,
            mouse_support=False,
        )

    def _bottom_toolbar(self) -> str:
        s = self.session
        try:
            width = self.output.get_size().columns
        except Exception:  # noqa: BLE001
            width = 80
        return toolbar_text(stats=s.last_stats, snapshot=self.figures.snapshot(), context_used=s.context_used,
                            context_size=s.context_size, width=max(width, 1),
                            remote=bool(server_of(s.model)))

    def read(self) -> str:
        """One message or command from the user. KeyboardInterrupt: Ctrl+C on an empty
        line; EOFError: Ctrl+D."""
        self.prompt.editing_mode = EditingMode.VI if self.state.vi_mode else EditingMode.EMACS
        message = FormattedText([("class:prompt", PROMPT)])
        return self.prompt.prompt(message)

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        """Chat until /exit or Ctrl+D; returns the exit status."""
        for warning in self.startup_warnings:
            self.printer.warning(warning)
        for notice in self.session.notices:
            self.printer.notice(notice)
        while True:
            try:
                line = self.read()
            except KeyboardInterrupt:
                self.printer.dim(QUIT_HINT)
                continue
            except EOFError:
                return EXIT_OK
            try:
                if not self.handle(line):
                    return EXIT_OK
            except KeyboardInterrupt:
                self.printer.line("Interrupted.", "yellow")
            except LcchatError as exc:
                self.printer.error(str(exc))
            except Exception as exc:  # one failed turn must not end the chat
                log.debug("turn failed", exc_info=True)
                self.printer.error(f"internal error: {type(exc).__name__}: {exc} (run with -v for details)")

    def handle(self, line: str) -> bool:
        """Act on one line from the prompt (parse_line's rule). False means leave."""
        parsed = parse_line(line)
        if isinstance(parsed, CommandLine):
            return self.command(parsed)
        text = strip_block(parsed.text)  # a """ block is always a message, even one starting with /
        if not text.strip():
            return True
        self.send(text)
        return True

    def send(self, text: str) -> ReplyView:
        return self.reply(lambda: self.session.send(text))

    def reply(self, produce: Callable[[], Iterator[Event]]) -> ReplyView:
        return self.player.play(produce, stream=self.state.stream, show_thinking=self.state.show_thinking)

    def interrupt(self) -> bool:
        """What Ctrl+C does while a reply streams (callable from any thread)."""
        return self.player.interrupt()

    # ------------------------------------------------------------ commands

    def command(self, command: CommandLine) -> bool:
        """Run a command and do what its action asks. False means leave."""
        result = self.registry.run(self.ctx, command)
        show = self.printer.result
        match result.action:
            case Exit():
                return False
            case Clear():
                self.printer.clear_screen()  # before the text, which says it was cleared
                show(result)
            case Copy(text):
                self.printer.raw(osc52(text))
                show(result)
            case Edit(initial):
                show(result)
                self.edit(initial)
            case Generate(produce):  # a reply: /retry
                show(result)
                self.player.play(produce, stream=self.state.stream, show_thinking=self.state.show_thinking)
            case Task() as task:  # long work: /quant, /load
                show(result)
                self.player.play(task, stream=self.state.stream, doing=f"{task.what}…")
            case Theme():
                show(result)
                self.printer.dim("Themes change the TUI's look; the REPL has none.")
            case Settings() | None:  # stream and vi mode are read from self.state before each reply and prompt
                show(result)
        return True

    def edit(self, initial: str = "") -> None:
        """/vim: the saved text is sent; an empty file cancels."""
        text = editor.edit(initial, env=self.env, run=_run_editor)
        if not text:
            self.printer.dim("Nothing was written; nothing was sent.")
            return
        lines = text.split("\n")
        shown = [PROMPT + lines[0], *(CONTINUATION + more for more in lines[1:])]
        self.printer.line("\n".join(shown), "dim")
        self.send(text)


def _run_editor(argv: list[str]) -> int:
    import subprocess

    with sigint_ignored():  # Ctrl+C in the editor must not leave it running behind the REPL
        return subprocess.call(argv)


def _open_monitor():
    try:
        from lcchat.engine.monitor import Monitor

        return Monitor()
    except Exception:  # no psutil figures: the toolbar shows what it can
        log.debug("no monitor", exc_info=True)
        return None


def _fileno(inp: Input) -> int | None:
    try:
        return inp.fileno()
    except Exception:  # noqa: BLE001
        return None


def _is_tty(output: Output) -> bool:
    stdout = getattr(output, "stdout", None)
    try:
        return bool(stdout is not None and stdout.isatty())
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------- lcchat --repl


def run_repl(profile, *, open_session: Callable[..., object], recorder: Recorder | None = None, verbose: bool = False) -> int:
    """Load the profile's model with `open_session(cancel=, on_event=)` (runtime.Run.open)
    and chat in the terminal; returns the exit status."""
    from lcchat.engine.worker import run_cancellable

    remote = profile.backend.url  # --remote: a server runs the model (engine/remote.py)
    name = clean(remote or (Path(profile.model.path).name if profile.model.path else profile.name))
    err = sys.stderr
    print(f"loading {name}…", file=err, flush=True)
    started = time.perf_counter()
    from lcchat.pipe import ProgressLine

    reading = ProgressLine(err, time.monotonic)  # "reading 1,729 tokens of history… 37%" (-C)
    try:
        session = run_cancellable(lambda cancel: open_session(cancel=cancel, on_event=reading.update))
    except KeyboardInterrupt:
        reading.erase()
        print("loading cancelled", file=err, flush=True)
        return EXIT_INTERRUPTED
    reading.erase()
    seconds = float(session.model.describe().get("load_s") or 0) or (time.perf_counter() - started)
    done = f"connected to {clean(str(session.model.path))} at {name}" if remote else f"loaded {name}"
    banner = f"{done} in {seconds:.1f} s · /help lists the commands · Ctrl+D leaves"
    # Printed before the REPL's own printer exists: wrap it between words here, or the terminal
    # cuts it mid-word at 80 columns ("Ctr" / "l+D").
    width = shutil.get_terminal_size((80, 24)).columns
    print(textwrap.fill(banner, width=max(width - 1, 20), break_long_words=False, break_on_hyphens=False),
          file=err, flush=True)
    try:
        repl = Repl(session, recorder=recorder)
        return repl.run()
    finally:
        try:
            session.close()  # the store's hooks keep the KV state, then the model is freed
        except Exception:
            log.debug("closing the session failed", exc_info=True)
