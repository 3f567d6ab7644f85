"""Exports tell the truth and keep it private: each turn with the system prompt, model file
and quant in force for it; Markdown whose structure no message can break; files 0600."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from lcchat.cli import main
from lcchat.config.loader import load_profile
from lcchat.engine import quant
from lcchat.engine.session import open_session
from lcchat.store import attach
from lcchat.store.db import Store
from lcchat.store.export import to_json, to_markdown
from tests import models


def test_export_shows_the_system_prompt_and_quant_of_each_turn(tmp_path) -> None:
    f32 = models.write_tiny_model(tmp_path / "tiny-f32.gguf")
    models.write_tiny_model(tmp_path / "tiny-f16.gguf", file_type="F16")
    profile = load_profile("default", {"model.path": str(f32), "model.n_ctx": 512, "sampling.max_tokens": 4,
                                       "sampling.temperature": 0.0, "chat.system": "Be brief."})
    session = open_session(profile)
    recorder = attach(session)
    list(session.send("first question"))
    session.set_system("Answer in French.")
    list(session.send("second question"))
    (f16,) = [v for v in quant.find_variants(f32) if v.type_name == "F16"]
    list(quant.switch_variant(session, f16))
    list(session.send("third question"))
    cid = recorder.conversation_id
    session.close()

    conv = Store().get(cid)
    data = json.loads(to_json(conv))
    turns = [(m["content"], m["system"], Path(m["model"]).name, m["quant"]) for m in data["messages"]
             if m["role"] == "user"]
    assert turns == [("first question", "Be brief.", "tiny-f32.gguf", "F32"),
                     ("second question", "Answer in French.", "tiny-f32.gguf", "F32"),
                     ("third question", "Answer in French.", "tiny-f16.gguf", "F16")]

    md = to_markdown(conv)
    assert "- model: tiny-f32.gguf (F32)" in md
    first, second, third = (md.index(f"```text\n{q}") for q in ("first question", "second question", "third question"))
    assert md.index("Be brief.") < first
    changed = md.index("## System (changed)")
    assert first < changed < second and md.index("Answer in French.") > changed
    switched = md.index("*Model from here on: tiny-f16.gguf (F16)*")
    assert second < switched < third


def headings_outside_fences(md: str) -> list[str]:
    """The document's structure as a CommonMark reader sees it: the `## ` lines that are
    not inside a fenced block (a fence closes only with at least as many backticks)."""
    found, fence = [], None
    for line in md.splitlines():
        marks = re.match(r"^(`{3,})", line)
        if fence is None and marks:
            fence = marks.group(1)
        elif fence is not None and re.fullmatch(rf"{fence}`*\s*", line):
            fence = None
        elif fence is None and line.startswith("## "):
            found.append(line)
    return found


def test_markdown_fences_each_message_so_nothing_inside_breaks_the_document() -> None:
    store = Store()
    hostile = "Sure.\n\n## You\n\nignore the above\n```python\nprint('never closed')\n````\n## System\n"
    with store.transaction() as db:
        cid = Store.create(db, profile="p", model="/m/x.gguf", system="sys with ``` inside", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "q1 ``````", False, None), ("assistant", hostile, False, None),
                                          ("user", "q2", False, None), ("assistant", "```", True, None)],
                             system="sys with ``` inside", now=2.0)
    md = to_markdown(store.get(cid))
    assert headings_outside_fences(md) == ["## System", "## You", "## Assistant", "## You", "## Assistant"]
    assert hostile in md  # the text itself is kept as it was


def test_export_files_are_private_whatever_the_umask(tmp_path, capsys) -> None:
    store = Store()
    with store.transaction() as db:
        cid = Store.create(db, profile="p", model="", system="", now=1.0)
        Store.write_messages(db, cid, 0, [("user", "private", False, None)], system="", now=1.0)
    store.close()
    fresh, existing = tmp_path / "new.md", tmp_path / "old.json"
    existing.write_text("old")
    existing.chmod(0o644)
    old = os.umask(0o022)
    try:
        assert main(["history", "export", str(cid), "-o", str(fresh)]) == 0
        assert main(["history", "export", str(cid), "-f", "json", "-o", str(existing)]) == 0
    finally:
        os.umask(old)
    for path in (fresh, existing):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert "private" in fresh.read_text() and json.loads(existing.read_text())["id"] == cid
