"""Running the real `lcchat` command for the reliability suite, and reading what it stored."""

from __future__ import annotations

import os
import subprocess
from typing import Callable

from lcchat.store.db import Store, StoredConversation
from tests.commandline import lcchat_cmd


def run(args: list[str], *, stdin: bytes | None = b"", timeout: float = 120, env: dict | None = None,
        preexec_fn: Callable[[], None] | None = None, prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run lcchat with `args` (str, Path, or bytes for words that are not valid UTF-8)."""
    full = [*(prefix or []), *lcchat_cmd(), *[a if isinstance(a, bytes) else str(a) for a in args]]
    return subprocess.run(full, input=stdin, capture_output=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)


def clean_failure(result: subprocess.CompletedProcess, code: int) -> str:
    """The one line a failure prints: right exit status, no traceback, nothing on stdout."""
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("lcchat: "), lines[0]
    assert result.stdout == b""
    return lines[0]


def answered(result: subprocess.CompletedProcess) -> str:
    """A run that answered: exit 0, an answer on stdout, no traceback."""
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, (result.returncode, err)
    assert "Traceback" not in err, err
    text = result.stdout.decode("utf-8")  # strict: whole characters only
    assert text.strip(), err
    return text


def conversations() -> list[StoredConversation]:
    """Every stored conversation, oldest first (read in this process)."""
    store = Store()
    try:
        found = [store.get(s.id) for s in reversed(store.summaries())]
    finally:
        store.close()
    return [c for c in found if c is not None]


def seed_conversation() -> int:
    """A conversation that must survive whatever a test does next."""
    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="default", model="", system="", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "keep me", False, None), ("assistant", "kept", False, None)],
                             system="", now=1.0)
    store.close()
    return cid


def assert_seed_intact(cid: int) -> None:
    conv = Store().get(cid)
    assert conv is not None and [m.content for m in conv.messages] == ["keep me", "kept"]
