"""`lcchat quant MODEL`: what a GGUF is, its sibling quantizations and whether it fits;
with --to TYPE, quantize it (llama.cpp's llama_model_quantize in a child process).

Exit status: 0 done, 2 bad input (unknown type, a requantize or an overwrite refused, a bad
file), 1 failure (llama.cpp failed, disk short of space), 130 Ctrl+C (nothing is left
behind: the child is killed and its temporary file removed).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Sequence

from lcchat.errors import EXIT_INTERRUPTED, EXIT_OK
from lcchat.usage import UsageParser




def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="lcchat quant",
        description="Show a GGUF model's quantization, the other types scaled to it, its sibling "
        "quantizations and the memory it needs; with --to, make a new quantization.",
        epilog="Exit status: 0 ok, 1 failure, 2 bad input, 130 interrupted.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL", help="GGUF file (default: the profile's model)")
    p.add_argument("--to", metavar="TYPE", help="quantize to TYPE (Q4_K_M, Q5_K_M, Q8_0, ...)")
    p.add_argument("-o", "--output", metavar="OUT", help="output file or directory (default: beside MODEL, "
                   "its quant tag replaced by TYPE)")
    p.add_argument("--allow-requantize", action="store_true",
                   help="quantize a file that is already quantized (loses more quality than starting from F16/F32)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("-c", "--ctx", type=int, metavar="N", help="context size for the memory estimate")
    p.add_argument("-ngl", "--gpu-layers", type=int, metavar="N", dest="gpu_layers",
                   help="layers offloaded to the GPU, for the memory estimate")
    p.add_argument("-p", "--profile", metavar="NAME", help="profile for the model, context and KV cache settings")
    p.add_argument("-t", "--threads", type=int, default=0, metavar="N", help="quantization threads (default: all)")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from lcchat.errors import LcchatError, report

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        if args.to:
            return _make(args)
        return _inspect(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except LcchatError as exc:
        return report(exc, "lcchat quant", verbose=args.verbose)


def _profile(args: argparse.Namespace):
    from lcchat.config.loader import DEFAULT_PROFILE, load_profile

    overrides: dict[str, object] = {}
    if args.model:
        overrides["model.path"] = args.model
    if args.ctx is not None:
        overrides["model.n_ctx"] = args.ctx
    if args.gpu_layers is not None:
        overrides["model.n_gpu_layers"] = args.gpu_layers
    name = args.profile or ("default" if args.model else DEFAULT_PROFILE)
    return load_profile(name, overrides)


def _inspect(args: argparse.Namespace) -> int:
    from lcchat.config.loader import resolve_model_path
    from lcchat.engine import quant

    profile = _profile(args)
    path = resolve_model_path(profile)
    relative = profile.source.parent if profile.source else None
    report = quant.inspect(path, profile.model, variants_glob=profile.model.variants, relative_to=relative)
    from lcchat.commands.quant_report import format_report

    _out(format_report(report))
    return EXIT_OK


def _make(args: argparse.Namespace) -> int:
    from lcchat.config.loader import resolve_model_path
    from lcchat.engine import quant
    from lcchat.engine.events import Notice, Progress

    path = resolve_model_path(_profile(args)) if not args.model else _path(args.model)
    plan = quant.plan_quantize(path, args.to, _path(args.output) if args.output else None,
                               allow_requantize=args.allow_requantize, force=args.force)
    live = sys.stderr.isatty()
    shown = -1
    with contextlib.closing(quant.run_quantize(plan, nthread=args.threads)) as events:
        for event in events:
            if isinstance(event, Progress) and event.total:
                pct = 100 * event.done // event.total
                if live:
                    print(f"\rquantizing: {event.done}/{event.total} tensors ({pct}%)", end="", file=sys.stderr, flush=True)
                elif pct // 25 != shown // 25 or event.done == event.total:
                    print(f"quantizing: {event.done}/{event.total} tensors ({pct}%)", file=sys.stderr)
                shown = pct
            elif isinstance(event, Notice):
                if live and shown >= 0:
                    print(file=sys.stderr)
                    shown = -1
                print(event.text, file=sys.stderr)
    _out(str(plan.written))
    return EXIT_OK


def _path(text: str):
    from pathlib import Path

    return Path(text).expanduser()


def _out(text: str) -> None:
    try:
        print(text)
    except BrokenPipeError:  # `lcchat quant MODEL | head`
        logging.getLogger("lcchat").debug("stdout closed")
