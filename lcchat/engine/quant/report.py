"""Everything `/quant` and `lcchat quant MODEL` show, gathered from the header alone (the
text is the front-end's: commands/quant_report.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info
from lcchat.engine.quant.memory import MemoryEstimate, estimate_memory
from lcchat.engine.quant.variants import Variant, find_variants

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
