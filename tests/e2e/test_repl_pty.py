"""`lcchat --repl` in a real pseudo-terminal (80x24, TERM=xterm), driven with pexpect.

One session each on the tiny model and on SmolLM2: a message, /stream off, /vim with an
EDITOR script, Ctrl+C during a long reply and chatting on, /clear, /exit; exit status 0
and no traceback anywhere in what the terminal showed.
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest
from tests.commandline import lcchat_cmd

pexpect = pytest.importorskip("pexpect")

ROOT = Path(__file__).resolve().parents[2]
STATS = r"gen [\d.]+ t/s · \d+ tokens · ctx \d+/\d+"
STREAM_START = "\x1b[1;23r"  # the live toolbar reserves the last row: the reply is streaming


@pytest.fixture
def editor(tmp_path) -> Path:
    path = tmp_path / "editor.sh"
    path.write_text("#!/bin/sh\nprintf 'first line from the editor\\nsecond line from the editor\\n' > \"$1\"\n")
    path.chmod(0o755)
    return path


def spawn(args: list[str], *, home: Path, editor: Path):
    env = {k: v for k, v in os.environ.items() if k not in ("VISUAL", "NO_COLOR", "LCCHAT_HOME", "TMUX")}
    env.update(TERM="xterm", LCCHAT_HOME=str(home), EDITOR=str(editor), COLUMNS="80", LINES="24",
               PROMPT_TOOLKIT_NO_CPR="1")  # nothing here answers cursor-position requests
    cmd = [*lcchat_cmd(), "--repl", *args]
    child = pexpect.spawn(cmd[0], cmd[1:], env=env, cwd=str(ROOT), dimensions=(24, 80), encoding="utf-8",
                          codec_errors="replace", timeout=60)  # generous: CI machines are shared and slow
    child.logfile_read = io.StringIO()
    return child


def prompt(child) -> None:
    child.expect_exact(">>>")


def say(child, text: str) -> None:
    """Type a line and press Enter (CR: in the prompt, LF is Ctrl+J, a new line)."""
    prompt(child)
    child.send(text + "\r")


def interrupt_a_long_reply(child, message: str, *, tries: int = 8) -> None:
    """Send `message`, press Ctrl+C once the reply streams, and see it marked. A reply
    may end by itself before the key arrives; then try again."""
    for attempt in range(tries):
        say(child, f"{message} ({attempt})" if attempt else message)
        child.expect_exact(STREAM_START)
        time.sleep(0.15)
        child.send("\x03")
        hit = child.expect_exact(["[interrupted]", "Press Ctrl+D", "Interrupted."])
        if hit == 0:
            return
    pytest.fail(f"no reply ran long enough to interrupt in {tries} tries")


def finish(child) -> str:
    say(child, "/clear")
    child.expect_exact("Conversation cleared.")
    say(child, "/exit")
    child.expect(pexpect.EOF)
    child.close()
    transcript = child.logfile_read.getvalue()
    assert child.exitstatus == 0, transcript[-2000:]
    assert "Traceback" not in transcript
    return transcript


def run_session(child, *, long_message: str, setup_long: list[str], after_long: list[str]) -> str:
    child.expect_exact("loaded ")
    # 1. a message and its reply, with the figures after it
    say(child, "hello")
    child.expect(STATS)
    # 2. /stream off: the next reply is printed whole when done
    say(child, "/stream off")
    child.expect_exact("Streaming is off.")
    say(child, "what is the sky?")
    child.expect(STATS)
    # 3. /vim: the editor script writes two lines, and they are sent
    say(child, "/vim")
    child.expect_exact("first line from the editor")
    child.expect_exact("second line from the editor")
    child.expect(STATS)
    # 4. Ctrl+C during a long reply, then chat on
    for line in ["/stream on", *setup_long]:
        say(child, line)
    interrupt_a_long_reply(child, long_message)
    for line in after_long:
        say(child, line)
    say(child, "and now a short answer, please")
    child.expect(STATS)
    # 5. /clear and /exit
    return finish(child)


def test_repl_session_on_the_tiny_model(tiny_model, tmp_path, editor) -> None:
    child = spawn(["-m", str(tiny_model), "--temp", "0.8", "-c", "8192", "-n", "24"], home=tmp_path / "home",
                  editor=editor)
    try:
        # Greedy decoding of the random model loops instead of reaching EOS: a long reply.
        transcript = run_session(child, long_message="write a poem",
                                 setup_long=["/set temperature 0", "/set max_tokens -1"],
                                 after_long=["/set temperature 0.8", "/set max_tokens 24"])
    finally:
        child.close(force=True)
    assert "[interrupted]" in transcript
    assert (tmp_path / "home" / "data" / "repl_history").stat().st_mode & 0o777 == 0o600


@pytest.mark.smollm2
def test_repl_session_on_smollm2(smollm2, tmp_path, editor) -> None:
    child = spawn(["-m", str(smollm2), "-n", "24"], home=tmp_path / "home", editor=editor)
    try:
        transcript = run_session(child, long_message="Write a very long story about a dragon and a knight.",
                                 setup_long=["/set max_tokens 2000"], after_long=["/set max_tokens 24"])
    finally:
        child.close(force=True)
    assert "[interrupted]" in transcript


def test_the_start_banner_wraps_between_words_at_80_columns(tiny_model: Path, tmp_path: Path, editor: Path) -> None:
    """The banner is printed before the REPL's printer exists; with a long model file name it
    must still break between words, not let the terminal cut "Ctrl+D" in two."""
    long_name = tmp_path / ("a-model-file-with-a-rather-long-descriptive-name-" + "x" * 8 + ".gguf")
    long_name.write_bytes(tiny_model.read_bytes())  # a copy: a symlink is shown by its target
    child = spawn(["-m", str(long_name)], home=tmp_path / "home", editor=editor)
    try:
        prompt(child)
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    shown = child.logfile_read.getvalue()
    banner = shown[shown.index("loaded "):shown.index("leaves") + len("leaves")]
    lines = [line for line in banner.replace("\r", "").split("\n")]
    assert len(lines) > 1 and all(len(line) < 80 for line in lines), lines
    assert any(line.endswith("Ctrl+D leaves") or line.startswith("Ctrl+D") for line in lines), lines
