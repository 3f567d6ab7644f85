"""Front-end cost: what the REPL and the TUI add on top of the engine.

- throughput: tokens/s of the same reply on the real model through pipe mode, the REPL
  (its live status line on) and the TUI (headless, App.run_test), side by side;
- ui_time_per_token: on a scripted model with no model time at all, the seconds each
  front-end spends per token at 100 and at 2000 tokens (flat means no per-token work
  that grows with the reply);
- bytes_per_token: bytes the installed lcchat writes to an 80x24 pseudo-terminal per
  streamed token, for --repl and --tui (each byte crosses the SSH link).
"""

from __future__ import annotations

import asyncio
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lcchat.config.loader import load_profile
from lcchat.engine.events import Stats
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.session import open_session

QUESTION = "Tell me a very long story about the sea."


def _sink():
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.output.vt100 import Vt100_Output

    class Counter(io.StringIO):
        pass

    out = Counter()
    return out, Vt100_Output(out, lambda: Size(rows=24, columns=80), term="xterm")


# ---------------------------------------------------------------- the three ways to play a reply
# Each returns (seconds the reply took in that front-end, its final Stats); set-up (building
# the REPL, starting the headless TUI) is outside the timing.


def play_pipe(session, text: str) -> tuple[float, Stats]:
    from lcchat import pipe

    with open(os.devnull, "w") as devnull:
        started = time.perf_counter()
        pipe.run(session, text, out=devnull, err=devnull)
        return time.perf_counter() - started, session.last_stats


def play_repl(session, text: str) -> tuple[float, Stats]:
    from prompt_toolkit.input import create_pipe_input

    from lcchat.repl.app import Repl

    _, output = _sink()
    with create_pipe_input() as inp:
        repl = Repl(session, input=inp, output=output, history=Path(tempfile.mkdtemp()) / "h",
                    live_toolbar=True, monitor="auto")
        started = time.perf_counter()
        repl.send(text)
        return time.perf_counter() - started, session.last_stats


def play_tui(session, text: str) -> tuple[float, Stats]:
    from lcchat.engine.monitor import Monitor
    from lcchat.tui.app import make_app

    took: list[float] = []

    async def run() -> None:
        app = make_app(lambda *a, **k: session, monitor=Monitor(), cursor_blink=False)
        async with app.run_test(size=(120, 40)) as pilot:
            while app.session is None:
                await pilot.pause(0.01)
            await pilot.pause(0.2)
            started = time.perf_counter()
            await app.send(text)
            await pilot.pause(0)
            # The reply is over once the app has shown all of it. asyncio.sleep, not
            # pilot.pause: pause() forces a screen refresh each time, which a terminal
            # never does; polling with it 1000 times a second was a third of the
            # main thread's time, and the GIL the reply thread waited for.
            while app.busy:
                await asyncio.sleep(0.001)
            took.append(time.perf_counter() - started)

    asyncio.run(run())
    return took[0], session.last_stats


PLAYERS = {"pipe": play_pipe, "REPL": play_repl, "TUI (headless)": play_tui}


def throughput(model_path: Path, threads: int, n: int, repeats: int) -> dict[str, float]:
    """Generation tokens/s of an n-token reply on the real model, per front-end."""
    profile = load_profile("default", {"model.path": str(model_path), "model.n_threads": threads,
                                       "model.n_ctx": n + 512, "sampling.temperature": 0.0,
                                       "sampling.max_tokens": n})
    session = open_session(profile)
    session.model.is_eog = lambda token: False  # every front-end gets exactly n tokens
    session.stops, session.hidden = [], []
    got: dict[str, list[float]] = {name: [] for name in PLAYERS}
    try:
        for _ in range(repeats):
            for name, play in PLAYERS.items():
                session.clear()
                _, stats = play(session, QUESTION)
                got[name].append(stats.tokens_per_s)
    finally:
        session.model.close()
    return {name: statistics.median(v) for name, v in got.items()}


def ui_time_per_token(lengths: tuple[int, int] = (100, 2000)) -> dict[str, tuple[float, float]]:
    """Seconds per token each front-end spends with a model that costs nothing."""
    out = {}
    for name, play in PLAYERS.items():
        per = []
        for n in lengths:
            model = FakeModel(replies=[["word "] * n], n_ctx=n + 1024)
            session = fake_session(model)
            session.sampling.max_tokens = n
            seconds, _ = play(session, "go")
            per.append(seconds / n)
        out[name] = (per[0], per[1])
    return out


def bytes_per_token(n: int = 300, window: float = 4.0) -> dict[str, float]:
    """Bytes written to an 80x24 pty per token by `lcchat --repl` and `lcchat --tui`.

    The bytes in a window after sending a message, less what the same window carries
    when idle (the TUI redraws its panels once a second), divided by the tokens; the
    tiny model makes the n tokens well inside the window, greedy so it never stops early.
    """
    import pexpect

    from tests.models import write_tiny_model

    model = write_tiny_model(Path(tempfile.mkdtemp()) / "tiny.gguf", n_ctx_train=4096)
    results = {}
    for mode in ("--repl", "--tui"):
        env = {**os.environ, "TERM": "xterm", "LCCHAT_HOME": tempfile.mkdtemp(), "PROMPT_TOOLKIT_NO_CPR": "1"}
        cmd = engine_cmd()
        child = pexpect.spawn(cmd[0], [*cmd[1:], mode, "-m", str(model), "--temp", "0", "-n", str(n), "-c", "2048"],
                              env=env, dimensions=(24, 80), encoding=None, timeout=60)
        _count(child, 5.0)  # start-up
        idle = _count(child, window)
        child.send(b"hello\r")
        busy = _count(child, window)
        results[f"lcchat {mode}"] = max(busy - idle, 0) / n
        child.sendcontrol("q" if mode == "--tui" else "d")
        child.close(force=True)
    return results


def engine_cmd() -> list[str]:
    script = Path(sys.executable).parent / "lcchat"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lcchat"]


def _count(child, seconds: float) -> int:
    """Bytes the child writes in the next `seconds`."""
    total = 0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            total += len(child.read_nonblocking(65536, timeout=min(left, 0.1)))
        except Exception:  # noqa: BLE001 - pexpect.TIMEOUT: nothing to read just now
            pass
    return total
