"""Will it fit: the estimate against the formula, llama.cpp's own figures and real RSS."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lcchat.commands.quant_report import memory_rows
from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info, quant
from lcchat.engine.model import Model, llama_log
from tests.quant.conftest import chat_profile

MiB = 2**20


def test_kv_cache_follows_the_formula(f32_model: Path) -> None:
    info = gguf_info.read_gguf(f32_model, vocab=False)
    head_dim, n_head_kv, n_layer = 128 // 4, 2, 2
    per_token = n_layer * (2 * head_dim * n_head_kv)
    assert quant.kv_cache_bytes(info, 1000, "f16", "f16") == 1000 * per_token * 2
    assert quant.kv_cache_bytes(info, 1000, "f32", "f32") == 1000 * per_token * 4
    assert quant.kv_cache_bytes(info, 1024, "q8_0", "q8_0") == 1024 * per_token * 34 // 32
    assert quant.kv_cache_bytes(info, 1024, "q4_0", "f16") == 1024 * per_token // 2 * (18 / 32 + 2)


def test_kv_cache_matches_llama_cpp(f32_model: Path) -> None:
    lines: list[str] = []
    llama_log.listeners.append(lambda level, line: lines.append(line))
    try:
        settings = ModelSettings(n_ctx=512, n_threads=1, cache_type_k="q8_0", cache_type_v="f16")
        model = Model(f32_model, settings, chat_profile(f32_model).rope)
        model.close()
    finally:
        llama_log.listeners.pop()
    found = [float(m.group(1)) for line in lines if (m := re.search(r"KV buffer size =\s*([\d.]+) MiB", line))]
    assert found, "llama.cpp did not report its KV buffer"
    info = gguf_info.read_gguf(f32_model, vocab=False)
    assert quant.kv_cache_bytes(info, 512, "q8_0", "f16") / MiB == pytest.approx(sum(found), rel=0.01)


def test_gpu_layers_split_the_weights(f32_model: Path) -> None:
    info = gguf_info.read_gguf(f32_model, vocab=False)
    total = sum(t.nbytes for t in info.tensors)
    block1 = sum(t.nbytes for t in info.tensors if t.name.startswith("blk.1."))
    output = sum(t.nbytes for t in info.tensors if t.name.startswith("output"))
    one = quant.estimate_memory(info, ModelSettings(n_ctx=512, n_gpu_layers=1), gpu_supported=True,
                                available_ram=None, available_vram=None)
    assert (one.weights_vram, one.weights_ram) == (block1, total - block1)
    assert one.kv_vram == one.kv_ram == quant.kv_cache_bytes(info, 512) // 2
    every = quant.estimate_memory(info, ModelSettings(n_ctx=512, n_gpu_layers=-1), gpu_supported=True,
                                  available_ram=None, available_vram=None)
    assert every.weights_vram == total - sum(t.nbytes for t in info.tensors if t.name.startswith("token_embd"))
    assert every.weights_vram - block1 * 2 == output
    cpu_only = quant.estimate_memory(info, ModelSettings(n_ctx=512, n_gpu_layers=-1), gpu_supported=False,
                                     available_ram=None)
    assert cpu_only.weights_vram == 0 and "cannot offload" in cpu_only.notes[0]


def test_a_model_that_will_not_fit_is_announced(f32_model: Path, monkeypatch) -> None:
    info = gguf_info.read_gguf(f32_model, vocab=False)
    short = quant.estimate_memory(info, ModelSettings(n_ctx=4096), available_ram=MiB)
    warning = short.warning()
    assert warning and "will not fit" in warning and "available" in warning and "a q8_0 KV cache (" in warning
    assert "/quant" not in warning and "(-c)" not in warning  # facts: each front-end says how to change them
    assert dict(memory_rows(short))["fits?"].startswith("NO: ")
    roomy = quant.estimate_memory(info, ModelSettings(n_ctx=4096), available_ram=64 * 2**30)
    assert roomy.warning() is None
    tight = quant.estimate_memory(info, ModelSettings(n_ctx=4096), available_ram=roomy.ram + 1)
    assert "memory is tight" in (tight.warning() or "")

    monkeypatch.setattr(quant.memory, "available_ram_now", lambda: MiB)
    assert "will not fit" in (quant.fit_warning(info, chat_profile(f32_model).model) or "")
    monkeypatch.setattr(quant.memory, "available_ram_now", lambda: 64 * 2**30)
    assert quant.fit_warning(info, chat_profile(f32_model).model) is None


def test_quantized_v_cache_needs_flash_attention() -> None:
    assert "flash_attn" in (quant.kv_cache_problem(ModelSettings(cache_type_v="q8_0", flash_attn=False)) or "")
    assert quant.kv_cache_problem(ModelSettings(cache_type_v="q8_0", flash_attn=True)) is None
    assert quant.kv_cache_problem(ModelSettings(cache_type_v="q8_0")) is None  # "auto" turns it on in llama.cpp
    assert quant.kv_cache_problem(ModelSettings(cache_type_k="q4_0")) is None


def test_a_quantized_cache_must_fit_the_heads(tmp_path: Path, f32_model: Path) -> None:
    from tests import models

    narrow = gguf_info.read_gguf(models.write_tiny_model(tmp_path / "h16.gguf"), vocab=False)  # 64 / 4 heads
    assert narrow.head_dims == (16, 16)
    for settings in (ModelSettings(cache_type_k="q4_0"), ModelSettings(cache_type_k="q8_0", flash_attn=True)):
        assert "cache_type_k = " in (quant.kv_cache_problem(settings, narrow) or "")
    problem = quant.kv_cache_problem(ModelSettings(cache_type_v="iq4_nl"), narrow) or ""
    assert problem.startswith("cache_type_v = 'iq4_nl' (-ctv) does not fit h16.gguf") and "use f16" in problem
    assert quant.kv_cache_problem(ModelSettings(cache_type_k="bf16", cache_type_v="f32"), narrow) is None
    wide = gguf_info.read_gguf(f32_model, vocab=False)  # 128 / 4 heads: 32 values each
    assert quant.kv_cache_problem(ModelSettings(cache_type_k="q4_0", cache_type_v="q8_0"), wide) is None
    # attention.key_length is the head size where the GGUF says it (Gemma's 256 with n_embd 2304 / 8 heads)
    keyed = gguf_info.read_gguf(models.write_tiny_model(tmp_path / "k.gguf", metadata={
        "llama.attention.key_length": 48, "llama.attention.value_length": 64}), vocab=False)
    assert keyed.head_dims == (48, 64)
    assert "heads hold 48 values" in (quant.kv_cache_problem(ModelSettings(cache_type_k="q8_0"), keyed) or "")
    assert quant.kv_cache_problem(ModelSettings(cache_type_v="q8_0"), keyed) is None


def test_a_refused_context_with_a_quantized_cache_names_the_cache() -> None:
    from lcchat.engine.model import _context_failure

    said = _context_failure("m.gguf", 4096, ModelSettings(cache_type_k="q8_0", cache_type_v="q8_0"))
    assert "q8_0/q8_0 KV cache" in said and "-ctk f16 -ctv f16" in said
    assert "too little memory?" in _context_failure("m.gguf", 4096, ModelSettings())


def test_the_guide_scales_the_table(f32_model: Path) -> None:
    info = gguf_info.read_gguf(f32_model, vocab=False)
    rows = {r.name: r for r in quant.guide(info)}
    assert rows["Q4_0"].bpw == pytest.approx(3.56 * 2**30 * 8 / 6.74e9)
    assert rows["Q4_0"].size == int(rows["Q4_0"].bpw * info.n_params / 8)
    assert rows["F32"].current and not rows["Q4_0"].current
    assert rows["Q6_K"].ppl == -0.0008 and rows["F16"].ppl is None


MEASURE = r"""
import json, sys
import psutil
from lcchat.engine.model import load_llama_cpp
load_llama_cpp()  # the library itself is not the model's memory
from lcchat.config.loader import resolve_model_path
from lcchat.config.schema import Profile
from lcchat.engine import gguf_info, quant
from lcchat.engine.session import open_session
profile = Profile(name="measure")
profile.model.path = sys.argv[1]
profile.model.n_ctx = int(sys.argv[2])
profile.model.n_threads = 1
profile.model.use_mmap = True
profile.sampling.temperature = 0
profile.sampling.max_tokens = 8
estimate = quant.estimate_memory(gguf_info.read_gguf(sys.argv[1], vocab=False), profile.model)
process = psutil.Process()
before = process.memory_info().rss
session = open_session(profile)
for _ in session.send("Say hello."):
    pass
