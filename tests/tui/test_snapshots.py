"""Screenshots of the TUI at 80x24 and 120x40, compared with the committed ones in
__snapshots__/ (pytest-textual-snapshot). They hold no timings, RAM figures or dates:
the monitor and the speed figures are fixed (tests/tui/helpers.py).

After a deliberate change of the look: pytest tests/tui/test_snapshots.py --snapshot-update,
then look at the SVGs before committing them."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from lcchat.engine.events import Token
from tests.tui.helpers import FixedStats, app_for, ready, say, session_with, wait_until

REPLY = [
    "## Reading a file\n\n",
    "Use `open` in a **with** block:\n\n",
    "```python\n", "with open(path) as fh:\n", "    for line in fh:\n", "        print(line.rstrip())\n", "```\n\n",
    "- it closes the file\n", "- even on errors\n",
]
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}


class StopsAfter(FixedStats):
    """Cancels the reply after `n` tokens, as Ctrl+C would, but at the same point every run."""

    def __init__(self, session: Any, n: int) -> None:
        super().__init__(session)
        self._n = n

    def send(self, text: str) -> Iterator:
        seen = 0
        for event in super().send(text):
            if isinstance(event, Token):
                seen += 1
                if seen == self._n:
                    self._session.cancel()
            yield event


def chat_app(theme: str = "dark", replies=(REPLY,), wrap=FixedStats, **kw):
    return app_for(wrap(session_with(*replies, **kw)), theme=theme)


async def one_exchange(pilot) -> None:
    await ready(pilot)
    await say(pilot, "How do I read a file line by line?")


@pytest.mark.parametrize("size", SIZES)
def test_a_chat(snap_compare, size) -> None:
    assert snap_compare(chat_app(), terminal_size=SIZES[size], run_before=one_exchange)


@pytest.mark.parametrize("theme,size", [("light", "120x40"), ("high-contrast", "80x24"), ("ssh", "80x24"),
                                        ("ssh", "120x40")])
def test_themes(snap_compare, theme, size) -> None:
    assert snap_compare(chat_app(theme), terminal_size=SIZES[size], run_before=one_exchange)


def test_an_interrupted_reply(snap_compare) -> None:
    words = [f"word{i} " for i in range(200)]
    app = chat_app(replies=(words, ["Still here."]), wrap=lambda s: StopsAfter(s, 12))

    async def run_before(pilot):
        await ready(pilot)
        await say(pilot, "Talk for a long time.")
        app.session._n = 10_000
        await say(pilot, "Are you still there?")

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_command_output(snap_compare) -> None:
    # Not /help: its table grows with every command added to the shared registry.
    async def run_before(pilot):
        await ready(pilot)
        await say(pilot, "/theme")
        await say(pilot, "/context")

    assert snap_compare(chat_app(), terminal_size=(80, 24), run_before=run_before)


def test_the_context_warning(snap_compare) -> None:
    app = chat_app(replies=(["x" * 20],), n_ctx=160, reserve=16)

    async def run_before(pilot):
        await ready(pilot)
        await say(pilot, "fill " * 16)
        assert app.dashboard.figures.fill_level == "warn"

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_the_command_palette(snap_compare) -> None:
    async def run_before(pilot):
        await ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"theme")
        app = pilot.app
        await wait_until(pilot, lambda: len(app.screen.query("CommandList")) == 1)
        await pilot.pause(0.2)

    assert snap_compare(chat_app(), terminal_size=(80, 24), run_before=run_before)


def test_a_multi_line_message_being_written(snap_compare) -> None:
    async def run_before(pilot):
        await ready(pilot)
        await pilot.press(*"first line", "ctrl+j", *"second line", "ctrl+j", *"third")

    assert snap_compare(chat_app(), terminal_size=(80, 24), run_before=run_before)


def test_the_transcript_while_loading(snap_compare) -> None:
    from lcchat.tui.app import make_app
    from tests.tui.helpers import FixedMonitor

    def factory(on_progress=None, cancel=None):
        on_progress(0.4)
        cancel.wait(10)  # set when the app exits
        raise RuntimeError("never loads")

    app = make_app(factory, monitor=FixedMonitor(), cursor_blink=False)

    async def run_before(pilot):
        await wait_until(pilot, lambda: app._loading is not None and app._loading.bar.progress == 40)
        await pilot.pause(0.1)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


TABLE_AND_CODE = [
    "| Language | Speed | Safety |\n", "|---|---|---|\n", "| Python | Slow | GC |\n", "| Rust | Fast | borrow checker |\n\n",
    "```python\n", "result = compute(" + ", ".join(f"arg_{i}" for i in range(20)) + ")  # a line wider than any terminal\n",
    "```\n",
]


async def table_and_code(pilot) -> None:
    await ready(pilot)
    await say(pilot, "A table and a long line")


@pytest.mark.parametrize("theme", ["dark", "light", "high-contrast", "ssh"])
def test_a_table_and_a_long_code_line(snap_compare, theme) -> None:
    """Issue 12: a table drawn in every theme, and a code line wider than the transcript
    with the scrollbar that shows it goes on."""
    assert snap_compare(chat_app(theme, replies=(TABLE_AND_CODE,)), terminal_size=SIZES["80x24"],
                        run_before=table_and_code)
