"""SIGHUP and SIGTERM: stop the reply, let the turn be saved, then leave.

A dropped SSH link sends SIGHUP; `kill` and service managers send SIGTERM. Either way the
reply being generated is cancelled the way Ctrl+C cancels it: the engine stops within a
token, the session records the turn (the partial reply marked interrupted) through its
listeners, and the worker thread ends. Only then does the process leave, with status
128 + the signal number (129 for SIGHUP, 143 for SIGTERM), the shell's convention.

Two modes:
- "interactive" (REPL, TUI): the handler waits for the turn to be saved, then raises
  SystemExit in the main thread, so the front-end's `finally` blocks restore the terminal.
- "pipe": the handler waits for the turn to be saved and returns; the answer's remaining
  events (and the --json object) are still written, and the CLI then exits with
  `exit_status()`.
A signal that comes when nothing is being generated leaves at once; a second one too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

WAIT_S = 15.0  # the longest the handler waits for the engine to stop and the turn to be saved
SIGNALS = tuple(getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name))

received: int | None = None  # the first SIGHUP/SIGTERM, once one came
_mode = "interactive"
_session = None


def install(mode: str = "interactive") -> bool:
    """Handle SIGHUP and SIGTERM in this process (from the main thread; elsewhere, or
    where signals are unsupported, it does nothing and returns False)."""
    global _mode, received
    if threading.current_thread() is not threading.main_thread():
        return False
    _mode = mode
    received = None
    try:
        for sig in SIGNALS:
            signal.signal(sig, _on_signal)
    except (ValueError, OSError):
        return False
    return True


def watch(session) -> None:
    """The session whose reply a signal cancels and whose turn it waits for."""
    global _session
    _session = session


def exit_status(status: int) -> int:
    """`status`, or 128 + the signal when SIGHUP/SIGTERM came."""
    return 128 + received if received is not None else status


def _on_signal(signum: int, frame) -> None:
    global received
    first = received is None
    if first:
        received = signum
    if signum == getattr(signal, "SIGHUP", None):
        detach_terminal()
    session = _session
    busy = session is not None and getattr(session, "busy", False)
    if not first or not busy:
        if _mode == "pipe" and first and session is not None:
            return  # between turns in pipe mode: the CLI sees `received` and stops
        raise SystemExit(128 + signum)
    try:
        session.cancel()
    except Exception:  # noqa: BLE001 - leaving matters more
        pass
    deadline = time.monotonic() + WAIT_S
    while getattr(session, "busy", False) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _mode != "pipe":
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
