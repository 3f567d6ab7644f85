"""The installed `lcchat` in a pseudo-terminal (80x24, TERM=xterm) with a GGUF whose reply
is ESC ] 0 ; PWNED BEL + OSC 52 + ESC [2J: nothing from the model or its file reaches the
terminal as a control sequence (pipe mode, `history show`, -v logs, a template's error),
while a pipe still gets the reply's bytes as the model wrote them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import models
from tests.commandline import lcchat_cmd

pexpect = pytest.importorskip("pexpect")

PIECES = ["\x1b]0;PWNED\x07", "\x1b]52;c;ZWNobyBwd25lZA==\x07", "\x1b[2J", "after"]
REPLY = "".join(PIECES)
LIVE = ("\x1b]0;", "\x1b]52;", "\x1b[2J", "\x07")  # what must never arrive raw
SHOWN = "␛]0;PWNED␇␛]52;c;ZWNobyBwd25lZA==␇␛[2Jafter"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    return models.write_scripted_model(tmp_path_factory.mktemp("hostile") / "hostile.gguf", PIECES,
                                       metadata={"general.name": "name\x1b]0;META\x07"})


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "LCCHAT_HOME", "TMUX")}
    env.update(TERM="xterm", LCCHAT_HOME=str(home), COLUMNS="80", LINES="24")
    return env


def in_pty(args: list[str], home: Path) -> tuple[str, int]:
    """Run lcchat in a pty; everything the terminal got (stdout and stderr), and the status."""
    cmd = [*lcchat_cmd(), *args]
    child = pexpect.spawn(cmd[0], cmd[1:], env=env_for(home), dimensions=(24, 80), encoding="utf-8",
                          codec_errors="replace", timeout=60)
    out = child.read()
    child.close()
    return out, child.exitstatus


def no_live_controls(out: str) -> None:
    for seq in LIVE:
        assert seq not in out, (seq, out[-1500:])


def test_one_shot_on_a_terminal_shows_the_reply_cleaned(hostile, lcchat_home) -> None:
    out, status = in_pty(["-m", str(hostile), "--temp", "0", "hi"], lcchat_home)
    assert status == 0, out
    no_live_controls(out)
    assert SHOWN in out


def test_one_shot_into_a_pipe_keeps_the_bytes(hostile, lcchat_home) -> None:
    done = subprocess.run([*lcchat_cmd(), "-m", str(hostile), "--temp", "0", "hi"], env=env_for(lcchat_home),
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == REPLY + "\n"


def test_history_show_on_a_terminal_is_cleaned_and_into_a_pipe_is_not(hostile, lcchat_home) -> None:
    _, status = in_pty(["-m", str(hostile), "--temp", "0", "hi"], lcchat_home)
    assert status == 0
    out, status = in_pty(["history", "show", "1"], lcchat_home)
    assert status == 0, out
    no_live_controls(out)
    assert SHOWN in out
    piped = subprocess.run([*lcchat_cmd(), "history", "show", "1"], env=env_for(lcchat_home), capture_output=True,
                           timeout=60)
    assert REPLY in piped.stdout.decode()


def test_verbose_logs_quote_the_file_cleaned(hostile, lcchat_home) -> None:
    out, status = in_pty(["-v", "-m", str(hostile), "--temp", "0", "hi"], lcchat_home)
    assert status == 0, out
    no_live_controls(out)
    assert "name␛]0;META␇" in out  # llama.cpp's log of general.name, shown


def test_a_template_error_is_shown_cleaned(tmp_path, lcchat_home) -> None:
    path = models.write_scripted_model(tmp_path / "t.gguf", "said anyway",
                                       chat_template="{{ raise_exception('\x1b]0;PWNED\x07\x1b[2J') }}")
    out, status = in_pty(["-v", "-m", str(path), "hi"], lcchat_home)
    assert status == 0, out
    no_live_controls(out)
    assert "the chat template refused the conversation: ␛]0;PWNED␇␛[2J" in out
