"""/save, /load and /history through the shared registry, on a scripted model."""

from __future__ import annotations

from lcchat.commands import Context, FrontState, Task, registry
from lcchat.engine.events import Done, Notice
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.store import attach
from lcchat.store.db import Store


def ctx_for(session) -> Context:
    return Context(session, FrontState())


def test_save_names_the_conversation_and_history_lists_it() -> None:
    session = fake_session(FakeModel(replies=[["Paris"]]))
    ctx = ctx_for(session)
    assert registry.dispatch(ctx, "/save").error  # nothing yet
    list(session.send("capital of France?"))
    result = registry.dispatch(ctx, "/save geo")
    assert not result.error, result.text
    cid = attach(session).conversation_id
    assert f"conversation {cid} (geo)" in result.text and f"lcchat -C {cid}" in result.text
    assert Store().resolve("geo") == cid
    listing = registry.dispatch(ctx, "/history")
    assert listing.rows and listing.rows[0][0] == str(cid)
    assert "[geo] capital of France?" in listing.rows[0][1] and "(this one)" in listing.rows[0][1]
    assert registry.dispatch(ctx, "/save 123").error  # digits are ids, not names
    assert registry.dispatch(ctx, "/history x").error


def test_a_name_taken_by_another_conversation_is_refused() -> None:
    a = fake_session(FakeModel(replies=[["1"]]))
    list(a.send("a"))
    registry.dispatch(ctx_for(a), "/save same")
    b = fake_session(FakeModel(replies=[["2"]]))
    list(b.send("b"))
    result = registry.dispatch(ctx_for(b), "/save same")
    assert result.error and "already named" in result.text


def test_load_switches_conversation_and_later_turns_go_to_it() -> None:
    old = fake_session(FakeModel(replies=[["first answer"]]))
    list(old.send("first question"))
    registry.dispatch(ctx_for(old), "/save old")
    old_id = attach(old).conversation_id

    session = fake_session(FakeModel(replies=[["other"], ["continued"]]))
    ctx = ctx_for(session)
    attach(session)
    list(session.send("something else"))
    current = attach(session).conversation_id
    result = registry.dispatch(ctx, "/load old")
    assert not result.error and isinstance(result.action, Task)
    assert "first question" in result.text and "first answer" in result.text
    events = list(result.action())
    assert any(isinstance(e, Notice) and "continuing" in e.text for e in events)
    assert events[-1] == Done("stop", "")  # played like a reply: one that ended normally, with no text of its own
    assert [m.content for m in session.conversation.messages] == ["first question", "first answer"]
    list(session.send("next"))
    store = Store()
    assert [m.content for m in store.get(old_id).messages] == ["first question", "first answer", "next", "continued"]
    assert [m.content for m in store.get(current).messages] == ["something else", "other"]  # kept


def test_load_errors_are_one_line() -> None:
    session = fake_session(FakeModel())
    ctx = ctx_for(session)
    missing = registry.dispatch(ctx, "/load 99")
    assert missing.error and "/history lists them" in missing.text
    assert registry.dispatch(ctx, "/load").error
    assert registry.dispatch(ctx, "/history").text == "No saved conversations yet."


def test_load_completes_names_and_ids() -> None:
    session = fake_session(FakeModel(replies=[["x"]]))
    list(session.send("q"))
    registry.dispatch(ctx_for(session), "/save mine")
    assert "/load mine" not in registry.completions(ctx_for(session), "/lo")
    assert registry.completions(ctx_for(session), "/load mi") == ["mine"]


def test_history_n_and_save_names_take_only_ascii_digits_as_numbers() -> None:
    session = fake_session(FakeModel(replies=[["Paris"]]))
    ctx = ctx_for(session)
    list(session.send("capital of France?"))
    r = registry.dispatch(ctx, "/history ²")  # "²".isdigit() is True but int("²") raises
    assert r.error and "N must be a number of conversations, not '²'" in r.text
    assert registry.dispatch(ctx, "/save #12").error  # a conversation number, not a name
    saved = registry.dispatch(ctx, "/save ²")  # not a number: a name
    assert not saved.error, saved.text
    assert Store().resolve("²") == attach(session).conversation_id


def test_save_on_a_store_that_cannot_be_written_says_why(monkeypatch) -> None:
    import sqlite3

    session = fake_session(FakeModel(replies=[["Paris"]]))
    ctx = ctx_for(session)
    list(session.send("capital of France?"))

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(Store, "transaction", locked)
    result = registry.dispatch(ctx, "/save geo")
    assert result.error and result.text.startswith("Could not save the conversation: database is locked: ")
