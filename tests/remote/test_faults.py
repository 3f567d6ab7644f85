"""What a misbehaving server does to a chat: one line saying what went wrong, the user's
message and any partial reply kept, the session still usable. A stub server plays each
fault (a real server will not produce them on demand)."""

from __future__ import annotations

import threading

import pytest

from lcchat.config.schema import Profile
from lcchat.engine import remote
from lcchat.engine.events import Done, Error, Notice, Stats, Token
from lcchat.engine.session import open_session
from lcchat.errors import LcchatError
from tests.remote.servers import delta, sse


def profile_for(url: str, **backend) -> Profile:
    profile = Profile(name="remote-test")
    profile.backend.url = url
    for key, value in backend.items():
        setattr(profile.backend, key, value)
    return profile


def turn(session, text: str = "Hi") -> tuple[str, list]:
    events = list(session.send(text))
    return "".join(e.text for e in events if isinstance(e, Token)), events


def errors(events) -> list[Error]:
    return [e for e in events if isinstance(e, Error)]


def test_a_reply_streams_through_the_stop_filter(stub):
    stub.reply = lambda h: h.stream([delta("Hello <|im"), delta("_end|> never shown"), sse("[DONE]")])
    session = open_session(profile_for(stub.url))
    text, events = turn(session)
    assert text == "Hello "
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    assert session.conversation.messages[-1].content == "Hello "
    stats = next(e for e in events if isinstance(e, Stats) and e.final)
    assert stats.note.startswith("remote: measured by lcchat") and "estimated" in stats.note


def test_control_characters_and_surrogates_from_the_server_are_made_safe(stub):
    stub.reply = lambda h: h.stream([sse('{"choices":[{"delta":{"content":"a\\ud800b\\u0000c"}}]}'), sse("[DONE]")])
    text, _ = turn(open_session(profile_for(stub.url)))
    assert text == "a?b\ufffdc"  # as typed text is cleaned: a lone surrogate becomes ?, NUL the replacement character


def test_a_refused_key_names_the_variable(stub, monkeypatch):
    stub.api_key = "right"
    monkeypatch.setenv("STUB_KEY", "wrong")
    with pytest.raises(LcchatError) as info:
        open_session(profile_for(stub.url, api_key_env="STUB_KEY"))
    assert "HTTP 401" in str(info.value) and "$STUB_KEY" in str(info.value)
    monkeypatch.setenv("STUB_KEY", "right")
    text, _ = turn(open_session(profile_for(stub.url, api_key_env="STUB_KEY")))
    assert text == "Hello there"


def test_an_unknown_model_is_named_with_what_the_server_serves(stub):
    with pytest.raises(LcchatError) as info:
        open_session(profile_for(stub.url, model="nope"))
    assert info.value.exit_code == 2 and "'nope'" in str(info.value) and "stub-model" in str(info.value)


def test_an_unreachable_server_is_one_line(stub):
    url = stub.url
    stub.stop()
    with pytest.raises(LcchatError) as info:
        open_session(profile_for(url))
    assert str(info.value).startswith(f"cannot reach the server at {url}")


def test_malformed_event_data_is_an_error_and_the_partial_reply_is_kept(stub):
    stub.reply = lambda h: h.stream([delta("Part"), sse("{not json"), delta("never")])
    session = open_session(profile_for(stub.url))
    text, events = turn(session)
    assert text == "Part"
    assert "malformed data" in errors(events)[0].message
    last = session.conversation.messages[-1]
    assert last.content == "Part" and last.interrupted
    stub.reply = lambda h: h.stream([delta("Fine"), sse("[DONE]")])
    assert turn(session)[0] == "Fine"  # the session goes on


def test_a_server_that_dies_mid_reply_keeps_the_partial_reply(stub):
    stub.reply = lambda h: h.stream([delta("Half a"), delta(" reply")], close=True)
    session = open_session(profile_for(stub.url))
    text, events = turn(session)
    assert text == "Half a reply"
    message = errors(events)[0].message
    assert "closed the connection mid-reply" in message and "partial reply is kept" in message
    assert session.conversation.messages[-1].interrupted


def test_an_error_event_mid_stream_is_reported(stub):
    stub.reply = lambda h: h.stream([delta("Some"), sse({"error": {"code": 500, "message": "slot crashed"}})])
    session = open_session(profile_for(stub.url))
    text, events = turn(session)
    assert text == "Some" and "slot crashed" in errors(events)[0].message


def test_a_server_error_status_is_one_line(stub):
    stub.reply = lambda h: h.send_json(503, {"error": {"message": "loading model"}})
    session = open_session(profile_for(stub.url))
    _, events = turn(session)
    assert errors(events)[0].message.endswith("answered HTTP 503: loading model")
    assert session.conversation.messages[-2].content == "Hi"  # the user's message is kept


