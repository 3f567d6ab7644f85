"""Quantizations: what a file is, its siblings, making a new one, and whether it will fit.

Everything here except `run_quantize` and the model switches works from the GGUF header
(gguf_info), so `/quant` and `lcchat quant MODEL` answer without loading the model.

Sizes. llama.cpp's quantize table gives each type's size for LLaMA-7B (6.74B parameters);
the sizes are GiB, which is why Q4_0's 3.56G works out at 4.54 bits per weight (4.5 for
the blocks plus a Q6_K output tensor). The F16 and F32 rows are rounded, so their bits per
weight are the exact 16 and 32. A guide scales bits per weight to this model's parameter
count; small models, whose embeddings weigh more, land further from it.

Making a quant. llama_model_quantize has no cancel and can abort() the process on a bad
file, so it runs in a child process (`python -m lcchat.engine.quant`): cancelling kills
the child, and a crash there cannot take the chat with it. The child writes to a hidden
temporary file beside the target (`.NAME.XXXX.partial`, not a .gguf); the parent renames
it only after the child succeeded and the result reads back as a valid GGUF, and removes
it on failure, cancel or Ctrl+C. If the parent dies, the child sees its stdin close,
deletes the temporary file and exits.

Memory. The estimate is weights (the tensor bytes; with n_gpu_layers > 0 split by layer
between RAM and VRAM as llama.cpp offloads them: the last layers first, the output layer
once every block is offloaded) + KV cache (n_layer x n_ctx x (n_embd_k_gqa +
n_embd_v_gqa) x bytes per element of the cache type) + a runtime allowance (vocabulary
tables, output buffer, the compute of a short prompt). The compute buffer llama.cpp
reserves for a full batch is only touched while a long prompt is read, so it is shown as
the peak on top. Calibrated on SmolLM2-135M, where the total is within a few percent of
the resident memory after loading and one short reply.
"""

from __future__ import annotations

import collections
import dataclasses
import glob as globlib
import logging
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import gguf

from lcchat.config.schema import KV_CACHE_TYPES, ModelSettings
from lcchat.engine import gguf_info
from lcchat.engine.events import Done, Error, Event, Notice, Progress
from lcchat.engine.monitor import human_bytes
from lcchat.errors import InputError, LcchatError

log = logging.getLogger("lcchat.quant")

GiB = 2**30
MiB = 2**20
REFERENCE_PARAMS = 6.74e9  # LLaMA-v1-7B, the model llama.cpp's table was measured on
UNQUANTIZED = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})


# ---------------------------------------------------------------- the type table


@dataclass(frozen=True)
class QuantType:
    """One row of llama.cpp's quantize table: size for LLaMA-7B (GiB) and the perplexity
    change it measured on LLaMA-v1-7B (None: the reference types)."""

    name: str
    size_7b: float
    ppl: float | None

    @property
    def bpw(self) -> float:
        exact = {"F16": 16.0, "F32": 32.0}
        return exact.get(self.name) or self.size_7b * GiB * 8 / REFERENCE_PARAMS


TABLE: tuple[QuantType, ...] = (
    QuantType("Q2_K", 2.63, 0.6717),
    QuantType("Q3_K_S", 2.75, 0.5551),
    QuantType("Q3_K_M", 3.07, 0.2496),
    QuantType("Q3_K_L", 3.35, 0.1764),
    QuantType("Q4_0", 3.56, 0.2166),
    QuantType("Q4_1", 3.90, 0.1585),
    QuantType("Q4_K_S", 3.59, 0.0992),
    QuantType("Q4_K_M", 3.80, 0.0532),
    QuantType("Q5_0", 4.33, 0.0683),
    QuantType("Q5_1", 4.70, 0.0349),
    QuantType("Q5_K_S", 4.33, 0.0400),
    QuantType("Q5_K_M", 4.45, 0.0122),
    QuantType("Q6_K", 5.15, -0.0008),
    QuantType("Q8_0", 6.70, 0.0004),
    QuantType("F16", 13.00, None),
    QuantType("F32", 26.00, None),
)
_BY_NAME = {t.name: t for t in TABLE}
ADVICE = ("Prefer Q4_K_M or Q5_K_M over Q4_0/Q4_1; Q6_K or Q8_0 when memory allows. "
          "ppl change: perplexity increase llama.cpp measured on LLaMA-v1-7B (lower is better).")

# Types llama.cpp cannot make well without an importance matrix (its quantize tool refuses them).
NEEDS_IMATRIX = frozenset({"IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S"})


def target_types() -> list[str]:
    """Every file type llama_model_quantize can make, by name ("Q4_K_M", "F16", ...)."""
    names = []
    for member in gguf.LlamaFileType:
        if member.name == "GUESSED":
            continue
        names.append(member.name.removeprefix("MOSTLY_").removeprefix("ALL_"))
    return names


def normalize_type(name: str) -> str:
    """"q4_k_m" -> "Q4_K_M"; raises InputError naming the choices for an unknown type."""
    wanted = name.strip().upper()
    known = target_types()
    if wanted in known:
        return wanted
    import difflib

    hint = difflib.get_close_matches(wanted, known, n=1)
    raise InputError(f"unknown quantization type {name!r}" + (f" (did you mean {hint[0]}?)" if hint else "")
                     + f"; choose one of: {', '.join(t.name for t in TABLE)} (or {', '.join(sorted(set(known) - set(_BY_NAME)))})")


def type_bpw(name: str) -> float | None:
    """Bits per weight of a file type: from the table, else from the ggml block size of
    its base type (IQ4_XS -> IQ4_XS, Q3_K_XL -> Q3_K)."""
    row = _BY_NAME.get(name.upper())
    if row is not None:
        return row.bpw
    base = name.upper()
    for _ in range(2):
        try:
            block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[base]]
            return 8.0 * size / block
        except KeyError:
            base = base.rsplit("_", 1)[0]
    return None


