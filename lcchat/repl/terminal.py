"""Terminal modes and signals around the moments prompt-toolkit is not running: while a
reply streams and while the user's editor runs."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def sigint_handler(handler) -> Iterator[None]:
    """Use `handler` for SIGINT inside the block (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    try:
        old = signal.signal(signal.SIGINT, handler)
    except (ValueError, OSError):
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def quiet_input(fd: int | None) -> Iterator[None]:
    """Turn off echo and line editing on the terminal `fd` (signals stay on, so Ctrl+C
    still arrives as SIGINT); a no-op when `fd` is not a terminal. Keys typed meanwhile
    wait, unchanged, for the next prompt, even across a Ctrl+C."""
    try:
        import termios
    except ImportError:  # not POSIX
        yield
        return
    if fd is None or not _isatty(fd):
        yield
        return
    try:
        old = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    new = [*old]
    new[0] = old[0] & ~termios.ICRNL  # Enter typed ahead stays Enter (CR), not Ctrl+J (LF)
    # NOFLSH: Ctrl+C must not flush the output queue (it could cut the status line's
    # escape sequence in half, leaving the cursor on the last row) nor keys typed ahead.
    new[3] = old[3] & ~(termios.ECHO | termios.ICANON) | termios.ISIG | termios.NOFLSH
    new[6] = list(old[6])
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    try:
        termios.tcsetattr(fd, termios.TCSANOW, new)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        try:
            termios.tcsetattr(fd, termios.TCSANOW, old)
        except termios.error:
            pass


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ctrl+C does nothing to us inside the block (a child in the foreground, like the
    editor, handles it itself). A Python no-op handler rather than SIG_IGN, so the child
    does not inherit an ignored SIGINT."""
    with sigint_handler(lambda signum, frame: None):
        yield
