"""The /quant report as text: what `/quant` and `lcchat quant MODEL` print.

engine/quant gathers the facts (quant.inspect: the file, its sibling quantizations, the
memory estimate); this is how they read for a person in a monospace terminal.
"""

from __future__ import annotations

from lcchat.engine import quant
from lcchat.engine.monitor import human_bytes
from lcchat.engine.quant.memory import MemoryEstimate

ADVICE = ("Prefer Q4_K_M or Q5_K_M over Q4_0/Q4_1; Q6_K or Q8_0 when memory allows. "
          "ppl change: perplexity increase llama.cpp measured on LLaMA-v1-7B (lower is better).")


def _params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def format_report(report: quant.Report) -> str:
    """The report as plain text lines (aligned for a monospace terminal)."""
    info = report.info
    lines = [f"{info.path.name}"]
    hist = " · ".join(f"{name} ×{count} ({human_bytes(size)})" for name, count, size in quant.type_histogram(info))
    bpw = info.bits_per_weight
    facts = [
        ("file type", quant.file_type_label(info)),
        ("tensor types", hist),
        ("bits per weight", f"{bpw:.2f}" if bpw else "—"),
        ("file size", f"{human_bytes(info.file_size)} ({info.file_size:,} bytes)"),
        ("parameters", f"{_params(info.n_params)} ({info.n_params:,})"),
        ("architecture", f"{info.architecture}, {info.block_count} layers, trained to {info.context_length} tokens"),
    ]
    lines += _aligned(facts)
    lines += ["", f"Quantization types for {_params(info.n_params)} parameters "
                  "(llama.cpp's table, sizes scaled from LLaMA-7B):"]
    lines.append(f"  {'type':<8}{'size':>11}{'bpw':>7}  ppl change")
    for row in quant.guide(info):
        ppl = "reference" if row.ppl is None else f"{row.ppl:+.4f}".replace("-", "−")
        mark = f"   ◀ this file ({human_bytes(info.file_size)})" if row.current else ""
        lines.append(f"  {row.name:<8}{human_bytes(row.size):>11}{row.bpw:>7.2f}  {ppl}{mark}")
    lines.append("  " + ADVICE)
    lines += ["", "Quantizations of this model:"]
    others = [v for v in report.variants if not v.current]
    for v in report.variants:
        label = v.type_name or "?"
        note = "  ◀ this one" if v.current else ""
        if v.problem:
            note = f"  (unreadable: {v.problem})"
        lines.append(f"  {label:<8}{human_bytes(v.size):>11}  {v.path}{note}")
    if not others:
        hint = (f"no other file matches {report.variants_glob!r}" if report.variants_glob
                else "no others beside it; a profile's [model] variants = \"GLOB\" can point at more")
        lines.append(f"  ({hint}; /quant make TYPE or lcchat quant MODEL --to TYPE makes one)")
    mem = report.memory
    when = "as loaded" if report.loaded else "before loading"
    lines += ["", f"Memory at n_ctx {mem.n_ctx} (an estimate, {when}):"]
    lines += _aligned(memory_rows(mem))
    lines += [f"  note: {n}" for n in mem.notes]
    return "\n".join(lines)


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"  {k:<{width}}  {v}" for k, v in rows]


def memory_rows(mem: MemoryEstimate) -> list[tuple[str, str]]:
    """The estimate as (label, text) rows; the last says whether it fits."""
    rows = []
    where = f" (+{human_bytes(mem.weights_vram)} in VRAM, {mem.gpu_layers} of {mem.n_layer} layers)" if mem.gpu_layers else ""
    rows.append(("weights", human_bytes(mem.weights_ram) + " RAM" + where))
    kv = f"{human_bytes(mem.kv_total)} ({mem.cache_type_k}/{mem.cache_type_v}"
    others = [f"{t}: {human_bytes(n)}" for t, n in mem.kv_by_type.items()
              if not (t == mem.cache_type_k == mem.cache_type_v)]
    kv += "; " + ", ".join(others) + ")" if others else ")"
    rows.append(("KV cache", kv))
    rows.append(("runtime", f"{human_bytes(mem.runtime)} (+{human_bytes(mem.peak_extra)} "
                            f"{'VRAM ' if mem.gpu_layers else ''}while a long prompt is read)"))
    avail = f"; {human_bytes(mem.available_ram)} available" if mem.available_ram is not None else ""
    rows.append(("total RAM", f"{human_bytes(mem.ram)} (peak {human_bytes(mem.ram_peak)}){avail}"))
    if mem.gpu_layers:
        free = f"; {human_bytes(mem.available_vram)} free" if mem.available_vram is not None else ""
        rows.append(("total VRAM", f"{human_bytes(mem.vram)} (peak {human_bytes(mem.vram_peak)}){free}"))
    level, why = mem.verdict()
    rows.append(("fits?", {"fits": "yes", "tight": f"maybe: {why}", "no": f"NO: {why}"}[level]))
    return rows