def test_a_context_error_is_lcchats_context_message(stub):
    stub.reply = lambda h: h.send_json(400, {"error": {"message": "the request exceeds the available context size",
                                                       "type": "exceed_context_size_error"}})
    _, events = turn(open_session(profile_for(stub.url)))
    error = errors(events)[0]
    assert error.message.startswith("the conversation does not fit the server's context") and error.code == 2


def test_a_stall_ends_after_the_timeout(stub):
    def stall(h):
        h.stream([delta("Waiting")], end=False)  # no end: the connection stays open
        stub.release.wait(30)

    stub.reply = stall
    session = open_session(profile_for(stub.url, timeout=1))
    text, events = turn(session)
    assert text == "Waiting" and "sent nothing for 1 s" in errors(events)[0].message
    assert session.conversation.messages[-1].interrupted


def test_cancel_cuts_a_stall_short(stub):
    stub.reply = lambda h: (h.stream([delta("Waiting")], end=False), stub.release.wait(30))
    session = open_session(profile_for(stub.url, timeout=600))
    seen = threading.Event()
    events = []

    def run():
        for event in session.send("Hi"):
            events.append(event)
            if isinstance(event, Token):
                seen.set()

    worker = threading.Thread(target=run)
    worker.start()
    assert seen.wait(30)
    session.cancel()
    worker.join(10)
    assert not worker.is_alive()  # long before the 600 s timeout
    assert events[-1] == Done("interrupted", "Waiting")
    assert session.conversation.messages[-1].interrupted


def test_an_endless_line_is_cut_at_the_bound(stub, monkeypatch):
    monkeypatch.setattr(remote, "MAX_LINE", 64 * 1024)
    stub.reply = lambda h: h.stream([delta("ok"), b"data: " + b"x" * 50_000] + [b"y" * 50_000] * 4)
    session = open_session(profile_for(stub.url))
    text, events = turn(session)
    assert text == "ok" and "longer than" in errors(events)[0].message


def test_sampler_settings_and_stops_go_with_the_request(stub):
    profile = profile_for(stub.url)
    profile.sampling.temperature, profile.sampling.seed, profile.sampling.top_k = 0.0, 7, 3
    profile.chat.stop = ["END"]
    turn(open_session(profile))
    sent = stub.requests[-1]
    assert sent["temperature"] == 0.0 and sent["seed"] == 7 and sent["top_k"] == 3
    assert sent["stop"] == ["END"] and sent["messages"][-1] == {"role": "user", "content": "Hi"}
    assert sent["stream"] is True and sent["model"] == "stub-model"


def test_completions_api_sends_the_profile_template_rendering(stub):
    stub.reply = lambda h: h.stream([sse({"choices": [{"text": "Done", "finish_reason": "stop"}]}), sse("[DONE]")])
    profile = profile_for(stub.url)
    profile.chat.format = "chatml"
    text, _ = turn(open_session(profile))
    sent = stub.requests[-1]
    assert text == "Done" and "messages" not in sent
    assert sent["prompt"].endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_end|>" in sent["stop"]


def test_a_reply_cut_at_max_tokens_says_so(stub):
    stub.reply = lambda h: h.stream([delta("Cut"), delta(" short", "length"), sse("[DONE]")])
    _, events = turn(open_session(profile_for(stub.url)))
    assert events[-1] == Done("length", "Cut short")
    assert any(isinstance(e, Notice) and "max_tokens" in e.text for e in events)


def test_tls_to_a_server_that_does_not_speak_it_is_one_line(stub):
    url = stub.url.replace("http://", "https://")
    with pytest.raises(LcchatError) as info:
        open_session(profile_for(url))
    assert str(info.value).startswith(f"TLS failed talking to {url}")


def test_a_forbidden_key_without_the_variable_set_says_to_set_it(stub, monkeypatch):
    stub.api_key = "right"
    monkeypatch.delenv("STUB_KEY", raising=False)
    with pytest.raises(LcchatError) as info:
        open_session(profile_for(stub.url, api_key_env="STUB_KEY"))
    assert str(info.value).endswith("set $STUB_KEY to its key")


def test_a_url_that_is_not_http_is_refused_as_bad_input():
    from lcchat.config.loader import load_profile
    from lcchat.errors import ProfileError

    with pytest.raises(ProfileError) as info:
        load_profile("smollm2", {"backend.url": "gpu-box:8080"})
    assert "http://" in str(info.value) and info.value.exit_code == 2


def test_show_prompt_says_whose_template_counts(stub):
    from lcchat.engine import prompt_view

    session = open_session(profile_for(stub.url))
    shown = prompt_view.describe(session, prompt_view.preview(session, "Hi"))
    assert shown.startswith("remote, /v1/chat/completions: the server renders the messages with its own template")
    assert "estimated" in shown.splitlines()[0] and "Tokens (* special)" not in shown
