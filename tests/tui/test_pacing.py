"""The reply thread hands tokens to the UI within a budget of the UI's own cost
(tui/pacing.py), and the panels redraw without laying out the screen."""

from __future__ import annotations

from typing import ClassVar

import pytest

from lcchat.engine.events import Stats
from lcchat.tui import app as tui_app
from lcchat.tui.pacing import FramePacer
from lcchat.tui.panels import LiveStats
from tests.tui.helpers import app_for, drive, ready, say, session_with


def test_a_cheap_ui_gets_the_full_frame_rate() -> None:
    pacer = FramePacer(frame_s=0.05, share=0.1, longest_s=1.0)
    pacer.ui_cost(0.001)
    assert pacer.interval() == 0.05
    assert pacer.due(0.0)  # the first tokens go at once
    pacer.sent(10.0)
    assert not pacer.due(10.04) and pacer.due(10.05)


def test_an_expensive_ui_gets_fewer_frames_within_its_share_of_the_time() -> None:
    pacer = FramePacer(frame_s=0.05, share=0.1, longest_s=1.0)
    pacer.ui_cost(0.03)  # each batch cost the main thread 30 ms: at most one per 300 ms
    assert pacer.interval() == pytest.approx(0.3)
    pacer.sent(10.0)
    assert not pacer.due(10.29) and pacer.due(10.3)
    pacer.ui_cost(5.0)  # however slow, the reply still shows at least once a second
    assert pacer.interval() == 1.0
    pacer.ui_cost(-1.0)  # a clock going backwards is no cost
    assert pacer.interval() == 0.05


class NeverDue(FramePacer):
    """A pacer whose UI is always too busy: tokens wait for the end of the reply."""

    costs: ClassVar[list[float]] = []

    def due(self, now: float) -> bool:
        return False

    def ui_cost(self, seconds: float) -> None:
        NeverDue.costs.append(seconds)


def test_the_reply_thread_waits_for_the_pacer_and_loses_nothing(monkeypatch) -> None:
    monkeypatch.setattr(tui_app, "FramePacer", NeverDue)
    NeverDue.costs = []
    words = [f"w{i} " for i in range(40)]
    app = app_for(session_with(words, delay=0.01))  # 0.4 s: many frames' worth at 30 a second
    written: list[str] = []

    async def scenario(pilot):
        await ready(pilot)
        real = tui_app.AssistantTurn.write

        async def write(turn, fragment):
            written.append(fragment)
            await real(turn, fragment)

        monkeypatch.setattr(tui_app.AssistantTurn, "write", write)
        await say(pilot, "go")
        assert written == ["".join(words)]  # one batch: the pacer was never due, the end flushed it
        assert app.transcript.last_reply().text.strip() == "".join(words).strip()
        assert len(NeverDue.costs) == 1 and NeverDue.costs[0] >= 0  # the UI measured its cost

    drive(app, scenario, size=(120, 40))


def test_live_stats_redraw_the_panels_without_a_layout(monkeypatch) -> None:
    from textual.widget import Widget

    app = app_for(session_with(["a ", "b "]))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "go")
        layouts: list[str] = []
        real = Widget.refresh

        def refresh(widget, *regions, layout=False, **kw):
            if layout:
                layouts.append(type(widget).__name__ + "#" + str(widget.id))
            return real(widget, *regions, layout=layout, **kw)

        monkeypatch.setattr(Widget, "refresh", refresh)
        for i in range(1, 4):
            app.dashboard.post_message(LiveStats(Stats(tokens_per_s=10.0 * i, completion_tokens=i,
                                                       context_used=40 + i, context_size=2048)))
            await pilot.pause()
        assert "gen    30.0 t/s" in str(app.dashboard.query_one("#speed-gen").render())
        assert layouts == []

    drive(app, scenario, size=(120, 40))
