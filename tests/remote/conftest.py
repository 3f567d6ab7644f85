"""Fixtures: one real llama-cpp-python server with SmolLM2 for the whole test session
(starting one costs seconds), and a fresh stub server per test."""

from __future__ import annotations

import pytest

from tests.remote.servers import LlamaServer, Stub


@pytest.fixture(scope="session")
def llama_server(smollm2, tmp_path_factory):
    server = LlamaServer(smollm2, log=tmp_path_factory.mktemp("server") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def stub():
    server = Stub()
    yield server
    server.stop()
