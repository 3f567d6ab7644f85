"""Saved KV state files (store/kvstate.py) without a model: the file format and what a
damaged or hostile file does (nothing but a re-read), the free-space check, and the cap
on all states together (least recently used deleted first, the one just saved last)."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import zlib
from collections import namedtuple
from pathlib import Path

import pytest

from lcchat.store import kvstate

PRINT = "model-a/ctx-512"
Usage = namedtuple("Usage", "total used free")


def saved(cid: int, state: bytes = b"state bytes", tokens: list[int] | None = None, print_: str = PRINT) -> Path:
    path = kvstate.state_path(cid)
    kvstate.save(path, print_, [1, 2, 3] if tokens is None else tokens, state)
    return path


def aged(path: Path, seconds_ago: float) -> None:
    then = path.stat().st_mtime - seconds_ago
    os.utime(path, (then, then))


def hand_made(path: Path, header: dict | bytes, state: bytes, *, magic: bytes = kvstate.MAGIC) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(magic + head + b"\n" + state)
    return path


def good_header(state: bytes, **changes) -> dict:
    return {"fingerprint": PRINT, "tokens": [5, 6], "size": len(state), "crc32": zlib.crc32(state), **changes}


# ---------------------------------------------------------------- the file


def test_a_state_file_is_private_and_in_the_data_dir(lcchat_home) -> None:
    assert kvstate.state_dir() == lcchat_home / "data" / "state"
    assert kvstate.state_path(12) == lcchat_home / "data" / "state" / "12.kv"
    path = saved(12, b"\x00\x01payload", [7, 8, 9])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    raw = path.read_bytes()
    assert raw.startswith(b"LCCHAT-KV 1\n") and raw.endswith(b"\n\x00\x01payload")
    header = json.loads(raw[len(kvstate.MAGIC):].split(b"\n", 1)[0])
    assert header == {"fingerprint": PRINT, "tokens": [7, 8, 9], "size": 9, "crc32": zlib.crc32(b"\x00\x01payload")}
    assert kvstate.load(path, PRINT) == ([7, 8, 9], bytearray(b"\x00\x01payload"))


def test_a_saved_file_is_never_larger_than_file_size_says(lcchat_home) -> None:
    for tokens, state in (([], b""), ([1], b"x"), (list(range(50_000, 50_300)), bytes(range(256)) * 40)):
        path = saved(1, state, tokens)
        widest = kvstate.file_size(PRINT, tokens, len(state))
        assert path.stat().st_size <= widest <= path.stat().st_size + 10  # crc32 at its widest: 10 digits


def test_a_memoryview_is_saved_whole(lcchat_home) -> None:
    """Model.save_state gives a view of llama.cpp's buffer: its size is nbytes, not len."""
    import array

    buffer = array.array("I", range(100))  # 400 bytes, 100 items
    path = saved(3, memoryview(buffer))
    assert kvstate.load(path, PRINT) == ([1, 2, 3], bytearray(buffer.tobytes()))


def test_a_save_replaces_the_old_file_and_leaves_no_temporary(lcchat_home) -> None:
    saved(4, b"first")
    path = saved(4, b"second", [9])
    assert kvstate.load(path, PRINT) == ([9], bytearray(b"second"))
    assert [p.name for p in kvstate.state_dir().iterdir()] == ["4.kv"]


def test_loading_marks_the_state_as_used(lcchat_home) -> None:
    path = saved(5)
    aged(path, 3600)
    before = path.stat().st_mtime
    assert kvstate.load(path, PRINT) is not None
    assert path.stat().st_mtime > before + 3000


# ---------------------------------------------------------------- damaged or hostile files re-read


UNREADABLE, DAMAGED, OTHER, NOT_A_HEADER = "unreadable KV state", "damaged KV state", \
    "saved for other settings; re-evaluating", "not a KV state header"


def without(key: str) -> dict:
    return {k: v for k, v in good_header(b"abc").items() if k != key}


