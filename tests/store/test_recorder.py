"""The Recorder on a scripted model: every turn written at once, interrupted replies,
retry/undo/clear, a data dir that cannot be written, and two writers of one conversation."""

from __future__ import annotations

import sqlite3

from lcchat.engine.events import Done, Notice, Token
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.store import attach
from lcchat.store.db import Store, TurnSettings, default_path


def turn(session, text: str) -> list:
    return list(session.send(text))


def stored_rows(cid: int) -> list[tuple[str, str, bool]]:
    conv = Store().get(cid)
    assert conv is not None
    return [(m.role, m.content, m.interrupted) for m in conv.messages]


def test_each_turn_is_written_as_soon_as_it_ends() -> None:
    session = fake_session(FakeModel(replies=[["Hel", "lo"], ["Fine"]]))
    recorder = attach(session)
    assert attach(session) is recorder and session.listeners.count(recorder) == 1
    assert not default_path().exists()  # nothing before the first turn
    turn(session, "hi")
    cid = recorder.conversation_id
    assert stored_rows(cid) == [("user", "hi", False), ("assistant", "Hello", False)]
    turn(session, "how are you")
    assert stored_rows(cid)[2:] == [("user", "how are you", False), ("assistant", "Fine", False)]
    conv = Store().get(cid)
    assert conv.profile == "fake" and conv.model == "fake.gguf"
    assert conv.messages[1].stats["completion_tokens"] == 2 and conv.messages[0].stats is None


def test_a_cancelled_reply_is_saved_marked_interrupted() -> None:
    session = fake_session(FakeModel(replies=[["one ", "two ", "three ", "four"]]))
    recorder = attach(session)
    events = []
    for event in session.send("count"):
        events.append(event)
        if isinstance(event, Token):
            session.cancel()
    assert events[-1] == Done("interrupted", "one ")
    assert stored_rows(recorder.conversation_id) == [("user", "count", False), ("assistant", "one ", True)]


def test_a_reply_abandoned_by_the_front_end_is_saved_too() -> None:
    session = fake_session(FakeModel(replies=[["a", "b", "c", "d"]]))
    recorder = attach(session)
    events = session.send("go")
    for event in events:
        if isinstance(event, Token):
            break
    events.close()  # the front-end stopped reading (GeneratorExit in the session)
    rows = stored_rows(recorder.conversation_id)
    assert rows[0] == ("user", "go", False) and rows[1][0] == "assistant" and rows[1][2] is True


def test_retry_and_undo_rewrite_the_end_without_duplicates() -> None:
    session = fake_session(FakeModel(replies=[["first"], ["second"], ["third"], ["fourth"]]))
    recorder = attach(session)
    turn(session, "q")
    list(session.retry())
    cid = recorder.conversation_id
    assert stored_rows(cid) == [("user", "q", False), ("assistant", "second", False)]
    turn(session, "more")
    session.undo()
    turn(session, "other")
    assert recorder.conversation_id == cid
    assert [r[1] for r in stored_rows(cid)] == ["q", "second", "other", "fourth"]


def test_clear_starts_a_new_conversation_and_keeps_the_old_one() -> None:
    session = fake_session(FakeModel(replies=[["a"], ["b"]]))
    recorder = attach(session)
    turn(session, "one")
    first = recorder.conversation_id
    session.clear()
    turn(session, "two")
    assert recorder.conversation_id != first
    assert stored_rows(first) == [("user", "one", False), ("assistant", "a", False)]
    assert stored_rows(recorder.conversation_id) == [("user", "two", False), ("assistant", "b", False)]


def test_system_prompt_is_stored_and_follows_changes() -> None:
    session = fake_session(FakeModel(replies=[["a"], ["b"]]))
    session.set_system("S1")
    recorder = attach(session)
    turn(session, "x")
    assert Store().get(recorder.conversation_id).system == "S1"
    session.set_system("S2")
    turn(session, "y")
    assert Store().get(recorder.conversation_id).system == "S2"


def test_a_change_of_system_prompt_alone_is_saved() -> None:
    """/system with no turn after it, then /exit: the new system prompt is written."""
    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session)
    turn(session, "x")
    cid = recorder.conversation_id
    session.set_system("S2")
    assert recorder.sync()
    assert Store().get(cid).system == "S2"
    session.set_system("")
    recorder.close()
    assert Store().get(cid).system == ""
    assert stored_rows(cid) == [("user", "x", False), ("assistant", "a", False)]


