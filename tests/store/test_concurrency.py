"""Two processes writing at once lose nothing: WAL, BEGIN IMMEDIATE and a busy timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from lcchat.store.db import Store

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from lcchat.engine.fake import FakeModel, fake_session
    from lcchat.store import attach

    name, turns, go, resume = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
    session = fake_session(FakeModel(replies=[[f"{name}-reply-{i}"] for i in range(turns)]))
    recorder = attach(session, on_warning=lambda text: print("WARNING", text, flush=True))
    if resume != "-":
        recorder.load(resume)
    print("READY", flush=True)
    while not go.exists():
        time.sleep(0.005)
    for i in range(turns):
        list(session.send(f"{name}-question-{i}"))
    print("ID", recorder.conversation_id, flush=True)
""")


def start(name: str, turns: int, go: Path, resume: str = "-") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", WRITER, name, str(turns), str(go), resume], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(*procs: subprocess.Popen) -> None:
    """Both writers are at the line (a slow start must not let one finish before the other loads)."""
    for proc in procs:
        assert proc.stdout.readline().strip() == "READY", proc.stderr.read()


def finish(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "WARNING" not in out, out
    return int(out.split("ID")[-1])


def test_two_processes_writing_at_once_lose_nothing(tmp_path) -> None:
    go = tmp_path / "go"
    turns = 40
    a, b = start("a", turns, go), start("b", turns, go)
    wait_ready(a, b)
    go.touch()
    ids = {finish(a): "a", finish(b): "b"}
    assert len(ids) == 2
    store = Store()
    for cid, name in ids.items():
        contents = [m.content for m in store.get(cid).messages]
        expected = [x for i in range(turns) for x in (f"{name}-question-{i}", f"{name}-reply-{i}")]
        assert contents == expected


def test_two_processes_continuing_one_conversation_both_keep_their_turns(tmp_path) -> None:
    store = Store()
    with store.transaction() as db:
        base = Store.create(db, profile="fake", model="", system="", now=1.0)
        Store.write_messages(db, base, 0, [("user", "start", False, None), ("assistant", "ok", False, None)],
                             system="", now=1.0)
    store.close()
    go = tmp_path / "go"
    a, b = start("a", 5, go, str(base)), start("b", 5, go, str(base))
    wait_ready(a, b)
    go.touch()
    ids = [finish(a), finish(b)]
    assert base in ids and len(set(ids)) == 2  # one went on in the original, the other in a copy
    store = Store()
    for cid in ids:
        contents = [m.content for m in store.get(cid).messages]
        assert contents[:2] == ["start", "ok"] and len(contents) == 12
    everything = [m.content for cid in ids for m in store.get(cid).messages]
    for name in "ab":
        assert all(f"{name}-reply-{i}" in everything for i in range(5))