@pytest.mark.parametrize("make, said", [
    pytest.param(lambda p: hand_made(p, good_header(b"abc"), b"abc", magic=b"LCCHAT-KV 2\n"), None, id="other-magic"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc"), b"abc", magic=b""), None, id="no-magic"),
    pytest.param(lambda p: p.parent.mkdir(parents=True, exist_ok=True) or p.write_bytes(b""), None, id="empty"),
    pytest.param(lambda p: hand_made(p, b"{not json", b"abc"), UNREADABLE, id="bad-json"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", fingerprint="other"), b"abc"), OTHER, id="other-settings"),
    pytest.param(lambda p: hand_made(p, without("fingerprint"), b"abc"), OTHER, id="no-fingerprint"),
    pytest.param(lambda p: hand_made(p, without("size"), b"abc"), UNREADABLE, id="no-size"),
    pytest.param(lambda p: hand_made(p, without("tokens"), b"abc"), UNREADABLE, id="no-tokens"),
    pytest.param(lambda p: hand_made(p, without("crc32"), b"abc"), DAMAGED, id="no-checksum"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", size="three"), b"abc"), UNREADABLE, id="size-not-a-number"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", size=-1), b"abc"), DAMAGED + " (not -1 bytes)",
                 id="negative-size"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", tokens=["a"]), b"abc"), UNREADABLE, id="token-not-a-number"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", tokens=5), b"abc"), UNREADABLE, id="tokens-not-a-list"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", tokens=[None]), b"abc"), UNREADABLE, id="token-null"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", size=4), b"abc"), DAMAGED + " (not 4 bytes)",
                 id="shorter-than-said"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", size=2), b"abc"), DAMAGED + " (not 2 bytes)",
                 id="longer-than-said"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", crc32=zlib.crc32(b"abd")), b"abc"), DAMAGED,
                 id="bad-checksum"),
    pytest.param(lambda p: hand_made(p, good_header(b"abc", crc32=None), b"abc"), DAMAGED, id="null-checksum"),
    pytest.param(lambda p: hand_made(p, [1, 2], b"abc"), NOT_A_HEADER, id="header-a-list"),
    pytest.param(lambda p: hand_made(p, b'"fingerprint"', b"abc"), NOT_A_HEADER, id="header-a-string"),
    pytest.param(lambda p: hand_made(p, b"\xff\xfe", b"abc"), UNREADABLE, id="header-not-utf8"),
    pytest.param(lambda p: p.parent.mkdir(parents=True, exist_ok=True) or p.mkdir(), UNREADABLE, id="a-directory"),
])
def test_a_damaged_or_foreign_state_file_is_not_used_and_v_says_why(lcchat_home, caplog, make, said) -> None:
    path = kvstate.state_path(6)
    make(path)
    with caplog.at_level(logging.DEBUG, logger="lcchat.store"):
        assert kvstate.load(path, PRINT) is None
    records = [r for r in caplog.records if r.name == "lcchat.store"]
    if said is None:
        assert records == []
        return
    (record,) = records
    assert record.levelno == logging.DEBUG and record.getMessage() == f"{path}: {said}"
    assert bool(record.exc_info) is (said == UNREADABLE)  # -v shows why it could not be read


def test_a_missing_state_file_is_not_used(lcchat_home) -> None:
    assert kvstate.load(kvstate.state_path(404), PRINT) is None


def test_a_state_that_claims_to_be_huge_is_refused_before_memory_is_taken(lcchat_home, monkeypatch) -> None:
    """A header saying 100 GiB must not become a 100 GiB buffer."""
    taken = []
    real = bytearray

    def counting(size=0, *rest):
        taken.append(size)
        return real(size, *rest)

    monkeypatch.setattr(kvstate, "bytearray", counting, raising=False)
    path = hand_made(kvstate.state_path(7), good_header(b"abc", size=100 << 30), b"abc")
    assert kvstate.load(path, PRINT) is None
    over = hand_made(kvstate.state_path(8), good_header(b"abc", size=kvstate.MAX_BYTES + 1), b"abc")
    assert kvstate.load(over, PRINT) is None
    assert taken == []
    # a short file that claims the largest size allowed takes no memory for it either
    short = hand_made(kvstate.state_path(12), good_header(b"abc", size=kvstate.MAX_BYTES), b"abc")
    assert kvstate.load(short, PRINT) is None
    assert taken == []
    # the largest state that may be saved is read
    monkeypatch.setattr(kvstate, "MAX_BYTES", 3)
    assert kvstate.load(hand_made(kvstate.state_path(9), good_header(b"abc"), b"abc"), PRINT) == ([5, 6], b"abc")
    assert taken == [3]


def test_a_header_line_without_end_is_not_read_whole(lcchat_home, monkeypatch) -> None:
    """A file that is one endless line is read up to the bound, not into memory whole."""
    sizes = []
    real_loads = json.loads
    monkeypatch.setattr(kvstate.json, "loads", lambda text: sizes.append(len(text)) or real_loads(text))
    path = kvstate.state_path(10)
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        f.write(kvstate.MAGIC)
        f.write(b" " * ((64 << 20) + 100))
    assert kvstate.load(path, PRINT) is None
    assert sizes == [64 << 20]


def test_a_state_that_cannot_be_read_is_not_used(lcchat_home) -> None:
    path = saved(11)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):  # root reads it anyway: make the read fail another way
            path.chmod(0o600)
            path.unlink()
            path.symlink_to(path)  # a loop: ELOOP
        assert kvstate.load(path, PRINT) is None
    finally:
        if not path.is_symlink():
            path.chmod(0o600)


