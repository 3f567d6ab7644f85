"""The Recorder: writes a session's conversation to the store as it happens.

The user's message is written when it is sent (a kill -9 or an OOM kill mid-reply keeps
it), and the reply when the turn ends, an interrupted one included (the partial reply is
saved, marked interrupted): the Recorder is a ChatSession sent-hook and turn listener.
Each message is stamped with the system prompt, model file and quant type in force.
Each time it writes what changed since the last write, in one transaction: a new
message, a finished reply, a regenerated reply (/retry), an undone one. A write that
fails (read-only or full disk) never stops the chat: the user is warned once, and the
next write catches up with everything that is missing. When another process wrote to the same conversation meanwhile (the same
conversation continued in two terminals), this one goes on in a new conversation, so
neither overwrites the other.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import TYPE_CHECKING, Callable, Iterator

from lcchat.engine.chat import Message
from lcchat.engine.events import Done, Event, Notice
from lcchat.engine.generate import common_prefix
from lcchat.engine.protocol import server_of
from lcchat.store import kvstate
from lcchat.store.db import Store, StoredConversation, TurnSettings, UnknownConversation, now, one_line

if TYPE_CHECKING:
    from lcchat.engine.session import ChatSession

log = logging.getLogger("lcchat.store")

Row = tuple[str, str, bool, str]  # role, content, interrupted, reasoning


class Recorder:
    """Records one ChatSession. `on_warning(text)` is told once when saving fails
    (default: session.warn, which shows it after the turn).

    record=False (--no-history): nothing is written, no row and no state file; a stored
    conversation can still be loaded (read) to continue it privately.
    keep_state: save the KV state after turns and at close (interactive sessions, or
    --save-state); otherwise no state file is written. state_max: the cap in bytes on all
    states together (None: kvstate.default_cap()).

    `session` may be None: the composition root makes the Recorder before the model is
    loaded, hands it to the front-end, and binds it to the session once it is open."""

    def __init__(self, session, store: Store | None = None, *,
                 on_warning: Callable[[str], None] | None = None, owns_store: bool | None = None,
                 record: bool = True, keep_state: bool = True, state_max: int | None = None) -> None:
        self.session: ChatSession | None = None
        self.store = store or Store()
        self.record = record
        self.keep_state = keep_state and record
        self.state_max = state_max
        self._owns_store = store is None if owns_store is None else owns_store
        self._on_warning = on_warning
        self.on_warning: Callable[[str], None] = on_warning or log.warning
        self.conversation_id: int | None = None
        self.warnings: list[str] = []  # what the user was told (at most one)
        self.last_error: str | None = None
        self.restored_tokens = 0  # by the last load(): from the saved KV state
        self.state_found = "none"  # by the last load(): "used", "none" (pruned or never kept), "stale"
        self.state_warnings: list[str] = []  # a KV state that could not be saved (said once)
        self._rows: list[Row] = []  # what the database holds for conversation_id
        self._version: float | None = None  # its `updated` stamp when we last wrote
        self._system: str | None = None  # the system prompt written with it
        self._stats_seen = None
        self._lock = threading.RLock()
        self._fingerprint: tuple[object, str | None] | None = None  # (model, its fingerprint)
        self._kv_saved: tuple[int, str, list[int]] | None = None  # what the state file holds
        self._bytes_per_token = 0.0
        if session is not None:
            self.bind(session)

    def bind(self, session: ChatSession) -> None:
        """Record `session` from now on: its send hook, turn listener and close hook."""
        self.session = session
        self.on_warning = self._on_warning or session.warn
        self._stats_seen = session.last_stats
        session.listeners.append(self)
        session.on_send.append(self.sent)
        session.on_close.append(lambda _session: self.close())

    # ------------------------------------------------------------ the listener

    def __call__(self, session, user: Message, reply: Message) -> None:
        stats = session.last_stats if session.last_stats is not self._stats_seen else None
        self._stats_seen = session.last_stats
        if self.sync(reply=reply, stats=stats.as_json() if stats is not None else None) and self.keep_state:
            self.save_kv(every_turn=True)

    def sent(self, session, user: Message) -> None:
        """The session's on_send hook: the user's message is written before the reply starts."""
        self.sync()

    def sync(self, *, reply: Message | None = None, stats: dict | None = None) -> bool:
        """Write what changed in the conversation; False (after one warning) on failure.
        With record=False it writes nothing and says True."""
        if not self.record:
            return True
        conv = self.session.conversation
        messages = list(conv.messages)
        rows = [(m.role, m.content, bool(m.interrupted), m.reasoning) for m in messages]
        with self._lock:
            cid = self.conversation_id
            common = common_prefix(self._rows, rows)
            if cid is not None and common == 0 and self._rows:
                cid = None  # /clear: a new conversation; the old one stays as it was
            if cid is None and not rows:
                return True
            if cid is not None and common == len(rows) == len(self._rows) and conv.system == self._system:
                return True
            stamp = now()
            try:
                with self.store.transaction() as db:
                    if cid is not None and Store.version(db, cid) != self._version:
                        log.info("conversation %s changed elsewhere; going on in a new one", cid)
                        cid = None
                    if cid is None:
                        cid = Store.create(db, profile=self._profile(), model=self._model(), system=conv.system, now=stamp)
                        common = 0
                    out = [(m.role, m.content, bool(m.interrupted), stats if m is reply else None, m.reasoning)
                           for m in messages[common:]]
                    Store.write_messages(db, cid, common, out, system=conv.system, now=stamp,
                                         settings=self.turn_settings())
            except (sqlite3.Error, OSError) as exc:
                self._failed(exc)
                return False
            self.conversation_id, self._rows, self._version, self._system = cid, rows, stamp, conv.system
            self.last_error = None
            return True

    def _failed(self, exc: BaseException) -> None:
        reason = _reason(exc, self.store)
        self.last_error = reason
        log.debug("saving the conversation failed", exc_info=True)
        if self.warnings:
            return
        text = f"could not save the conversation ({reason}); the chat goes on, unsaved"
        self.warnings.append(text)
        try:
            self.on_warning(text)
        except Exception:  # a warning must not end the chat either
            log.debug("on_warning failed", exc_info=True)

    def turn_settings(self) -> TurnSettings:
        """The system prompt, model file and quant type in force now."""
        try:
            quant = str(self.session.model.describe().get("quant") or "")
        except Exception:  # noqa: BLE001 - a label, not worth a failed save
            quant = ""
        server = server_of(self.session.model)  # a remote model's URL (engine/remote.py)
        return TurnSettings(self.session.conversation.system, self._model(), quant, server)

    def _profile(self) -> str:
        return self.session.profile.name if self.session is not None else ""

    def _model(self) -> str:
        return str(self.session.model.path)

    # ------------------------------------------------------------ names

    def name(self, name: str | None) -> None:
        """Give the current conversation a name (written first if need be)."""
        if self.conversation_id is None and not self.sync():
            raise OSError(self.last_error or "could not save")
        if self.conversation_id is None:
            raise ValueError("nothing to name yet")
        self.store.set_name(self.conversation_id, name)

    # ------------------------------------------------------------ KV state

    def fingerprint(self) -> str | None:
        """The current model's (it may change: /quant switches models mid-conversation)."""
        model = self.session.model
        if self._fingerprint is None or self._fingerprint[0] is not model:
            self._fingerprint = (model, model.state_fingerprint())
            self._bytes_per_token = 0.0
        return self._fingerprint[1]

    def save_kv(self, *, every_turn: bool = False) -> bool:
        """Save llama.cpp's KV state beside the conversation, for a fast resume, replacing
        its previous one; then prune the states to the cap. After a turn only while it is
        small (EVERY_TURN_MAX); at close up to MAX_BYTES. Nothing when keep_state is off."""
        cid = self.conversation_id
        session = self.session
        if not self.keep_state or cid is None:
            return False
        printed = self.fingerprint()
        if printed is None:
            return False
        cached = list(session.loop.cached)
        if not cached or self._kv_saved == (cid, printed, cached):
            return bool(cached)
        cap = self._cap()
        bound = kvstate.EVERY_TURN_MAX if every_turn else kvstate.MAX_BYTES  # on the state itself
        limit = min(bound, cap)
        if self._bytes_per_token and self._bytes_per_token * len(cached) > limit:
            kvstate.remove(cid)  # an older, shorter state would only be a stale copy
            return False
        try:
            snapshot = session.kv_snapshot()
            if snapshot is None:
                return False
            tokens, state = snapshot
            size = memoryview(state).nbytes
            self._bytes_per_token = size / max(1, len(tokens))
            # the cap is on the files: one just over it would be written, then pruned at once
            if size > bound or kvstate.file_size(printed, tokens, size) > cap:
                kvstate.remove(cid)
                return False
            kvstate.save(kvstate.state_path(cid), printed, tokens, state)
            del state, snapshot
        except kvstate.StateNotSaved as exc:
            self._state_warning(str(exc))
            return False
        except Exception:  # the state is a cache: losing it costs time, not data
            log.debug("saving the KV state failed", exc_info=True)
            return False
        self._kv_saved = (cid, printed, tokens)
        try:
            kvstate.prune(cap, keep=cid)
        except OSError:
            log.debug("pruning the KV states failed", exc_info=True)
        return True

    def _cap(self) -> int:
        return self.state_max if self.state_max is not None else kvstate.default_cap()

    def _state_warning(self, text: str) -> None:
        log.debug("%s", text)
        if self.state_warnings:
            return
        self.state_warnings.append(text)
        try:
            self.on_warning(text)
        except Exception:
            log.debug("on_warning failed", exc_info=True)

    # ------------------------------------------------------------ resuming

    def load(self, ref: str | int) -> StoredConversation:
        """Make the stored conversation `ref` (id or name) the session's: its history, and
        the part of its saved KV state that still matches. Later turns are written to it.
        Raises UnknownConversation (exit status 2)."""
        cid = self.store.resolve(ref)
        stored = self.store.get(cid)
        if stored is None:  # removed just now
            raise UnknownConversation(f"no conversation {cid}; `lcchat history list` shows them")
        printed = self.fingerprint()
        path = kvstate.state_path(cid)
        saved = kvstate.load(path, printed) if printed else None
        self.state_found = "used" if saved is not None else ("stale" if path.exists() else "none")
        messages = [Message(m.role, m.content, m.interrupted, m.reasoning) for m in stored.messages]
        if messages and messages[-1].role == "user":
            # The process ended before the reply was written (kill -9, out of memory): the
            # message was kept; its reply counts as interrupted, empty.
            messages.append(Message("assistant", "", interrupted=True))
        with self._lock:
            self.restored_tokens = self.session.restore(stored.system, messages, saved=saved)
            self.conversation_id = cid
            self._rows = [(m.role, m.content, bool(m.interrupted), m.reasoning) for m in stored.messages]
            self._version = stored.updated
            self._system = stored.system
            self._stats_seen = self.session.last_stats
            whole = saved is not None and printed is not None and self.restored_tokens == len(saved[0])
            self._kv_saved = (cid, printed, list(saved[0])) if whole else None  # type: ignore[arg-type,index]
        return stored

    def resume(self, ref: str | int, *, cancel=None) -> Iterator[Event]:
        """load(), then read the rest of the history into the KV cache (Progress events),
        then a Notice saying what was continued."""
        stored = self.load(ref)
        yield from self.prefill(stored, cancel=cancel)

    def prefill(self, stored: StoredConversation, *, cancel=None) -> Iterator[Event]:
        before = len(self.session.loop.cached)
        for event in self.session.prefill(cancel):
            yield event
        read = len(self.session.loop.cached) - before
        yield Notice(describe_resume(stored, self.restored_tokens, read, state=self.state_found))

    def prefill_events(self, stored: StoredConversation) -> Iterator[Event]:
        """prefill() ending with Done, for a front-end that plays it like a reply (/load)."""
        yield from self.prefill(stored)
        yield Done("stop", "")

    # ------------------------------------------------------------ the end

    def close(self) -> None:
        """Write anything still unwritten and save the KV state (the session calls this
        through on_close before it frees the model)."""
        self.sync()
        if self.keep_state:
            self.save_kv()
        if self._owns_store:
            self.store.close()


