"""`lcchat profiles import`: Ollama Modelfiles and LM Studio presets become profiles."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from lcchat.config import gotemplate, importers, loader
from lcchat.engine.templates import compile_jinja
from lcchat.errors import InputError, ProfileError
from tests import models

FIXTURES = Path(__file__).resolve().parents[1] / "profiles" / "fixtures"
CONVERSATION = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "u1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "u2"},
]
CHATML_2_TURNS = ("<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nu1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n"
                  "<|im_start|>user\nu2<|im_end|>\n<|im_start|>assistant\n")


def do_import(fixture: str, **kw) -> tuple[loader.Profile, str, Path]:
    out = io.StringIO()
    assert importers.import_profile(FIXTURES / fixture, out=out, **kw) == 0
    written = Path(out.getvalue().splitlines()[0].rsplit(" to ", 1)[1])
    return loader.load_profile(written.stem), out.getvalue(), written


def render(profile, messages=CONVERSATION) -> str:
    return compile_jinja(profile.chat.template, bos_token="<s>", eos_token="</s>").render(messages)


# ---------------------------------------------------------------- Ollama


def test_modelfile_parameters_system_stops_and_from(lcchat_home) -> None:
    profile, out, written = do_import("chatml.Modelfile")
    assert written == lcchat_home / "config" / "profiles" / "chatml.toml"
    assert profile.model.path == str(FIXTURES / "qwen2-0_5b-instruct-q4_k_m.gguf")  # relative to the Modelfile
    assert profile.model.n_ctx == 8192
    s = profile.sampling
    assert (s.temperature, s.top_p, s.top_k, s.min_p) == (0.7, 0.8, 20, 0.02)
    assert (s.repeat_penalty, s.repeat_last_n, s.max_tokens, s.seed) == (1.05, 128, 256, 42)
    assert profile.chat.stop == ["<|im_start|>", "<|im_end|>"]
    assert profile.chat.system == "You are a careful assistant.\nAnswer in one sentence."
    assert profile.extends == "default"
    text = written.read_text()
    assert "# - PARAMETER tfs_z 1 has no lcchat equivalent" in text
    assert "wrote profile 'chatml'" in out and "does not exist (yet)" in out


def test_classic_go_template_becomes_jinja_with_the_same_output(lcchat_home) -> None:
    profile, out, _ = do_import("chatml.Modelfile")
    assert "TEMPLATE translated: a one-exchange template" in out
    assert render(profile) == CHATML_2_TURNS
    assert render(profile, CONVERSATION[1:2]) == "<|im_start|>user\nu1<|im_end|>\n<|im_start|>assistant\n"


def test_messages_templates_are_translated_not_replaced(lcchat_home) -> None:
    profile, out, written = do_import("llama3-pirate.Modelfile")
    assert "TEMPLATE translated: a template over .Messages" in out
    header = "\n<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>"  # the template's newline is not trimmed
    assert render(profile) == "".join(header.format(m["role"], m["content"]) for m in CONVERSATION) + \
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert profile.model.path == "" and profile.chat.system == "You are a pirate."
    assert "names a model in Ollama's library" in out and "lcchat -p llama3-pirate -m MODEL.gguf" in out
    assert "LICENSE (line" in written.read_text()

    profile, out, _ = do_import("mistral-local.Modelfile")
    assert render(profile) == "[INST] SYS u1 [/INST]a1[INST] u2 [/INST]"
    assert profile.model.n_gpu_layers == 99 and profile.sampling.max_tokens == -1


def test_a_go_template_over_messages_or_prompt_takes_the_messages_branch(lcchat_home) -> None:
    profile, out, written = do_import("alpaca.Modelfile")
    assert render(profile) == "### system:\nSYS\n### user:\nu1\n### assistant:\na1\n### user:\nu2\n### Response:\n"
    assert profile.model.path == "/models/alpaca-7b.Q4_0.gguf"
    assert profile.chat.system == "Below is an instruction that describes a task."


def test_a_go_template_that_does_not_translate_is_kept_as_a_comment(tmp_path, lcchat_home) -> None:
    path = tmp_path / "Modelfile"
    path.write_text('FROM /m.gguf\nTEMPLATE """{{ range .Messages }}{{ html .Content }}{{ end }}"""\n')
    out = io.StringIO()
    importers.import_profile(path, out=out, name="kept")
    assert "lcchat cannot translate the function html (line 2 of the Modelfile)" in out.getvalue()
    assert loader.load_profile("kept").chat.template == ""
    text = (lcchat_home / "config" / "profiles" / "kept.toml").read_text()
    assert "# Ollama TEMPLATE (not converted):" in text and "{{ html .Content }}" in text


def test_adapter_and_message_lines_say_what_they_would_need(tmp_path) -> None:
    path = tmp_path / "Modelfile"
    path.write_text("FROM /m.gguf\nADAPTER ./lora.gguf\nMESSAGE user hello\n")
    notes = importers.read_modelfile(path).notes
    assert any("ADAPTER (line 2)" in n and "merge ./lora.gguf into the model" in n for n in notes)
    assert any("MESSAGE (line 3)" in n and "resume it with -C ID" in n for n in notes)


def test_a_bad_value_names_the_file_and_line(lcchat_home) -> None:
    with pytest.raises(ProfileError) as caught:
        importers.import_profile(FIXTURES / "bad_value.Modelfile", out=io.StringIO())
    assert "bad_value.Modelfile:3: PARAMETER top_p: must be at most 1, not 1.5" in str(caught.value)
    assert not list((lcchat_home / "config" / "profiles").glob("*"))  # nothing written, no temp file left


@pytest.mark.parametrize("text, message", [
    ('FROM x.gguf\nSYSTEM """never closed\n', 'opens """ but never closes it'),
    ("FROM x.gguf\nPARAMETER num_ctx lots\n", "not a number"),
    ("FROM x.gguf\nPARAMETER\n", "PARAMETER needs a value"),
    ("FROM x.gguf\nBOGUS thing\n", "unknown Modelfile instruction 'BOGUS'"),
])
def test_broken_modelfiles(tmp_path, text, message) -> None:
    path = tmp_path / "Modelfile"
    path.write_text(text)
    with pytest.raises(ProfileError) as caught:
        importers.read_modelfile(path)
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_go_template_conversion_directly() -> None:
    go = "{{- if .System }}SYS: {{ .System }}\n{{ end }}USER: {{ .Prompt }}\nBOT: {{ .Response }}\n"
    rendered = compile_jinja(gotemplate.translate(go).jinja).render(CONVERSATION)
    assert rendered == "SYS: SYS\nUSER: u1\nBOT: a1\nUSER: u2\nBOT: "
    rendered = compile_jinja(gotemplate.translate("{{ range .Messages }}{{ .Content }}|{{ end }}").jinja).render(CONVERSATION)
    assert rendered == "SYS|u1|a1|u2|"


# ---------------------------------------------------------------- LM Studio


def test_lmstudio_preset_with_prefixes(lcchat_home) -> None:
    profile, out, _ = do_import("chatml.preset.json")
    assert profile.description == "ChatML (careful) (imported from the LM Studio preset chatml.preset.json)"
    assert (profile.model.n_ctx, profile.model.n_batch, profile.model.n_gpu_layers, profile.model.n_threads) == (8192, 256, 20, 6)
    assert profile.rope.freq_base == 0.0 and profile.rope.freq_scale == 0.0  # 0 means the model's
    s = profile.sampling
    assert (s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.max_tokens) == (0.6, 30, 0.9, 0.05, 1.1, -1)
    assert profile.chat.stop == ["<|im_start|>", "<|im_end|>"]
    assert profile.chat.system == "You answer briefly."
    # LM Studio writes the prefixes around each message: here that is ChatML
    assert render(profile) == CHATML_2_TURNS
    assert "main_gpu = 0 has no lcchat equivalent" in out and "tfs_z" in out


def test_lmstudio_rope_scale_and_plain_text_format(lcchat_home) -> None:
    profile, _, written = do_import("vicuna-16k.preset.json")
    assert written.stem == "vicuna-16k"
    assert (profile.rope.freq_scale, profile.model.n_ctx) == (0.25, 16384)
    assert render(profile) == "SYS\n\nUSER: u1\nASSISTANT:a1USER: u2\nASSISTANT:"
    assert render(profile, CONVERSATION[1:2]) == "\n\nUSER: u1\nASSISTANT:"  # LM Studio always writes the system part


def test_lmstudio_03_fields_and_manual_template(lcchat_home) -> None:
    profile, out, written = do_import("lmstudio-03.preset.json")
    assert written.stem == "careful-llama"
    s = profile.sampling
    assert (s.temperature, s.top_k, s.top_p, s.min_p, s.repeat_penalty, s.max_tokens) == (0.3, 25, 0.85, 0.0, 1.15, 300)
    assert profile.chat.stop == ["###", "<|eot_id|>"]
    assert profile.chat.system == "You are careful."
    assert (profile.model.n_ctx, profile.model.n_gpu_layers) == (8192, -1)
    assert render(profile, CONVERSATION[1:]) == (
        "<|start_header_id|>user<|end_header_id|>\n\nu1<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\na1<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nu2<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "llm.load.numParallelSessions" in out and "llm.prediction.structured" in out


def test_a_broken_preset(tmp_path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"inference_params": {"temp": "hot"}}')
    with pytest.raises(ProfileError) as caught:
        importers.read_any(path)
    assert "inference_params.temp" in str(caught.value) and "not a number" in str(caught.value)
    path.write_text('{"load_params": ')
    with pytest.raises(ProfileError, match=r"bad.json:1: not valid JSON"):
        importers.read_any(path)


# ---------------------------------------------------------------- writing


def test_refuses_to_overwrite_without_force_and_names(lcchat_home) -> None:
    _, _, first = do_import("chatml.Modelfile", name="mine")
    assert first.name == "mine.toml"
    with pytest.raises(InputError, match="already exists"):
        importers.import_profile(FIXTURES / "vicuna-16k.preset.json", name="mine", out=io.StringIO())
    profile, _, _ = do_import("vicuna-16k.preset.json", name="mine", force=True)
    assert profile.rope.freq_scale == 0.25
    with pytest.raises(InputError, match="cannot be a profile name"):
        importers.import_profile(FIXTURES / "chatml.Modelfile", name="../evil", out=io.StringIO())
    assert [p.name for p in (lcchat_home / "config" / "profiles").iterdir()] == ["mine.toml"]


def test_a_missing_file_is_bad_input(tmp_path) -> None:
    with pytest.raises(InputError, match="no such file"):
        importers.import_profile(tmp_path / "nothing", out=io.StringIO())


def lcchat(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "lcchat"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lcchat"]
    return subprocess.run([*command, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def test_import_from_the_command_line_then_chat_with_it(tmp_path) -> None:
    model = models.write_tiny_model(tmp_path / "tiny-chatml.gguf", n_ctx_train=1024)
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text((FIXTURES / "chatml.Modelfile").read_text().replace(
        "./qwen2-0_5b-instruct-q4_k_m.gguf", "./tiny-chatml.gguf").replace("num_ctx 8192", "num_ctx 1024"))
    r = lcchat("profiles", "import", str(modelfile), "-o", "tiny")
    assert r.returncode == 0, r.stderr
    assert "wrote profile 'tiny' to " in r.stdout and "chat with it: lcchat -p tiny\n" in r.stdout
    r = lcchat("profiles", "import", str(modelfile), "-o", "tiny")
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr
    r = lcchat("-p", "tiny", "-n", "8", "hello")
    assert r.returncode == 0, r.stderr
    assert "<|im_" not in r.stdout
    r = lcchat("profiles", "show", "tiny")
    assert r.returncode == 0 and f"model file: {model}" in r.stdout
