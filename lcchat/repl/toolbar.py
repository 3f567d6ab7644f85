"""The status line: tokens/s, process RSS, system RAM, VRAM and context fill.

At the prompt it is prompt-toolkit's bottom toolbar. While a reply streams, prompt-toolkit
is not running and LiveToolbar keeps the line on the terminal's last row itself, the way
apt draws its progress bar: a scroll region (DECSTBM) covers every row but the last, so
reply text scrolls above the line and nothing has to be redrawn per token. A token costs
exactly its own bytes; the line is redrawn about once a second (about 100 bytes), and
after a resize. Scrolled-off text still reaches the scrollback, because the region starts
at the first row.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

from prompt_toolkit.utils import get_cwidth

from lcchat.engine.events import Progress, Stats
from lcchat.engine.monitor import Monitor, Snapshot

SEP = " · "


class Figures:
    """The latest figures; Monitor is read at most once per `every` seconds."""

    def __init__(self, monitor: Monitor | None, every: float = 1.0):
        self.monitor = monitor
        self.every = every
        self._snapshot: Snapshot | None = None
        self._at = 0.0

    def snapshot(self) -> Snapshot | None:
        if self.monitor is None:
            return None
        now = time.monotonic()
        if self._snapshot is None or now - self._at >= self.every:
            try:
                self._snapshot = self.monitor.sample()
            except Exception:  # noqa: BLE001 - a figure we cannot read is not worth a failed turn
                self._snapshot = None
            self._at = now
        return self._snapshot


def compact(n: float) -> str:
    """Bytes in at most six characters, htop-style: 512M, 7.1G, 1.5T."""
    for unit, size in (("T", 1024 ** 4), ("G", 1024 ** 3)):
        if n >= size * 0.95:
            return f"{n / size:.1f}{unit}"
    if n >= 1024 ** 2:
        return f"{n / 1024 ** 2:.0f}M"
    return f"{n / 1024:.0f}K"


def _pair(used: int | None, total: int | None) -> str:
    """"7.1/15.5G": one unit when both numbers share it."""
    if used is None or total is None:
        return "—"
    a, b = compact(used), compact(total)
    if a[-1] == b[-1]:
        return f"{a[:-1]}/{b}"
    return f"{a}/{b}"


def toolbar_text(*, stats: Stats | None, snapshot: Snapshot | None, context_used: int, context_size: int,
                 progress: Progress | None = None, waiting: str | bool = False, width: int = 80,
                 remote: bool = False) -> str:
    """One line of figures, cut to `width` columns. `waiting`: what is going on before the
    first figures come (True: the prompt is being read). `remote`: the model runs on a
    server (--remote), so this machine's RAM and VRAM are not the model's: they read "remote"."""
    if progress is not None and progress.total:
        speed = f"{progress.what} {100 * progress.done // progress.total}%"
    elif waiting:
        speed = waiting if isinstance(waiting, str) else "reading prompt…"
    elif stats is not None:
        speed = f"{stats.tokens_per_s:.1f} t/s"
        if stats.decodes:
            speed += f"{SEP}{stats.spec_text}"
    else:
        speed = "— t/s"
    parts = [speed]
    if remote:
        parts += ["RAM remote", "VRAM remote"]
    elif snapshot is not None:
        parts.append(f"RSS {compact(snapshot.rss)}")
        parts.append(f"RAM {_pair(snapshot.ram_used, snapshot.ram_total)}")
        parts.append(f"VRAM {_pair(snapshot.vram_used, snapshot.vram_total)}")
    pct = 100.0 * context_used / context_size if context_size else 0.0
    parts.append(f"ctx {context_used}/{context_size} {pct:.0f}%")
    return fit(" " + SEP.join(parts), width)


def fit(text: str, width: int) -> str:
    """Cut or pad `text` to exactly `width` terminal columns."""
    out, used = [], 0
    for ch in text:
        w = get_cwidth(ch)
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out) + " " * (width - used)


class LiveToolbar:
    """The status line on the last row while a reply streams (see the module docstring).

    All writes, the reply's and the line's, go through `printer` under its lock, so a
    redraw from the ticker thread never lands in the middle of a token.
    """

    MIN_ROWS, MIN_COLUMNS = 4, 20

    def __init__(self, printer, text: Callable[[int], str], *, every: float = 1.0):
        self.printer = printer
        self.output = printer.output
        self.text = text  # width -> the line
        self.every = every
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._resized = False
        self._thread: threading.Thread | None = None
        self._rows = 0
        self._old_winch = None
        self.active = False

    # ------------------------------------------------------------ life cycle

    def __enter__(self) -> "LiveToolbar":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        rows, _ = self._size()
        if rows < self.MIN_ROWS:
            return
        with self.printer.lock:
            self._reserve(rows)
            self._draw()
            self.active = True
        self._install_winch()
        self._thread = threading.Thread(target=self._tick, name="lcchat-toolbar", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self._restore_winch()
        if not self.active:
            return
        self.active = False
        with self.printer.lock:
            # margins back to the whole screen, the cursor where it was, and everything
            # below it erased: the line, wherever a resize may have left it
            self.printer.raw("\x1b7\x1b[r\x1b8\x1b[J")

    def refresh(self) -> None:
        """Redraw soon (from any thread)."""
        self._wake.set()

    # ------------------------------------------------------------ drawing

    def _size(self) -> tuple[int, int]:
        try:
            size = self.output.get_size()
            return int(size.rows), int(size.columns)
        except Exception:  # noqa: BLE001
            return 0, 0

    def _reserve(self, rows: int) -> None:
        """Keep the last row for the line: one IND (scrolls when the cursor is on the last
        row; unlike LF it keeps the column), margins 1..rows-1, the cursor back."""
        self._rows = rows
        self.printer.raw(f"\x1bD\x1b7\x1b[1;{rows - 1}r\x1b8\x1b[1A", flush=False)

    def _draw(self) -> None:
        rows, columns = self._size()
        if rows != self._rows or columns < self.MIN_COLUMNS:
            return
        line = self.text(columns - 1)  # never the last column: no pending wrap, no scroll
        line = self.printer.style(line, "reverse")
        self.printer.raw(f"\x1b7\x1b[{rows};1H{line}\x1b[K\x1b8")

    def _resize(self) -> None:
        """After a resize: margins reset, everything below the cursor (the old line, however
        the terminal moved or reflowed it) erased, then the row reserved again."""
        rows, _ = self._size()
        self.printer.raw("\x1b7\x1b[r\x1b8\x1b[J", flush=False)
        if rows < self.MIN_ROWS:
            self.printer.flush()
            self.active = False
            return
        self._reserve(rows)
        self.active = True
        self._draw()

    def _tick(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.every)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self.printer.lock:
                    if self._stop.is_set():
                        break
                    if self._resized:
                        self._resized = False
                        self._resize()
                    elif self.active:
                        self._draw()
                    self.printer.flush()
            except Exception:  # noqa: BLE001 - a status line must never end a reply
                break

    # ------------------------------------------------------------ SIGWINCH

    def _install_winch(self) -> None:
        if not hasattr(signal, "SIGWINCH") or threading.current_thread() is not threading.main_thread():
            return

        def on_winch(signum, frame) -> None:
            self._resized = True
            self._wake.set()

        try:
            self._old_winch = signal.signal(signal.SIGWINCH, on_winch)
        except (ValueError, OSError):
            self._old_winch = None

    def _restore_winch(self) -> None:
        if self._old_winch is not None:
            try:
                signal.signal(signal.SIGWINCH, self._old_winch)
            except (ValueError, OSError):
                pass
            self._old_winch = None
