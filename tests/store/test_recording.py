"""What one chat run keeps (store/recording.py): whether history is on (--no-history,
LCCHAT_NO_HISTORY, `[store] enabled`), which runs keep a KV state, the conversation -C
continues, and what an unrecorded session says. Fake sessions, except the short forms of
test_footprint.py's 100-call repeats, which run the real one-shot command in this process."""

from __future__ import annotations

import io
import logging
import sqlite3
import sys

import pytest

from lcchat.config.schema import Profile
from lcchat.engine.chat import Message
from lcchat.engine.events import Notice, Progress
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.errors import InputError, LcchatError
from lcchat.store import kvstate
from lcchat.store.db import Store, UnknownConversation, default_path
from lcchat.store.recording import NOT_RECORDED, ChatRecording, history_enabled


def profile(name: str = "fake", **store) -> Profile:
    p = Profile(name=name)
    for key, value in store.items():
        setattr(p.store, key, value)
    return p


def stored_conversation(profile_name: str = "fake", text: str = "earlier question") -> int:
    session = fake_session(FakeModel(replies=[["earlier answer"]]), profile(profile_name))
    recording = ChatRecording(session.profile, None, interactive=True)
    recording.opened(session)
    list(session.send(text))
    session.close()
    return recording.recorder.conversation_id


# ---------------------------------------------------------------- history on or off


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "TRUE", " Yes ", "On"])
def test_lcchat_no_history_turns_history_off(monkeypatch, value) -> None:
    monkeypatch.setenv("LCCHAT_NO_HISTORY", value)
    assert history_enabled(profile()) is False


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "XX1XX", "y"])
def test_other_values_of_lcchat_no_history_leave_it_on(monkeypatch, value) -> None:
    monkeypatch.setenv("LCCHAT_NO_HISTORY", value)
    assert history_enabled(profile()) is True


def test_no_history_and_the_profile_turn_history_off(monkeypatch) -> None:
    monkeypatch.delenv("LCCHAT_NO_HISTORY", raising=False)
    assert history_enabled(profile()) is True
    assert history_enabled(profile(), no_history=True) is False
    assert history_enabled(profile(enabled=False)) is False
    assert history_enabled(profile(enabled=False), no_history=False) is False


# ---------------------------------------------------------------- what is kept


@pytest.mark.parametrize("record, interactive, save_state, keep", [
    (True, True, False, True),  # the REPL and TUI keep the state
    (True, False, False, False),  # a one-shot call keeps none
    (True, False, True, True),  # unless --save-state
    (False, True, False, False),  # not recorded: nothing
    (False, False, True, False),
    (False, True, True, False),
])
def test_which_runs_keep_a_kv_state(record, interactive, save_state, keep) -> None:
    recording = ChatRecording(profile(), None, interactive=interactive, record=record, save_state=save_state)
    assert recording.keep_state is keep and recording.recorder.keep_state is keep
    assert recording.record is record and recording.recorder.record is record


def test_by_default_a_one_shot_call_keeps_no_state_and_is_recorded() -> None:
    recording = ChatRecording(profile(), None, interactive=False)
    assert recording.keep_state is False and recording.recorder.keep_state is False
    assert recording.record is True and recording.recorder.record is True


def test_state_max_reaches_the_recorder() -> None:
    assert ChatRecording(profile(), None, interactive=True).recorder.state_max is None  # the default cap
    assert ChatRecording(profile(state_max="  "), None, interactive=True).recorder.state_max is None
    recording = ChatRecording(profile(state_max="3MiB"), None, interactive=True)
    assert recording.state_max == recording.recorder.state_max == 3 << 20


def test_a_recording_uses_the_store_it_is_given(tmp_path) -> None:
    store = Store(tmp_path / "other.db")
    recording = ChatRecording(profile(), None, interactive=False, store=store)
    assert recording.store is store and recording.recorder.store is store
    assert recording.profile_name == "fake" and recording.interactive is False and recording.resume_id is None
    assert ChatRecording(profile(), None, interactive=False).store.path == default_path()


def test_a_session_not_recorded_writes_nothing_at_all(lcchat_home) -> None:
    for interactive in (True, False):
        session = fake_session(FakeModel(replies=[["ok"]]))
        recording = ChatRecording(session.profile, None, interactive=interactive, record=False, save_state=True)
        recording.opened(session)
        list(session.send("a secret"))
        recording.close()
        session.close()
        assert recording.recorder.conversation_id is None
    assert not default_path().exists()
    assert kvstate.saved_states() == []


