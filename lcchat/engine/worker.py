"""Run a reply in a worker thread so the calling thread stays free for Ctrl+C.

KeyboardInterrupt only reaches Python's main thread between bytecodes; inside a long
llama_decode it would wait for the C call to return. Generating in a worker and waiting on
a queue keeps the main thread interruptible: the first Ctrl+C cancels the reply (the
engine stops within one token, or aborts prompt evaluation) and the events that follow,
ending with Done("interrupted"), are still delivered. A second Ctrl+C gives up waiting.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Streamed:
    """Iterate the events of `produce()` run in a worker thread."""

    def __init__(self, produce: Callable[[], Iterator[T]], cancel: Callable[[], None]):
        self._produce = produce
        self._cancel = cancel
        self.interrupted = False
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="lcchat-reply", daemon=True)

    def _work(self) -> None:
        try:
            for item in self._produce():
                self._queue.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._queue.put(_Failure(exc))
        finally:
            self._queue.put(_END)

    def interrupt(self) -> None:
        """Cancel the work (a Ctrl+C caught by the consumer); events keep coming until Done."""
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        self._cancel()

    def __iter__(self) -> Iterator[T]:
        self._thread.start()
        while True:
            try:
                item = self._queue.get()
            except KeyboardInterrupt:
                self.interrupt()
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)


def run_cancellable(work: Callable[[threading.Event], T]) -> T:
    """Run `work(cancel_event)` in a worker thread; Ctrl+C sets the event, waits for the
    work to notice, and then raises KeyboardInterrupt in the calling thread."""
    cancel = threading.Event()
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = work(cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="lcchat-work", daemon=True)
    thread.start()
    interrupted = False
    while thread.is_alive():
        try:
            thread.join(0.1)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            cancel.set()
    if interrupted:
        raise KeyboardInterrupt
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