def _llama_ftype_name(type_name: str) -> str:
    """The llama_cpp constant for a file type: "Q4_K_M" -> "LLAMA_FTYPE_MOSTLY_Q4_K_M"."""
    for member in gguf.LlamaFileType:
        if member.name.removeprefix("MOSTLY_").removeprefix("ALL_") == type_name:
            return "LLAMA_FTYPE_" + member.name
    raise InputError(f"unknown quantization type {type_name!r}")


# ---------------------------------------------------------------- what a file is


def file_type_label(info: gguf_info.GGUFInfo) -> str:
    """"mostly Q4_1", "all F32", or "Q4_1 (guessed from the tensors)"."""
    code = info.metadata.get(gguf.Keys.General.FILE_TYPE)
    if isinstance(code, int) and not isinstance(code, bool):
        try:
            name = gguf.LlamaFileType(code).name
        except ValueError:
            name = ""
        if name.startswith("MOSTLY_"):
            return "mostly " + name.removeprefix("MOSTLY_")
        if name.startswith("ALL_"):
            return "all " + name.removeprefix("ALL_")
    guess = info.file_type_name
    return f"{guess} (guessed from the tensors)" if guess else "unknown"


def is_quantized(info: gguf_info.GGUFInfo) -> bool:
    """True when any weight matrix is stored in a quantized type."""
    return any(len(t.shape) >= 2 and t.type_name not in UNQUANTIZED for t in info.tensors)


def type_histogram(info: gguf_info.GGUFInfo) -> list[tuple[str, int, int]]:
    """(type, tensor count, bytes), largest share first."""
    counts: collections.Counter[str] = collections.Counter()
    sizes: collections.Counter[str] = collections.Counter()
    for t in info.tensors:
        counts[t.type_name] += 1
        sizes[t.type_name] += t.nbytes
    return sorted(((name, counts[name], sizes[name]) for name in counts), key=lambda row: -row[2])


def weight_bytes(info: gguf_info.GGUFInfo) -> int:
    return sum(t.nbytes for t in info.tensors)


@dataclass(frozen=True)
class GuideRow:
    name: str
    bpw: float
    size: int  # bytes, estimated for this model
    ppl: float | None
    current: bool


def guide(info: gguf_info.GGUFInfo) -> list[GuideRow]:
    """The table scaled to this model's parameter count: size ~ bpw x params / 8."""
    current = (info.file_type_name or "").upper()
    n = info.n_params
    return [GuideRow(t.name, t.bpw, int(t.bpw * n / 8), t.ppl, t.name == current) for t in TABLE]


def estimate_output_size(info: gguf_info.GGUFInfo, type_name: str) -> int:
    """Bytes a quantization to `type_name` will take: the header as it is, 1-D tensors
    (norms, biases) kept in F32 as llama.cpp keeps them, the rest at the type's bits per
    weight."""
    bpw = type_bpw(type_name) or 16.0
    size = info.data_offset
    for t in info.tensors:
        size += t.n_elements * 4 if len(t.shape) < 2 else int(t.n_elements * bpw / 8)
    return size


# ---------------------------------------------------------------- sibling variants


_TAG = re.compile(r"[-_.](i?q\d+(?:_[a-z0-9]+)*|tq\d_\d|mxfp4(?:_moe)?|nvfp4|bf16|fp16|f16|fp32|f32)$", re.I)


def split_tag(stem: str) -> tuple[str, str | None]:
    """"ggml-model-q4_0" -> ("ggml-model", "Q4_0"); "x-fp16" -> ("x", "F16"); a stem
    without a quant tag -> (stem, None)."""
    match = _TAG.search(stem)
    if match is None:
        return stem, None
    tag = match.group(1).upper()
    return stem[: match.start()], {"FP16": "F16", "FP32": "F32"}.get(tag, tag)


# llama.cpp's quantize takes Q3_K, Q4_K and Q5_K as other names for its _M mixes, and
# some repositories name their files that way (hfl's ggml-model-q4_k.gguf).
_MIX_ALIASES = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}


def canonical_type(name: str | None) -> str:
    """"q4_k" -> "Q4_K_M": upper case, llama.cpp's short names for its _M mixes resolved."""
    upper = (name or "").upper()
    return _MIX_ALIASES.get(upper, upper)


def quality_key(type_name: str | None) -> tuple[float, float]:
    """Sort key for file types, best quality first. The measure is the table's perplexity
    change (below 0.001 counts as none: Q6_K, Q8_0 and the float types are as good as the
    reference); a type outside the table is given the change of the table row with the
    nearest bits per weight below its own, so it is never ranked above what it may be
    worse than. Ties go to more bits per weight, up to Q8_0's: the table measures no loss
    for Q8_0, F16 or F32, so among them the smallest file (and fastest model) wins."""
    name = canonical_type(type_name)
    bpw = type_bpw(name) if name else None
    if bpw is None:
        return (float("inf"), 0.0)
    row = _BY_NAME.get(name)
    if row is not None:
        ppl = row.ppl or 0.0
    else:
        below = [t for t in TABLE if t.bpw <= bpw and t.ppl is not None]
        ppl = max(below, key=lambda t: t.bpw).ppl if below else TABLE[0].ppl or 1.0
    return (ppl if ppl >= 0.001 else 0.0, -min(bpw, _BY_NAME["Q8_0"].bpw))


@dataclass
class Variant:
    path: Path
    type_name: str | None  # from the header, else from the name
    size: int
    current: bool = False
    problem: str | None = None  # why the header could not be read


def _key(path: Path) -> str:
    return split_tag(path.stem)[0].lower()


