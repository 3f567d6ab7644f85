"""engine.worker: a reply in a worker thread, and Ctrl+C always reaching the waiting thread."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from lcchat.engine.worker import Streamed


def _sigint_to_this_thread() -> None:
    """A SIGINT the kernel hands to the calling (worker) thread: CPython notes it for the main
    thread, but nothing wakes the main thread from a blocking wait. The same state arises when
    a second Ctrl+C lands while the handler for the first is returning."""
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)


def test_a_ctrl_c_that_does_not_wake_the_waiting_thread_still_cancels() -> None:
    assert threading.current_thread() is threading.main_thread()
    gate = threading.Event()
    cancelled = threading.Event()
    stuck_to_the_end = threading.Event()

    consumed = threading.Event()

    def produce():
        yield "partial"
        consumed.wait(5)  # the consumer is waiting for the next event
        _sigint_to_this_thread()
        if not cancelled.wait(20):  # the engine waits in a long C call, not listening
            stuck_to_the_end.set()
        gate.set()
        yield "after the cancel"

    def cancel():
        cancelled.set()

    stream = Streamed(produce, cancel)
    items = []
    for item in stream:
        items.append(item)
        consumed.set()
    assert not stuck_to_the_end.is_set()  # the Ctrl+C was handled while the producer was stuck
    assert stream.interrupted and cancelled.is_set()
    assert items == ["partial", "after the cancel"]  # events after the cancel still arrive


def test_a_second_ctrl_c_stops_waiting_for_an_engine_that_does_not_stop() -> None:
    released = threading.Event()
    seen = []

    consumed = threading.Event()

    def produce():
        yield "partial"
        consumed.wait(5)
        _sigint_to_this_thread()  # the first: cancel, which this engine ignores
        seen.append("first sent")
        while not released.wait(0.01):
            if stream.interrupted and len(seen) == 1:
                seen.append("second sent")
                _sigint_to_this_thread()

    stream = Streamed(produce, lambda: None)
    got = []
    with pytest.raises(KeyboardInterrupt):
        for item in stream:
            got.append(item)
            consumed.set()
    released.set()
    stream.join(5)
    assert got == ["partial"] and seen == ["first sent", "second sent"]


def test_a_ctrl_c_while_the_worker_starts_cancels_it() -> None:
    """The worker can run, and the user press Ctrl+C, before Thread.start() returns: a
    KeyboardInterrupt there would escape the loop and lose the reply."""
    cancelled = threading.Event()

    def produce():
        os.kill(os.getpid(), signal.SIGINT)  # to the process, as the terminal sends it
        cancelled.wait(20)
        yield "after the cancel"

    stream = Streamed(produce, cancelled.set)
    assert list(stream) == ["after the cancel"]
    assert stream.interrupted


def test_the_default_handler_is_back_after_the_reply() -> None:
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert list(Streamed(lambda: iter([1, 2]), lambda: None)) == [1, 2]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_callers_own_handler_is_left_in_place() -> None:
    """The REPL handles Ctrl+C itself (its handler also works between replies)."""
    calls = []

    def mine(signum, frame):
        calls.append(signum)

    old = signal.signal(signal.SIGINT, mine)
    try:
        seen = []

        def produce():
            yield signal.getsignal(signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
            while not calls:
                threading.Event().wait(0.01)
            yield "done"

        seen = list(Streamed(produce, lambda: None))
        assert seen == [mine, "done"] and calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, old)
