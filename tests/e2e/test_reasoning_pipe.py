"""The installed `lcchat` in a pipe with a reasoning model (a scripted GGUF with <think>
and </think> control tokens): stdout holds only the answer, --reasoning sends the thinking
to stderr, --json holds it under "reasoning", and the history keeps it apart."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests import models
from tests.commandline import lcchat_cmd

PIECES = ["<think>", "\nThe user adds: 2+2.", "\x1b[2J then 4.\n", "</think>", "\n\nFour."]


@pytest.fixture(scope="module")
def thinker(tmp_path_factory) -> Path:
    return models.write_scripted_model(tmp_path_factory.mktemp("think") / "think.gguf", PIECES,
                                       extra_special_tokens=("<|im_start|>", "<|im_end|>", "<think>", "</think>"))


def lcchat(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LCCHAT_HOME",)}
    env["LCCHAT_HOME"] = str(home)
    return subprocess.run([*lcchat_cmd(), *args], env=env, capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL)


def test_stdout_holds_only_the_answer(thinker, lcchat_home) -> None:
    done = lcchat(lcchat_home, "-m", str(thinker), "What is 2+2?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Four.\n"
    assert "adds" not in done.stderr  # not shown unless asked


def test_reasoning_goes_to_stderr_cleaned(thinker, lcchat_home) -> None:
    done = lcchat(lcchat_home, "-m", str(thinker), "--reasoning", "What is 2+2?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Four.\n"
    assert "The user adds: 2+2.␛[2J then 4." in done.stderr and "\x1b" not in done.stderr


def test_json_holds_the_thinking_under_reasoning(thinker, lcchat_home) -> None:
    done = lcchat(lcchat_home, "-m", str(thinker), "--json", "What is 2+2?")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["text"] == "Four."
    assert doc["reasoning"] == "The user adds: 2+2.\x1b[2J then 4."
    assert 0 < doc["stats"]["reasoning_tokens"] < doc["stats"]["completion_tokens"]


def test_think_flags_set_the_profiles_thinking() -> None:
    from lcchat import cli

    parse = cli.build_parser().parse_args
    assert cli.profile_from_args(parse(["--no-think", "q"])).chat.thinking is False
    assert cli.profile_from_args(parse(["--think", "q"])).chat.thinking is True
    assert cli.profile_from_args(parse(["q"])).chat.thinking == "auto"
