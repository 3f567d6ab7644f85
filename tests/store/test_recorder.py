"""The Recorder on a scripted model: every turn written at once, interrupted replies,
retry/undo/clear, a data dir that cannot be written, and two writers of one conversation."""

from __future__ import annotations

import os
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
    from lcchat.store.recorder import Recorder

    handed = Store()
    given = fake_session(FakeModel(replies=[["a"]]))
    Recorder(given, handed, owns_store=True)  # handed over: closed with the session
    turn(given, "q")
    given.close()
    assert handed._conn is None


# ---------------------------------------------------------------- replies that carry no stats of their own


def abandon(session, text: str) -> None:
    """Send `text` and stop reading after the first token (the front-end went away): the
    reply is recorded, interrupted, before any statistics for it came."""
    events = session.send(text)
    for event in events:
        if isinstance(event, Token):
            break
    events.close()


def test_an_abandoned_reply_is_not_stored_with_the_previous_turns_stats() -> None:
    session = fake_session(FakeModel(replies=[["a"], ["b", "c", "d"]]))
    recorder = attach(session)
    turn(session, "one")
    abandon(session, "two")
    messages = Store().get(recorder.conversation_id).messages
    assert messages[1].stats is not None and messages[3].interrupted
    assert messages[3].stats is None


def test_attached_late_or_after_a_load_the_earlier_turns_stats_are_not_reused() -> None:
    late = fake_session(FakeModel(replies=[["a"], ["b", "c", "d"]]))
    turn(late, "before attaching")
    recorder = attach(late)
    abandon(late, "after")
    assert [m.stats for m in Store().get(recorder.conversation_id).messages] == [None] * 4

    other = fake_session(FakeModel(replies=[["x"]]))
    saved = attach(other)
    turn(other, "elsewhere")
    cid = saved.conversation_id
    session = fake_session(FakeModel(replies=[["a"], ["b", "c", "d"]]))
    recorder = attach(session)
    turn(session, "first")  # this session's last stats are now the first turn's
    recorder.load(cid)
    abandon(session, "continued")
    assert [m.stats for m in Store().get(cid).messages][2:] == [None, None]


def test_a_disk_freed_between_message_and_reply_writes_both_and_stats_only_on_the_reply(monkeypatch) -> None:
    real = Store.transaction
    calls = []

    def full_once(self):
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self)

    monkeypatch.setattr(Store, "transaction", full_once)
    session = fake_session(FakeModel(replies=[["fine"]]))
    recorder = attach(session, on_warning=lambda text: None)
    turn(session, "question")
    messages = Store().get(recorder.conversation_id).messages
    assert [(m.role, m.content) for m in messages] == [("user", "question"), ("assistant", "fine")]
    assert messages[0].stats is None and messages[1].stats["completion_tokens"] == 1


# ---------------------------------------------------------------- what is written, and when


def test_clear_with_nothing_said_after_it_stores_no_empty_conversation() -> None:
    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session)
    turn(session, "one")
    session.clear()
    assert recorder.sync()
    session.close()
    assert Store().ids() == [recorder.conversation_id]


def test_a_conversation_changed_elsewhere_is_said_in_the_log(caplog) -> None:
    first = fake_session(FakeModel(replies=[["base"]]))
    recorder = attach(first)
    turn(first, "start")
    cid = recorder.conversation_id
    a = fake_session(FakeModel(replies=[["from a"]]))
    b = fake_session(FakeModel(replies=[["from b"]]))
    attach(a).load(cid)
    attach(b).load(cid)
    turn(a, "in a")
    with caplog.at_level("INFO", logger="lcchat.store"):
        turn(b, "in b")
    assert f"conversation {cid} changed elsewhere; going on in a new one" in caplog.messages


def test_loading_a_conversation_and_leaving_does_not_rewrite_it() -> None:
    """Its place in /history (most recently written first) stays where it was."""
    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="fake", model="fake.gguf", system="be brief", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "q", False, None), ("assistant", "half an ans", True, None)],
                             system="be brief", now=1.0)
    session = fake_session(FakeModel())
    attach(session).load(cid)
    session.close()
    conv = Store().get(cid)
    assert conv.updated == 1.0
    assert [(m.role, m.content, m.interrupted) for m in conv.messages] == [
        ("user", "q", False), ("assistant", "half an ans", True)]


