"""Commands for stored conversations: /save /load /history.

Every turn is already saved as it ends; /save gives the conversation a name (and makes
sure it is written), /load continues another one, /history lists them. They work on the
run's Recorder, which reaches them through the command context (Context.recorder); a
context without one (a session opened outside lcchat/runtime.py) gets one on first use.
"""

from __future__ import annotations

import sqlite3

from lcchat.commands.actions import Task
from lcchat.commands.registry import Context, Result, UsageError, registry
from lcchat.errors import LcchatError
from lcchat.store.db import is_conversation_number

BUSY = "Wait for the reply to finish (Ctrl+C stops it)."
HISTORY_ROWS = 20


def _recorder(ctx: Context):
    if ctx.recorder is None:
        from lcchat.store import attach

        ctx.recorder = attach(ctx.session)
    return ctx.recorder


def _recent_refs(ctx: Context, arg: str) -> list[str]:
    try:
        summaries = _recorder(ctx).store.summaries(limit=HISTORY_ROWS)
    except (sqlite3.Error, OSError):
        return []
    return [s.name for s in summaries if s.name] + [str(s.id) for s in summaries]


@registry.command("save", args="[NAME]", help="save the conversation now, and name it so /load NAME finds it",
                  details="Every turn is saved as it ends anyway; `lcchat -C ID` continues a conversation from the shell.")
def cmd_save(ctx: Context, arg: str) -> Result:
    session = ctx.session
    if session.busy:
        return Result(BUSY, error=True)
    if not session.conversation.messages:
        return Result("Nothing to save yet.", error=True)
    name = arg.strip() or None
    if name is not None and is_conversation_number(name):
        raise UsageError("A name cannot be only digits: those are conversation numbers.")
    recorder = _recorder(ctx)
    if not recorder.record:
        return Result("This session is not recorded (--no-history): nothing was saved.", error=True)
    if not recorder.sync():
        return Result(f"Could not save the conversation: {recorder.last_error}.", error=True)
    if name is not None:
        try:
            recorder.name(name)
        except LcchatError as exc:
            return Result(f"Could not name it: {exc}.", error=True)
        except (sqlite3.Error, OSError) as exc:
            return Result(f"Could not name it: {exc}.", error=True)
    recorder.save_kv()
    cid = recorder.conversation_id
    label = f"conversation {cid}" + (f" ({name})" if name else "")
    return Result(f"Saved {label}. /load {name or cid} here, or `lcchat -C {cid}` from the shell, continues it.")


@registry.command("load", args="ID|NAME", help="continue a saved conversation (/history lists them)",
                  complete=_recent_refs,
                  details="The current conversation stays saved. The loaded one's history is read back into "
                          "the context, from the saved KV state where the model and settings match.")
def cmd_load(ctx: Context, arg: str) -> Result:
    from lcchat.store.db import UnknownConversation
    from lcchat.store.recorder import last_lines

    if not arg.strip():
        raise UsageError("Name a conversation: its number or the name /save gave it.")
    session = ctx.session
    if session.busy:
        return Result(BUSY, error=True)
    recorder = _recorder(ctx)
    if session.conversation.messages and not recorder.sync():
        return Result(f"The current conversation could not be saved ({recorder.last_error}); "
                      "/load would lose it. Free some space or fix the data dir first.", error=True)
    try:
        stored = recorder.load(arg.strip())
    except UnknownConversation as exc:
        return Result(f"{str(exc)[0].upper()}{str(exc)[1:]}. /history lists them.", error=True)
    except (LcchatError, sqlite3.Error, OSError) as exc:
        return Result(f"Could not load {arg.strip()}: {exc}", error=True)
    label = f"conversation {stored.id}" + (f" ({stored.name})" if stored.name else "")
    text = f"Loaded {label}, {len(stored.messages)} messages."
    tail = last_lines(stored)
    if tail:
        text += "\n\n" + tail
    return Result(text, action=Task(lambda: recorder.prefill_events(stored), "history", rebuild=True))


@registry.command("history", args="[N]", help="list the saved conversations, most recent first")
def cmd_history(ctx: Context, arg: str) -> Result:
    from lcchat.store.db import one_line
    from lcchat.store.export import local_time

    limit = HISTORY_ROWS
    if arg:
        if not (arg.isascii() and arg.isdigit()) or int(arg) < 1:  # int() reads "²" too
            raise UsageError(f"N must be a number of conversations, not {arg!r}.")
        limit = int(arg)
    recorder = _recorder(ctx)
    try:
        summaries = recorder.store.summaries(limit=limit)
    except (sqlite3.Error, OSError) as exc:
        return Result(f"Could not read the saved conversations: {exc}", error=True)
    if not summaries:
        return Result("No saved conversations yet.")
    current = recorder.conversation_id
    rows = []
    for s in summaries:
        title = (f"[{s.name}] " if s.name else "") + one_line(s.first_user, 50)
        mark = " (this one)" if s.id == current else (" (interrupted)" if s.interrupted else "")
        rows.append((f"{s.id}", f"{local_time(s.updated)} · {s.profile or '-'} · {title}{mark}"))
    return Result("Saved conversations (/load ID continues one):", rows=rows)
