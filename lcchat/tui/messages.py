"""The messages the TUI's worker threads post to the app (Textual Messages).

Threads never touch widgets: the load thread and the job thread (a reply or a Task, see
jobs.py) post these, and the app renders them on the UI thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

from lcchat.engine.events import Event

if TYPE_CHECKING:
    from lcchat.tui.jobs import Job


class JobEvent(Message, bubble=False):
    """An event of the job in flight: reply text, progress, a notice, an error, the end."""

    def __init__(self, job: Job, event: Event) -> None:
        super().__init__()
        self.job = job
        self.event = event


class JobEnded(Message, bubble=False):
    """The job's thread has finished (whether or not a Done came)."""

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job


class LoadProgress(Message, bubble=False):
    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadProgress)


class LoadEvent(Message, bubble=False):
    """What happens after the model is loaded and before the session is ready: the
    history of a continued conversation being re-read (Progress("history", ...))."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LoadEvent)


class Loaded(Message, bubble=False):
    def __init__(self, session: Any) -> None:
        super().__init__()
        self.session = session


class LoadFailed(Message, bubble=False):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error
