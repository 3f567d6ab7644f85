"""The SIGHUP/SIGTERM handler's decisions, called directly (real signals are sent to the
real CLI in tests/reliability/test_signals.py)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from lcchat.store import hangup


class BusySession:
    """Busy until cancelled; then the 'turn' takes a moment to be recorded."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.done = threading.Event()
        self.recorded = False

    @property
    def busy(self) -> bool:
        return not self.done.is_set()

    def cancel(self) -> None:
        self.cancelled.set()

        def finish() -> None:
            time.sleep(0.05)
            self.recorded = True
            self.done.set()

        threading.Thread(target=finish).start()


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(hangup, "received", None)
    monkeypatch.setattr(hangup, "_session", None)
    monkeypatch.setattr(hangup, "_mode", "interactive")
    monkeypatch.setattr(hangup, "detach_terminal", lambda: None)


def test_interactive_cancels_waits_for_the_turn_then_exits_129() -> None:
    session = BusySession()
    hangup.watch(session)
    with pytest.raises(SystemExit) as info:
        hangup._on_signal(signal.SIGHUP, None)
    assert info.value.code == 129
    assert session.cancelled.is_set() and session.recorded


def test_pipe_mode_returns_so_the_answer_can_end_then_exits_143() -> None:
    hangup._mode = "pipe"
    session = BusySession()
    hangup.watch(session)
    hangup._on_signal(signal.SIGTERM, None)
    assert session.recorded and hangup.received == signal.SIGTERM
    assert hangup.exit_status(0) == 143


def test_idle_or_loading_leaves_at_once() -> None:
    with pytest.raises(SystemExit) as info:  # no session yet: the model is loading
        hangup._on_signal(signal.SIGTERM, None)
    assert info.value.code == 143


def test_a_second_signal_does_not_wait() -> None:
    hangup._mode = "pipe"
    hangup.received = signal.SIGHUP
    hangup.watch(BusySession())
    with pytest.raises(SystemExit):
        hangup._on_signal(signal.SIGHUP, None)


def test_exit_status_without_a_signal_is_unchanged() -> None:
    assert hangup.exit_status(130) == 130 and hangup.exit_status(0) == 0