# ---------------------------------------------------------------- remove, size, listing


def test_remove_deletes_a_state_and_says_how_much_it_freed(lcchat_home) -> None:
    path = saved(13, b"x" * 1000)
    size = path.stat().st_size
    assert kvstate.size_of(13) == size > 1000
    assert kvstate.remove(13) == size
    assert not path.exists() and kvstate.size_of(13) == 0
    assert kvstate.remove(13) == 0  # nothing there: nothing freed, no error


def test_saved_states_lists_ours_least_recently_used_first(lcchat_home) -> None:
    old, new, middle = saved(21), saved(22, b"yy"), saved(23, b"zzz")
    aged(old, 300)
    aged(middle, 100)
    where = kvstate.state_dir()
    tmp = where / ".22.kv.999.tmp"
    tmp.write_bytes(b"partial")
    aged(tmp, 200)
    for name in ("notes.txt", "22.kv.bak", "-1.kv", "x.kv", "12a.kv", ".hidden", "1.tmp"):
        (where / name).write_bytes(b"not ours")
    (where / "30.kv").mkdir()
    (where / "31.kv").symlink_to(new)
    found = kvstate.saved_states()
    assert [(p.name, cid) for p, cid, _size, _mtime in found] == [
        ("21.kv", 21), (".22.kv.999.tmp", None), ("23.kv", 23), ("22.kv", 22)]
    assert [size for _p, _cid, size, _m in found] == [old.stat().st_size, 7, middle.stat().st_size, new.stat().st_size]
    assert [m for _p, _cid, _size, m in found] == sorted(m for _p, _cid, _size, m in found)


def test_a_file_gone_before_it_is_looked_at_is_skipped_and_the_rest_listed(lcchat_home, monkeypatch) -> None:
    """Another process may delete a state between the listing and its stat()."""
    for cid in (51, 52, 53):
        saved(cid)
    real_scandir = os.scandir

    def listing_then_one_gone(path):
        entries = list(real_scandir(path))
        os.unlink(entries[0].path)
        return entries

    monkeypatch.setattr(kvstate.os, "scandir", listing_then_one_gone)
    assert len(kvstate.saved_states()) == 2


def test_saved_states_of_no_directory_is_none(lcchat_home) -> None:
    assert kvstate.saved_states() == []
    kvstate.state_dir().parent.mkdir(parents=True)
    kvstate.state_dir().write_text("a file where the directory should be")
    assert kvstate.saved_states() == []


# ---------------------------------------------------------------- free space


def test_a_save_leaves_keep_free_bytes_of_the_disk(lcchat_home, monkeypatch) -> None:
    path = kvstate.state_path(40)
    state = b"s" * 100
    need = kvstate.file_size(PRINT, [1], len(state)) - len(str(0xFFFFFFFF)) + len(str(zlib.crc32(state)))
    monkeypatch.setattr(kvstate.shutil, "disk_usage", lambda p: Usage(1 << 40, 0, need + kvstate.KEEP_FREE))
    kvstate.save(path, PRINT, [1], state)  # exactly KEEP_FREE left: saved
    assert path.stat().st_size == need
    path.unlink()
    monkeypatch.setattr(kvstate.shutil, "disk_usage", lambda p: Usage(1 << 40, 0, need + kvstate.KEEP_FREE - 1))
    with pytest.raises(kvstate.StateNotSaved) as info:
        kvstate.save(path, PRINT, [1], state)
    assert info.value.errno == errno.ENOSPC
    said = str(info.value)
    assert said == (f"the KV state ({kvstate.human(need)}) was not saved: only "
                    f"{kvstate.human(need + kvstate.KEEP_FREE - 1)} is free in {path.parent}; the conversation "
                    "itself is saved and resumes by re-reading its text")
    assert list(kvstate.state_dir().iterdir()) == []


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_disk_that_fills_while_saving_leaves_no_file(lcchat_home, monkeypatch, code) -> None:
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(b"some")
            self.f.flush()
            raise OSError(code, os.strerror(code))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    saved(41, b"the old state")
    monkeypatch.setattr(kvstate.os, "fdopen", lambda fd, mode: Full(real_fdopen(fd, mode)))
    path = kvstate.state_path(41)
    with pytest.raises(kvstate.StateNotSaved) as info:
        kvstate.save(path, PRINT, [1], b"new state")
    assert info.value.errno == code
    assert str(info.value) == (f"the KV state was not saved: the disk filled up ({path.parent}); the partial "
                               "file was removed, and the conversation itself is saved")
    assert [p.name for p in kvstate.state_dir().iterdir()] == ["41.kv"]
    monkeypatch.undo()
    assert kvstate.load(path, PRINT) == ([1, 2, 3], bytearray(b"the old state"))  # the old one stays whole


