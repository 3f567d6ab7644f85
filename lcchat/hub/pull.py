"""`lcchat pull NAME|hf://OWNER/REPO[/FILE]`: download a model into the Hub's cache, and
the offer `lcchat -p NAME` makes when the profile's model is not there yet.

A profile names a repository (`[model] source`) and the files it may take (`file`); when
several quantizations qualify, fit.py chooses the best that fits this machine and the
choice is shown before the download starts. Progress goes to stderr: a bar with size,
rate and time left on a terminal, a line per 10% otherwise. The path of the file goes to
stdout, for scripts. Ctrl+C stops at once (exit 130) and keeps what arrived; the same
command resumes.

Exit status: 0 done, 1 failure (network, server, a failed check, nothing fits), 2 bad
input (unknown profile, a profile without a source, no such repository or file), 130
interrupted.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Sequence, TextIO

from lcchat.errors import EXIT_INTERRUPTED, EXIT_OK, InputError, LcchatError, report
from lcchat.usage import UsageParser


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="lcchat pull",
        description="Download a model from the Hugging Face Hub into its shared cache: a profile's model "
        "(of the quantizations its [model] file allows, the best that fits this machine's memory), or "
        "hf://OWNER/REPO (any GGUF file in it, chosen the same way) or hf://OWNER/REPO/FILE.",
        epilog="Exit status: 0 ok, 1 failure, 2 bad input, 130 interrupted (run it again to resume).",
    )
    p.add_argument("target", metavar="NAME|hf://OWNER/REPO[/FILE]", help="a profile name or file, or a Hub address")
    p.add_argument("--quant", metavar="TYPE", help="take this quantization (Q4_K_M, Q8_0, ...) instead of the best that fits")
    p.add_argument("-c", "--ctx", type=int, metavar="N", help="context size to plan memory for (default: the profile's)")
    p.add_argument("-ngl", "--gpu-layers", type=int, metavar="N", dest="gpu_layers",
                   help="layers that will be offloaded to the GPU, to plan VRAM for (default: the profile's)")
    p.add_argument("--ram", metavar="SIZE", help="plan for SIZE of free RAM (e.g. 16G) instead of what is free now")
    p.add_argument("--vram", metavar="SIZE", help="plan for SIZE of free VRAM instead of what is free now")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    quiet_hub_logs(args.verbose)
    try:
        ram = parse_size(args.ram, "--ram") if args.ram else -1
        vram = parse_size(args.vram, "--vram") if args.vram else -1
        profile, source = _target(args)
        path = pull(profile, source, quant=args.quant, ram=ram, vram=vram, command=_command(args))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        print(f"lcchat pull: interrupted; what arrived is kept: `{_command(args)}` resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    except LcchatError as exc:
        return report(exc, "lcchat pull", verbose=args.verbose)
    try:
        print(path)
    except BrokenPipeError:
        pass
    return EXIT_OK


def quiet_hub_logs(verbose: bool) -> None:
    """huggingface_hub logs its retries as warnings; lcchat reports failures itself."""
    from huggingface_hub.utils import logging as hf_logging

    if verbose:
        hf_logging.set_verbosity_info()
    else:
        hf_logging.set_verbosity_error()


def _command(args: argparse.Namespace) -> str:
    """This pull as a command line, for "run it again"."""
    import shlex

    parts = ["lcchat", "pull", args.target]
    for flag, value in (("--quant", args.quant), ("-c", args.ctx), ("-ngl", args.gpu_layers)):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(shlex.quote(p) for p in parts)


def _target(args: argparse.Namespace):
    """(profile whose settings plan the memory, Hub source)."""
    from lcchat.config.loader import load_profile
    from lcchat.hub.source import SCHEME, parse_source

    overrides: dict[str, object] = {}
    if args.ctx is not None:
        overrides["model.n_ctx"] = args.ctx
    if args.gpu_layers is not None:
        overrides["model.n_gpu_layers"] = args.gpu_layers
    if args.target.startswith(SCHEME):
        return load_profile("default", overrides), parse_source(args.target)
    profile = load_profile(args.target, overrides)
    if not profile.model.source:
        raise InputError(f"profile {profile.name!r} names no download source ([model] source = \"hf://OWNER/REPO\"); "
                         "give one, or pull an address: lcchat pull hf://OWNER/REPO")
    return profile, parse_source(profile.model.source, with_file=False)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.I)


def parse_size(text: str, flag: str) -> int:
    """"16G", "512M", "1.5GiB", "2000000" -> bytes (powers of 1024, as the estimates print)."""
    m = _SIZE.match(text)
    if not m:
        raise InputError(f"{flag} {text!r} is not a size; write it like 16G, 512M or 1.5GB")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


# ---------------------------------------------------------------- the pull


def pull(profile, source, *, quant: str | None = None, ram: int | None = -1, vram: int | None = -1,
         command: str, out: TextIO | None = None) -> Path:
    """Choose, download and verify; return the file's path in the cache."""
    from lcchat.engine.monitor import human_bytes
    from lcchat.hub import remote
    from lcchat.hub.cache import local_files

    out = out or sys.stderr
    say = _printer(out)
    listing = remote.list_repo(source)
    say(f"hf://{listing.repo_id} (commit {listing.commit[:12]})")
    if source.filename:
        chosen = listing.file(source.filename)
    else:
        chosen = _choose(listing, profile, quant, ram, vram, say)
    for f in local_files(listing.repo_id):
        if f.filename == chosen.filename and f.commit == listing.commit:
            say(f"{chosen.filename} is already downloaded ({human_bytes(f.size)})")
            return f.path
    say(f"downloading {chosen.filename} ({human_bytes(chosen.size) if chosen.size else 'size unknown'})")
    bar = Bar(out)
    try:
        got = remote.download(listing, chosen, progress=bar, note=lambda text: (bar.clear(), say(text)),
                              retry_command=command)
    finally:
        bar.clear()
    rate = f", {human_bytes(int(got.received / got.seconds))}/s" if got.seconds > 0 and got.received else ""
    resumed = f", resumed after {human_bytes(got.resumed_from)}" if got.resumed_from else ""
    say(f"downloaded {human_bytes(got.received)} in {got.seconds:.1f} s{rate}{resumed}; "
        "sha256 and GGUF header checked")
    return got.path


