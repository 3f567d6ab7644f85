"""Ollama's own templates and expected renders (tests/config/ollama_templates, MIT, from
ollama/ollama's template/ folder): each is imported with `lcchat profiles import` and the
profile's template, rendered as lcchat renders a chat template, must give Ollama's text
byte for byte.

Known differences: none. Ollama's TestTemplate drops one trailing space from the renders
of chatqa, llama2-chat, mistral-instruct, openchat and vicuna before comparing (its
expected files lack it); the same rule is applied here, so what is compared is what
Ollama's own test compares.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcchat import cli, paths
from lcchat.config import gotemplate, importers, loader
from lcchat.engine.templates import TemplateError, compile_jinja
from tests import models
from tests.commandline import lcchat_cmd

DATA = Path(__file__).resolve().parent / "ollama_templates"
TEMPLATES = sorted(p.name for p in DATA.glob("*.gotmpl"))
TRAILING_SPACE_DROPPED = {"chatqa.gotmpl", "llama2-chat.gotmpl", "mistral-instruct.gotmpl", "openchat.gotmpl",
                          "vicuna.gotmpl"}  # as template_test.go does


def message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


# The conversations of TestTemplate in template/template_test.go, named as its testdata files.
_UAU = [message("user", "Hello, how are you?"),
        message("assistant", "I'm doing great. How can I help you today?"),
        message("user", "I'd like to show off how chat templating works!")]
CONVERSATIONS = {
    "user": _UAU[:1],
    "user-assistant-user": _UAU,
    "system-user-assistant-user": [message("system", "You are a helpful assistant."), *_UAU],
}


def import_template(tmp_path: Path, go: str, name: str = "imported") -> tuple[loader.Profile, str]:
    """`lcchat profiles import` of a Modelfile holding `go` as its TEMPLATE."""
    modelfile = tmp_path / f"{name}.Modelfile"
    modelfile.write_text(f'FROM ./model.gguf\nTEMPLATE """{go}"""\n', encoding="utf-8")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["profiles", "import", str(modelfile), "--force"]) == 0
    return loader.load_profile(name), out.getvalue()


def render(profile: loader.Profile, messages: list[dict[str, str]], bos: str = "") -> str:
    return compile_jinja(profile.chat.template, bos_token=bos, eos_token="").render(messages)


@pytest.mark.parametrize("template", TEMPLATES)
def test_ollamas_templates_render_as_ollama_does(tmp_path: Path, template: str) -> None:
    profile, out = import_template(tmp_path, (DATA / template).read_text(encoding="utf-8"))
    assert "TEMPLATE translated" in out, out
    for case, messages in CONVERSATIONS.items():
        got = render(profile, messages)
        if template in TRAILING_SPACE_DROPPED and got.endswith(" "):
            got = got[:-1]
        assert got == (DATA / "expected" / template / case).read_text(encoding="utf-8"), case


def test_all_sixty_cases_are_here() -> None:
    assert len(TEMPLATES) == 20
    assert all((DATA / "expected" / t / case).is_file() for t in TEMPLATES for case in CONVERSATIONS)


LEGACY = [(case["name"], variant, go, case["messages"], case["expected"])
          for case in json.loads((DATA / "legacy.json").read_text()) for variant, go in case["templates"].items()]


@pytest.mark.parametrize("name, variant, go, messages, expected", LEGACY,
                         ids=[f"{c[0]}-{c[1]}" for c in LEGACY])
def test_older_system_prompt_response_templates_and_their_messages_versions(tmp_path, name, variant, go,
                                                                             messages, expected) -> None:
    profile, _ = import_template(tmp_path, go)
    assert render(profile, messages) == expected


def test_an_inst_template_is_translated_not_replaced_by_a_shipped_one(tmp_path: Path) -> None:
    for template, shipped in (("llama2-chat.gotmpl", "chinese-alpaca-2"), ("mistral-instruct.gotmpl", "mistral")):
        profile, out = import_template(tmp_path, (DATA / template).read_text(), name=shipped + "-x")
        theirs = loader.load_profile(str(paths.shipped_profiles_dir() / f"{shipped}.toml")).chat.template
        assert profile.chat.template != theirs
        assert "recognised" not in out


def test_the_prompt_tokens_are_ollamas_one_bos_from_the_tokenizer(tmp_path: Path) -> None:
    """Ollama leaves BOS to the tokenizer: its tokens are [BOS] + the rendered text. lcchat
    adds BOS unless the text starts with it, so the translation must not write bos_token."""
    from lcchat.engine.session import open_session

    model_file = models.write_tiny_model(tmp_path / "model.gguf", n_ctx_train=1024)
    for template in ("llama2-chat.gotmpl", "mistral-instruct.gotmpl", "llama3-instruct.gotmpl"):
        profile, _ = import_template(tmp_path, (DATA / template).read_text())
        assert profile.model.path == str(model_file)
        session = open_session(profile)
        try:
            model = session.model
            for messages in CONVERSATIONS.values():
                text = session.formatter.render(messages)
                assert not text.startswith(model.bos_text)
                assert session._tokenize_whole(text) == [model.bos] + model.tokenize(text, add_bos=False)
        finally:
            session.close()


def test_a_consecutive_same_role_message_is_merged_as_ollama_collates(tmp_path: Path) -> None:
    profile, _ = import_template(tmp_path, (DATA / "chatml.gotmpl").read_text())
    got = render(profile, [message("system", "a"), message("system", "b"), message("user", "u")])
    assert got == "<|im_start|>system\na\n\nb<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n"


@pytest.mark.parametrize("go, construct, line", [
    ('{{ define "x" }}a{{ end }}{{ template "x" }}', "{{define}} (named templates)", 2),
    ("{{ range .Messages }}\n{{ toTypeScriptType .Content }}{{ end }}", "the function toTypeScriptType", 3),
    ("{{ range .Messages }}{{ printf \"%q\" .Content }}{{ end }}", "printf with the format '%q'", 2),
    ("{{ range .Messages }}{{ .Content }}", "an {{range}} without {{end}}", 2),
])
def test_what_cannot_be_translated_is_named_kept_and_falls_back(tmp_path, go, construct, line) -> None:
    profile, out = import_template(tmp_path, go)
    assert profile.chat.template == ""  # the GGUF's own template is used
    assert f"lcchat cannot translate {construct} (line {line} of the Modelfile)" in out, out
    text = (paths.user_profiles_dir() / "imported.toml").read_text()
    assert "# Ollama TEMPLATE (not converted):" in text
    assert "# " + go.split("\n")[-1] in text


def test_trim_markers_variables_with_and_else_range(tmp_path: Path) -> None:
    go = ('{{- $n := len .Messages }}{{ with .System }}[{{ . }}]{{ else }}(none){{ end }}\n'
          '{{- range $i, $m := .Messages }} {{ $i }}/{{ $n }}:{{ $m.Role }}={{ (index $.Messages $i).Content }}'
          '{{- if ne $i 0 }}{{ break }}{{ end }}{{ else }}empty{{ end }} -{{/* a comment */}}- {{ "x" | printf "%s!" }}')
    profile, _ = import_template(tmp_path, go)
    assert render(profile, [message("user", "u"), message("assistant", "a"), message("user", "v")]) == \
        "(none) 0/3:user=u 1/3:assistant=a -- x!"
    assert render(profile, [message("system", "s")]) == "[s] 0/1:system=s -- x!"


def test_the_first_line_of_a_triple_quoted_template_keeps_its_spaces(tmp_path: Path) -> None:
    profile, _ = import_template(tmp_path, "  {{ .Prompt }}  \n>")
    assert render(profile, [message("user", "hi")]) == "  hi  \n>"


def test_a_pathological_template_imports_in_linear_time(tmp_path: Path) -> None:
    """'{{ ' * 40000 once took more than 60 s (a backtracking regex); now the lexer fails at
    the first action. A generous subprocess timeout catches a regression without timing."""
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text('FROM ./m.gguf\nTEMPLATE """' + "{{ " * 40000 + '"""\n')
    result = subprocess.run([*lcchat_cmd(), "profiles", "import", str(modelfile)], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert b"TEMPLATE was not converted: lcchat cannot translate unexpected '{' in an action" in result.stdout


@pytest.mark.parametrize("unit", ["{{ .Prompt }}", "{{/* c */}}", "{{- if .System }}{{ end -}}", "x{{ ", "{{ (((",
                                  '{{ "\\"', "{{ $a := 1 }}{{ $a = 2 }}"])
def test_lexing_and_parsing_work_once_per_character(unit: str) -> None:
    """Structural bound: the lexer's steps never exceed the characters read, and doubling
    the template doubles them (no rescans of what was read)."""
    steps = []
    for n in (2000, 4000):
        lexer = gotemplate.Lexer(unit * n)
        try:
            lexer.run()
        except gotemplate.Untranslatable:
            pass
        steps.append(lexer.steps)
        assert lexer.steps <= len(unit) * n
    assert steps[1] <= 2 * steps[0] + 2


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    for go in ("{{ if .X }}" * 5000 + "{{ end }}" * 5000, "{{ " + "(" * 5000 + ".X" + ")" * 5000 + " }}"):
        with pytest.raises(gotemplate.Untranslatable, match="nested more than"):
            gotemplate.translate(go)


_PIECES = ["{{", "}}", "{{- ", " -}}", " end ", " else ", " if ", " range ", "$i", "$", ".Messages", " := ", " = ", "(",
           ")", "|", '"', "`", "printf", "slice", "index", "eq", "break", "continue", "with", "\n", "x"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEMPLATES), st.lists(st.tuples(st.floats(0, 1), st.integers(0, 6), st.sampled_from(_PIECES)),
                                            min_size=1, max_size=4))
def test_mutated_templates_translate_or_are_refused_never_crash(template, edits) -> None:
    go = (DATA / template).read_text()
    for where, cut, piece in edits:
        at = int(where * len(go))
        go = go[:at] + piece + go[at + cut:]
    try:
        translation = gotemplate.translate(go)
    except gotemplate.Untranslatable:
        return
    formatter = compile_jinja(translation.jinja)  # raises TemplateError if the Jinja were broken
    try:
        formatter.render(CONVERSATIONS["system-user-assistant-user"])
    except TemplateError:
        pass  # a template that fails at run time fails in Ollama too (index out of range ...)


def test_importers_use_the_translator() -> None:
    assert importers.jinja_string is gotemplate.jinja_string
