"""How /vim gives the TUI's terminal to the editor (lcchat/editor.py does the rest).

The app suspends itself (App.suspend gives the terminal back), runs the editor and
resumes. Where the app cannot suspend (a headless test, Textual Web) the editor runs
without a terminal, which suits a scripted editor and stops a real one from hanging the
app for long.
"""

from __future__ import annotations

import subprocess

from lcchat.editor import Runner

HEADLESS_TIMEOUT = 60.0


def terminal_handoff(app) -> Runner:
    """An editor runner for lcchat.editor.edit that suspends `app` while the editor runs."""
    from textual.app import SuspendNotSupported

    def run(argv: list[str]) -> int:
        driver = getattr(app, "_driver", None)
        if driver is not None and getattr(driver, "can_suspend", False):
            try:
                suspended = app.suspend()
                suspended.__enter__()
            except SuspendNotSupported:
                pass
            else:
                try:
                    return subprocess.call(argv)
                finally:
                    suspended.__exit__(None, None, None)
        return subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=HEADLESS_TIMEOUT)

    return run