def find_variants(path: str | os.PathLike[str], pattern: str = "", *,
                  relative_to: Path | None = None, read_headers: bool = True) -> list[Variant]:
    """Quantizations of the same model: .gguf files in the same directory whose name,
    with the quant tag taken off, matches (case-insensitive), plus whatever the profile's
    `model.variants` glob matches. The current file is included, marked current. Types
    come from each file's header; with read_headers=False (completion) from the names."""
    path = Path(path)
    found: dict[Path, None] = {}
    key = _key(path)
    folders = [path.parent]
    if in_installed_package(path):
        folders.append(user_models_dir())  # where /quant make put this model's quantizations
    for folder in folders:
        try:
            for candidate in sorted(folder.iterdir()):
                if candidate.suffix.lower() == ".gguf" and not candidate.name.startswith(".") and _key(candidate) == key:
                    found[candidate] = None
        except OSError:
            pass
    if pattern:
        expanded = os.path.expandvars(os.path.expanduser(pattern))
        if not os.path.isabs(expanded):
            expanded = str((relative_to or Path.cwd()) / expanded)
        for name in sorted(globlib.glob(expanded)):
            candidate = Path(name)
            if candidate.is_file() and not candidate.name.startswith("."):
                found[candidate] = None
    found.setdefault(path, None)
    variants = [_variant(p, _same(p, path), read_headers) for p in found]
    return sorted(variants, key=lambda v: (v.size, v.path.name))


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _variant(path: Path, current: bool, read_header: bool = True) -> Variant:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if not read_header:
        return Variant(path, split_tag(path.stem)[1], size, current)
    try:
        info = gguf_info.read_gguf(path, vocab=False)
        return Variant(path, info.file_type_name, size, current)
    except LcchatError as exc:
        return Variant(path, split_tag(path.stem)[1], size, current, str(exc))


def pick_variant(variants: list[Variant], wanted: str) -> Variant | None:
    """The variant named by type ("Q5_K_M", any case) or by file name."""
    upper = wanted.strip().upper()
    for v in variants:
        if v.problem is None and v.type_name and v.type_name.upper() == upper:
            return v
    for v in variants:
        if v.problem is None and (v.path.name == wanted or v.path.stem.upper() == upper or split_tag(v.path.stem)[1] == upper):
            return v
    return None


def default_output(source: Path, type_name: str) -> Path:
    """Where a quantization goes by default: the source's name with its quant tag
    replaced (tiny-f32.gguf -> tiny-Q4_K_M.gguf), in the same directory when that is the
    user's; for a model shipped inside an installed package (site-packages), in the data
    dir's models/ instead: a package's files belong to pip, which would delete or
    overwrite ours."""
    stem = source.stem
    match = _TAG.search(stem)
    if match is not None:
        name = f"{stem[: match.start()]}{stem[match.start()]}{type_name}.gguf"
    else:
        name = f"{stem}-{type_name}.gguf"
    if in_installed_package(source):
        return user_models_dir() / name
    return source.with_name(name)


def user_models_dir() -> Path:
    """The data dir's models/: where lcchat writes models it makes for the user."""
    from lcchat.paths import data_dir

    return data_dir() / "models"


