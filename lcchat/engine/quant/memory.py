"""Whether a model will fit, before loading it.

The estimate is weights (the tensor bytes; with n_gpu_layers > 0 split by layer between
RAM and VRAM as llama.cpp offloads them: the last layers first, the output layer once
every block is offloaded) + KV cache (n_layer x n_ctx x (n_embd_k_gqa + n_embd_v_gqa) x
bytes per element of the cache type) + a runtime allowance (vocabulary tables, output
buffer, the compute of a short prompt). The compute buffer llama.cpp reserves for a full
batch is only touched while a long prompt is read, so it is shown as the peak on top.
Calibrated on SmolLM2-135M, where the total is within a few percent of the resident
memory after loading and one short reply.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import gguf

from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info
from lcchat.engine.monitor import human_bytes
from lcchat.engine.quant.table import MiB

log = logging.getLogger("lcchat.quant")

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
    heads_kv = _per_layer(info.head_count_kv, n_layer)
    dim_k, dim_v = info.head_dims
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
                    "a lower n_gpu_layers or a smaller quantization would fit")
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
        """What would fit, as settings (the same in every front-end; each one says how to
        change them: /quant in a chat, flags or the profile in pipe mode)."""
        tips = ["a smaller quantization", "a smaller n_ctx"]
        if self.cache_type_k == "f16" or self.cache_type_v == "f16":
            q8 = self.kv_by_type.get("q8_0")
            tips.append(f"a q8_0 KV cache ({human_bytes(q8)} instead of {human_bytes(self.kv_total)})"
                        if q8 else "a q8_0 KV cache")
        return ", ".join(tips[:-1]) + " or " + tips[-1] + " would need less"


def _gpu_offload_supported() -> bool:
    try:
        from lcchat.engine.model import load_llama_cpp

        return bool(load_llama_cpp().llama_supports_gpu_offload())
    except Exception:  # noqa: BLE001 - no llama.cpp, no GPU
        return False


def available_ram_now() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001
        return None


def available_vram_now() -> int | None:
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
    ram = available_ram_now() if available_ram == -1 else available_ram
    vram = (available_vram_now() if offloaded else None) if available_vram == -1 else available_vram
    if quantized_kv(v) and not settings.flash_attn:
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


def quantized_kv(type_name: str) -> bool:
    return type_name.lower() not in ("f32", "f16", "bf16")


def fit_warning(info: gguf_info.GGUFInfo, settings: ModelSettings) -> str | None:
    """One line to show before loading a model that will not (or may not) fit; None when
    it fits or nothing is known. Cheap: a header already read and one psutil call."""
    try:
        return estimate_memory(info, settings).warning()
    except Exception:  # an estimate must never stop a load
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


def _flash_attn_on(settings: ModelSettings) -> bool:
    """Whether llama.cpp will run flash attention (engine/model.py's flash_attn_type:
    "auto" is off on the CPU alone unless a quantized V cache needs it)."""
    if settings.flash_attn == "auto":
        return settings.n_gpu_layers != 0 or quantized_kv(settings.cache_type_v)
    return bool(settings.flash_attn)


def kv_cache_problem(settings: ModelSettings, info: gguf_info.GGUFInfo | None = None) -> str | None:
    """A KV cache type llama.cpp cannot use, said up front (llama.cpp's own refusal reads
    as a failed context, "too little memory?"): a quantized V cache without flash attention;
    and, given the model, a quantized type whose block (32 values) does not divide the
    attention heads' size. llama.cpp refuses that one with flash attention on; with it off
    it runs, but the heads' views then cut through quantized blocks and attention reads
    garbage, so it is refused either way."""
    if quantized_kv(settings.cache_type_v) and not settings.flash_attn:
        return (f"cache_type_v = {settings.cache_type_v!r} needs flash attention, which flash_attn = false turns off "
                "(llama.cpp quantizes the V cache only with it); set flash_attn = \"auto\" or true, or keep cache_type_v = 'f16'")
    if info is None or info.architecture in gguf_info.ATTENTION_FREE_ARCHS:
        return None
    dim_k, dim_v = info.head_dims
    swa_k = _arch_int(info, gguf.Keys.Attention.KEY_LENGTH_SWA) or 0
    swa_v = _arch_int(info, gguf.Keys.Attention.VALUE_LENGTH_SWA) or 0
    for which, flag, type_name, dims in (("K", "-ctk", settings.cache_type_k, (dim_k, swa_k)),
                                         ("V", "-ctv", settings.cache_type_v, (dim_v, swa_v))):
        block = kv_block_size(type_name)
        bad = next((d for d in dims if d and d % block), 0)
        if bad:
            return (f"cache_type_{which.lower()} = {type_name!r} ({flag}) does not fit {info.path.name}: its attention "
                    f"heads hold {bad} values and {type_name} packs {block} per block, so llama.cpp cannot store "
                    f"them; use f16, bf16 or f32 for the {which} cache of this model")
    return None


def kv_block_size(type_name: str) -> int:
    """Values per block of a KV cache type: 1 for f32/f16/bf16, 32 for the quantized ones."""
    return gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[type_name.upper()]][0]