def test_another_write_error_is_raised_as_it_is_and_leaves_no_file(lcchat_home, monkeypatch) -> None:
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(kvstate.os, "replace", refuse)
    with pytest.raises(PermissionError) as info:
        kvstate.save(kvstate.state_path(42), PRINT, [1], b"x")
    assert not isinstance(info.value, kvstate.StateNotSaved)
    assert list(kvstate.state_dir().iterdir()) == []


def test_an_interrupted_save_leaves_no_file(lcchat_home, monkeypatch) -> None:
    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(kvstate.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kvstate.save(kvstate.state_path(43), PRINT, [1], b"x")
    assert list(kvstate.state_dir().iterdir()) == []


# ---------------------------------------------------------------- the cap


def test_the_default_cap_is_4_gib_or_a_tenth_of_the_free_space(lcchat_home, monkeypatch) -> None:
    asked = []

    def usage(free):
        return lambda p: asked.append(Path(p)) or Usage(1 << 50, 0, free)

    monkeypatch.setattr(kvstate.shutil, "disk_usage", usage(100 << 30))
    assert kvstate.default_cap() == 4 << 30
    monkeypatch.setattr(kvstate.shutil, "disk_usage", usage(10 << 30))
    assert kvstate.default_cap() == 1 << 30
    monkeypatch.setattr(kvstate.shutil, "disk_usage", usage(1001))
    assert kvstate.default_cap() == 100
    # the state directory does not exist yet: its nearest existing parent's disk is asked
    assert not kvstate.state_dir().exists() and asked[-1] == lcchat_home
    kvstate.state_dir().mkdir(parents=True)
    kvstate.default_cap()
    assert asked[-1] == kvstate.state_dir()


def test_the_default_cap_without_a_disk_to_ask_is_4_gib(monkeypatch) -> None:
    def fails(path):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(kvstate.shutil, "disk_usage", fails)
    assert kvstate.default_cap() == 4 << 30


def test_cap_from_a_profile_value(monkeypatch) -> None:
    monkeypatch.setattr(kvstate, "default_cap", lambda: 12345)
    assert kvstate.cap_from("") == 12345 and kvstate.cap_from("   ") == 12345
    assert kvstate.cap_from("2GiB") == 2 << 30 and kvstate.cap_from("0") == 0


def test_prune_deletes_the_least_recently_used_until_the_rest_fit(lcchat_home, caplog) -> None:
    paths = {cid: saved(cid, b"x" * 1000) for cid in (1, 2, 3, 4)}
    for age, cid in zip((400, 100, 300, 200), (1, 2, 3, 4)):
        aged(paths[cid], age)
    one = paths[1].stat().st_size
    tmp = kvstate.state_dir() / ".9.kv.1.tmp"
    tmp.write_bytes(b"y" * 5000)  # another process's save in progress: not counted, not touched
    assert kvstate.prune(4 * one) == (0, 0)  # all fit exactly
    with caplog.at_level(logging.DEBUG, logger="lcchat.store"):
        assert kvstate.prune(4 * one - 1) == (one, 1)
    assert caplog.messages == [f"pruned {paths[1]} ({one} bytes) to keep the states under {4 * one - 1} bytes"]
    assert not paths[1].exists()
    assert kvstate.prune(2 * one) == (one, 1)  # then 3, the next least recently used
    assert [cid for _p, cid, _s, _m in kvstate.saved_states()] == [4, 2, None]
    assert tmp.exists()
    assert kvstate.prune(0) == (2 * one, 2)
    assert [p.name for p in kvstate.state_dir().iterdir()] == [tmp.name]


def test_prune_keeps_the_state_just_saved_to_the_last(lcchat_home) -> None:
    paths = {cid: saved(cid, b"x" * 1000) for cid in (1, 2, 3)}
    aged(paths[2], 1000)  # the oldest, but the one just saved
    aged(paths[1], 500)
    one = paths[1].stat().st_size
    assert kvstate.prune(2 * one, keep=2) == (one, 1)
    assert not paths[1].exists() and paths[2].exists() and paths[3].exists()
    assert kvstate.prune(one, keep=2) == (one, 1)
    assert paths[2].exists() and not paths[3].exists()
    assert kvstate.prune(one - 1, keep=2) == (one, 1)  # over the cap by itself: it goes too
    assert kvstate.saved_states() == []


def test_prune_goes_on_past_a_state_it_cannot_delete(lcchat_home, monkeypatch) -> None:
    paths = {cid: saved(cid, b"x" * 1000) for cid in (1, 2)}
    aged(paths[1], 100)
    one = paths[1].stat().st_size
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self.name == "1.kv":
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    assert kvstate.prune(one) == (one, 1)
    assert paths[1].exists() and not paths[2].exists()
