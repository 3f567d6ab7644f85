"""`lcchat history` (store/cli.py) in this process: what each action prints, and to
where; a model's control characters made visible on a terminal and kept as stored in a
pipe; -n; exports written privately; `prune` and its counts; the errors, one line each."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import time

import pytest

from lcchat.cli import main
from lcchat.store import cli as history
from lcchat.store import kvstate
from lcchat.store.db import Store, default_path

HOSTILE = "look\x1b]0;pwned\x07 here\x1b[2J\rend"


class Terminal(io.StringIO):
    """What sys.stdout is on a terminal, as far as lcchat can tell."""

    def isatty(self) -> bool:
        return True


def store_conversation(first: str = "hello", reply: str = "hi there", *, profile: str = "p", name: str | None = None,
                       system: str = "", updated: float | None = None) -> int:
    store = Store()
    now = time.time() if updated is None else updated
    with store.transaction() as db:
        cid = Store.create(db, profile=profile, model="/m/model.gguf", system=system, now=now)
        Store.write_messages(db, cid, 0, [("user", first, False, None), ("assistant", reply, False, None)],
                             system=system, now=now)
    if name:
        store.set_name(cid, name)
    store.close()
    return cid


def run(capsys, *argv: str, terminal: bool = False, monkeypatch=None) -> tuple[int, str, str]:
    if terminal:
        screen = Terminal()
        monkeypatch.setattr(sys, "stdout", screen)
        status = history.main(list(argv))
        return status, screen.getvalue(), capsys.readouterr().err
    status = history.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Through lcchat's main, which turns errors into one line and an exit status."""
    status = main(["history", *argv])
    out, err = capsys.readouterr()
    return status, out, err


# ---------------------------------------------------------------- control characters


@pytest.mark.parametrize("argv", [("list",), ("show", "{cid}"), ("export", "{cid}"), ("export", "{cid}", "-f", "json")])
def test_a_terminal_is_sent_no_control_characters(capsys, monkeypatch, argv) -> None:
    cid = store_conversation(HOSTILE, HOSTILE, profile="p\x1b[31m", system=HOSTILE)
    args = [a.format(cid=cid) for a in argv]
    status, shown, _err = run(capsys, *args, terminal=True, monkeypatch=monkeypatch)
    assert status == 0 and shown
    assert not any(c in shown for c in "\x1b\x07\r"), repr(shown)
    if "json" not in args:  # JSON escapes them itself
        assert "␛" in shown and "\u2407" in shown


@pytest.mark.parametrize("action", ["show", "export"])
def test_a_pipe_gets_the_text_as_stored(capsys, action) -> None:
    cid = store_conversation(HOSTILE, HOSTILE)
    status, out, _err = run(capsys, action, str(cid))
    assert status == 0 and HOSTILE in out


def test_a_listing_to_a_pipe_keeps_the_profile_as_stored(capsys) -> None:
    store_conversation(profile="p\x1b[31m")
    assert "p\x1b[31m" in run(capsys, "list")[1]


# ---------------------------------------------------------------- list


def test_list_shows_the_most_recent_first_and_n_of_them(capsys) -> None:
    old = store_conversation("old one", updated=1_700_000_000.0)
    middle = store_conversation("middle one", updated=1_700_000_100.0)
    new = store_conversation("new one", updated=1_700_000_200.0)
    firsts = lambda out: [int(line.split()[0]) for line in out.splitlines()]  # noqa: E731
    assert firsts(run(capsys, "list")[1]) == [new, middle, old]
    assert firsts(run(capsys, "list", "-n", "2")[1]) == [new, middle]
    assert firsts(run(capsys, "list", "--limit", "1")[1]) == [new]
    assert firsts(run(capsys, "list", "-n", "0")[1]) == [new, middle, old]  # 0 or less: all of them
    assert firsts(run(capsys, "list", "-n", "-3")[1]) == [new, middle, old]


