"""The composition root: one chat run, put together in one place.

cli.py parses the arguments and picks the mode; a `Run` then makes what the run is made
of and hands it on:

    Run(profile, ...)      the recording (store/recording.py: the conversation to continue,
                           checked before anything loads, and the Recorder) and the
                           SIGHUP/SIGTERM handling (signals.py), both owned by the run
    Run.open(...)          opens the session (engine.session.open_session), binds the
                           Recorder to it (with -C, restores the conversation) and tells the
                           signal handling which session to stop
    Run.interactive(mode)  hands the opener, the Recorder and the signal handling to the
                           REPL or the TUI, which open the session their own way (a
                           progress line, a loading screen) and give the Recorder to the
                           commands through their context
    Run.answer(text)       pipe and one-shot mode: opens, answers, keeps what is kept, and
                           exits 128 + the signal after SIGHUP/SIGTERM

Nothing here is global: the engine knows nothing of the store, the store nothing of
signals, and the front-ends get what they use as arguments.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from lcchat.engine.events import Event
from lcchat.signals import Signals


class Run:
    """One chat run of `profile`. continue_ref: None (a new conversation), "" (the
    profile's last one), an id or a name; InputError for one that does not exist.
    interactive: a REPL or TUI session (else one answer, pipe mode)."""

    def __init__(self, profile: Any, *, continue_ref: str | None = None, interactive: bool,
                 no_history: bool = False, save_state: bool = False) -> None:
        from lcchat.store.recording import ChatRecording, history_enabled

        self.profile = profile
        self.recording = ChatRecording(profile, continue_ref, interactive=interactive,
                                       record=history_enabled(profile, no_history=no_history), save_state=save_state)
        self.signals = Signals("interactive" if interactive else "pipe")
        self.session: Any = None

    @property
    def recorder(self) -> Any:
        """The store's Recorder for this run (unbound until the session is open)."""
        return self.recording.recorder

    def open(self, *, on_progress: Callable[[float], None] | None = None, cancel: Any = None,
             on_event: Callable[[Event], None] | None = None) -> Any:
        """Open the session and attach what the run adds to it. on_progress gets the
        load's fraction, on_event the Progress of re-reading a continued conversation;
        `cancel` stops the load (or the re-reading)."""
        from lcchat.engine import session as engine_session

        session = engine_session.open_session(self.profile, on_progress=on_progress, cancel=cancel)
        try:
            self.recording.opened(session, cancel=cancel, on_event=on_event)
        except BaseException:
            session.speculation.close()
            session.model.close()
            raise
        self.signals.watch(session)
        self.session = session
        return session

    def interactive(self, mode: str, *, verbose: bool = False) -> int:
        """Chat in the REPL (`mode` "repl") or the TUI ("tui"); returns the exit status."""
        self.signals.install()
        if mode == "tui":
            from lcchat.tui.app import run_tui

            return run_tui(self.profile, open_session=self.open, recorder=self.recorder, signals=self.signals,
                           verbose=verbose)
        from lcchat.repl.app import run_repl

        return run_repl(self.profile, open_session=self.open, recorder=self.recorder, verbose=verbose)

    def answer(self, text: str, *, as_json: bool = False, show_prompt: bool = False, verbose: bool = False,
               reasoning: bool = False) -> int:
        """Pipe and one-shot mode: answer `text` (or, with show_prompt, print its prompt;
        with reasoning, a reasoning model's thinking goes to stderr) unless SIGHUP/SIGTERM came first, keep the turn (and the KV state with
        --save-state), and return the exit status (128 + the signal after one)."""
        from lcchat import pipe
        from lcchat.engine.worker import run_cancellable

        self.signals.install()
        session = run_cancellable(lambda cancel: self.open(cancel=cancel))
        status = 0
        try:
            if self.signals.received is None:
                if show_prompt:
                    status = _show_prompt(session, text)
                else:
                    status = pipe.run(session, text, as_json=as_json, verbose=verbose, reasoning=reasoning)
        finally:
            self.recording.close()
        return self.signals.exit_status(status)


def _show_prompt(session: Any, text: str) -> int:
    from lcchat.engine import prompt_view
    from lcchat.errors import EXIT_OK

    print(prompt_view.describe(session, prompt_view.preview(session, text)), file=sys.stdout)
    return EXIT_OK
