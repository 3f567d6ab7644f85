"""What lcchat leaves on disk (issue 14): no KV state for one-shot calls, one state per
conversation under a total cap, safe state writes, `history prune`, and --no-history."""

from __future__ import annotations

import errno
import io
import os
import sys
from pathlib import Path

import pytest

from lcchat.cli import main
from lcchat.config.loader import load_profile
from lcchat.store import kvstate
from lcchat.store.db import Store, default_path
from lcchat.runtime import Run
from tests.reliability.helpers import conversations, run


@pytest.fixture(autouse=True)
def own_signal_handlers():
    """One-shot calls install the run's SIGHUP/SIGTERM handlers: keep them to this test."""
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def profile_for(path: Path, **overrides):
    values = {"model.path": str(path), "model.n_ctx": 512, "model.n_batch": 64, "sampling.seed": 7,
              "sampling.temperature": 0.0, "sampling.max_tokens": 6, **overrides}
    return load_profile("default", values)


def state_files() -> list[Path]:
    where = kvstate.state_dir()
    return sorted(where.iterdir()) if where.exists() else []


def one_shot(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """`lcchat ARGS` in this process, stdin an empty pipe (as in a script)."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def interactive_turn(profile, text: str, ref: str | None = None):
    """What the REPL and TUI do: an interactive run's session, one turn, closed."""
    run = Run(profile, continue_ref=ref, interactive=True)
    session = run.open()
    events = list(session.send(text)) if text else []
    session.close()
    return run, session, events


# ---------------------------------------------------------------- one-shot calls


def test_one_shot_calls_keep_their_text_but_no_state(tiny_model, monkeypatch, capsys) -> None:
    for i in range(100):
        status, out, err = one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "2", "-c", "256", f"q{i}")
        assert status == 0, err
    assert state_files() == []
    stored = conversations()
    assert len(stored) == 100 and [c.messages[0].content for c in stored] == [f"q{i}" for i in range(100)]
    assert all(len(c.messages) == 2 for c in stored)

    # --save-state keeps it, for a call the user means to continue
    status, _out, err = one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "2", "-c", "256",
                                 "--save-state", "keep this")
    assert status == 0, err
    (path,) = state_files()
    assert path == kvstate.state_path(conversations()[-1].id)


def test_no_history_writes_nothing(tiny_model, monkeypatch, capsys, lcchat_home) -> None:
    for i in range(100):
        status, out, err = one_shot(monkeypatch, capsys, "--no-history", "-m", str(tiny_model), "-n", "1",
                                    "-c", "256", f"secret {i}")
        assert status == 0, err
    # --save-state with --no-history is refused, and writes nothing either
    assert one_shot(monkeypatch, capsys, "--no-history", "--save-state", "-m", str(tiny_model), "x")[0] == 2
    monkeypatch.setenv("LCCHAT_NO_HISTORY", "1")
    assert one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "2", "secret env")[0] == 0
    # history off by the environment: what it opts out of wins over --save-state
    assert one_shot(monkeypatch, capsys, "--save-state", "-m", str(tiny_model), "-n", "2", "secret state")[0] == 0
    monkeypatch.delenv("LCCHAT_NO_HISTORY")
    profile = lcchat_home / "private.toml"
    profile.write_text(f'[model]\npath = "{tiny_model}"\n[store]\nenabled = false\n')
    assert one_shot(monkeypatch, capsys, "-p", str(profile), "-n", "2", "secret profile")[0] == 0
    assert not default_path().exists() and state_files() == []
    assert not (lcchat_home / "data").exists() or not any((lcchat_home / "data").iterdir())


def test_no_history_from_the_real_command(tiny_model, lcchat_home) -> None:
    result = run(["--no-history", "-m", tiny_model, "-n", "2", "private"], env={"LCCHAT_HOME": str(lcchat_home)})
    assert result.returncode == 0, result.stderr
    result = run(["-m", tiny_model, "-n", "2", "private"], env={"LCCHAT_HOME": str(lcchat_home),
                                                                 "LCCHAT_NO_HISTORY": "1"})
    assert result.returncode == 0, result.stderr
    assert not default_path().exists() and state_files() == []