def test_a_limited_listing_is_not_a_short_one(capsys, monkeypatch) -> None:
    """-n 2 of 3 conversations lists 2: that is no sign of damage, so no full check."""
    checks = []
    monkeypatch.setattr(Store, "check", lambda self: checks.append(1))
    for text in ("a", "b", "c"):
        store_conversation(text)
    assert run(capsys, "list", "-n", "2")[0] == 0
    assert run(capsys, "list", "-n", "3")[0] == 0
    assert run(capsys, "list", "-n", "4")[0] == 0
    assert checks == []
    monkeypatch.setattr(Store, "summaries", lambda self, limit=None: [])
    status, _out, err = run(capsys, "list", "-n", "1")
    assert status == 0 and checks == [1]
    assert err == ""  # conversations are stored: the listing came out short, it is not empty
    assert run(capsys, "list", "-n", "-1")[0] == 0  # a limit of no meaning is no limit: checked too
    assert checks == [1, 1]


def test_a_short_listing_of_a_healthy_database_exits_0(capsys, monkeypatch) -> None:
    store_conversation("a")
    store_conversation("b")
    real = Store.summaries
    monkeypatch.setattr(Store, "summaries", lambda self, limit=None: real(self, limit)[:1])
    status, out, err = run(capsys, "list")
    assert status == 0 and len(out.splitlines()) == 1 and err == ""


def test_list_shows_the_size_of_each_saved_state(capsys) -> None:
    with_state, without = store_conversation("with"), store_conversation("without")
    kvstate.save(kvstate.state_path(with_state), "print", [1], b"x" * 3000)
    lines = {int(line.split()[0]): line for line in run(capsys, "list")[1].splitlines()}
    assert "3 KiB" in lines[with_state] and "  -  " in lines[without]


def test_options_alone_list_and_help_is_help(capsys) -> None:
    cid = store_conversation()
    for argv in ((), ("-v",), ("--verbose",), ("--debug",)):
        status, out, _err = run(capsys, *argv)
        assert status == 0 and out.split()[0] == str(cid), argv
    for flag in ("-h", "--help"):
        with pytest.raises(SystemExit) as info:
            history.main([flag])
        assert info.value.code == 0
        said = capsys.readouterr().out
        assert said.startswith("usage: lcchat history")
        assert ("Stored conversations: every message is saved as it is sent, every reply as it ends. "
                "`lcchat -C [ID]` continues one.") in " ".join(said.split())


def test_an_empty_store_says_where_it_is_looking(capsys, lcchat_home) -> None:
    status, out, err = run(capsys, "list")
    assert status == 0 and out == ""
    assert err == f"no conversations stored yet (in {default_path()}); every chat is saved as it goes\n"


# ---------------------------------------------------------------- show, export, rm


def test_show_and_export_take_a_name(capsys) -> None:
    cid = store_conversation("named one", name="trip")
    status, out, _err = run(capsys, "show", "trip")
    assert status == 0 and out.startswith(f"# conversation {cid} (trip)")
    status, out, _err = run(capsys, "export", "trip", "-f", "json")
    assert status == 0 and json.loads(out)["id"] == cid


def test_export_to_a_file_replaces_it_whole_and_prints_nothing(capsys, tmp_path) -> None:
    cid = store_conversation("short")
    target = tmp_path / "out.md"
    target.write_text("x" * 100_000)
    status, out, _err = run(capsys, "export", str(cid), "-o", str(target))
    assert status == 0 and out == ""
    text = target.read_text()
    assert text.startswith("# short") and "x" * 100 not in text


