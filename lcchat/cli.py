"""Command line: parse arguments, pick a mode, run it, and turn failures into one line.

Imports of the engine and the front-ends happen inside the functions that need them, so
`lcchat --help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, Sequence

from lcchat import __version__
from lcchat.textsafe import clean
from lcchat.errors import EXIT_INTERRUPTED, EXIT_OK
from lcchat.usage import UsageParser

# flag dest -> profile key (dotted)
OVERRIDES = {
    "model": "model.path",
    "ctx": "model.n_ctx",
    "threads": "model.n_threads",
    "threads_batch": "model.n_threads_batch",
    "batch_size": "model.n_batch",
    "flash_attn": "model.flash_attn",
    "cache_type_k": "model.cache_type_k",
    "cache_type_v": "model.cache_type_v",
    "gpu_layers": "model.n_gpu_layers",
    "temp": "sampling.temperature",
    "top_p": "sampling.top_p",
    "top_k": "sampling.top_k",
    "min_p": "sampling.min_p",
    "repeat_penalty": "sampling.repeat_penalty",
    "seed": "sampling.seed",
    "max_tokens": "sampling.max_tokens",
    "system": "chat.system",
    "rope_freq_base": "rope.freq_base",
    "rope_freq_scale": "rope.freq_scale",
    "rope_scaling": "rope.scaling",
    "chat_format": "chat.format",
    "remote": "backend.url",
    "think": "chat.thinking",
    "spec": "speculative.mode",
    "draft": "speculative.draft",
}

# --flash-attn as llama-cli spells it -> the profile's value ([model] flash_attn)
FLASH_ATTN = {"on": True, "off": False, "auto": "auto"}

# Subcommands: name -> "module:function" taking the remaining arguments and returning the
# exit status. Imported only when used.
SUBCOMMANDS = {
    "profiles": "lcchat.cli:cmd_profiles",
    "history": "lcchat.store.cli:main",
    "quant": "lcchat.quantcli:main",
    "doctor": "lcchat.doctor:main",
    "pull": "lcchat.hub.pull:main",
    "models": "lcchat.hub.models:main",
}


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="lcchat",
        description="Chat with local GGUF models. With a PROMPT or piped stdin it answers once and exits; "
        "otherwise it starts an interactive chat.",
        epilog="subcommands: lcchat profiles {list,show,check,import}, lcchat doctor MODEL, "
        "lcchat quant MODEL, lcchat history {list,show,export,rm}, lcchat pull NAME|hf://OWNER/REPO[/FILE], "
        "lcchat models {list,rm}. See lcchat --man.",
    )
    p.add_argument("prompt", nargs="*", metavar="PROMPT", help="the question; with piped stdin, stdin is its context")
    g = p.add_argument_group("model and profile")
    g.add_argument("-p", "--profile", metavar="NAME", help="profile name or path to a .toml file (default: smollm2)")
    g.add_argument("-m", "--model", metavar="FILE", help="GGUF model file (overrides the profile's)")
    g.add_argument("-c", "--ctx", "--n-ctx", type=int, metavar="N", help="context size in tokens")
    g.add_argument("-t", "--threads", "--n-threads", type=int, metavar="N",
                   help="threads (default: the physical cores, less those other processes keep busy)")
    g.add_argument("-ngl", "--gpu-layers", type=int, metavar="N", dest="gpu_layers", help="layers to offload to the GPU (-1: all)")
    g.add_argument("-tb", "--threads-batch", type=int, metavar="N",
                   help="threads for prompt evaluation (default: as --threads)")
    g.add_argument("-b", "--batch-size", type=int, metavar="N", help="prompt tokens per llama_decode call (default 512)")
    g.add_argument("-fa", "--flash-attn", choices=tuple(FLASH_ATTN), metavar="on|off|auto",
                   help="flash attention (default: auto: llama.cpp's choice with a GPU, off on the CPU alone)")
    g.add_argument("-ctk", "--cache-type-k", metavar="TYPE", help="KV cache type for K: f16 (default), q8_0, q4_0, ...")
    g.add_argument("-ctv", "--cache-type-v", metavar="TYPE",
                   help="KV cache type for V: f16 (default), q8_0, q4_0, ... (quantized needs flash attention)")
    g.add_argument("--remote", metavar="URL",
                   help="chat through an OpenAI-compatible server (llama-server, vLLM, Ollama) instead of "
                        "loading the model here, e.g. http://gpu-box:8080")
    g.add_argument("--chat-format", metavar="NAME", help="a llama-cpp-python chat format, e.g. chatml, llama-2")
    g.add_argument("--system", metavar="TEXT", help="system prompt")
    g.add_argument("--stop", action="append", metavar="TEXT", help="extra stop string (repeatable)")
    g.add_argument("--think", action=argparse.BooleanOptionalAction, default=None,
                   help="a reasoning model thinks before it answers, or not (--no-think); default: as the template does")
    g = p.add_argument_group("sampling")
    g.add_argument("--temp", "--temperature", type=float, metavar="T", help="temperature (0: greedy)")
    g.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling threshold")
    g.add_argument("--top-k", type=int, metavar="K", help="keep the K most likely tokens (0: all)")
    g.add_argument("--min-p", type=float, metavar="P", help="drop tokens below P times the top probability")
    g.add_argument("--repeat-penalty", type=float, metavar="X", help="penalty for repeated tokens (1: off)")
    g.add_argument("--seed", type=int, metavar="N", help="random seed (-1: random)")
    g.add_argument("-n", "--max-tokens", type=int, metavar="N", help="longest reply in tokens (-1: until the context is full)")
    g = p.add_argument_group("speculative decoding")
    g.add_argument("--spec", choices=("off", "lookup", "draft", "auto"), metavar="MODE",
                   help="draft tokens and verify them in one batch: off, lookup (n-grams of the conversation), "
                        "draft (a draft model), auto (lookup, else the draft model)")
    g.add_argument("--draft", metavar="FILE", help="draft model GGUF with the model's vocabulary (for --spec draft or auto)")
    g = p.add_argument_group("RoPE")
    g.add_argument("--rope-freq-base", type=float, metavar="X", help="RoPE base frequency (0: the model's)")
    g.add_argument("--rope-freq-scale", type=float, metavar="X", help="RoPE frequency scale, 1/factor (0: the model's)")
    g.add_argument("--rope-scaling", choices=("auto", "none", "linear", "yarn", "ntk"),
                   help="RoPE scaling: auto (as the GGUF says), none, linear, yarn, or ntk (NTK-aware base)")
    g = p.add_argument_group("mode")
    g.add_argument("-C", "--continue", nargs="?", const="", metavar="ID", dest="continue_id",
                   help="continue the profile's last conversation, or conversation ID (lcchat history list shows them)")
    g.add_argument("--no-history", action="store_true",
                   help="record nothing of this call or session: no history row, no KV state (also LCCHAT_NO_HISTORY=1)")
    g.add_argument("--save-state", action="store_true",
                   help="one-shot: keep the KV state too, for a call you mean to continue with -C (interactive sessions always do)")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--tui", action="store_true", help="full-screen interface (the default on a capable terminal)")
    mode.add_argument("--repl", action="store_true", help="plain line-based chat (the default when TERM=dumb or the terminal is small)")
    g.add_argument("--theme", metavar="NAME", help="TUI theme: dark, light, high-contrast, ssh, or one of yours")
    g = p.add_argument_group("output")
    g.add_argument("--json", action="store_true", help="one-shot: print one JSON object with the text and stats")
    g.add_argument("--reasoning", action="store_true",
                   help="one-shot: print a reasoning model's thinking to stderr (stdout holds only the answer)")
    g.add_argument("--show-prompt", action="store_true",
                   help="print the exact prompt for PROMPT (or piped stdin) and its tokens, special ones marked, "
                        "instead of answering")
    g.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose",
                   help="show llama.cpp's log and diagnostics; tracebacks on errors")
    g.add_argument("--version", action="version", version=f"lcchat {__version__}")
    g = p.add_argument_group("documentation")
    g.add_argument("--man", action="store_true", help="show the manual page (man lcchat)")
    g.add_argument("--completion", choices=("bash", "zsh", "fish"), metavar="SHELL",
                   help="print a completion script for bash, zsh or fish")
    g.add_argument("--list-names", choices=("profiles", "themes"), help=argparse.SUPPRESS)
    return p


def build_profiles_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="lcchat profiles", description="List, show and check profiles.")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose")
    sub = p.add_subparsers(dest="action", metavar="{list,show,check,import}", required=True, parser_class=UsageParser)
    sub.add_parser("list", help="list the profiles you can use with -p")
    show = sub.add_parser("show", help="print a profile with everything it inherits, resolved")
    show.add_argument("name", metavar="NAME")
    check = sub.add_parser("check", help="check a profile file and report the first problem")
    check.add_argument("file", metavar="FILE")
    imp = sub.add_parser("import", help="make a profile from an Ollama Modelfile or an LM Studio preset (.json)")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("-o", "--output", metavar="NAME", help="profile name (default: from the file)")
    imp.add_argument("--force", action="store_true", help="replace a profile of the same name")
    return p


# ---------------------------------------------------------------- entry point


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose", "--debug") for a in args_list)
    _setup_logging(verbose)
    try:
        return _dispatch(args_list)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one place errors become a line
        from lcchat.errors import report

        return report(exc, "lcchat", verbose=verbose)


def _dispatch(argv: list[str]) -> int:
    words = [a for a in argv if a not in ("-v", "--verbose", "--debug")]
    first = words[0] if words else None
    if first in SUBCOMMANDS:
        rest = list(argv)
        rest.remove(first)
        module, _, function = SUBCOMMANDS[first].partition(":")
        import importlib

        handler: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
        if len(words) > 1 and not any(w.startswith("-") for w in words):
            # `lcchat history of Rome`: a question that starts with a command's name
            import shlex

            UsageParser.note = f"; to ask it as a question, quote it: lcchat {shlex.quote(' '.join(words))}"
        try:
            return handler(rest)
        finally:
            UsageParser.note = ""
    args = build_parser().parse_args(split_continue(argv))
    if args.man or args.completion or args.list_names:
        return _documentation(args)
    return _chat(args)


def _documentation(args: argparse.Namespace) -> int:
    from lcchat import completion

    if args.list_names:
        print("\n".join(completion.names(args.list_names)))
    elif args.completion:
        print(completion.script(args.completion, build_parser()), end="")
    else:
        from lcchat.manpage import show

        return show("lcchat.1")
    return EXIT_OK


def _setup_logging(verbose: bool) -> None:
    """llama.cpp's log goes to the lcchat.llama logger: shown with -v, dropped otherwise.
    Log lines quote the model file (its metadata, its template's errors): they are shown
    with their control characters made visible."""
    llama = logging.getLogger("lcchat.llama")
    root = logging.getLogger("lcchat")
    llama.propagate = False
    for logger in (root, llama):  # a second call (main() run again in one process) replaces ours
        for old in [h for h in logger.handlers if getattr(h, "lcchat_cli", False)]:
            logger.removeHandler(old)
    if verbose:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(CleanFormatter("%(message)s"))
        handler.lcchat_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        llama.addHandler(handler)
        llama.setLevel(logging.DEBUG)
    else:
        handler = logging.NullHandler()
        handler.lcchat_cli = True  # type: ignore[attr-defined]
        llama.addHandler(handler)
        llama.setLevel(logging.CRITICAL + 1)
        root.setLevel(logging.ERROR)


class CleanFormatter(logging.Formatter):
    """A log line (traceback included) with no live control characters."""

    def format(self, record: logging.LogRecord) -> str:
        return clean(super().format(record))  # imported at the top: this runs at shutdown too


def _quiet_stdout() -> None:
    """After EPIPE: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def split_continue(argv: list[str]) -> list[str]:
    """`-C` takes an ID only when the next word is one (digits): in `lcchat -C "go on"`
    the words are the prompt. A name needs the = form: --continue=NAME. Rewritten before
    parsing, since argparse cannot look at the next word to decide."""
    from lcchat.store.db import is_conversation_number

    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            out += argv[i:]
            break
        if word in ("-C", "--continue"):
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is not None and is_conversation_number(following):
                out.append(f"--continue={following.lstrip('#')}")
                i += 2
                continue
            out.append("--continue=")
            i += 1
            continue
        out.append(word)
        i += 1
    return out


# ---------------------------------------------------------------- chatting


def profile_from_args(args: argparse.Namespace):
    from lcchat.config.loader import DEFAULT_PROFILE, load_profile

    overrides: dict[str, Any] = {}
    for dest, key in OVERRIDES.items():
        value = getattr(args, dest, None)
        if value is not None:
            overrides[key] = FLASH_ATTN[value] if dest == "flash_attn" else value
    if args.chat_format:
        overrides["chat.template"] = ""  # a format named on the command line wins over the profile's template
    name = args.profile or ("default" if args.model else DEFAULT_PROFILE)
    profile = load_profile(name, overrides)
    if args.stop:
        profile.chat.stop = [*profile.chat.stop, *args.stop]
    return profile


def _chat(args: argparse.Namespace) -> int:
    from lcchat import pipe
    from lcchat.errors import InputError
    from lcchat.runtime import Run

    question = " ".join(args.prompt) if args.prompt else None
    stdin_tty = sys.stdin is not None and sys.stdin.isatty()
    piped = None if stdin_tty or sys.stdin is None else pipe.read_stdin()
    profile = profile_from_args(args)
    interactive = question is None and piped is None
    if interactive:  # refused before a download is offered or the run is made
        if args.json:
            raise InputError("--json needs a PROMPT or piped stdin")
        if args.show_prompt:
            raise InputError("--show-prompt needs a PROMPT or piped stdin")
    if args.json and args.show_prompt:
        raise InputError("--json and --show-prompt do not go together: --show-prompt prints the prompt, not a reply")
    if args.save_state and args.no_history:
        raise InputError("--save-state keeps the KV state with the saved conversation, and --no-history saves "
                         "nothing: drop one of them")
    _ensure_model(profile, interactive=interactive and stdin_tty)
    run = Run(profile, continue_ref=args.continue_id, interactive=interactive,
              no_history=args.no_history, save_state=args.save_state)
    if interactive:
        return _interactive(run, args)
    text = pipe.compose(piped, question)
    if not text.strip():
        raise InputError("nothing to answer: give a PROMPT or pipe text on stdin")
    _utf8_streams()
    return run.answer(text, as_json=args.json, show_prompt=args.show_prompt, verbose=args.verbose,
                      reasoning=args.reasoning)


def _ensure_model(profile, *, interactive: bool) -> None:
    """A profile whose model is on the Hub but not downloaded: on a terminal, offer to pull
    it; otherwise (pipe mode, scripts) fail with the `lcchat pull` command: nothing
    downloads gigabytes unasked."""
    from lcchat.config.loader import resolve_model_path
    from lcchat.errors import LcchatError, ModelNotDownloaded

    if profile.backend.url:
        return  # the server holds the model
    try:
        resolve_model_path(profile)
    except ModelNotDownloaded as missing:
        if not (interactive and sys.stderr is not None and sys.stderr.isatty()):
            raise
        from lcchat.hub.pull import offer

        offer(profile, missing)
    except LcchatError:
        return  # other problems surface where the model is opened, as before


MIN_TUI_SIZE = (60, 16)  # columns, lines: below this the REPL serves better


def choose_mode(args: argparse.Namespace, *, term: str | None = None, size: tuple[int, int] | None = None) -> str:
    """"tui" or "repl": --tui/--repl win; a dumb or small terminal gets the REPL."""
    if args.tui:
        return "tui"
    if args.repl:
        return "repl"
    term = os.environ.get("TERM", "") if term is None else term
    if term in ("", "dumb", "unknown"):
        return "repl"
    if size is None:
        try:
            columns, lines = os.get_terminal_size(sys.stdout.fileno())
        except OSError:
            return "repl"
        size = (columns, lines)
    if size[0] < MIN_TUI_SIZE[0] or size[1] < MIN_TUI_SIZE[1]:
        return "repl"
    try:
        import lcchat.tui.app  # noqa: F401 - present once the TUI is built
    except ImportError:
        return "repl"
    return "tui"


def _interactive(run, args: argparse.Namespace) -> int:
    if args.theme:
        run.profile.ui.theme = args.theme
    return run.interactive(choose_mode(args), verbose=args.verbose)


def _utf8_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


# ---------------------------------------------------------------- lcchat profiles


def cmd_profiles(argv: list[str]) -> int:
    from lcchat.config import loader

    args = build_profiles_parser().parse_args(argv)
    if args.action == "list":
        rows = []
        for name, path in loader.available_profiles().items():
            try:
                description = loader.load_profile(str(path)).description
            except Exception as exc:  # noqa: BLE001 - a broken profile is listed, with why
                description = f"(broken: {exc})"
            rows.append((name, description))
        for line in profile_lines(rows):
            print(line)
        return EXIT_OK
    if args.action == "show":
        profile = loader.load_profile(args.name)
        print(f"# profile {profile.name} from {profile.source}")
        for line in _resolved_notes(profile):
            print(f"# {line}")
        print(loader.to_toml(profile.to_dict()), end="")
        return EXIT_OK
    if args.action == "import":
        from lcchat.config.importers import import_profile

        return import_profile(_path(args.file), name=args.output, force=args.force)
    profile = loader.check_file(_path(args.file))
    print(f"{args.file}: ok ({profile.description or 'no description'})")
    return EXIT_OK


def profile_lines(rows: list[tuple[str, str]], width: int = 22) -> list[str]:
    """`profiles list`: names in a column as wide as the longest (up to `width`); a
    longer name puts its description on the next line, in the column, so none breaks it."""

    column = min(width, max((len(name) for name, _ in rows), default=0))
    lines = []
    for name, description in rows:
        name, description = clean(name), clean(description)
        if len(name) > column:
            lines += [name, f"{'':<{column}}  {description}"]
        else:
            lines.append(f"{name:<{column}}  {description}")
    return lines


def _path(text: str):
    from pathlib import Path

    return Path(text).expanduser()


def _resolved_notes(profile) -> list[str]:
    """What the profile resolves to against its model file: path, RoPE, context."""
    from lcchat.config.loader import resolve_model_path
    from lcchat.engine import gguf_info, rope
    from lcchat.errors import LcchatError

    try:
        path = resolve_model_path(profile)
    except LcchatError as exc:
        return [f"model: {exc}"]
    notes = [f"model file: {path}"]
    try:
        info = gguf_info.load_checked(path, vocab=False)
    except LcchatError as exc:
        return [*notes, f"model check: {exc}"]
    n_ctx = profile.model.n_ctx or int(info.context_length or 0)
    resolved = rope.resolve_for(profile.rope, info, n_ctx=n_ctx)
    notes.append(f"{info.architecture}, {info.file_type_name}, trained to {info.context_length} tokens; n_ctx {n_ctx}")
    notes.append(f"rope: {resolved.description}")
    notes += [f"warning: {w}" for w in resolved.warnings]
    return notes
