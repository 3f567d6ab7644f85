"""A ChatSession whose model is a server (engine/remote.py): what a turn hands the server's
reply source. The faults of a server are tests/remote's; here, that the session sends the
conversation's window, the turn's sampling and stops and /think's switch, and keeps the
reply as it does for a local model. A stub server (tests/remote/servers.py) answers."""

from __future__ import annotations

import pytest

from lcchat.config.schema import Profile
from lcchat.engine.chat import Conversation, Message
from lcchat.engine.events import Done, Stats, Thinking, Token
from lcchat.engine.session import open_session
from tests.remote.servers import Stub, delta, sse


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.stop()


def served_profile(url: str) -> Profile:
    profile = Profile(name="served")
    profile.backend.url = url
    profile.chat.system = "be brief"
    profile.chat.stop = ["END"]
    profile.chat.reasoning = ["<think>", "</think>"]
    profile.sampling.temperature, profile.sampling.top_k = 0.0, 3
    return profile


def test_a_turn_sends_the_window_the_sampling_the_stops_and_the_think_switch(stub) -> None:
    stub.reply = lambda h: h.stream([delta("<think>\nshort</think>\n\nHello"), delta(" there END never shown", "stop"),
                                     sse("[DONE]")])
    session = open_session(served_profile(stub.url))
    try:
        session.thinking = False  # /think off
        asked = Conversation("be brief", [Message("user", "Hi")])
        prompt = session.turn_prompt(asked, session.tokenize_prompt)  # what --show-prompt shows
        events = list(session.send("Hi"))
        sent = stub.requests[-1]
        assert sent["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "Hi"}]
        assert (sent["temperature"], sent["top_k"]) == (0.0, 3) and "END" in sent["stop"]
        assert sent["chat_template_kwargs"] == {"enable_thinking": False}
        assert "".join(e.text for e in events if isinstance(e, Token)) == "Hello there "
        assert "".join(e.text for e in events if isinstance(e, Thinking)).strip() == "short"
        assert events[-1] == Done("stop", "Hello there ", "short")
        stats = [e for e in events if isinstance(e, Stats) and e.final][0]
        assert session.last_stats == stats
        assert stats.prompt_tokens == len(prompt.tokens) > 0
        reply = session.conversation.messages[-1]
        assert (reply.role, reply.content, reply.reasoning) == ("assistant", "Hello there ", "short")
    finally:
        session.close()


def test_a_draft_model_for_a_server_is_refused_with_one_line_and_the_connection_closed(stub, tmp_path,
                                                                                        monkeypatch) -> None:
    from lcchat.engine import remote
    from lcchat.errors import InputError

    opened = []
    real = remote.open_remote
    monkeypatch.setattr(remote, "open_remote", lambda profile: opened.append(real(profile)) or opened[-1])
    profile = served_profile(stub.url)
    profile.speculative.draft = str(tmp_path / "draft.gguf")
    with pytest.raises(InputError) as info:
        open_session(profile)
    assert str(info.value) == ("a draft model needs a local model to draft for; this profile uses a server "
                               "([backend] url): remove [speculative] draft")
    assert info.value.exit_code == 2
    [(model, _, _)] = opened
    assert not model.is_loaded()  # the session that could not start let its server go


def test_what_opening_the_server_noticed_is_said_as_warnings(stub, monkeypatch) -> None:
    from lcchat.engine import remote
    from lcchat.engine.events import Notice

    real = remote.open_remote

    def open_remote(profile):
        model, formatter, notices = real(profile)
        return model, formatter, [*notices, "the server names no chat template; using ChatML"]

    monkeypatch.setattr(remote, "open_remote", open_remote)
    session = open_session(served_profile(stub.url))
    try:
        assert session.notices[-1] == Notice("the server names no chat template; using ChatML", "warning")
        assert all(n.level == "warning" for n in session.notices)
    finally:
        session.close()


@pytest.mark.parametrize(("setting", "markers"), [([], ("<think>", "</think>", "server default")), (["none"], None),
                                                  (["<r>", "</r>"], ("<r>", "</r>", "profile"))])
def test_a_server_thinks_in_think_blocks_unless_the_profile_says_otherwise(stub, setting, markers) -> None:
    """A server's template and vocab are not known here: its thinking is taken to be in
    <think> blocks (the commonest pair) unless [chat] reasoning names others, or "none"."""
    profile = served_profile(stub.url)
    profile.chat.reasoning = setting
    session = open_session(profile)
    try:
        found = session.markers
        assert (found if found is None else (found.open, found.close, found.source)) == markers
    finally:
        session.close()