def test_export_to_a_file_in_the_home_directory(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cid = store_conversation("home")
    assert run(capsys, "export", str(cid), "-o", "~/c.json", "--format", "json")[0] == 0
    assert json.loads((tmp_path / "c.json").read_text())["id"] == cid


def test_an_export_that_cannot_be_written_is_one_line(capsys, tmp_path) -> None:
    cid = store_conversation()
    where = tmp_path / "no" / "such" / "dir" / "c.md"
    status, out, err = cli(capsys, "export", str(cid), "-o", str(where))
    assert status == 1 and out == ""
    assert err == f"lcchat: cannot write {where}: No such file or directory\n"


def test_a_new_export_is_private_from_the_moment_it_exists(tmp_path, monkeypatch) -> None:
    """Not made 0644 by the umask and then narrowed: another user could open it between."""
    modes = []
    real_fchmod = os.fchmod

    def fchmod(fd, mode):
        modes.append(os.fstat(fd).st_mode & 0o777)
        return real_fchmod(fd, mode)

    monkeypatch.setattr(history.os, "fchmod", fchmod)
    old = os.umask(0o022)
    try:
        history.write_private(str(tmp_path / "c.md"), "text")
    finally:
        os.umask(old)
    assert modes == [0o600]


def test_a_written_export_closes_nothing_else(tmp_path, monkeypatch) -> None:
    closed = []
    real_close = os.close
    monkeypatch.setattr(history.os, "close", lambda fd: closed.append(fd) or real_close(fd))
    history.write_private(str(tmp_path / "c.md"), "text é")
    assert closed == [] and (tmp_path / "c.md").read_text(encoding="utf-8") == "text é"


def test_write_private_closes_the_file_when_it_cannot_be_made_private(tmp_path, monkeypatch) -> None:
    closed = []
    real_close = os.close

    def no_chmod(fd, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(history.os, "fchmod", no_chmod)
    monkeypatch.setattr(history.os, "close", lambda fd: closed.append(fd) or real_close(fd))
    with pytest.raises(history.LcchatError, match="cannot write .*: Operation not permitted"):
        history.write_private(str(tmp_path / "c.md"), "text")
    assert len(closed) == 1


def test_rm_says_what_it_removed_and_removes_the_state(capsys) -> None:
    cid, other = store_conversation("gone"), store_conversation("stays")
    kvstate.save(kvstate.state_path(cid), "print", [1], b"x")
    kvstate.save(kvstate.state_path(other), "print", [1], b"y")
    status, out, _err = run(capsys, "rm", str(cid))
    assert status == 0 and out == f"removed conversation {cid}\n"
    assert Store().get(cid) is None and not kvstate.state_path(cid).exists()
    assert Store().get(other) is not None and kvstate.state_path(other).exists()


def test_rm_of_a_conversation_deleted_meanwhile_is_unknown(capsys, monkeypatch) -> None:
    cid = store_conversation()
    monkeypatch.setattr(Store, "delete", lambda self, c: False)
    status, _out, err = cli(capsys, "rm", str(cid))
    assert status == 2 and err == f"lcchat: no conversation '{cid}'\n"


@pytest.mark.parametrize("action", ["show", "export"])
def test_a_conversation_deleted_meanwhile_is_unknown(capsys, monkeypatch, action) -> None:
    cid = store_conversation()
    monkeypatch.setattr(Store, "get", lambda self, c: None)
    status, out, err = cli(capsys, action, str(cid))
    assert status == 2 and out == "" and err == f"lcchat: no conversation '{cid}'\n"


# ---------------------------------------------------------------- errors


def test_a_read_error_is_one_line_naming_the_database(capsys, monkeypatch) -> None:
    store_conversation()

    def fails(self, limit=None):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Store, "summaries", fails)
    monkeypatch.setattr(Store, "check", lambda self: None)  # not damaged: the error itself is said
    status, out, err = cli(capsys, "list")
    assert status == 1 and out == ""
    assert err == f"lcchat: cannot read the conversations in {default_path()}: disk I/O error\n"


def test_a_failed_read_of_a_damaged_database_says_it_is_damaged(capsys, monkeypatch) -> None:
    from lcchat.store.db import Damaged

    cid = store_conversation()

    def damaged(self):
        raise Damaged(self.path, "row 3 missing from index")

    def fails(self, c):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(Store, "check", damaged)
    monkeypatch.setattr(Store, "get", fails)
    monkeypatch.setattr(Store, "summaries", lambda self, limit=None: fails(self, None))
    for argv in (("show", str(cid)), ("export", str(cid)), ("list",)):
        status, _out, err = cli(capsys, *argv)
        assert status == 1 and err.startswith(f"lcchat: {default_path()} is damaged (row 3 missing from index)"), argv


def test_an_unknown_id_is_said_as_it_is_when_the_database_is_healthy(capsys, monkeypatch) -> None:
    store_conversation()
    checked = []
    monkeypatch.setattr(Store, "check", lambda self: checked.append(1))
    status, _out, err = cli(capsys, "show", "99")
    assert status == 2 and err.startswith("lcchat: no conversation '99'") and checked == [1]
    status, _out, err = cli(capsys, "rm", "99")  # rm never reads more than it must
    assert status == 2 and checked == [1]


def test_a_damaged_listing_says_so_after_what_it_could_show(capsys, monkeypatch) -> None:
    from lcchat.store.db import Damaged

    cid = store_conversation()
    store_conversation()
    real = Store.summaries
    monkeypatch.setattr(Store, "summaries", lambda self, limit=None: real(self, limit)[1:])
    monkeypatch.setattr(Store, "check", lambda self: (_ for _ in ()).throw(Damaged(self.path, "bad page")))
    status, out, err = run(capsys, "list")
    assert status == 1 and [int(line.split()[0]) for line in out.splitlines()] == [cid]
    assert err == (f"lcchat: {default_path()} is damaged (bad page); some conversations may be missing. "
                   f"To recover what is left: {__import__('lcchat.store.db', fromlist=['x']).recover_hint(default_path())}"
                   " What could be read is shown above.\n")


def test_output_that_cannot_be_encoded_is_replaced_not_a_crash(capsys, monkeypatch) -> None:
    cid = store_conversation("café crème")
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    monkeypatch.setattr(sys, "stdout", out)
    assert history.main(["show", str(cid)]) == 0
    out.flush()
    assert b"caf? cr?me" in raw.getvalue()


# ---------------------------------------------------------------- prune


@pytest.mark.parametrize("text, seconds", [("30d", 30 * 86400), ("12h", 12 * 3600), ("2w", 14 * 86400),
                                           ("45", 45 * 86400), ("90s", 90), ("5m", 300), (" 3 d ", 3 * 86400),
                                           ("999999999s", 999999999)])
def test_an_age_is_a_number_and_a_unit(text, seconds) -> None:
    assert history.parse_age(text) == seconds


@pytest.mark.parametrize("text", ["soon", "3x", "1234567890", "-1d", "1.5d", "d", ""])
def test_anything_else_is_not_an_age(text) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError) as info:
        history.parse_age(text)
    assert str(info.value) == f"{text!r} is not an age; write it like 30d, 12h or 2w"


