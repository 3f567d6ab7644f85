"""The store when things go wrong, with the real `lcchat` command: a kill -9 mid-reply keeps
the user's message; the TUI under an outside SIGINT/SIGTERM stops, saves and exits 130/143;
the REPL carries on without a data dir; history is read from a read-only or full disk; a
damaged database is said to be damaged."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pexpect
import pytest

from lcchat.store.db import Store, default_path
from tests import models
from tests.reliability.helpers import answered, conversations, lcchat_cmd, run


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    """Wide enough to take a while per token; greedy, it never says EOS."""
    return models.write_tiny_model(tmp_path_factory.mktemp("slow") / "slow.gguf", n_embd=256, n_head=4,
                                   n_head_kv=4, n_ff=512, n_layer=4, n_ctx_train=8192)


def stored_messages() -> list[tuple[str, str, bool]]:
    if not default_path().exists():
        return []
    try:
        found = conversations()
    except sqlite3.Error:
        return []
    return [(m.role, m.content, m.interrupted) for c in found for m in c.messages]


def spawn(*args: str, **env: str) -> pexpect.spawn:
    cmd = lcchat_cmd()
    return pexpect.spawn(cmd[0], [*cmd[1:], *args], env={**os.environ, "TERM": "xterm", **env},
                         dimensions=(24, 80), timeout=60)


def drain_until(child: pexpect.spawn, predicate, what: str, timeout: float = 60.0) -> None:
    """Keep reading the terminal (so the app never blocks on it) until `predicate()`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        try:
            child.read_nonblocking(1 << 16, timeout=0.1)
        except pexpect.TIMEOUT:
            pass


# ---------------------------------------------------------------- kill -9 mid-reply


