"""The quantizer's child process: `python -m lcchat.engine.quant.child SRC TMP
LLAMA_FTYPE_X NTHREAD ALLOW` (started by make.run_quantize, never by people)."""

from __future__ import annotations

import logging
import os
import re
import sys
import threading

_TENSOR_LINE = re.compile(r"^\s*\[\s*(\d+)\s*/\s*(\d+)\s*\]")


def _child_main(argv: list[str]) -> int:
    """Quantize SRC into TMP as LLAMA_FTYPE_X (argv as in the module docstring); report
    "P done total" per tensor, "W line" for llama.cpp warnings/errors, "X status" at the end."""
    import ctypes

    src, tmp, ftype_name, nthread, allow = argv
    for name in ("lcchat", "lcchat.llama"):
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.addHandler(logging.NullHandler())
        logger.setLevel(logging.CRITICAL + 1)
    out_lock = threading.Lock()

    def say(text: str) -> None:
        with out_lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    def watch_parent() -> None:
        """The parent keeps our stdin open; EOF means it is gone or gave up: clean up, leave."""
        try:
            while os.read(0, 4096):  # raw reads: no buffer lock to trip over at exit
                pass
        except OSError:
            pass
        try:
            os.unlink(tmp)
        except OSError:
            pass
        os._exit(3)

    threading.Thread(target=watch_parent, daemon=True).start()
    from lcchat.engine.model import llama_log, load_llama_cpp

    llama_cpp = load_llama_cpp()

    def on_line(level: int, line: str) -> None:
        match = _TENSOR_LINE.match(line)
        if match:
            say(f"P {match.group(1)} {match.group(2)}")
        if level >= logging.WARNING:  # an error can end a tensor's line: "[ 3/21] ... failed to quantize: ..."
            say("W " + line.replace("\n", " "))

    llama_log.listeners.append(on_line)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.nthread = int(nthread)
    params.allow_requantize = allow == "1"
    status = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(tmp), ctypes.byref(params))
    say(f"X {int(status)}")
    return 0 if status == 0 else 1


def _child_exit(argv: list[str]) -> None:
    """Run the child and leave at once: a normal interpreter shutdown would wait on the
    watcher thread blocked reading stdin."""
    try:
        code = _child_main(argv)
    except BaseException as exc:  # noqa: BLE001 - report, then leave
        import traceback

        # One line the parent shows ("E"), and the traceback as "T" lines it logs for -v only.
        for line in traceback.format_exc().splitlines():
            sys.stdout.write("T " + line + "\n")
        sys.stdout.write(f"E {type(exc).__name__}: {exc}".replace("\n", " ") + "\n")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _child_exit(sys.argv[1:])
