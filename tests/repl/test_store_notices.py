"""The REPL and the store: a session that is not recorded says so and keeps no input
history on disk; a data dir that cannot be made leaves the input history in memory."""

from __future__ import annotations

from prompt_toolkit.history import InMemoryHistory

from lcchat.engine.fake import FakeModel, fake_session
from lcchat.repl.app import history_path
from lcchat.store.recording import ChatRecording


def test_a_session_not_recorded_says_so_and_writes_no_input_history(drive) -> None:
    session = fake_session(FakeModel(replies=[["ok"]]))
    recorder = ChatRecording(session.profile, None, interactive=True, record=False).opened(session)
    run = drive("secret\r", session=session, history=None, recorder=recorder)
    assert "not recorded" in run.text.splitlines()[0]
    assert run.messages() == [("user", "secret"), ("assistant", "ok")]
    assert isinstance(run.repl.history, InMemoryHistory)
    assert not history_path().exists()


def test_the_input_history_stays_in_memory_when_the_data_dir_cannot_be_made(drive, lcchat_home) -> None:
    (lcchat_home / "data").write_text("a file where the data dir should be")
    run = drive("hello\r", replies=[["hi"]], history=None)
    assert run.status == 0
    said = " ".join(run.text.split())  # the notice is wrapped to 80 columns
    assert said.startswith("warning: cannot keep the input history") and "in memory for this session" in said
    assert isinstance(run.repl.history, InMemoryHistory)
    assert run.messages() == [("user", "hello"), ("assistant", "hi")]
