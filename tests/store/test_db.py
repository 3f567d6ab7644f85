"""The conversation database: schema, file modes, WAL, reading and writing, names, ids."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from lcchat.errors import InputError
from lcchat.store.db import Store, UnknownConversation, default_path


def add(store: Store, profile: str = "p", *rows, system: str = "", stamp: float = 1000.0) -> int:
    with store.transaction() as db:
        cid = Store.create(db, profile=profile, model="/m/model.gguf", system=system, now=stamp)
        Store.write_messages(db, cid, 0, list(rows), system=system, now=stamp)
    return cid


def test_the_database_lives_in_the_data_dir_private(lcchat_home) -> None:
    store = Store()
    add(store, "p", ("user", "hi", False, None))
    path = default_path()
    assert path == lcchat_home / "data" / "conversations.db"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for extra in path.parent.glob("conversations.db-*"):  # -wal and -shm, while open
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_messages_round_trip_in_order_with_flags_and_stats() -> None:
    store = Store()
    cid = add(store, "p", ("user", "q1", False, None), ("assistant", "a1", False, {"completion_tokens": 3}),
              ("user", "q2 😀", False, None), ("assistant", "half", True, None), system="be brief")
    conv = store.get(cid)
    assert conv is not None
    assert [(m.seq, m.role, m.content, m.interrupted) for m in conv.messages] == [
        (0, "user", "q1", False), (1, "assistant", "a1", False), (2, "user", "q2 😀", False), (3, "assistant", "half", True)]
    assert conv.messages[1].stats == {"completion_tokens": 3}
    assert conv.system == "be brief" and conv.profile == "p" and conv.model == "/m/model.gguf"
    assert conv.title == "q1"


def test_write_messages_replaces_from_a_position() -> None:
    store = Store()
    cid = add(store, "p", ("user", "q", False, None), ("assistant", "old", False, None))
    with store.transaction() as db:
        Store.write_messages(db, cid, 1, [("assistant", "new", False, None)], system="", now=2000.0)
    conv = store.get(cid)
    assert [m.content for m in conv.messages] == ["q", "new"]
    assert conv.updated == 2000.0


def test_resolve_by_id_and_name_and_unknown_is_exit_2() -> None:
    store = Store()
    cid = add(store, "p", ("user", "q", False, None))
    assert store.resolve(str(cid)) == cid and store.resolve(f"#{cid}") == cid
    store.set_name(cid, "work")
    assert store.resolve("work") == cid
    with pytest.raises(UnknownConversation) as info:
        store.resolve("999")
    assert info.value.exit_code == 2 and "lcchat history list" in str(info.value)
    with pytest.raises(UnknownConversation):
        store.resolve("nope")


def test_names_are_unique() -> None:
    store = Store()
    a = add(store, "p", ("user", "a", False, None))
    b = add(store, "p", ("user", "b", False, None))
    store.set_name(a, "x")
    with pytest.raises(InputError, match="already named"):
        store.set_name(b, "x")
    store.set_name(a, "x")  # naming it again is fine


def test_last_of_a_profile_and_summaries_most_recent_first() -> None:
    store = Store()
    old = add(store, "a", ("user", "first of a", False, None), stamp=1.0)
    add(store, "b", ("user", "of b", False, None), stamp=2.0)
    new = add(store, "a", ("user", "second of a", False, None), ("assistant", "cut", True, None), stamp=3.0)
    with store.transaction() as db:  # an empty conversation is never "the last one"
        Store.create(db, profile="a", model="", system="", now=9.0)
    assert store.last("a") == new and store.last("zzz") is None and store.last() == new
    summaries = store.summaries()
    assert [s.id for s in summaries] == [new, 2, old]
    assert summaries[0].interrupted and summaries[0].n_messages == 2 and summaries[0].first_user == "second of a"
    assert len(store.summaries(limit=1)) == 1


def test_delete_removes_the_messages_too() -> None:
    store = Store()
    cid = add(store, "p", ("user", "q", False, None))
    assert store.delete(cid)
    assert store.get(cid) is None and not store.delete(cid)
    with store.reading() as db:
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0


def test_reading_without_a_database_creates_nothing() -> None:
    store = Store()
    assert store.summaries() == [] and store.last() is None and store.get(1) is None
    with pytest.raises(UnknownConversation):
        store.resolve("1")
    assert not default_path().exists()


def test_a_transaction_that_fails_writes_nothing() -> None:
    store = Store()
    with pytest.raises(RuntimeError):
        with store.transaction() as db:
            Store.create(db, profile="p", model="", system="", now=1.0)
            raise RuntimeError("boom")
    assert store.summaries() == []
    with store.reading() as db:
        assert db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0
