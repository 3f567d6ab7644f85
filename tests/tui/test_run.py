"""run_tui's plumbing that does not need a terminal."""

from __future__ import annotations

import io
import logging
import sys

from lcchat.tui import app as tui_app


def test_log_lines_meant_for_stderr_wait_until_the_tui_has_left(monkeypatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    logger = logging.getLogger("lcchat")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    logging.getLogger("lcchat.llama").addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        held = tui_app._hold_log_output()
        logging.getLogger("lcchat.engine").warning("said while the TUI runs")
        assert err.getvalue() == ""
        tui_app._release_log_output(held)
        assert "said while the TUI runs" in err.getvalue()
        logging.getLogger("lcchat.engine").warning("said after")
        assert "said after" in err.getvalue()
    finally:
        logger.removeHandler(handler)
        logging.getLogger("lcchat.llama").removeHandler(handler)
        logger.setLevel(old_level)


def test_make_app_uses_the_dependencies_it_is_given() -> None:
    """The session factory loads the session, the monitor feeds the dashboard, the editor
    writes /vim's message and the theme is the one in force."""
    from lcchat.tui.transcript import AssistantTurn, UserTurn
    from tests.tui.helpers import FixedMonitor, drive, ready, say, session_with, wait_until

    session = session_with(["from the model"])
    factory_calls: list[dict] = []
    edited: list[str] = []
    monitor = FixedMonitor()

    def factory(**kwargs):
        factory_calls.append(kwargs)
        return session

    def editor(text: str) -> str:
        edited.append(text)
        return "written in the editor"

    app = tui_app.make_app(factory, monitor=monitor, editor=editor, theme="ssh", cursor_blink=False)

    async def scenario(pilot):
        await ready(pilot)
        assert app.session is session and len(factory_calls) == 1
        assert set(factory_calls[0]) == {"on_progress", "cancel"}
        assert app.theme == "lcchat-ssh"
        await wait_until(pilot, lambda: monitor.calls > 0, what="the dashboard to sample the monitor")
        await say(pilot, "/vim")
        assert edited == [""]
        assert [t.text for t in app.transcript.query(UserTurn)] == ["written in the editor"]
        assert [t.text for t in app.transcript.query(AssistantTurn)] == ["from the model"]

    drive(app, scenario)
