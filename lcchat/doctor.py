"""`lcchat doctor MODEL`: what is wrong with a GGUF file, said in plain sentences.

It reads the file with gguf_info (never with llama.cpp: a file that would make llama.cpp
abort must be reported, not loaded) and checks what breaks chat clients in practice:
empty or control-code tokens (the InternLM2 conversion problem), a missing or
disagreeing chat template, template markers that are not tokens, stop strings the vocab
cannot produce, a reasoning model's thinking markers (where they come from, whether the
template takes enable_thinking), RoPE metadata against the profile, the context length,
hyperparameters llama.cpp asserts on, and, given the model's sentencepiece tokenizer.model, whether the
vocab matches it token for token.

One line per check, "ok: ..." or "problem: ...", then a summary. Exit 0 when healthy,
1 when there are problems, 2 for bad input (a missing file, a bad profile).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from lcchat.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, InputError, LcchatError, ModelFileError
from lcchat.usage import UsageParser

# gguf TokenType values
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Texts that look like special tokens when a chat template writes them.
_MARKER = re.compile(r"<\|[^|<>\s]{1,64}\|>|\[UNUSED_TOKEN_\d+\]|<reserved_\d+>|</?s>")
# InternLM2's tokenizer.model names for the ChatML markers (renamed by newer converters).
INTERNLM2_NAMES = {"<|im_start|>": "[UNUSED_TOKEN_146]", "<|im_end|>": "[UNUSED_TOKEN_145]"}
# A context length in a model's name: "16k", "200K". Only K: an M in a name is nearly always a
# parameter count ("SmolLM2 135M"), and a name is weak evidence next to the metadata.
_NAME_CTX = re.compile(r"(?<![0-9a-z.])(\d{1,4})k(?![0-9a-z])", re.IGNORECASE)
_WHITESPACE = "\t\n\r\v\f"
SHOW = 3  # how many offending tokens a verdict names

SAMPLE = [
    {"role": "system", "content": "You are a test."},
    {"role": "user", "content": "Hello there."},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "Say one word."},
]


@dataclass
class Verdict:
    ok: bool
    check: str
    text: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'problem'}: {self.check}: {self.text}"




def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="lcchat doctor", description="Check a GGUF model file for the problems that break chat: "
                "tokens, chat template, stop strings, RoPE, context, metadata llama.cpp would abort on.")
    p.add_argument("model", nargs="?", metavar="MODEL", help="the GGUF file (default: the profile's model)")
    p.add_argument("--tokenizer", metavar="FILE", help="the model's sentencepiece tokenizer.model, to compare the vocab with")
    p.add_argument("-p", "--profile", metavar="NAME", help="check against this profile (default: default)")
    p.add_argument("-v", "--verbose", "--debug", action="store_true", dest="verbose", help="accepted for symmetry; no effect")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        profile, path, sp = _inputs(args)
        verdicts = diagnose(path, profile=profile, tokenizer=sp)
    except InputError as exc:
        print(f"lcchat doctor: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LcchatError as exc:
        print(f"lcchat doctor: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for verdict in verdicts:
        print(verdict.line())
    problems = sum(not v.ok for v in verdicts)
    if problems:
        print(f"{problems} problem{'s' if problems != 1 else ''} found in {path.name}")
        return EXIT_FAILURE
    print(f"{path.name} looks healthy")
    return EXIT_OK


def _inputs(args: argparse.Namespace):
    from lcchat.config.loader import load_profile, resolve_model_path

    profile = load_profile(args.profile or "default")
    if args.model:
        path = Path(args.model).expanduser()
    elif profile.model.path:
        path = resolve_model_path(profile)
    else:
        raise InputError("give the GGUF file to check: lcchat doctor MODEL.gguf [-p PROFILE]")
    if not path.exists():
        raise ModelFileError(f"{path}: no such file; check the path")
    if not path.is_file():
        raise ModelFileError(f"{path}: is not a file; give the path of a .gguf model file")
    sp = _load_sentencepiece(Path(args.tokenizer).expanduser()) if args.tokenizer else None
    return profile, path, sp


def _load_sentencepiece(path: Path):
    if not path.is_file():
        raise InputError(f"{path}: no such tokenizer file; give the model's tokenizer.model")
    try:
        import sentencepiece
    except ImportError as exc:
        raise InputError("--tokenizer needs the sentencepiece package: pip install sentencepiece") from exc
    sp = sentencepiece.SentencePieceProcessor()
    try:
        sp.Load(str(path))
    except Exception as exc:  # sentencepiece raises OSError or RuntimeError
        raise InputError(f"{path}: is not a sentencepiece model ({str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from exc
    return sp


# ---------------------------------------------------------------- the checks


def diagnose(path: Path, *, profile=None, tokenizer=None) -> list[Verdict]:
    """Every verdict on the file; never raises for anything the file contains."""
    from lcchat.config.schema import Profile
    from lcchat.engine import gguf_info

    profile = profile or Profile(name="default")
    try:
        info = gguf_info.read_gguf(path, vocab=True)
    except ModelFileError as exc:
        return [Verdict(False, "file", _strip(exc, path) + "; nothing else can be checked")]
    verdicts = [Verdict(True, "file", _summary(info))]
    doctor = _Doctor(info, profile)
    checks: list[tuple[str, Callable[[], list[Verdict]]]] = [
        ("metadata", doctor.metadata),
        ("vocab", doctor.vocab),
        ("chat template", doctor.template),
        ("template tokens", doctor.template_tokens),
        ("stops", doctor.stops),
        ("reasoning", doctor.reasoning),
        ("rope", doctor.rope),
        ("context", doctor.context),
    ]
    if tokenizer is not None:
        checks.append(("tokenizer.model", lambda: doctor.sentencepiece(tokenizer)))
    for name, check in checks:
        try:
            verdicts += check()
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            verdicts.append(Verdict(False, name, f"the check could not run ({type(exc).__name__}: {exc}); "
                                    "the file's metadata is probably malformed"))
    return verdicts


def _strip(exc: Exception, path: Path) -> str:
    """A ModelFileError's message without the leading file name."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _summary(info) -> str:
    size = info.file_size
    human = f"{size / 2**30:.1f} GB" if size >= 2**30 else f"{size / 2**20:.1f} MB"
    parts = [f"GGUF v{info.version}", str(info.architecture or "no architecture"), f"{info.file_type_name or '?'}", human]
    if info.block_count is not None:
        parts.insert(2, f"{info.block_count} layer{'s' if info.block_count != 1 else ''}")
    if info.vocab_size is not None:
        parts.append(f"{info.vocab_size} tokens")
    return ", ".join(parts)


