"""Two processes writing at once lose nothing: WAL, BEGIN IMMEDIATE and a busy timeout."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from lcchat.store.db import Store

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from lcchat.engine.fake import FakeModel, fake_session
    from lcchat.store import attach

    name, other, turns, steps, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]

    def wait_for(path):
        deadline = time.monotonic() + 60
        while not path.exists():
            if time.monotonic() > deadline:
                sys.exit(f"{name}: {other} never reached {path.name}")
            time.sleep(0.002)

    session = fake_session(FakeModel(replies=[[f"{name}-reply-{i}"] for i in range(turns)]))
    recorder = attach(session, on_warning=lambda text: print("WARNING", text, flush=True))
    if resume != "-":
        recorder.load(resume)
    (steps / f"{name}-ready").touch()
    wait_for(steps / f"{other}-ready")
    for i in range(turns):
        if i:  # lockstep: each turn waits for the other writer's previous one
            wait_for(steps / f"{other}-{i - 1}")
        list(session.send(f"{name}-question-{i}"))
        (steps / f"{name}-{i}").touch()
    print("ID", recorder.conversation_id, flush=True)
""")


def start_pair(turns: int, steps: Path, resume: str = "-") -> tuple[subprocess.Popen, subprocess.Popen]:
    """Two writers that meet at a barrier, then take turns: their writes interleave
    whatever the scheduling, so the test always exercises two writers at once."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    steps.mkdir()
    return tuple(subprocess.Popen([sys.executable, "-c", WRITER, name, other, str(turns), str(steps), resume],
                                  env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, other in (("a", "b"), ("b", "a")))  # type: ignore[return-value]


def finish(proc: subprocess.Popen) -> int:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "WARNING" not in out, out
    return int(out.split("ID")[-1])


def test_two_processes_writing_at_once_lose_nothing(tmp_path) -> None:
    turns = 40
    a, b = start_pair(turns, tmp_path / "steps")
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
    a, b = start_pair(5, tmp_path / "steps", str(base))
    ids = [finish(a), finish(b)]
    assert base in ids and len(set(ids)) == 2  # one went on in the original, the other in a copy
    store = Store()
    for cid in ids:
        contents = [m.content for m in store.get(cid).messages]
        assert contents[:2] == ["start", "ok"] and len(contents) == 12
    everything = [m.content for cid in ids for m in store.get(cid).messages]
    for name in "ab":
        assert all(f"{name}-reply-{i}" in everything for i in range(5))
