"""Helpers for driving the TUI in tests: a fixed monitor, fixed stats, wait_until."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Iterator

from textual.pilot import Pilot

from lcchat.config.schema import ContextSettings, Profile
from lcchat.engine.events import Event, Stats
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.monitor import Snapshot
from lcchat.tui.app import LcchatApp, make_app

GiB = 1 << 30
MiB = 1 << 20


class FixedMonitor:
    """Always the same figures (snapshots must not show this machine's RAM)."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot or Snapshot(rss=312 * MiB, ram_used=int(5.5 * GiB), ram_total=16 * GiB)
        self.calls = 0

    def sample(self) -> Snapshot:
        self.calls += 1
        return self.snapshot


class FixedStats:
    """A ChatSession whose Stats carry fixed rates, so screens do not depend on timing."""

    def __init__(self, session: Any, gen: float = 42.5, prompt: float = 321.0) -> None:
        self._session = session
        self._gen, self._prompt = gen, prompt

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def send(self, text: str) -> Iterator[Event]:
        return self._fix(self._session.send(text))

    def retry(self) -> Iterator[Event]:
        return self._fix(self._session.retry())

    def _fix(self, events: Iterator[Event]) -> Iterator[Event]:
        for event in events:
            if isinstance(event, Stats):
                event = dataclasses.replace(event, tokens_per_s=self._gen, prompt_tokens_per_s=self._prompt,
                                            ttft_s=0.05)
            yield event


def session_with(*replies: list[str], delay: float = 0.0, n_ctx: int = 2048, reserve: int = 64,
                 profile_name: str = "fake") -> Any:
    model = FakeModel(replies=[list(r) for r in replies], delay=delay, n_ctx=n_ctx)
    profile = Profile(name=profile_name, context=ContextSettings(reserve=reserve))
    return fake_session(model, profile)


def app_for(session: Any, **options: Any) -> LcchatApp:
    options.setdefault("monitor", FixedMonitor())
    options.setdefault("cursor_blink", False)
    return make_app(lambda **_: session, **options)


async def wait_until(pilot: Pilot, predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Let the app run until predicate() holds (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.01)


async def ready(pilot: Pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.session is not None and app._loading is None, what="the model to load")
    await pilot.pause()


async def idle(pilot: Pilot) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: not app.busy, what="the reply to finish")
    await pilot.pause()


async def type_line(pilot: Pilot, text: str) -> None:
    """Type `text` in the input box and press Enter.

    The Enter key event goes straight to the input box: Pilot.press waits for the process
    to go idle, which it never quite does while a reply streams (tests/tui/test_prompt.py
    presses real keys)."""
    from textual import events

    app = pilot.app
    before = app.lines_handled
    app.prompt.focus()
    app.prompt.insert(text)
    app.prompt.post_message(events.Key("enter", None))
    await wait_until(pilot, lambda: app.lines_handled > before, what=f"the app to take {text!r}")


async def say(pilot: Pilot, text: str) -> None:
    """Send a message (or command) and wait until the app is idle again."""
    await type_line(pilot, text)
    await idle(pilot)


def drive(app: LcchatApp, scenario: Callable[[Pilot], Any], size: tuple[int, int] = (80, 24)) -> None:
    """Run `await scenario(pilot)` against the app, headless (no pytest-asyncio needed)."""
    import asyncio

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def outputs(app: LcchatApp) -> list[str]:
    """The text of every command output in the transcript, in order."""
    from lcchat.tui.transcript import CommandOutput

    return [w.text for w in app.transcript.query(CommandOutput)]


def notices(app: LcchatApp) -> list[str]:
    from lcchat.tui.transcript import Notice

    return [w.text for w in app.transcript.query(Notice)]
