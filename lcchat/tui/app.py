"""The Textual front-end: transcript, input box, live panels, themes.

The app gets what it depends on through make_app(): a session factory (the real one loads
the model; tests pass a fake session), the run's Recorder and signal handling (from
lcchat/runtime.py), a system monitor, an editor runner and the theme directories.
Everything slow runs in thread workers: loading the model, and one kind of
background job (jobs.py) for both a reply and a Task (/quant, /load). The threads post
the messages of messages.py; the UI thread renders them. Themes are the Theming mixin
(theming.py). Slash commands come from the shared registry (lcchat.commands), as in the
REPL, and their actions are handled in one match (run_command).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Markdown

from lcchat.commands import (
    Clear, CommandLine, Context, Copy, Edit, Exit, FrontState, Generate, Settings, Task, Theme, parse_line, registry,
)
from lcchat.commands.advice import phrase
from lcchat.engine.events import Done, Error, Event, Notice, Progress, Stats, Thinking, Token
from lcchat.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK
from lcchat.signals import WAIT_S as SIGNAL_WAIT_S
from lcchat.signals import Signals
from lcchat.textsafe import clean
from lcchat.tui import themes as theme_files
from lcchat.tui.jobs import Job, run_job
from lcchat.tui.messages import JobEnded, JobEvent, LoadEvent, Loaded, LoadFailed, LoadProgress
from lcchat.tui.pacing import FramePacer
from lcchat.tui.theming import Theming
from lcchat.tui.palette import Palette, SlashCommands
from lcchat.tui.panels import Dashboard, MonitorLike
from lcchat.tui.prompt import PromptInput
from lcchat.tui.transcript import AssistantTurn, LoadingLine, Transcript

if TYPE_CHECKING:
    from lcchat.config.schema import Profile
    from lcchat.store.recorder import Recorder

log = logging.getLogger("lcchat.tui")

SessionFactory = Callable[..., Any]  # (on_progress=, cancel=) -> ChatSession
EditorRunner = Callable[[str], "str | None"]

GIL_SWITCH_S = 0.0005
WIDE_MIN = (100, 28)  # columns, lines from which the panels show instead of the status line
DEFAULT_THEME = "dark"
HINTS_IDLE = "Enter send · Ctrl+J newline · Ctrl+P commands · Ctrl+Q quit"
HINTS_IDLE_SHORT = "Enter send · Ctrl+P commands · Ctrl+Q quit"  # when the long one would be cut
HINTS_BUSY = "generating · Esc or Ctrl+C stops"
NOT_RECORDED = "not recorded"
KEYS = ("Enter sends · Ctrl+J or Shift+Enter adds a line · Tab completes · Up/Down recall earlier messages · "
        "Esc or Ctrl+C stops a reply · Ctrl+P commands · PageUp/PageDown scroll · Ctrl+Home/Ctrl+End "
        "top/bottom · Ctrl+Q quits")  # as /help lists them



# ---------------------------------------------------------------- the app


class LcchatApp(Theming, App[int]):
    TITLE = "lcchat"
    COMMANDS = App.COMMANDS | {SlashCommands}
    BINDINGS = [
        Binding("ctrl+c", "stop('ctrl+c')", "Stop", show=False, priority=True, id="stop"),
        Binding("escape", "stop('escape')", "Stop", show=False, id="stop-escape"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="quit"),
        Binding("pageup", "scroll_transcript('page_up')", show=False, priority=True, id="page-up"),
        Binding("pagedown", "scroll_transcript('page_down')", show=False, priority=True, id="page-down"),
        Binding("ctrl+home", "scroll_transcript('home')", show=False, id="transcript-top"),
        Binding("ctrl+end", "scroll_transcript('end')", show=False, priority=True, id="transcript-end"),
    ]
    DEFAULT_CSS = App.DEFAULT_CSS + """
    Screen { layout: vertical; }
    """

    def __init__(self, session_factory: SessionFactory, *, profile: Profile | None = None, monitor: MonitorLike | None = None,
                 theme: str | None = None, theme_dirs: list[Path] | None = None,
                 editor: EditorRunner | None = None, cursor_blink: bool = True, verbose: bool = False,
                 recorder: Recorder | None = None, signals: Signals | None = None) -> None:
        super().__init__()
        self.session_factory = session_factory
        self.recorder = recorder  # for the commands; None: they attach one when first needed
        self.signals = signals or Signals("interactive")  # the run's; told of the signals this app handles
        self.profile = profile
        self.monitor = monitor
        self.session: Any = None
        self.verbose = verbose
        self.cursor_blink = cursor_blink
        self._editor = editor
        self._theme_dirs = theme_dirs if theme_dirs is not None else theme_files.default_dirs()
        self._theme_paths: dict[str, Path] = {}
        ui = profile.ui if profile is not None else None
        self._wanted_theme = theme or (ui.theme if ui is not None else None) or DEFAULT_THEME
        self.front = FrontState(keys=KEYS, theme=DEFAULT_THEME, stream=ui.stream if ui is not None else True)
        self.busy = False
        self.load_error: str | None = None
        self.load_exception: BaseException | None = None
        self.exit_code = EXIT_OK
        self._turn: AssistantTurn | None = None
        self._pacer, self._ui_mark = FramePacer(), 0.0  # when the reply thread hands tokens over
        self._task_line = None
        self._streaming = True
        self._final_stats: Stats | None = None
        self._done_seen = False
        self._reply_idle = threading.Event()
        self._reply_idle.set()
        self._load_cancel = threading.Event()
        self._load_done = threading.Event()
        self._loading: LoadingLine | None = None
        self._quitting = False
        self._signalled: int | None = None  # SIGINT/SIGTERM/SIGHUP from outside, once one came
        self._old_handlers: dict[int, Any] = {}
        self.startup_notices: list[tuple[str, str]] = []
        self.lines_handled = 0  # input lines dealt with (tests wait on it)
        self._send_when_loaded = False  # a message was submitted while the model loaded
        self._reading_history = False  # the model is loaded; a continued conversation is being re-read
        self._sending: tuple[str, int] | None = None  # the message in flight, and the history length before it

    def on_unmount(self) -> None:
        sys.setswitchinterval(getattr(self, "_switch_interval", 0.005))
        self._restore_signal_handlers()

    # ------------------------------------------------------------ signals from outside

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

    def _install_signal_handlers(self) -> None:
        """`kill -INT` acts as Ctrl+C followed by quitting, SIGTERM and SIGHUP as the
        signal handling (lcchat/signals.py) makes them act elsewhere: the reply stops, the turn is saved
        (marked interrupted), and the app exits with 128 + the signal. The handlers run in
        the event loop (not as a KeyboardInterrupt or SystemExit thrown into it, which
        would leave the reply running or App._shutdown never awaited)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            try:
                self._old_handlers[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError, OSError):
                log.debug("cannot handle signal %s here", sig, exc_info=True)
                self._old_handlers.pop(sig, None)

    def _restore_signal_handlers(self) -> None:
        handlers, self._old_handlers = self._old_handlers, {}
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        for sig, old in handlers.items():
            try:
                if loop is not None:
                    loop.remove_signal_handler(sig)
                signal.signal(sig, old if old is not None else signal.SIG_DFL)
            except (RuntimeError, ValueError, OSError, TypeError):
                pass

    def _on_signal(self, signum: int) -> None:
        log.debug("signal %d: stopping the reply, saving the turn, leaving", signum)
        self.signals.noted(signum)
        if self._signalled is not None:  # a second one: leave now
            super().exit(128 + signum)
            return
        self._signalled = signum
        self.run_worker(self._stop_and_exit(signum), group="signal", exit_on_error=False)

    async def _stop_and_exit(self, signum: int) -> None:
        self._quitting = True
        if self.busy and self.session is not None:
            self.session.cancel()
            await asyncio.to_thread(self._reply_idle.wait, SIGNAL_WAIT_S)
        if self.session is None and not self._load_done.is_set():
            self._load_cancel.set()
            await asyncio.to_thread(self._load_done.wait, 5.0)
        self.exit(128 + signum)

    # ------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Transcript()
        yield Dashboard(self.monitor)
        prompt = PromptInput(completer=self._complete)
        prompt.cursor_blink = self.cursor_blink
        prompt.border_subtitle = HINTS_IDLE
        yield prompt

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def dashboard(self) -> Dashboard:
        return self.query_one(Dashboard)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    async def on_mount(self) -> None:
        # The reply thread needs the GIL for a few microseconds per token, between
        # llama_decode calls; with Python's default 5 ms switch interval it can wait that
        # long behind the UI's rendering on every token (measured: 0.87x pipe mode's speed;
        # 0.93x at 0.5 ms). See benchmarks/RESULTS.md.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        self._install_signal_handlers()
        self._load_themes()
        error = self.apply_theme(self._wanted_theme)
        if error:
            self.startup_notices.append((error, "warning"))
            self.apply_theme(DEFAULT_THEME if DEFAULT_THEME in self._theme_paths else next(iter(self._theme_paths), ""))
        self._layout_for(self.size.width, self.size.height)
        self.prompt.focus()
        for text, level in self.startup_notices:
            await self.transcript.add_notice(text, level)
        what = self._model_label()
        self.dashboard.set_loading(what, self.profile.name if self.profile is not None else "")
        self._loading = await self.transcript.add_loading(f"Loading {what}...")
        self._load()

    def on_resize(self, event) -> None:
        self._layout_for(event.size.width, event.size.height)

    def _hints(self) -> str:
        if self.busy:
            return HINTS_BUSY
        room = self.size.width - 6  # the input box's corners and the space around the hints
        return HINTS_IDLE if len(HINTS_IDLE) <= room else HINTS_IDLE_SHORT

    def _layout_for(self, width: int, height: int) -> None:
        try:
            self.prompt.border_subtitle = self._hints()
        except NoMatches:  # before compose
            pass
        wide = width >= WIDE_MIN[0] and height >= WIDE_MIN[1]
        try:
            self.dashboard.set_class(wide, "-wide")
        except Exception:  # noqa: BLE001 - before compose
            pass

    def _model_label(self) -> str:
        profile = self.profile
        path = profile.model.path if profile is not None else ""
        return Path(path).name if path else ((profile.name if profile is not None else "") or "the model")

    def action_command_palette(self) -> None:
        if self.use_command_palette and not Palette.is_open(self):
            self.push_screen(Palette(id="--command-palette"))

    def get_system_commands(self, screen: Screen) -> Iterator[SystemCommand]:
        # lcchat's themes are switched with /theme; Textual's own theme list would bypass them.
        for command in super().get_system_commands(screen):
            if command.title != "Theme":
                yield command

    # ------------------------------------------------------------ render errors

    def _handle_exception(self, error: Exception) -> None:
        """Textual ends the app on any exception in a widget. One raised while drawing a
        reply's Markdown (a block's compose, mount or render) ends only the Markdown: the
        reply is shown as plain text, with a notice, and the chat goes on."""
        turn = self._turn_that_failed(error)
        if turn is None or turn.plain is not None:
            super()._handle_exception(error)
            return
        self.call_later(turn.show_plain, error)

    def _turn_that_failed(self, error: BaseException) -> AssistantTurn | None:
        """The reply whose Markdown raised `error`: the first widget inside an
        AssistantTurn's Markdown on the traceback."""
        tb = error.__traceback__
        while tb is not None:
            widget = tb.tb_frame.f_locals.get("self")
            if isinstance(widget, Widget):
                node, in_markdown = widget, False
                while node is not None:
                    in_markdown = in_markdown or isinstance(node, Markdown)
                    if isinstance(node, AssistantTurn):
                        return node if in_markdown else None
                    node = node.parent if isinstance(node.parent, Widget) else None
            tb = tb.tb_next
        return None

    # ------------------------------------------------------------ loading the model

    @work(thread=True, group="load", exit_on_error=False)
    def _load(self) -> None:
        try:
            session = self.session_factory(on_progress=self._report_load_progress, cancel=self._load_cancel)
        except BaseException as exc:  # noqa: BLE001 - shown as one line by run_tui
            self.post_message(LoadFailed(exc))
        else:
            self.post_message(Loaded(session))
        finally:
            self._load_done.set()

    def _report_load_progress(self, fraction: float) -> None:
        self.post_message(LoadProgress(fraction))

    def report_load_event(self, event: Event) -> None:
        """open_session's on_event (from the load thread)."""
        if isinstance(event, Progress) and event.what == "history":
            self._reading_history = True
        self.post_message(LoadEvent(event))

    def on_load_event(self, message: LoadEvent) -> None:
        event = message.event
        if self._loading is not None and isinstance(event, Progress) and event.total:
            pct = 100 * event.done // event.total
            self._loading.label.update(Text(f"Reading {event.total:,} tokens of history… {pct}% "
                                            "(Esc reads the rest with your next message)"))
            self._loading.progress(event.done / event.total)

    def on_load_progress(self, message: LoadProgress) -> None:
        if self._loading is not None:
            self._loading.progress(message.fraction)

    async def on_loaded(self, message: Loaded) -> None:
        self.session = message.session
        self._reading_history = False
        if self._loading is not None:
            await self._loading.remove()
            self._loading = None
        session = self.session
        describe = session.model.describe()
        self.dashboard.set_model(describe, session.profile.name)
        self.dashboard.set_context(session.context_used, session.context_size)
        if self.recorder is not None and not self.recorder.record:  # --no-history: said for as long as the app runs
            self.prompt.border_title = NOT_RECORDED
        if session.conversation.messages:  # continuing a saved conversation (-C)
            await self.show_conversation()
        for notice in session.notices:
            await self.transcript.add_notice(notice.text, notice.level)
        load_s = describe.get("load_s")
        took = f" in {load_s:.2f} s" if isinstance(load_s, (int, float)) else ""
        await self.transcript.add_notice(f"{describe.get('file', 'the model')} is loaded{took}. "
                                         "Type a message, or /help for the commands.", "info")
        if self._quitting:
            self.exit(0)
            return
        await self._send_waiting()

    async def on_load_failed(self, message: LoadFailed) -> None:
        from lcchat.errors import LcchatError

        exc = message.error
        if self._quitting:
            self.exit(0)
            return
        if isinstance(exc, LcchatError):
            self.load_error, self.exit_code = str(exc), exc.exit_code
        elif isinstance(exc, KeyboardInterrupt):
            self.load_error, self.exit_code = "interrupted", EXIT_INTERRUPTED
        else:
            self.load_error = f"internal error: {type(exc).__name__}: {exc} (run with -v for details)"
            self.exit_code = EXIT_FAILURE
        self.load_exception = exc
        self.exit(self.exit_code)

    # ------------------------------------------------------------ input

    async def on_prompt_input_submitted(self, message: PromptInput.Submitted) -> None:
        text = message.text
        try:
            if text.strip() and not await self.run_line(text):
                self.prompt.give_back(text)
        finally:
            self.lines_handled += 1

    def fill_prompt(self, text: str) -> None:
        """Put `text` in the input box (the palette does this for commands that take arguments)."""
        self.prompt.load_text(text)
        self.prompt.move_cursor((0, len(text)))
        self.prompt.focus()

    async def run_line(self, text: str) -> bool:
        """A line from the user: a slash command or a message (parse_line's rule). False if
        it was not taken (the input then keeps it)."""
        parsed = parse_line(text)
        if isinstance(parsed, CommandLine):
            await self.run_command(parsed)
            return True
        return await self.send(parsed.text)

    def _complete(self, text: str) -> list[str]:
        ctx = Context(self.session, self.front, recorder=self.recorder)
        try:
            return registry.completions(ctx, text)
        except Exception:  # a completer bug must not break typing
            log.debug("completion failed", exc_info=True)
            return []

    # ------------------------------------------------------------ replies

    async def send(self, text: str) -> bool:
        if self.session is None:
            if not self._send_when_loaded:
                await self.transcript.add_notice("The model is still loading; your message waits in the box and is "
                                                 "sent as soon as the model is ready.", "info")
            self._send_when_loaded = True
            return False
        if self.busy:
            await self.transcript.add_notice("A reply is being generated; Esc stops it. Your message is kept in the box.",
                                             "warning")
            return False
        self._sending = (text, len(self.session.conversation.messages))
        await self.transcript.add_user(text)
        self.transcript.scroll_end(animate=False)  # sending follows the reply, wherever the view was
        await self.start_reply(lambda: self.session.send(text))
        return True

    async def _send_waiting(self) -> None:
        """The model is ready: send what waited in the box while it loaded."""
        waiting, self._send_when_loaded = self._send_when_loaded, False
        text = self.prompt.text
        if waiting and text.strip():
            self.prompt.clear_input()
            if not await self.run_line(text):
                self.prompt.give_back(text)

    def _give_back_refused(self) -> None:
        """A message the session did not keep (too long for the context, say) goes back
        into the box, to be shortened, unless something new was typed meanwhile."""
        sending, self._sending = self._sending, None
        if sending is None or self.session is None:
            return
        text, before = sending
        if len(self.session.conversation.messages) <= before and not self.prompt.text.strip():
            self.prompt.give_back(text)

    async def start_reply(self, produce: Callable[[], Iterator[Event]]) -> None:
        self._turn = await self.transcript.start_reply()
        self._streaming = self.front.stream
        self._final_stats = None
        self._done_seen = False
        self._start_job(Job(produce))

    async def start_task(self, task: Task) -> None:
        if self.session is None or self.busy:
            await self.transcript.add_output("Wait for the reply to finish (Esc stops it).", error=True)
            return
        self._task_line = await self.transcript.add_loading(f"{task.what}…")
        self._start_job(Job(task, task))

    def _start_job(self, job: Job) -> None:
        self._set_busy(True)
        self._reply_idle.clear()
        self._pacer, self._ui_mark = FramePacer(), time.thread_time()  # the main thread's CPU clock
        self._job_worker(job)

    @work(thread=True, group="reply", exit_on_error=False)
    def _job_worker(self, job: Job) -> None:
        try:
            run_job(job, self.post_message, self.dashboard.post_message, self._pacer)
        finally:
            self._reply_idle.set()

    async def on_job_event(self, message: JobEvent) -> None:
        if message.job.task is None:
            await self._reply_event(message.event)
        else:
            await self._task_event(message.event)

    async def on_job_ended(self, message: JobEnded) -> None:
        turn, self._turn = self._turn, None
        line, self._task_line = self._task_line, None
        self.busy = False
        if self._quitting:
            self.exit(0)
            return
        try:
            if message.job.task is None:
                await self._reply_ended(turn)
            else:
                await self._task_ended(message.job.task, line)
        except NoMatches:  # the app is closing and its widgets are gone
            pass

    async def _reply_event(self, event: Event) -> None:
        turn = self._turn
        if turn is None:
            return
        if isinstance(event, Thinking):
            await turn.think(event.text, collapsed=not self.front.show_thinking)
        elif isinstance(event, Token):
            cpu = time.thread_time()  # the main thread's CPU since the last batch: its cost
            self._pacer.ui_cost(cpu - self._ui_mark)
            self._ui_mark = cpu
            if self._streaming:
                await turn.write(event.text)
            else:
                turn.end_thinking()
                turn.hold(event.text)
        elif isinstance(event, Stats):
            turn.thinking_stats(event)
            if event.final:
                self._final_stats = event
        elif isinstance(event, Progress):
            pct = 100 * event.done // event.total if event.total else 0
            turn.note.update(Text(clean(f"{event.what} {pct}%")))
        elif isinstance(event, Notice):
            # Said before the reply (dropped turns) goes above it; said after (max_tokens) below.
            # Either way it belongs to the reply, and goes when /retry or /undo remove it.
            turn.notices.append(await self.transcript.add_notice(phrase(event), event.level,
                                                                 before=None if turn.text else turn))
        elif isinstance(event, Error):
            turn.notices.append(await self.transcript.add_notice(phrase(event), "error"))
        elif isinstance(event, Done):
            self._done_seen = True
            stats = self._final_stats if event.finish_reason != "error" else None
            await turn.finish(event.finish_reason, event.text, stats)

    async def _reply_ended(self, turn: AssistantTurn | None) -> None:
        if turn is not None and not self._done_seen:
            await turn.finish("error", None, None)
        self._set_busy(False)
        await self._sync_transcript(unsent=True)
        self._give_back_refused()

    async def _task_event(self, event: Event) -> None:
        line = self._task_line
        if isinstance(event, Progress) and line is not None:
            line.label.update(Text(clean(f"{event.what} {event.done}/{event.total}")))
            line.progress(event.done / event.total if event.total else 0.0)
        elif isinstance(event, Notice):
            await self.transcript.add_notice(phrase(event), event.level)
        elif isinstance(event, Error):
            await self.transcript.add_notice(phrase(event), "error")

    async def _task_ended(self, task: Task, line: LoadingLine | None) -> None:
        if line is not None:
            await line.remove()
        self._set_busy(False)
        session = self.session
        self.dashboard.set_model(session.model.describe(), session.profile.name)  # a switch changes it
        if task.rebuild:
            await self.show_conversation()
        await self._sync_transcript()

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        prompt = self.prompt
        prompt.set_class(busy, "-busy")
        prompt.border_subtitle = self._hints()
        self.dashboard.set_generating(busy)

    async def _sync_transcript(self, *, unsent: bool = False) -> None:
        session = self.session
        if session is None:
            return
        conv = session.conversation
        await self.transcript.trim_turns(len(conv.messages), unsent=unsent)
        self.transcript.mark_forgotten(conv.window_start)
        self.dashboard.set_context(session.context_used, session.context_size)

    # ------------------------------------------------------------ commands

    async def run_command(self, command: CommandLine) -> None:
        ctx = Context(self.session, self.front, recorder=self.recorder)
        line = command.line
        try:
            result = registry.run(ctx, command)
        except Exception as exc:  # a failing command must not end the chat
            log.debug("command failed", exc_info=True)
            why = "the model is still loading" if self.session is None else f"{type(exc).__name__}: {exc}"
            await self.transcript.add_output(f"The command failed: {why}", error=True, line=line)
            return
        if isinstance(result.action, Clear):
            await self.transcript.clear()  # before the text, which says it was cleared
        if result.text or result.rows:
            await self.transcript.add_output(result.text, result.rows, error=result.error, line=line)
        match result.action:
            case Exit():
                await self.action_quit()
            case Edit(initial):
                await self._edit(initial)
            case Generate(produce):
                await self._generate(produce)
            case Task() as task:
                await self.start_task(task)
            case Copy(text):
                self.copy_to_clipboard(text)
            case Theme(name):
                error = self.apply_theme(name)
                if error:
                    await self.transcript.add_output(error, error=True)
            case Clear() | Settings() | None:
                pass  # done above, or FrontState.stream is read when each reply starts
        if not self.busy:  # a reply in flight changes the history itself; it syncs when it ends
            await self._sync_transcript()

    async def _generate(self, produce: Callable[[], Iterator[Event]]) -> None:
        if self.session is None or self.busy:
            await self.transcript.add_output("Wait for the reply to finish (Esc stops it).", error=True)
            return
        msgs = self.session.conversation.messages
        if msgs and msgs[-1].role == "assistant":
            await self.transcript.trim_turns(len(msgs) - 1)  # the reply being generated again
        await self.start_reply(produce)

    async def show_conversation(self) -> None:
        """Draw the session's conversation afresh (after /load, or when continuing one)."""
        transcript = self.transcript
        await transcript.clear()
        for message in self.session.conversation.messages:
            if message.role == "user":
                await transcript.add_user(message.content)
            else:
                turn = await transcript.start_reply()
                await turn.finish("interrupted" if message.interrupted else "stop", message.content, None)

    async def _edit(self, initial: str) -> None:
        from lcchat.editor import EditorError, edit
        from lcchat.tui.editor import terminal_handoff

        runner = self._editor or (lambda text: edit(text, run=terminal_handoff(self)))
        try:
            text = runner(initial)
        except EditorError as exc:
            await self.transcript.add_output(str(exc), error=True)
            return
        finally:
            self.refresh(layout=True)
        if not text:
            await self.transcript.add_output("The editor was left empty; nothing was sent.")
            return
        if not await self.send(text):
            self.fill_prompt(text)

    # ------------------------------------------------------------ keys

    def action_stop(self, key: str = "escape") -> None:
        if self.session is None and self._reading_history:
            self._load_cancel.set()  # stops only the re-reading: the next message reads the rest
            if self._loading is not None:
                self._loading.label.update("Stopping the history reading…")
            return
        if self.busy and self.session is not None:
            self.session.cancel()
            if self._turn is not None:
                self._turn.note.update("stopping...")
            return
        if key == "ctrl+c":
            prompt = self.prompt
            if prompt.has_focus and prompt.selected_text:
                self.copy_to_clipboard(prompt.selected_text)
                return
            self.notify("Nothing to stop. Ctrl+Q quits.", timeout=3)
        elif not self.prompt.has_focus:
            self.prompt.focus()

    async def action_quit(self) -> None:
        self._quitting = True
        if self.busy and self.session is not None:
            self.session.cancel()
            await asyncio.to_thread(self._reply_idle.wait, 5.0)
        if self.session is None and not self._load_done.is_set():
            self._load_cancel.set()
            await asyncio.to_thread(self._load_done.wait, 5.0)
        self.exit(self.exit_code if self.load_error else EXIT_OK)

    def exit(self, result: int | None = None, return_code: int = 0, message: Any = None) -> None:
        # However the app ends, nothing keeps working behind it: a load or a reply in flight is cancelled.
        if self._signalled is not None:  # after SIGINT/SIGTERM/SIGHUP, whichever path ends it: 128 + the signal
            result = 128 + self._signalled
        self._load_cancel.set()
        if self.busy and self.session is not None:
            self.session.cancel()
        super().exit(result, return_code, message)

    def action_scroll_transcript(self, where: str) -> None:
        transcript = self.transcript
        if where == "page_up":
            transcript.scroll_page_up(animate=False)
        elif where == "page_down":
            transcript.scroll_page_down(animate=False)
        elif where == "home":
            transcript.scroll_home(animate=False)
        else:
            transcript.scroll_end(animate=False)


