"""`lcchat history`: list, show, export, remove and prune stored conversations.

Errors are one line (the CLI's main prints them): an unknown ID exits 2, a database that
cannot be read exits 1. A database that cannot be opened for writing (read-only or full
disk) is read read-only; a damaged one is said to be damaged, with how to recover it, and
the command exits 1 even when it could show part of it.
Stored replies are a model's text: on a terminal their control characters are made
visible (textsafe); to a pipe or file they are written as stored.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
import time
from typing import Sequence

from lcchat.errors import EXIT_FAILURE, EXIT_OK, LcchatError

AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def build_parser() -> argparse.ArgumentParser:
    from lcchat.usage import UsageParser

    p = UsageParser(prog="lcchat history", description="Stored conversations: every message is saved as it is "
                                                   "sent, every reply as it ends. `lcchat -C [ID]` continues one.")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose")
    sub = p.add_subparsers(dest="action", metavar="{list,show,export,rm,prune}", required=True,
                           parser_class=UsageParser)
    ls = sub.add_parser("list", help="one line per conversation: id, date, profile, KV state size, first message")
    ls.add_argument("-n", "--limit", type=int, metavar="N", help="only the N most recent")
    show = sub.add_parser("show", help="print a conversation")
    show.add_argument("id", metavar="ID", help="its number, or the name /save gave it")
    export = sub.add_parser("export", help="write a conversation as Markdown or JSON")
    export.add_argument("id", metavar="ID")
    export.add_argument("--format", "-f", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (mode 0600) instead of stdout")
    export.add_argument("--reasoning", action="store_true",
                        help="include a reasoning model's thinking before each answer (left out by default)")
    rm = sub.add_parser("rm", help="delete a conversation (and its saved KV state)")
    rm.add_argument("id", metavar="ID")
    prune = sub.add_parser("prune", help="free disk space: saved KV states, old conversations")
    prune.add_argument("--older-than", metavar="AGE", type=parse_age,
                       help="only what was last used more than AGE ago: 30d, 12h, 2w")
    prune.add_argument("--states-only", action="store_true",
                       help="delete saved KV states only; the conversations stay (they resume by re-reading)")
    return p


def parse_age(text: str) -> float:
    """ "30d" -> seconds. argparse turns the ValueError into a usage error (exit 2)."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*([smhdw]?)\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age; write it like 30d, 12h or 2w")
    return int(match.group(1)) * AGE_UNITS[match.group(2) or "d"]


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    if all(a.startswith("-") and a not in ("-h", "--help") for a in argv):
        argv.append("list")  # `lcchat history` alone lists, as `ollama list` and `llm logs` do
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except sqlite3.Error as exc:
        from lcchat.store.db import default_path

        raise LcchatError(f"cannot read the conversations in {default_path()}: {exc}") from exc


def _run(args: argparse.Namespace) -> int:
    from lcchat.store.db import Damaged, Store

    _replace_errors()
    store = Store()
    if args.action == "prune":
        return _prune(store, args)
    try:
        return _act(store, args)
    except (LcchatError, sqlite3.Error) as exc:
        if args.action in ("list", "show", "export") and not isinstance(exc, Damaged):
            store.check()  # raises Damaged when damage is what went wrong: say that
        raise


