"""Quantizations: what a file is, its siblings, making a new one, whether it will fit, and
switching the loaded model to another one.

Everything here except making a quantization and switching works from the GGUF header
(gguf_info), so `/quant` and `lcchat quant MODEL` answer without loading the model. One
module per concern:

- `table`: llama.cpp's types, their sizes, bits per weight and a quality order;
- `classify`: what a file is (its file type, tensor types, the table scaled to it);
- `variants`: the other quantizations beside a file, and where a new one goes;
- `memory`: the memory a model will need, and why a setting cannot work here;
- `report`: everything /quant shows, gathered (the text: commands/quant_report.py);
- `make`: checking and running a quantization; `child`: the process that runs it;
- `switch`: another quantization or KV cache type mid-conversation (engine/loading.py).

The names below are the package's interface: callers write `quant.plan_quantize(...)`.
"""

from lcchat.engine.quant.classify import (
    GuideRow,
    estimate_output_size,
    file_type_label,
    guide,
    is_quantized,
    type_histogram,
)
from lcchat.engine.quant.make import QuantPlan, plan_quantize, run_quantize
from lcchat.engine.quant.memory import (
    MemoryEstimate,
    context_problem,
    estimate_memory,
    fit_warning,
    kv_cache_bytes,
    kv_cache_problem,
)
from lcchat.engine.quant.report import Report, inspect
from lcchat.engine.quant.switch import switch_kv, switch_variant
from lcchat.engine.quant.table import (
    NEEDS_IMATRIX,
    TABLE,
    QuantType,
    canonical_type,
    normalize_type,
    quality_key,
    target_types,
    type_bpw,
)
from lcchat.engine.quant.variants import Variant, default_output, find_variants, pick_variant, split_tag

__all__ = [
    "GuideRow", "MemoryEstimate", "NEEDS_IMATRIX", "QuantPlan", "QuantType", "Report", "TABLE", "Variant",
    "canonical_type", "context_problem", "default_output", "estimate_memory", "estimate_output_size",
    "file_type_label", "find_variants", "fit_warning", "guide", "inspect", "is_quantized", "kv_cache_bytes",
    "kv_cache_problem", "normalize_type", "pick_variant", "plan_quantize", "quality_key", "run_quantize",
    "split_tag", "switch_kv", "switch_variant", "target_types", "type_bpw", "type_histogram",
]
