"""/vim: write a message in the user's editor.

The app suspends itself (App.suspend gives the terminal back), runs the editor on a
temporary file and resumes; what was saved is sent, and an empty file cancels. Where the
app cannot suspend (a headless test, Textual Web) the editor runs without a terminal,
which suits a scripted editor and stops a real one from hanging the app for long.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

from lcchat.errors import LcchatError

FALLBACKS = ("vim", "vi", "nano")
HEADLESS_TIMEOUT = 60.0


class EditorError(LcchatError):
    """No editor could be found or run."""


def editor_command(env: dict[str, str] | None = None) -> list[str]:
    env = os.environ if env is None else env
    for var in ("VISUAL", "EDITOR"):
        value = env.get(var, "").strip()
        if value:
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise EditorError(f"${var} cannot be parsed: {exc}") from None
    for name in FALLBACKS:
        if shutil.which(name):
            return [name]
    raise EditorError("no editor found: set $EDITOR (or install vim, vi or nano)")


def edit_text(initial: str, suspend: Callable[[], AbstractContextManager] | None = None) -> str | None:
    """Open the editor on `initial`; return the saved text, or None if it was left empty
    (or the editor failed). `suspend` gives the terminal to the editor; None or a context
    manager that raises means there is no terminal to give."""
    cmd = editor_command()
    fd, name = tempfile.mkstemp(prefix="lcchat-", suffix=".md")
    path = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(initial)
        rc = _run(cmd + [str(path)], suspend)
        if rc != 0:
            raise EditorError(f"the editor ({cmd[0]}) exited with status {rc}; nothing was sent")
        text = path.read_text(encoding="utf-8", errors="replace")
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    text = text.rstrip()
    return text if text.strip() else None


def _run(argv: list[str], suspend: Callable[[], AbstractContextManager] | None) -> int:
    try:
        if suspend is not None:
            try:
                context = suspend()
                with context:
                    return subprocess.call(argv)
            except _NoSuspend:
                pass
        return subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=HEADLESS_TIMEOUT)
    except FileNotFoundError:
        raise EditorError(f"the editor {argv[0]!r} was not found; set $EDITOR") from None
    except subprocess.TimeoutExpired:
        raise EditorError(f"the editor {argv[0]!r} needs a terminal, and this one cannot be handed over") from None
    except OSError as exc:
        raise EditorError(f"cannot run the editor {argv[0]!r}: {exc}") from None


class _NoSuspend(Exception):
    """Raised by a suspend context when the app cannot give the terminal away."""


def app_suspender(app) -> Callable[[], AbstractContextManager]:
    """A suspend() for edit_text that raises _NoSuspend where App.suspend is not supported."""
    from contextlib import contextmanager

    from textual.app import SuspendNotSupported

    @contextmanager
    def suspended():
        driver = getattr(app, "_driver", None)
        if driver is None or not getattr(driver, "can_suspend", False):
            raise _NoSuspend()
        try:
            cm = app.suspend()
            cm.__enter__()
        except SuspendNotSupported:
            raise _NoSuspend() from None
        try:
            yield
        finally:
            cm.__exit__(None, None, None)

    return suspended
