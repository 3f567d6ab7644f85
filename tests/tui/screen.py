"""Read what a running app shows, as text and as styles (for tests)."""

from __future__ import annotations

from rich.segment import Segment
from textual.app import App


def screen_lines(app: App) -> list[str]:
    """The screen as plain text, one string per row."""
    strips = app.screen._compositor.render_strips()
    return ["".join(seg.text for seg in strip) for strip in strips]


def screen_text(app: App) -> str:
    return "\n".join(line.rstrip() for line in screen_lines(app))


def screen_segments(app: App) -> list[Segment]:
    return [seg for strip in app.screen._compositor.render_strips() for seg in strip]
