"""Making a quantization: checking the plan, then running llama_model_quantize in a child.

llama_model_quantize has no cancel and can abort() the process on a bad file, so it runs
in a child process (`python -m lcchat.engine.quant.child`): cancelling kills the child,
and a crash there cannot take the chat with it. The child writes to a hidden temporary
file beside the target (`.NAME.XXXX.partial`, not a .gguf); the parent renames it only
after the child succeeded and the result reads back as a valid GGUF, and removes it on
failure, cancel or Ctrl+C. If the parent dies, the child sees its stdin close, deletes
the temporary file and exits.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from lcchat.engine import gguf_info
from lcchat.engine.events import Event, Notice, Progress
from lcchat.engine.monitor import human_bytes
from lcchat.engine.quant.classify import estimate_output_size, is_quantized
from lcchat.engine.quant.table import MiB, NEEDS_IMATRIX, llama_ftype_name, normalize_type
from lcchat.engine.quant.variants import default_output, in_installed_package, same_file, user_models_dir
from lcchat.errors import InputError, LcchatError

log = logging.getLogger("lcchat.quant")

@dataclass
class QuantPlan:
    source: Path
    info: gguf_info.GGUFInfo
    target: str  # "Q4_K_M"
    output: Path
    estimate: int  # bytes
    allow_requantize: bool = False
    force: bool = False
    written: Path | None = None  # set when the file is in place

    @property
    def ftype_constant(self) -> str:
        return llama_ftype_name(self.target)


REQUANTIZE_WHY = (
    "its weights were already rounded to {current}, and quantizing rounded weights rounds them again: "
    "the errors of both steps add up, so the result is worse than a {target} made from the F16/F32 original "
    "(and a higher-precision target cannot win back what {current} lost)"
)


def plan_quantize(source: str | os.PathLike[str], target: str, output: str | os.PathLike[str] | None = None, *,
                  allow_requantize: bool = False, force: bool = False,
                  info: gguf_info.GGUFInfo | None = None) -> QuantPlan:
    """Check a quantization before starting it. InputError (exit 2) for an unknown type,
    a requantize without allow_requantize, an existing output without force; LcchatError
    (exit 1) when the disk is short of space."""
    source = Path(source)
    type_name = normalize_type(target)
    if type_name in NEEDS_IMATRIX:
        raise InputError(f"{type_name} needs an importance matrix (llama.cpp's imatrix tool), which lcchat does not "
                         "make; pick IQ2_M, Q2_K or a larger type")
    info = info or gguf_info.load_checked(source, vocab=False)
    current = (info.file_type_name or "?").upper()
    if current == type_name:
        raise InputError(f"{source.name} is already {type_name}")
    if is_quantized(info) and not allow_requantize:
        why = REQUANTIZE_WHY.format(current=current, target=type_name)
        raise InputError(f"{source.name} is already quantized ({current}); refusing to quantize it again because {why}. "
                         "Quantize the original F16/F32 GGUF instead, or pass --allow-requantize to do it anyway")
    out = Path(output) if output else default_output(source, type_name)
    if out.is_dir():
        out = out / default_output(source, type_name).name
    if same_file(out, source):
        raise InputError(f"{out} is the file being quantized; choose another output (-o)")
    if out.exists() and not force:
        raise InputError(f"{out} already exists; pass --force to replace it, or choose another name with -o")
    if not output and out.parent == user_models_dir():
        from lcchat.paths import ensure_private_dir

        try:
            ensure_private_dir(out.parent)
        except OSError as exc:
            raise LcchatError(f"cannot create {out.parent}: {exc.strerror or exc}; choose another output (-o)") from exc
    if not out.parent.is_dir():
        raise InputError(f"{out.parent} is not a directory; create it or choose another output (-o)")
    estimate = estimate_output_size(info, type_name)
    free = shutil.disk_usage(out.parent).free
    need = int(estimate * 1.05) + MiB
    if free < need:
        raise LcchatError(f"not enough free disk space in {out.parent}: a {type_name} of {source.name} needs about "
                          f"{human_bytes(estimate)} and {human_bytes(free)} is free; free some space or write "
                          "elsewhere with -o")
    return QuantPlan(source, info, type_name, out, estimate, allow_requantize, force)


def run_quantize(plan: QuantPlan, *, cancel: threading.Event | None = None, nthread: int = 0,
                 poll_s: float = 0.1) -> Iterator[Event]:
    """Quantize in a child process; yield Progress("quantize", tensors done, tensors) and
    Notices. Raises Cancelled when `cancel` is set (the child is killed), LcchatError when
    llama.cpp fails. The output appears only on success (plan.written is then set); the
    temporary file is removed whatever happens, Ctrl+C and closing this generator included."""
    from lcchat.engine.model import Cancelled

    total = len(plan.info.tensors)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{plan.output.name}.", suffix=".partial", dir=plan.output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    proc: subprocess.Popen | None = None
    lines: queue.SimpleQueue = queue.SimpleQueue()
    try:
        where = plan.output
        if plan.output.parent != plan.source.parent and in_installed_package(plan.source):
            where = f"{plan.output} (the source is inside an installed package, so the new file goes to lcchat's data dir)"
        yield Notice(f"quantizing {plan.source.name} ({plan.info.file_type_name}) to {plan.target}: about "
                     f"{human_bytes(plan.estimate)}, written to {where}")
        yield Progress("quantize", 0, total)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lcchat.engine.quant.child", str(plan.source), str(tmp), plan.ftype_constant,
             str(max(0, nthread)), "1" if plan.allow_requantize else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, env=_child_env(),
        )
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), name="lcchat-quant-pump", daemon=True)
        reader.start()
        said: collections.deque[str] = collections.deque(maxlen=12)
        status = None
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("quantization was cancelled; nothing was written")
            try:
                line = lines.get(timeout=poll_s)
            except queue.Empty:
                continue
            if line is None:
                break
            kind, _, rest = line.partition(" ")
            if kind == "P":
                done, _, n = rest.partition(" ")
                yield Progress("quantize", int(done), int(n) or total)
            elif kind == "X":
                status = int(rest or 1)
            elif kind in ("W", "E"):
                said.append(rest)
            elif kind == "T":
                log.debug("quantizer child: %s", rest)  # its traceback, for -v
            elif line.strip():
                said.append(line.strip())
        code = proc.wait()
        if cancel is not None and cancel.is_set():
            raise Cancelled("quantization was cancelled; nothing was written")
        if code != 0 or status != 0:
            detail = next((s for s in reversed(said) if "error" in s.lower() or "fail" in s.lower()), said[-1] if said else "")
            detail = detail.rpartition("failed to quantize: ")[2] or detail
            why = f": {detail}" if detail else f" (the quantizer exited with status {code})"
            raise LcchatError(f"llama.cpp could not quantize {plan.source.name} to {plan.target}{why}")
        written = gguf_info.read_gguf(tmp, vocab=False)  # a file that does not read back is not kept
        try:
            os.chmod(tmp, plan.source.stat().st_mode & 0o777)  # mkstemp made it private
        except OSError:
            pass
        _move_into_place(tmp, plan.output, force=plan.force)
        plan.written = plan.output
        bpw = written.bits_per_weight or 0.0
        yield Notice(f"wrote {plan.output} ({human_bytes(written.file_size)}, {bpw:.2f} bits per weight; "
                     f"estimated {human_bytes(plan.estimate)})")
    finally:
        if proc is not None:
            _stop(proc)
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            log.warning("could not remove %s", tmp, exc_info=True)


def _move_into_place(tmp: Path, out: Path, *, force: bool) -> None:
    if force:
        os.replace(tmp, out)
        return
    try:
        os.link(tmp, out)  # fails if `out` appeared meanwhile: never clobber without --force
    except FileExistsError:
        raise InputError(f"{out} appeared while quantizing; pass --force to replace it") from None
    except OSError:
        if out.exists():
            raise InputError(f"{out} already exists; pass --force to replace it") from None
        os.replace(tmp, out)
        return
    tmp.unlink()


def _child_env() -> dict[str, str]:
    """The child imports this same lcchat, installed or not."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _pump(stream, out: queue.SimpleQueue) -> None:
    try:
        for raw in iter(stream.readline, b""):
            out.put(raw.decode("utf-8", "replace").rstrip("\n"))
    except (OSError, ValueError):
        pass
    finally:
        out.put(None)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover - a kill that did not take
        log.warning("the quantizer (pid %s) did not exit", proc.pid)
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
