"""Making a quantization: llama_model_quantize in a child process, checks before it
starts, and nothing half-written left behind."""

from __future__ import annotations

import threading
from pathlib import Path

import psutil
import pytest

from lcchat.engine import gguf_info, quant
from lcchat.engine.events import Done, Error, Notice, Progress, Token
from lcchat.engine.model import Cancelled
from lcchat.engine.session import open_session
from lcchat.errors import InputError, LcchatError
from tests.quant.conftest import chat_profile


def make(source: Path, target: str, output: Path | None = None, **flags) -> tuple[Path, list]:
    plan = quant.plan_quantize(source, target, output, **flags)
    events = list(quant.run_quantize(plan, nthread=1))
    assert plan.written is not None and plan.written.is_file()
    return plan.written, events


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".partial")


@pytest.mark.parametrize("target", ["Q8_0", "Q4_0"])
def test_quantize_f32_then_load_and_chat(f32_model: Path, target: str) -> None:
    out, events = make(f32_model, target)
    assert out == f32_model.with_name(f"tiny-{target}.gguf")
    progress = [e for e in events if isinstance(e, Progress)]
    n_tensors = len(gguf_info.read_gguf(f32_model, vocab=False).tensors)
    assert progress[-1] == Progress("quantize", n_tensors, n_tensors)
    assert [e.done for e in progress] == sorted(e.done for e in progress)
    assert any(isinstance(e, Notice) and "wrote" in e.text for e in events)

    info = gguf_info.load_checked(out)
    assert info.file_type_name == target
    assert quant.file_type_label(info) == f"mostly {target}"
    assert target in info.tensor_type_histogram
    estimate = quant.estimate_output_size(gguf_info.read_gguf(f32_model), target)
    assert 0.6 * info.file_size < estimate < 1.4 * info.file_size
    assert leftovers(out.parent) == []

    session = open_session(chat_profile(out))
    try:
        reply = list(session.send("hello there"))
        assert not [e for e in reply if isinstance(e, Error)]
        assert isinstance(reply[-1], Done) and reply[-1].finish_reason in ("stop", "length")
        text = "".join(e.text for e in reply if isinstance(e, Token))
        assert text.strip() and reply[-1].text == text  # the quantized weights still make a reply
        assert [(m.role, m.content) for m in session.conversation.messages] == [("user", "hello there"),
                                                                                ("assistant", text)]
    finally:
        session.model.close()


def test_requantizing_is_refused_with_the_reason(f32_model: Path) -> None:
    q8, _ = make(f32_model, "Q8_0")
    with pytest.raises(InputError) as caught:
        quant.plan_quantize(q8, "Q4_0")
    message = str(caught.value)
    assert "already quantized (Q8_0)" in message and "--allow-requantize" in message
    assert "errors of both steps add up" in message
    assert caught.value.exit_code == 2
    out, _ = make(q8, "Q4_0", allow_requantize=True)
    assert gguf_info.read_gguf(out, vocab=False).file_type_name == "Q4_0"


def test_llama_cpp_refusal_is_a_failure_and_leaves_nothing(f32_model: Path) -> None:
    q8, _ = make(f32_model, "Q8_0")
    info = gguf_info.read_gguf(q8, vocab=False)
    out = q8.with_name("again.gguf")
    # Skip our own check to see llama.cpp's: it refuses to requantize without the flag.
    plan = quant.QuantPlan(q8, info, "Q4_0", out, 1000, allow_requantize=False)
    with pytest.raises(LcchatError) as caught:
        list(quant.run_quantize(plan, nthread=1))
    assert not isinstance(caught.value, InputError) and caught.value.exit_code == 1
    assert "could not quantize" in str(caught.value) and "requantizing from type q8_0 is disabled" in str(caught.value)
    assert not out.exists() and leftovers(q8.parent) == []


def test_an_existing_file_is_kept_unless_forced(f32_model: Path) -> None:
    target = f32_model.with_name("mine.gguf")
    target.write_bytes(b"precious")
    with pytest.raises(InputError, match="already exists; pass --force"):
        quant.plan_quantize(f32_model, "Q8_0", target)
    assert target.read_bytes() == b"precious"
    out, _ = make(f32_model, "Q8_0", target, force=True)
    assert out == target and gguf_info.read_gguf(target, vocab=False).file_type_name == "Q8_0"


def test_bad_requests_are_input_errors(f32_model: Path) -> None:
    with pytest.raises(InputError, match="unknown quantization type 'Q9_9'"):
        quant.plan_quantize(f32_model, "Q9_9")
    with pytest.raises(InputError, match="already F32"):
        quant.plan_quantize(f32_model, "f32")
    with pytest.raises(InputError, match="importance matrix"):
        quant.plan_quantize(f32_model, "IQ2_XXS")
    with pytest.raises(InputError, match="the file being quantized"):
        quant.plan_quantize(f32_model, "Q8_0", f32_model, force=True)
    assert quant.plan_quantize(f32_model, "q4_k_m").target == "Q4_K_M"


def test_short_disk_space_is_refused(f32_model: Path, monkeypatch) -> None:
    class Usage:
        total, used, free = 10**9, 10**9, 1000

    monkeypatch.setattr(quant.make.shutil, "disk_usage", lambda path: Usage)
    with pytest.raises(LcchatError, match="not enough free disk space") as caught:
        quant.plan_quantize(f32_model, "Q8_0")
    assert caught.value.exit_code == 1


def test_output_may_be_a_directory(f32_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out, _ = make(f32_model, "Q4_0", folder)
    assert out == folder / "tiny-Q4_0.gguf"


def _children() -> set[int]:
    """Live child processes of this test process (zombies are already dead)."""
    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"}


def test_cancel_kills_the_quantizer_and_leaves_no_file(slow_model: Path) -> None:
    before = _children()  # e.g. a session-scoped server another test folder started
    plan = quant.plan_quantize(slow_model, "Q4_K_M")
    cancel = threading.Event()
    seen = []
    with pytest.raises(Cancelled):
        for event in quant.run_quantize(plan, cancel=cancel, nthread=1, poll_s=0.02):
            seen.append(event)
            if isinstance(event, Progress):
                cancel.set()  # at once: the child has barely started
    assert plan.written is None
    assert not plan.output.exists()
    assert leftovers(slow_model.parent) == []
    assert _children() - before == set()


def test_ctrl_c_in_the_consumer_leaves_no_file(slow_model: Path) -> None:
    """Ctrl+C while the caller handles an event closes the generator: same cleanup."""
    before = _children()
    plan = quant.plan_quantize(slow_model, "Q4_K_M")
    events = quant.run_quantize(plan, nthread=1)
    for event in events:
        if isinstance(event, Progress) and event.done > 0:
            break
    assert leftovers(slow_model.parent) != []  # the temporary file is being written
    events.close()
    assert not plan.output.exists()
    assert leftovers(slow_model.parent) == []
    assert _children() - before == set()


def test_a_crash_in_the_quantizer_child_is_one_line_and_its_traceback_only_logged(tmp_path) -> None:
    """The child reports an exception as one "E" line (what the parent shows) and the
    traceback as "T" lines (logged for -v), never as raw traceback text."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "lcchat.engine.quant.child", str(tmp_path / "missing.gguf")],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    lines = [line for line in r.stdout.splitlines() if line]
    assert lines and lines[-1].startswith("E ") and all(line[:2] in ("T ", "E ", "W ", "P ", "X ") for line in lines)
    assert "Traceback" not in r.stderr
