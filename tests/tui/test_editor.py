"""/vim: the app hands the terminal to $EDITOR (a script here) and sends what it saved.

Under Pilot the app cannot suspend (the headless driver has no terminal), so the editor
runs without one, which is what a script editor needs; tests/e2e/test_tui_tmux.py covers
suspending in a real terminal."""

from __future__ import annotations

from lcchat.editor import edit
from lcchat.tui.editor import terminal_handoff
from lcchat.tui.transcript import AssistantTurn, CommandOutput, UserTurn
from tests.tui.helpers import app_for, drive, outputs, ready, say, session_with


def script(tmp_path, body: str):
    path = tmp_path / "editor.sh"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def run(scenario, replies=(["answer"],), **options) -> None:
    app = app_for(session_with(*replies), **options)

    async def main(pilot):
        await ready(pilot)
        await scenario(pilot, app)

    drive(app, main)


def test_vim_sends_what_the_editor_saved(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script(tmp_path, "printf 'first line\\nsecond line\\n' > \"$1\"")))

    async def scenario(pilot, app):
        await say(pilot, "/vim")
        assert app.transcript.query_one(UserTurn).text == "first line\nsecond line"
        assert app.transcript.query_one(AssistantTurn).text == "answer"
        assert [m.content for m in app.session.conversation.messages] == ["first line\nsecond line", "answer"]

    run(scenario)


def test_vim_starts_from_its_argument(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script(tmp_path, "printf ' and more\\n' >> \"$1\"")))

    async def scenario(pilot, app):
        await say(pilot, "/vim a draft")
        assert app.transcript.query_one(UserTurn).text == "a draft and more"

    run(scenario)


def test_an_empty_file_sends_nothing(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script(tmp_path, ": > \"$1\"")))

    async def scenario(pilot, app):
        await say(pilot, "/vim")
        assert not app.transcript.query(UserTurn)
        assert "nothing was sent" in outputs(app)[-1]

    run(scenario)


def test_a_failing_or_missing_editor_is_reported(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script(tmp_path, "exit 3")))

    async def scenario(pilot, app):
        await say(pilot, "/vim")
        assert "exited with status 3" in outputs(app)[-1]
        monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
        await say(pilot, "/vim")
        assert "was not found" in outputs(app)[-1]
        assert app.transcript.query(CommandOutput).last().has_class("-error")
        assert app.is_running

    run(scenario)


def test_an_injected_editor_runner_is_used() -> None:
    seen = []

    def runner(initial: str):
        seen.append(initial)
        return "typed elsewhere"

    async def scenario(pilot, app):
        await say(pilot, "/vim start")
        assert seen == ["start"]
        assert app.transcript.query_one(UserTurn).text == "typed elsewhere"

    run(scenario, editor=runner)


def test_the_editor_gets_the_terminal_when_the_app_can_suspend(tmp_path, monkeypatch) -> None:
    """With a driver that can suspend, the editor runs inside App.suspend()."""
    from contextlib import contextmanager

    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(script(tmp_path, "printf 'hi\\n' > \"$1\"")))
    events = []

    class FakeApp:
        class _driver:
            can_suspend = True

        @contextmanager
        def suspend(self):
            events.append("suspend")
            yield
            events.append("resume")

    assert edit("", run=terminal_handoff(FakeApp())) == "hi"
    assert events == ["suspend", "resume"]
