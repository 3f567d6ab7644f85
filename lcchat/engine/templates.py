"""Chat templates: turning a conversation into prompt text.

In order of preference: a Jinja template given in the profile, a named format from
llama-cpp-python's registry, then the GGUF's own template. Jinja runs in an immutable
sandbox (no attribute tricks, no code) with bounds on time and on the size of everything
it builds (engine/sandbox.py), because a GGUF's template is untrusted input.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from lcchat.errors import LcchatError

RENDER_SECONDS = 2.0  # a chat template that takes longer than this is stopped
MAX_OUTPUT = 8 << 20  # characters


# The ChatML layout, used when neither the profile nor the model says otherwise.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chatml() -> Formatter:
    formatter = compile_jinja(CHATML, source="built-in ChatML template")
    formatter.stop = ["<|im_end|>"]
    return formatter


class TemplateError(LcchatError):
    """A chat template that does not compile, fails, or runs too long."""


@dataclass
class Formatter:
    """Renders messages ([{"role", "content"}]) to prompt text, ready for the assistant."""

    source: str  # for people: "profile template", "format chatml", "GGUF template"
    render: Callable[[list[dict[str, str]]], str]
    stop: list[str] = field(default_factory=list)
    text: str = ""  # the Jinja source, when there is one
    renamed: tuple[str, ...] = ()  # marker texts written under another name (adapt_to_vocab)
    # Variables a Jinja template gets besides the messages, shared by every wrapper of one
    # template: the session sets enable_thinking here for templates that read it (Qwen3's).
    options: dict[str, Any] = field(default_factory=dict)


def _sandbox():
    """A Jinja environment for untrusted templates: the immutable sandbox, with every
    operation that builds strings bounded (see engine/sandbox.py) and lipsum removed."""
    from jinja2.compiler import CodeGenerator
    from jinja2.runtime import str_join
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from lcchat.engine import sandbox

    class Generator(CodeGenerator):
        def visit_Concat(self, node, frame):  # `a ~ b`: checked before it is joined
            if frame.eval_ctx.volatile or frame.eval_ctx.autoescape:
                return super().visit_Concat(node, frame)
            self.write("environment.bounded_concat((")
            for arg in node.nodes:
                self.visit(arg, frame)
                self.write(", ")
            self.write("))")

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**", "+", "%"])
        code_generator_class = Generator

        def call_binop(self, context, operator, left, right):
            sandbox.check_binop(operator, left, right)
            return sandbox.meter(super().call_binop(context, operator, left, right))

        def call(__self, __context, __obj, *args, **kwargs):  # jinja's own signature
            sandbox.check_method(getattr(__obj, "__wrapped__", __obj), args, kwargs)
            return sandbox.meter(super().call(__context, __obj, *args, **kwargs))

        def bounded_concat(self, parts):
            sandbox.check_concat(parts)
            return sandbox.meter(str_join(parts))

        @staticmethod
        def concat(parts):  # joins the output of {% set %} blocks, macros, call and filter blocks
            parts = list(parts)
            sandbox.check_concat(parts)
            return sandbox.meter("".join(parts))

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"],
                  finalize=sandbox.check_output)
    env.filters = sandbox.bounded_filters(env.filters)
    env.globals.pop("lipsum", None)

    def raise_exception(message: str) -> None:
        text = str(message)
        if len(text) > 500:
            text = text[:500] + "…"
        raise TemplateError(f"the chat template refused the conversation: {text}")

    def strftime_now(fmt: str) -> str:
        if len(str(fmt)) > 200:
            raise sandbox.Limit("strftime_now() format too long")
        return time.strftime(fmt)

    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    return env


def compile_jinja(text: str, *, bos_token: str = "", eos_token: str = "", source: str = "template") -> Formatter:
    """Compile a Jinja chat template; raises TemplateError on a syntax error. Compiling is
    bounded like rendering: Jinja folds constant expressions as it compiles."""
    import jinja2

    env = _sandbox()
    try:
        with _bounds(source):
            template = env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"the {source} has a syntax error on line {exc.lineno}: {exc.message}") from exc
    except TemplateError:
        raise
    except Exception as exc:  # any compile failure means: don't use it
        raise TemplateError(f"the {source} does not compile: {exc}") from exc

    options: dict[str, Any] = {}

    def render(messages: list[dict[str, str]]) -> str:
        return _bounded_render(template, source, dict(
            options, messages=messages, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token,
            tools=None,
        ))

    return Formatter(source=source, render=render, text=text, options=options)


@contextmanager
def _bounds(source: str) -> Iterator[None]:
    """The sandbox's time and memory bounds, as TemplateErrors naming the template."""
    from lcchat.engine import sandbox

    try:
        with sandbox.limits(RENDER_SECONDS):
            yield
    except (sandbox.Limit, sandbox.TimeLimit, MemoryError) as exc:
        # The stopped render's frames still hold what it built (a {% set %} buffer can be
        # hundreds of MB), and the traceback's reference cycles would keep it until the
        # garbage collector runs: free it now, before the next render starts.
        _release_frames(exc)
        if isinstance(exc, sandbox.TimeLimit):
            message = f"took longer than {RENDER_SECONDS:g} s and was stopped"
        elif isinstance(exc, sandbox.Limit):
            message = f"failed: {exc}"
        else:
            message = "ran out of memory"
        raise TemplateError(f"the {source} {message}") from None


