"""RoPE resolution: NTK arithmetic, auto alpha, the fallback freq_scale, the context warning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lcchat.config.loader import load_profile
from lcchat.config.schema import RopeSettings
from lcchat.engine import gguf_info, rope
from tests import models

# base' = base * alpha ** (d / (d - 2)), worked by hand:
#   10000 * 2 ** (128/126) = 10000 * 2 * e^(ln 2 / 63)  = 10000 * 2.02212617 = 20221.2617
#   1e6   * 8 ** (128/126) = 1e6 * 8 * e^(ln 8 / 63)   = 1e6 * 8.26846226   = 8268462.26
#   10000 * 8 ** (16/14)   = 10000 * 8 * e^(ln 8 / 7)  = 10000 * 10.7672015 = 107672.015
#   5e7   * 2 ** (128/126)                              = 5e7 * 2.02212617   = 101106308.4


@pytest.mark.parametrize("base, alpha, dim, expected", [
    (10000.0, 2.0, 128, 20221.2617),
    (1e6, 8.0, 128, 8268462.26),
    (10000.0, 8.0, 16, 107672.015),
    (5e7, 2.0, 128, 101106308.4),
    (10000.0, 1.0, 128, 10000.0),
])
def test_ntk_base_matches_hand_computed_values(base, alpha, dim, expected) -> None:
    assert rope.ntk_base(base, alpha, dim) == pytest.approx(expected, rel=1e-8)


def test_ntk_base_needs_a_rope_dimension_above_two() -> None:
    with pytest.raises(ValueError):
        rope.ntk_base(10000.0, 2.0, 2)


def test_auto_alpha_is_target_over_training_context() -> None:
    assert rope.auto_alpha(65536, 32768) == 2.0
    assert rope.auto_alpha(200_000, 32768) == pytest.approx(6.1035156)
    assert rope.auto_alpha(4096, 32768) == 1.0  # it already fits
    assert rope.auto_alpha(4096, 0) == 1.0  # unknown training context


def resolve(settings: RopeSettings, **kw) -> rope.ResolvedRope:
    args = dict(n_ctx=4096, train_ctx=4096, model_base=10000.0, rope_dim=128)
    return rope.resolve(settings, **{**args, **kw})


def test_ntk_with_an_alpha_raises_the_base_and_turns_other_scaling_off() -> None:
    out = resolve(RopeSettings(scaling="ntk", ntk_alpha=2.0), model_base=1e6)
    assert out.freq_base == pytest.approx(2022126.17, rel=1e-8)
    assert (out.scaling_type, out.freq_scale) == (rope.SCALING_TYPES["none"], 1.0)
    assert "alpha 2" in out.description and "2.02213e+06" in out.description
    assert out.warnings == []


def test_ntk_auto_alpha_from_n_ctx_against_training_context() -> None:
    out = resolve(RopeSettings(scaling="ntk"), n_ctx=65536, train_ctx=32768, model_base=5e7)
    assert out.freq_base == pytest.approx(101106308.4, rel=1e-8)
    assert "alpha 2 from 65536/32768 tokens" in out.description
    assert out.warnings == []


def test_ntk_target_context_wins_over_n_ctx() -> None:
    out = resolve(RopeSettings(scaling="ntk", ntk_target_ctx=131072), n_ctx=4096, train_ctx=32768, model_base=1e6)
    assert out.freq_base == pytest.approx(1e6 * 4 ** (128 / 126))


def test_ntk_within_the_training_context_changes_nothing() -> None:
    out = resolve(RopeSettings(scaling="ntk"), n_ctx=4096, train_ctx=32768, model_base=1e6)
    assert out.freq_base == 1e6 and out.warnings == []


def test_ntk_that_does_not_reach_n_ctx_still_warns() -> None:
    out = resolve(RopeSettings(scaling="ntk", ntk_target_ctx=32768), n_ctx=65536, train_ctx=32768, model_base=1e6)
    assert out.freq_base == 1e6
    assert any("beyond the model's training context" in w for w in out.warnings)


def test_ntk_starts_from_the_profile_base_when_given() -> None:
    out = resolve(RopeSettings(scaling="ntk", ntk_alpha=2.0, freq_base=10000.0), model_base=1e6)
    assert out.freq_base == pytest.approx(20221.2617, rel=1e-8)


# ---------------------------------------------------------------- freq_scale "when the GGUF doesn't carry it"

SIXTEEN_K = RopeSettings(scaling="auto", freq_scale=0.25)


@pytest.mark.parametrize("kind, factor", [(None, None), ("none", None), ("linear", 1.0), (None, 0.0)])
def test_fallback_scale_applies_to_a_gguf_without_scaling(kind, factor) -> None:
    out = resolve(SIXTEEN_K, n_ctx=16384, model_scaling=kind, model_factor=factor)
    assert (out.scaling_type, out.freq_scale) == (rope.SCALING_TYPES["linear"], 0.25)
    assert "the GGUF carries no RoPE scaling" in out.description
    assert out.warnings == []


def test_a_gguf_that_carries_the_same_scaling_keeps_its_own_quietly() -> None:
    out = resolve(SIXTEEN_K, n_ctx=16384, model_scaling="linear", model_factor=4.0)
    assert (out.scaling_type, out.freq_scale) == (rope.SCALING_TYPES["auto"], 0.0)  # 0: llama.cpp uses the GGUF's
    assert "linear x4 from the GGUF" in out.description
    assert out.warnings == []


def test_a_gguf_that_carries_other_scaling_keeps_it_and_says_so() -> None:
    out = resolve(SIXTEEN_K, n_ctx=16384, model_scaling="linear", model_factor=2.0)
    assert (out.scaling_type, out.freq_scale) == (rope.SCALING_TYPES["auto"], 0.0)
    assert len(out.warnings) == 1 and "not applied" in out.warnings[0] and "--rope-scaling linear" in out.warnings[0]


def test_a_gguf_with_yarn_or_a_named_type_keeps_it() -> None:
    for kind, factor in (("yarn", 4.0), ("linear", None)):
        out = resolve(SIXTEEN_K, n_ctx=16384, model_scaling=kind, model_factor=factor)
        assert out.scaling_type == rope.SCALING_TYPES["auto"] and out.freq_scale == 0.0


def test_explicit_linear_forces_the_scale_over_the_gguf() -> None:
    out = resolve(RopeSettings(scaling="linear", freq_scale=0.25), n_ctx=16384, model_scaling="linear", model_factor=2.0)
    assert (out.scaling_type, out.freq_scale) == (rope.SCALING_TYPES["linear"], 0.25)
    assert out.warnings == []


def test_beyond_the_training_context_without_scaling_warns() -> None:
    out = resolve(RopeSettings(), n_ctx=8192, train_ctx=4096)
    assert out.warnings and "n_ctx 8192 is beyond the model's training context 4096" in out.warnings[0]
    assert resolve(RopeSettings(), n_ctx=8192, train_ctx=4096, model_scaling="linear", model_factor=2.0).warnings == []
    assert resolve(RopeSettings(scaling="linear"), n_ctx=8192, train_ctx=4096).warnings  # linear with no scale


def test_model_scaling_reads_the_old_scale_linear_key(tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "old16k.gguf", metadata={"llama.rope.scale_linear": 4.0})
    info = gguf_info.read_gguf(path, vocab=False)
    assert rope.model_scaling(info) == (None, 4.0)
    out = rope.resolve_for(load_profile("chinese-alpaca-2-16k").rope, info, n_ctx=16384)
    assert out.scaling_type == rope.SCALING_TYPES["auto"] and out.freq_scale == 0.0


def test_resolve_for_reads_the_gguf(tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "m.gguf", n_ctx_train=1024)
    info = gguf_info.read_gguf(path, vocab=False)
    out = rope.resolve_for(RopeSettings(scaling="ntk"), info, n_ctx=4096)
    assert out.freq_base == pytest.approx(10000 * 4 ** (16 / 14))  # rope dim 64/4 = 16


# ---------------------------------------------------------------- lcchat profiles show


def lcchat(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "lcchat"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lcchat"]
    return subprocess.run([*command, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def test_profiles_show_prints_the_seed_profiles() -> None:
    r = lcchat("profiles", "show", "internlm2")
    assert r.returncode == 0, r.stderr
    assert 'scaling = "ntk"' in r.stdout and "top_k = 5" in r.stdout and "n_gpu_layers = -1" in r.stdout
    assert "not downloaded yet; download it with: lcchat pull internlm2" in r.stdout
    r = lcchat("profiles", "show", "chinese-alpaca-2-16k")
    assert r.returncode == 0 and "freq_scale = 0.25" in r.stdout and "n_ctx = 16384" in r.stdout
    r = lcchat("profiles", "list")
    for name in ("internlm2", "internlm2_5", "baichuan2", "chinese-alpaca-2", "chinese-alpaca-2-16k",
                 "yi-34b-chat", "qwen2", "llama3", "mistral"):
        assert name in r.stdout
    assert "broken" not in r.stdout


def test_auto_alpha_follows_hf_dynamic_ntk_with_a_factor() -> None:
    """alpha = factor * L / max_pos - (factor - 1), as HF's dynamic NTK (issue 15 item 6)."""
    assert rope.auto_alpha(65536, 32768, 2.0) == 3.0
    assert rope.auto_alpha(200_000, 32768, 2.0) == pytest.approx(2 * 200_000 / 32768 - 1)
    assert rope.auto_alpha(32768, 32768, 2.0) == 1.0  # they agree up to the training context
    assert rope.auto_alpha(65536, 32768) == rope.auto_alpha(65536, 32768, 1.0) == 2.0


def test_internlm2_profiles_carry_the_factor_of_their_config() -> None:
    from lcchat.config.loader import load_profile

    for name in ("internlm2", "internlm2_5"):
        settings = load_profile(name).rope
        assert (settings.scaling, settings.ntk_factor) == ("ntk", 2.0)
        out = resolve(settings, n_ctx=131072, train_ctx=32768, model_base=1e6)
        assert "alpha 7 from 131072/32768 tokens, factor 2" in out.description
