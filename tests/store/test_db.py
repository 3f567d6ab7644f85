"""The conversation database: schema, file modes, WAL, reading and writing, names, ids."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from lcchat.errors import InputError
from lcchat.store.db import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Damaged,
    Store,
    TurnSettings,
    UnknownConversation,
    default_path,
)


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
    with pytest.raises(RuntimeError), store.transaction() as db:
        Store.create(db, profile="p", model="", system="", now=1.0)
        raise RuntimeError("boom")
    assert store.summaries() == []
    with store.reading() as db:
        assert db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 0


# ---------------------------------------------------------------- settings, schema and damage


def test_the_connection_is_durable_and_waits_for_other_writers() -> None:
    store = Store(busy_timeout_ms=1234)
    add(store, "p", ("user", "q", False, None))
    with store.reading() as db:
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS) >= 3


def test_each_message_keeps_the_settings_it_was_written_with() -> None:
    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="p", model="/m/a.gguf", system="s1", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "q", False, None)], system="s1", now=2.0,
                             settings=TurnSettings("s1", "/m/a.gguf", "Q4_0"))
        Store.write_messages(db, cid, 1, [("assistant", "a", False, None)], system="s2", now=3.0)
        assert Store.version(db, cid) == 3.0 and Store.version(db, cid + 1) is None
    conv = store.get(cid)
    assert conv.messages[0].settings == TurnSettings("s1", "/m/a.gguf", "Q4_0")
    assert conv.messages[1].settings is None  # not known: the conversation's own stand in
    assert conv.system == "s2" and conv.created == 1.0 and conv.updated == 3.0
    assert [m.created for m in conv.messages] == [2.0, 3.0]


def test_a_database_of_the_first_schema_is_migrated_and_its_messages_kept(lcchat_home) -> None:
    _write_first_schema(updated=1.0)
    store = Store()
    conv = store.get(4)
    assert [m.content for m in conv.messages] == ["q"] and conv.messages[0].settings is None
    with store.reading() as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS)
        assert {"system", "model", "quant", "server"} <= {r[1] for r in db.execute("PRAGMA table_info(messages)")}
    store.close()
    assert Store().get(4).system == "old system"  # migrating again does nothing


def test_stats_that_are_not_a_json_object_read_as_none() -> None:
    store = Store()
    cid = add(store, "p", *[("user", str(i), False, None) for i in range(4)])
    with store.transaction() as db:
        for seq, text in enumerate(["not json", "[1, 2]", "", '{"n": 1}']):
            db.execute("UPDATE messages SET stats = ? WHERE conversation_id = ? AND seq = ?", (text, cid, seq))
    assert [m.stats for m in store.get(cid).messages] == [None, None, None, {"n": 1}]


def test_a_damaged_database_says_how_to_recover(lcchat_home) -> None:
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(Damaged) as caught:
        Store().summaries()
    assert str(caught.value) == (
        f"{path} is damaged (file is not a database); some conversations may be missing. To recover what is left: "
        f"sqlite3 {path} .recover | sqlite3 {path.parent / 'recovered.db'}, then move recovered.db over "
        "conversations.db (keep a copy of the damaged file)")
    assert caught.value.path == path and caught.value.detail == "file is not a database"


def test_a_healthy_database_passes_the_check() -> None:
    store = Store()
    store.check()  # no database yet: nothing to check
    add(store, "p", ("user", "q", False, None))
    store.check()


def test_a_damaged_page_is_found_by_the_check(monkeypatch) -> None:
    store = Store()
    add(store, "p", ("user", "q", False, None))
    real = store._conn

    class Damaging:
        def execute(self, sql, *args):
            if "quick_check" in sql:
                return iter([("row 3 missing from index",), ("page 7 is never used",), ("more",)])
            return real.execute(sql, *args)

    monkeypatch.setattr(store, "_conn", Damaging())
    with pytest.raises(Damaged) as caught:
        store.check()
    assert caught.value.detail == "row 3 missing from index; page 7 is never used"


def test_a_database_that_cannot_be_written_is_read_read_only(monkeypatch) -> None:
    add(Store(), "p", ("user", "q", False, None))
    store = Store()

    def refuse(self):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Store, "_connect", refuse)
    assert [s.first_user for s in store.summaries()] == ["q"]
    assert store.read_only
    with pytest.raises(sqlite3.OperationalError, match="opened read-only"), store.transaction():
        pass


def test_a_data_dir_that_cannot_be_prepared_is_read_read_only(monkeypatch) -> None:
    add(Store(), "p", ("user", "q", False, None))
    store = Store()
    import lcchat.paths

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(lcchat.paths, "ensure_private_dir", refuse)
    assert store.get(1).messages[0].content == "q" and store.read_only


def test_resolve_reads_ids_and_names_as_people_type_them() -> None:
    store = Store()
    cid = add(store, "p", ("user", "q", False, None))
    store.set_name(cid, "３")  # a name of non-ASCII digits is a name, not an id
    assert store.resolve(f"  #{cid} ") == cid and store.resolve("３") == cid and store.resolve(cid) == cid
    for ref in (str(1 << 63), "999"):
        with pytest.raises(UnknownConversation) as caught:
            store.resolve(f" {ref} ")
        assert str(caught.value) == f"no conversation '{ref}'; `lcchat history list` shows them"


def test_a_name_can_be_taken_back_and_given_to_another() -> None:
    store = Store()
    a = add(store, "p", ("user", "a", False, None))
    b = add(store, "p", ("user", "b", False, None))
    store.set_name(a, "x")
    with pytest.raises(InputError) as caught:
        store.set_name(b, "x")
    assert str(caught.value) == f"conversation {a} is already named 'x'"
    store.set_name(a, None)
    assert store.get(a).name is None
    store.set_name(b, "x")
    assert store.resolve("x") == b


def test_ids_counts_and_summaries_of_what_is_stored() -> None:
    store = Store()
    assert store.ids() == [] and store.count_with_messages() == 0
    a = add(store, "p", ("user", "a", False, None), stamp=10.0)
    b = add(store, "p", ("assistant", "no question", False, None), stamp=20.0)
    with store.transaction() as db:
        empty = Store.create(db, profile="p", model="", system="", now=30.0)
    assert sorted(store.ids()) == [a, b, empty]
    assert store.ids(updated_before=20.0) == [a] and store.ids(updated_before=5.0) == []
    assert store.count_with_messages() == 2
    first = store.summaries()[0]
    assert (first.id, first.first_user, first.interrupted, first.n_messages) == (b, "", False, 1)
    assert [s.id for s in store.summaries(limit=1)] == [b]


def test_compact_gives_the_space_back() -> None:
    store = Store()
    cid = add(store, "p", *[("user", "x" * 10_000, False, None) for _ in range(50)])
    store.compact()
    before = store.path.stat().st_size
    store.delete(cid)
    store.compact()
    assert store.path.stat().st_size < before / 4
    assert not store.path.with_name("conversations.db-wal").exists() or \
        store.path.with_name("conversations.db-wal").stat().st_size == 0


def test_opening_waits_out_a_lock_sqlite_reports_without_its_busy_handler(tmp_path, monkeypatch) -> None:
    """Two lcchat processes starting at once on a new store: while one turns on WAL, SQLite
    can answer the other "database is locked" at once. Opening retries instead of failing
    the first save."""
    import lcchat.store.db as db_module

    real = db_module.migrate
    calls = []

    def locked_once(conn):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        real(conn)

    monkeypatch.setattr(db_module, "migrate", locked_once)
    store = Store(tmp_path / "c.db")
    add(store, "p", ("user", "q", False, None))
    assert len(calls) == 2
    with store.reading() as db:
        assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 1


def test_a_lock_that_lasts_past_the_busy_timeout_still_fails(tmp_path, monkeypatch) -> None:
    import lcchat.store.db as db_module

    def always_locked(conn):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(db_module, "migrate", always_locked)
    store = Store(tmp_path / "c.db", busy_timeout_ms=200)
    with pytest.raises(sqlite3.OperationalError):
        with store.transaction():
            pass


def _refuse_writing(monkeypatch) -> None:
    def refuse(self):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(Store, "_connect", refuse)


def test_the_read_only_fallback_cannot_write_and_works_from_another_thread(monkeypatch) -> None:
    import threading

    add(Store(), "p", ("user", "q", False, None))
    store = Store()
    _refuse_writing(monkeypatch)
    assert store.get(1).messages[0].content == "q"
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store._conn.execute("CREATE TABLE t (x)")
    seen = []
    worker = threading.Thread(target=lambda: seen.append(store.summaries()[0].first_user))
    worker.start()
    worker.join()
    assert seen == ["q"]


def test_when_even_a_read_only_open_fails_the_file_is_read_as_it_is(monkeypatch) -> None:
    writer = Store()
    add(writer, "p", ("user", "q", False, None))
    writer.close()  # the last connection closed: its WAL is checkpointed into the file
    store = Store()
    _refuse_writing(monkeypatch)
    real = sqlite3.connect
    opened = []

    def connect(target, *args, **kwargs):
        opened.append(str(target).rpartition("?")[2])
        if str(target).endswith("?mode=ro"):
            raise sqlite3.OperationalError("unable to open database file")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    assert store.get(1).messages[0].content == "q" and store.read_only
    assert opened == ["mode=ro", "immutable=1"]
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store._conn.execute("CREATE TABLE t (x)")


def test_when_no_way_of_reading_works_the_error_is_sqlites(monkeypatch) -> None:
    add(Store(), "p", ("user", "q", False, None))
    store = Store()
    _refuse_writing(monkeypatch)

    def connect(target, *args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", connect)
    with pytest.raises(sqlite3.OperationalError, match="unable to open database file"):
        store.summaries()


def test_an_old_schema_that_cannot_be_migrated_is_still_read(lcchat_home, monkeypatch) -> None:
    _write_first_schema(updated=2.0)
    _refuse_writing(monkeypatch)
    conv = Store().get(4)
    assert conv.system == "old system" and [(m.content, m.settings) for m in conv.messages] == [("q", None)]


@pytest.mark.parametrize("message", [
    "database disk image is malformed", "file is not a database", "database corruption at line 1 of [abc]",
])
def test_each_of_sqlites_words_for_damage_is_reported_as_damage(message: str, monkeypatch) -> None:
    add(Store(), "p", ("user", "q", False, None))

    def damaged(self):
        raise sqlite3.DatabaseError(message)

    monkeypatch.setattr(Store, "_connect", damaged)
    with pytest.raises(Damaged) as caught:
        Store().summaries()
    assert caught.value.detail == message


def test_a_conversation_reads_back_with_every_field() -> None:
    store = Store()
    with store.transaction() as db:
        Store.create(db, profile="first", model="", system="", now=1.0)  # ids and times differ below
        cid = Store.create(db, profile="p", model="/m/a.gguf", system="s", now=50.0)
        Store.write_messages(db, cid, 0, [("user", "q", False, {}), ("assistant", "a", True, None)], system="s",
                             now=60.0, settings=TurnSettings("s", "", ""))
    store.set_name(cid, "Xmas")
    conv = store.get(cid)
    assert (conv.id, conv.created, conv.updated, conv.profile, conv.model, conv.name, conv.system) == (
        cid, 50.0, 60.0, "p", "/m/a.gguf", "Xmas", "s")
    assert conv.messages[0].settings == TurnSettings("s", "", "") and conv.messages[0].stats is None
    assert store.resolve("Xmas") == cid
    summary = store.summaries()[0]
    assert (summary.id, summary.created, summary.updated, summary.profile, summary.model, summary.name,
            summary.first_user, summary.n_messages, summary.interrupted) == (
        cid, 50.0, 60.0, "p", "/m/a.gguf", "Xmas", "q", 2, True)


def test_one_line_keeps_a_line_of_its_width_whole() -> None:
    from lcchat.store.db import one_line

    assert one_line("x" * 60) == "x" * 60
    assert one_line("x" * 61) == "x" * 59 + "…"
    assert one_line("a\n b", 3) == "a b"


def test_a_store_given_a_path_keeps_its_database_there_and_serves_other_threads(tmp_path) -> None:
    import threading

    store = Store(tmp_path / "elsewhere.db")
    done = []
    worker = threading.Thread(target=lambda: done.append(add(store, "p", ("user", "from a thread", False, None))))
    store.summaries()  # opened here, in this thread
    worker.start()
    worker.join()
    assert done and store.get(done[0]).messages[0].content == "from a thread"
    assert (tmp_path / "elsewhere.db").is_file() and not default_path().exists()


def test_a_migration_that_fails_leaves_the_file_as_it_was(lcchat_home, monkeypatch) -> None:
    from lcchat.store import db as db_module

    add(Store(), "p", ("user", "q", False, None))
    broken = (*db_module.MIGRATIONS, ("99 broken", ("ALTER TABLE messages ADD COLUMN extra TEXT", "NOT SQL")))
    monkeypatch.setattr(db_module, "MIGRATIONS", broken)
    with pytest.raises(sqlite3.OperationalError):
        Store()._connect()
    with sqlite3.connect(default_path()) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "extra" not in {r[1] for r in conn.execute("PRAGMA table_info(messages)")}
    conn.close()


def _write_first_schema(*, updated: float) -> None:
    """A store as the first release wrote it: conversation 4 with one user message."""
    path = default_path()
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as conn:
        for statement in MIGRATIONS[0][1]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO conversations (id, created, updated, profile, model, system) "
                     "VALUES (4, 1.0, ?, 'p', '/m/old.gguf', 'old system')", (updated,))
        conn.execute("INSERT INTO messages (conversation_id, seq, role, content, created) VALUES (4, 0, 'user', 'q', 1.0)")
    conn.close()
