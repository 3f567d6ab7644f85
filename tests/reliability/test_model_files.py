"""Bad model files at the command line: one clear line, exit 2, no traceback, and the
stored conversations untouched. (The checks themselves are unit-tested in
tests/engine/test_gguf_info.py and fuzzed in test_gguf_fuzz.py; the missing file and the
non-GGUF file are in tests/test_cli.py.)"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from pathlib import Path

import pytest

from lcchat.engine.gguf_info import read_gguf
from tests import models
from tests.reliability.helpers import assert_seed_intact, clean_failure, run, seed_conversation


def _directory(tiny: Path, d: Path) -> Path:
    (d / "model.gguf").mkdir()
    return d / "model.gguf"


def _empty(tiny: Path, d: Path) -> Path:
    (d / "empty.gguf").write_bytes(b"")
    return d / "empty.gguf"


def _truncated_header(tiny: Path, d: Path) -> Path:
    return models.truncate(tiny, d / "t.gguf", 12)


def _truncated_kv(tiny: Path, d: Path) -> Path:
    return models.truncate(tiny, d / "t.gguf", read_gguf(tiny).data_offset // 2)  # inside the vocabulary


def _truncated_data(tiny: Path, d: Path) -> Path:
    return models.truncate(tiny, d / "t.gguf", tiny.stat().st_size - 1000)


def _bad_magic(tiny: Path, d: Path) -> Path:
    return models.corrupt(tiny, d / "m.gguf", at=0, data=b"GGUX")


def _bad_version(tiny: Path, d: Path) -> Path:
    return models.corrupt(tiny, d / "m.gguf", at=4, data=struct.pack("<I", 99))


def _absurd_tensor_count(tiny: Path, d: Path) -> Path:
    return models.corrupt(tiny, d / "m.gguf", at=8, data=struct.pack("<Q", 2**60))


def _absurd_kv_count(tiny: Path, d: Path) -> Path:
    return models.corrupt(tiny, d / "m.gguf", at=16, data=struct.pack("<Q", 2**60))


def _absurd_block_count(tiny: Path, d: Path) -> Path:
    return models.write_tiny_model(d / "b.gguf", metadata={"llama.block_count": 100000})


def _respelled_byte_token(tiny: Path, d: Path) -> Path:
    """<0xF0> written <0xf0>: llama.cpp looks byte tokens up by their upper-case spelling,
    finds none for 0xF0, and aborts (SIGABRT) on the first emoji it tokenizes."""
    tokens = models.family_tokens(("<|im_start|>", "<|im_end|>"))
    tokens[tokens.index("<0xF0>")] = "<0xf0>"
    types = [int(models.gguf.TokenType.BYTE) if t.lower().startswith("<0x") else 1 for t in tokens]
    return models.write_vocab_model(d / "byte.gguf", tokens, types=types, chat_template=models.CHATML_TEMPLATE)


def _short_byte_token(tiny: Path, d: Path) -> Path:
    """A byte token spelled "q~": llama.cpp aborts while loading the vocabulary."""
    tokens = models.family_tokens(("<|im_start|>", "<|im_end|>"))
    types = [int(models.gguf.TokenType.BYTE) if t.startswith("<0x") else 1 for t in tokens]
    tokens[tokens.index("<0x41>")] = "q~"
    return models.write_vocab_model(d / "byte.gguf", tokens, types=types, chat_template=models.CHATML_TEMPLATE)


CASES = {
    "a directory": (_directory, "is a directory"),
    "an empty file": (_empty, "is empty"),
    "truncated in the header": (_truncated_header, "truncated"),
    "truncated in the KV section": (_truncated_kv, "truncated"),
    "truncated in the data": (_truncated_data, "truncated"),
    "bad magic": (_bad_magic, "not a GGUF file"),
    "bad version": (_bad_version, "version 99"),
    "absurd tensor count": (_absurd_tensor_count, "impossible number"),
    "absurd KV count": (_absurd_kv_count, "impossible number"),
    "absurd block_count": (_absurd_block_count, "block_count is 100000"),
    "a byte token spelled <0xf0>": (_respelled_byte_token, "is a byte token but is not spelled <0xNN>"),
    "a byte token spelled q~": (_short_byte_token, "is a byte token but is not spelled <0xNN>"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_model_file_is_one_line_exit_2(case: str, tiny_model: Path, tmp_path: Path) -> None:
    make, phrase = CASES[case]
    path = make(tiny_model, tmp_path)
    seed = seed_conversation()
    line = clean_failure(run(["-m", path, "hello"]), 2)
    assert str(path) in line and phrase in line, line
    assert_seed_intact(seed)


def test_absurd_block_count_never_reaches_llama_cpp(tmp_path: Path) -> None:
    """llama.cpp would abort() the process (SIGABRT, exit -6); -v shows it was never asked."""
    path = _absurd_block_count(Path(), tmp_path)
    result = run(["-v", "-m", path, "hello"])
    assert result.returncode == 2
    assert b"llama_model_load" not in result.stderr and b"GGML_ASSERT" not in result.stderr


def _can_switch_user() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


@pytest.mark.skipif(not _can_switch_user(), reason="needs root and setpriv to run lcchat as another user "
                    "(root reads any file whatever its mode)")
def test_unreadable_model_file(tiny_model: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="lcchat-unreadable-"))
    try:
        shared.chmod(0o755)
        model = shared / "secret.gguf"
        shutil.copy(tiny_model, model)
        model.chmod(0o600)  # root's, unreadable to nobody
        home = shared / "home"
        home.mkdir(mode=0o777)
        home.chmod(0o777)
        result = run(["-m", model, "hello"], env={"LCCHAT_HOME": str(home), "HOME": str(home)},
                     prefix=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        line = clean_failure(result, 2)
        assert str(model) in line and "permission" in line.lower(), line
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.parametrize("make", [_respelled_byte_token, _short_byte_token])
def test_doctor_reports_a_misspelled_byte_token(make, tmp_path: Path) -> None:
    """`lcchat doctor` used to call such a file ok, and loading it aborted the process."""
    path = make(Path(), tmp_path)
    result = run(["doctor", path])
    out = result.stdout.decode()
    assert result.returncode == 1, (result.returncode, out, result.stderr)
    problems = [line for line in out.splitlines() if line.startswith("problem: metadata:")]
    assert len(problems) == 1 and "is a byte token but is not spelled <0xNN>" in problems[0], out
    assert b"Traceback" not in result.stderr
