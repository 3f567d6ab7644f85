"""Start-up, memory, panel cost and thread-count benchmarks."""

from __future__ import annotations

import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import engine


def lcchat_command() -> list[str]:
    script = Path(sys.executable).parent / "lcchat"
    return [str(script)] if script.exists() else [sys.executable, "-m", "lcchat"]


def help_time(repeats: int = 7) -> float:
    """Median wall time of `lcchat --help`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([*lcchat_command(), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def load_time(model_path: Path, threads: int) -> dict:
    """Seconds to a ready session, with the model load shown apart."""
    from lcchat.config.loader import load_profile
    from lcchat.engine.session import open_session

    started = time.perf_counter()
    session = open_session(load_profile("default", {"model.path": str(model_path), "model.n_threads": threads}))
    ready = time.perf_counter() - started
    load = session.model.load.seconds
    session.model.close()
    return {"ready_s": ready, "model_load_s": load}


def peak_rss_over_model(model_path: Path, threads: int) -> dict:
    """Peak RSS of a one-shot answer, minus the model file's size. The command runs under
    a fresh Python parent, so no earlier child of this process can be the peak."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], capture_output=True, check=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *lcchat_command(), "-m", str(model_path), "-t", str(threads),
                          "-n", "64", "--temp", "0", "Say hello."], capture_output=True, text=True, check=True)
    peak = int(out.stdout.split()[-1]) * 1024
    size = model_path.stat().st_size
    return {"peak_rss": peak, "model_size": size, "over_model": peak - size}


def panel_cost(samples: int = 200, rate_hz: float = 1.0) -> dict:
    """CPU cost of the live panels' monitor read (psutil, NVML when present) at its rate."""
    from lcchat.engine.monitor import Monitor

    monitor = Monitor()
    started = time.process_time()
    for _ in range(samples):
        monitor.sample()
    per_call = (time.process_time() - started) / samples
    return {"per_call_s": per_call, "rate_hz": rate_hz, "core_fraction": per_call * rate_hz}


def _spin(stop_at: float) -> None:
    while time.time() < stop_at:
        pass


def threads(model_path: Path, n: int = 128) -> list[dict]:
    """Generation speed with 1 and 2 threads, with the other core idle and busy."""
    rows = []
    for busy in (False, True):
        spinner = None
        if busy:
            spinner = multiprocessing.Process(target=_spin, args=(time.time() + 600,), daemon=True)
            spinner.start()
        try:
            for t in (1, 2, 0):  # 0: lcchat's default, chosen at load time
                runner = engine.LcchatRunner(model_path, t, n + 256)
                chosen = runner.session.model.load.n_threads
                prompt = runner.tokens(engine.chat_prompt_text(runner, engine.PROMPT))
                runs = [runner.generate(prompt, n).tps for _ in range(2)]
                runner.close()
                label = f"auto ({chosen})" if t == 0 else str(t)
                rows.append({"threads": label, "other_core": "busy" if busy else "idle", "tps": statistics.median(runs)})
        finally:
            if spinner is not None:
                spinner.terminate()
                spinner.join()
    return rows


def machine() -> str:
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import llama_cpp

    return (f"{platform.node() or 'host'}: {cpu or platform.processor()}, {os.cpu_count()} logical CPUs, "
            f"{mem:.0f} GiB RAM, Python {platform.python_version()}, llama-cpp-python {llama_cpp.__version__}")
