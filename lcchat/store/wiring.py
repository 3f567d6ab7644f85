"""How the CLI records a chat, whichever front-end runs it.

`record_chat()` is called once the profile is known. It checks the conversation to
continue (-C/--continue) before anything is loaded, installs the SIGHUP/SIGTERM handlers,
and adds a hook to engine.session.on_open: when the front-end (pipe mode, the REPL, the
TUI) opens its session, the hook attaches a Recorder, and with --continue restores the
conversation and reads it into the KV cache (from the saved KV state where it matches).
The front-ends need not know about the store.

What is kept: with --no-history, LCCHAT_NO_HISTORY=1 or `[store] enabled = false`,
nothing (the session's `recorded` is False and the front-ends say so); otherwise the text
of every turn, and the KV state only for interactive sessions and --save-state (a
one-shot call that nobody continues would leave megabytes behind for nothing).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from typing import Callable

from lcchat.engine.events import Notice, Progress
from lcchat.errors import InputError, LcchatError
from lcchat.store import hangup
from lcchat.store.db import Store
from lcchat.store.recorder import Recorder, attach

log = logging.getLogger("lcchat.store")


NOT_RECORDED = "this session is not recorded (--no-history): nothing of it is saved"


def history_enabled(profile, *, no_history: bool = False) -> bool:
    """False when --no-history, LCCHAT_NO_HISTORY (1, true, yes) or `[store] enabled = false`
    says to record nothing."""
    if no_history:
        return False
    if os.environ.get("LCCHAT_NO_HISTORY", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    store = getattr(profile, "store", None)
    return bool(getattr(store, "enabled", True))


class ChatRecording:
    def __init__(self, profile, continue_ref: str | None, *, interactive: bool, store: Store | None = None,
                 record: bool = True, save_state: bool = False) -> None:
        from lcchat.config.sizes import parse_size

        self.store = store or Store()
        self.profile_name = str(getattr(profile, "name", "") or "")
        self.interactive = interactive
        self.record = record
        self.keep_state = record and (interactive or save_state)
        text = str(getattr(getattr(profile, "store", None), "state_max", "") or "")
        self.state_max = parse_size(text) if text.strip() else None
        self.recorder: Recorder | None = None
        self.session = None
        self.resume_id = self._target(continue_ref) if continue_ref is not None else None

    def _target(self, ref: str) -> int:
        try:
            if ref.strip():
                return self.store.resolve(ref)
            cid = self.store.last(self.profile_name)
        except sqlite3.Error as exc:
            raise LcchatError(f"cannot read the conversations in {self.store.path}: {exc}") from exc
        if cid is None:
            raise InputError(f"there is no saved conversation of profile {self.profile_name!r} to continue "
                             "(`lcchat history list` shows them; `-C ID` continues one)")
        return cid

    def opened(self, session, cancel=None) -> None:
        """The engine.session.on_open hook."""
        self.session = session
        warn = session.warn if self.interactive else _print_warning
        self.recorder = attach(session, self.store, on_warning=warn, record=self.record,
                               keep_state=self.keep_state, state_max=self.state_max)
        session.recorded = self.record
        if not self.record and self.interactive:
            session.notices.append(Notice(NOT_RECORDED, "info"))
        hangup.watch(session)
        if self.resume_id is None:
            return
        report = getattr(session, "report", None)
        for event in self.recorder.resume(self.resume_id, cancel=cancel):
            if isinstance(event, Progress):
                log.info("re-reading the history: %d/%d tokens", event.done, event.total)
                if report is not None:
                    report(event)  # the front-end shows it ("reading 1,729 tokens of history, 37%")
            elif isinstance(event, Notice):
                session.notices.append(event)

    def finish(self, run: Callable[[], int]) -> int:
        """Pipe mode: answer (unless SIGHUP/SIGTERM came first), keep the KV state, and
        return the exit status (128 + the signal after one)."""
        status = 0
        try:
            if hangup.received is None:
                status = run()
        finally:
            if self.recorder is not None:
                self.recorder.close()
        return hangup.exit_status(status)


def record_chat(profile, continue_ref: str | None, *, interactive: bool, no_history: bool = False,
                save_state: bool = False) -> ChatRecording:
    """Set up recording for the chat about to start (see the module's docstring).
    continue_ref: None (a new conversation), "" (the profile's last one), an id or a name.
    Raises InputError for a conversation that does not exist."""
    from lcchat.engine import session as session_module

    recording = ChatRecording(profile, continue_ref, interactive=interactive,
                              record=history_enabled(profile, no_history=no_history), save_state=save_state)
    hooks = session_module.on_open
    hooks[:] = [h for h in hooks if not getattr(h, "_lcchat_recording", False)]
    hooks.append(_marked(recording.opened))
    hangup.install("interactive" if interactive else "pipe")
    return recording


def _marked(hook):
    def opened(session, cancel=None):
        hook(session, cancel)

    opened._lcchat_recording = True  # type: ignore[attr-defined]
    return opened


def _print_warning(text: str) -> None:
    try:
        print(f"lcchat: warning: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
