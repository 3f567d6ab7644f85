"""The text of a stored conversation, exactly: the `history list` line, the `history show`
transcript and the Markdown and JSON exports (lcchat/store/export.py)."""

from __future__ import annotations

import json
import time

import pytest

from lcchat.store import export
from lcchat.store.db import StoredConversation, StoredMessage, Summary, TurnSettings

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def summary(**over) -> Summary:
    values = {"id": 7, "created": T0, "updated": T0 + 60, "profile": "smollm2", "model": "/m/a.gguf", "name": None,
                  "first_user": "Hello\nthere", "n_messages": 2, "interrupted": False, "state_bytes": 0}
    values.update(over)
    return Summary(**values)


def test_a_list_line_is_id_date_profile_state_and_the_first_words() -> None:
    assert export.list_line(summary()) == "    7  2023-11-14 22:14  smollm2                 -  Hello there"
    assert export.list_line(summary(name="trip", interrupted=True, profile="", state_bytes=3 << 20)) == (
        "    7  2023-11-14 22:14  -                 3.0 MiB  [trip] Hello there (interrupted)")
    long = export.list_line(summary(first_user="x" * 100))
    assert long.endswith("  " + "x" * 59 + "…")


def test_a_fence_is_longer_than_any_backtick_run_inside() -> None:
    assert export.fence("plain") == "```text\nplain\n```"
    assert export.fence("a ``` b") == "````text\na ``` b\n````"
    assert export.fence("a ````` b\n") == "``````text\na ````` b\n``````"
    assert export.fence("``") == "```text\n``\n```"


def conversation(**over) -> StoredConversation:
    values = {"id": 3, "created": T0, "updated": T0 + 3600, "profile": "p", "model": "/models/small.gguf", "name": None,
                  "system": "Be brief.", "messages": [
                      StoredMessage(0, "user", "Hi  there\nfriend", created=T0),
                      StoredMessage(1, "assistant", "Hello.", stats={"completion_tokens": 2}, created=T0 + 1),
                      StoredMessage(2, "user", "More", created=T0 + 2),
                      StoredMessage(3, "assistant", "Mo", interrupted=True, created=T0 + 3),
                  ]}
    values.update(over)
    return StoredConversation(**values)


def test_the_transcript_shows_every_message_as_it_was() -> None:
    assert export.transcript(conversation(name="greeting")) == (
        "# conversation 3 (greeting) · p · small.gguf · 2023-11-14 22:13 to 2023-11-14 23:13\n"
        "\n"
        "system: Be brief.\n"
        "\n"
        "you: Hi  there\nfriend\n"
        "\n"
        "assistant: Hello.\n"
        "\n"
        "you: More\n"
        "\n"
        "assistant: Mo [interrupted]\n")
    bare = export.transcript(conversation(system="", profile="", model="", messages=[]))
    assert bare == "# conversation 3 · - · - · 2023-11-14 22:13 to 2023-11-14 23:13\n"


def test_markdown_has_the_metadata_then_each_turn() -> None:
    assert export.to_markdown(conversation()) == (
        "# Hi there friend\n"
        "\n"
        "- conversation: 3\n"
        "- profile: p\n"
        "- model: small.gguf\n"
        "- started: 2023-11-14 22:13\n"
        "- last turn: 2023-11-14 23:13\n"
        "\n"
        "## System\n\n```text\nBe brief.\n```\n"
        "\n"
        "## You\n\n```text\nHi  there\nfriend\n```\n"
        "\n"
        "## Assistant\n\n```text\nHello.\n```\n"
        "\n"
        "## You\n\n```text\nMore\n```\n"
        "\n"
        "## Assistant\n\n```text\nMo\n```\n"
        "\n"
        "*(interrupted)*\n")


def test_markdown_without_messages_or_system_or_title() -> None:
    md = export.to_markdown(conversation(system="", profile="", model="", messages=[]))
    assert md == ("# Conversation\n\n- conversation: 3\n- profile: -\n- model: -\n- started: 2023-11-14 22:13\n"
                  "- last turn: 2023-11-14 23:13\n")
    assert export.to_markdown(conversation(name="Named\nchat")).startswith("# Named chat\n")


