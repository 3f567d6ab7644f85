"""Models for the /quant tests: F32 files big enough for Q4_0/Q8_0 blocks (rows of 32)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lcchat.config.schema import Profile
from tests import models

SHAPE = dict(n_embd=128, n_ff=256, n_head=4, n_head_kv=2)


@pytest.fixture(scope="session")
def f32_source(tmp_path_factory) -> Path:
    return models.write_tiny_model(tmp_path_factory.mktemp("quant-src") / "tiny-f32.gguf", **SHAPE)


@pytest.fixture
def f32_model(f32_source: Path, tmp_path: Path) -> Path:
    """A private copy, so what a test writes beside it stays its own."""
    return Path(shutil.copy(f32_source, tmp_path / "tiny-f32.gguf"))


@pytest.fixture(scope="session")
def slow_source(tmp_path_factory) -> Path:
    """About 35 MB of F32: quantizing it takes long enough to cancel half-way."""
    return models.write_tiny_model(tmp_path_factory.mktemp("quant-slow") / "slow-f32.gguf",
                                   n_embd=256, n_ff=1024, n_layer=8, n_head=4, n_head_kv=4)


@pytest.fixture
def slow_model(slow_source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "slow" / "slow-f32.gguf"
    target.parent.mkdir()
    try:
        target.symlink_to(slow_source)
    except OSError:
        shutil.copy(slow_source, target)
    return target


def chat_profile(path: Path, **model) -> Profile:
    profile = Profile(name="quant-test")
    profile.model.path = str(path)
    profile.model.n_ctx = 256
    profile.model.n_threads = 1
    profile.context.reserve = 32
    profile.sampling.temperature = 0.0
    profile.sampling.seed = 1
    profile.sampling.max_tokens = 6
    for key, value in model.items():
        setattr(profile.model, key, value)
    return profile