def test_a_session_not_recorded_says_so_and_continues_privately(tiny_model) -> None:
    profile = profile_for(tiny_model)
    first_run, _first, _ = interactive_turn(profile, "remember blue")
    cid = first_run.recorder.conversation_id
    recording = Run(profile, continue_ref=str(cid), interactive=True, no_history=True)
    session = recording.open()
    assert recording.recorder.record is False
    assert any("not recorded" in n for n in (notice.text for notice in session.notices))
    assert [m.content for m in session.conversation.messages][0] == "remember blue"  # -C still reads
    list(session.send("private follow-up"))
    session.close()
    assert recording.recorder.session is session
    (stored,) = conversations()
    assert [m.content for m in stored.messages if m.role == "user"] == ["remember blue"]


# ---------------------------------------------------------------- interactive: one state each, a cap


def test_interactive_turns_replace_the_state_of_their_conversation(tiny_model) -> None:
    profile = profile_for(tiny_model)
    run = Run(profile, interactive=True)
    session = run.open()
    for text in ("one", "two", "three"):
        list(session.send(text))
    session.close()
    assert [p.name for p in state_files()] == [f"{run.recorder.conversation_id}.kv"]


def test_state_max_keeps_the_states_under_it_and_every_conversation_resumes(tiny_model, lcchat_home) -> None:
    # Measure one state, then allow room for about five.
    probe = profile_for(tiny_model)
    run, _session, _ = interactive_turn(probe, "measure")
    one = kvstate.size_of(run.recorder.conversation_id)
    assert one > 0
    cap = one * 5 + one // 2
    profile = profile_for(tiny_model, **{"store.state_max": f"{cap}B"})

    ids, replies = [], {}
    for i in range(20):
        run, session, _ = interactive_turn(profile, f"conversation number {i}")
        cid = run.recorder.conversation_id
        ids.append(cid)
        replies[cid] = [m.content for m in session.conversation.messages]
        assert sum(p.stat().st_size for p in state_files()) <= cap
    assert 1 <= len(state_files()) <= 5
    assert ids[-1] in {int(p.stem) for p in state_files()}  # the most recent one stays

    pruned = 0
    for cid in ids:
        has_state = kvstate.state_path(cid).exists()  # resuming one saves its state, and may prune another
        pruned += not has_state
        recording = Run(profile, continue_ref=str(cid), interactive=True)
        session = recording.open()
        assert [m.content for m in session.conversation.messages] == replies[cid]
        (said,) = [n for n in (notice.text for notice in session.notices) if n.startswith("continuing")]
        if has_state:
            assert "restored from the saved KV state" in said, said
        else:
            assert "no saved KV state (pruned, or never kept)" in said and "re-read" in said, said
        assert len(session.loop.cached) > 0  # ready: the history is in the cache either way
        session.close()
        assert recording.recorder.conversation_id == cid
        assert sum(p.stat().st_size for p in state_files()) <= cap
    assert pruned >= 15


def test_state_max_in_a_profile_must_be_a_size(tiny_model, lcchat_home) -> None:
    from lcchat.errors import LcchatError

    bad = lcchat_home / "bad.toml"
    bad.write_text('[store]\nstate_max = "lots"\n')
    with pytest.raises(LcchatError, match=r"store.state_max.*not a size"):
        load_profile(str(bad))
    from lcchat.config.sizes import parse_size

    assert parse_size("4GiB") == 4 << 30 and parse_size("500MB") == 500_000_000 and parse_size("0") == 0


# ---------------------------------------------------------------- writing a state safely