def test_prune_on_a_read_only_store_says_so(capsys, monkeypatch) -> None:
    store_conversation()
    real_init = Store.__init__

    def read_only(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.read_only = True

    monkeypatch.setattr(Store, "__init__", read_only)
    status, out, err = cli(capsys, "prune")
    assert status == 1 and out == "" and err == f"lcchat: {default_path()} is read-only; nothing can be pruned\n"


def test_prune_counts_what_it_removed(capsys) -> None:
    conversations = [store_conversation(f"old {i}", updated=time.time() - 40 * 86400) for i in range(2)]
    recent = store_conversation("recent")
    for cid in (*conversations, recent):
        kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * 100)
    status, out, _err = run(capsys, "prune")
    assert status == 0 and out == "freed 0 B: removed 0 KV states\n"
    for cid in (*conversations, recent):
        path = kvstate.state_path(cid)
        then = time.time() - 40 * 86400
        os.utime(path, (then, then))
    os.utime(kvstate.state_path(recent))
    status, out, _err = run(capsys, "prune", "--older-than", "30d")
    assert status == 0 and out.startswith("freed ") and out.endswith(": removed 2 conversations and 2 KV states\n")
    assert Store().ids() == [recent] and [cid for _p, cid, _s, _m in kvstate.saved_states()] == [recent]
    one = kvstate.size_of(recent)
    status, out, _err = run(capsys, "prune", "--states-only")
    assert out == f"freed {kvstate.human(one)}: removed 1 KV state\n"


def test_prune_of_old_conversations_counts_the_database_space_freed(capsys) -> None:
    for i in range(30):
        store_conversation(f"old {i}", "x" * 20_000, updated=time.time() - 40 * 86400)
    keep = store_conversation("recent")
    before = os.path.getsize(default_path()) + (os.path.getsize(str(default_path()) + "-wal")
                                                if os.path.exists(str(default_path()) + "-wal") else 0)
    status, out, _err = run(capsys, "prune", "--older-than", "30d")
    assert status == 0 and out.endswith("removed 30 conversations and 0 KV states\n")
    after = os.path.getsize(default_path())
    import re

    assert re.match(r"freed [1-9][0-9.]* (KiB|MiB): ", out), out
    assert after < before and Store().ids() == [keep]


