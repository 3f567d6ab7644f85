"""The conversation store: each message in SQLite as soon as it is sent, each reply as it
ends; resume, export; bounded KV states.

    db.py        the database (conversations, messages), WAL, safe for two writers; ordered,
                 named migrations; read-only fallback; damage reported (Damaged)
    recorder.py  Recorder: a ChatSession send hook and listener writing each message with
                 the system prompt, model and quant in force; load/resume; KV state saves
    kvstate.py   llama.cpp's KV state saved beside a conversation, for a fast resume: one
                 per conversation, all under [store] state_max (LRU), safe writes
    recording.py what one run keeps (--no-history, --save-state), the conversation to
                 continue (-C), and its Recorder; lcchat/runtime.py makes it and binds it
                 to the session it opens
    export.py    Markdown and JSON, the `history list` line and `history show` transcript
    cli.py       `lcchat history list|show|export|rm|prune`

Importing this package imports nothing heavy; `attach` loads what it needs.
"""

from __future__ import annotations

from typing import Any


def attach(session: Any, store: Any = None, *, on_warning: Any = None) -> Any:
    """Record `session`'s turns; returns the Recorder (the same one when called again)."""
    from lcchat.store.recorder import attach as _attach

    return _attach(session, store, on_warning=on_warning)


def __getattr__(name: str) -> Any:
    if name == "Store":
        from lcchat.store.db import Store

        return Store
    if name == "Recorder":
        from lcchat.store.recorder import Recorder

        return Recorder
    raise AttributeError(name)