def _release_frames(exc: BaseException) -> None:
    """Clear the locals of every finished frame the exception still reaches: those in its
    traceback and, through f_back, the frames Jinja's traceback rewriting leaves behind
    (its fake frames' callers hold the original traceback, and with it the render's
    buffers). Stops at the first frame still running: every caller above it runs too."""
    seen: set[int] = set()
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        while frame is not None and id(frame) not in seen:
            seen.add(id(frame))
            back = frame.f_back
            try:
                frame.clear()
            except RuntimeError:  # a frame still executing: its callers are too
                break
            snapshot = frame.f_locals  # a dict Python may keep beside the cleared frame
            if type(snapshot) is dict:
                snapshot.clear()
            frame = back
        tb = tb.tb_next


def _bounded_render(template: Any, source: str, variables: dict[str, Any]) -> str:
    """Render within the sandbox's bounds, stopping once the output passes MAX_OUTPUT."""
    try:
        with _bounds(source):
            pieces: list[str] = []
            size = 0
            for chunk in template.generate(**variables):
                pieces.append(chunk)
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise TemplateError(f"the {source} produced more than {MAX_OUTPUT >> 20} MB of text")
            return "".join(pieces)
    except TemplateError:
        raise
    except Exception as exc:  # SecurityError, TypeError, UndefinedError ...
        raise TemplateError(f"the {source} failed: {type(exc).__name__}: {exc}") from exc


def named_format(name: str) -> Formatter:
    """A chat format from llama-cpp-python's registry (chatml, llama-2, baichuan-2 ...)."""
    from llama_cpp import llama_chat_format as lcf

    formatter = _registered_formatter(lcf, name)
    if formatter is None:
        known = sorted(n for n in lcf.LlamaChatCompletionHandlerRegistry()._chat_handlers
                       if _registered_formatter(lcf, n) is not None)
        import difflib

        hint = difflib.get_close_matches(name, known, n=1)
        tip = f" (did you mean {hint[0]}?)" if hint else f"; known formats: {', '.join(known)}"
        from lcchat.errors import InputError

        raise InputError(f"unknown chat format {name!r}{tip}")
    stop: list[str] = []
    probe = formatter(messages=[{"role": "user", "content": "x"}])
    if probe.stop:
        stop = [probe.stop] if isinstance(probe.stop, str) else list(probe.stop)

    def render(messages: list[dict[str, str]]) -> str:
        return formatter(messages=messages).prompt

    return Formatter(source=f"format {name}", render=render, stop=stop)


def _registered_formatter(lcf: Any, name: str):
    """Find the formatter function behind a registered chat handler.

    The registry stores completion handlers wrapping the formatter functions; the wrapper's
    closure holds the function it wraps: `format_NAME`, or `format` (vicuna's). The
    function-calling handlers (functionary, chatml-function-calling) wrap none: they are
    not prompt formats.
    """
    handlers = lcf.LlamaChatCompletionHandlerRegistry()._chat_handlers
    handler = handlers.get(name)
    if handler is None:
        return None
    for cell in getattr(handler, "__closure__", None) or ():
        value = cell.cell_contents
        if callable(value) and getattr(value, "__name__", "").startswith("format"):
            return value
    return None


