"""A reasoning model's thinking in the history: stored apart from the answer, back in place
when a conversation continues, and in an export only when asked (history export --reasoning)."""

from __future__ import annotations

import json
import sqlite3

from lcchat.cli import main
from lcchat.config.schema import Profile
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.store import attach
from lcchat.store.db import MIGRATIONS, Store, default_path
from lcchat.store.export import to_json, to_markdown

REPLY = ["<think>", "\nAdd them: 4.\n", "</think>", "\n\nFour."]


def reasoning_session(replies):
    profile = Profile(name="fake")
    profile.chat.reasoning = ["<think>", "</think>"]
    return fake_session(FakeModel(replies=replies), profile)


def test_the_thinking_is_stored_apart_and_comes_back_on_resume() -> None:
    session = reasoning_session([REPLY])
    recorder = attach(session)
    list(session.send("What is 2+2?"))
    cid = recorder.conversation_id
    reply = Store().get(cid).messages[1]
    assert (reply.content, reply.reasoning) == ("Four.", "Add them: 4.")
    later = reasoning_session([])
    list(attach(later).resume(cid))
    assert later.conversation.messages[1].reasoning == "Add them: 4."
    assert later.conversation.messages[1].content == "Four."


def test_export_leaves_the_thinking_out_unless_asked(capsys) -> None:
    session = reasoning_session([REPLY])
    recorder = attach(session)
    list(session.send("What is 2+2?"))
    conv = Store().get(recorder.conversation_id)
    assert "Add them" not in to_markdown(conv) and "Add them" not in to_json(conv)
    md = to_markdown(conv, reasoning=True)
    assert "## Assistant\n\n*Thinking:*\n\n```text\nAdd them: 4.\n```\n\n*Answer:*\n\n```text\nFour.\n```" in md
    assert json.loads(to_json(conv, reasoning=True))["messages"][1]["reasoning"] == "Add them: 4."
    assert main(["history", "export", str(recorder.conversation_id), "-f", "json", "--reasoning"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"][1]["reasoning"] == "Add them: 4."


def test_a_database_from_before_the_reasoning_column_is_migrated() -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    for _, statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("INSERT INTO conversations (created, updated) VALUES (1, 1)")
    conn.execute("INSERT INTO messages (conversation_id, seq, role, content, created) VALUES (1, 0, 'user', 'hi', 1)")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    conv = Store().get(1)
    assert conv.messages[0].content == "hi" and conv.messages[0].reasoning == ""
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
