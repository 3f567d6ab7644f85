"""RoPE settings: turn a profile's [rope] table into llama.cpp context parameters.

llama.cpp has linear and YaRN scaling but no dynamic NTK, which InternLM2's long-context
extrapolation relies on. `ntk` computes an NTK-aware base once, at load time:

    base' = base * alpha ** (d / (d - 2))        d = the rope dimension

with alpha from the profile, or from the context wanted against the training context
(alpha = target / train, the dynamic-NTK rule at its largest length).
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


def auto_alpha(target_ctx: int, train_ctx: int) -> float:
    """The NTK alpha that stretches `train_ctx` to `target_ctx` (1.0 when it already fits)."""
    if train_ctx <= 0 or target_ctx <= train_ctx:
        return 1.0
    return target_ctx / train_ctx


def resolve(rope: RopeSettings, *, n_ctx: int, train_ctx: int, model_base: float, rope_dim: int,
            model_scaling: str | None = None) -> ResolvedRope:
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
    if rope.scaling == "ntk":
        alpha = rope.ntk_alpha or auto_alpha(rope.ntk_target_ctx or n_ctx, train_ctx)
        base = rope.freq_base or model_base or 10000.0
        out.scaling_type = SCALING_TYPES["none"]
        out.freq_base = ntk_base(base, alpha, rope_dim) if alpha > 1.0 else base
        out.freq_scale = 1.0
        out.description = f"ntk: alpha {alpha:g}, base {base:g} -> {out.freq_base:.6g} (rope dim {rope_dim})"
    else:
        out.scaling_type = SCALING_TYPES[rope.scaling]
        parts = [rope.scaling if rope.scaling != "auto" else f"auto ({model_scaling or 'none'} in the GGUF)"]
        if rope.freq_base:
            parts.append(f"base {rope.freq_base:g}")
        if rope.freq_scale:
            parts.append(f"scale {rope.freq_scale:g}")
        out.description = ", ".join(parts)
    stretched = rope.scaling in ("linear", "yarn", "ntk") or (rope.freq_scale and rope.freq_scale < 1.0) \
        or (rope.scaling == "auto" and model_scaling not in (None, "", "none"))
    if train_ctx and n_ctx > train_ctx and not stretched and not rope.freq_base:
        out.warnings.append(
            f"n_ctx {n_ctx} is beyond the model's training context {train_ctx} and no RoPE scaling is set; "
            "replies past that point will degrade (set [rope] scaling)"
        )
    return out