def _show(text: str, limit: int = 40) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class _Doctor:
    def __init__(self, info, profile):
        self.info = info
        self.profile = profile
        self.tokens: list[str] = info.tokens
        types = info.token_types
        self.types: list[int] = types if len(types) == len(self.tokens) else [NORMAL] * len(self.tokens)
        self.token_set = set(self.tokens)
        self.bos_text = self._text(info.bos_token_id)
        self.eos_text = self._text(info.eos_token_id)
        self._formatters: tuple | None = None
        self._writer: _Producer | None = None

    def _text(self, token_id) -> str:
        return self.tokens[token_id] if isinstance(token_id, int) and 0 <= token_id < len(self.tokens) else ""

    # ------------------------------------------------------------ metadata llama.cpp asserts on

    def metadata(self) -> list[Verdict]:
        from lcchat.engine import gguf_info

        try:
            gguf_info.validate_for_llama(self.info)
        except ModelFileError as exc:
            return [Verdict(False, "metadata", _strip(exc, self.info.path)
                            + " (llama.cpp would abort on this file, so lcchat refuses to load it)")]
        return [Verdict(True, "metadata", "the hyperparameters are within the limits llama.cpp asserts on")]

    # ------------------------------------------------------------ vocab

    def vocab(self) -> list[Verdict]:
        tokens = self.tokens
        if not tokens:
            return [Verdict(False, "vocab", "the file has no token list (tokenizer.ggml.tokens), so llama.cpp cannot "
                            "tokenize; convert the model again with its tokenizer files")]
        empty, nul, control = [], [], []
        for i, (text, kind) in enumerate(zip(tokens, self.types)):
            if text == "":
                empty.append(i)
            elif "\0" in text:
                nul.append(i)
            elif kind != BYTE and all(ord(c) < 32 or ord(c) == 127 for c in text) and not all(c in _WHITESPACE for c in text):
                control.append(i)
        problems = []
        if nul or empty:
            bad = nul + empty
            listed = ", ".join(f"{i} ({_show(tokens[i])})" for i in bad[:SHOW]) + (" ..." if len(bad) > SHOW else "")
            why = ("llama.cpp reads token text as a C string, so a NUL makes it empty: older llama.cpp aborts on an "
                   "empty token and newer ones rename it, so the model can never write it")
            internlm = self.info.architecture == "internlm2" or any(t == "\x00" for t in tokens[354:355])
            fix = ("This is the known InternLM2 conversion problem (its tokenizer.model has \\x00 as token 354): "
                   "convert the model again with a current llama.cpp, whose convert_hf_to_gguf.py writes an emoji "
                   "in its place, or download a newer GGUF" if internlm else
                   "Convert the model again with a current llama.cpp, or download a newer GGUF")
            problems.append(Verdict(False, "vocab", f"{len(bad)} empty or NUL token{'s' if len(bad) != 1 else ''}: "
                                    f"{listed}; {why}. {fix}"))
        if control:
            listed = ", ".join(f"{i} ({_show(tokens[i])})" for i in control[:SHOW]) + (" ..." if len(control) > SHOW else "")
            problems.append(Verdict(False, "vocab", f"{len(control)} token{'s are' if len(control) != 1 else ' is'} made of "
                                    f"control codes and not marked as byte tokens: {listed}; llama.cpp's tokenizer "
                                    "cannot match them and printing them garbles the terminal. The conversion is "
                                    "broken: convert the model again with a current llama.cpp"))
        if problems:
            return problems
        return [Verdict(True, "vocab", f"{len(tokens)} tokens, none empty or made of control codes")]

    # ------------------------------------------------------------ chat template

    def _renderers(self):
        """(profile formatter or None, GGUF formatter or None, GGUF template error or None);
        a profile template that does not compile is an InputError: the profile is bad input."""
        if self._formatters is None:
            from lcchat.engine import templates

            chat = self.profile.chat
            mine = None
            try:
                if chat.template:
                    mine = templates.compile_jinja(chat.template, bos_token=self.bos_text, eos_token=self.eos_text,
                                                   source="profile's chat template")
                elif chat.format:
                    mine = templates.named_format(chat.format)
            except LcchatError as exc:
                raise InputError(f"profile {self.profile.name!r}: {exc}") from exc
            gguf, error = None, None
            text = self.info.chat_template
            if text:
                try:
                    gguf = templates.compile_jinja(text, bos_token=self.bos_text, eos_token=self.eos_text,
                                                   source="GGUF's chat template")
                except templates.TemplateError as exc:
                    error = str(exc)
            self._formatters = (mine, gguf, error)
        return self._formatters

    def template(self) -> list[Verdict]:
        from lcchat.engine.templates import TemplateError

        mine, gguf, error = self._renderers()
        name = f"profile {self.profile.name}"
        if error:
            tail = f"; {name} supplies its own, so this does not matter here" if mine else \
                "; lcchat falls back to ChatML: use the model's profile (-p, see lcchat profiles list) or set [chat] format"
            return [Verdict(bool(mine), "chat template", f"{error}{tail}")]
        if gguf is None and mine is None:
            return [Verdict(False, "chat template", "the GGUF carries no chat template and the profile names none, so "
                            "lcchat would fall back to ChatML, which is wrong for many models: chat with the model's "
                            "profile (-p, see lcchat profiles list) or set [chat] format or template")]
        if gguf is None:
            return [Verdict(True, "chat template", f"the GGUF carries no chat template; {name} supplies one "
                            f"({mine.source})")]
        try:
            theirs, sample = _render_sample(gguf)
        except TemplateError as exc:
            ok = mine is not None
            return [Verdict(ok, "chat template", f"{exc}" + (f"; the template of {name} is used instead" if ok else
                            "; lcchat falls back to ChatML: use the model's profile (-p) or set [chat] format"))]
        if mine is None:
            return [Verdict(True, "chat template", "the GGUF's chat template renders a sample conversation")]
        try:
            ours = self._as_prompt(mine.render(sample))
            theirs = self._as_prompt(theirs)
        except TemplateError as exc:
            return [Verdict(False, "chat template", f"{exc}; the GGUF's own template would work: remove "
                            "[chat] template/format from the profile")]
        if ours == theirs:
            return [Verdict(True, "chat template", f"the template of {name} and the GGUF's agree on a sample conversation")]
        at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        return [Verdict(False, "chat template", f"the template of {name} and the GGUF's differ on a sample conversation "
                        f"from character {at}: the profile writes {_show(ours[at:at + 30])} where the GGUF's writes "
                        f"{_show(theirs[at:at + 30])}; lcchat uses the profile's, so if the GGUF's is the model's real "
                        "format, chat with another profile or drop [chat] template/format")]

    def _as_prompt(self, text: str) -> str:
        """The text as the session tokenizes it: with the BOS llama.cpp adds, unless the
        template already wrote it (so templates with and without {{ bos_token }} compare equal)."""
        md = self.info.metadata
        add_bos = md.get("tokenizer.ggml.add_bos_token")
        if add_bos is None:
            add_bos = md.get("tokenizer.ggml.model") == "llama"
        if add_bos and self.bos_text and not text.startswith(self.bos_text):
            return self.bos_text + text
        return text

    def _active(self, *, adapt: bool = False):
        """The formatter a session would use (engine/loading.py picks it, the same function
        a session opens with) and its sample text. adapt=False: its chat markers as the
        template writes them, before they are renamed for this vocab."""
        from lcchat.engine import loading, templates

        formatter = loading.choose_formatter(self.profile.chat, self.info, bos_text=self.bos_text,
                                             eos_text=self.eos_text, notices=[], adapt=adapt)
        try:
            return formatter, _render_sample(formatter)[0]
        except templates.TemplateError:
            chatml = templates.chatml()
            return chatml, chatml.render(SAMPLE)

    def template_tokens(self) -> list[Verdict]:
        if not self.tokens:
            return []
        formatter, text = self._active()
        markers = list(dict.fromkeys(_MARKER.findall(text)))
        missing = [m for m in markers if m not in self.token_set]
        if not missing:
            shown = ", ".join(markers) if markers else "no special-token markers"
            return [Verdict(True, "template tokens", f"every marker the chat template writes is a token ({shown})")]
        message = (f"the chat template ({formatter.source}) writes {', '.join(missing)}, which "
                   f"{'are not tokens' if len(missing) > 1 else 'is not a token'} of this vocabulary, so the model "
                   "reads them as plain text and answers badly")
        legacy = {m: INTERNLM2_NAMES[m] for m in missing if m in INTERNLM2_NAMES and INTERNLM2_NAMES[m] in self.token_set}
        if legacy:
            names = ", ".join(f"{k} as {v}" for k, v in legacy.items())
            message += (f". This is an older InternLM2 conversion that names {names}: convert the model again with a "
                        "current llama.cpp, or use a copy of the internlm2 profile whose template writes those names")
        else:
            message += "; chat with the model's own profile (-p) or fix [chat] template"
        return [Verdict(False, "template tokens", message)]

    # ------------------------------------------------------------ stops

    def stops(self) -> list[Verdict]:
        from lcchat.engine import stops as stop_strings

        if not self.tokens:
            return []
        formatter, _ = self._active(adapt=True)
        stops, hidden = stop_strings.derive(formatter, _StopVocab(self), self.profile.chat.stop)
        impossible = [s for s in stops if not self._producer.can_produce(s)]
        if impossible:
            return [Verdict(False, "stops", f"the stop string{'s' if len(impossible) > 1 else ''} "
                            f"{', '.join(map(repr, impossible))} cannot be produced by this vocabulary, so "
                            f"{'they' if len(impossible) > 1 else 'it'} will never end a reply; the profile may be "
                            "meant for another model (check [chat] stop)")]
        if not stops:
            return [Verdict(False, "stops", "nothing ends a reply: the vocab has no EOS and the profile no stops; "
                            "add [chat] stop")]
        shown = ", ".join(repr(s) for s in stops)
        hidden = f"; {len(hidden)} other special token{'s are' if len(hidden) != 1 else ' is'} " \
                 "hidden if the model writes them" if hidden else ""
        return [Verdict(True, "stops", f"replies end at {shown}, all of which the vocabulary can produce{hidden}")]

    # ------------------------------------------------------------ reasoning

    def reasoning(self) -> list[Verdict]:
        """The thinking markers a chat would use (engine/reasoning.py's detect, as the session
        calls it), where they come from, and how /think off reaches the model."""
        from lcchat.engine import reasoning

        if not self.tokens:
            return []
        formatter, sample = self._active(adapt=True)
        setting = list(self.profile.chat.reasoning)
        markers = reasoning.detect(setting, formatter.text, self.tokens)
        if markers is None:
            if setting == ["none"]:
                return [Verdict(True, "reasoning", f"profile {self.profile.name} says the model does not think before "
                                "it answers ([chat] reasoning = [\"none\"]): replies are all answer")]
            return [Verdict(True, "reasoning", "no thinking markers in the profile, the chat template or the vocab: "
                            "the model does not think before it answers, replies are all answer (if it does, set "
                            "[chat] reasoning = [OPEN, CLOSE])")]
        where = {"profile": f"from profile {self.profile.name} ([chat] reasoning)",
                 "chat template": f"from the chat template ({formatter.source})",
                 "vocab": "from the vocab's tokens"}[markers.source]
        pair = f"{markers.open} ... {markers.close}"
        unwritable = [m for m in (markers.open, markers.close) if not self._producer.can_produce(m)]
        if unwritable:
            return [Verdict(False, "reasoning", f"thinking markers {pair} {where}, but the vocab cannot write "
                            f"{' or '.join(unwritable)}, so a reply's thinking would never be told from its answer; "
                            "set [chat] reasoning to the model's own markers")]
        as_tokens = all(m in self.token_set for m in (markers.open, markers.close))
        parts = [f"thinking markers {pair} {where}, {'single tokens' if as_tokens else 'written as plain text'}"]
        if reasoning.opened_by(sample, markers):
            parts.append("the template opens the block itself, so replies start inside it")
        if reasoning.takes_switch(formatter.text):
            parts.append("the template takes enable_thinking, which /think off and --no-think set to false")
        else:
            parts.append("the template has no enable_thinking switch: /think off and --no-think write an empty "
                         "thinking block into the prompt")
        return [Verdict(True, "reasoning", "; ".join(parts))]

    @property
    def _producer(self) -> "_Producer":
        if self._writer is None:
            self._writer = _Producer(self.tokens, self.types, self.info.metadata.get("tokenizer.ggml.model"))
        return self._writer

    # ------------------------------------------------------------ RoPE and context

    def rope(self) -> list[Verdict]:
        from lcchat.engine import rope

        info, settings = self.info, self.profile.rope
        kind, factor = rope.model_scaling(info)
        carried = rope.carried_scaling(kind, factor)
        resolved = rope.resolve_for(settings, info, n_ctx=self.profile.model.n_ctx)
        verdicts = []
        model_base = info.rope_freq_base
        if settings.freq_base and model_base and abs(settings.freq_base - model_base) > 1e-6 * model_base \
                and settings.scaling != "ntk":
            verdicts.append(Verdict(False, "rope", f"the profile sets freq_base {settings.freq_base:g} but the GGUF says "
                                    f"{model_base:g}; the profile's wins, so if the GGUF is right remove [rope] "
                                    "freq_base from the profile"))
        train = int(info.context_length or 0)
        claimed = _name_context(info)
        if claimed and train and claimed > train and carried is None and settings.scaling == "auto" \
                and not settings.freq_scale and not settings.freq_base:
            verdicts.append(Verdict(False, "rope", f"the model's name says {claimed // 1024}K tokens but the GGUF was "
                                    f"trained to {train} and carries no RoPE scaling: a long-context fine-tune needs "
                                    f"its scaling (e.g. linear, freq_scale {train / claimed:g}); use its profile "
                                    "(e.g. -p chinese-alpaca-2-16k) or set [rope] scaling and freq_scale"))
        verdicts += [Verdict(False, "rope", w) for w in resolved.warnings if "training context" not in w]
        if verdicts:
            return verdicts
        in_gguf = f"the GGUF carries {carried} scaling" if carried else "the GGUF carries no RoPE scaling"
        return [Verdict(True, "rope", f"{in_gguf}, base {model_base or 10000:g}; with the profile: {resolved.description}")]

    def context(self) -> list[Verdict]:
        from lcchat.engine import rope

        train = int(self.info.context_length or 0)
        n_ctx = self.profile.model.n_ctx or train
        resolved = rope.resolve_for(self.profile.rope, self.info, n_ctx=self.profile.model.n_ctx)
        beyond = [w for w in resolved.warnings if "training context" in w]
        if beyond:
            return [Verdict(False, "context", beyond[0] + " or lower n_ctx (-c)")]
        if not train:
            return [Verdict(False, "context", "the GGUF does not say its training context length; the file's metadata "
                            "is incomplete")]
        if n_ctx > train:
            return [Verdict(True, "context", f"trained to {train} tokens; n_ctx {n_ctx} reaches past it with the "
                            f"profile's RoPE settings: {resolved.description}")]
        return [Verdict(True, "context", f"trained to {train} tokens; the profile's n_ctx {n_ctx} fits")]

    # ------------------------------------------------------------ tokenizer.model

    def sentencepiece(self, sp) -> list[Verdict]:
        tokens = self.tokens
        n_sp = sp.GetPieceSize()
        if not tokens:
            return [Verdict(False, "tokenizer.model", "the GGUF has no token list to compare")]
        mismatched, renamed, patched = [], [], []
        for i in range(min(n_sp, len(tokens))):
            theirs = sp.IdToPiece(i)
            ours = tokens[i]
            if ours == theirs:
                continue
            if theirs == "\x00" and ours and "\0" not in ours:
                patched.append(i)
            elif re.fullmatch(r"\[UNUSED_TOKEN_\d+\]", theirs) and self.types[i] in (CONTROL, USER_DEFINED):
                renamed.append(i)
            else:
                mismatched.append(i)
        if mismatched or len(tokens) < n_sp:
            parts = []
            if mismatched:
                listed = "; ".join(f"token {i}: the GGUF has {_show(tokens[i])}, tokenizer.model has "
                                   f"{_show(sp.IdToPiece(i))}" for i in mismatched[:SHOW])
                parts.append(f"{len(mismatched)} token{'s differ' if len(mismatched) != 1 else ' differs'} ({listed}"
                             f"{'; ...' if len(mismatched) > SHOW else ''})")
            if len(tokens) < n_sp:
                parts.append(f"the GGUF has {len(tokens)} tokens but tokenizer.model has {n_sp}")
            return [Verdict(False, "tokenizer.model", ", and ".join(parts) + "; the GGUF was converted from another "
                            "tokenizer (or this tokenizer.model belongs to another model), so it will misread text: "
                            "convert the model again from its own tokenizer files")]
        notes = []
        if len(tokens) > n_sp:
            notes.append(f"the GGUF adds {len(tokens) - n_sp} tokens after them")
        if patched:
            notes.append(f"token {', '.join(map(str, patched))} (\\x00 in tokenizer.model) was replaced with "
                         f"{_show(tokens[patched[0]])} by the converter, as llama.cpp does for InternLM2")
        if renamed:
            notes.append(f"{len(renamed)} unused tokens were renamed to their special names ("
                         f"{', '.join(tokens[i] for i in renamed[:SHOW])}{' ...' if len(renamed) > SHOW else ''})")
        tail = "; " + "; ".join(notes) if notes else ""
        return [Verdict(True, "tokenizer.model", f"the GGUF vocab matches tokenizer.model token for token "
                        f"({min(n_sp, len(tokens))} tokens){tail}")]


