"""/vim: write a message in the user's editor ($VISUAL, $EDITOR, then vim, vi, nano)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from typing import Mapping

from lcchat.errors import LcchatError
from lcchat.repl.terminal import sigint_ignored

FALLBACKS = ("vim", "vi", "nano")


class EditorError(LcchatError):
    """No editor, or the editor failed: shown as one line, nothing is sent."""


def find_editor(env: Mapping[str, str] | None = None) -> list[str] | None:
    """The editor command as argv: $VISUAL or $EDITOR (which may carry arguments, e.g.
    "code --wait"), else the first of vim, vi, nano on PATH; None when there is none."""
    env = os.environ if env is None else env
    for var in ("VISUAL", "EDITOR"):
        value = env.get(var, "").strip()
        if value:
            try:
                argv = shlex.split(value)
            except ValueError:
                argv = [value]
            if argv:
                return argv
    for name in FALLBACKS:
        path = shutil.which(name, path=env.get("PATH", os.defpath))
        if path:
            return [path]
    return None


def edit(initial: str = "", *, env: Mapping[str, str] | None = None) -> str:
    """Open the editor on a private temp file holding `initial`; return what was saved,
    without trailing blank lines ("" when the file was left empty)."""
    argv = find_editor(env)
    if argv is None:
        raise EditorError("no editor found: set $VISUAL or $EDITOR (vim, vi and nano are not installed)")
    fd, path = tempfile.mkstemp(prefix="lcchat-", suffix=".md")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(initial)
        try:
            with sigint_ignored():  # Ctrl+C in the editor must not leave it running behind the REPL
                status = subprocess.call([*argv, path])
        except OSError as exc:
            raise EditorError(f"cannot run the editor {argv[0]!r} ({exc.strerror or exc}); "
                              "set $VISUAL or $EDITOR") from None
        if status != 0:
            raise EditorError(f"the editor exited with status {status}; nothing was sent")
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().rstrip().lstrip("\n")
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