# ---------------------------------------------------------------- entry points


def make_app(session_factory: SessionFactory, **options: Any) -> LcchatApp:
    """The app, with its dependencies: `session_factory(on_progress=, cancel=)` returns a
    ChatSession; options are LcchatApp's keyword arguments (profile, monitor, theme,
    theme_dirs, editor, cursor_blink, verbose, recorder, signals)."""
    return LcchatApp(session_factory, **options)


def run_tui(profile: Any, *, open_session: Callable[..., Any], recorder: Recorder | None = None,
            signals: Signals | None = None, verbose: bool = False) -> int:
    """Load the profile's model with `open_session(on_progress=, cancel=, on_event=)`
    (runtime.Run.open) and chat full-screen; returns the exit status."""
    import sys

    from lcchat.engine.monitor import Monitor

    def factory(on_progress=None, cancel=None):
        return open_session(on_progress=on_progress, cancel=cancel, on_event=app.report_load_event)

    try:
        monitor: MonitorLike | None = Monitor()
    except Exception:  # no psutil figures is not a reason to stop
        log.debug("no monitor", exc_info=True)
        monitor = None
    held = _hold_log_output()
    app = make_app(factory, profile=profile, monitor=monitor, verbose=verbose, recorder=recorder, signals=signals)
    try:
        result = app.run()
    finally:
        _release_log_output(held)
        _close_session(app)
    if app.load_error:
        exc = app.load_exception
        if verbose and exc is not None:
            import traceback

            print(clean("".join(traceback.format_exception(exc))), end="", file=sys.stderr)
        print(f"lcchat: {clean(app.load_error)}", file=sys.stderr)
        return app.exit_code
    return int(result or 0) if isinstance(result, int) else app.return_code or 0


def _close_session(app: LcchatApp) -> None:
    """Once the app has ended: let a reply still stopping finish being saved, then close the
    session (the store writes what is left and keeps the KV state; the model is freed)."""
    session = app.session
    if session is None:
        return
    session.cancel()
    app._reply_idle.wait(SIGNAL_WAIT_S)
    try:
        session.close()
    except Exception:  # leaving matters more
        log.debug("closing the session failed", exc_info=True)


def _hold_log_output() -> list[tuple[logging.StreamHandler, Any, Any]]:
    """While the TUI owns the terminal, log lines meant for stderr (with -v) are kept and
    printed after it exits, so they cannot scribble over the screen."""
    import io
    import sys

    held = []
    for name in ("lcchat", "lcchat.llama"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) in (sys.stderr, sys.stdout):
                buffer = io.StringIO()
                held.append((handler, handler.stream, buffer))
                handler.setStream(buffer)
    return held


def _release_log_output(held) -> None:
    seen = set()
    for handler, stream, buffer in held:
        handler.setStream(stream)
        if id(buffer) not in seen:
            seen.add(id(buffer))
            text = buffer.getvalue()
            if text:
                stream.write(text[-200_000:])