def _choose(listing, profile, quant: str | None, ram, vram, say):
    from lcchat.hub import fit, remote
    from lcchat.hub.source import matching
    from lcchat.textsafe import one_line

    patterns = list(profile.model.file)
    by_name = {f.filename: f for f in listing.files}
    allowed = [by_name[n] for n in matching(list(by_name), patterns)]
    if not allowed:
        what = f"matching {', '.join(patterns)}" if patterns else "in GGUF format"
        have = ", ".join(n for n in by_name if n.lower().endswith(".gguf")) or "none"
        raise InputError(f"hf://{listing.repo_id} has no file {one_line(what)}; its GGUF files: "
                         f"{one_line(have, 300)}")
    if quant:
        chosen = fit.pick_quant(allowed, quant, listing.repo_id)
        say(f"--quant {quant}: {chosen.filename}")
        return chosen
    if len(allowed) == 1:
        return allowed[0]
    candidates = fit.rank(allowed, patterns)
    smallest = min(allowed, key=lambda f: f.size or 0)
    say(f"{len(allowed)} files qualify; reading the header of {smallest.filename} to plan memory")
    header = remote.fetch_header(listing, smallest)
    plan = fit.choose(listing.repo_id, candidates, header, profile.model, available_ram=ram, available_vram=vram)
    for line in fit.describe(plan):
        say(line)
    if plan.chosen is None:
        raise LcchatError(fit.nothing_fits(listing.repo_id, candidates, header, profile.model, ram, vram))
    return plan.chosen.file


def _printer(out: TextIO):
    from lcchat.textsafe import one_line

    def say(text: str) -> None:  # file names come from the server: never a live control character
        print(one_line(text, 2000), file=out, flush=True)

    return say


class Bar:
    """Download progress: on a terminal one line redrawn with size, rate and time left; in
    a log or pipe a line at each 10%."""

    def __init__(self, out: TextIO):
        self.out = out
        self.live = _isatty(out)
        self.start = time.monotonic()
        self.first: int | None = None  # bytes present when this run began (a resume)
        self.last_draw = 0.0
        self.last_tenth = -1
        self.drawn = False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first, self.start = done, now
            self.last_tenth = done * 10 // total if total else -1
        if self.live:
            if now - self.last_draw >= 0.1 or (total and done >= total):
                self.last_draw = now
                self._draw(done, total, now)
        elif total:
            tenth = done * 10 // total
            if tenth > self.last_tenth:
                self.last_tenth = tenth
                print(f"  {tenth * 10}% ({self._sizes(done, total)})", file=self.out, flush=True)

    def _sizes(self, done: int, total: int | None) -> str:
        from lcchat.engine.monitor import human_bytes

        return f"{human_bytes(done)} of {human_bytes(total)}" if total else human_bytes(done)

    def _draw(self, done: int, total: int | None, now: float) -> None:
        from lcchat.engine.monitor import human_bytes

        elapsed = max(now - self.start, 1e-6)
        rate = (done - (self.first or 0)) / elapsed
        eta = f"  ETA {_duration((total - done) / rate)}" if total and rate > 0 and done < total else ""
        text = f"{self._sizes(done, total)}  {human_bytes(int(rate))}/s{eta}"
        width = shutil.get_terminal_size((80, 24)).columns - 1
        if total:
            pct = f"{100 * done // total:3d}%"
            room = width - len(text) - len(pct) - 5
            bar = ""
            if room >= 10:
                cells = min(room, 40)
                full = cells * done // total
                bar = "[" + "#" * full + "-" * (cells - full) + "] "
            text = f"{bar}{pct}  {text}"
        self.out.write("\r" + text[:width].ljust(width))
        self.out.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            width = shutil.get_terminal_size((80, 24)).columns - 1
            self.out.write("\r" + " " * width + "\r")
            self.out.flush()
            self.drawn = False


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# ---------------------------------------------------------------- the offer


def offer(profile, missing) -> None:
    """`lcchat -p NAME` on a terminal, when the profile's model is not downloaded: ask,
    and pull on yes. On no (or end of input) the ModelNotDownloaded error stands."""
    from lcchat.hub.source import parse_source

    source = parse_source(profile.model.source, with_file=False)
    print(f"profile {profile.name!r} uses a model from {source} that is not downloaded yet.", file=sys.stderr)
    try:
        answer = input_line("Download it now (the best quantization that fits this machine)? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise missing
    quiet_hub_logs(False)
    try:
        pull(profile, source, command=missing.command)
    except KeyboardInterrupt:
        print(f"\nlcchat: download interrupted; what arrived is kept: `{missing.command}` resumes", file=sys.stderr)
        raise


def input_line(prompt: str) -> str:
    """A yes/no answer: the question on stderr, the answer from the terminal on stdin."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line