def describe_resume(stored: StoredConversation, restored: int, read: int, *, state: str = "used") -> str:
    """What -C and /load did: how much came back from the saved KV state, how much of the
    text was re-read, and why (the state was pruned or never kept, or is for other settings)."""
    n = len(stored.messages)
    what = f"conversation {stored.id}" + (f" ({stored.name})" if stored.name else "")
    parts = [f"continuing {what}: {n} message{'s' if n != 1 else ''}"]
    if restored:
        parts.append(f"{restored} tokens restored from the saved KV state")
    elif state == "none":
        parts.append("no saved KV state (pruned, or never kept), so its text is re-read")
    elif state == "stale":
        parts.append("its saved KV state is for another model or settings, so its text is re-read")
    if read:
        parts.append(f"{read} tokens of history re-read")
    last = stored.messages[-1] if stored.messages else None
    if last is not None and (last.interrupted or last.role == "user"):
        parts.append("the last reply was interrupted")
    return "; ".join(parts)


def last_lines(stored: StoredConversation, n: int = 4) -> str:
    """The last few messages, one line each, to show where a loaded conversation was."""
    out = []
    for m in stored.messages[-n:]:
        who = "you" if m.role == "user" else m.role
        out.append(f"{who}: {one_line(m.content, 100)}" + (" [interrupted]" if m.interrupted else ""))
    return "\n".join(out)


def attach(session, store: Store | None = None, *, on_warning: Callable[[str], None] | None = None,
           **options) -> Recorder:
    """Record `session`'s turns in the store (the data dir's database by default), and
    save the KV state when the session is closed. `options` are Recorder's (record,
    keep_state, state_max). Attaching twice returns the first recorder."""
    existing = recorder_of(session)
    if existing is not None:
        return existing
    return Recorder(session, store, on_warning=on_warning, **options)


def recorder_of(session) -> Recorder | None:
    """The Recorder listening to `session`, if one is."""
    return next((listener for listener in session.listeners if isinstance(listener, Recorder)), None)


def _reason(exc: BaseException, store: Store) -> str:
    if isinstance(exc, OSError):
        where = exc.filename or store.path
        return f"{exc.strerror or exc}: {where}"
    return f"{exc}: {store.path}"