def _render_sample(formatter) -> tuple[str, list[dict[str, str]]]:
    """Render the sample conversation, without the system message for templates that refuse one."""
    from lcchat.engine.templates import TemplateError

    try:
        return formatter.render(SAMPLE), SAMPLE
    except TemplateError:
        return formatter.render(SAMPLE[1:]), SAMPLE[1:]


def _name_context(info) -> int | None:
    """The context a model's name or file name clearly claims ("...-16k", "200K"), in tokens;
    None when it claims none."""
    names = [str(info.metadata.get("general.name") or ""), Path(info.path).name]
    for name in names:
        for number in _NAME_CTX.findall(name):
            value = int(number) * 1024
            if value >= 8192:
                return value
    return None


class _StopVocab:
    """engine.protocol.StopVocab from the GGUF's vocab alone, so the doctor derives the
    stops a chat would use (engine/stops.py) without loading the model."""

    def __init__(self, doctor: _Doctor):
        self._doctor = doctor
        self.bos_text = doctor.bos_text

    def control_texts(self) -> list[str]:
        d = self._doctor
        return [t for t, kind in zip(d.tokens, d.types) if kind == CONTROL and len(t) >= 3]

    def eog_texts(self) -> list[str]:
        d = self._doctor
        texts = [d._text(d.info.eos_token_id), d._text(d.info.eot_token_id)]
        return list(dict.fromkeys(t for t in texts if t))


