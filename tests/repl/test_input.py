"""Typing: Enter, new lines, \"\"\" blocks, paste, Ctrl+C/Ctrl+D at the prompt, history, /vim."""

from __future__ import annotations

import stat

import pytest

from lcchat.repl.keybindings import open_block, strip_block
from tests.repl.conftest import ALT_ENTER, CTRL_C, CTRL_J, ENTER


def test_alt_enter_and_ctrl_j_insert_newlines(drive) -> None:
    run = drive("one" + ALT_ENTER + "two" + CTRL_J + "three" + ENTER, replies=[["ok"]])
    assert run.messages()[0] == ("user", "one\ntwo\nthree")


def test_triple_quotes_open_and_close_a_block(drive) -> None:
    keys = '"""' + ENTER + "line one" + ENTER + ENTER + "line two" + ENTER + '"""' + ENTER
    run = drive(keys, replies=[["ok"]])
    assert run.messages()[0] == ("user", "line one\n\nline two")


def test_a_block_may_close_on_its_last_line_and_fit_on_one(drive) -> None:
    run = drive('"""first' + ENTER + 'second"""' + ENTER + '"""solo"""' + ENTER, replies=[["a"], ["b"]])
    assert [m for m in run.messages() if m[0] == "user"] == [("user", "first\nsecond"), ("user", "solo")]


def test_a_slash_inside_a_block_is_text(drive) -> None:
    run = drive('"""' + ENTER + "/help me" + ENTER + '"""' + ENTER, replies=[["ok"]])
    assert run.messages()[0] == ("user", "/help me")


@pytest.mark.parametrize("text, is_open", [
    ('"""', True), ('"""abc', True), ('"""\nabc\n', True), ('"""\nabc\n"""', False), ('"""abc"""', False),
    ("plain", False), ('say """', False), ('"""\n"""\n', False),
])
def test_open_block(text, is_open) -> None:
    assert open_block(text) is is_open


def test_strip_block() -> None:
    assert strip_block('"""\nhello\nworld\n"""') == "hello\nworld"
    assert strip_block('"""hi"""') == "hi"
    assert strip_block("plain") == "plain"


def test_bracketed_paste_keeps_its_newlines(drive) -> None:
    paste = "\x1b[200~first line\r\nsecond line\nthird\x1b[201~"
    run = drive(paste + ENTER, replies=[["ok"]])
    assert run.messages()[0] == ("user", "first line\nsecond line\nthird")


def test_ctrl_c_on_an_empty_prompt_says_how_to_quit(drive) -> None:
    run = drive(CTRL_C + "hi" + ENTER, replies=[["ok"]])
    assert "Press Ctrl+D or type /exit to quit." in run.text
    assert run.status == 0
    assert run.messages() == [("user", "hi"), ("assistant", "ok")]  # the chat goes on


def test_ctrl_c_with_text_clears_the_line(drive) -> None:
    run = drive("never mind" + CTRL_C + "hello" + ENTER, replies=[["ok"]])
    assert run.messages()[0] == ("user", "hello")
    assert "Press Ctrl+D" not in run.text


def test_an_empty_line_sends_nothing(drive) -> None:
    run = drive(ENTER + "   " + ENTER)
    assert run.messages() == []


def test_history_file_is_private(drive, lcchat_home) -> None:
    from lcchat import paths

    run = drive("secret question" + ENTER, replies=[["ok"]], history=None)
    path = paths.data_dir() / "repl_history"
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "secret question" in path.read_text()
    assert run.status == 0


def test_history_file_that_was_readable_by_others_is_made_private(drive, lcchat_home) -> None:
    from lcchat import paths

    path = paths.data_dir() / "repl_history"
    path.parent.mkdir(parents=True)
    path.write_text("\n# old\n+earlier line\n")
    path.chmod(0o644)
    run = drive("\x1b[A" + ENTER, replies=[["ok"]], history=None)  # Up recalls the earlier line
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert run.messages()[0] == ("user", "earlier line")


# ---------------------------------------------------------------- /vim


def _script(tmp_path, body: str):
    path = tmp_path / "editor.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_vim_sends_what_the_editor_saved(drive, tmp_path, monkeypatch) -> None:
    editor = _script(tmp_path, "printf 'first line\\nsecond line\\n' > \"$1\"\n")
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(editor))
    run = drive("/vim" + ENTER, replies=[["got it"]])
    assert run.messages() == [("user", "first line\nsecond line"), ("assistant", "got it")]
    assert ">>> first line" in run.text and "... second line" in run.text  # shown as if typed


def test_visual_wins_over_editor_and_may_carry_arguments(drive, tmp_path, monkeypatch) -> None:
    visual = _script(tmp_path, 'printf "%s" "$1" > "$2"\n')
    monkeypatch.setenv("VISUAL", f"{visual} from-visual")
    monkeypatch.setenv("EDITOR", "/nonexistent/editor")
    run = drive("/vim" + ENTER, replies=[["ok"]])
    assert run.messages()[0] == ("user", "from-visual")


def test_vim_with_an_empty_file_cancels(drive, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(_script(tmp_path, ": > \"$1\"\n")))
    run = drive("/vim" + ENTER)
    assert run.messages() == []
    assert "nothing was sent" in run.text


def test_vim_reports_a_failing_editor(drive, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(_script(tmp_path, "echo hi > \"$1\"; exit 3\n")))
    run = drive("/vim" + ENTER)
    assert "error: the editor exited with status 3; nothing was sent" in run.text
    assert run.messages() == []


def test_vim_says_clearly_when_there_is_no_editor(drive, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no vim, vi or nano here
    run = drive("/vim" + ENTER + "still here" + ENTER, replies=[["ok"]])
    assert "error: no editor found: set $VISUAL or $EDITOR" in run.text
    assert run.messages()[0] == ("user", "still here")
    assert "Traceback" not in run.text


def test_vim_names_an_editor_that_is_not_installed(drive, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "/nonexistent/editor --wait")
    run = drive("/vim" + ENTER)
    assert "error: cannot run the editor '/nonexistent/editor'" in run.text


def test_ctrl_c_while_the_editor_runs_leaves_it_to_the_editor(drive, tmp_path, monkeypatch) -> None:
    """The terminal sends SIGINT to the whole foreground group: the REPL must not stop
    waiting and leave the editor running behind the prompt."""
    script = _script(tmp_path, 'kill -INT $PPID; sleep 0.2; echo "written after Ctrl+C" > "$1"\n')
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script))
    run = drive("/vim" + ENTER, replies=[["ok"]])
    assert run.messages()[0] == ("user", "written after Ctrl+C")
    assert "Interrupted" not in run.text
