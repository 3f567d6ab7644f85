"""Fast resume: llama.cpp's KV state saved beside a conversation.

Re-reading a long history costs seconds of prompt evaluation; restoring the KV cache
llama.cpp saved (llama_state_get_data) costs a file read. A saved state is only valid for
the same model file and the settings that shape the cache, so each file carries a hash of
them (the model's state_fingerprint(), engine/protocol.py) and the token ids it holds; ChatSession.restore() keeps the part
whose tokens match the history's. Anything that does not match is simply re-evaluated.

File: data_dir/state/ID.kv, mode 0600:  MAGIC, one JSON header line, the state bytes.
One file per conversation, replaced by each save (the latest turn's state only).

States are a cache, and a large one (a 7B model without grouped-query attention keeps
0.5 MiB per token), so they are bounded everywhere: one-shot calls keep none unless asked
(--save-state), all states together stay under `[store] state_max` (the least recently
used are deleted past it: a conversation without its state resumes by re-reading its
text), and a save first checks the free space, writes a temporary file and renames it,
and removes what it wrote when the disk fills anyway (StateNotSaved says why, in words).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import zlib
from pathlib import Path

from lcchat.config.sizes import parse_size

log = logging.getLogger("lcchat.store")

MAGIC = b"LCCHAT-KV 1\n"
EVERY_TURN_MAX = 64 << 20  # states up to this size are saved after every turn
MAX_BYTES = 1 << 30  # larger states are not saved at all
DEFAULT_CAP = 4 << 30  # state_max's default: this, or FREE_SHARE of the free space if less
FREE_SHARE = 0.10
KEEP_FREE = 64 << 20  # a save leaves at least this much of the disk free
SUFFIX = ".kv"


class StateNotSaved(OSError):
    """A save that was refused or failed for want of space; str() is the one line to show."""

    def __str__(self) -> str:
        return str(self.strerror)


def state_dir() -> Path:
    from lcchat.paths import data_dir

    return data_dir() / "state"


def state_path(cid: int) -> Path:
    return state_dir() / f"{int(cid)}.kv"


def _header(print_: str, tokens: list[int], size: int, crc32: int) -> bytes:
    """The header line a state file starts with, after MAGIC (without its newline)."""
    return json.dumps({"fingerprint": print_, "tokens": tokens, "size": size, "crc32": crc32},
                      separators=(",", ":")).encode()


def file_size(print_: str, tokens: list[int], size: int) -> int:
    """The most bytes save() writes for a state of `size` bytes (its header holds the
    tokens and a checksum, counted here at its widest): what the cap on disk measures."""
    return len(MAGIC) + len(_header(print_, tokens, size, 0xFFFFFFFF)) + 1 + size


def save(path: Path, print_: str, tokens: list[int], state: bytes | memoryview) -> None:
    """Write atomically (a temp file renamed over the old one), mode 0600. `state` is any
    bytes-like object (Model.save_state returns a view of llama.cpp's buffer: no copy).
    Raises StateNotSaved when the disk lacks the space, before writing or on ENOSPC (the
    partial file removed); other OSErrors as they come."""
    from lcchat.paths import ensure_private_dir

    ensure_private_dir(path.parent)
    size = len(state) if not isinstance(state, memoryview) else state.nbytes
    header = _header(print_, tokens, size, zlib.crc32(state))
    need = len(MAGIC) + len(header) + 1 + size
    free = shutil.disk_usage(path.parent).free
    if free - need < KEEP_FREE:
        raise StateNotSaved(errno.ENOSPC, f"the KV state ({human(need)}) was not saved: only {human(free)} is free "
                            f"in {path.parent}; the conversation itself is saved and resumes by re-reading its text")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(header + b"\n")
            f.write(state)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StateNotSaved(exc.errno, f"the KV state was not saved: the disk filled up ({path.parent}); "
                                "the partial file was removed, and the conversation itself is saved") from exc
        raise


def load(path: Path, print_: str) -> tuple[list[int], bytes] | None:
    """(tokens, state) when the file exists, is whole, and was saved with this
    fingerprint; None otherwise (the caller re-evaluates)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
            header = json.loads(f.readline(64 << 20))
            if not isinstance(header, dict):
                log.debug("%s: not a KV state header", path)
                return None
            if header.get("fingerprint") != print_:
                log.debug("%s: saved for other settings; re-evaluating", path)
                return None
            size = int(header["size"])
            if size > MAX_BYTES:
                return None
            if size != os.fstat(f.fileno()).st_size - f.tell():  # before the memory is taken
                log.debug("%s: damaged KV state (not %d bytes)", path, size)
                return None
            state = bytearray(size)  # read in place: one copy of the state in memory
            got = f.readinto(state)
            extra = f.read(1)
        tokens = [int(t) for t in header["tokens"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.debug("%s: unreadable KV state", path, exc_info=True)
        return None
    if got != size or extra or zlib.crc32(state) != header.get("crc32"):
        log.debug("%s: damaged KV state", path)
        return None
    touch(path)
    return tokens, state


def remove(cid: int) -> int:
    """Delete conversation `cid`'s state; returns the bytes freed."""
    path = state_path(cid)
    try:
        size = path.stat().st_size
        path.unlink()
    except OSError:
        return 0
    return size


def touch(path: Path) -> None:
    """Mark a state as used now: pruning deletes the least recently used first (mtime)."""
    try:
        os.utime(path)
    except OSError:
        pass


def size_of(cid: int) -> int:
    try:
        return state_path(cid).stat().st_size
    except OSError:
        return 0


def saved_states() -> list[tuple[Path, int | None, int, float]]:
    """Every file in the state directory: (path, its conversation id or None for a
    leftover temp file, size, mtime), least recently used first."""
    found = []
    try:
        entries = list(os.scandir(state_dir()))
    except OSError:
        return []
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_file(follow_symlinks=False):
            continue
        stem, suffix = os.path.splitext(entry.name)
        cid = int(stem) if suffix == SUFFIX and stem.isascii() and stem.isdigit() else None
        if cid is None and not (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue  # not ours
        found.append((Path(entry.path), cid, st.st_size, st.st_mtime))
    return sorted(found, key=lambda f: f[3])


def default_cap() -> int:
    """state_max when the profile leaves it empty: 4 GiB, or 10% of the free space on the
    state directory's disk if that is less."""
    where = state_dir()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return DEFAULT_CAP
    return min(DEFAULT_CAP, int(free * FREE_SHARE))


def cap_from(text: str) -> int:
    """The cap in bytes for a state_max value ("" = the default)."""
    return parse_size(text) if text.strip() else default_cap()


def prune(cap: int, *, keep: int | None = None) -> tuple[int, int]:
    """Delete the least recently used states until all of them fit in `cap` bytes (the
    state of conversation `keep`, just saved, goes last); leftover temp files of other
    processes are not touched here. Returns (bytes freed, states deleted)."""
    states = [s for s in saved_states() if s[1] is not None]
    total = sum(s[2] for s in states)
    states.sort(key=lambda s: (s[1] == keep, s[3]))
    freed = count = 0
    for path, _cid, size, _mtime in states:
        if total <= cap:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size
        freed += size
        count += 1
        log.debug("pruned %s (%d bytes) to keep the states under %d bytes", path, size, cap)
    return freed, count


def human(n: float) -> str:
    from lcchat.engine.monitor import human_bytes

    return human_bytes(n)
