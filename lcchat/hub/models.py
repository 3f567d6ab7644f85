"""`lcchat models`: the GGUF files in the Hub's shared cache, their quantization, size and
the profiles that use them; `lcchat models rm` deletes them.

Every .gguf in the cache is listed, whoever downloaded it: another tool's download is as
usable as lcchat's. Deleting removes the snapshot entry, and the blob when no other
snapshot points at it, as huggingface_hub's own cache cleaning does.

Exit status: 0 ok, 1 failure (a file that cannot be deleted), 2 bad input (nothing matches).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from lcchat.errors import EXIT_OK, InputError, LcchatError
from lcchat.usage import UsageParser


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="lcchat models", description="List and delete the models downloaded into the "
                    "Hugging Face Hub's shared cache (lcchat pull puts them there).",
                    epilog="Exit status: 0 ok, 1 failure, 2 bad input.")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose")
    sub = p.add_subparsers(dest="action", metavar="{list,rm}", parser_class=UsageParser)
    sub.add_parser("list", help="list the downloaded GGUF files (the default)")
    rm = sub.add_parser("rm", help="delete downloaded files: hf://OWNER/REPO/FILE, a whole hf://OWNER/REPO, "
                        "or the files a profile uses")
    rm.add_argument("target", metavar="NAME|hf://OWNER/REPO[/FILE]")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.action == "rm":
            return _rm(args.target)
        return _list()
    except LcchatError as exc:
        print(f"lcchat models: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_OK


def downloaded():
    """Every complete GGUF file in the cache."""
    from lcchat.hub.cache import cached_repos, local_files

    return [f for repo in cached_repos() for f in local_files(repo)]


def profiles_using(files) -> dict[tuple[str, str], list[str]]:
    """(repo, filename) -> names of the profiles whose source and `file` patterns allow it."""
    from lcchat.config import loader
    from lcchat.hub.source import matching, parse_source

    users: dict[tuple[str, str], list[str]] = {}
    for name, path in loader.available_profiles().items():
        try:
            model = loader.load_profile(str(path)).model
            repo = parse_source(model.source, with_file=False).repo_id if model.source else None
        except LcchatError:
            continue
        if repo is None:
            continue
        mine = [f.filename for f in files if f.repo_id == repo]
        for filename in matching(mine, list(model.file)):
            users.setdefault((repo, filename), []).append(name)
    return users


def _list() -> int:
    from lcchat.engine import gguf_info
    from lcchat.engine.monitor import human_bytes
    from lcchat.hub.cache import cache_dir

    files = downloaded()
    if not files:
        print(f"no models downloaded yet (in {cache_dir()}); `lcchat pull NAME` fetches a profile's model")
        return EXIT_OK
    users = profiles_using(files)
    rows = []
    for f in files:
        try:
            kind = gguf_info.read_gguf(f.path, vocab=False).file_type_name or "?"
        except LcchatError:
            kind = "unreadable"
        rows.append((kind, human_bytes(f.size), ", ".join(users.get((f.repo_id, f.filename), [])) or "-",
                     _plain(f.address)))
    widths = [max(len(r[i]) for r in [("QUANT", "SIZE", "PROFILES", "")] + rows) for i in range(3)]
    print(f"{'QUANT':<{widths[0]}}  {'SIZE':>{widths[1]}}  {'PROFILES':<{widths[2]}}  MODEL")
    for kind, size, names, address in rows:
        print(f"{kind:<{widths[0]}}  {size:>{widths[1]}}  {names:<{widths[2]}}  {address}")
    total = sum(f.size for f in files)
    print(f"{len(files)} file{'s' if len(files) != 1 else ''}, {human_bytes(total)}, in {cache_dir()}")
    return EXIT_OK


def _targets(target: str):
    """The downloaded files `target` names."""
    from lcchat.config.loader import load_profile
    from lcchat.hub.source import SCHEME, matching, parse_source

    files = downloaded()
    if target.startswith(SCHEME):
        source = parse_source(target)
        chosen = [f for f in files if f.repo_id.lower() == source.repo_id.lower()
                  and (source.filename is None or f.filename == source.filename)]
    else:
        model = load_profile(target).model
        if not model.source:
            raise InputError(f"profile {target!r} names no download source, so it has no downloaded files")
        repo = parse_source(model.source, with_file=False).repo_id
        mine = [f for f in files if f.repo_id == repo]
        allowed = set(matching([f.filename for f in mine], list(model.file)))
        chosen = [f for f in mine if f.filename in allowed]
    if not chosen:
        raise InputError(f"nothing downloaded matches {_plain(target)}; `lcchat models` lists what is")
    return chosen, files


def _rm(target: str) -> int:
    from lcchat.engine.monitor import human_bytes

    chosen, everything = _targets(target)
    keep_blobs = {_blob(f.path) for f in everything if f not in chosen}
    freed = 0
    for f in chosen:
        blob = _blob(f.path)
        try:
            f.path.unlink()
            if blob != f.path and blob not in keep_blobs and blob.exists():
                blob.unlink()
                freed += f.size
            elif blob == f.path:
                freed += f.size
        except OSError as exc:
            raise LcchatError(f"cannot delete {f.path}: {exc.strerror or exc}") from exc
        _prune(f.path.parent, stop=f.path.parents[len(Path(f.filename).parts)])
        print(f"deleted {_plain(f.address)}")
    print(f"freed {human_bytes(freed)}")
    return EXIT_OK


def _blob(entry: Path) -> Path:
    """The blob a snapshot entry links to (the entry itself when it is a copy)."""
    try:
        return entry.resolve() if entry.is_symlink() else entry
    except OSError:
        return entry


def _prune(directory: Path, stop: Path) -> None:
    """Remove the directories left empty, up to and including the commit's snapshot."""
    current = directory
    while True:
        try:
            current.rmdir()
        except OSError:
            return
        if current == stop:
            return
        current = current.parent


def _plain(text: str) -> str:
    """A name from the cache as printable text (names come from outside)."""
    from lcchat.textsafe import one_line

    return one_line(text, 400)