def in_installed_package(path: Path) -> bool:
    """True when `path` lies inside a Python package directory (site-packages or
    dist-packages, of this interpreter or any other)."""
    import site
    import sysconfig

    try:
        where = path.resolve()
    except OSError:
        where = path.absolute()
    if any(part in ("site-packages", "dist-packages") for part in where.parts):
        return True
    roots = set()
    for getter in (site.getsitepackages, site.getusersitepackages):
        try:
            found = getter()
        except (AttributeError, OSError):
            continue
        roots.update([found] if isinstance(found, str) else found)
    roots.update(p for p in (sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")) if p)
    for root in roots:
        try:
            where.relative_to(Path(root).resolve())
            return True
        except (ValueError, OSError):
            continue
    return False


# ---------------------------------------------------------------- will it fit


def kv_bytes_per_element(type_name: str) -> float:
    qtype = gguf.GGMLQuantizationType[type_name.upper()]
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return size / block


def _per_layer(value: int | list[int] | None, n_layer: int) -> list[int]:
    if isinstance(value, list):
        return [int(v) for v in value[:n_layer]] + [0] * max(0, n_layer - len(value))
    return [int(value or 0)] * n_layer


def _arch_int(info: gguf_info.GGUFInfo, template: str) -> int | None:
    arch = info.architecture
    value = info.metadata.get(template.format(arch=arch)) if arch else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def kv_cache_bytes(info: gguf_info.GGUFInfo, n_ctx: int, type_k: str = "f16", type_v: str = "f16",
                   layers: range | None = None) -> int:
    """n_ctx x (n_embd_k_gqa + n_embd_v_gqa) x bytes per element, summed over the layers
    (all of them, or `layers`); n_embd_k_gqa = head_dim_k x n_head_kv of that layer."""
    n_layer = info.block_count or 0
    if not n_layer or info.architecture in gguf_info.ATTENTION_FREE_ARCHS:
        return 0
    heads = _per_layer(info.head_count, n_layer)
    heads_kv = _per_layer(info.head_count_kv, n_layer)
    n_embd = info.embedding_length or 0
    first_heads = next((h for h in heads if h), 0)
    default_dim = n_embd // first_heads if first_heads else 0
    dim_k = _arch_int(info, gguf.Keys.Attention.KEY_LENGTH) or default_dim
    dim_v = _arch_int(info, gguf.Keys.Attention.VALUE_LENGTH) or default_dim
    per_k, per_v = kv_bytes_per_element(type_k), kv_bytes_per_element(type_v)
    total = 0.0
    for i in layers if layers is not None else range(n_layer):
        if 0 <= i < n_layer:
            total += n_ctx * heads_kv[i] * (dim_k * per_k + dim_v * per_v)
    return int(total)


def runtime_allowance(info: gguf_info.GGUFInfo) -> int:
    """What a loaded model holds besides weights and KV cache, with a short prompt: the
    vocabulary tables on both sides (llama.cpp's and ours), output and small compute
    buffers. Measured: about 6 MiB plus 600 bytes per vocabulary entry."""
    return 6 * MiB + 600 * int(info.vocab_size or 0)


def compute_peak(info: gguf_info.GGUFInfo, n_ctx: int, n_ubatch: int, flash_attn: bool) -> int:
    """The compute buffer llama.cpp reserves for a full batch (touched while a long prompt
    is evaluated): logits or attention scores for n_ubatch tokens, plus FFN activations."""
    n_vocab = int(info.vocab_size or 0)
    n_head = max(_per_layer(info.head_count, max(1, info.block_count or 1)) or [0])
    n_ff_raw = _arch_int(info, gguf.Keys.LLM.FEED_FORWARD_LENGTH)
    if n_ff_raw is None:
        arch = info.architecture
        value = info.metadata.get(gguf.Keys.LLM.FEED_FORWARD_LENGTH.format(arch=arch)) if arch else None
        n_ff_raw = max(value) if isinstance(value, list) and value else 0
    n_embd = info.embedding_length or 0
    scores = 0 if flash_attn else n_head * n_ctx
    return 4 * n_ubatch * (max(n_vocab, scores) + 2 * n_ff_raw + 4 * n_embd)


@dataclass
class MemoryEstimate:
    n_ctx: int
    cache_type_k: str
    cache_type_v: str
    n_layer: int
    gpu_layers: int  # layers llama.cpp will offload (0 on a CPU-only build)
    weights_ram: int
    weights_vram: int
    kv_ram: int
    kv_vram: int
    runtime: int  # RAM
    peak_extra: int  # compute buffer for a full batch: VRAM when offloading, else RAM
    available_ram: int | None
    available_vram: int | None
    kv_by_type: dict[str, int] = field(default_factory=dict)  # whole KV cache for K=V=type
    notes: list[str] = field(default_factory=list)

    @property
    def ram(self) -> int:
        return self.weights_ram + self.kv_ram + self.runtime

    @property
    def vram(self) -> int:
        return self.weights_vram + self.kv_vram

    @property
    def ram_peak(self) -> int:
        return self.ram + (0 if self.gpu_layers else self.peak_extra)

    @property
    def vram_peak(self) -> int:
        return self.vram + (self.peak_extra if self.gpu_layers else 0)

    @property
    def kv_total(self) -> int:
        return self.kv_ram + self.kv_vram

    def warning(self) -> str | None:
        """A clear warning when the model will not (or may not) fit; None when it fits."""
        return self.verdict()[1]

    def verdict(self) -> tuple[str, str | None]:
        """("fits", None), ("tight", why) or ("no", why)."""
        text = self._no()
        if text:
            return "no", text
        text = self._tight()
        return ("tight", text) if text else ("fits", None)

    def _no(self) -> str | None:
        if self.available_ram is not None and self.ram > self.available_ram:
            return (f"this model will not fit in memory: it needs about {human_bytes(self.ram)} of RAM "
                    f"({self._breakdown()}) but only {human_bytes(self.available_ram)} is available, so loading "
                    f"it is likely to be killed for lack of memory; {self._remedy()}")
        if self.available_vram is not None and self.gpu_layers and self.vram > self.available_vram:
            return (f"the {self.gpu_layers} offloaded layers will not fit in VRAM: they need about "
                    f"{human_bytes(self.vram)} but {human_bytes(self.available_vram)} is free; "
                    "lower n_gpu_layers (-ngl) or use a smaller quantization (/quant)")
        return None

    def _tight(self) -> str | None:
        if self.available_ram is not None and self.ram_peak > self.available_ram:
            return (f"memory is tight: the model needs about {human_bytes(self.ram)} of RAM and up to "
                    f"{human_bytes(self.ram_peak)} while it reads a long prompt, with "
                    f"{human_bytes(self.available_ram)} available; {self._remedy()}")
        if self.available_vram is not None and self.gpu_layers and self.vram_peak > self.available_vram:
            return (f"VRAM is tight: the offloaded layers need about {human_bytes(self.vram)} and up to "
                    f"{human_bytes(self.vram_peak)} while a long prompt is read, with "
                    f"{human_bytes(self.available_vram)} free; lower n_gpu_layers if loading fails")
        return None

    def _breakdown(self) -> str:
        return (f"weights {human_bytes(self.weights_ram)} + KV cache {human_bytes(self.kv_ram)} at n_ctx "
                f"{self.n_ctx} + {human_bytes(self.runtime)} runtime")

    def _remedy(self) -> str:
        tips = ["use a smaller quantization (/quant)", "a smaller n_ctx (-c)"]
        if self.cache_type_k == "f16" or self.cache_type_v == "f16":
            q8 = self.kv_by_type.get("q8_0")
            tips.append(f"a q8_0 KV cache (/quant kv q8_0: {human_bytes(q8)} instead of {human_bytes(self.kv_total)})"
                        if q8 else "a q8_0 KV cache (/quant kv q8_0)")
        return "try " + ", ".join(tips[:-1]) + " or " + tips[-1]

    def rows(self) -> list[tuple[str, str]]:
        rows = []
        where = f" (+{human_bytes(self.weights_vram)} in VRAM, {self.gpu_layers} of {self.n_layer} layers)" if self.gpu_layers else ""
        rows.append(("weights", human_bytes(self.weights_ram) + " RAM" + where))
        kv = f"{human_bytes(self.kv_total)} ({self.cache_type_k}/{self.cache_type_v}"
        others = [f"{t}: {human_bytes(n)}" for t, n in self.kv_by_type.items()
                  if not (t == self.cache_type_k == self.cache_type_v)]
        kv += "; " + ", ".join(others) + ")" if others else ")"
        rows.append(("KV cache", kv))
        rows.append(("runtime", f"{human_bytes(self.runtime)} (+{human_bytes(self.peak_extra)} "
                                f"{'VRAM ' if self.gpu_layers else ''}while a long prompt is read)"))
        avail = f"; {human_bytes(self.available_ram)} available" if self.available_ram is not None else ""
        rows.append(("total RAM", f"{human_bytes(self.ram)} (peak {human_bytes(self.ram_peak)}){avail}"))
        if self.gpu_layers:
            free = f"; {human_bytes(self.available_vram)} free" if self.available_vram is not None else ""
            rows.append(("total VRAM", f"{human_bytes(self.vram)} (peak {human_bytes(self.vram_peak)}){free}"))
        level, why = self.verdict()
        rows.append(("fits?", {"fits": "yes", "tight": f"maybe: {why}", "no": f"NO: {why}"}[level]))
        return rows


def _gpu_offload_supported() -> bool:
    try:
        from lcchat.engine.model import load_llama_cpp

        return bool(load_llama_cpp().llama_supports_gpu_offload())
    except Exception:  # noqa: BLE001 - no llama.cpp, no GPU
        return False


def _available_ram() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001
        return None


def _available_vram() -> int | None:
    try:
        from lcchat.engine.monitor import Monitor

        snap = Monitor().sample()
    except Exception:  # noqa: BLE001
        return None
    if snap.vram_total is None or snap.vram_used is None:
        return None
    return snap.vram_total - snap.vram_used


def estimate_memory(info: gguf_info.GGUFInfo, settings: ModelSettings, *, n_ctx: int | None = None,
                    available_ram: int | None = -1, available_vram: int | None = -1,
                    gpu_supported: bool | None = None, loaded: bool = False) -> MemoryEstimate:
    """Memory a model will need with these settings, before loading it. `n_ctx` overrides
    the settings' (0 there means the training context). Available memory is read from the
    system unless given (None: unknown). With loaded=True the model is already in memory,
    so what it holds counts as available to it."""
    ctx = n_ctx if n_ctx is not None else settings.n_ctx
    ctx = int(ctx or info.context_length or 4096)
    n_layer = int(info.block_count or 0)
    notes: list[str] = []
    ngl = settings.n_gpu_layers
    if ngl != 0:
        supported = _gpu_offload_supported() if gpu_supported is None else gpu_supported
        if not supported:
            notes.append("this llama.cpp build cannot offload to a GPU; n_gpu_layers is ignored")
            ngl = 0
    offloaded = n_layer if ngl < 0 else min(ngl, n_layer + 1)
    first_gpu = n_layer - min(offloaded, n_layer)
    output_on_gpu = ngl < 0 or ngl > n_layer
    w_ram = w_vram = 0
    for t in info.tensors:
        on_gpu = False
        if t.name.startswith("blk."):
            try:
                on_gpu = int(t.name.split(".")[1]) >= first_gpu and offloaded > 0
            except ValueError:
                on_gpu = False
        elif t.name.startswith("output"):
            on_gpu = output_on_gpu
        if on_gpu:
            w_vram += t.nbytes
        else:
            w_ram += t.nbytes
    k, v = settings.cache_type_k, settings.cache_type_v
    kv_ram = kv_cache_bytes(info, ctx, k, v, range(0, first_gpu))
    kv_vram = kv_cache_bytes(info, ctx, k, v, range(first_gpu, n_layer))
    by_type = {t: kv_cache_bytes(info, ctx, t, t) for t in ("f16", "q8_0", "q4_0")}
    n_ubatch = min(settings.n_batch, ctx)
    ram = _available_ram() if available_ram == -1 else available_ram
    vram = (_available_vram() if offloaded else None) if available_vram == -1 else available_vram
    if _quantized_kv(v) and not settings.flash_attn:
        notes.append(f"a {v} V cache needs flash attention in llama.cpp (flash_attn = \"auto\" or true)")
    estimate = MemoryEstimate(
        n_ctx=ctx, cache_type_k=k, cache_type_v=v, n_layer=n_layer, gpu_layers=min(offloaded, n_layer),
        weights_ram=w_ram, weights_vram=w_vram, kv_ram=kv_ram, kv_vram=kv_vram,
        runtime=runtime_allowance(info), peak_extra=compute_peak(info, ctx, n_ubatch, _flash_attn_on(settings)),
        available_ram=ram, available_vram=vram, kv_by_type=by_type, notes=notes,
    )
    if loaded:
        if estimate.available_ram is not None:
            estimate.available_ram += estimate.ram
        if estimate.available_vram is not None:
            estimate.available_vram += estimate.vram
        notes.append("the model is loaded: \"available\" counts the memory it holds now")
    return estimate


def _flash_attn_on(settings: ModelSettings) -> bool:
    """Whether llama.cpp will run flash attention (engine/model.py's flash_attn_type:
    "auto" is off on the CPU alone unless a quantized V cache needs it)."""
    if settings.flash_attn == "auto":
        return settings.n_gpu_layers != 0 or _quantized_kv(settings.cache_type_v)
    return bool(settings.flash_attn)


def _quantized_kv(type_name: str) -> bool:
    return type_name.lower() not in ("f32", "f16", "bf16")


def fit_warning(info: gguf_info.GGUFInfo, settings: ModelSettings) -> str | None:
    """One line to show before loading a model that will not (or may not) fit; None when
    it fits or nothing is known. Cheap: a header already read and one psutil call."""
    try:
        return estimate_memory(info, settings).warning()
    except Exception:  # noqa: BLE001 - an estimate must never stop a load
        log.debug("memory estimate failed", exc_info=True)
        return None


def context_problem(info: gguf_info.GGUFInfo, settings: ModelSettings, *, n_ctx: int | None = None,
                    available_ram: int | None = -1) -> str | None:
    """Why a context of n_ctx tokens (the settings', 0 meaning the training context) cannot
    be created in the memory available, or None. llama.cpp allocates the whole KV cache and
    clears it when it creates the context, so a cache larger than the free memory is not
    refused cleanly: the process swaps for minutes and is then killed (n_ctx 2,000,000,000:
    49 s, then the OOM killer). Memory-mapped weights can be paged out, so they do not
    count here unless use_mmap is off; estimate_memory().warning() covers them."""
    estimate = estimate_memory(info, settings, n_ctx=n_ctx, available_ram=available_ram, available_vram=None)
    free = estimate.available_ram
    if free is None or estimate.kv_ram == 0:
        return None
    others = estimate.runtime + (0 if settings.use_mmap else estimate.weights_ram)
    if estimate.kv_ram + others <= free:
        return None
    per_token = estimate.kv_ram / estimate.n_ctx
    fits = int(0.9 * (free - others) / per_token) // 256 * 256 if free > others else 0  # leave a margin
    advice = (f"use -c {fits} or less (n_ctx in a profile)" if fits >= 256
              else "free some memory or use a smaller model")
    if estimate.cache_type_k == "f16" or estimate.cache_type_v == "f16":
        advice += ", or a q8_0 KV cache (cache_type_k/cache_type_v) for about half"
    return (f"n_ctx {estimate.n_ctx:,} needs a {human_bytes(estimate.kv_ram)} KV cache "
            f"({estimate.cache_type_k}/{estimate.cache_type_v}), more than the {human_bytes(free)} of memory "
            f"available; {advice}")


def kv_cache_problem(settings: ModelSettings) -> str | None:
    """llama.cpp refuses a quantized V cache without flash attention: say so up front."""
    if _quantized_kv(settings.cache_type_v) and not settings.flash_attn:
        return (f"cache_type_v = {settings.cache_type_v!r} needs flash attention, which flash_attn = false turns off "
                "(llama.cpp quantizes the V cache only with it); set flash_attn = \"auto\" or true, or keep cache_type_v = 'f16'")
    return None


# ---------------------------------------------------------------- the report


@dataclass
class Report:
    info: gguf_info.GGUFInfo
    variants: list[Variant]
    memory: MemoryEstimate
    variants_glob: str = ""
    loaded: bool = False


def inspect(path: str | os.PathLike[str], settings: ModelSettings | None = None, *, n_ctx: int | None = None,
            variants_glob: str = "", relative_to: Path | None = None,
            info: gguf_info.GGUFInfo | None = None, loaded: bool = False) -> Report:
    """Everything `/quant` and `lcchat quant MODEL` show, from the header alone."""
    info = info or gguf_info.load_checked(path, vocab=False)
    settings = settings or ModelSettings()
    return Report(
        info=info,
        variants=find_variants(path, variants_glob, relative_to=relative_to),
        memory=estimate_memory(info, settings, n_ctx=n_ctx, loaded=loaded),
        variants_glob=variants_glob,
        loaded=loaded,
    )


def _params(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f}B"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    return f"{n / 1e3:.1f}K" if n >= 1e3 else str(n)


def format_report(report: Report) -> str:
    """The report as plain text lines (aligned for a monospace terminal)."""
    info = report.info
    lines = [f"{info.path.name}"]
    hist = " · ".join(f"{name} ×{count} ({human_bytes(size)})" for name, count, size in type_histogram(info))
    bpw = info.bits_per_weight
    facts = [
        ("file type", file_type_label(info)),
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
    for row in guide(info):
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
    lines += _aligned(mem.rows())
    lines += [f"  note: {n}" for n in mem.notes]
    return "\n".join(lines)


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in rows), default=0)
    return [f"  {k:<{width}}  {v}" for k, v in rows]


# ---------------------------------------------------------------- making a quantization


@dataclass
class QuantPlan:
    source: Path
    info: gguf_info.GGUFInfo
    target: str  # "Q4_K_M"
    output: Path
    estimate: int  # bytes
    allow_requantize: bool = False
    force: bool = False
    written: Path | None = None  # set when the file is in place

    @property
    def ftype_constant(self) -> str:
        return _llama_ftype_name(self.target)


REQUANTIZE_WHY = (
    "its weights were already rounded to {current}, and quantizing rounded weights rounds them again: "
    "the errors of both steps add up, so the result is worse than a {target} made from the F16/F32 original "
    "(and a higher-precision target cannot win back what {current} lost)"
)


def plan_quantize(source: str | os.PathLike[str], target: str, output: str | os.PathLike[str] | None = None, *,
                  allow_requantize: bool = False, force: bool = False,
                  info: gguf_info.GGUFInfo | None = None) -> QuantPlan:
    """Check a quantization before starting it. InputError (exit 2) for an unknown type,
    a requantize without allow_requantize, an existing output without force; LcchatError
    (exit 1) when the disk is short of space."""
    source = Path(source)
    type_name = normalize_type(target)
    if type_name in NEEDS_IMATRIX:
        raise InputError(f"{type_name} needs an importance matrix (llama.cpp's imatrix tool), which lcchat does not "
                         "make; pick IQ2_M, Q2_K or a larger type")
    info = info or gguf_info.load_checked(source, vocab=False)
    current = (info.file_type_name or "?").upper()
    if current == type_name:
        raise InputError(f"{source.name} is already {type_name}")
    if is_quantized(info) and not allow_requantize:
        why = REQUANTIZE_WHY.format(current=current, target=type_name)
        raise InputError(f"{source.name} is already quantized ({current}); refusing to quantize it again because {why}. "
                         "Quantize the original F16/F32 GGUF instead, or pass --allow-requantize to do it anyway")
    out = Path(output) if output else default_output(source, type_name)
    if out.is_dir():
        out = out / default_output(source, type_name).name
    if _same(out, source):
        raise InputError(f"{out} is the file being quantized; choose another output (-o)")
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it, or choose another name with -o")
    if not output and out.parent == user_models_dir():
        from lcchat.paths import ensure_private_dir

        try:
            ensure_private_dir(out.parent)
        except OSError as exc:
            raise LcchatError(f"cannot create {out.parent}: {exc.strerror or exc}; choose another output (-o)") from exc
    if not out.parent.is_dir():
        raise InputError(f"{out.parent} is not a directory; create it or choose another output (-o)")
    estimate = estimate_output_size(info, type_name)
    free = shutil.disk_usage(out.parent).free
    need = int(estimate * 1.05) + MiB
    if free < need:
        raise LcchatError(f"not enough free disk space in {out.parent}: a {type_name} of {source.name} needs about "
                          f"{human_bytes(estimate)} and {human_bytes(free)} is free; free some space or write "
                          "elsewhere with -o")
    return QuantPlan(source, info, type_name, out, estimate, allow_requantize, force)


_TENSOR_LINE = re.compile(r"^\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]")


def run_quantize(plan: QuantPlan, *, cancel: threading.Event | None = None, nthread: int = 0,
                 poll_s: float = 0.1) -> Iterator[Event]:
    """Quantize in a child process; yield Progress("quantize", tensors done, tensors) and
    Notices. Raises Cancelled when `cancel` is set (the child is killed), LcchatError when
    llama.cpp fails. The output appears only on success (plan.written is then set); the
    temporary file is removed whatever happens, Ctrl+C and closing this generator included."""
    from lcchat.engine.model import Cancelled

    total = len(plan.info.tensors)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{plan.output.name}.", suffix=".partial", dir=plan.output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    proc: subprocess.Popen | None = None
    lines: queue.SimpleQueue = queue.SimpleQueue()
    try:
        where = plan.output
        if plan.output.parent != plan.source.parent and in_installed_package(plan.source):
            where = f"{plan.output} (the source is inside an installed package, so the new file goes to lcchat's data dir)"
        yield Notice(f"quantizing {plan.source.name} ({plan.info.file_type_name}) to {plan.target}: about "
                     f"{human_bytes(plan.estimate)}, written to {where}")
        yield Progress("quantize", 0, total)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lcchat.engine.quant", str(plan.source), str(tmp), plan.ftype_constant,
             str(max(0, nthread)), "1" if plan.allow_requantize else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env=_child_env(),
        )
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), name="lcchat-quant-pump", daemon=True)
        reader.start()
        said: collections.deque[str] = collections.deque(maxlen=12)
        status = None
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("quantization was cancelled; nothing was written")
            try:
                line = lines.get(timeout=poll_s)
            except queue.Empty:
                continue
            if line is None:
                break
            kind, _, rest = line.partition(" ")
            if kind == "P":
                done, _, n = rest.partition(" ")
                yield Progress("quantize", int(done), int(n) or total)
            elif kind == "X":
                status = int(rest or 1)
            elif kind == "W":
                said.append(rest)
            elif line.strip():
                said.append(line.strip())
        code = proc.wait()
        if cancel is not None and cancel.is_set():
            raise Cancelled("quantization was cancelled; nothing was written")
        if code != 0 or status != 0:
            detail = next((s for s in reversed(said) if "error" in s.lower() or "fail" in s.lower()), said[-1] if said else "")
            detail = detail.rpartition("failed to quantize: ")[2] or detail
            why = f": {detail}" if detail else f" (the quantizer exited with status {code})"
            raise LcchatError(f"llama.cpp could not quantize {plan.source.name} to {plan.target}{why}")
        written = gguf_info.read_gguf(tmp, vocab=False)  # a file that does not read back is not kept
        try:
            os.chmod(tmp, plan.source.stat().st_mode & 0o777)  # mkstemp made it private
        except OSError:
            pass
        _move_into_place(tmp, plan.output, force=plan.force)
        plan.written = plan.output
        bpw = written.bits_per_weight or 0.0
        yield Notice(f"wrote {plan.output} ({human_bytes(written.file_size)}, {bpw:.2f} bits per weight; "
                     f"estimated {human_bytes(plan.estimate)})")
    finally:
        if proc is not None:
            _stop(proc)
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove %s", tmp, exc_info=True)


