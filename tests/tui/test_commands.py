"""Each kind of command action in the TUI (Pilot, fake backend), and how results are shown
(what each command says is tested once, in tests/commands/)."""

from __future__ import annotations

import pytest

from lcchat.commands import registry
from lcchat.tui.transcript import AssistantTurn, CommandOutput, UserTurn
from tests.tui.helpers import app_for, drive, outputs, ready, say, session_with

CODE_REPLY = ["Try:\n\n", "```sh\n", "ls -l\n", "```\n"]


def last_output(app) -> CommandOutput:
    return app.transcript.query(CommandOutput).last()


def rows(app) -> dict[str, str]:
    return dict(last_output(app).rows)


def run(replies, scenario, size=(80, 24), **options) -> None:
    app = app_for(session_with(*replies), **options)

    async def main(pilot):
        await ready(pilot)
        await scenario(pilot, app)

    drive(app, main, size)


@pytest.mark.parametrize("name", [c.name for c in registry.commands()])
def test_every_command_runs_bare_without_breaking_the_app(name, monkeypatch, tmp_path) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'from the editor\\n' > \"$1\"\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))

    def screen(app) -> list[tuple[str, str]]:
        return [(type(w).__name__, str(getattr(w, "text", ""))) for w in app.transcript.children]

    async def scenario(pilot, app):
        await say(pilot, "hello")
        before = screen(app)
        await say(pilot, f"/{name}")
        if name == "exit":
            assert not app.is_running
            return
        assert app.is_running
        after = screen(app)
        assert after != before, f"/{name} showed nothing"  # an answer, an error, or a changed transcript
        await say(pilot, "still there?")
        assert app.transcript.query(AssistantTurn).last().text == "OK"

    run([["first"]], scenario)


def test_help_lists_the_keys_and_every_command_as_a_table() -> None:
    async def scenario(pilot, app):
        await say(pilot, "/help")
        listed = rows(app)
        for cmd in registry.commands():
            assert cmd.usage in listed
        keys = outputs(app)[-1]
        for key in ("Enter sends", "Ctrl+J", "Esc or Ctrl+C stops", "Ctrl+P", "PageUp", "Ctrl+End", "Ctrl+Q"):
            assert key in keys  # the TUI's own keys, as the REPL's /help lists its own
        await say(pilot, "/help copy")
        assert "OSC 52" in outputs(app)[-1]

    run([], scenario)


@pytest.mark.parametrize("line", ["/exit", "/quit", "/q"])
def test_exit_leaves(line) -> None:
    async def scenario(pilot, app):
        await say(pilot, line)
        assert not app.is_running

    run([], scenario)


def test_clear_empties_the_transcript_and_the_context() -> None:
    async def scenario(pilot, app):
        await say(pilot, "one")
        assert app.dashboard.figures.context_used > 0
        await say(pilot, "/clear")
        assert not app.transcript.query(UserTurn) and not app.transcript.query(AssistantTurn)
        assert outputs(app) == ["Conversation cleared."]
        assert app.session.conversation.messages == []
        assert app.dashboard.figures.context_used == 0

    run([["r1"]], scenario)


def test_retry_replaces_the_last_reply() -> None:
    async def scenario(pilot, app):
        await say(pilot, "/retry")
        assert last_output(app).has_class("-error")
        await say(pilot, "question")
        await say(pilot, "/retry")
        replies = list(app.transcript.query(AssistantTurn))
        assert [r.text for r in replies] == ["second try"]
        assert [m.content for m in app.session.conversation.messages] == ["question", "second try"]
        assert app.transcript.turns == [app.transcript.query_one(UserTurn), replies[0]]

    run([["first try"], ["second try"]], scenario)


def test_undo_drops_the_last_exchange_from_the_screen_too() -> None:
    async def scenario(pilot, app):
        await say(pilot, "one")
        await say(pilot, "two")
        await say(pilot, "/undo")
        assert "Dropped the last exchange; 2 messages left." in outputs(app)
        assert [t.text for t in app.transcript.query(UserTurn)] == ["one"]
        assert [t.text for t in app.transcript.query(AssistantTurn)] == ["r1"]
        await say(pilot, "/undo")
        await say(pilot, "/undo")
        assert last_output(app).has_class("-error")

    run([["r1"], ["r2"]], scenario)


def test_stream_toggles_streaming() -> None:
    async def scenario(pilot, app):
        await say(pilot, "/stream off")
        assert app.front.stream is False and outputs(app)[-1] == "Streaming is off."
        await say(pilot, "/stream")
        assert app.front.stream is True

    run([], scenario)