def test_a_loaded_reply_keeps_its_thinking() -> None:
    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="fake", model="fake.gguf", system="", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "q", False, None), ("assistant", "42", False, None, "pondered")],
                             system="", now=1.0)
    session = fake_session(FakeModel(replies=[["ok"]]))
    attach(session).load(cid)
    assert [m.reasoning for m in session.conversation.messages] == ["", "pondered"]
    turn(session, "next")
    assert [m.reasoning for m in Store().get(cid).messages] == ["", "pondered", "", ""]


def test_a_conversation_removed_while_loading_is_an_unknown_one() -> None:
    import pytest

    from lcchat.store.db import UnknownConversation

    session = fake_session(FakeModel(replies=[["a"]]))
    saved = attach(session)
    turn(session, "q")
    cid = saved.conversation_id
    other = fake_session(FakeModel())
    recorder = attach(other)
    recorder.store.get = lambda _cid: None  # deleted by another process between resolve() and get()
    with pytest.raises(UnknownConversation) as info:
        recorder.load(cid)
    assert str(info.value) == f"no conversation {cid}; `lcchat history list` shows them"


def test_naming_writes_a_conversation_not_yet_written_and_says_why_it_cannot(monkeypatch) -> None:
    import pytest

    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session)
    with pytest.raises(ValueError) as info:
        recorder.name("x")
    assert str(info.value) == "nothing to name yet"

    late = fake_session(FakeModel(replies=[["a"]]))
    turn(late, "q")
    recorder = attach(late)  # nothing of it written yet
    recorder.name("late")
    assert Store().resolve("late") == recorder.conversation_id

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    unsaved = fake_session(FakeModel(replies=[["a"]]))
    turn(unsaved, "q")
    recorder = attach(unsaved, on_warning=lambda text: None)
    monkeypatch.setattr(Store, "transaction", locked)
    with pytest.raises(OSError) as info:
        recorder.name("never")
    assert str(info.value) == f"database is locked: {default_path()}"


def test_a_model_without_a_quant_or_on_a_server_is_stamped_as_such() -> None:
    session = fake_session(FakeModel(replies=[["a"]]))
    recorder = attach(session)
    session.model.describe = lambda: {"file": "fake.gguf"}
    turn(session, "x")
    assert Store().get(recorder.conversation_id).messages[1].settings.quant == ""
    model = session.model  # what engine/remote.py's RemoteModel has (protocol.ServedModel)
    model.server, model.info, model.counts_estimated = "http://127.0.0.1:8080", None, False
    model.reply_source, model.prompt_note, model.report = (lambda: None), (lambda: ""), (lambda: [])
    assert recorder.turn_settings().server == "http://127.0.0.1:8080"


# ---------------------------------------------------------------- the KV state kept beside a conversation


class KeptFake(FakeModel):
    """A fake whose KV state is kept (FakeModel's is not): PER_TOKEN bytes for each cached
    token, under one fingerprint; `snapshots` counts the states taken out of the 'model'."""

    PER_TOKEN = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        self.snapshots = 0

    def state_fingerprint(self) -> str | None:
        return "kept-fake"

    def save_state(self) -> bytes:
        self.snapshots += 1
        return b"k" * (self.PER_TOKEN * self.cache_len)

    def load_state(self, data) -> bool:
        self.cache_len = len(data) // self.PER_TOKEN
        return True


def kept(*replies: str, **options):
    """A session on a KeptFake, recorded with the Recorder `options`; (session, recorder)."""
    from lcchat.store.recorder import attach as attach_with

    session = fake_session(KeptFake(replies=[[r] for r in replies]))
    return session, attach_with(session, **options)