class _Producer:
    """Whether a vocabulary can write a given text: as one token, or as a sequence of
    ordinary pieces (SentencePiece's ▁ is a space; GPT-2 style vocabs are byte-mapped).
    No tokenizer runs: it is a reachability check over the pieces."""

    def __init__(self, tokens: list[str], types: list[int], model: object):
        self.singles = set(tokens)
        self.byte_fallback = sum(1 for t, k in zip(tokens, types) if k == BYTE) >= 256
        self.gpt2 = model == "gpt2"
        pieces: set[bytes] = set()
        decode = _gpt2_decoder() if self.gpt2 else None
        for text, kind in zip(tokens, types):
            if kind not in (NORMAL, USER_DEFINED) or not text:
                continue
            if decode is not None:
                raw = decode(text)
                if raw is None:
                    continue
            else:
                raw = text.replace("\u2581", " ").encode("utf-8")
            pieces.add(raw)
        self.pieces = pieces
        self.longest = max((len(p) for p in pieces), default=0)

    def can_produce(self, text: str) -> bool:
        if text in self.singles or self.byte_fallback:
            return True
        data = text.encode("utf-8")
        n = len(data)
        reach = [False] * (n + 1)
        reach[0] = True
        for i in range(n):
            if not reach[i]:
                continue
            for j in range(i + 1, min(n, i + self.longest) + 1):
                if not reach[j] and data[i:j] in self.pieces:
                    reach[j] = True
        return reach[n]


def _gpt2_decoder() -> Callable[[str], bytes | None]:
    """GPT-2's byte-to-unicode table, reversed: a BPE piece's text back to its bytes."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = visible[:]
    extra = 0
    for b in range(256):
        if b not in visible:
            visible.append(b)
            codes.append(256 + extra)
            extra += 1
    table = {chr(c): b for b, c in zip(visible, codes)}

    def decode(text: str) -> bytes | None:
        try:
            return bytes(table[ch] for ch in text)
        except KeyError:
            return None

    return decode


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