# ---------------------------------------------------------------- what a session says


def test_an_interactive_session_not_recorded_says_so_once() -> None:
    session = fake_session()
    recorder = ChatRecording(session.profile, None, interactive=True, record=False).opened(session)
    assert recorder.session is session
    assert [(n.text, n.level) for n in session.notices] == [(NOT_RECORDED, "info")]
    assert NOT_RECORDED == "this session is not recorded (--no-history): nothing of it is saved"


def test_a_one_shot_call_says_nothing_about_not_recording() -> None:
    """The person chose --no-history for a script; its stderr stays clean."""
    session = fake_session()
    ChatRecording(session.profile, None, interactive=False, record=False).opened(session)
    assert session.notices == []
    recorded = fake_session()
    ChatRecording(recorded.profile, None, interactive=True).opened(recorded)
    assert recorded.notices == []


def test_a_one_shot_call_prints_a_failed_save_as_one_warning_line(capsys) -> None:
    recording = ChatRecording(profile(), None, interactive=False)
    recording.recorder.on_warning("the disk is full")
    assert capsys.readouterr().err == "lcchat: warning: the disk is full\n"


def test_an_interactive_session_shows_a_failed_save_in_the_session() -> None:
    session = fake_session()
    recording = ChatRecording(session.profile, None, interactive=True)
    recording.opened(session)
    assert recording.recorder.on_warning == session.warn


def test_a_warning_to_a_closed_stderr_is_dropped(monkeypatch) -> None:
    closed = io.StringIO()
    closed.close()
    monkeypatch.setattr(sys, "stderr", closed)
    ChatRecording(profile(), None, interactive=False).recorder.on_warning("nowhere to say it")

    class Broken:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stderr", Broken())
    ChatRecording(profile(), None, interactive=False).recorder.on_warning("nowhere to say it")


# ---------------------------------------------------------------- -C: the conversation to continue


def test_continue_with_no_id_takes_the_profiles_last_conversation() -> None:
    first = stored_conversation("fake", "first")
    stored_conversation("other", "of another profile")
    assert ChatRecording(profile("fake"), "", interactive=True).resume_id == first
    assert ChatRecording(profile("fake"), "  ", interactive=True).resume_id == first
    second = stored_conversation("fake", "second")
    assert ChatRecording(profile("fake"), "", interactive=True).resume_id == second
    assert ChatRecording(profile("fake"), str(first), interactive=True).resume_id == first


def test_continue_with_nothing_stored_is_one_line_of_input_error() -> None:
    stored_conversation("other")
    with pytest.raises(InputError) as info:
        ChatRecording(profile("fake"), "", interactive=True)
    assert str(info.value) == ("there is no saved conversation of profile 'fake' to continue "
                               "(`lcchat history list` shows them; `-C ID` continues one)")


def test_continue_with_an_unknown_id_fails_before_anything_is_loaded() -> None:
    with pytest.raises(UnknownConversation):
        ChatRecording(profile(), "77", interactive=True)


@pytest.mark.parametrize("ref", ["", "5"])
def test_a_store_that_cannot_be_read_is_one_line_naming_it(monkeypatch, ref) -> None:
    def fails(*args, **kwargs):
        raise sqlite3.DatabaseError("file is not a database")

    monkeypatch.setattr(Store, "resolve", fails)
    monkeypatch.setattr(Store, "last", fails)
    with pytest.raises(LcchatError) as info:
        ChatRecording(profile(), ref, interactive=True)
    assert str(info.value) == f"cannot read the conversations in {default_path()}: file is not a database"


