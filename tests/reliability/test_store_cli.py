"""Conversations survive at the command line: every run is stored, -C continues it, a data
dir that cannot be written never stops the chat, two processes lose nothing, and a reader
that goes away (`| head`) still leaves the turn stored."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    answered, assert_seed_intact, clean_failure, conversations, lcchat_cmd, run, seed_conversation,
)


def warning_only(result) -> str:
    """The chat answered, and stderr is exactly one warning that saving failed."""
    answered(result)
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lcchat: warning: could not save the conversation"), lines[0]
    assert "the chat goes on" in lines[0]
    return lines[0]


def test_each_run_is_stored_and_dash_c_continues_it(tiny_model: Path) -> None:
    first = answered(run(["-m", tiny_model, "-n", "6", "--seed", "1", "--save-state", "hello there"], stdin=None))
    listing = run(["history", "list"])
    assert listing.returncode == 0
    (line,) = listing.stdout.decode().splitlines()
    cid = int(line.split()[0])
    assert "default" in line and line.rstrip().endswith("hello there")
    assert conversations()[-1].messages[-1].content == first.strip()

    again = run(["-v", "-m", tiny_model, "-n", "6", "-C", "and then"], stdin=None)
    answered(again)
    assert f"continuing conversation {cid}: 2 messages".encode() in again.stderr
    assert b"tokens restored from the saved KV state" in again.stderr
    (conv,) = conversations()
    assert [m.content for m in conv.messages][::2] == ["hello there", "and then"]

    by_id = run(["-m", tiny_model, "-n", "6", "-C", str(cid), "third"], stdin=None)
    answered(by_id)
    assert len(conversations()) == 1 and len(conversations()[0].messages) == 6
    assert run(["history", "show", str(cid)]).stdout.decode().count("you: ") == 3


def test_continuing_a_conversation_that_does_not_exist(tiny_model: Path) -> None:
    line = clean_failure(run(["-m", tiny_model, "-C", "41", "hi"], stdin=None), 2)
    assert "no conversation '41'" in line
    line = clean_failure(run(["-m", tiny_model, "-C", "hi"], stdin=None), 2)
    assert "no saved conversation of profile 'default'" in line


def test_a_data_dir_that_cannot_be_created_does_not_stop_the_chat(tiny_model: Path, lcchat_home: Path) -> None:
    (lcchat_home / "data").write_text("a file where the data dir should be")
    line = warning_only(run(["-m", tiny_model, "-n", "4", "hello"]))
    assert str(lcchat_home / "data") in line


def test_a_full_disk_does_not_stop_the_chat(tiny_model: Path) -> None:
    seed = seed_conversation()

    def small_files() -> None:  # writes past 1 KB fail with EFBIG, as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    warning_only(run(["-m", tiny_model, "-n", "4", "hello"], preexec_fn=small_files))
    assert_seed_intact(seed)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv: root can write to a read-only directory")
def test_a_read_only_data_dir_does_not_stop_the_chat(tiny_model: Path) -> None:
    shared = Path(tempfile.mkdtemp(prefix="lcchat-readonly-"))
    try:
        shared.chmod(0o755)
        model = shared / "tiny.gguf"
        shutil.copy(tiny_model, model)
        model.chmod(0o644)
        home = shared / "home"
        (home / "data").mkdir(parents=True)
        (home / "data").chmod(0o555)
        result = run(["-m", model, "-n", "4", "hello"], env={"LCCHAT_HOME": str(home), "HOME": str(home)},
                     prefix=["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        warning_only(result)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_two_processes_at_once_both_conversations_complete(tiny_model: Path) -> None:
    procs = [subprocess.Popen([*lcchat_cmd(), "-m", str(tiny_model), "-n", "8", f"question {n}"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for n in (1, 2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0 and not err, err
    stored = {c.messages[0].content: c for c in conversations()}
    assert set(stored) == {"question 1", "question 2"}
    for n, (out, _) in zip((1, 2), outputs):
        messages = stored[f"question {n}"].messages
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[1].content == out.decode().strip()


def test_a_reader_that_goes_away_leaves_the_turn_stored(tiny_model: Path) -> None:
    cmd = " ".join(lcchat_cmd()) + f" -m {tiny_model} -n 200 --temp 0 hello | head -c 1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b"" and len(result.stdout) == 1
    (conv,) = conversations()
    assert [m.role for m in conv.messages] == ["user", "assistant"]
    assert conv.messages[1].content  # what was generated before the pipe closed