def choose(*, profile_template: str, profile_format: str, gguf_template: str | None,
           bos_token: str, eos_token: str, notices: list[str]) -> Formatter:
    """Pick the chat formatter in order of preference, falling back past broken templates
    with a notice rather than refusing to chat. A template that only lacks a system role
    is used, with the system prompt folded into the first user message (fold_system)."""
    if profile_template:
        try:
            formatter = compile_jinja(profile_template, bos_token=bos_token, eos_token=eos_token,
                                      source="profile's chat template")
            return fold_system(formatter, notices)
        except TemplateError as exc:
            notices.append(f"{exc}; using the next choice")
    if profile_format:
        return fold_system(named_format(profile_format), notices)
    if gguf_template:
        try:
            formatter = fold_system(compile_jinja(gguf_template, bos_token=bos_token, eos_token=eos_token,
                                                  source="GGUF's chat template"), notices)
            formatter.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
            return formatter
        except TemplateError as exc:
            notices.append(f"{exc}; falling back to ChatML")
    else:
        notices.append("the model has no chat template and the profile names none; using ChatML (set [chat] format)")
    return chatml()


# Probe texts: a system prompt and a user message that no template writes by itself.
_SYSTEM_PROBE = "\ue010system probe\ue011"
_USER_PROBE = "\ue012user probe\ue013"


def fold_system(formatter: Formatter, notices: list[str]) -> Formatter:
    """A template without a system role (Gemma, Mistral v0.2, Phi-3 ...) either raises on a
    system message or drops it. As llama.cpp does, render a system + user probe: when the
    system text is missing, or the template refuses it but takes the user message alone,
    the system prompt goes in front of the first user message (system + "\n" + user),
    and a notice says so once. Any other failure is left to the caller."""
    probe = [{"role": "system", "content": _SYSTEM_PROBE}, {"role": "user", "content": _USER_PROBE}]
    try:
        if _SYSTEM_PROBE in formatter.render(probe):
            return formatter
    except TemplateError:
        pass
    try:
        if _USER_PROBE not in formatter.render(probe[1:]):
            return formatter  # not a template that lacks only a system role: leave it as it is
    except TemplateError:
        return formatter
    inner = formatter.render

    def render(messages: list[dict[str, str]]) -> str:
        return inner(fold_messages(messages))

    notices.append(f"the {formatter.source} has no system role; the system prompt goes at the start of the "
                   "first user message")
    return Formatter(source=f"{formatter.source}, system prompt in the first user message", render=render,
                     stop=formatter.stop, text=formatter.text, renamed=formatter.renamed, options=formatter.options)


def fold_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with a leading system message merged into the first user message."""
    if not messages or messages[0].get("role") != "system":
        return messages
    system, rest = messages[0], list(messages[1:])
    for i, m in enumerate(rest):
        if m.get("role") == "user":
            rest[i] = {**m, "content": f"{system['content']}\n{m['content']}"}
            return rest
    return rest


# Chat markers that older conversions of some models name differently. InternLM2's first
# GGUF conversions carry <|im_start|> and <|im_end|> as [UNUSED_TOKEN_146] and
# [UNUSED_TOKEN_145]: a template that writes <|im_start|> then tokenizes it as plain
# text, and the model sees no turn markers at all.
TOKEN_ALIASES = {"<|im_start|>": "[UNUSED_TOKEN_146]", "<|im_end|>": "[UNUSED_TOKEN_145]"}


def adapt_to_vocab(formatter: Formatter, vocab: set[str], notices: list[str]) -> Formatter:
    """Rename the template's chat markers to the names this vocab has for them."""
    try:
        sample = formatter.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
    except TemplateError:
        return formatter
    swaps = {a: b for a, b in TOKEN_ALIASES.items() if a in sample and a not in vocab and b in vocab}
    if not swaps:
        return formatter
    inner = formatter.render

    def render(messages: list[dict[str, str]]) -> str:
        text = inner(messages)
        for old, new in swaps.items():
            text = text.replace(old, new)
        return text

    names = ", ".join(f"{a} as {b}" for a, b in swaps.items())
    notices.append(f"this GGUF has no {' or '.join(swaps)} token (an older conversion); writing {names}")
    return Formatter(source=f"{formatter.source}, markers renamed for this vocab", render=render,
                     stop=[swaps.get(s, s) for s in formatter.stop], text=formatter.text, renamed=tuple(swaps),
                     options=formatter.options)
