"""/spec: see and switch speculative decoding (engine/speculative.py) for the next replies."""

from __future__ import annotations

from lcchat.commands import Context, FrontState, registry
from lcchat.engine.events import Stats, Token
from lcchat.engine.fake import FakeModel, fake_session


def ctx_for(model: FakeModel | None = None) -> Context:
    return Context(fake_session(model or FakeModel()), FrontState())


def test_spec_shows_the_mode_and_the_draft_model() -> None:
    ctx = ctx_for()
    shown = registry.dispatch(ctx, "/spec")
    assert not shown.error
    assert dict(shown.rows)["mode"] == "off" and dict(shown.rows)["draft model"].startswith("none")


def test_spec_switches_the_mode_for_the_next_reply() -> None:
    words = ["a1", "b2", "c3", "d4"] * 6
    ctx = ctx_for(FakeModel(replies=[words]))
    assert not registry.dispatch(ctx, "/spec lookup").error
    assert ctx.session.speculation.mode == "lookup"
    events = list(ctx.session.send("hi"))
    assert "".join(e.text for e in events if isinstance(e, Token)) == "".join(words)
    stats = ctx.session.last_stats
    assert isinstance(stats, Stats) and stats.accepted > 0  # the repeats were drafted and accepted
    assert "draft" in dict(registry.dispatch(ctx, "/spec").rows)["last reply"]
    registry.dispatch(ctx, "/spec off")
    assert ctx.session.speculation.mode == "off"


def test_spec_draft_without_a_draft_model_and_an_unknown_mode_are_refused() -> None:
    ctx = ctx_for()
    refused = registry.dispatch(ctx, "/spec draft")
    assert refused.error and "--draft" in refused.text and ctx.session.speculation.mode == "off"
    bad = registry.dispatch(ctx, "/spec fast")
    assert bad.error and "Usage: /spec" in bad.text
    assert registry.completions(ctx, "/spec lo") == ["lookup"]


def test_spec_sets_the_draft_length_alone_or_with_the_mode() -> None:
    words = ["a1", "b2", "c3", "d4"] * 30
    ctx = ctx_for(FakeModel(replies=[words]))
    shown = registry.dispatch(ctx, "/spec 3")
    assert not shown.error and "at most 3 tokens" in shown.text
    assert ctx.session.speculation.n_draft == 3 and ctx.session.speculation.mode == "off"
    assert not registry.dispatch(ctx, "/spec lookup 2").error
    assert (ctx.session.speculation.mode, ctx.session.speculation.n_draft) == ("lookup", 2)
    assert dict(registry.dispatch(ctx, "/spec").rows)["n_draft"] == "2"
    list(ctx.session.send("hi"))
    stats = ctx.session.last_stats
    # each decode yields at most n_draft + 1 tokens (at 8 this reply took 34
    # decodes for 120 tokens, more than 3 a decode)
    assert stats.accepted > 0 and stats.completion_tokens <= 3 * stats.decodes
    for bad in ("/spec 0", "/spec 65", "/spec lookup fast", "/spec 3 lookup"):
        refused = registry.dispatch(ctx, bad)
        assert refused.error and "Usage: /spec" in refused.text, bad
    assert (ctx.session.speculation.mode, ctx.session.speculation.n_draft) == ("lookup", 2)
