"""/think: thinking on/off/auto, a budget, shown or hidden; refused for a model that does not reason."""

from __future__ import annotations

from lcchat.commands import Context, FrontState, registry
from lcchat.commands.actions import Settings
from lcchat.config.schema import Profile
from lcchat.engine.fake import FakeModel, fake_session


def context(reasoning: bool = True) -> Context:
    profile = Profile(name="r")
    if reasoning:
        profile.chat.reasoning = ["<think>", "</think>"]
    return Context(fake_session(FakeModel(), profile), FrontState())


def think(ctx: Context, arg: str):
    return registry.dispatch(ctx, f"/think {arg}".strip())


def test_on_off_auto_set_the_sessions_thinking() -> None:
    ctx = context()
    assert ctx.session.thinking is None
    assert "Thinking: off" in think(ctx, "off").text and ctx.session.thinking is False
    assert "Thinking: on" in think(ctx, "on").text and ctx.session.thinking is True
    think(ctx, "auto")
    assert ctx.session.thinking is None


def test_budget_and_show_hide() -> None:
    ctx = context()
    assert "budget 200 tokens" in think(ctx, "budget 200").text and ctx.session.thinking_budget == 200
    think(ctx, "budget -1")
    assert ctx.session.thinking_budget == -1
    result = think(ctx, "hide")
    assert result.action == Settings() and ctx.state.show_thinking is False
    think(ctx, "show")
    assert ctx.state.show_thinking is True


def test_bad_arguments_say_how() -> None:
    ctx = context()
    for arg in ("budget lots", "budget -5", "sideways", "on please"):
        result = think(ctx, arg)
        assert result.error and "Usage: /think" in result.text, arg
    assert ctx.session.thinking is None and ctx.session.thinking_budget == -1


def test_a_model_that_does_not_reason_is_told_so() -> None:
    ctx = context(reasoning=False)
    result = think(ctx, "on")
    assert result.error and "does not think" in result.text and ctx.session.thinking is None
    assert "does not think" in think(ctx, "").text