def test_unwritable_data_dir_warns_once_and_catches_up_later(lcchat_home) -> None:
    (lcchat_home / "data").write_text("a file where the data dir should be")
    session = fake_session(FakeModel(replies=[["a"], ["b"], ["c"]]))
    recorder = attach(session)
    events = turn(session, "one")
    assert isinstance(events[-1], Notice) and events[-1].level == "warning"
    assert "could not save the conversation" in events[-1].text and "the chat goes on" in events[-1].text
    assert any(isinstance(e, Done) for e in events)
    events = turn(session, "two")  # the chat goes on, and the warning is not repeated
    assert not any(isinstance(e, Notice) for e in events)
    assert len(recorder.warnings) == 1 and recorder.conversation_id is None
    (lcchat_home / "data").unlink()  # space is freed: the next turn writes everything
    turn(session, "three")
    assert [r[1] for r in stored_rows(recorder.conversation_id)] == ["one", "a", "two", "b", "three", "c"]


def test_a_full_disk_is_a_warning_not_an_error(monkeypatch) -> None:
    def full(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "transaction", full)
    session = fake_session(FakeModel(replies=[["a"]]))
    warnings: list[str] = []
    attach(session, on_warning=warnings.append)
    events = turn(session, "hi")
    assert [e.text for e in events if isinstance(e, Token)] == ["a"]
    assert len(warnings) == 1 and "database or disk is full" in warnings[0]


def test_two_sessions_continuing_one_conversation_lose_nothing() -> None:
    first = fake_session(FakeModel(replies=[["base"]]))
    turn(first, "start")
    cid = attach(first).conversation_id  # attached after the turn: the next sync writes it all
    assert attach(first).sync() and (cid := attach(first).conversation_id) is not None
    a = fake_session(FakeModel(replies=[["from a"]]))
    b = fake_session(FakeModel(replies=[["from b"]]))
    attach(a).load(cid)
    attach(b).load(cid)
    turn(a, "in a")
    turn(b, "in b")  # the conversation changed since b loaded it: b goes on in a new one
    assert attach(a).conversation_id == cid and attach(b).conversation_id != cid
    assert [r[1] for r in stored_rows(cid)] == ["start", "base", "in a", "from a"]
    assert [r[1] for r in stored_rows(attach(b).conversation_id)] == ["start", "base", "in b", "from b"]


def test_close_writes_what_is_left() -> None:
    session = fake_session(FakeModel(replies=[["a"]]))
    turn(session, "q")
    recorder = attach(session)  # late: nothing written yet
    assert recorder.conversation_id is None
    session.close()
    assert stored_rows(recorder.conversation_id) == [("user", "q", False), ("assistant", "a", False)]


def test_the_user_message_is_written_when_it_is_sent() -> None:
    session = fake_session(FakeModel(replies=[["a", "b", "c"]]))
    recorder = attach(session)
    events = session.send("my question")
    seen = []
    for event in events:
        if isinstance(event, Token) and not seen:
            seen = stored_rows(recorder.conversation_id)  # mid-reply
    assert seen == [("user", "my question", False)]
    assert stored_rows(recorder.conversation_id) == [("user", "my question", False), ("assistant", "abc", False)]


def test_a_conversation_that_ends_with_a_lost_reply_continues() -> None:
    from lcchat.store.recorder import describe_resume

    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="fake", model="fake.gguf", system="", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "asked before the crash", False, None)], system="", now=1.0)
    session = fake_session(FakeModel(replies=[["fine"]]))
    recorder = attach(session)
    stored = recorder.load(cid)
    assert [(m.role, m.content, m.interrupted) for m in session.conversation.messages] == [
        ("user", "asked before the crash", False), ("assistant", "", True)]
    assert "the last reply was interrupted" in describe_resume(stored, 0, 0)
    turn(session, "again")
    assert stored_rows(cid) == [("user", "asked before the crash", False), ("assistant", "", True),
                                ("user", "again", False), ("assistant", "fine", False)]


# ---------------------------------------------------------------- what is said, and what is stamped


