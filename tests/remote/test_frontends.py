"""The REPL (in a real pty) and the TUI (Pilot) on a remote model: the same chat, and
figures that say the model is remote."""

from __future__ import annotations

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.session import open_session
from tests.e2e.test_repl_pty import STATS, finish, interrupt_a_long_reply, say, spawn
from tests.tui.helpers import app_for, drive, ready
from tests.tui.helpers import say as tui_say

pytestmark = pytest.mark.smollm2


@pytest.fixture
def editor(tmp_path):
    path = tmp_path / "editor.sh"
    path.write_text("#!/bin/sh\ntrue\n")
    path.chmod(0o755)
    return path


def test_a_two_turn_repl_chat_with_ctrl_c_mid_reply(llama_server, tmp_path, editor):
    child = spawn(["--remote", llama_server.url, "-n", "24"], home=tmp_path / "home", editor=editor)
    try:
        child.expect_exact("connected to")
        say(child, "What is the capital of France?")
        child.expect(STATS)
        child.expect_exact("remote")  # the status line: RAM/VRAM are the server's
        say(child, "And what is the capital of Italy?")
        child.expect(STATS)
        say(child, "/set max_tokens 2000")
        interrupt_a_long_reply(child, "Write a very long story about a dragon and a knight.")
        # Ctrl+C closed the stream, and the server saw it go (so it stops generating)
        assert llama_server.said("Disconnected from client")
        say(child, "/set max_tokens 24")
        say(child, "Thank you. Say goodbye.")
        child.expect(STATS)  # the session goes on after Ctrl+C
        transcript = finish(child)
    finally:
        child.close(force=True)
    assert "[interrupted]" in transcript and "Paris" in transcript
    assert "RAM remote" in transcript and "VRAM remote" in transcript


def test_the_tui_panels_show_remote_figures(llama_server):
    from textual.widgets import Label

    profile = load_profile("smollm2", {"backend.url": llama_server.url, "sampling.max_tokens": 16})
    session = open_session(profile)
    app = app_for(session)

    def label(selector: str) -> str:
        return str(app.query_one(selector, Label).render())

    async def scenario(pilot):
        await ready(pilot)
        assert label("#ram-rss") == "model   remote" and label("#vram-value") == "remote"
        assert label("#model-quant") == f"server  {llama_server.url}"
        await tui_say(pilot, "What is the capital of France?")
        assert app.dashboard.figures.context_used > 0 and app.dashboard.figures.context_size == 4096
        assert app.dashboard.figures.gen_rate and app.dashboard.figures.history
        assert label("#ram-rss") == "model   remote"

    try:
        drive(app, scenario, size=(120, 40))
    finally:
        session.close()
