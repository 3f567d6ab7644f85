"""The shared slash-command registry, driven directly with a scripted session."""

from __future__ import annotations

import pytest

from lcchat.commands import Clear, Copy, Edit, Exit, FrontState, Context, Generate, Settings, registry
from lcchat.commands.builtin import code_blocks
from lcchat.engine.events import Token
from lcchat.engine.fake import FakeModel, fake_session


@pytest.fixture
def ctx() -> Context:
    model = FakeModel(replies=[["Here:\n```py\nprint(1)\n```\nand\n```\nx\n```\n"], ["second"]])
    return Context(fake_session(model), FrontState())


def chat(ctx: Context, text: str) -> str:
    return "".join(e.text for e in ctx.session.send(text) if isinstance(e, Token))


def test_every_command_has_help_and_a_usage() -> None:
    names = {c.name for c in registry.commands()}
    assert {"help", "exit", "clear", "stream", "vim", "system", "set", "show", "retry", "undo", "copy",
            "context"} <= names
    for cmd in registry.commands():
        assert cmd.help and cmd.usage.startswith("/")


def test_help_lists_and_explains(ctx) -> None:
    listing = registry.dispatch(ctx, "/help")
    assert any(row[0] == "/set PARAM VALUE" for row in listing.rows)
    one = registry.dispatch(ctx, "/help copy")
    assert "OSC 52" in one.text


@pytest.mark.parametrize("line", ["/exit", "/quit", "/bye"])
def test_exit_and_aliases(ctx, line) -> None:
    assert registry.dispatch(ctx, line).action == Exit()


def test_unknown_command_suggests_the_nearest(ctx) -> None:
    r = registry.dispatch(ctx, "/stram off")
    assert r.error and "Did you mean /stream?" in r.text


def test_set_checks_values(ctx) -> None:
    assert registry.dispatch(ctx, "/set temperature 0.3").text == "temperature = 0.3"
    assert ctx.session.sampling.temperature == 0.3
    r = registry.dispatch(ctx, "/set top_p 2")
    assert r.error and "at most 1" in r.text
    r = registry.dispatch(ctx, "/set top_k many")
    assert r.error and "whole number" in r.text
    r = registry.dispatch(ctx, "/set temprature 1")
    assert r.error and "Did you mean temperature?" in r.text
    r = registry.dispatch(ctx, "/set")
    assert r.error and "Usage: /set PARAM VALUE" in r.text


def test_set_stop_vi_and_stream(ctx) -> None:
    registry.dispatch(ctx, "/set stop END,###")
    assert "END" in ctx.session.stops and "###" in ctx.session.stops
    assert registry.dispatch(ctx, "/set vi on").action == Settings() and ctx.state.vi_mode
    r = registry.dispatch(ctx, "/stream")
    assert r.action == Settings() and ctx.state.stream is False
    assert registry.dispatch(ctx, "/stream maybe").error


def test_system_show_set_remove(ctx) -> None:
    assert "No system prompt" in registry.dispatch(ctx, "/system").text
    registry.dispatch(ctx, "/system Be terse.")
    assert ctx.session.conversation.system == "Be terse."
    registry.dispatch(ctx, "/system -")
    assert ctx.session.conversation.system == ""


def test_show_views(ctx) -> None:
    assert registry.dispatch(ctx, "/show stats").text == "No reply yet."
    chat(ctx, "hi")
    rows = dict(registry.dispatch(ctx, "/show stats").rows)
    assert rows["reply tokens"] == "1"
    assert "temperature" in dict(registry.dispatch(ctx, "/show params").rows)
    assert "chat format" in dict(registry.dispatch(ctx, "/show model").rows)
    assert "[sampling]" in registry.dispatch(ctx, "/show profile").text
    assert registry.dispatch(ctx, "/show nonsense").error


def test_clear_undo_retry_context(ctx) -> None:
    chat(ctx, "first")
    chat(ctx, "second q")
    assert "2 messages left" in registry.dispatch(ctx, "/undo").text
    r = registry.dispatch(ctx, "/retry")
    assert isinstance(r.action, Generate)
    assert "".join(e.text for e in r.action.produce() if isinstance(e, Token)) == "OK"  # the next scripted reply
    assert "of 2" in dict(registry.dispatch(ctx, "/context").rows)["messages seen by the model"]
    assert registry.dispatch(ctx, "/clear").action == Clear()
    assert ctx.session.conversation.messages == []
    assert registry.dispatch(ctx, "/undo").error
    assert registry.dispatch(ctx, "/retry").error


def test_copy_reply_and_code_blocks(ctx) -> None:
    assert registry.dispatch(ctx, "/copy").error
    chat(ctx, "code please")
    r = registry.dispatch(ctx, "/copy")
    assert isinstance(r.action, Copy) and r.action.text.startswith("Here:")
    assert registry.dispatch(ctx, "/copy 1").action == Copy("print(1)\n")
    assert registry.dispatch(ctx, "/copy 2").action == Copy("x\n")
    assert "has 2 code blocks" in registry.dispatch(ctx, "/copy 3").text
    assert registry.dispatch(ctx, "/copy x").error


def test_no_code_blocks() -> None:
    assert code_blocks("no code") == []


def test_vim_asks_for_the_editor(ctx) -> None:
    assert registry.dispatch(ctx, "/vim").action == Edit("")
    assert registry.dispatch(ctx, "/vim a draft").action == Edit("a draft")


def test_completions(ctx) -> None:
    assert "/stream" in registry.completions(ctx, "/st")
    assert registry.completions(ctx, "/set tem") == ["temperature"]
    assert registry.completions(ctx, "/show m") == ["model"]
    assert registry.completions(ctx, "/stream o") == ["on", "off"]
    assert registry.completions(ctx, "hello") == []


def test_code_blocks_count_an_unclosed_fence_and_fences_in_lists() -> None:
    from lcchat.commands.builtin import code_blocks

    interrupted = "Here:\n\n```python\nimport os\n\nprint(os.getcwd())"
    assert code_blocks(interrupted) == ["import os\n\nprint(os.getcwd())\n"]
    listed = "1. Run:\n\n   ```bash\n   ls -l\n   ```\n\n~~~\ntilde ``` inside\n~~~\n"
    assert code_blocks(listed) == ["ls -l\n", "tilde ``` inside\n"]


def test_copy_inside_tmux_says_what_to_set() -> None:
    from lcchat.commands.builtin import tmux_clipboard_hint

    assert tmux_clipboard_hint({}, ask=lambda: "external") == ""  # not in tmux
    assert tmux_clipboard_hint({"TMUX": "/tmp/tmux-0/default,1,0"}, ask=lambda: "on") == ""
    hint = tmux_clipboard_hint({"TMUX": "/tmp/tmux-0/default,1,0"}, ask=lambda: "external")
    assert "it is 'external'" in hint and "tmux set -g set-clipboard on" in hint


@pytest.mark.parametrize("arg", ["²", "١", "0", "-1"])
def test_copy_n_takes_only_ascii_digits(ctx, arg) -> None:
    chat(ctx, "code please")
    r = registry.dispatch(ctx, f"/copy {arg}")  # "²".isdigit() is True but int("²") raises
    assert r.error and f"N must be a code block number, not {arg!r}" in r.text
