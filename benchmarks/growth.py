"""Costs that must not grow with the length of a conversation.

- resume: `lcchat -C ID` of a stored conversation of 300 and of 3,000 messages, through the
  installed command on the tiny test model, to the first token of the next reply: wall
  time and peak RSS. Fitting a long history to the context used to re-render and
  re-tokenize it once per dropped exchange (3,000 messages: 324 s, 1.15 GB).
  Target: 3,000 messages in under 5 s, peak RSS about that of 300.
- repl_memory: 500 turns through the REPL (prompt-toolkit pipe input, the same session
  kept, the store attached) on the tiny model: RSS growth per turn, once the context is
  full, against the text the turn kept (the message and the reply, which the
  conversation holds). It was 70 -> 137 MB over 50 turns, part of it the KV state saved
  after each turn being copied through a Python list of ints. Target: under 4 KiB per
  turn (the text, its Message objects and the store's copy of the row; measured: about
  1.3 KB for 57 bytes of text).
  This one takes a few minutes on a shared 2-core VM (500 turns).

`python -m benchmarks.growth` runs both and prints a Markdown section.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.system import lcchat_command

RESUME_TARGET_S = 5.0
REPL_TARGET_PER_TURN = 4096  # bytes of RSS per turn once the context is full


def _store_conversation(home: Path, n: int) -> int:
    """A stored conversation of n messages (alternating, about 60 characters each)."""
    os.environ["LCCHAT_HOME"] = str(home)
    from lcchat.store.db import Store, now

    store = Store()
    rows = [("user" if i % 2 == 0 else "assistant", f"message {i}: the sea was calm and the sky was blue today",
             False, None) for i in range(n)]
    with store.transaction() as db:
        cid = Store.create(db, profile="default", model="", system="Be brief.", now=now())
        Store.write_messages(db, cid, 0, rows, system="Be brief.", now=now())
    store.close()
    return cid


def resume(model: Path, sizes: tuple[int, ...] = (300, 3000)) -> list[dict]:
    """Seconds and peak RSS of `lcchat -C ID -n 1 ok` for conversations of each size."""
    out = []
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "r = subprocess.run(sys.argv[1:], capture_output=True); "
             "print(r.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    for n in sizes:
        home = Path(tempfile.mkdtemp(prefix="lcchat-bench-"))
        cid = _store_conversation(home, n)
        cmd = [*lcchat_command(), "-m", str(model), "-c", "2048", "-t", "1", "--temp", "0", "-n", "1",
               "-C", str(cid), "ok"]
        got = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True,
                             env={**os.environ, "LCCHAT_HOME": str(home)})
        code, seconds, rss = got.stdout.split()
        if code != "0":
            raise RuntimeError(f"lcchat -C failed with exit status {code}")
        out.append({"messages": n, "seconds": float(seconds), "peak_rss": int(rss) * 1024})
    return out


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def repl_memory(model: Path, turns: int = 500, warmup: int = 100) -> dict:
    """RSS after `warmup` turns and after `turns`, through the REPL on one session. The
    warm-up fills the 2048-token context (about 45 turns) and drops old exchanges a few
    times: until then RSS grows as llama.cpp's KV cache and compute buffer are first
    touched, which n_ctx bounds."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from lcchat.config.loader import load_profile
    from lcchat.engine.session import open_session
    from lcchat.repl.app import Repl
    from lcchat.store import attach

    os.environ.setdefault("LCCHAT_HOME", tempfile.mkdtemp(prefix="lcchat-bench-"))
    profile = load_profile("default", {"model.path": str(model), "model.n_threads": 1, "model.n_ctx": 2048,
                                       "sampling.temperature": 0.0, "sampling.max_tokens": 8})
    session = open_session(profile)
    attach(session)  # the conversation store, which saves the KV state after every turn
    kept = 0
    with create_pipe_input() as inp:
        repl = Repl(session, input=inp, output=DummyOutput(), history=Path(tempfile.mkdtemp()) / "h",
                    live_toolbar=False, monitor=None)
        started = time.perf_counter()
        for turn in range(turns):
            if turn == warmup:
                base, base_kept = _rss(), kept
            text = f"turn {turn}: tell me about the sea"
            repl.send(text)
            kept += len(text.encode()) + len(session.conversation.messages[-1].content.encode())
        seconds = time.perf_counter() - started
        end = _rss()
    session.close()
    measured = turns - warmup
    return {"turns": measured, "growth_per_turn": (end - base) / measured, "kept_per_turn": (kept - base_kept) / measured,
            "seconds": seconds}


def main() -> int:
    from tests.models import write_tiny_model

    model = write_tiny_model(Path(tempfile.mkdtemp()) / "tiny.gguf", n_ctx_train=4096)
    print("## Growth with conversation length (tiny model)\n")
    print("| `lcchat -C` of | seconds to the first token | peak RSS |")
    print("|---:|---:|---:|")
    rows = resume(model)
    for r in rows:
        print(f"| {r['messages']} messages | {r['seconds']:.2f} | {r['peak_rss'] / 2**20:.0f} MiB |")
    longest = rows[-1]
    flat = longest["peak_rss"] / rows[0]["peak_rss"]
    print(f"\n- {longest['messages']} messages in under {RESUME_TARGET_S:g} s: {longest['seconds']:.2f} s — "
          f"{'met' if longest['seconds'] < RESUME_TARGET_S else 'missed'}; peak RSS {flat:.2f}x that of "
          f"{rows[0]['messages']} — {'met' if flat < 1.25 else 'missed'}")
    mem = repl_memory(model)
    per = mem["growth_per_turn"]
    print(f"- REPL, {mem['turns']} turns after a warm-up ({mem['seconds']:.0f} s): RSS grew "
          f"{per:.0f} bytes per turn for {mem['kept_per_turn']:.0f} bytes of text kept — "
          f"{'met' if per < REPL_TARGET_PER_TURN else 'missed'} (target: under {REPL_TARGET_PER_TURN} bytes: the "
          "text, its two Message objects and the store's copy of the row)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