def stored(n: int, *, name: str | None = None, last_interrupted: bool = False, last_role: str = "assistant"):
    from lcchat.store.db import StoredConversation, StoredMessage

    messages = [StoredMessage(i, "user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(n)]
    if messages:
        messages[-1].interrupted = last_interrupted
        messages[-1].role = last_role
    return StoredConversation(5, 1.0, 2.0, "p", "/m.gguf", name, "", messages)


def test_what_continuing_a_conversation_says() -> None:
    from lcchat.store.recorder import describe_resume

    assert describe_resume(stored(1), 0, 0, state="used") == "continuing conversation 5: 1 message"
    assert describe_resume(stored(4, name="trip"), 120, 0) == (
        "continuing conversation 5 (trip): 4 messages; 120 tokens restored from the saved KV state")
    assert describe_resume(stored(2), 0, 30, state="none") == (
        "continuing conversation 5: 2 messages; no saved KV state (pruned, or never kept), so its text is re-read; "
        "30 tokens of history re-read")
    assert describe_resume(stored(2, last_interrupted=True), 0, 30, state="stale") == (
        "continuing conversation 5: 2 messages; its saved KV state is for another model or settings, so its text "
        "is re-read; 30 tokens of history re-read; the last reply was interrupted")
    assert describe_resume(stored(1, last_role="user"), 10, 5).endswith(
        "10 tokens restored from the saved KV state; 5 tokens of history re-read; the last reply was interrupted")
    assert describe_resume(stored(0), 0, 0) == "continuing conversation 5: 0 messages"


def test_the_last_lines_of_a_loaded_conversation() -> None:
    from lcchat.store.recorder import last_lines

    conv = stored(6, last_interrupted=True)
    conv.messages[2].content = "a\nlong " + "x" * 200
    assert last_lines(conv) == ("you: a long " + "x" * 92 + "…\nassistant: m3\nyou: m4\nassistant: m5 [interrupted]")
    assert last_lines(conv, 1) == "assistant: m5 [interrupted]"


def test_each_message_is_stamped_with_the_quant_in_force() -> None:
    session = fake_session(FakeModel(replies=[["a"], ["b"]]))
    session.set_system("S")
    recorder = attach(session)
    turn(session, "x")
    conv = Store().get(recorder.conversation_id)
    assert conv.messages[0].settings == TurnSettings("S", "fake.gguf", "F32")  # the model's describe()
    session.model.describe = lambda: {"quant": "Q4_K_M"}
    turn(session, "y")
    assert Store().get(recorder.conversation_id).messages[2].settings.quant == "Q4_K_M"

    def broken() -> dict:
        raise RuntimeError("no")

    session.model.describe = broken
    assert recorder.turn_settings() == TurnSettings("S", "fake.gguf", "")


def test_a_warning_that_fails_does_not_end_the_chat(monkeypatch) -> None:
    def full(self):
        raise OSError(28, "No space left on device", "/data/conversations.db")

    monkeypatch.setattr(Store, "transaction", full)
    session = fake_session(FakeModel(replies=[["a"], ["b"]]))
    said = []

    def warn(text: str) -> None:
        said.append(text)
        raise RuntimeError("the front-end is gone")

    recorder = attach(session, on_warning=warn)
    turn(session, "hi")
    turn(session, "again")
    assert said == [("could not save the conversation (No space left on device: /data/conversations.db); "
                    "the chat goes on, unsaved")]
    assert recorder.last_error == "No space left on device: /data/conversations.db"


def test_a_sqlite_error_names_the_database(monkeypatch) -> None:
    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "transaction", locked)
    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session, on_warning=lambda text: None)
    turn(session, "hi")
    assert recorder.last_error == f"database is locked: {default_path()}"
    assert recorder.warnings == [(f"could not save the conversation (database is locked: {default_path()}); "
                                 "the chat goes on, unsaved")]


def test_no_history_writes_nothing_and_keeps_no_state() -> None:
    from lcchat.store.recorder import attach as attach_with

    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach_with(session, record=False)
    assert recorder.keep_state is False
    turn(session, "private")
    assert recorder.sync() and recorder.conversation_id is None
    session.close()
    assert not default_path().exists()


def test_naming_needs_a_conversation() -> None:
    import pytest

    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session)
    with pytest.raises(ValueError, match="nothing to name yet"):
        recorder.name("x")
    turn(session, "q")
    recorder.name("mine")
    assert Store().resolve("mine") == recorder.conversation_id


def test_an_unchanged_conversation_is_not_written_again(monkeypatch) -> None:
    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session)
    turn(session, "q")
    writes = []
    real = Store.write_messages
    monkeypatch.setattr(Store, "write_messages", staticmethod(lambda *a, **k: writes.append(a) or real(*a, **k)))
    assert recorder.sync() and writes == []
    session.set_system("new")
    assert recorder.sync() and len(writes) == 1


def test_a_store_passed_in_is_left_open_and_one_of_its_own_is_closed() -> None:
    store = Store()
    session = fake_session(FakeModel(replies=[["a"]]))
    attach(session, store)
    turn(session, "q")
    session.close()
    assert store._conn is not None  # still the caller's
    own = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(own)
    turn(own, "q")
    own.close()
    assert recorder.store._conn is None
