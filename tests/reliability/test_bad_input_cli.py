"""Bad input at the command line and in imported files: exit 2 and one line saying what is
wrong, never "internal error" (issue 13, items 12 and 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.helpers import clean_failure, run, seed_conversation


def symlink_loop(tmp_path: Path) -> Path:
    a, b = tmp_path / "a.gguf", tmp_path / "b.gguf"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


def test_dash_m_a_symlink_loop(tmp_path: Path) -> None:
    line = clean_failure(run(["-m", symlink_loop(tmp_path), "hello"]), 2)
    assert "loops back on itself" in line


def test_quant_on_a_symlink_loop(tmp_path: Path) -> None:
    for args in (["quant", symlink_loop(tmp_path)], ["quant", tmp_path / "a.gguf", "--to", "Q8_0"]):
        result = run(args)
        err = result.stderr.decode()
        assert result.returncode == 2, err
        assert "internal error" not in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1 and "a.gguf" in err


def import_file(tmp_path: Path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return run(["profiles", "import", path])


@pytest.mark.parametrize("line", ["PARAMETER num_ctx inf", "PARAMETER seed 1e400", "PARAMETER temperature nan"])
def test_modelfile_parameter_that_is_not_a_finite_number(tmp_path: Path, line: str) -> None:
    message = clean_failure(import_file(tmp_path, "Modelfile", f"FROM ./m.gguf\n{line}\n"), 2)
    assert "Modelfile:2" in message and "not a finite number" in message


def preset_field(key: str, value) -> str:
    return json.dumps({"operation": {"fields": [{"key": key, "value": value}]}})


def test_lmstudio_n_ctx_1e400(tmp_path: Path) -> None:
    message = clean_failure(import_file(tmp_path, "p.preset.json", '{"load_params": {"n_ctx": 1e400}}'), 2)
    assert "load_params.n_ctx" in message and "not a finite number" in message


def test_lmstudio_jinja_prompt_template_that_is_a_string(tmp_path: Path) -> None:
    text = preset_field("llm.prediction.promptTemplate", {"type": "jinja", "jinjaPromptTemplate": "str"})
    message = clean_failure(import_file(tmp_path, "p.preset.json", text), 2)
    assert "jinjaPromptTemplate: must be a JSON object, not a string" in message


@pytest.mark.parametrize("stops, kind", [(5, "a number"), ("abc", "a string"), (["ok", 5], "a non-string")])
def test_lmstudio_stop_strings_of_the_wrong_type(tmp_path: Path, stops, kind: str) -> None:
    text = preset_field("llm.prediction.promptTemplate", {"type": "manual", "stopStrings": stops})
    message = clean_failure(import_file(tmp_path, "p.preset.json", text), 2)
    assert "stopStrings: must be a list of strings" in message and kind in message


def test_lmstudio_stop_strings_field_that_is_a_string(tmp_path: Path) -> None:
    message = clean_failure(import_file(tmp_path, "p.preset.json", preset_field("llm.prediction.stopStrings", "abc")), 2)
    assert "must be a list of strings, not a string" in message


def test_json_nested_100000_deep(tmp_path: Path) -> None:
    text = '{"load_params": ' + "[" * 100_000 + "]" * 100_000 + "}"
    message = clean_failure(import_file(tmp_path, "deep.json", text), 2)
    assert "nested too deeply" in message


def test_continue_an_id_past_64_bits() -> None:
    seed_conversation()  # a database to look in
    line = clean_failure(run(["-C", "99999999999999999999", "hello"]), 2)
    assert "no conversation '99999999999999999999'" in line


def test_history_show_an_id_past_64_bits() -> None:
    seed_conversation()
    line = clean_failure(run(["history", "show", "99999999999999999999"]), 2)
    assert "no conversation '99999999999999999999'" in line


def test_dash_p_a_directory_says_it_is_one(tmp_path: Path) -> None:
    line = clean_failure(run(["-p", f"{tmp_path}/", "hello"]), 2)
    assert "is a directory" in line and "does not exist" not in line
