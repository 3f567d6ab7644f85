"""SIGHUP and SIGTERM: stop the reply, let the turn be saved, then leave.

A dropped SSH link sends SIGHUP; `kill` and service managers send SIGTERM. Either way the
reply being generated is cancelled the way Ctrl+C cancels it: the engine stops within a
token, the session records the turn (the partial reply marked interrupted) through its
listeners, and the worker thread ends. Only then does the process leave, with status
128 + the signal number (129 for SIGHUP, 143 for SIGTERM), the shell's convention.

Two modes:
- "interactive" (REPL, TUI): the handler waits for the turn to be saved, then raises
  SystemExit in the main thread, so the front-end's `finally` blocks restore the terminal.
  The TUI handles the signals in its event loop instead and tells this object (`noted`).
- "pipe": the handler waits for the turn to be saved and returns; the answer's remaining
  events (and the --json object) are still written, and the run then exits with
  `exit_status()`.
A signal that comes when nothing is being generated leaves at once; a second one too.

The state (which signal came, which session to stop) is held by a `Signals` object that
the composition root (lcchat/runtime.py) makes for one run, not by this module.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Protocol


class Watched(Protocol):
    """What a signal needs of the session it stops (engine.session.ChatSession is one)."""

    @property
    def busy(self) -> bool:
        ...

    def cancel(self) -> None:
        ...

WAIT_S = 15.0  # the longest a handler waits for the engine to stop and the turn to be saved
SIGNALS = tuple(getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name))


class Signals:
    """SIGHUP/SIGTERM handling for one run. `mode`: "interactive" or "pipe"."""

    def __init__(self, mode: str = "interactive") -> None:
        self.mode = mode
        self.received: int | None = None  # the first SIGHUP/SIGTERM, once one came
        self.session: Watched | None = None  # whose reply a signal cancels and whose turn it waits for

    def install(self) -> bool:
        """Handle SIGHUP and SIGTERM in this process (from the main thread; elsewhere, or
        where signals are unsupported, it does nothing and returns False)."""
        if threading.current_thread() is not threading.main_thread():
            return False
        self.received = None
        try:
            for sig in SIGNALS:
                signal.signal(sig, self.handle)
        except (ValueError, OSError):
            return False
        return True

    def watch(self, session: Watched) -> None:
        """The session whose reply a signal cancels and whose turn it waits for."""
        self.session = session

    def exit_status(self, status: int) -> int:
        """`status`, or 128 + the signal when SIGHUP/SIGTERM came."""
        return 128 + self.received if self.received is not None else status

    def noted(self, signum: int) -> bool:
        """Take note of a signal (its handler, or the TUI's, calls this first): the first
        one is kept, and after a hang-up the terminal is let go. True for the first."""
        first = self.received is None
        if first:
            self.received = signum
        if signum == getattr(signal, "SIGHUP", None):
            detach_terminal()
        return first

    def handle(self, signum: int, frame: object) -> None:
        """The signal handler (see the module's docstring)."""
        first = self.noted(signum)
        session = self.session
        busy = session is not None and session.busy
        if not first or not busy:
            if self.mode == "pipe" and first and session is not None:
                return  # between turns in pipe mode: the run sees `received` and stops
            raise SystemExit(128 + signum)
        try:
            session.cancel()
        except Exception:  # noqa: BLE001 - leaving matters more
            pass
        deadline = time.monotonic() + WAIT_S
        while session.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.mode != "pipe":
            raise SystemExit(128 + signum)


def detach_terminal() -> None:
    """After a hang-up the terminal is gone: writing to it would fail with EIO, so output
    that went to it goes to /dev/null (output to a pipe or file is kept)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, fd)
                os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
