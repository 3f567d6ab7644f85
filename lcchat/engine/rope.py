"""RoPE settings: turn a profile's [rope] table into llama.cpp context parameters.

llama.cpp has linear and YaRN scaling but no dynamic NTK, which InternLM2's long-context
extrapolation relies on. `ntk` computes an NTK-aware base once, at load time:

    base' = base * alpha ** (d / (d - 2))        d = the rope dimension

with alpha from the profile, or from the context wanted against the training context by
HF's dynamic-NTK rule at its largest length, with the model's scaling factor (ntk_factor):

    alpha = factor * target / train - (factor - 1)      (1 within the training context)

`scaling = "auto"` keeps what the GGUF says. A freq_scale given with "auto" is a fallback
for files that carry no RoPE scaling of their own: such a file gets linear scaling with
that scale, while a file that carries scaling keeps its own (profiles for long-context
fine-tunes such as Chinese-Alpaca-2-16K rely on this, because older conversions lost the
factor). `scaling = "linear"` with a freq_scale always applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lcchat.config.schema import RopeSettings

# llama.cpp's enum llama_rope_scaling_type
SCALING_TYPES = {"auto": -1, "none": 0, "linear": 1, "yarn": 2}


@dataclass
class ResolvedRope:
    scaling_type: int = -1
    freq_base: float = 0.0  # 0: the model's own
    freq_scale: float = 0.0
    yarn_ext_factor: float = -1.0
    yarn_attn_factor: float = 1.0
    yarn_beta_fast: float = 32.0
    yarn_beta_slow: float = 1.0
    yarn_orig_ctx: int = 0
    description: str = "as the model says"
    warnings: list[str] = field(default_factory=list)


def ntk_base(base: float, alpha: float, dim: int) -> float:
    """The NTK-aware RoPE base for a context stretched by `alpha`."""
    if dim <= 2:
        raise ValueError("the rope dimension must be greater than 2")
    return base * alpha ** (dim / (dim - 2))


def auto_alpha(target_ctx: int, train_ctx: int, factor: float = 1.0) -> float:
    """The NTK alpha that stretches `train_ctx` to `target_ctx` (1.0 when it already fits),
    as HF's DynamicNTKScalingRotaryEmbedding computes it for a sequence of target_ctx
    tokens: factor * target / train - (factor - 1)."""
    if train_ctx <= 0 or target_ctx <= train_ctx:
        return 1.0
    return factor * target_ctx / train_ctx - (factor - 1.0)


def carried_scaling(model_scaling: str | None, model_factor: float | None) -> str | None:
    """How the GGUF itself scales RoPE ("linear x4", "yarn"), or None when it does not.

    `model_factor` None means unknown: a named linear/yarn type then counts as carried.
    A factor of 0 or 1 is no scaling, as llama.cpp reads it."""
    kind = model_scaling or ""
    if kind == "none":
        return None
    if model_factor is not None and model_factor not in (0.0, 1.0):
        return f"{kind or 'linear'} x{model_factor:g}"
    if kind in ("yarn", "longrope") or (kind == "linear" and model_factor is None):
        return kind
    return None


def model_scaling(info) -> tuple[str | None, float | None]:
    """A GGUFInfo's RoPE scaling type and factor; the factor also from the old
    `{arch}.rope.scale_linear` key that llama.cpp still reads."""
    factor = info.rope_scaling_factor
    if factor is None and info.architecture:
        old = info.metadata.get(f"{info.architecture}.rope.scale_linear")
        factor = float(old) if isinstance(old, (int, float)) and not isinstance(old, bool) else None
    return info.rope_scaling_type, factor


def resolve_for(rope: RopeSettings, info, *, n_ctx: int) -> ResolvedRope:
    """resolve() with the hyperparameters read from a GGUFInfo (n_ctx 0: the training context)."""
    kind, factor = model_scaling(info)
    train = int(info.context_length or 0)
    return resolve(rope, n_ctx=n_ctx or train, train_ctx=train,
                   model_base=float(info.rope_freq_base or 10000.0),
                   rope_dim=int(info.rope_dimension_count or 128), model_scaling=kind, model_factor=factor)


def resolve(rope: RopeSettings, *, n_ctx: int, train_ctx: int, model_base: float, rope_dim: int,
            model_scaling: str | None = None, model_factor: float | None = None) -> ResolvedRope:
    """Context parameters for the profile's RoPE settings on a model with these hyperparameters."""
    out = ResolvedRope(
        freq_base=rope.freq_base,
        freq_scale=rope.freq_scale,
        yarn_ext_factor=rope.yarn_ext_factor,
        yarn_attn_factor=rope.yarn_attn_factor,
        yarn_beta_fast=rope.yarn_beta_fast,
        yarn_beta_slow=rope.yarn_beta_slow,
        yarn_orig_ctx=rope.yarn_orig_ctx,
    )
    carried = carried_scaling(model_scaling, model_factor)
    base = rope.freq_base or model_base or 10000.0
    base_note = f"base {base:g}" + ("" if rope.freq_base else " (the model's)")
    stretched = False
    if rope.scaling == "ntk":
        alpha = rope.ntk_alpha or auto_alpha(rope.ntk_target_ctx or n_ctx, train_ctx, rope.ntk_factor or 1.0)
        out.scaling_type = SCALING_TYPES["none"]
        out.freq_base = ntk_base(base, alpha, rope_dim) if alpha > 1.0 else base
        out.freq_scale = 1.0
        stretched = alpha > 1.0
        source = "" if rope.ntk_alpha else f" from {rope.ntk_target_ctx or n_ctx}/{train_ctx or '?'} tokens"
        if not rope.ntk_alpha and (rope.ntk_factor or 1.0) != 1.0:
            source += f", factor {rope.ntk_factor:g}"
        out.description = (f"ntk: alpha {alpha:g}{source}, base {base:g} -> {out.freq_base:.6g} "
                           f"(rope dim {rope_dim}), scale 1")
        if carried:
            out.description += f"; replaces the GGUF's {carried} scaling"
    elif rope.scaling == "auto" and rope.freq_scale and carried:
        # The GGUF carries its own scaling: it wins over the profile's fallback scale.
        out.scaling_type = SCALING_TYPES["auto"]
        out.freq_scale = 0.0
        stretched = True
        out.description = f"auto: {carried} from the GGUF, {base_note}"
        if model_factor and abs(1.0 / model_factor - rope.freq_scale) > 1e-6:
            out.warnings.append(
                f"rope.freq_scale {rope.freq_scale:g} is not applied because the GGUF carries its own RoPE "
                f"scaling ({carried}, i.e. freq_scale {1.0 / model_factor:g}); set rope.scaling = \"linear\" "
                "(--rope-scaling linear) to force it"
            )
    elif rope.scaling == "auto" and rope.freq_scale:
        out.scaling_type = SCALING_TYPES["linear"]
        stretched = rope.freq_scale < 1.0
        out.description = f"linear, scale {rope.freq_scale:g} (the GGUF carries no RoPE scaling), {base_note}"
    else:
        out.scaling_type = SCALING_TYPES[rope.scaling]
        if rope.scaling == "auto":
            mode = f"auto ({carried or model_scaling or 'none'} in the GGUF)"
            stretched = carried is not None
        else:
            mode = rope.scaling
            stretched = rope.scaling in ("linear", "yarn") and (rope.scaling == "yarn" or carried is not None
                                                                or (0 < rope.freq_scale < 1.0))
        parts = [mode, base_note]
        if rope.freq_scale:
            parts.append(f"scale {rope.freq_scale:g}")
        out.description = ", ".join(parts)
    if train_ctx and n_ctx > train_ctx and not stretched and not rope.freq_base:
        out.warnings.append(
            f"n_ctx {n_ctx} is beyond the model's training context {train_ctx} and no RoPE scaling is set; "
            "replies past that point will degrade (set [rope] scaling)"
        )
    return out
