"""End to end: the real `python -m lcchat --tui` in tmux at 80x24 with TERM=xterm, on the
tiny model. What a person sees is read back with capture-pane."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

STATUS = re.compile(r"gen (?P<rate>[\d.]+k?) t/s.*ctx \S* (?P<used>\d+)/(?P<size>\d+).*RAM (?P<ram>\d+(?:\.\d+)?[KMG])")
FOOTER = re.compile(r"gen (?P<rate>[\d.]+k?) t/s · (?P<n>\d+) tokens?")


class Pane:
    """One tmux server (a private socket) running one command at 80x24."""

    def __init__(self, command: str, *, width: int = 80, height: int = 24) -> None:
        self.socket = f"lcchat-e2e-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tmux("new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height), command)

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        if out.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "main", *keys)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "main", "-l", text)
        self.send("Enter")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-t", "main")

    def wait(self, predicate, timeout: float = 15.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if predicate(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}; the screen:\n{text}")
            time.sleep(0.1)

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        return self.wait(lambda text: needle in text, timeout, repr(needle))

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def lcchat(home: Path, *args: str, **env: str) -> str:
    """The shell command that runs lcchat in the pane, then reports its exit status."""
    variables = {"TERM": "xterm", "LCCHAT_HOME": str(home), **env}
    prefix = "env -u VISUAL " + " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
    argv = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "lcchat", "--tui", *args))
    return f"{prefix} {argv}; echo LCCHAT-EXIT=$?; sleep 60"


def status_line(screen: str) -> re.Match:
    for line in screen.splitlines():
        match = STATUS.search(line)
        if match:
            return match
    raise AssertionError(f"no status line on the screen:\n{screen}")


def rate(text: str) -> float:
    return float(text[:-1]) * 1000 if text.endswith("k") else float(text)


@pytest.fixture
def panes():
    opened: list[Pane] = []

    def open_pane(command: str) -> Pane:
        pane = Pane(command)
        opened.append(pane)
        return pane

    yield open_pane
    for pane in opened:
        pane.close()


def test_chat_interrupt_edit_and_quit_at_80x24(tiny_model, tmp_path, panes) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'written in the editor\\n' > \"$1\"\n")
    editor.chmod(0o755)
    pane = panes(lcchat(tmp_path / "home", "-m", str(tiny_model), "--temp", "0", "-n", "24", "-c", "8192",
                        EDITOR=str(editor)))
    pane.wait_for("is loaded", timeout=30)

    # One reply: the status line shows speed, context fill and RAM.
    pane.type("hi")
    screen = pane.wait(lambda s: FOOTER.search(s) and "Enter send" in s, what="the first reply")
    status = status_line(screen)
    assert rate(status["rate"]) > 0, screen
    assert int(status["used"]) > 0 and int(status["size"]) == 8192, screen
    assert status["ram"][:-1] != "0", screen
    assert "CPU only" in screen or "VRAM" in screen

    # Ctrl+C mid-reply keeps the partial reply, marked, and the app goes on.
    pane.type("/set max_tokens -1")
    pane.wait_for("max_tokens = -1")
    pane.type("Hello there")
    pane.wait(lambda s: "generating" in s and "t/s" in s, what="a reply being generated")
    time.sleep(0.5)
    pane.send("C-c")
    screen = pane.wait(lambda s: "interrupted" in s and "Enter send" in s, what="the reply to stop")
    assert "interrupted: the partial reply is kept" in screen

    pane.type("/set max_tokens 5")
    pane.wait_for("max_tokens = 5")
    pane.type("hi again")
    pane.wait(lambda s: re.search(r"· 5 tokens", s) and "Enter send" in s, what="a reply after the interrupt")

    # /vim gives the terminal to $EDITOR (App.suspend) and sends what it saved.
    pane.type("/vim")
    screen = pane.wait(lambda s: "written in the editor" in s and "Enter send" in s, what="the edited message")

    pane.send("C-q")
    pane.wait_for("LCCHAT-EXIT=0", timeout=10)


def test_a_model_that_cannot_load_is_one_line_and_exit_status_2(tmp_path, panes) -> None:
    pane = panes(lcchat(tmp_path / "home", "-m", str(tmp_path / "missing.gguf")))
    screen = pane.wait_for("LCCHAT-EXIT=2", timeout=30)
    assert "lcchat: " in screen and "missing.gguf" in screen
    assert "Traceback" not in screen
