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


def test_make_app_takes_its_dependencies() -> None:
    monitor, editor = object(), (lambda text: text)
    app = tui_app.make_app(lambda **_: None, monitor=monitor, editor=editor, theme="ssh")
    assert app.monitor is monitor and app._editor is editor and app._wanted_theme == "ssh"