def test_prune_with_states_only_and_an_age_keeps_recent_states_and_every_conversation(capsys) -> None:
    old, new = store_conversation("old"), store_conversation("new")
    for cid in (old, new):
        kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * 100)
    then = time.time() - 3 * 86400
    os.utime(kvstate.state_path(old), (then, then))
    status, out, _err = run(capsys, "prune", "--states-only", "--older-than", "2d")
    assert status == 0 and out.endswith("removed 1 KV state\n")
    assert not kvstate.state_path(old).exists() and kvstate.state_path(new).exists()
    assert sorted(Store().ids()) == sorted([old, new])


def test_prune_removes_stale_temporary_files_and_orphans_only(capsys) -> None:
    cid = store_conversation()
    kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * 100)
    where = kvstate.state_dir()
    stale, fresh = where / f".{cid}.kv.1.tmp", where / f".{cid}.kv.2.tmp"
    stale.write_bytes(b"s" * 2048)
    fresh.write_bytes(b"f" * 10)
    then = time.time() - 3601 - 60
    os.utime(stale, (then, then))
    orphan = kvstate.state_path(cid + 1000)
    orphan.write_bytes(b"o" * 1024)
    status, out, _err = run(capsys, "prune")
    assert status == 0 and out == "freed 3 KiB: removed 1 KV state\n"  # the temp file is no state
    assert not stale.exists() and not orphan.exists() and fresh.exists() and kvstate.state_path(cid).exists()


def test_prune_keeps_the_states_under_the_profiles_cap(capsys, lcchat_home, monkeypatch) -> None:
    ids = [store_conversation(f"c{i}") for i in range(3)]
    for age, cid in zip((300, 200, 100), ids):
        kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * 1000)
        then = time.time() - age
        os.utime(kvstate.state_path(cid), (then, then))
    one = kvstate.size_of(ids[0])
    from lcchat.config import loader
    from lcchat.config.schema import Profile

    capped = Profile(name="default")
    capped.store.state_max = f"{2 * one}B"
    monkeypatch.setattr(loader, "load_profile", lambda *a, **k: capped)
    status, out, _err = run(capsys, "prune")
    assert status == 0 and out == f"freed {kvstate.human(one)}: removed 1 KV state\n"
    assert [cid for _p, cid, _s, _m in kvstate.saved_states()] == ids[1:]


@pytest.mark.parametrize("error", ["profile", "size"])
def test_prune_with_a_broken_profile_uses_the_default_cap(capsys, monkeypatch, error) -> None:
    from lcchat.config import loader
    from lcchat.errors import LcchatError

    cid = store_conversation()
    kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * 1000)

    def broken(*args, **kwargs):
        if error == "profile":
            raise LcchatError("default.toml: line 1: invalid TOML")
        raise ValueError("not a size")

    monkeypatch.setattr(loader, "load_profile", broken)
    monkeypatch.setattr(kvstate, "default_cap", lambda: 10)
    status, out, _err = run(capsys, "prune")
    assert status == 0 and out.endswith("removed 1 KV state\n") and kvstate.saved_states() == []


def test_prune_goes_on_past_a_state_it_cannot_delete(capsys, monkeypatch) -> None:
    from pathlib import Path

    a = kvstate.state_path(5001)
    b = kvstate.state_path(5002)
    for path in (a, b):
        kvstate.save(path, "print", [1], b"x" * 1000)
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self == a:
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    store_conversation()
    size = b.stat().st_size
    status, out, _err = run(capsys, "prune")
    assert status == 0 and out == f"freed {kvstate.human(size)}: removed 1 KV state\n"
    assert a.exists() and not b.exists()


def test_prune_counts_the_states_of_the_conversations_it_removed(capsys, monkeypatch) -> None:
    monkeypatch.setattr(history, "_db_bytes", lambda store: 1000)  # the database does not shrink
    old = [store_conversation(f"old {i}", updated=time.time() - 40 * 86400) for i in range(2)]
    sizes = []
    for i, cid in enumerate(old):
        kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * (3000 + 2000 * i))
        sizes.append(kvstate.size_of(cid))
    status, out, _err = run(capsys, "prune", "--older-than", "30d")
    assert status == 0 and out == f"freed {kvstate.human(sum(sizes))}: removed 2 conversations and 2 KV states\n"