def _move_into_place(tmp: Path, out: Path, *, force: bool) -> None:
    if force:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # fails if `out` appeared meanwhile: never clobber without --force
    except FileExistsError:
        raise InputError(f"{out} appeared while quantizing; pass --force to replace it") from None
    except OSError:
        if out.exists():
            raise InputError(f"{out} already exists; pass --force to replace it") from None
        os.replace(tmp, out)
        return
    tmp.unlink()


def _child_env() -> dict[str, str]:
    """The child imports this same lcchat, installed or not."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _pump(stream, out: queue.SimpleQueue) -> None:
    try:
        for raw in iter(stream.readline, b""):
            out.put(raw.decode("utf-8", "replace").rstrip("\n"))
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
        log.warning("the quantizer (pid %s) did not exit", proc.pid)
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _child_main(argv: list[str]) -> int:
    """`python -m lcchat.engine.quant SRC TMP LLAMA_FTYPE_X NTHREAD ALLOW`: quantize, report
    "P done total" per tensor, "W line" for llama.cpp warnings/errors, "X status" at the end."""
    import ctypes

    src, tmp, ftype_name, nthread, allow = argv
    for name in ("lcchat", "lcchat.llama"):
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.CRITICAL + 1)
    out_lock = threading.Lock()

    def say(text: str) -> None:
        with out_lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def watch_parent() -> None:
        """The parent keeps our stdin open; EOF means it is gone or gave up: clean up, leave."""
        try:
            while os.read(0, 4096):  # raw reads: no buffer lock to trip over at exit
                pass
        except OSError:
            pass
        try:
            os.unlink(tmp)
        except OSError:
            pass
        os._exit(3)

    threading.Thread(target=watch_parent, daemon=True).start()
    from lcchat.engine.model import llama_log, load_llama_cpp

    llama_cpp = load_llama_cpp()

    def on_line(level: int, line: str) -> None:
        match = _TENSOR_LINE.match(line)
        if match:
            say(f"P {match.group(1)} {match.group(2)}")
        if level >= logging.WARNING:  # an error can end a tensor's line: "[ 3/21] ... failed to quantize: ..."
            say("W " + line.replace("\n", " "))

    llama_log.listeners.append(on_line)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = int(nthread)
    params.allow_requantize = allow == "1"
    status = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(tmp), ctypes.byref(params))
    say(f"X {int(status)}")
    return 0 if status == 0 else 1


def _child_exit(argv: list[str]) -> None:
    """Run the child and leave at once: a normal interpreter shutdown would wait on the
    watcher thread blocked reading stdin."""
    try:
        code = _child_main(argv)
    except BaseException:  # noqa: BLE001 - report, then leave
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---------------------------------------------------------------- switching the model


def _reload(session, path: Path, settings: ModelSettings, *, what: str, keep_formatter: bool,
            success: Callable[[], str]) -> Iterator[Event]:
    """Load `path` with `settings` (engine/loading.py, as a session opens its model), then
    hand it to the session, which keeps the conversation and evaluates it again. The old
    model stays in use if loading fails or is cancelled. Ends with Done: "stop",
    "interrupted" (the load, or the re-evaluation of the history, was stopped) or "error"."""
    from lcchat.engine import loading
    from lcchat.engine.model import Cancelled

    cancel = session.loop.cancel_event
    cancel.clear()
    old_name = Path(str(session.model.path)).name
    loaded = None
    try:
        for item in loading.steps(session.profile, settings, path=path, cancel=cancel,
                                  formatter=session.formatter if keep_formatter else None):
            if isinstance(item, loading.Loaded):
                loaded = item
            else:
                yield item
    except Cancelled:
        yield Notice(f"{what} was cancelled; still using {old_name}", "warning")
        yield Done("interrupted", "")
        return
    except LcchatError as exc:
        yield Error(f"{what} failed: {exc}; still using {old_name}", exc.exit_code)
        yield Done("error", "")
        return
    assert loaded is not None
    model = loaded.model
    switched = False
    for event in session.switch_model(model, loaded.formatter, loaded.settings):
        if isinstance(event, Error):
            if session.model is not model:
                model.close()
            yield event
            yield Done("error", "")
            return
        if not switched and session.model is model:
            switched = True
            yield Notice(success())
        yield event
    if not switched and session.model is model:
        yield Notice(success())
    yield Done("interrupted" if cancel.is_set() or session.loop.cancel_event.is_set() else "stop", "")


def switch_variant(session, variant: Variant) -> Iterator[Event]:
    """Reload the session on another quantization of its model, keeping the conversation."""
    settings = dataclasses.replace(session.model_settings, path=str(variant.path))
    yield Notice(f"switching to {variant.path.name} ({variant.type_name}, {human_bytes(variant.size)})")
    yield from _reload(session, variant.path, settings, what="switching", keep_formatter=False,
                       success=lambda: f"now using {variant.path.name}; the conversation is kept")


def switch_kv(session, type_k: str, type_v: str) -> Iterator[Event]:
    """Reload the context with another KV cache type (the weights come back from the page
    cache), keeping the conversation. A quantized V cache turns flash attention on."""
    for name in (type_k, type_v):
        if name not in KV_CACHE_TYPES:
            yield Error(f"unknown KV cache type {name!r}; choose one of {', '.join(KV_CACHE_TYPES)}", 2)
            yield Done("error", "")
            return
    current = session.model_settings
    settings = dataclasses.replace(current, cache_type_k=type_k, cache_type_v=type_v)
    if _quantized_kv(type_v) and not settings.flash_attn:
        settings.flash_attn = True
        yield Notice(f"flash attention turned on: llama.cpp quantizes the V cache ({type_v}) only with it")
    path = Path(str(session.model.path))
    info = session.model.info or gguf_info.load_checked(path, vocab=False)
    n_ctx = int(session.model.n_ctx or current.n_ctx or info.context_length or 0)
    before = kv_cache_bytes(info, n_ctx, current.cache_type_k, current.cache_type_v)
    after = kv_cache_bytes(info, n_ctx, type_k, type_v)
    saved = before - after
    change = f"saves {human_bytes(saved)}" if saved > 0 else f"costs {human_bytes(-saved)} more" if saved < 0 else "same size"
    yield from _reload(session, path, settings, what="changing the KV cache", keep_formatter=True,
                       success=lambda: f"KV cache is now {type_k}/{type_v}: {human_bytes(after)} instead of "
                                       f"{human_bytes(before)} at n_ctx {n_ctx} ({change}); the conversation is kept")


if __name__ == "__main__":  # the child process of run_quantize
    _child_exit(sys.argv[1:])
