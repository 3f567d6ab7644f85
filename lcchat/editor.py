"""/vim: write a message in the user's editor, for every front-end.

Which editor ($VISUAL, then $EDITOR, which may carry arguments such as "code --wait",
then the first of vim, vi, nano on PATH), the private temporary file, the bound on what
is read back and the errors are here. How the editor gets the terminal is the
front-end's part: the REPL ignores Ctrl+C while it runs, the TUI suspends itself; each
passes that as `run`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from typing import Callable, Mapping

from lcchat.errors import LcchatError

FALLBACKS = ("vim", "vi", "nano")
MAX_BYTES = 16 * 2**20  # a message larger than this is not read back

Runner = Callable[[list[str]], int]  # runs argv with the terminal; returns the exit status


class EditorError(LcchatError):
    """No editor, or the editor failed: shown as one line, nothing is sent."""


def find_editor(env: Mapping[str, str] | None = None) -> list[str] | None:
    """The editor command as argv: $VISUAL or $EDITOR (split as the shell would), else the
    first of vim, vi, nano on env's PATH; None when there is none."""
    env = os.environ if env is None else env
    for var in ("VISUAL", "EDITOR"):
        value = env.get(var, "").strip()
        if value:
            try:
                argv = shlex.split(value)
            except ValueError:  # an unbalanced quote: take the value as the program's name
                argv = [value]
            if argv:
                return argv
    for name in FALLBACKS:
        path = shutil.which(name, path=env.get("PATH", os.defpath))
        if path:
            return [path]
    return None


def edit(initial: str = "", *, env: Mapping[str, str] | None = None, run: Runner | None = None) -> str:
    """Open the editor on a private temporary file (mode 0600) holding `initial`, then remove
    it; return what was saved, without trailing whitespace or leading blank lines: "" when
    the file was left empty. Raises EditorError, whose message says what to do."""
    argv = find_editor(env)
    if argv is None:
        raise EditorError("no editor found: set $VISUAL or $EDITOR (vim, vi and nano are not installed)")
    run = run or subprocess.call
    fd, path = tempfile.mkstemp(prefix="lcchat-", suffix=".md")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(initial)
        try:
            status = run([*argv, path])
        except FileNotFoundError:
            raise EditorError(f"cannot run the editor {argv[0]!r}: it was not found; set $VISUAL or $EDITOR") from None
        except subprocess.TimeoutExpired:
            raise EditorError(f"the editor {argv[0]!r} needs a terminal, and this one cannot be handed over") from None
        except OSError as exc:
            raise EditorError(f"cannot run the editor {argv[0]!r} ({exc.strerror or exc}); "
                              "set $VISUAL or $EDITOR") from None
        if status != 0:
            raise EditorError(f"the editor exited with status {status}; nothing was sent")
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise EditorError(f"the message is over {MAX_BYTES / 2**20:g} MiB; nothing was sent")
        text = data.decode("utf-8", errors="replace")
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return text.rstrip().lstrip("\n") if text.strip() else ""
