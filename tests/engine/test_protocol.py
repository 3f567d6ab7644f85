"""engine/protocol.py is the model's whole interface: Model and FakeModel implement every
member of TokenModel with the protocol's signatures, and what the session needs of a
model is only what the protocol declares."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine import protocol, stops, templates
from lcchat.engine.fake import FakeModel
from lcchat.engine.model import Model, state_fingerprint


def members(proto: type) -> tuple[set[str], set[str]]:
    """(methods, data attributes) a protocol declares, its bases' included."""
    methods, data = set(), set()
    for klass in proto.__mro__:
        if klass in (typing.Protocol, typing.Generic, object):
            continue
        methods |= {name for name, value in vars(klass).items() if callable(value) and not name.startswith("_")}
        data |= set(getattr(klass, "__annotations__", {}))
    return methods, data


def shape(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.fixture(scope="module")
def real_model(tiny_model):
    profile = load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 256})
    model = Model(Path(tiny_model), profile.model, profile.rope)
    yield model
    model.close()


@pytest.mark.parametrize("which", ["real", "fake"])
def test_model_and_fake_implement_every_member_with_the_protocols_signatures(which, real_model) -> None:
    model = real_model if which == "real" else FakeModel()
    assert isinstance(model, protocol.TokenModel)
    methods, data = members(protocol.TokenModel)
    assert {"decode", "save_state", "state_fingerprint", "tokenize", "control_texts"} <= methods
    for name in sorted(methods):
        assert shape(getattr(type(model), name)) == shape(getattr(protocol.TokenModel, name)), name
    for name in sorted(data):
        assert hasattr(model, name), name
    sampler = model.make_sampler(load_profile("default").sampling)
    assert isinstance(sampler, protocol.Sampler)
    sampler.close()


def test_a_fake_model_round_trips_its_state_and_reports_closing() -> None:
    model = FakeModel()
    model.decode([1, 2, 3], 0)
    state = model.save_state()
    model.kv_truncate(0)
    assert model.load_state(state) and model.cache_len == 3
    assert model.state_fingerprint() is None and model.is_loaded()
    model.close()
    assert not model.is_loaded()


def test_a_closed_model_says_so(tiny_model) -> None:
    profile = load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 128})
    model = Model(Path(tiny_model), profile.model, profile.rope)
    assert model.is_loaded() and model.state_fingerprint()
    model.close()
    assert not model.is_loaded()


def test_the_state_fingerprint_changes_with_llama_cpps_version_and_the_cache_settings(real_model) -> None:
    args = dict(n_ctx=real_model.n_ctx, settings=real_model.settings, load=real_model.load)
    base = state_fingerprint(real_model.path, backend_version="1.0", **args)
    assert base and base == state_fingerprint(real_model.path, backend_version="1.0", **args)
    assert state_fingerprint(real_model.path, backend_version="1.1", **args) != base
    q8 = dataclasses.replace(real_model.settings, cache_type_k="q8_0")
    assert state_fingerprint(real_model.path, backend_version="1.0", **{**args, "settings": q8}) != base
    assert state_fingerprint(real_model.path.with_name("gone.gguf"), backend_version="1.0", **args) is None


class _Vocab:
    bos_text = "<s>"

    def control_texts(self) -> list[str]:
        return ["<s>", "<|im_start|>", "<|im_end|>", "<|unused|>"]

    def eog_texts(self) -> list[str]:
        return ["</s>"]


def test_stops_are_a_pure_function_of_format_vocab_and_configured_stops() -> None:
    chatml = templates.chatml()
    found, hidden = stops.derive(chatml, _Vocab(), ["User:"])
    assert found == ["User:", "<|im_end|>", "</s>", "<|im_start|>"]  # configured, format, EOG, markers
    assert hidden == ["<s>", "<|unused|>"]  # BOS is never a stop; other controls are hidden
    assert isinstance(_Vocab(), protocol.StopVocab)


def test_a_remote_model_implements_the_served_protocol_with_its_signatures() -> None:
    """RemoteModel stands where a TokenModel does; the session, the prompt view, /quant and
    the store recognise it by isinstance against ServedModel, so it must implement every
    member (a stub server answers its probe)."""
    from lcchat.config.schema import Profile
    from lcchat.engine import remote
    from tests.remote.servers import Stub

    server = Stub()
    try:
        profile = Profile(name="remote-test")
        profile.backend.url = server.url
        model = remote.RemoteModel(profile.backend, 512)
        try:
            assert isinstance(model, protocol.ServedModel) and not isinstance(model, protocol.TokenModel)
            methods, data = members(protocol.ServedModel)
            assert {"reply_source", "prompt_note", "report", "tokenize", "describe"} <= methods
            for name in sorted(methods):
                assert shape(getattr(type(model), name)) == shape(getattr(protocol.ServedModel, name)), name
            for name in sorted(data):
                assert hasattr(model, name), name
            assert protocol.server_of(model) == model.server == server.url.rstrip("/")
            source = model.reply_source()
            assert isinstance(source, protocol.ServedReplies)
            for name in sorted(members(protocol.ServedReplies)[0]):
                assert shape(getattr(type(source), name)) == shape(getattr(protocol.ServedReplies, name)), name
        finally:
            model.close()
    finally:
        server.stop()


@pytest.mark.parametrize("which", ["real", "fake"])
def test_a_local_model_is_not_served_and_has_no_server(which, real_model) -> None:
    model = real_model if which == "real" else FakeModel()
    assert not isinstance(model, protocol.ServedModel)
    assert protocol.server_of(model) == ""