def test_markdown_shows_where_the_system_prompt_and_the_model_changed() -> None:
    first = TurnSettings("Be brief.", "/m/a.gguf", "Q4_0")
    conv = conversation(messages=[
        StoredMessage(0, "user", "one", settings=first),
        StoredMessage(1, "assistant", "1", settings=first),
        StoredMessage(2, "user", "two", settings=TurnSettings("", "/m/a.gguf", "Q4_0")),
        StoredMessage(3, "user", "three", settings=TurnSettings("Be long.", "/m/a.gguf", "Q8_0")),
        StoredMessage(4, "user", "four", settings=TurnSettings("Be long.", "/m/b.gguf", "")),
    ])
    md = export.to_markdown(conv)
    assert "- model: a.gguf (Q4_0)\n" in md
    assert md.count("## System") == 3
    assert "## Assistant\n\n```text\n1\n```\n\n## System (changed)\n\n*(none)*\n\n## You\n\n```text\ntwo\n```" in md
    assert ("## System (changed)\n\n```text\nBe long.\n```\n\n*Model from here on: a.gguf (Q8_0)*\n\n"
            "## You\n\n```text\nthree\n```") in md
    assert "```\n\n*Model from here on: b.gguf*\n\n## You\n\n```text\nfour\n```\n" in md


def test_json_holds_every_turn_with_what_was_in_force() -> None:
    data = json.loads(export.to_json(conversation(name="n")))
    assert data == {
        "id": 3, "name": "n", "profile": "p", "model": "/models/small.gguf",
        "created": "2023-11-14T22:13:20+00:00", "updated": "2023-11-14T23:13:20+00:00", "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi  there\nfriend", "interrupted": False, "created": "2023-11-14T22:13:20+00:00",
             "system": "Be brief.", "model": "/models/small.gguf", "quant": ""},
            {"role": "assistant", "content": "Hello.", "interrupted": False, "created": "2023-11-14T22:13:21+00:00",
             "system": "Be brief.", "model": "/models/small.gguf", "quant": "", "stats": {"completion_tokens": 2}},
            {"role": "user", "content": "More", "interrupted": False, "created": "2023-11-14T22:13:22+00:00",
             "system": "Be brief.", "model": "/models/small.gguf", "quant": ""},
            {"role": "assistant", "content": "Mo", "interrupted": True, "created": "2023-11-14T22:13:23+00:00",
             "system": "Be brief.", "model": "/models/small.gguf", "quant": ""},
        ],
    }


def test_json_keeps_text_as_it_is_and_indents() -> None:
    text = export.to_json(conversation(messages=[StoredMessage(0, "user", "é 🇮🇹")]))
    assert '"content": "é 🇮🇹"' in text and text.endswith("}\n") and '\n  "id": 3,' in text


def test_render_picks_the_format() -> None:
    conv = conversation()
    assert export.render(conv, "json") == export.to_json(conv)
    assert export.render(conv, "md") == export.to_markdown(conv)
    assert export.FORMATS == ("md", "json")


def test_the_markdown_title_is_the_first_70_characters_of_the_first_question() -> None:
    text = "y" * 70
    assert export.to_markdown(conversation(messages=[StoredMessage(0, "user", text)])).startswith(f"# {text}\n")
    longer = export.to_markdown(conversation(messages=[StoredMessage(0, "user", text + "z")]))
    assert longer.startswith(f"# {'y' * 69}…\n")


def test_the_markdown_header_shows_the_first_turns_settings() -> None:
    conv = conversation(messages=[
        StoredMessage(0, "user", "one", settings=TurnSettings("First.", "/m/a.gguf", "Q4_0")),
        StoredMessage(1, "assistant", "1", settings=TurnSettings("Second.", "/m/b.gguf", "Q8_0")),
    ])
    md = export.to_markdown(conv)
    assert "- model: a.gguf (Q4_0)\n" in md and "## System\n\n```text\nFirst.\n```" in md
    single = export.to_markdown(conversation(messages=[StoredMessage(0, "user", "one")]))
    assert "- model: small.gguf\n" in single


def test_markdown_of_a_conversation_without_messages_still_shows_its_system_prompt() -> None:
    md = export.to_markdown(conversation(messages=[]))
    assert md.endswith("- model: small.gguf\n- started: 2023-11-14 22:13\n- last turn: 2023-11-14 23:13\n\n"
                       "## System\n\n```text\nBe brief.\n```\n")