def test_kill_9_mid_reply_keeps_the_user_message(slow_model: Path) -> None:
    proc = subprocess.Popen(
        [*lcchat_cmd(), "-m", str(slow_model), "-n", "-1", "-c", "8192", "--temp", "0", "my question"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert os.read(proc.stdout.fileno(), 1), proc.stderr.read()  # the reply is streaming
        proc.kill()  # SIGKILL: nothing of lcchat runs after this
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert stored_messages() == [("user", "my question", False)]

    # Continuing it: the lost reply counts as interrupted, and the chat goes on.
    again = run(["-v", "-m", slow_model, "-c", "8192", "-n", "3", "-C", "and now?"], stdin=None)
    answered(again)
    assert b"the last reply was interrupted" in again.stderr
    (conv,) = conversations()
    assert [(m.role, m.interrupted) for m in conv.messages] == [
        ("user", False), ("assistant", True), ("user", False), ("assistant", False)]
    assert conv.messages[0].content == "my question" and conv.messages[2].content == "and now?"


# ---------------------------------------------------------------- the TUI and outside signals


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_tui_stops_saves_and_exits_on_an_outside_signal(slow_model: Path, sig: int, status: int) -> None:
    child = spawn("--tui", "-m", str(slow_model), "-n", "-1", "-c", "8192", "--temp", "0")
    try:
        child.expect("is loaded")
        child.send("tell me everything\r")
        drain_until(child, lambda: stored_messages()[:1] == [("user", "tell me everything", False)],
                    "the message to be stored")
        child.kill(sig)
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    assert child.exitstatus == status, (child.exitstatus, child.signalstatus)
    output = child.before.decode("utf-8", "replace") if isinstance(child.before, bytes) else str(child.before)
    assert "never awaited" not in output and "Traceback" not in output
    (conv,) = conversations()
    assert [(m.role, m.interrupted) for m in conv.messages] == [("user", False), ("assistant", True)]


# ---------------------------------------------------------------- the REPL without a data dir


def test_repl_carries_on_when_the_data_dir_cannot_be_made(tiny_model: Path, tmp_path: Path) -> None:
    home = tmp_path / "not-a-dir"
    home.write_text("a file where LCCHAT_HOME should be a directory")
    child = spawn("--repl", "-m", str(tiny_model), "-n", "4", LCCHAT_HOME=str(home),
                  PROMPT_TOOLKIT_NO_CPR="1")  # nothing here answers cursor-position requests
    try:
        child.expect("cannot keep the input history")
        child.expect("in memory for this session")
        child.expect_exact(">>>")
        child.send("hello\r")
        child.expect("could not save the conversation")
        child.expect(r"ctx \d+/")  # the reply's stats line: it has ended
        child.expect_exact(">>>")  # a Ctrl+D sent while it ran would be read as part of that turn
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    output = child.before.decode("utf-8", "replace") if isinstance(child.before, bytes) else ""
    assert "internal error" not in output and "Traceback" not in output
    assert child.exitstatus == 0


# ---------------------------------------------------------------- reading history off a read-only or full disk


def seed(n: int = 3) -> list[int]:
    store = Store()
    ids = []
    for i in range(n):
        with store.transaction() as db:
            cid = Store.create(db, profile="p", model="/m/x.gguf", system="", now=1000.0 + i)
            Store.write_messages(db, cid, 0, [("user", f"question {i}", False, None),
                                              ("assistant", f"answer {i}", False, None)], system="", now=1000.0 + i)
        ids.append(cid)
    store.close()
    return ids


def test_history_reads_a_database_on_a_full_disk() -> None:
    ids = seed()

    def small_files() -> None:  # SQLite cannot make the 32 KiB -shm file WAL needs
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    listing = run(["history", "list"], preexec_fn=small_files)
    assert listing.returncode == 0, listing.stderr
    assert [int(line.split()[0]) for line in listing.stdout.decode().splitlines()] == ids[::-1]
    shown = run(["history", "show", str(ids[0])], preexec_fn=small_files)
    assert shown.returncode == 0 and b"answer 0" in shown.stdout, shown.stderr
    exported = run(["history", "export", str(ids[1]), "-f", "json"], preexec_fn=small_files)
    assert exported.returncode == 0 and b'"answer 1"' in exported.stdout, exported.stderr


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv (the chmod case runs as any other user below)")
def test_history_reads_a_read_only_database_as_another_user() -> None:
    shared = Path(tempfile.mkdtemp(prefix="lcchat-ro-"))
    try:
        shared.chmod(0o755)
        home = shared / "home"
        os.environ["LCCHAT_HOME"], saved = str(home), os.environ["LCCHAT_HOME"]
        try:
            ids = seed()
        finally:
            os.environ["LCCHAT_HOME"] = saved
        data = home / "data"
        for path in [home, *home.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        result = run(["history", "list"], env={"LCCHAT_HOME": str(home), "HOME": str(home)},
                     prefix=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        assert result.returncode == 0, result.stderr
        assert len(result.stdout.decode().splitlines()) == len(ids)
        assert not list(data.glob("*-shm"))
    finally:
        for path in [shared, *shared.rglob("*")]:
            path.chmod(0o755)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only directories; the setpriv case covers it")
def test_history_reads_a_read_only_database(lcchat_home: Path) -> None:
    ids = seed()
    data = lcchat_home / "data"
    (data / "conversations.db").chmod(0o444)
    data.chmod(0o555)
    try:
        result = run(["history", "list"])
    finally:
        data.chmod(0o700)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.decode().splitlines()) == len(ids)


# ---------------------------------------------------------------- a damaged database


def test_a_damaged_database_is_said_to_be_damaged() -> None:
    store = Store()
    for i in range(12):
        with store.transaction() as db:
            cid = Store.create(db, profile="p", model="", system="", now=1000.0 + i)
            Store.write_messages(db, cid, 0, [("user", f"question {i} " + "x" * 3000, False, None),
                                              ("assistant", "y" * 3000, False, None)], system="", now=1000.0 + i)
    store.close()
    path = default_path()
    size = path.stat().st_size
    page = 4096
    assert size > 12 * page
    with open(path, "r+b") as f:  # scribble over a few pages in the middle
        for n in (size // page // 2, size // page // 2 + 1, size // page - 2):
            f.seek(n * page)
            f.write(b"\xa5" * page)

    def damaged(args: list[str]) -> bool:
        result = run(args)
        err = result.stderr.decode()
        assert "Traceback" not in err and "internal error" not in err
        if result.returncode == 0:  # what it read was whole: the damage is elsewhere
            assert not err, err
            return False
        assert result.returncode == 1, (args, result.returncode, err)
        assert f"{path} is damaged" in err and ".recover" in err, err
        assert len(err.strip().splitlines()) == 1, err
        return True

    assert damaged(["history", "list"])
    # A conversation whose pages are intact is shown (the full check reads every page, so
    # it runs only when a read goes wrong); one that runs into the damage says so.
    for action in ("show", "export"):
        assert any([damaged(["history", action, str(cid)]) for cid in range(1, 13)]), action
