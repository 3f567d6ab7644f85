"""What one chat run keeps: the conversation to continue, and the Recorder.

The composition root (lcchat/runtime.py) makes a ChatRecording once the profile is known,
before the model is loaded: the conversation to continue (-C/--continue) is checked first,
so a wrong ID fails at once, and the Recorder exists from the start, so the front-end gets
it with everything else. When the session is open, `opened()` binds the Recorder to it and,
with --continue, restores the conversation and reads it into the KV cache (from the saved
KV state where it matches).

What is kept: with --no-history, LCCHAT_NO_HISTORY=1 or `[store] enabled = false`,
nothing (the Recorder's `record` is False and the front-ends say so); otherwise the text
of every turn, and the KV state only for interactive sessions and --save-state (a
one-shot call that nobody continues would leave megabytes behind for nothing).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from typing import TYPE_CHECKING, Callable

from lcchat.engine.events import Event, Notice, Progress
from lcchat.errors import InputError, LcchatError
from lcchat.store.db import Store
from lcchat.store.recorder import Recorder

if TYPE_CHECKING:
    from lcchat.config.schema import Profile

log = logging.getLogger("lcchat.store")


NOT_RECORDED = "this session is not recorded (--no-history): nothing of it is saved"


def history_enabled(profile: Profile, *, no_history: bool = False) -> bool:
    """False when --no-history, LCCHAT_NO_HISTORY (1, true, yes) or `[store] enabled = false`
    says to record nothing."""
    if no_history:
        return False
    if os.environ.get("LCCHAT_NO_HISTORY", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    return profile.store.enabled


class ChatRecording:
    """The recording of one run: `recorder` (unbound until `opened`) and, with -C, the
    conversation to continue (`resume_id`). Raises InputError for one that does not exist."""

    def __init__(self, profile: Profile, continue_ref: str | None, *, interactive: bool, store: Store | None = None,
                 record: bool = True, save_state: bool = False) -> None:
        from lcchat.config.sizes import parse_size

        self.store = store or Store()
        self.profile_name = profile.name
        self.interactive = interactive
        self.record = record
        self.keep_state = record and (interactive or save_state)
        text = profile.store.state_max
        self.state_max = parse_size(text) if text.strip() else None
        self.resume_id = self._target(continue_ref) if continue_ref is not None else None
        self.recorder = Recorder(None, self.store, on_warning=None if interactive else _print_warning,
                                 record=record, keep_state=self.keep_state, state_max=self.state_max)

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

    def opened(self, session, *, cancel=None, on_event: Callable[[Event], None] | None = None) -> Recorder:
        """Record `session` from now on; with -C, continue the conversation first. on_event
        is told the Progress of re-reading it (the front-end shows "reading 1,729 tokens of
        history, 37%"); `cancel` stops the re-reading (the rest is read with the next message)."""
        recorder = self.recorder
        recorder.bind(session)
        if not self.record and self.interactive:
            session.notices.append(Notice(NOT_RECORDED, "info"))
        if self.resume_id is None:
            return recorder
        for event in recorder.resume(self.resume_id, cancel=cancel):
            if isinstance(event, Progress):
                log.info("re-reading the history: %d/%d tokens", event.done, event.total)
                if on_event is not None:
                    on_event(event)
            elif isinstance(event, Notice):
                session.notices.append(event)
        return recorder

    def close(self) -> None:
        """Write what is left and keep the KV state (closing the session does it too)."""
        if self.recorder.session is not None:
            self.recorder.close()


def _print_warning(text: str) -> None:
    try:
        print(f"lcchat: warning: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