def test_opened_with_continue_restores_the_conversation_and_tells_its_progress(caplog) -> None:
    cid = stored_conversation()
    session = fake_session(FakeModel(replies=[["more"]]))
    recording = ChatRecording(session.profile, str(cid), interactive=True)
    seen = []
    with caplog.at_level(logging.INFO, logger="lcchat.store"):
        recorder = recording.opened(session, on_event=seen.append)
    assert recorder is recording.recorder and recorder.conversation_id == cid
    assert [m.content for m in session.conversation.messages] == ["earlier question", "earlier answer"]
    assert seen and all(isinstance(e, Progress) for e in seen)
    assert seen[-1].done == seen[-1].total == len(session.loop.cached) > 0
    assert f"re-reading the history: {seen[-1].done}/{seen[-1].total} tokens" in caplog.messages
    (said,) = session.notices
    assert isinstance(said, Notice) and said.text.startswith(f"continuing conversation {cid}: 2 messages")
    list(session.send("and then?"))
    session.close()
    assert [m.content for m in Store().get(cid).messages] == ["earlier question", "earlier answer", "and then?",
                                                              "more"]


def test_opened_with_continue_and_no_listener_still_reads_the_history() -> None:
    cid = stored_conversation()
    session = fake_session()
    ChatRecording(session.profile, str(cid), interactive=True).opened(session)
    assert session.loop.cached and session.notices[0].text.startswith("continuing")


def test_cancelling_the_re_reading_leaves_the_rest_for_the_next_message() -> None:
    import threading

    cid = stored_conversation()
    session = fake_session()
    cancel = threading.Event()
    cancel.set()
    ChatRecording(session.profile, str(cid), interactive=True).opened(session, cancel=cancel)
    assert len(session.conversation.messages) == 2 and len(session.loop.cached) == 0


def test_a_continued_session_not_recorded_says_both_and_stores_nothing_new() -> None:
    cid = stored_conversation()
    session = fake_session(FakeModel(replies=[["private"]]))
    ChatRecording(session.profile, str(cid), interactive=True, record=False).opened(session)
    assert session.notices[0].text == NOT_RECORDED and session.notices[1].text.startswith("continuing")
    list(session.send("private follow-up"))
    session.close()
    assert [m.content for m in Store().get(cid).messages] == ["earlier question", "earlier answer"]


def test_close_before_open_does_nothing_and_after_writes_what_is_left() -> None:
    recording = ChatRecording(profile(), None, interactive=True)
    recording.close()  # the model never loaded: nothing bound, nothing to write
    assert recording.recorder.session is None
    assert Store().summaries() == []
    session = fake_session()
    recording = ChatRecording(session.profile, None, interactive=True)
    recording.opened(session)
    session.conversation.messages.append(Message("user", "x"))
    recording.close()
    (summary,) = Store().summaries()
    assert summary.first_user == "x"


# ---------------------------------------------------------------- the real command, short forms


def one_shot(monkeypatch, capsys, *args: str) -> int:
    from lcchat.cli import main

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    status = main(list(args))
    capsys.readouterr()
    return status


@pytest.fixture
def own_signal_handlers():
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_one_shot_calls_keep_their_text_and_no_state_unless_asked(tiny_model, monkeypatch, capsys,
                                                                  own_signal_handlers) -> None:
    assert one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "2", "-c", "256", "q") == 0
    assert kvstate.saved_states() == []
    (summary,) = Store().summaries()
    assert summary.first_user == "q"
    assert one_shot(monkeypatch, capsys, "-m", str(tiny_model), "-n", "2", "-c", "256", "--save-state", "k") == 0
    (saved,) = kvstate.saved_states()
    assert saved[1] == Store().summaries()[0].id


def test_history_off_writes_nothing_from_the_command(tiny_model, lcchat_home, monkeypatch, capsys,
                                                     own_signal_handlers) -> None:
    assert one_shot(monkeypatch, capsys, "--no-history", "-m", str(tiny_model), "-n", "1", "-c", "256", "s") == 0
    monkeypatch.setenv("LCCHAT_NO_HISTORY", "1")
    assert one_shot(monkeypatch, capsys, "--save-state", "-m", str(tiny_model), "-n", "1", "-c", "256", "s") == 0
    monkeypatch.delenv("LCCHAT_NO_HISTORY")
    private = lcchat_home / "private.toml"
    private.write_text(f'[model]\npath = "{tiny_model}"\nn_ctx = 256\n[store]\nenabled = false\n')
    assert one_shot(monkeypatch, capsys, "-p", str(private), "--save-state", "-n", "1", "s") == 0
    assert not default_path().exists() and kvstate.saved_states() == []
    assert not (lcchat_home / "data").exists() or not any((lcchat_home / "data").iterdir())