def state_of(cid: int) -> list[int] | None:
    """The tokens conversation `cid`'s saved state holds; None when it has none."""
    from lcchat.store import kvstate

    loaded = kvstate.load(kvstate.state_path(cid), "kept-fake")
    return None if loaded is None else loaded[0]


def pin(path):
    """A hard link to the file `path` is now: a save replaces the file (a new one renamed
    over it), after which `path` is no longer the same file as the link."""
    link = path.with_name(path.name + ".pinned")
    os.link(path, link)
    return link


def cached_after(*messages: str) -> list[int]:
    """How many tokens the cache holds after these turns (the fake is deterministic)."""
    session = fake_session(KeptFake(replies=[["r"] for _ in messages]))
    sizes = []
    for text in messages:
        turn(session, text)
        sizes.append(len(session.loop.cached))
    return sizes


def test_each_turn_replaces_the_state_and_an_unchanged_one_is_not_written_again() -> None:
    from lcchat.store import kvstate

    session, recorder = kept("r", "r")
    turn(session, "one")
    cid = recorder.conversation_id
    assert state_of(cid) == session.loop.cached
    turn(session, "and two")
    assert state_of(cid) == session.loop.cached
    path = kvstate.state_path(cid)
    written = pin(path)
    recorder.save_kv()  # /save, then /exit, with nothing said in between
    session.close()
    assert path.samefile(written)


def test_no_state_is_kept_without_keep_state_even_by_save() -> None:
    from lcchat.commands import Context, FrontState, registry
    from lcchat.store import kvstate

    session, recorder = kept("r", keep_state=False)
    turn(session, "one")
    assert not registry.dispatch(Context(session, FrontState()), "/save").error
    session.close()
    assert not kvstate.state_path(recorder.conversation_id).exists()


def test_state_max_is_the_cap_for_the_states() -> None:
    from lcchat.store import kvstate

    session, recorder = kept("r", state_max=10)  # a state of a few tokens is already more
    turn(session, "one")
    session.close()
    assert recorder.conversation_id is not None and not kvstate.state_path(recorder.conversation_id).exists()


def test_the_cap_counts_the_whole_file_so_a_state_is_never_written_to_be_pruned(monkeypatch) -> None:
    from lcchat.store import kvstate

    session, recorder = kept("r")
    turn(session, "one")
    size = kvstate.state_path(recorder.conversation_id).stat().st_size
    session.close()
    kvstate.remove(recorder.conversation_id)
    writes = []
    real_save = kvstate.save
    monkeypatch.setattr(kvstate, "save", lambda *a: writes.append(a) or real_save(*a))
    # Its file one byte over the cap: not written (before, the state alone was compared, so
    # it was written, then deleted by the prune that followed, with every other state).
    again, over = kept("r", state_max=size - 1)
    turn(again, "one")
    assert writes == [] and not kvstate.state_path(over.conversation_id).exists()
    again.close()
    # Within the cap (which leaves room for the widest checksum in the header): written and kept.
    third, at = kept("r", state_max=size + 9)
    turn(third, "one")
    assert len(writes) == 1 and kvstate.state_path(at.conversation_id).stat().st_size == size


def test_a_state_exactly_at_the_every_turn_bound_is_saved_after_the_turn(monkeypatch) -> None:
    from lcchat.store import kvstate

    first, second = cached_after("one", "two")
    monkeypatch.setattr(kvstate, "EVERY_TURN_MAX", KeptFake.PER_TOKEN * first)
    session, recorder = kept("r", "r")
    turn(session, "one")
    assert state_of(recorder.conversation_id) == session.loop.cached
    monkeypatch.setattr(kvstate, "EVERY_TURN_MAX", KeptFake.PER_TOKEN * second)
    turn(session, "two")
    assert len(session.loop.cached) == second and state_of(recorder.conversation_id) == session.loop.cached


