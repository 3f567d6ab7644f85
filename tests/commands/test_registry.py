"""The shared slash-command registry, driven directly with a scripted session."""

from __future__ import annotations

import pytest

from lcchat.commands import Clear, Context, Copy, Edit, Exit, FrontState, Generate, Settings, Theme, registry
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


# ---------------------------------------------------------------- moved from the front-ends' tests
# These test what a command says and does, once; tests/repl and tests/tui test how each
# front-end shows a Result and carries out each kind of action.


def test_help_for_one_command_and_for_an_unknown_one(ctx) -> None:
    one = registry.dispatch(ctx, "/help set")
    assert "/set PARAM VALUE" in one.text and "Parameters:" in one.text
    r = registry.dispatch(ctx, "/help nosuch")
    assert r.error and r.text.startswith("No command /nosuch.")


def test_help_lists_the_keys_the_front_end_gives() -> None:
    ctx = Context(fake_session(FakeModel()), FrontState(keys="Enter sends · Ctrl+D leaves"))
    assert registry.dispatch(ctx, "/help").text.startswith("Keys: Enter sends · Ctrl+D leaves\n")
    ctx = Context(fake_session(FakeModel()), FrontState())
    assert "Keys:" not in registry.dispatch(ctx, "/help").text  # none given, none listed


def test_an_unknown_command_gets_the_nearest_name(ctx) -> None:
    r = registry.dispatch(ctx, "/hepl")
    assert r.error and r.text == "Unknown command /hepl. Did you mean /help? /help lists them."
    assert "Did you mean /set?" in registry.dispatch(ctx, "/sett temperature 1").text
    assert "Did you mean /help?" in registry.dispatch(ctx, "/hlep").text
    assert ctx.session.conversation.messages == []  # commands are never sent to the model


def test_set_changes_a_parameter_and_explains_bad_values(ctx) -> None:
    texts = {}
    for line in ("/set temperature 0.3", "/set top_k 7", "/set temperature abc", "/set top_p 2", "/set nosuch 1",
                 "/set", "/set max_tokens"):
        texts[line] = registry.dispatch(ctx, line)
    s = ctx.session.sampling
    assert (s.temperature, s.top_k) == (0.3, 7)
    assert texts["/set temperature 0.3"].text == "temperature = 0.3"
    assert texts["/set temperature abc"].error and texts["/set temperature abc"].text.startswith("temperature must be a number")
    assert texts["/set top_p 2"].error and texts["/set top_p 2"].text.startswith("top_p")
    assert texts["/set nosuch 1"].text.startswith("No parameter 'nosuch'. Usage: /set PARAM VALUE")
    assert texts["/set"].text == "Name a parameter. Usage: /set PARAM VALUE"
    assert texts["/set max_tokens"].text.startswith("Give a value for max_tokens.")
    assert registry.dispatch(ctx, "/set vi maybe").text.startswith("Expected on or off, not 'maybe'.")


def test_stream_toggles_and_checks_its_argument(ctx) -> None:
    assert registry.dispatch(ctx, "/stream").text == "Streaming is off." and ctx.state.stream is False
    registry.dispatch(ctx, "/stream off")
    assert registry.dispatch(ctx, "/stream on").text == "Streaming is on." and ctx.state.stream is True
    r = registry.dispatch(ctx, "/stream sideways")
    assert r.error and r.text == "Expected on or off, not 'sideways'. Usage: /stream [on|off]"


def test_system_shows_sets_and_removes_in_words(ctx) -> None:
    assert registry.dispatch(ctx, "/system").text == "No system prompt is set."
    assert registry.dispatch(ctx, "/system Be brief.").text == "System prompt set."
    assert registry.dispatch(ctx, "/system").text == "System prompt: Be brief."
    assert registry.dispatch(ctx, "/system -").text == "System prompt removed."
    assert registry.dispatch(ctx, "/system").text == "No system prompt is set."


def test_show_topics(ctx) -> None:
    assert dict(registry.dispatch(ctx, "/show").rows)["temperature"] == "0.8"
    assert dict(registry.dispatch(ctx, "/show model").rows)["architecture"] == "fake"
    assert registry.dispatch(ctx, "/show profile").text.startswith("Profile fake")
    r = registry.dispatch(ctx, "/show nonsense")
    assert r.error and r.text.startswith("Cannot show 'nonsense'.")


def test_context_shows_fill_size_and_policy(ctx) -> None:
    chat(ctx, "hi")
    rows = dict(registry.dispatch(ctx, "/context").rows)
    assert rows["used"] == f"{ctx.session.context_used} of 2048 tokens ({100 * ctx.session.context_used / 2048:.0f}%)"
    assert rows["overflow"].startswith("drop-oldest")


def test_undo_says_what_is_left(ctx) -> None:
    r = registry.dispatch(ctx, "/undo")
    assert r.error and r.text == "Nothing to undo."
    chat(ctx, "one")
    chat(ctx, "two")
    assert registry.dispatch(ctx, "/undo").text == "Dropped the last exchange; 2 messages left."
    assert [m.content for m in ctx.session.conversation.messages][0] == "one"


def test_retry_with_nothing_to_retry(ctx) -> None:
    r = registry.dispatch(ctx, "/retry")
    assert r.error and r.text == "Nothing to retry yet."


def test_theme_without_themes_says_where_they_are(ctx) -> None:
    r = registry.dispatch(ctx, "/theme light")
    assert r.error and r.text.startswith("This interface has no themes")


def test_theme_lists_checks_and_switches() -> None:
    ctx = Context(fake_session(FakeModel()), FrontState(themes=["dark", "light"], theme="dark"))
    assert dict(registry.dispatch(ctx, "/theme").rows) == {"dark": "(current)", "light": ""}
    assert registry.dispatch(ctx, "/theme light").action == Theme("light")
    r = registry.dispatch(ctx, "/theme nope")
    assert r.error and r.action is None
