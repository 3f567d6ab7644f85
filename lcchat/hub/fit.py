"""Choose the quantization to download: the best quality that fits this machine.

Each candidate's memory need comes from quant.estimate_memory, the estimate `/quant` and
`lcchat quant` show (weights + KV cache at the profile's n_ctx and cache types + runtime,
split between RAM and VRAM with -ngl). It needs a GGUF header; the files of one repository
are quantizations of one model, so one header (read with a Range request, see
remote.fetch_header) serves them all: every tensor's size is scaled so the weights add up
to the candidate's file size. That is exact in total and close per layer.

Order of preference: the profile's `file` patterns first (a list is in order of
preference), then quality (quant.quality_key: the measured perplexity change), then size.
The first candidate that fits is chosen; failing that, the first whose fit is tight (the
peak of a long prompt may not fit). If none fits, the answer says what would: a smaller
n_ctx, a q8_0 KV cache, or a smaller file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info, quant
from lcchat.engine.monitor import human_bytes
from lcchat.errors import InputError
from lcchat.hub.remote import RemoteFile
from lcchat.hub.source import rank_of
from lcchat.textsafe import one_line

MIN_CTX = 512


@dataclass
class Candidate:
    file: RemoteFile
    estimate: quant.MemoryEstimate | None = None

    @property
    def verdict(self) -> str:
        return self.estimate.verdict()[0] if self.estimate else "unknown"

    @property
    def label(self) -> str:
        return self.file.type_name or one_line(self.file.filename, 80)


@dataclass
class Plan:
    repo_id: str
    candidates: list[Candidate]  # in order of preference
    chosen: Candidate | None  # None: nothing fits (see nothing_fits)
    why: str  # "the best quality that fits", "--quant Q8_0", ...


def rank(files: list[RemoteFile], patterns: list[str]) -> list[Candidate]:
    """Candidates in order of preference: pattern, then quality, then size."""
    return [Candidate(f) for f in sorted(files, key=lambda f: (rank_of(f.filename, patterns) if patterns else 0,
                                                               quant.quality_key(f.type_name), f.size or 0,
                                                               f.filename))]


def pick_quant(files: list[RemoteFile], wanted: str, repo_id: str) -> RemoteFile:
    """--quant TYPE: the file of that type (Q4_K is Q4_K_M, as llama.cpp names them)."""
    target = quant.canonical_type(wanted.strip())
    for f in files:
        if f.type_name and quant.canonical_type(f.type_name) == target:
            return f
    have = one_line(", ".join(f.type_name or f.filename for f in files), 300) or "none"
    raise InputError(f"hf://{repo_id} has no {target} file among those allowed; it has: {have}")


def as_if(header: gguf_info.GGUFInfo, size: int) -> gguf_info.GGUFInfo:
    """The header of one quantization, made to stand for another `size` bytes long."""
    weights = sum(t.nbytes for t in header.tensors) or 1
    factor = max(size - header.data_offset, 0) / weights
    tensors = [dataclasses.replace(t, nbytes=int(t.nbytes * factor)) for t in header.tensors]
    return dataclasses.replace(header, tensors=tensors, file_size=size)


def estimate(header: gguf_info.GGUFInfo, f: RemoteFile, settings: ModelSettings, *,
             available_ram: int | None = -1, available_vram: int | None = -1) -> quant.MemoryEstimate:
    return quant.estimate_memory(as_if(header, f.size or header.file_size), settings,
                                 available_ram=available_ram, available_vram=available_vram)


def choose(repo_id: str, candidates: list[Candidate], header: gguf_info.GGUFInfo, settings: ModelSettings, *,
           available_ram: int | None = -1, available_vram: int | None = -1) -> Plan:
    """Estimate every candidate and choose the first that fits (Plan.chosen None if none does)."""
    if available_ram == -1:  # read the machine once, not once per candidate
        available_ram = quant.memory.available_ram_now()
    for c in candidates:
        c.estimate = estimate(header, c.file, settings, available_ram=available_ram, available_vram=available_vram)
        available_vram = c.estimate.available_vram if c.estimate.gpu_layers else available_vram
    for level, why in (("fits", "the best quality that fits"), ("tight", "the best quality that fits, tightly")):
        for c in candidates:
            if c.verdict == level:
                return Plan(repo_id, candidates, c, why)
    return Plan(repo_id, candidates, None, "")


def nothing_fits(repo_id: str, candidates: list[Candidate], header: gguf_info.GGUFInfo, settings: ModelSettings,
                 available_ram: int | None, available_vram: int | None) -> str:
    """One line: what was needed, what is free, and what would fit instead."""
    smallest = min(candidates, key=lambda c: c.file.size or 0)
    est = smallest.estimate
    assert est is not None
    free = est.available_ram
    line = (f"nothing in hf://{repo_id} fits: the smallest, {smallest.label} ({_size(smallest.file.size)}), "
            f"needs about {human_bytes(est.ram)} of RAM at n_ctx {est.n_ctx}")
    if free is not None:
        line += f" and {human_bytes(free)} is free"
    if est.gpu_layers and est.available_vram is not None and est.vram > est.available_vram:
        line += f" (and {human_bytes(est.vram)} of VRAM, {human_bytes(est.available_vram)} free)"
    ideas = []
    ctx = est.n_ctx // 2
    while ctx >= MIN_CTX:
        trial = estimate(header, smallest.file, dataclasses.replace(settings, n_ctx=ctx),
                         available_ram=available_ram, available_vram=available_vram)
        if trial.verdict()[0] != "no":
            ideas.append(f"-c {ctx} (a smaller context)")
            break
        ctx //= 2
    if settings.cache_type_k == "f16" or settings.cache_type_v == "f16":
        q8 = dataclasses.replace(settings, cache_type_k="q8_0", cache_type_v="q8_0", flash_attn=settings.flash_attn or True)
        trial = estimate(header, smallest.file, q8, available_ram=available_ram, available_vram=available_vram)
        if trial.verdict()[0] != "no":
            fa = ", flash_attn = true" if settings.flash_attn is False else ""  # a quantized V cache needs it
            ideas.append(f'a q8_0 KV cache (cache_type_k = cache_type_v = "q8_0"{fa})')
    if settings.n_gpu_layers and est.gpu_layers and est.available_vram is not None and est.vram > est.available_vram:
        ideas.append("fewer GPU layers (-ngl)")
    if ideas:
        line += "; it would fit with " + " or ".join(ideas)
    else:
        line += "; free some memory or choose a smaller model"
    return line + "; --quant TYPE takes a file regardless"


def describe(plan: Plan) -> list[str]:
    """The choice and the runners-up, for the terminal, before the download starts."""
    est = (plan.chosen or plan.candidates[0]).estimate
    lines = []
    if est is not None:
        free = f", {human_bytes(est.available_ram)} of RAM free" if est.available_ram is not None else ""
        vram = (f", {human_bytes(est.available_vram)} of VRAM free" if est.gpu_layers and est.available_vram is not None
                else "")
        lines.append(f"memory at n_ctx {est.n_ctx} ({est.cache_type_k}/{est.cache_type_v} KV cache){free}{vram}:")
    width = max(len(c.label) for c in plan.candidates)
    shown = _runners_up(plan)
    for c in plan.candidates:
        if c not in shown:
            continue
        mark = "→" if c is plan.chosen else " "
        need = _need(c)
        if c is plan.chosen:
            tail = plan.why
        elif c.verdict == "no":
            tail = "would not fit"
        elif c.verdict == "unknown":
            tail = ""
        else:
            tail = "fits" if c.verdict == "fits" else "fits, tightly"
        lines.append(f" {mark} {c.label:<{width}} {_size(c.file.size):>9}{need}  {tail}".rstrip())
    hidden = len(plan.candidates) - len(shown)
    if hidden > 0:
        lines.append(f"   … and {hidden} more (--quant TYPE chooses one)")
    return lines


def _runners_up(plan: Plan, around: int = 2) -> list[Candidate]:
    """What to show: the chosen file, the best candidate (what it would take with more
    memory), the one ranked just above the chosen and the two just below it."""
    if plan.chosen is None:
        return plan.candidates[-(2 * around + 1):]  # the smallest: the nearest to fitting
    i = plan.candidates.index(plan.chosen)
    keep = {0, i - 1, *range(i, i + around + 1)}
    return [c for j, c in enumerate(plan.candidates) if j in keep]


def _need(c: Candidate) -> str:
    if c.estimate is None:
        return ""
    text = f"  needs {human_bytes(c.estimate.ram)}"
    if c.estimate.gpu_layers:
        text += f" + {human_bytes(c.estimate.vram)} VRAM"
    return text


def _size(n: int | None) -> str:
    return human_bytes(n) if n is not None else "?"
