"""Regenerate docs/tui.svg, the README's screenshot: python docs/make_screenshot.py

The TUI at 110x32 on a scripted model (no model file needed), one exchange in.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from lcchat.config.schema import Profile
from lcchat.engine.events import Stats
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.monitor import Snapshot
from lcchat.tui.app import make_app

REPLY = [
    "Here is a small function:\n\n",
    "```python\ndef add(a: int, b: int) -> int:\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n```\n\n",
    "It takes two integers and returns their **sum**. ",
    "Call it as `add(2, 3)`, which gives `5`.",
]


class Monitor:
    def sample(self) -> Snapshot:
        return Snapshot(rss=291 << 20, ram_used=int(3.4 * (1 << 30)), ram_total=16 << 30)


class SteadyStats:
    """Fixed rates, so the picture does not depend on this machine's speed."""

    def __init__(self, session):
        self._s = session

    def __getattr__(self, name):
        return getattr(self._s, name)

    def send(self, text):
        for event in self._s.send(text):
            if isinstance(event, Stats):
                event = dataclasses.replace(event, tokens_per_s=84.2, prompt_tokens_per_s=412.0, ttft_s=0.09)
            yield event


async def main() -> None:
    profile = Profile(name="smollm2")
    profile.chat.system = "You are a helpful assistant."
    session = SteadyStats(fake_session(FakeModel(replies=[REPLY], n_ctx=4096), profile))
    app = make_app(lambda **_: session, monitor=Monitor(), cursor_blink=False)
    async with app.run_test(size=(110, 32)) as pilot:
        while app.session is None:
            await pilot.pause(0.05)
        await app.send("Write a Python function that adds two numbers.")
        while app.busy:
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        app.save_screenshot(str(Path(__file__).with_name("tui.svg")))


if __name__ == "__main__":
    asyncio.run(main())
