"""Fast resume: llama.cpp's KV state saved beside a conversation.

Re-reading a long history costs seconds of prompt evaluation; restoring the KV cache
llama.cpp saved (llama_state_get_data) costs a file read. A saved state is only valid for
the same model file and the settings that shape the cache, so each file carries a hash of
them (the fingerprint) and the token ids it holds; ChatSession.restore() keeps the part
whose tokens match the history's. Anything that does not match is simply re-evaluated.

File: data_dir/state/ID.kv, mode 0600:  MAGIC, one JSON header line, the state bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zlib
from pathlib import Path

log = logging.getLogger("lcchat.store")

MAGIC = b"LCCHAT-KV 1\n"
EVERY_TURN_MAX = 64 << 20  # states up to this size are saved after every turn
MAX_BYTES = 1 << 30  # larger states are not saved at all


def state_dir() -> Path:
    from lcchat.paths import data_dir

    return data_dir() / "state"


def state_path(cid: int) -> Path:
    return state_dir() / f"{int(cid)}.kv"


def fingerprint(model: object) -> str | None:
    """A hash of what a saved KV state depends on: the model file (path, size, mtime),
    the context's size and cache types, RoPE, offloading, and the llama.cpp version. None
    for a model that cannot save its state (a test fake)."""
    if not hasattr(model, "save_state"):
        return None
    try:
        path = Path(getattr(model, "path"))
        st = path.stat()
        settings = getattr(model, "settings", None)
        load = getattr(model, "load", None)
        rope = getattr(load, "rope", None)
        rope_fields = {}
        if rope is not None and dataclasses.is_dataclass(rope):
            rope_fields = {k: v for k, v in dataclasses.asdict(rope).items() if k not in ("description", "warnings")}
        try:
            import llama_cpp

            version = getattr(llama_cpp, "__version__", "")
        except ImportError:  # pragma: no cover
            version = ""
        parts = {
            "format": 1,
            "llama_cpp": version,
            "path": str(path.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "n_ctx": int(getattr(model, "n_ctx", 0)),
            "cache_type_k": getattr(settings, "cache_type_k", ""),
            "cache_type_v": getattr(settings, "cache_type_v", ""),
            "flash_attn": bool(getattr(settings, "flash_attn", False)),
            "n_gpu_layers": getattr(load, "n_gpu_layers", None),
            "rope": rope_fields,
        }
    except (OSError, TypeError, ValueError):
        return None
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def save(path: Path, print_: str, tokens: list[int], state: bytes) -> None:
    """Write atomically (a temp file renamed over the old one), mode 0600."""
    from lcchat.paths import ensure_private_dir

    ensure_private_dir(path.parent)
    header = json.dumps({"fingerprint": print_, "tokens": tokens, "size": len(state),
                         "crc32": zlib.crc32(state)}, separators=(",", ":")).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(header + b"\n")
            f.write(state)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def load(path: Path, print_: str) -> tuple[list[int], bytes] | None:
    """(tokens, state) when the file exists, is whole, and was saved with this
    fingerprint; None otherwise (the caller re-evaluates)."""
    try:
        with open(path, "rb") as f:
            if f.read(len(MAGIC)) != MAGIC:
                return None
            header = json.loads(f.readline(64 << 20))
            if header.get("fingerprint") != print_:
                log.debug("%s: saved for other settings; re-evaluating", path)
                return None
            size = int(header["size"])
            if size > MAX_BYTES:
                return None
            state = f.read(size + 1)
        tokens = [int(t) for t in header["tokens"]]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        log.debug("%s: unreadable KV state", path, exc_info=True)
        return None
    if len(state) != size or zlib.crc32(state) != header.get("crc32"):
        log.debug("%s: damaged KV state", path)
        return None
    return tokens, state


def remove(cid: int) -> None:
    try:
        state_path(cid).unlink()
    except OSError:
        pass