def test_a_state_grown_past_the_cap_is_removed_without_being_copied_out() -> None:
    """The size per token of the last save says the new state is too big: the stale one
    is deleted and llama.cpp is not asked for a copy of a state that would be thrown away."""
    from lcchat.store import kvstate

    session, recorder = kept("r", "r")
    turn(session, "one")
    cid = recorder.conversation_id
    assert state_of(cid) == session.loop.cached and session.model.snapshots == 1
    recorder.state_max = KeptFake.PER_TOKEN * len(session.loop.cached) + 1
    turn(session, "a longer second message")
    assert not kvstate.state_path(cid).exists()
    assert session.model.snapshots == 1


def test_a_state_bigger_than_expected_replaces_none_and_removes_the_old_one() -> None:
    """A new Recorder (another run, with a lower state_max) knows no size per token yet: it
    takes the state, finds it too big, and removes the conversation's older state."""
    from lcchat.store import kvstate

    session, recorder = kept("r")
    turn(session, "one")
    cid = recorder.conversation_id
    session.close()
    assert state_of(cid) is not None
    from lcchat.store.recorder import attach as attach_with

    again = fake_session(KeptFake(replies=[["r"]]))
    resumed = attach_with(again, state_max=KeptFake.PER_TOKEN * 2)
    list(resumed.resume(cid))
    turn(again, "two")
    assert not kvstate.state_path(cid).exists()


def test_a_state_too_big_for_every_turn_is_saved_at_close(monkeypatch) -> None:
    from lcchat.store import kvstate

    monkeypatch.setattr(kvstate, "EVERY_TURN_MAX", 8)  # every state here is bigger
    session, recorder = kept("r")
    turn(session, "one")
    cid = recorder.conversation_id
    assert not kvstate.state_path(cid).exists()
    session.close()
    assert state_of(cid) == session.loop.cached


def test_a_turn_that_could_not_be_written_leaves_the_state_as_it_was(monkeypatch) -> None:
    session, recorder = kept("r", "r", on_warning=lambda text: None)
    turn(session, "one")
    cid = recorder.conversation_id
    before = list(session.loop.cached)

    def full(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "transaction", full)
    turn(session, "two")
    assert len(session.loop.cached) > len(before) and state_of(cid) == before


def test_saving_a_state_prunes_the_others_to_the_cap_and_keeps_the_new_one() -> None:
    import time

    from lcchat.store import kvstate

    big, big_recorder = kept("r")
    turn(big, "a long message that makes a big state")
    old = kvstate.state_path(big_recorder.conversation_id)
    future = time.time() + 3600  # touched by a clock ahead: it looks more recent than the new one
    os.utime(old, (future, future))
    small, recorder = kept("r", state_max=old.stat().st_size - 1)
    turn(small, "hi")
    assert not old.exists()
    assert state_of(recorder.conversation_id) == small.loop.cached


def test_a_state_that_does_not_fit_on_the_disk_is_said_once(monkeypatch) -> None:
    from lcchat.store import kvstate

    monkeypatch.setattr(kvstate, "KEEP_FREE", 1 << 62)  # more than any disk has
    session, recorder = kept("r", "r")
    events = turn(session, "one")
    said = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert len(said) == 1 and said[0].startswith("the KV state (") and "was not saved: only" in said[0]
    assert "resumes by re-reading its text" in said[0] and recorder.state_warnings == said
    events = turn(session, "two")
    assert not any(isinstance(e, Notice) for e in events)
    assert not kvstate.state_path(recorder.conversation_id).exists()


# ---------------------------------------------------------------- what resuming says it did


def notice_of(events) -> str:
    return [e.text for e in events if isinstance(e, Notice)][-1]


def test_resuming_says_how_much_came_from_the_state_and_how_much_was_re_read() -> None:
    from lcchat.store import kvstate

    session, recorder = kept("r", "r")
    turn(session, "one")
    turn(session, "two")
    cid = recorder.conversation_id
    session.close()

    again = fake_session(KeptFake())
    resumed = attach(again)
    text = notice_of(resumed.resume(cid))
    assert resumed.restored_tokens > 0 and f"; {resumed.restored_tokens} tokens restored from the saved KV state" in text
    read = len(again.loop.cached) - resumed.restored_tokens
    assert read > 0 and text.endswith(f"; {read} tokens of history re-read")
    again.close()

    kvstate.remove(cid)
    third = fake_session(KeptFake())
    text = notice_of(attach(third).resume(cid))
    assert "no saved KV state (pruned, or never kept), so its text is re-read" in text
    assert text.endswith(f"; {len(third.loop.cached)} tokens of history re-read") and len(third.loop.cached) > 0


