"""SIGHUP (a dropped SSH link) and SIGTERM mid-reply: the partial reply is stored, marked
interrupted, the process leaves promptly with 128 + the signal, and `lcchat -C` goes on
from there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import models
from tests.reliability.helpers import answered, conversations, lcchat_cmd, run


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    """Wide enough to take a while per token; greedy, it never says EOS."""
    return models.write_tiny_model(tmp_path_factory.mktemp("slow") / "slow.gguf", n_embd=256, n_head=4,
                                   n_head_kv=4, n_ff=512, n_layer=4, n_ctx_train=8192)


def interrupt_mid_reply(model: Path, sig: int, *extra: str) -> tuple[subprocess.Popen, bytes, bytes]:
    # -n bounds the run should the signal be missed; the signal comes once the reply streams,
    # and the stored reply being marked interrupted shows that it came mid-reply
    proc = subprocess.Popen([*lcchat_cmd(), "-m", str(model), "-n", "1500", "-c", "8192", "--temp", "0", *extra,
                             "hi there"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = os.read(proc.stdout.fileno(), 1)  # the reply is streaming (unbuffered: communicate() reads the fd)
    assert first, proc.stderr.read()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc, first + out, err


def test_sighup_mid_reply_is_saved_and_continued(slow_model: Path) -> None:
    proc, out, err = interrupt_mid_reply(slow_model, signal.SIGHUP)
    assert proc.returncode == 129, err
    assert err == b"", err  # no traceback, no noise
    (conv,) = conversations()
    user, reply = conv.messages
    assert user.content == "hi there" and reply.role == "assistant" and reply.interrupted
    assert reply.content and reply.content.strip() == out.decode().strip()  # everything printed was kept

    listing = run(["history", "list"]).stdout.decode()
    assert f"{conv.id}" in listing and "hi there" in listing and "(interrupted)" in listing

    resumed = run(["-v", "-m", slow_model, "-c", "8192", "-n", "4", "-C", "go on"], stdin=None)
    answered(resumed)
    assert f"continuing conversation {conv.id}".encode() in resumed.stderr
    assert b"the last reply was interrupted" in resumed.stderr
    (conv,) = conversations()
    assert [m.content for m in conv.messages][:2] == ["hi there", reply.content]
    assert conv.messages[1].interrupted and conv.messages[2].content == "go on"
    assert len(conv.messages) == 4


def test_sigterm_mid_reply(slow_model: Path) -> None:
    proc, out, err = interrupt_mid_reply(slow_model, signal.SIGTERM)
    assert proc.returncode == 143, err
    assert err == b""
    (conv,) = conversations()
    assert conv.messages[1].interrupted and conv.messages[1].content.strip() == out.decode().strip()


def test_sigterm_in_json_mode_still_writes_the_answer_so_far(monkeypatch) -> None:
    """In pipe mode the handler lets the answer end: --json still prints one whole object."""
    import io

    from lcchat import pipe
    from lcchat.engine.fake import FakeModel, fake_session
    from lcchat.signals import SIGNALS, Signals
    from lcchat.store import attach

    class SignalledModel(FakeModel):
        """Sends SIGTERM from inside the reply, at its 10th token: mid-reply, whatever the speed."""

        def make_sampler(self, sampling):
            sampler = super().make_sampler(sampling)
            inner, count = sampler.sample, [0]

            def sample():
                count[0] += 1
                if count[0] == 10:
                    os.kill(os.getpid(), signal.SIGTERM)
                    deadline = time.monotonic() + 30  # the handler runs in the main thread: wait for its cancel
                    while not self.abort_requested and time.monotonic() < deadline:
                        time.sleep(0.001)
                return inner()

            sampler.sample = sample
            return sampler

    session = fake_session(SignalledModel(replies=[["word "] * 400]))
    attach(session)
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    signals = Signals("pipe")
    try:
        assert signals.install()
        signals.watch(session)
        out = io.StringIO()
        status = pipe.run(session, "talk", as_json=True, out=out, err=io.StringIO())
        assert signals.exit_status(status) == 143
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    data = json.loads(out.getvalue())
    assert data["finish_reason"] == "interrupted" and 0 < data["text"].count("word") < 400
    (conv,) = conversations()
    assert conv.messages[1].interrupted and conv.messages[1].content == data["text"]


def test_sighup_in_the_repl(slow_model: Path) -> None:
    import pexpect  # in the test extra: a broken install fails here rather than skipping

    child = pexpect.spawn(lcchat_cmd()[0], [*lcchat_cmd()[1:], "--repl", "-m", str(slow_model), "-c", "8192",
                                            "-n", "1500", "--temp", "0"],
                          env={**os.environ, "TERM": "dumb"}, timeout=60)
    try:
        child.expect("loaded")
        child.expect(">")
        child.send("hello there\r")  # Enter (a line feed would add a line)
        child.expect("hello there")  # the terminal's echo; what comes next is the reply
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait for the reply to be streaming
            time.sleep(0.2)
            if _has_streamed(child):
                break
        child.kill(signal.SIGHUP)
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 129, (child.exitstatus, child.signalstatus)
    (conv,) = conversations()
    assert conv.messages[0].content == "hello there"
    assert conv.messages[1].role == "assistant" and conv.messages[1].interrupted


def _has_streamed(child) -> bool:
    try:
        child.read_nonblocking(4096, timeout=0.1)
        return True
    except Exception:  # noqa: BLE001 - pexpect.TIMEOUT: nothing yet
        return False