def _act(store, args: argparse.Namespace) -> int:
    """The action; a read that fails raises. quick_check reads every page of the file, so it
    is left for when a read has failed (in _run) or a listing came out short (here)."""
    from lcchat.store import export, kvstate
    from lcchat.store.db import Damaged, UnknownConversation
    from lcchat.textsafe import for_stream

    if args.action == "list":
        limit = args.limit if args.limit and args.limit > 0 else None
        summaries = store.summaries(limit=limit)
        if not summaries and not store.count_with_messages():
            # to stderr, so that a script counting lines still reads none
            print(f"no conversations stored yet (in {store.path}); every chat is saved as it goes", file=sys.stderr)
        for summary in summaries:
            summary.state_bytes = kvstate.size_of(summary.id)
            print(for_stream(export.list_line(summary), sys.stdout))
        if len(summaries) < min(store.count_with_messages(), limit or sys.maxsize):
            try:
                store.check()
            except Damaged as damage:
                return _finish(damage)
        return EXIT_OK
    cid = store.resolve(args.id)
    if args.action == "rm":
        if not store.delete(cid):
            raise UnknownConversation(f"no conversation {args.id!r}")
        kvstate.remove(cid)
        print(f"removed conversation {cid}")
        return EXIT_OK
    conv = store.get(cid)
    if conv is None:
        raise UnknownConversation(f"no conversation {args.id!r}")
    if args.action == "show":
        sys.stdout.write(for_stream(export.transcript(conv), sys.stdout))
        return EXIT_OK
    text = export.render(conv, args.format, reasoning=args.reasoning)
    if args.output:
        write_private(os.path.expanduser(args.output), text)
        return EXIT_OK
    sys.stdout.write(for_stream(text, sys.stdout))
    return EXIT_OK


def write_private(path: str, text: str) -> None:
    """Write an export readable by its owner only (0600, like the database it comes from),
    whatever the umask and whatever mode a file already there had."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                fd = -1
                f.write(text)
        finally:
            if fd >= 0:
                os.close(fd)
    except OSError as exc:
        raise LcchatError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _prune(store, args: argparse.Namespace) -> int:
    """Without --older-than: the states past the cap, and states of conversations that no
    longer exist (with --states-only: every state). With --older-than: conversations not
    used for that long, with their states (with --states-only: only their states)."""
    from lcchat.config.loader import load_profile
    from lcchat.engine.monitor import human_bytes
    from lcchat.store import kvstate

    if store.read_only:
        raise LcchatError(f"{store.path} is read-only; nothing can be pruned")
    cutoff = time.time() - args.older_than if args.older_than is not None else None
    freed, states, removed = 0, 0, 0
    known = set(store.ids())
    if cutoff is not None and not args.states_only:
        old = store.ids(updated_before=cutoff)
        before = _db_bytes(store)
        for cid in old:
            if store.delete(cid):
                removed += 1
                size = kvstate.remove(cid)
                freed += size
                states += bool(size)
        if removed:
            store.compact()
            freed += max(0, before - _db_bytes(store))
        known -= set(old)
    for path, cid, size, mtime in kvstate.saved_states():
        stale_tmp = cid is None and mtime < time.time() - 3600  # a crashed save's leftover
        orphan = cid is not None and cid not in known
        chosen = (args.states_only and (cutoff is None or mtime < cutoff)) or orphan or stale_tmp
        if chosen:
            try:
                path.unlink()
            except OSError:
                continue
            freed += size
            states += cid is not None
    if cutoff is None and not args.states_only:
        try:
            cap = kvstate.cap_from(load_profile().store.state_max)
        except (LcchatError, ValueError):
            cap = kvstate.default_cap()
        pruned, count = kvstate.prune(cap)
        freed += pruned
        states += count
    what = [f"{removed} conversation{'s' if removed != 1 else ''}"] if removed else []
    what.append(f"{states} KV state{'s' if states != 1 else ''}")
    print(f"freed {human_bytes(freed)}: removed {' and '.join(what)}")
    return EXIT_OK


def _db_bytes(store) -> int:
    total = 0
    for suffix in ("", "-wal"):
        try:
            total += os.path.getsize(str(store.path) + suffix)
        except OSError:
            pass
    return total


def _finish(damage) -> int:
    """Say that the database is damaged after showing what could be read; exit status 1."""
    _say(f"{damage} What could be read is shown above.")
    return EXIT_FAILURE


def _say(text: str) -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(f"lcchat: {text}", file=sys.stderr, flush=True)


def _replace_errors() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass

