"""store.export in full: the exact text of each format, with and without the optional parts."""

from __future__ import annotations

import json
import time

import pytest

from lcchat.store import export
from lcchat.store.db import StoredConversation, StoredMessage, Summary

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def conversation(**changes) -> StoredConversation:
    values = dict(id=7, created=T0, updated=T0 + 3600, profile="smollm2", model="/m/SmolLM2.gguf", name=None,
                  system="Be brief.", messages=[
                      StoredMessage(1, "user", "Capital of France?\nOne word.", created=T0),
                      StoredMessage(2, "assistant", "Paris.", stats={"completion_tokens": 2}, created=T0 + 60),
                      StoredMessage(3, "user", "Italy?", created=T0 + 120),
                      StoredMessage(4, "assistant", "Ro", interrupted=True, created=T0 + 180),
                  ])
    values.update(changes)
    return StoredConversation(**values)


def test_transcript() -> None:
    assert export.transcript(conversation()) == (
        "# conversation 7 · smollm2 · SmolLM2.gguf · 2023-11-14 22:13 to 2023-11-14 23:13\n"
        "\nsystem: Be brief.\n"
        "\nyou: Capital of France?\nOne word.\n"
        "\nassistant: Paris.\n"
        "\nyou: Italy?\n"
        "\nassistant: Ro [interrupted]\n")


def test_transcript_with_a_name_and_without_system_profile_or_model() -> None:
    text = export.transcript(conversation(name="trip", system="", profile="", model="", messages=[]))
    assert text == "# conversation 7 (trip) · - · - · 2023-11-14 22:13 to 2023-11-14 23:13\n"


def test_markdown() -> None:
    assert export.to_markdown(conversation()) == (
        "# Capital of France? One word.\n\n"
        "- conversation: 7\n- profile: smollm2\n- model: SmolLM2.gguf\n"
        "- started: 2023-11-14 22:13\n- last turn: 2023-11-14 23:13\n\n"
        "## System\n\nBe brief.\n\n"
        "## You\n\nCapital of France?\nOne word.\n\n"
        "## Assistant\n\nParis.\n\n"
        "## You\n\nItaly?\n\n"
        "## Assistant\n\nRo\n\n*(interrupted)*\n")


def test_markdown_titles_and_missing_parts() -> None:
    assert export.to_markdown(conversation(name="trip")).startswith("# trip\n")
    bare = export.to_markdown(conversation(system="", profile="", model="", messages=[]))
    assert bare == ("# Conversation\n\n- conversation: 7\n- profile: -\n- model: -\n"
                    "- started: 2023-11-14 22:13\n- last turn: 2023-11-14 23:13\n")
    long = export.to_markdown(conversation(messages=[StoredMessage(1, "user", "word " * 40)]))
    assert len(long.splitlines()[0]) <= 2 + 70


def test_json() -> None:
    text = export.to_json(conversation(name="trip", messages=[
        StoredMessage(1, "user", "Italy? 🇮🇹", created=T0),
        StoredMessage(2, "assistant", "Ro", interrupted=True, stats={"completion_tokens": 1}, created=T0 + 1),
    ]))
    assert text.endswith("}\n") and "🇮🇹" in text and '\n  "id": 7' in text  # not ASCII-escaped, indented
    assert json.loads(text) == {
        "id": 7, "name": "trip", "profile": "smollm2", "model": "/m/SmolLM2.gguf",
        "created": "2023-11-14T22:13:20+00:00", "updated": "2023-11-14T23:13:20+00:00", "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Italy? 🇮🇹", "interrupted": False, "created": "2023-11-14T22:13:20+00:00"},
            {"role": "assistant", "content": "Ro", "interrupted": True, "created": "2023-11-14T22:13:21+00:00",
             "stats": {"completion_tokens": 1}},
        ],
    }


def test_render_picks_the_format() -> None:
    conv = conversation()
    assert export.render(conv, "json") == export.to_json(conv)
    assert export.render(conv, "md") == export.to_markdown(conv)


def summary(**changes) -> Summary:
    values = dict(id=12, created=T0, updated=T0 + 60, profile="smollm2", model="m.gguf", name=None,
                  first_user="hello\nthere", n_messages=2, interrupted=False)
    values.update(changes)
    return Summary(**values)


def test_list_line() -> None:
    assert export.list_line(summary()) == "   12  2023-11-14 22:14  smollm2         hello there"
    assert export.list_line(summary(name="trip", interrupted=True, profile="")) == \
        "   12  2023-11-14 22:14  -               [trip] hello there (interrupted)"
    assert len(export.list_line(summary(first_user="x" * 200))) <= 5 + 2 + 16 + 2 + 14 + 2 + 60
