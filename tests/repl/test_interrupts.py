"""Ctrl+C while a reply streams or the prompt is read; failures that must not end the chat."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from lcchat.engine.fake import FakeModel, fake_session
from lcchat.errors import LcchatError
from tests.repl.conftest import ENTER

LONG = [f"w{i} " for i in range(2000)]


class InterruptingModel(FakeModel):
    """A fake model that calls `hook` once, after it has generated `after` tokens."""

    def __init__(self, *args, after: int = 5, hook=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.after = after
        self.hook = hook
        self.sampled = 0

    def make_sampler(self, sampling):
        sampler = super().make_sampler(sampling)
        inner = sampler.sample

        def sample():
            self.sampled += 1
            if self.sampled == self.after and self.hook is not None:
                self.hook()
            return inner()

        sampler.sample = sample
        return sampler


def test_interrupt_stops_the_reply_keeps_it_marked_and_the_chat_goes_on(drive) -> None:
    holder = {}
    model = InterruptingModel(replies=[LONG, ["fine"]], after=5, hook=lambda: holder["repl"].interrupt())
    run = drive("tell me a long story" + ENTER + "and now?" + ENTER, model=model,
                before=lambda repl: holder.update(repl=repl))
    msgs = run.session.conversation.messages
    assert msgs[1].role == "assistant" and msgs[1].interrupted
    assert msgs[1].content == "w0 w1 w2 w3 w4 "  # the token being sampled is the last one
    assert "[interrupted]" in run.text
    assert run.messages()[2:] == [("user", "and now?"), ("assistant", "fine")]
    assert run.status == 0


def test_sigint_during_a_reply_is_the_same_as_interrupt(drive) -> None:
    model = InterruptingModel(replies=[LONG, ["after"]], delay=0.002, after=5,
                              hook=lambda: os.kill(os.getpid(), signal.SIGINT))
    run = drive("go" + ENTER + "again" + ENTER, model=model)
    assert "[interrupted]" in run.text
    assert run.session.conversation.messages[1].interrupted
    assert run.messages()[-1] == ("assistant", "after")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # ours is gone again


def test_a_second_sigint_stops_waiting(drive) -> None:
    """An engine that does not stop (here: a stuck producer) cannot hold the REPL hostage."""
    gate = threading.Event()
    first_handled = threading.Event()
    finished = threading.Event()

    def stuck():
        from lcchat.engine.events import Token

        yield Token("partial")
        os.kill(os.getpid(), signal.SIGINT)
        assert first_handled.wait(60)  # the first Ctrl+C asked the engine to stop...
        # ...which it does not do: a second one, taken by this thread, as happens when it comes
        # while the handler for the first is returning: the REPL must still see it
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        gate.wait(30)  # never cancelled: only the second Ctrl+C gets us out
        finished.set()

    session = fake_session(FakeModel())
    session.send = lambda text: stuck()
    session.cancel = first_handled.set
    run = drive("hi" + ENTER, session=session)
    assert not finished.is_set()  # the REPL stopped waiting while the producer was still stuck
    gate.set()
    assert "partial [interrupted]" in run.text
    assert run.status == 0


class SlowPromptModel(FakeModel):
    """Calls `hook` after the first batch of a prompt of several batches."""

    hook = None

    def decode(self, tokens, n_past, *, logits_last=True):
        status = super().decode(tokens, n_past, logits_last=logits_last)
        if len(tokens) > 1 and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return status


def test_interrupt_during_prompt_evaluation(drive) -> None:
    model = SlowPromptModel(replies=[["never shown"]])
    model.n_batch = 4  # several batches, so the cancel lands between two of them
    holder = {}

    def interrupt_after_the_first_batch():
        holder["repl"].interrupt()
        model.n_batch = 512  # the next prompt in one batch

    model.hook = interrupt_after_the_first_batch
    run = drive("a question long enough to take several batches" + ENTER + "again" + ENTER, model=model,
                before=lambda repl: holder.update(repl=repl))
    text = run.text
    assert "[interrupted]" in text
    assert text.index("[interrupted]") < text.index("never shown")  # no token before the cancel
    assert model.decode_calls < 10  # the rest of the prompt's batches were not evaluated
    assert run.session.conversation.messages[1].interrupted
    assert run.messages()[-1] == ("assistant", "never shown")  # the chat goes on


def test_interrupt_with_nothing_playing_is_a_no_op(drive) -> None:
    run = drive("")
    assert run.repl.interrupt() is False


def test_interrupted_reply_with_streaming_off_is_printed_and_marked(drive) -> None:
    holder = {}
    model = InterruptingModel(replies=[LONG], delay=0.002, after=4, hook=lambda: holder["repl"].interrupt())
    run = drive("/stream off" + ENTER + "go" + ENTER, model=model, before=lambda repl: holder.update(repl=repl))
    assert "w0 w1 w2" in run.text
    assert "[interrupted]" in run.text


def test_an_error_in_a_turn_is_one_red_line_and_the_chat_goes_on(drive) -> None:
    session = fake_session(FakeModel(replies=[["fine"]]))
    real_send = session.send
    calls = []

    def send(text):
        calls.append(text)
        if len(calls) == 1:
            raise LcchatError("the model fell over")
        if len(calls) == 2:
            raise ValueError("a bug")
        return real_send(text)

    session.send = send
    run = drive("one" + ENTER + "two" + ENTER + "three" + ENTER, session=session)
    assert "error: the model fell over" in run.text
    assert "error: internal error: ValueError: a bug" in run.text
    assert "Traceback" not in run.text
    assert "fine" in run.text
    assert run.status == 0


def test_an_error_event_is_shown_and_no_figures_follow(drive) -> None:
    from lcchat.engine.events import Done, Error

    session = fake_session(FakeModel())
    session.send = lambda text: iter([Error("the prompt is too long for the context", 2), Done("error", "")])
    run = drive("x" + ENTER, session=session)
    assert "error: the prompt is too long for the context" in run.text
    assert "t/s" not in run.text.split("error:")[1]


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ModuleNotFoundError("x")])
def test_run_repl_loading(exc, capsys) -> None:
    from lcchat.config.schema import Profile
    from lcchat.repl import app

    def fail(cancel=None, on_progress=None, on_event=None):
        raise exc

    profile = Profile(name="t")
    profile.model.path = "/models/thing.gguf"
    if exc is KeyboardInterrupt:
        assert app.run_repl(profile, open_session=fail) == 130
        assert "loading thing.gguf" in capsys.readouterr().err
    else:
        with pytest.raises(ModuleNotFoundError):  # the CLI turns it into one line
            app.run_repl(profile, open_session=fail)