after = process.memory_info().rss
print(json.dumps({"estimate": estimate.ram, "growth": after - before}))
"""


@pytest.mark.smollm2
@pytest.mark.parametrize("n_ctx", [4096])
def test_smollm2_estimate_within_20_percent_of_rss(smollm2: Path, n_ctx: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    done = subprocess.run([sys.executable, "-c", MEASURE, str(smollm2), str(n_ctx)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    estimate, growth = figures["estimate"], figures["growth"]
    assert abs(estimate - growth) <= 0.2 * growth, f"estimate {estimate / MiB:.1f} MiB, RSS grew {growth / MiB:.1f} MiB"


def test_open_session_warns_before_a_load_that_will_not_fit(f32_model: Path, monkeypatch) -> None:
    """Weights larger than the memory available are a warning (they are memory-mapped, so
    they can be paged); only a KV cache that cannot fit is refused (test_resource_bounds)."""
    from lcchat.engine.session import open_session

    profile = chat_profile(f32_model)
    estimate = quant.estimate_memory(gguf_info.load_checked(f32_model), profile.model, available_ram=None)
    monkeypatch.setattr(quant.memory, "available_ram_now", lambda: estimate.kv_ram + estimate.runtime + MiB)
    assert estimate.ram > estimate.kv_ram + estimate.runtime + MiB
    session = open_session(profile)
    try:
        assert any("will not fit" in n for n in (notice.text for notice in session.notices))
    finally:
        session.model.close()


def test_open_session_explains_a_quantized_v_cache_without_flash_attention(f32_model: Path) -> None:
    from lcchat.engine.session import open_session
    from lcchat.errors import InputError

    with pytest.raises(InputError, match="needs flash attention, which flash_attn = false turns off"):
        open_session(chat_profile(f32_model, cache_type_v="q8_0", flash_attn=False))
