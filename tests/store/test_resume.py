"""Resuming on the tiny model: the saved KV state and re-reading the history give the same
cache and the same next prompt; anything that does not match falls back to re-reading."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.events import Done, Notice, Progress, Token
from lcchat.engine.session import open_session
from lcchat.store import attach, kvstate
from lcchat.store.db import Store, UnknownConversation
from lcchat.store.recording import ChatRecording


def profile_for(path: Path, **overrides):
    values = {"model.path": str(path), "model.n_ctx": 512, "model.n_batch": 64, "sampling.seed": 7,
              "sampling.temperature": 0.0, "sampling.max_tokens": 12, **overrides}
    return load_profile("default", values)


def collect(events) -> tuple[str, list]:
    events = list(events)
    return "".join(e.text for e in events if isinstance(e, Token)), events


def capture_prompts(session) -> list[list[int]]:
    seen: list[list[int]] = []
    run = session.loop.run

    def recording_run(prompt, *args, **kwargs):
        seen.append(list(prompt))
        return run(prompt, *args, **kwargs)

    session.loop.run = recording_run
    return seen


@pytest.fixture
def conversation(tiny_model) -> tuple[int, list[tuple[str, str]], list[int]]:
    """A stored two-turn conversation with its KV state saved; (id, messages, state tokens)."""
    session = open_session(profile_for(tiny_model))
    recorder = attach(session)
    collect(session.send("the sky is blue"))
    collect(session.send("the cat and the dog"))
    cid = recorder.conversation_id
    messages = [(m.role, m.content) for m in session.conversation.messages]
    tokens = list(session.loop.cached)
    session.close()
    return cid, messages, tokens


def resumed(tiny_model, cid: int, **overrides):
    session = open_session(profile_for(tiny_model, **overrides))
    recorder = attach(session)
    events = list(recorder.resume(cid))
    return session, recorder, events


def test_state_file_is_private_and_holds_the_cache(conversation) -> None:
    cid, _, tokens = conversation
    path = kvstate.state_path(cid)
    assert path.parent.name == "state" and path.parent.parent.name == "data"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    header_tokens = kvstate.load(path, _fingerprint_of(path))[0]
    assert header_tokens == tokens


def _fingerprint_of(path: Path) -> str:
    import json

    with open(path, "rb") as f:
        f.readline()
        return json.loads(f.readline())["fingerprint"]


def test_saved_state_and_re_reading_give_the_same_cache_and_next_prompt(tiny_model, conversation, tmp_path) -> None:
    cid, messages, saved_tokens = conversation
    fast, fast_rec, fast_events = resumed(tiny_model, cid)
    assert fast_rec.restored_tokens > 0
    # after load_state the cache holds exactly what the state held, as far as it matches
    assert fast.loop.cached[: fast_rec.restored_tokens] == saved_tokens[: fast_rec.restored_tokens]

    path = kvstate.state_path(cid)
    shutil.move(path, tmp_path / "aside.kv")
    slow, slow_rec, slow_events = resumed(tiny_model, cid)
    assert slow_rec.restored_tokens == 0

    for session in (fast, slow):
        assert [(m.role, m.content) for m in session.conversation.messages] == messages
    assert fast.loop.cached == slow.loop.cached and fast.loop.cached
    assert fast._cached_text == slow._cached_text != ""
    read_fast = sum(1 for e in fast_events if isinstance(e, Progress))
    read_slow = [e for e in slow_events if isinstance(e, Progress)]
    assert read_slow and read_slow[-1].done == read_slow[-1].total == len(slow.loop.cached)
    assert read_fast <= len(read_slow)
    notice = [e for e in slow_events if isinstance(e, Notice)][-1].text
    assert f"continuing conversation {cid}: 4 messages" in notice

    prompts = [capture_prompts(fast), capture_prompts(slow)]
    for session in (fast, slow):
        text, events = collect(session.send("what is the capital of France"))
        assert isinstance(events[-1], Done) and events[-1].finish_reason in ("stop", "length")
        stats = [e for e in events if getattr(e, "final", False)][0]
        assert stats.prompt_eval_tokens < 30, stats  # only the new message was read
    assert prompts[0] == prompts[1] and prompts[0][0][: len(slow.loop.cached)]
    for session in (fast, slow):
        session.close()


def test_other_settings_fall_back_to_re_reading(tiny_model, conversation) -> None:
    cid, messages, _ = conversation
    session, recorder, events = resumed(tiny_model, cid, **{"model.n_ctx": 768})
    assert recorder.restored_tokens == 0
    assert [(m.role, m.content) for m in session.conversation.messages] == messages
    assert session.loop.cached and any(isinstance(e, Progress) for e in events)
    session.close()


def test_a_damaged_state_file_falls_back_to_re_reading(tiny_model, conversation) -> None:
    cid, _, _ = conversation
    path = kvstate.state_path(cid)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    session, recorder, _ = resumed(tiny_model, cid)
    assert recorder.restored_tokens == 0 and session.loop.cached
    path.write_bytes(bytes(data[: len(data) // 2]))  # cut short
    session2, recorder2, _ = resumed(tiny_model, cid)
    assert recorder2.restored_tokens == 0 and session2.loop.cached == session.loop.cached
    session.close()
    session2.close()


def test_a_state_file_whose_header_is_not_an_object_falls_back_to_re_reading(tiny_model, conversation) -> None:
    """A hostile or foreign file (valid JSON, but a list) must not stop -C."""
    cid, messages, _ = conversation
    kvstate.state_path(cid).write_bytes(kvstate.MAGIC + b'["fingerprint", 1]\n' + b"x" * 100)
    session, recorder, events = resumed(tiny_model, cid)
    assert recorder.restored_tokens == 0 and session.loop.cached
    assert [(m.role, m.content) for m in session.conversation.messages] == messages
    assert any(isinstance(e, Progress) for e in events)
    session.close()


def test_a_state_that_matches_only_in_part_restores_that_part(tiny_model, conversation) -> None:
    cid, _, saved_tokens = conversation
    store = Store()
    conv = store.get(cid)
    with store.transaction() as db:  # the last reply changed since the state was saved
        Store.write_messages(db, cid, 3, [("assistant", "something else entirely", False, None)],
                             system=conv.system, now=conv.updated + 1)
    session, recorder, _ = resumed(tiny_model, cid)
    clean = open_session(profile_for(tiny_model))
    clean.restore(conv.system, session.conversation.messages)
    list(clean.prefill())
    assert 0 < recorder.restored_tokens < len(session.loop.cached)
    assert session.loop.cached == clean.loop.cached
    assert session.conversation.messages[3].content == "something else entirely"
    session.close()
    clean.close()


def test_an_interrupted_reply_is_resumed_as_it_was(tiny_model) -> None:
    session = open_session(profile_for(tiny_model, **{"sampling.max_tokens": 40}))
    recorder = attach(session)
    for event in session.send("hello world"):
        if isinstance(event, Token):
            session.cancel()
    cid = recorder.conversation_id
    partial = session.conversation.messages[-1]
    assert partial.interrupted
    session.close()
    again, _, events = resumed(tiny_model, cid)
    assert again.conversation.messages[-1].content == partial.content and again.conversation.messages[-1].interrupted
    assert "the last reply was interrupted" in [e for e in events if isinstance(e, Notice)][-1].text
    _, events = collect(again.send("go on"))
    assert isinstance(events[-1], Done)
    again.close()


def test_cancelling_the_re_read_is_harmless(tiny_model, conversation, tmp_path) -> None:
    cid, messages, _ = conversation
    kvstate.remove(cid)
    session = open_session(profile_for(tiny_model, **{"model.n_batch": 8}))
    recorder = attach(session)
    for event in recorder.resume(cid):
        if isinstance(event, Progress):
            session.cancel()
    assert 0 < len(session.loop.cached) < 40
    _, events = collect(session.send("and now"))
    assert isinstance(events[-1], Done) and events[-1].finish_reason in ("stop", "length")
    assert len(Store().get(cid).messages) == len(messages) + 2
    session.close()


def test_continue_through_the_run(tiny_model, conversation) -> None:
    from lcchat.runtime import Run

    cid, messages, _ = conversation
    profile = profile_for(tiny_model)
    run = Run(profile, continue_ref="", interactive=True)  # "": the profile's last conversation
    assert run.recording.resume_id == cid
    session = run.open()
    assert run.recorder.session is session and run.signals.session is session
    assert any(f"continuing conversation {cid}" in n for n in (notice.text for notice in session.notices))
    assert len(session.conversation.messages) == len(messages)
    collect(session.send("more"))
    assert len(Store().get(cid).messages) == len(messages) + 2
    session.close()


def test_continue_targets_are_checked_before_loading(tiny_model) -> None:
    profile = profile_for(tiny_model)
    with pytest.raises(UnknownConversation) as info:
        ChatRecording(profile, "42", interactive=False)
    assert info.value.exit_code == 2
    with pytest.raises(Exception, match="no saved conversation of profile 'default'") as info:
        ChatRecording(profile, "", interactive=False)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("argv, expected", [
    (["-C"], ["--continue="]),
    (["-C", "12"], ["--continue=12"]),
    (["--continue", "#7", "go"], ["--continue=7", "go"]),
    (["-C", "go on"], ["--continue=", "go on"]),
    (["-C", "²"], ["--continue=", "²"]),  # "²".isdigit() is True: a prompt, not an id
    (["--continue=work", "x"], ["--continue=work", "x"]),
    (["-m", "f.gguf", "--", "-C"], ["-m", "f.gguf", "--", "-C"]),
])
def test_dash_c_takes_only_a_numeric_id(argv, expected) -> None:
    from lcchat.cli import split_continue

    assert split_continue(argv) == expected


def test_continue_is_parsed_by_the_cli() -> None:
    from lcchat.cli import build_parser, split_continue

    parse = lambda argv: build_parser().parse_args(split_continue(argv))  # noqa: E731
    assert parse(["-C"]).continue_id == "" and parse(["-C"]).prompt == []
    assert parse(["-C", "3", "hi"]).continue_id == "3"
    assert parse(["hi"]).continue_id is None
    assert parse(["-C", "hello", "there"]).prompt == ["hello", "there"]


def test_after_a_model_switch_the_state_is_saved_for_the_new_model(tiny_model) -> None:
    from lcchat.engine.model import Model

    session = open_session(profile_for(tiny_model))
    recorder = attach(session)
    collect(session.send("the sky is blue"))
    other = profile_for(tiny_model, **{"model.n_ctx": 768})
    list(session.switch_model(Model(tiny_model, other.model, other.rope, seed=7)))
    collect(session.send("the cat"))
    cid = recorder.conversation_id
    session.close()
    on_first, first_rec, _ = resumed(tiny_model, cid)
    assert first_rec.restored_tokens == 0  # saved for the 768-token context, not this one
    on_other, other_rec, _ = resumed(tiny_model, cid, **{"model.n_ctx": 768})
    assert other_rec.restored_tokens > 0
    assert on_first.loop.cached == on_other.loop.cached
    on_first.close()
    on_other.close()
