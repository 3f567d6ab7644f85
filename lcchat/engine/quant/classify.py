"""What a GGUF file is, from its header: its file type, whether its weights are
quantized, its tensor types, and the table scaled to its parameter count (a guide: small
models, whose embeddings weigh more, land further from it)."""

from __future__ import annotations

import collections
from dataclasses import dataclass

import gguf

from lcchat.engine import gguf_info
from lcchat.engine.quant.table import TABLE, UNQUANTIZED, type_bpw

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
