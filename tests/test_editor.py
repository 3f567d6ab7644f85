"""lcchat/editor.py, the one /vim editor module both front-ends use; tests/repl/test_input.py
and tests/tui/test_editor.py drive /vim through each front-end."""

from __future__ import annotations

import os

import pytest

from lcchat import editor
from lcchat.editor import EditorError, edit, find_editor


def _script(tmp_path, body: str):
    path = tmp_path / "editor.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_editor_fallbacks(tmp_path) -> None:
    for name in ("nano", "vi"):
        p = tmp_path / name
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    assert find_editor({"PATH": str(tmp_path)}) == [str(tmp_path / "vi")]
    assert find_editor({"PATH": str(tmp_path), "EDITOR": "ed -s"}) == ["ed", "-s"]
    assert find_editor({"PATH": str(tmp_path / "none")}) is None


def test_visual_wins_over_editor_and_vim_is_the_fallback(monkeypatch) -> None:
    assert find_editor({"VISUAL": "code --wait", "EDITOR": "nano"}) == ["code", "--wait"]
    assert find_editor({"EDITOR": "nano -w"}) == ["nano", "-w"]
    monkeypatch.setattr(editor.shutil, "which", lambda name, path=None: f"/usr/bin/{name}" if name == "vi" else None)
    assert find_editor({}) == ["/usr/bin/vi"]
    monkeypatch.setattr(editor.shutil, "which", lambda name, path=None: None)
    assert find_editor({}) is None
    with pytest.raises(EditorError, match="no editor found"):
        edit("", env={})


def test_temp_file_is_private_and_removed(tmp_path) -> None:
    seen = tmp_path / "seen"
    script = _script(tmp_path, f'stat -c %a "$1" > {seen}; echo "$1" >> {seen}; echo text > "$1"\n')
    assert edit("", env={"EDITOR": str(script)}) == "text"
    mode, path = seen.read_text().split()
    assert mode == "600"
    assert not os.path.exists(path)


def test_what_is_read_back_is_bounded(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(editor, "MAX_BYTES", 10)
    script = _script(tmp_path, 'printf "0123456789A" > "$1"\n')
    with pytest.raises(EditorError, match="nothing was sent"):
        edit("", env={"EDITOR": str(script)})
    script.write_text('#!/bin/sh\nprintf "\\n\\n012 \\n" > "$1"\n')
    assert edit("", env={"EDITOR": str(script)}) == "012"  # leading blank lines and trailing space go


def test_a_blank_file_is_nothing(tmp_path) -> None:
    assert edit("", env={"EDITOR": str(_script(tmp_path, 'printf " \\n\\n" > "$1"\n'))}) == ""


def test_a_missing_editor_is_named(tmp_path) -> None:
    with pytest.raises(EditorError) as caught:
        edit("", env={"EDITOR": str(tmp_path / "no-such-editor")})
    assert str(caught.value) == (f"cannot run the editor '{tmp_path / 'no-such-editor'}': it was not found; "
                                 "set $VISUAL or $EDITOR")
