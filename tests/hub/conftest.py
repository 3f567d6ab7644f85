"""Fixtures for `lcchat pull` and `lcchat models`: tiny GGUF quantizations served by a
local Hub (tests/hubserver.py) that the real huggingface_hub talks to through HF_ENDPOINT."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lcchat.engine import quant
from tests import models
from tests.hubserver import HubServer

REPO = "test/tiny-GGUF"
SHAPE = dict(n_embd=128, n_ff=256, n_head=4, n_head_kv=2)  # rows of 128: Q4_0 and Q8_0 blocks fit


@pytest.fixture(scope="session")
def quants(tmp_path_factory) -> dict[str, bytes]:
    """The same tiny model as F32, F16, Q8_0 and Q4_0 (made by llama.cpp's quantize)."""
    folder = tmp_path_factory.mktemp("hub-models")
    f32 = models.write_tiny_model(folder / "tiny-F32.gguf", **SHAPE)
    files = {"F32": f32, "F16": models.write_tiny_model(folder / "tiny-F16.gguf", file_type="F16", **SHAPE)}
    for target in ("Q8_0", "Q4_0"):
        plan = quant.plan_quantize(f32, target, folder / f"tiny-{target}.gguf")
        for _ in quant.run_quantize(plan, nthread=1):
            pass
        files[target] = plan.output
    return {name: Path(path).read_bytes() for name, path in files.items()}


@pytest.fixture(scope="session")
def big_model(tmp_path_factory) -> bytes:
    """About 35 MB of F32: more than one of huggingface_hub's 10 MB download chunks, so an
    interrupted transfer leaves some of it on disk."""
    path = models.write_tiny_model(tmp_path_factory.mktemp("hub-big") / "big-F32.gguf",
                                   n_embd=256, n_ff=1024, n_layer=8, n_head=4, n_head_kv=4)
    return path.read_bytes()


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


@pytest.fixture
def hf_cache(tmp_path) -> Path:
    return tmp_path / "hf-cache"


@pytest.fixture
def env(hub: HubServer, hf_cache: Path, lcchat_home: Path) -> dict[str, str]:
    """The environment of a person whose HF_ENDPOINT is the local Hub."""
    drop = {"HF_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "NO_COLOR", "HF_HUB_CACHE"}
    out = {k: v for k, v in os.environ.items() if k not in drop}
    out.update(HF_ENDPOINT=hub.hub_url, HF_HUB_CACHE=str(hf_cache), LCCHAT_HOME=str(lcchat_home),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_ETAG_TIMEOUT="10")
    return out


def write_profile(home: Path, name: str = "tiny", *, file: str = "*.gguf", extra: str = "") -> Path:
    """A user profile whose model comes from the local Hub's test repository."""
    folder = home / "config" / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(f'description = "tiny test model from the local Hub"\nextends = "default"\n\n'
                    f'[model]\nsource = "hf://{REPO}"\nfile = "{file}"\nn_ctx = 512\n{extra}\n'
                    '[sampling]\ntemperature = 0.0\nmax_tokens = 8\n')
    return path
