"""Run a reply in a worker thread so the calling thread stays free for Ctrl+C.

KeyboardInterrupt only reaches Python's main thread between bytecodes; inside a long
llama_decode it would wait for the C call to return. Generating in a worker and waiting on
a queue keeps the main thread interruptible: the first Ctrl+C cancels the reply (the
engine stops within one token, or aborts prompt evaluation) and the events that follow,
ending with Done("interrupted"), are still delivered. A second Ctrl+C gives up waiting.

Two things make that hold whenever the Ctrl+C comes:
- On the main thread, with Python's default SIGINT handling in place (pipe mode), iterating
  installs a handler whose first call cancels and raises nothing; only a second raises
  KeyboardInterrupt. A KeyboardInterrupt can land at any bytecode, so a first Ctrl+C that
  raised could escape between two events, or while the worker thread starts, and end the
  run with the reply unrecorded. Callers with their own handler (the REPL) keep it.
- The main thread never blocks without a bound: it waits on the queue at most POLL seconds
  at a time. CPython runs a Python signal handler only when the main thread executes
  bytecode, and a blocking wait is woken only by a signal the kernel hands to the main
  thread itself. A SIGINT taken by another thread, or one arriving while the handler for
  the previous one returns, would otherwise stay pending until the worker's next event: for
  an engine stuck in one long C call, forever, so a second Ctrl+C did nothing.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")
_END = object()
POLL = 0.1  # seconds: the longest a pending Ctrl+C waits to be handled


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

    def _on_sigint(self, signum, frame) -> None:
        self.interrupt()  # raises KeyboardInterrupt the second time

    @contextlib.contextmanager
    def _sigint(self) -> Iterator[None]:
        """Our SIGINT handler while the events are read, unless someone else has one."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return
        signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __iter__(self) -> Iterator[T]:
        with self._sigint():
            self._thread.start()
            while True:
                try:
                    item = self._queue.get(timeout=POLL)
                except queue.Empty:
                    continue  # back to bytecode, so a pending signal handler runs now
                except KeyboardInterrupt:  # a caller's own handler raised (not ours)
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
