"""The composition root (lcchat/runtime.py): a run makes its own Recorder and signal
handling and attaches them to the session it opens; nothing is attached through globals."""

from __future__ import annotations

from lcchat.commands import Context, FrontState, registry
from lcchat.config.loader import load_profile
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.session import open_session
from lcchat.runtime import Run
from lcchat.store.db import Store
from lcchat.store.recorder import Recorder, recorder_of


def profile_for(path):
    return load_profile("default", {"model.path": str(path), "model.n_ctx": 256, "model.n_batch": 64,
                                    "sampling.temperature": 0.0, "sampling.max_tokens": 3})


def test_a_run_attaches_its_recorder_and_signals_to_the_session_it_opens(tiny_model) -> None:
    profile = profile_for(tiny_model)
    run = Run(profile, interactive=True)
    assert run.recorder.session is None  # made before the model loads, for the front-end
    session = run.open()
    try:
        assert recorder_of(session) is run.recorder and run.recorder.session is session
        assert run.signals.session is session and run.signals.received is None
        list(session.send("hello"))
        assert [m.content for m in Store().get(run.recorder.conversation_id).messages][0] == "hello"
        # Nothing global: a session opened outside a run records nothing, and a second
        # run has a Recorder and signal state of its own.
        plain = open_session(profile)
        assert recorder_of(plain) is None and plain.on_send == []
        plain.close()
        other = Run(profile, interactive=True)
        assert other.recorder is not run.recorder and other.signals is not run.signals
    finally:
        session.close()


def test_the_commands_use_the_recorder_in_their_context() -> None:
    session = fake_session(FakeModel(replies=[["ok"]]))
    # What --no-history hands the front-end; not bound here, so only the context can lead
    # the command to it (a command that made its own would record).
    private = Recorder(None, record=False)
    list(session.send("secret"))
    result = registry.dispatch(Context(session, FrontState(), recorder=private), "/save")
    assert result.error and "not recorded" in result.text
    assert not Store().exists()
