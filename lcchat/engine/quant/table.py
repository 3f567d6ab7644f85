"""llama.cpp's quantization types: its size table, the names of the file types it can
make, bits per weight, and a quality order.

llama.cpp's quantize table gives each type's size for LLaMA-7B (6.74B parameters); the
sizes are GiB, which is why Q4_0's 3.56G works out at 4.54 bits per weight (4.5 for the
blocks plus a Q6_K output tensor). The F16 and F32 rows are rounded, so their bits per
weight are the exact 16 and 32.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf

from lcchat.errors import InputError

GiB = 2**30
MiB = 2**20
REFERENCE_PARAMS = 6.74e9  # LLaMA-v1-7B, the model llama.cpp's table was measured on
UNQUANTIZED = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})



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


def llama_ftype_name(type_name: str) -> str:
    """The llama_cpp constant for a file type: "Q4_K_M" -> "LLAMA_FTYPE_MOSTLY_Q4_K_M"."""
    for member in gguf.LlamaFileType:
        if member.name.removeprefix("MOSTLY_").removeprefix("ALL_") == type_name:
            return "LLAMA_FTYPE_" + member.name
    raise InputError(f"unknown quantization type {type_name!r}")


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
