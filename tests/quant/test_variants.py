"""Sibling quantizations: finding them, and switching to one mid-conversation."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcchat.commands import Context, FrontState, Task, registry
from lcchat.engine import quant
from lcchat.engine.events import Done, Error, Notice, Progress, Stats
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.session import open_session
from tests.quant.conftest import chat_profile


def make(source: Path, target: str, output: Path | None = None) -> Path:
    plan = quant.plan_quantize(source, target, output)
    list(quant.run_quantize(plan, nthread=1))
    assert plan.written is not None
    return plan.written


@pytest.mark.parametrize("stem, base, tag", [
    ("ggml-model-q4_0", "ggml-model", "Q4_0"),
    ("ggml-model-Q5_K_M", "ggml-model", "Q5_K_M"),
    ("SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct", "Q4_1"),
    ("llama-2-7b.IQ2_XXS", "llama-2-7b", "IQ2_XXS"),
    ("model_f16", "model", "F16"),
    ("qwen2-7b", "qwen2-7b", None),
])
def test_quant_tag_in_names(stem: str, base: str, tag: str | None) -> None:
    assert quant.split_tag(stem) == (base, tag)


def test_default_output_replaces_the_tag() -> None:
    assert quant.default_output(Path("/m/tiny-f32.gguf"), "Q4_K_M") == Path("/m/tiny-Q4_K_M.gguf")
    assert quant.default_output(Path("/m/x.Q4_1.gguf"), "Q8_0") == Path("/m/x.Q8_0.gguf")
    assert quant.default_output(Path("/m/model.gguf"), "Q8_0") == Path("/m/model-Q8_0.gguf")


def test_siblings_match_case_insensitively(f32_model: Path) -> None:
    folder = f32_model.parent
    upper = make(f32_model, "Q5_K_M", folder / "ggml-model-Q5_K_M.gguf")
    lower = make(f32_model, "Q4_0", folder / "ggml-model-q4_0.gguf")
    (folder / "other-model-q4_0.gguf").write_bytes(upper.read_bytes())
    (folder / ".ggml-model-q8_0.gguf.abc.partial").write_bytes(b"half")
    found = quant.find_variants(upper)
    assert [v.path for v in found] == sorted([upper, lower], key=lambda p: p.stat().st_size)
    assert {v.type_name for v in found} == {"Q4_0", "Q5_K_M"}
    assert [v.current for v in found if v.path == upper] == [True]
    assert quant.pick_variant(found, "q4_0").path == lower
    assert quant.pick_variant(found, "Q6_K") is None


def test_the_profile_glob_finds_more(f32_model: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    far = make(f32_model, "Q8_0", elsewhere / "renamed.gguf")
    found = quant.find_variants(f32_model, "elsewhere/*.gguf", relative_to=tmp_path)
    assert far in [v.path for v in found]
    assert quant.pick_variant(found, "Q8_0").path == far


def test_switch_model_keeps_the_history_on_a_fake() -> None:
    session = fake_session(FakeModel(replies=[["one"], ["two"]]))
    list(session.send("first"))
    list(session.send("second"))
    before = [(m.role, m.content) for m in session.conversation.messages]
    new = FakeModel(n_batch=8, replies=[["three"]])
    events = list(session.switch_model(new))
    assert session.model is new
    assert [(m.role, m.content) for m in session.conversation.messages] == before
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress and progress[-1].what == "history" and progress[-1].done == progress[-1].total
    assert session.context_used == progress[-1].total
    reply = list(session.send("third"))
    stats = [e for e in reply if isinstance(e, Stats) and e.final][0]
    assert stats.prompt_eval_tokens < stats.prompt_tokens / 2  # the history was already read


def run_command(session, line: str) -> list:
    result = registry.dispatch(Context(session, FrontState()), line)
    assert not result.error, result.text
    assert isinstance(result.action, Task)
    return list(result.action())


def test_switch_variant_mid_conversation(f32_model: Path) -> None:
    q8 = make(f32_model, "Q8_0")
    session = open_session(chat_profile(f32_model))
    try:
        list(session.send("hello"))
        list(session.send("the sky is blue"))
        before = [(m.role, m.content) for m in session.conversation.messages]
        old_model = session.model

        listing = registry.dispatch(Context(session, FrontState()), "/quant")
        assert "Q8_0" in listing.text and str(q8) in listing.text

        events = run_command(session, "/quant q8_0")
        assert not [e for e in events if isinstance(e, Error)]
        assert events[-1] == Done("stop", "")
        whats = [e.what for e in events if isinstance(e, Progress)]
        assert "load" in whats and "history" in whats
        assert any(isinstance(e, Notice) and "now using tiny-Q8_0.gguf" in e.text for e in events)
        assert session.model is not old_model and Path(session.model.path) == q8
        assert not old_model.is_loaded()  # the old model was freed
        assert session.model_settings.path == str(q8)
        assert session.profile.model.path == str(f32_model)  # the profile is the one loaded, unchanged
        assert [(m.role, m.content) for m in session.conversation.messages] == before
        assert session.context_used > 0

        reply = list(session.send("and the sun?"))
        stats = [e for e in reply if isinstance(e, Stats) and e.final][0]
        assert stats.prompt_eval_tokens < stats.prompt_tokens  # the history was reused
        assert len(session.conversation.messages) == 6

        again = registry.dispatch(Context(session, FrontState()), "/quant Q8_0")
        assert "is the model in use" in again.text
        missing = registry.dispatch(Context(session, FrontState()), "/quant Q6_K")
        assert missing.error and "/quant make Q6_K" in missing.text
    finally:
        session.model.close()


def test_kv_cache_type_switch_keeps_the_conversation(f32_model: Path) -> None:
    session = open_session(chat_profile(f32_model, flash_attn=False))
    try:
        list(session.send("hello"))
        before = [(m.role, m.content) for m in session.conversation.messages]
        shown = registry.dispatch(Context(session, FrontState()), "/quant kv")
        assert "f16/f16" in shown.text and dict(shown.rows)["q8_0"]

        events = run_command(session, "/quant kv q8_0")
        assert not [e for e in events if isinstance(e, Error)], events
        assert events[-1] == Done("stop", "")
        texts = " ".join(e.text for e in events if isinstance(e, Notice))
        assert "flash attention turned on" in texts and "KV cache is now q8_0/q8_0" in texts and "saves" in texts
        settings = session.model_settings
        assert (settings.cache_type_k, settings.cache_type_v, settings.flash_attn) == ("q8_0", "q8_0", True)
        assert (session.profile.model.cache_type_k, session.profile.model.flash_attn) == ("f16", False)
        assert session.model.describe()["cache_type"] == "q8_0/q8_0"
        assert [(m.role, m.content) for m in session.conversation.messages] == before
        reply = list(session.send("more"))
        assert not [e for e in reply if isinstance(e, Error)]

        bad = registry.dispatch(Context(session, FrontState()), "/quant kv q3")
        assert bad.error and "Unknown KV cache type" in bad.text
    finally:
        session.model.close()


def test_switching_an_older_internlm2_conversion_keeps_its_chat_marker_names(tmp_path: Path) -> None:
    """Such a file names <|im_start|>/<|im_end|> [UNUSED_TOKEN_146]/[UNUSED_TOKEN_145]: a
    session renames the template's markers (templates.adapt_to_vocab), and so must the
    session after /quant switches to another quantization of it."""
    from lcchat.engine import prompt_view
    from tests import models
    from tests.quant.conftest import SHAPE

    source = models.write_tiny_model(tmp_path / "internlm2-f32.gguf", eos_token="</s>",
                                     extra_special_tokens=("[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"), **SHAPE)
    q8 = make(source, "Q8_0")
    renamed = ("<|im_start|>", "<|im_end|>")
    session = open_session(chat_profile(source))
    try:
        assert session.formatter.renamed == renamed
        list(session.send("hello"))
        events = run_command(session, "/quant Q8_0")
        assert events[-1] == Done("stop", ""), events
        assert Path(session.model.path) == q8
        assert session.formatter.renamed == renamed
        prompt = prompt_view.preview(session, "and now?").text
        assert "[UNUSED_TOKEN_146]user" in prompt and "<|im_start|>" not in prompt
        assert "[UNUSED_TOKEN_145]" in session.stops
        texts = [e.text for e in events if isinstance(e, Notice)]
        assert any("writing <|im_start|> as [UNUSED_TOKEN_146]" in t for t in texts), texts
    finally:
        session.close()


def test_make_from_the_chat_and_cancel(f32_model: Path, slow_model: Path) -> None:
    session = open_session(chat_profile(f32_model))
    try:
        events = run_command(session, "/quant make Q4_0")
        assert events[-1] == Done("stop", "")
        assert f32_model.with_name("tiny-Q4_0.gguf").is_file()
        assert any(isinstance(e, Notice) and "/quant Q4_0 switches to it" in e.text for e in events)
        refused = registry.dispatch(Context(session, FrontState()), "/quant make Q4_0")
        assert refused.error and "already exists" in refused.text

        # Cancel the usual way (session.cancel(), what Ctrl+C/Esc do) on a slower file.
        session.model.path = slow_model
        session.model.info = None
        result = registry.dispatch(Context(session, FrontState()), "/quant make Q4_K_M")
        seen = []
        for event in result.action():
            seen.append(event)
            if isinstance(event, Progress):
                session.cancel()
        assert seen[-1] == Done("interrupted", "")
        assert sorted(p.name for p in slow_model.parent.iterdir()) == [slow_model.name]
    finally:
        session.model.path = f32_model
        session.model.close()


def test_completion_and_a_model_without_a_file() -> None:
    session = fake_session(FakeModel())
    ctx = Context(session, FrontState())
    assert {"/quant make", "/quant kv"} <= {f"/quant {c}" for c in registry.completions(ctx, "/quant ")}
    assert "Q4_K_M" in registry.completions(ctx, "/quant make Q4")
    assert "q8_0" in registry.completions(ctx, "/quant kv q")
    shown = registry.dispatch(ctx, "/quant")
    assert shown.error and "fake.gguf" in shown.text
    assert registry.dispatch(ctx, "/quant kv q8_0 f16 q4_0").error


def test_make_writes_beside_the_source_only_outside_installed_packages(tmp_path, lcchat_home) -> None:
    from tests import models

    (tmp_path / "mine").mkdir()
    mine = models.write_tiny_model(tmp_path / "mine" / "tiny-f32.gguf")
    shipped_dir = tmp_path / "lib" / "python3.12" / "site-packages" / "some_model_pkg"
    shipped_dir.mkdir(parents=True)
    shipped = models.write_tiny_model(shipped_dir / "tiny-f32.gguf")

    assert quant.plan_quantize(mine, "Q8_0").output == mine.with_name("tiny-Q8_0.gguf")
    plan = quant.plan_quantize(shipped, "Q8_0")
    assert plan.output == lcchat_home / "data" / "models" / "tiny-Q8_0.gguf"
    events = list(quant.run_quantize(plan))
    said = " ".join(getattr(e, "text", "") for e in events)
    assert str(plan.output) in said and "inside an installed package" in said
    assert plan.output.is_file() and not (shipped_dir / "tiny-Q8_0.gguf").exists()
    # /quant finds it there afterwards
    assert plan.output in [v.path for v in quant.find_variants(shipped)]