@pytest.mark.parametrize("what,key", [("params", "temperature"), ("model", "quant"), ("stats", "reply tokens")])
def test_show_prints_tables(what, key) -> None:
    async def scenario(pilot, app):
        await say(pilot, "hi")
        await say(pilot, f"/show {what}")
        assert key in rows(app)

    run([["reply"]], scenario)


def test_copy_puts_the_reply_or_a_code_block_on_the_clipboard() -> None:
    async def scenario(pilot, app):
        await say(pilot, "/copy")
        assert last_output(app).has_class("-error")
        await say(pilot, "how do I list files?")
        await say(pilot, "/copy")
        assert app.clipboard == "".join(CODE_REPLY)
        await say(pilot, "/copy 1")
        assert app.clipboard == "ls -l\n"
        assert outputs(app)[-1].startswith("Copied code block 1")

    run([CODE_REPLY], scenario)


def test_theme_lists_and_switches_live() -> None:
    async def scenario(pilot, app):
        await say(pilot, "/theme")
        listed = rows(app)
        assert {"dark", "light", "high-contrast", "ssh"} <= set(listed)
        assert listed["dark"] == "(current)"
        background = app.screen.styles.background
        await say(pilot, "/theme light")
        assert app.front.theme == "light" and app.theme == "lcchat-light"
        assert app.screen.styles.background != background
        await say(pilot, "/theme nope")
        assert last_output(app).has_class("-error") and app.front.theme == "light"

    run([], scenario)


def test_a_double_slash_sends_a_message_starting_with_a_slash() -> None:
    async def scenario(pilot, app):
        await say(pilot, "//etc/hosts is a file")
        assert app.transcript.query_one(UserTurn).text == "/etc/hosts is a file"

    run([["yes"]], scenario)


def test_a_line_starting_with_a_space_is_a_message_not_a_command() -> None:
    async def scenario(pilot, app):
        await say(pilot, " /help")
        assert app.transcript.query_one(UserTurn).text == " /help"
        assert outputs(app) == []  # /help did not run

    run([["yes"]], scenario)


def test_a_command_that_raises_is_reported_not_fatal(monkeypatch) -> None:
    cmd = registry.get("context")
    monkeypatch.setattr(cmd, "handler", lambda ctx, arg: 1 / 0)

    async def scenario(pilot, app):
        await say(pilot, "/context")
        assert "ZeroDivisionError" in outputs(app)[-1]
        assert app.is_running

    run([], scenario)


def test_a_task_shows_progress_not_a_reply_and_keeps_the_last_reply() -> None:
    """/quant and /load run as a TASK: progress and notices in the transcript, no assistant
    turn, and the reply above stays on screen."""
    from lcchat.commands.actions import Task
    from lcchat.commands.registry import Result, registry
    from lcchat.engine.events import Done, Notice, Progress

    def work():
        yield Progress("quantize", 1, 2)
        yield Notice("wrote model.Q4_K_M.gguf")
        yield Done("stop", "")

    registry.command("fakework", help="test only")(lambda ctx, arg: Result(action=Task(work, "quantize")))
    try:
        session = session_with(["the answer"])
        app = app_for(session)

        async def scenario(pilot) -> None:
            await ready(pilot)
            await say(pilot, "question")
            await say(pilot, "/fakework")
            transcript = app.transcript
            assert [type(t).__name__ for t in transcript.turns] == ["UserTurn", "AssistantTurn"]
            assert transcript.turns[-1].text == "the answer"
            notices = [str(n.render()) for n in transcript.query("Notice")]
            assert any("wrote model.Q4_K_M.gguf" in n for n in notices)
            assert not app.busy

        drive(app, scenario)
    finally:
        registry._commands.pop("fakework", None)
        registry._names.pop("fakework", None)


def test_a_continued_conversation_is_drawn_when_the_app_opens() -> None:
    from lcchat.engine.chat import Message

    session = session_with(["next"])
    session.conversation.messages[:] = [Message("user", "earlier question"), Message("assistant", "earlier answer"),
                                        Message("user", "cut off"), Message("assistant", "half", interrupted=True)]
    app = app_for(session)

    async def scenario(pilot) -> None:
        await ready(pilot)
        turns = app.transcript.turns
        assert [t.text for t in turns if isinstance(t, AssistantTurn)] == ["earlier answer", "half"]
        assert turns[-1].finish_reason == "interrupted"

    drive(app, scenario)