@pytest.mark.parametrize("before, after, freed", [(5000, 2000, "3 KiB"), (2000, 2048, "0 B"), (2000, 2000, "0 B")])
def test_prune_counts_what_the_database_gave_back(capsys, monkeypatch, before, after, freed) -> None:
    sizes = iter([before, after])
    monkeypatch.setattr(history, "_db_bytes", lambda store: next(sizes))
    store_conversation("old", updated=time.time() - 40 * 86400)
    status, out, _err = run(capsys, "prune", "--older-than", "30d")
    assert status == 0 and out == f"freed {freed}: removed 1 conversation and 0 KV states\n"


def test_the_database_size_counts_its_write_ahead_log(tmp_path) -> None:
    class Place:
        path = tmp_path / "c.db"

    assert history._db_bytes(Place) == 0
    Place.path.write_bytes(b"d" * 100)
    assert history._db_bytes(Place) == 100
    (tmp_path / "c.db-wal").write_bytes(b"w" * 50)
    assert history._db_bytes(Place) == 150


def test_prune_ages_are_older_than_not_as_old_as(capsys, monkeypatch) -> None:
    now = 1_800_000_000.0
    monkeypatch.setattr(history.time, "time", lambda: now)
    kept, gone = store_conversation("kept"), store_conversation("gone")
    for cid, age in ((kept, 2 * 86400), (gone, 2 * 86400 + 1)):
        kvstate.save(kvstate.state_path(cid), "print", [1], b"x")
        os.utime(kvstate.state_path(cid), (now - age, now - age))
    status, out, _err = run(capsys, "prune", "--states-only", "--older-than", "2d")
    assert out.endswith("removed 1 KV state\n")
    assert kvstate.state_path(kept).exists() and not kvstate.state_path(gone).exists()


def test_a_temporary_file_is_a_crashed_saves_after_an_hour(capsys, monkeypatch) -> None:
    now = 1_800_000_000.0
    monkeypatch.setattr(history.time, "time", lambda: now)
    store_conversation()
    where = kvstate.state_dir()
    where.mkdir(parents=True)
    hour, past = where / ".1.kv.1.tmp", where / ".1.kv.2.tmp"
    for path, age in ((hour, 3600), (past, 3600.5)):
        path.write_bytes(b"t")
        os.utime(path, (now - age, now - age))
    assert run(capsys, "prune")[1] == "freed 1 B: removed 0 KV states\n"
    assert hour.exists() and not past.exists()


def test_prune_of_old_conversations_leaves_the_cap_alone(capsys, monkeypatch) -> None:
    """--older-than chooses by age only; the cap is for `prune` alone."""
    from lcchat.config import loader
    from lcchat.config.schema import Profile

    capped = Profile(name="default")
    capped.store.state_max = "1B"
    monkeypatch.setattr(loader, "load_profile", lambda *a, **k: capped)
    cid = store_conversation("recent")
    kvstate.save(kvstate.state_path(cid), "print", [1], b"x" * 100)
    assert run(capsys, "prune", "--older-than", "30d")[1] == "freed 0 B: removed 0 KV states\n"
    assert kvstate.state_path(cid).exists()
    assert run(capsys, "prune")[1].endswith("removed 1 KV state\n")
    assert not kvstate.state_path(cid).exists()


# ---------------------------------------------------------------- the interface


def test_the_history_flags_are_the_reviewed_ones() -> None:
    """Each action's and flag's names, metavar, help, choices and default are what
    tests/cli_interface.json holds for `lcchat history` (its --help is made from them), so a
    change must be deliberate: after one, run `python -m tests.clirun`."""
    from tests.clirun import INTERFACE, _parser

    reviewed = json.loads(INTERFACE.read_text(encoding="utf-8"))["lcchat history"]
    now = json.loads(json.dumps(_parser(history.build_parser()), ensure_ascii=False, default=repr))
    (actions,) = [g["actions"] for g in now["groups"] if any("commands" in a for a in g["actions"])]
    (was,) = [g["actions"] for g in reviewed["groups"] if any("commands" in a for a in g["actions"])]
    commands, before = actions[-1]["commands"], was[-1]["commands"]
    assert list(commands) == list(before) == ["list", "show", "export", "rm", "prune"]
    for name in before:
        assert commands[name] == before[name], f"lcchat history {name} changed: run python -m tests.clirun if meant"
    assert now == reviewed


def test_export_writes_markdown_unless_told(capsys) -> None:
    cid = store_conversation("default format")
    assert run(capsys, "export", str(cid))[1].startswith("# default format\n")