def test_resuming_on_other_settings_says_the_state_is_for_them() -> None:
    session, recorder = kept("r")
    turn(session, "one")
    cid = recorder.conversation_id
    session.close()
    other = KeptFake()
    other.state_fingerprint = lambda: "another model"
    text = notice_of(attach(fake_session(other)).resume(cid))
    assert "its saved KV state is for another model or settings, so its text is re-read" in text


def test_a_cancelled_resume_reads_nothing_more_and_leaves_the_state_file_alone() -> None:
    import threading

    from lcchat.store import kvstate

    session, recorder = kept("r")
    turn(session, "one")
    cid = recorder.conversation_id
    session.close()
    path = kvstate.state_path(cid)
    written = pin(path)
    again = fake_session(KeptFake(replies=[["more"]]))
    resumed = attach(again)
    stop = threading.Event()
    stop.set()  # Ctrl+C before the rest of the history was read
    text = notice_of(resumed.resume(cid, cancel=stop))
    assert resumed.restored_tokens > 0 and len(again.loop.cached) == resumed.restored_tokens
    assert text.endswith(f"; {resumed.restored_tokens} tokens restored from the saved KV state")
    again.close()
    assert path.samefile(written)  # the state it was restored from holds it all: not written again

    kvstate.remove(cid)
    third = fake_session(KeptFake(replies=[["more"]]))
    text = notice_of(attach(third).resume(cid, cancel=stop))
    assert third.loop.cached == [] and text.endswith("so its text is re-read")
    assert isinstance(turn(third, "go on")[-1], Done)  # the next turn reads what is missing


# ---------------------------------------------------------------- what -v shows


def debug_lines(caplog) -> list[tuple[str, bool]]:
    """The Recorder's log lines as -v prints them: (text, with a traceback)."""
    return [(r.getMessage(), bool(r.exc_info)) for r in caplog.records if r.module == "recorder"]


def test_with_v_each_failure_to_save_is_logged_with_its_traceback(monkeypatch, caplog) -> None:
    """-v sends the lcchat loggers at DEBUG to stderr (cli._setup_logging): a failed save
    says what failed and why, traceback included, while the chat goes on."""
    from lcchat.store import kvstate

    caplog.set_level("DEBUG", logger="lcchat.store")

    def gone(text: str) -> None:
        raise RuntimeError("the front-end is gone")

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "transaction", locked)
        session = fake_session(FakeModel(replies=[["a"]]))
        attach(session, on_warning=gone)
        turn(session, "q")
    assert debug_lines(caplog) == [("saving the conversation failed", True), ("on_warning failed", True),
                                   ("saving the conversation failed", True)]  # the message, then the reply

    caplog.clear()
    with monkeypatch.context() as patch:
        patch.setattr(kvstate, "KEEP_FREE", 1 << 62)
        session, _recorder = kept("r", on_warning=gone)
        turn(session, "q")
    text = "the KV state ("
    lines = debug_lines(caplog)
    assert [(t.startswith(text), tb) for t, tb in lines] == [(True, False), (False, True)]
    assert lines[1][0] == "on_warning failed"

    caplog.clear()
    session, _recorder = kept("r")

    def broken():
        raise RuntimeError("llama_state_get_data failed")

    session.kv_snapshot = broken
    turn(session, "q")
    assert debug_lines(caplog) == [("saving the KV state failed", True)]

    caplog.clear()

    def no_prune(cap, *, keep=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(kvstate, "prune", no_prune)
    session, recorder = kept("r")
    turn(session, "q")
    assert state_of(recorder.conversation_id) == session.loop.cached
    assert debug_lines(caplog) == [("pruning the KV states failed", True)]
