"""A reasoning model in the TUI: a "Thinking" block above the answer, live while the model
thinks (token count and time in its title), collapsed when the answer starts, opened again
with a click or Enter; /think hide keeps it closed; the panels count thinking apart; /copy
copies the answer."""

from __future__ import annotations

import threading
from typing import Any, Iterator

import pytest

from lcchat.engine.events import Thinking
from lcchat.tui.thinking import ThinkingBlock
from tests.tui.helpers import (
    FixedStats,
    app_for,
    drive,
    idle,
    ready,
    say,
    session_with,
    type_line,
    wait_until,
)

REPLY = ["<think>", "\nThe user asks", " for 2+2.", " That is 4.\x1b[2J", "\n</think>", "\n\n**Four.**"]


def thinking_session(*replies):
    session = session_with(*replies)
    session.profile.chat.reasoning = ["<think>", "</think>"]
    session.markers = session._detect_markers()
    session.stops, session.hidden = session._derive_stops()
    return session


class Gated(FixedStats):
    """Holds the reply after its first piece of thinking until the test opens the gate."""

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.gate = threading.Event()

    def send(self, text: str) -> Iterator:
        gated = False
        for event in super().send(text):
            yield event
            if isinstance(event, Thinking) and not gated:
                gated = True
                assert self.gate.wait(10)


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    monkeypatch.setattr(ThinkingBlock, "clock", staticmethod(lambda: 100.0))


def test_the_block_is_live_then_collapses_and_opens_again() -> None:
    session = Gated(thinking_session(REPLY))
    app = app_for(session)

    async def scenario(pilot) -> None:
        await ready(pilot)
        await type_line(pilot, "What is 2+2?")
        await wait_until(pilot, lambda: app.transcript.query(ThinkingBlock) and app.transcript.query_one(
            ThinkingBlock).text, what="the thinking block")
        block = app.transcript.query_one(ThinkingBlock)
        assert not block.collapsed and block.running and block.title.startswith("Thinking…")
        assert block.text == "The user asks"
        session.gate.set()
        await idle(pilot)
        turn = app.transcript.last_reply()
        assert turn.text == "**Four.**" and block.text == "The user asks for 2+2. That is 4.\x1b[2J"
        assert block.collapsed and not block.running and block.title.startswith("Thought for ")
        assert "\x1b" not in str(block.body.render())
        assert "thinking" in str(turn.note.render())  # the turn's note counts them apart
        assert "think" in str(app.dashboard.query_one("#speed-gen").render())
        await pilot.click(block._title)
        await wait_until(pilot, lambda: not block.collapsed, what="the block to open")
        block._title.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: block.collapsed, what="the block to close with Enter")
        assert session.conversation.messages[-1].content == "**Four.**"

    drive(app, scenario)


def test_think_hide_keeps_the_block_closed_and_copy_takes_the_answer() -> None:
    app = app_for(FixedStats(thinking_session(REPLY)))
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]

    async def scenario(pilot) -> None:
        await ready(pilot)
        await say(pilot, "/think hide")
        await type_line(pilot, "What is 2+2?")
        await wait_until(pilot, lambda: app.transcript.query(ThinkingBlock), what="the thinking block")
        assert app.transcript.query_one(ThinkingBlock).collapsed
        await idle(pilot)
        await say(pilot, "/copy")
        assert copied == ["**Four.**"]

    drive(app, scenario)


def test_a_reply_with_thinking(snap_compare) -> None:
    app = app_for(FixedStats(thinking_session(REPLY)))

    async def run_before(pilot) -> None:
        await ready(pilot)
        await say(pilot, "What is 2+2?")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
