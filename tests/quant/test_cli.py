"""`lcchat quant MODEL [--to TYPE] ...`: the report, making a file, exit statuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lcchat import cli, quantcli
from lcchat.engine import gguf_info


def test_report_without_loading(f32_model: Path, capsys) -> None:
    assert quantcli.main([str(f32_model), "--ctx", "1024"]) == 0
    out = capsys.readouterr().out
    assert "file type        all F32" in out
    assert "tensor types     F32 ×21" in out
    assert "bits per weight  32.00" in out
    assert "parameters" in out and "file size" in out
    assert "Q4_K_M" in out and "+0.0532" in out and "◀ this file" in out.split("F32", 2)[-1]
    assert "Memory at n_ctx 1024" in out and "KV cache" in out and "q8_0:" in out
    assert "fits?      yes" in out


def test_make_then_refuse_to_overwrite(f32_model: Path, capsys) -> None:
    assert quantcli.main([str(f32_model), "--to", "q8_0", "-t", "1"]) == 0
    captured = capsys.readouterr()
    out = f32_model.with_name("tiny-Q8_0.gguf")
    assert captured.out.strip() == str(out)
    assert "quantizing: 21/21 tensors (100%)" in captured.err and "wrote" in captured.err
    assert gguf_info.read_gguf(out, vocab=False).file_type_name == "Q8_0"
    assert os.stat(out).st_mode & 0o777 == os.stat(f32_model).st_mode & 0o777

    assert quantcli.main([str(f32_model), "--to", "Q8_0"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert quantcli.main([str(out), "--to", "Q4_0"]) == 2
    assert "already quantized" in capsys.readouterr().err
    assert quantcli.main([str(f32_model), "--to", "Q8_0", "--force", "-t", "1"]) == 0
    assert quantcli.main([str(f32_model), "--to", "Q7"]) == 2
    assert "unknown quantization type" in capsys.readouterr().err


def test_bad_model_file_is_input_error(tmp_path: Path, capsys) -> None:
    assert quantcli.main([str(tmp_path / "missing.gguf")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_dispatched_from_lcchat(f32_model: Path, capsys) -> None:
    assert cli.main(["quant", str(f32_model)]) == 0
    assert "all F32" in capsys.readouterr().out


def test_ctrl_c_exits_130_and_leaves_no_file(slow_model: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lcchat", "quant", str(slow_model), "--to", "Q4_K_M", "-t", "1"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    stderr = proc.stderr
    assert stderr is not None  # for the type checker: stderr=PIPE
    while b"quantizing:" not in stderr.readline():  # the child has started quantizing
        assert proc.poll() is None, "the quantization ended before Ctrl+C could be sent"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err  # 0 would mean it finished: the signal came too late to test anything
    assert b"Traceback" not in err
    names = [p.name for p in slow_model.parent.iterdir()]
    assert names == [slow_model.name]


@pytest.mark.smollm2
def test_smollm2_report_says_q4_1(smollm2: Path, capsys) -> None:
    assert quantcli.main([str(smollm2)]) == 0
    out = capsys.readouterr().out
    assert "file type        mostly Q4_1" in out
    assert "Q4_1 ×" in out
    q4_1_row = next(line for line in out.splitlines() if line.strip().startswith("Q4_1 "))
    assert "◀ this file" in q4_1_row and "+0.1585" in q4_1_row
    assert "134.5M" in out
