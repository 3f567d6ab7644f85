"""Background jobs: a reply, or a Task (/quant, /load), run the same way.

Both are an engine event iterator run in a thread worker, whose events the thread posts
to the app as JobEvent messages, ending with JobEnded whatever happens. The app shows a
reply as an assistant turn and a Task as a progress line (LcchatApp.on_job_event); which
one a job is, is `job.task`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from textual.message import Message

from lcchat.commands.actions import Task
from lcchat.engine.events import Error, Event, Stats, Thinking, Token
from lcchat.tui.messages import JobEnded, JobEvent
from lcchat.tui.pacing import FramePacer
from lcchat.tui.panels import LiveStats

log = logging.getLogger("lcchat.tui")

@dataclass(eq=False)
class Job:
    produce: Callable[[], Iterator[Event]] = field(repr=False)
    task: Task | None = None  # None: a reply

    def failure(self, exc: BaseException) -> str:
        """The one line said when the iterator raises."""
        if self.task is None:
            return f"the reply failed: {type(exc).__name__}: {exc}"
        return f"{self.task.what} failed: {exc}"


def run_job(job: Job, post: Callable[[Message], object], post_stats: Callable[[Message], object],
            pacer: FramePacer | None = None) -> None:
    """Run `job` (in a worker thread), posting its events with `post` and the live figures
    (Stats) with `post_stats`, the dashboard's. Tokens are sent on in batches as often as
    `pacer` allows (tui/pacing.py: at most 30 a second, and the UI's layout and rendering
    within a budget of the reply's time; the app reports the UI's cost to it); a slow
    model's tokens still go out one by one, at once.
    A reasoning model's thinking (Thinking) is sent on the same way, apart from the answer;
    live Stats that count thinking tokens reach the app too (the Thinking block's title)."""
    pending: list[str] = []
    kind: type = Token  # what pending holds: answer (Token) or thinking (Thinking) text
    pacer = pacer or FramePacer()

    def flush() -> None:
        if pending:
            post(JobEvent(job, kind("".join(pending))))
            pending.clear()

    try:
        for event in job.produce():
            if isinstance(event, (Token, Thinking)):
                if type(event) is not kind:
                    flush()
                    kind = type(event)
                pending.append(event.text)
                now = time.monotonic()
                if pacer.due(now):
                    flush()
                    pacer.sent(now)
                continue
            if isinstance(event, Stats):
                post_stats(LiveStats(event))
                if not event.final and not event.reasoning_tokens:
                    continue
            flush()
            post(JobEvent(job, event))
    except BaseException as exc:  # the chat goes on after a failed job
        log.debug("%s failed", "the reply" if job.task is None else job.task.what, exc_info=True)
        flush()
        post(JobEvent(job, Error(job.failure(exc))))
    finally:
        flush()
        post(JobEnded(job))
