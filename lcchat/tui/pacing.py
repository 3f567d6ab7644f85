"""How often the reply thread hands tokens to the UI while a reply streams.

The reply runs in a worker thread; Textual lays out and renders on the main thread. Each
batch of tokens handed over costs the main thread a layout and a render: milliseconds of
Python, during which it holds the GIL the reply thread needs between its llama.cpp calls
(and, on a busy machine, may be descheduled while holding it). Measured with py-spy
(`--gil`): at a fixed 30 batches a second the main thread held the GIL for most of a
reply on a loaded machine, and the reply ran at half pipe mode's speed.

So the UI gets a budget: the main thread's CPU time per batch is measured, and the next
batch waits until that cost is at most `share` of the time between batches. A cheap
frame keeps the full frame rate; an expensive one (a long paragraph, a slow or loaded
machine) gets fewer frames, never a slower reply. A slow model's tokens still go out one
by one, at once, when the UI has been idle long enough.
"""

from __future__ import annotations

FRAME_S = 1 / 30  # at most this many batches a second, however cheap the UI is
UI_SHARE = 0.05  # of a reply's time, the most the UI's layout and rendering may take
LONGEST_S = 0.5  # however expensive the UI, the reply shows at least this often


class FramePacer:
    """Decides when the next batch of tokens goes to the UI. The reply thread asks
    `due(now)` and calls `sent(now)`; the UI thread reports its CPU time per batch with
    `ui_cost(seconds)` (a float written by one thread and read by another: atomic in
    Python, and a stale value only shifts one frame)."""

    def __init__(self, frame_s: float = FRAME_S, share: float = UI_SHARE, longest_s: float = LONGEST_S):
        self.frame_s, self.share, self.longest_s = frame_s, share, longest_s
        self.cost = 0.0  # main-thread CPU seconds the last batch took
        self.last = float("-inf")  # when the last batch went

    def interval(self) -> float:
        return min(max(self.frame_s, self.cost / self.share), self.longest_s)

    def due(self, now: float) -> bool:
        return now - self.last >= self.interval()

    def sent(self, now: float) -> None:
        self.last = now

    def ui_cost(self, seconds: float) -> None:
        self.cost = max(0.0, seconds)
