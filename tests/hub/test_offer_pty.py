"""`lcchat -p NAME` in a real pseudo-terminal (80x24, TERM=xterm) when the profile's model
is not downloaded: the question, "y", the choice and the download, then a chat on the
pulled file. Answering no downloads nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tests.commandline import lcchat_cmd
from tests.hub.conftest import REPO, write_profile

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parents[2]


def spawn(env: dict[str, str], *args: str):
    env = {**env, "TERM": "xterm", "COLUMNS": "80", "LINES": "24", "PROMPT_TOOLKIT_NO_CPR": "1"}
    env.pop("VISUAL", None)
    cmd = [*lcchat_cmd(), *args]
    child = pexpect.spawn(cmd[0], cmd[1:], env=env, cwd=str(ROOT), dimensions=(24, 80), encoding="utf-8",
                          codec_errors="replace", timeout=90)
    child.logfile_read = io.StringIO()
    return child


def test_answering_yes_pulls_the_best_fit_and_chats(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {f"tiny-{name}.gguf": data for name, data in quants.items()})
    write_profile(lcchat_home)
    child = spawn(env, "-p", "tiny", "--repl")
    child.expect_exact("not downloaded yet")
    child.expect_exact("[y/N] ")
    child.send("y\r")
    child.expect_exact("the best quality that fits")
    child.expect(r"\[#+\] 100%  [\d.]+ KiB of [\d.]+ KiB  [\d.]+ [KMG]?i?B/s")  # the bar, on a terminal
    child.expect_exact("sha256 and GGUF header checked")
    child.expect_exact(">>>")
    child.send("hello\r")
    child.expect(r"gen [\d.]+ t/s")  # a reply came from the pulled model
    child.expect_exact(">>>")
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.logfile_read.getvalue()
    assert child.exitstatus == 0, transcript[-2000:]
    assert "Traceback" not in transcript
    # Q8_0 ranks first (no measured loss, smaller than F16/F32) and fits: it is what came
    pulled = [p.name for p in (hf_cache / f"models--{REPO.replace('/', '--')}").glob("snapshots/*/*.gguf")]
    assert pulled == ["tiny-Q8_0.gguf"]
    # the next start finds it at once: no question, no network
    asked = len(hub.log)
    child = spawn(env, "-p", "tiny", "--repl")
    child.expect_exact(">>>")
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert "not downloaded" not in child.logfile_read.getvalue()
    assert len(hub.log) == asked


def test_answering_no_downloads_nothing(hub, env, hf_cache, lcchat_home, quants):
    hub.add(REPO, {"tiny-F32.gguf": quants["F32"]})
    write_profile(lcchat_home)
    child = spawn(env, "-p", "tiny", "--repl")
    child.expect_exact("[y/N] ")
    child.send("n\r")
    child.expect_exact("download it with: lcchat pull tiny")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 2
    assert hub.log == [] and not hf_cache.exists()
