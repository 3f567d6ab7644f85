"""`lcchat history list|show|export|rm` and the export formats."""

from __future__ import annotations

import json

import pytest

from lcchat.cli import main
from lcchat.store import kvstate
from lcchat.store.db import Store
from lcchat.store.export import list_line, to_json, to_markdown


@pytest.fixture
def stored() -> int:
    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="smollm2", model="/models/SmolLM2.gguf", system="Be brief.", now=1_700_000_000.0)
        Store.write_messages(db, cid, 0, [
            ("user", "What is the capital of France?\nAnswer in one word.", False, None),
            ("assistant", "Paris.", False, {"completion_tokens": 2, "tokens_per_s": 50.0}),
            ("user", "And of Italy? 🇮🇹", False, None),
            ("assistant", "Ro", True, None),
        ], system="Be brief.", now=1_700_000_100.0)
    store.close()
    return cid


def test_markdown_export(stored) -> None:
    md = to_markdown(Store().get(stored))
    assert md.startswith("# What is the capital of France? Answer in one word.\n")
    assert "- profile: smollm2" in md and "- model: SmolLM2.gguf" in md
    assert "## System\n\n```text\nBe brief.\n```" in md
    assert "## You\n\n```text\nWhat is the capital of France?\nAnswer in one word.\n```\n" in md
    assert "## Assistant\n\n```text\nRo\n```\n\n*(interrupted)*" in md


def test_json_export_round_trips(stored) -> None:
    data = json.loads(to_json(Store().get(stored)))
    assert data["id"] == stored and data["profile"] == "smollm2" and data["system"] == "Be brief."
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "user", "assistant"]
    assert data["messages"][1]["stats"]["completion_tokens"] == 2 and "stats" not in data["messages"][0]
    assert data["messages"][2]["content"] == "And of Italy? 🇮🇹"
    assert data["messages"][3]["interrupted"] is True
    assert data["created"].startswith("2023-11-14T22:13:20")


def test_history_list_is_one_line_per_conversation(stored, capsys) -> None:
    assert main(["history", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].split()[0] == str(stored)
    assert "smollm2" in lines[0] and "What is the capital of France? Answer in one word." in lines[0]
    assert "(interrupted)" in lines[0]
    assert lines[0] == list_line(Store().summaries()[0])


def test_history_alone_lists(stored, capsys) -> None:
    assert main(["history"]) == 0
    alone = capsys.readouterr().out
    assert main(["history", "list"]) == 0
    assert alone == capsys.readouterr().out and alone.split()[0] == str(stored)


def test_history_show_export_rm(stored, capsys, tmp_path) -> None:
    assert main(["history", "show", str(stored)]) == 0
    out = capsys.readouterr().out
    assert "system: Be brief." in out and "you: And of Italy? 🇮🇹" in out and "assistant: Ro [interrupted]" in out
    assert main(["history", "export", str(stored), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == stored
    assert main(["history", "export", str(stored), "--format", "md", "-o", str(tmp_path / "c.md")]) == 0
    assert (tmp_path / "c.md").read_text().startswith("# What is the capital")
    kvstate.state_path(stored).parent.mkdir(parents=True, exist_ok=True)
    kvstate.state_path(stored).write_bytes(b"x")
    assert main(["history", "rm", str(stored)]) == 0
    assert "removed conversation" in capsys.readouterr().out
    assert Store().get(stored) is None and not kvstate.state_path(stored).exists()


@pytest.mark.parametrize("argv", [["show", "99"], ["export", "99"], ["rm", "nope"]])
def test_unknown_id_is_one_line_and_exit_2(stored, capsys, argv) -> None:
    assert main(["history", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no conversation" in err and "Traceback" not in err


def test_bad_usage_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["history", "export", "1", "--format", "pdf"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["history", "frobnicate"])
    assert info.value.code == 2


def test_empty_history_lists_nothing(capsys) -> None:
    assert main(["history", "list"]) == 0
    assert capsys.readouterr().out == ""


def test_a_corrupt_database_is_one_line_exit_1(lcchat_home, capsys) -> None:
    (lcchat_home / "data").mkdir()
    (lcchat_home / "data" / "conversations.db").write_bytes(b"this is not sqlite" * 100)
    assert main(["history", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"lcchat: {lcchat_home / 'data' / 'conversations.db'} is damaged") and len(err.splitlines()) == 1
    assert ".recover" in err


def test_reading_a_healthy_database_skips_the_full_check(stored, capsys, monkeypatch) -> None:
    """quick_check reads every page of the file: only a failed or short read earns it."""
    checks = []
    monkeypatch.setattr(Store, "check", lambda self: checks.append(self.path))
    for argv in (["history", "list"], ["history", "show", str(stored)], ["history", "export", str(stored)]):
        assert main(argv) == 0
    assert checks == []
    capsys.readouterr()


def test_a_listing_that_comes_out_short_is_checked(stored, capsys, monkeypatch) -> None:
    from lcchat.store.db import Damaged

    def damaged(self) -> None:
        raise Damaged(self.path, "Tree 2 page 3: btreeInitPage() returns error code 11")

    monkeypatch.setattr(Store, "summaries", lambda self, limit=None: [])  # as a damaged table might
    monkeypatch.setattr(Store, "check", damaged)
    assert main(["history", "list"]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and "What could be read is shown above" in err


def test_an_empty_history_says_so_on_stderr(lcchat_home, capsys) -> None:
    assert main(["history", "list"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("no conversations stored yet")