def test_enospc_while_writing_a_state_keeps_the_conversation_and_no_partial_file(
        tiny_model, monkeypatch, capsys) -> None:
    real_fdopen = os.fdopen

    class FillingFile:
        """Takes the first 1000 bytes, then the disk is full."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            n = memoryview(data).nbytes
            if self.written + n > 1000:
                self.f.write(bytes(memoryview(data)[: 1000 - self.written]))
                self.f.flush()
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += n
            return self.f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(kvstate.os, "fdopen", lambda fd, mode: FillingFile(real_fdopen(fd, mode)))
    status, out, err = one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "3", "--save-state", "hello")
    assert status == 0 and out.strip()
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lcchat: warning: the KV state was not saved"), err
    assert "partial file was removed" in lines[0]
    assert state_files() == []  # neither the state nor its temporary file
    (conv,) = conversations()
    assert conv.messages[0].content == "hello" and conv.messages[1].role == "assistant"


def test_a_state_is_not_written_without_room_for_it(tiny_model, monkeypatch, capsys) -> None:
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(kvstate.shutil, "disk_usage", lambda p: usage(10 << 30, 10 << 30, 1 << 20))
    status, _out, err = one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "3", "--save-state", "hello")
    assert status == 0
    assert err.count("\n") == 1 and "was not saved: only 1.0 MiB is free" in err, err
    assert state_files() == [] and len(conversations()) == 1


# ---------------------------------------------------------------- history list and prune


def test_history_list_shows_the_state_size(tiny_model, capsys) -> None:
    run, _session, _ = interactive_turn(profile_for(tiny_model), "with a state")
    cid = run.recorder.conversation_id
    one_shot_profile = profile_for(tiny_model)
    other = Run(one_shot_profile, interactive=False).open()
    list(other.send("without"))
    other.close()
    assert main(["history", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    from lcchat.engine.monitor import human_bytes

    with_state = next(line for line in lines if line.split()[0] == str(cid))
    assert human_bytes(kvstate.size_of(cid)) in with_state
    without = next(line for line in lines if line.split()[0] != str(cid))
    assert " - " in without


def test_history_prune(tiny_model, capsys) -> None:
    from lcchat.engine.monitor import human_bytes

    profile = profile_for(tiny_model)
    ids = []
    for text in ("old one", "recent one"):
        run, _session, _ = interactive_turn(profile, text)
        ids.append(run.recorder.conversation_id)
    old, recent = ids
    store = Store()
    with store.transaction() as db:  # last used 40 days ago
        db.execute("UPDATE conversations SET updated = updated - 40 * 86400 WHERE id = ?", (old,))
    store.close()
    then = kvstate.state_path(old).stat().st_mtime - 40 * 86400
    os.utime(kvstate.state_path(old), (then, then))
    orphan = kvstate.state_path(9999)
    orphan.write_bytes(b"x" * 5000)  # the state of a conversation that is gone

    assert main(["history", "prune"]) == 0
    said = capsys.readouterr().out
    assert said == "freed 5 KiB: removed 1 KV state\n", said
    assert not orphan.exists() and len(state_files()) == 2

    before = kvstate.size_of(old)
    assert main(["history", "prune", "--older-than", "30d", "--states-only"]) == 0
    assert capsys.readouterr().out == f"freed {human_bytes(before)}: removed 1 KV state\n"
    assert kvstate.size_of(old) == 0 and kvstate.size_of(recent) > 0 and before > 0
    assert {c.id for c in conversations()} == {old, recent}

    assert main(["history", "prune", "--older-than", "30d"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 conversation" in out and out.startswith("freed ")
    assert {c.id for c in conversations()} == {recent}

    assert main(["history", "prune", "--states-only"]) == 0
    assert "removed 1 KV state" in capsys.readouterr().out and state_files() == []
    assert {c.id for c in conversations()} == {recent}


def test_prune_age_must_be_an_age(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["history", "prune", "--older-than", "soon"])
    assert info.value.code == 2
    assert "not an age" in capsys.readouterr().err


# ---------------------------------------------------------------- what -C says


def test_continue_says_when_the_state_was_used(tiny_model) -> None:
    profile = profile_for(tiny_model)
    run, _session, _ = interactive_turn(profile, "keep going")
    cid = run.recorder.conversation_id
    resumed = Run(profile, continue_ref=str(cid), interactive=True).open()
    assert any("restored from the saved KV state" in n for n in (notice.text for notice in resumed.notices)), resumed.notices
    resumed.close()
    kvstate.remove(cid)
    resumed = Run(profile, continue_ref=str(cid), interactive=True).open()
    assert any("no saved KV state" in n and "re-read" in n for n in (notice.text for notice in resumed.notices)), resumed.notices
    resumed.close()


def test_a_stray_file_with_unicode_digits_is_not_a_state(lcchat_home) -> None:
    where = kvstate.state_dir()
    where.mkdir(parents=True, exist_ok=True)
    (where / f"²{kvstate.SUFFIX}").write_bytes(b"x")  # "²".isdigit() is True but int("²") raises
    (where / f"3{kvstate.SUFFIX}").write_bytes(b"y")
    assert [cid for _path, cid, _size, _mtime in kvstate.saved_states()] == [3]
