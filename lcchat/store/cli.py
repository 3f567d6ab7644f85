"""`lcchat history`: list, show, export and remove stored conversations.

Errors are one line (the CLI's main prints them): an unknown ID exits 2, a database that
cannot be read exits 1.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Sequence

from lcchat.errors import LcchatError


def build_parser() -> argparse.ArgumentParser:
    from lcchat.cli import UsageParser

    p = UsageParser(prog="lcchat history", description="Stored conversations: every turn is saved as soon as it ends. "
                                                   "`lcchat -C [ID]` continues one.")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose")
    sub = p.add_subparsers(dest="action", metavar="{list,show,export,rm}", required=True, parser_class=UsageParser)
    ls = sub.add_parser("list", help="one line per conversation: id, date, profile, first message")
    ls.add_argument("-n", "--limit", type=int, metavar="N", help="only the N most recent")
    show = sub.add_parser("show", help="print a conversation")
    show.add_argument("id", metavar="ID", help="its number, or the name /save gave it")
    export = sub.add_parser("export", help="write a conversation as Markdown or JSON")
    export.add_argument("id", metavar="ID")
    export.add_argument("--format", "-f", choices=("md", "json"), default="md")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    rm = sub.add_parser("rm", help="delete a conversation (and its saved KV state)")
    rm.add_argument("id", metavar="ID")
    return p


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    try:
        return _run(args)
    except sqlite3.Error as exc:
        from lcchat.store.db import default_path

        raise LcchatError(f"cannot read the conversations in {default_path()}: {exc}") from exc


def _run(args: argparse.Namespace) -> int:
    from lcchat.store import export, kvstate
    from lcchat.store.db import Store, UnknownConversation

    _replace_errors()
    store = Store()
    if args.action == "list":
        for summary in store.summaries(limit=args.limit if args.limit and args.limit > 0 else None):
            print(export.list_line(summary))
        return 0
    cid = store.resolve(args.id)
    if args.action == "rm":
        if not store.delete(cid):
            raise UnknownConversation(f"no conversation {args.id!r}")
        kvstate.remove(cid)
        print(f"removed conversation {cid}")
        return 0
    conv = store.get(cid)
    if conv is None:
        raise UnknownConversation(f"no conversation {args.id!r}")
    if args.action == "show":
        sys.stdout.write(export.transcript(conv))
        return 0
    text = export.render(conv, args.format)
    if args.output:
        from pathlib import Path

        try:
            Path(args.output).expanduser().write_text(text, encoding="utf-8")
        except OSError as exc:
            raise LcchatError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
        return 0
    sys.stdout.write(text)
    return 0


def _replace_errors() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass
