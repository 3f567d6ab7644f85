"""The SIGHUP/SIGTERM handler's decisions, called directly (real signals are sent to the
real CLI in tests/reliability/test_signals.py)."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from lcchat import signals as signals_module
from lcchat.signals import Signals


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
def no_detach(monkeypatch):
    monkeypatch.setattr(signals_module, "detach_terminal", lambda: None)


def test_interactive_cancels_waits_for_the_turn_then_exits_129() -> None:
    signals = Signals("interactive")
    session = BusySession()
    signals.watch(session)
    with pytest.raises(SystemExit) as info:
        signals.handle(signal.SIGHUP, None)
    assert info.value.code == 129
    assert session.cancelled.is_set() and session.recorded


def test_pipe_mode_returns_so_the_answer_can_end_then_exits_143() -> None:
    signals = Signals("pipe")
    session = BusySession()
    signals.watch(session)
    signals.handle(signal.SIGTERM, None)
    assert session.recorded and signals.received == signal.SIGTERM
    assert signals.exit_status(0) == 143


def test_idle_or_loading_leaves_at_once() -> None:
    signals = Signals("interactive")
    with pytest.raises(SystemExit) as info:  # no session yet: the model is loading
        signals.handle(signal.SIGTERM, None)
    assert info.value.code == 143


def test_a_second_signal_does_not_wait() -> None:
    signals = Signals("pipe")
    signals.received = signal.SIGHUP
    signals.watch(BusySession())
    with pytest.raises(SystemExit):
        signals.handle(signal.SIGHUP, None)


def test_each_run_has_its_own_signal_state() -> None:
    """The state is the run's object, not the module's: a signal noted by one run does
    not make another leave at once."""
    one, other = Signals("pipe"), Signals("pipe")
    assert one.noted(signal.SIGTERM) and not one.noted(signal.SIGTERM)
    assert other.received is None and other.exit_status(0) == 0 and one.exit_status(0) == 143


def test_exit_status_without_a_signal_is_unchanged() -> None:
    signals = Signals("pipe")
    assert signals.exit_status(130) == 130 and signals.exit_status(0) == 0
