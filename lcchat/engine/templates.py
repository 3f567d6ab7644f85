"""Chat templates: turning a conversation into prompt text.

In order of preference: a Jinja template given in the profile, a named format from
llama-cpp-python's registry, then the GGUF's own template. Jinja runs in an immutable
sandbox (no attribute tricks, no code) with bounds on time, repetition and output size,
because a GGUF's template is untrusted input.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from lcchat.errors import LcchatError

RENDER_SECONDS = 2.0  # a chat template that takes longer than this is stopped
MAX_OUTPUT = 8 << 20  # characters
_MAX_REPEAT = 1 << 16  # longest string/list a template may build with * or **


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


class _Timeout(Exception):
    pass


def _sandbox():
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context, operator, left, right):
            if operator == "**":
                if isinstance(right, (int, float)) and abs(right) > 64:
                    raise SecurityError("exponent too large in a chat template")
                return left**right
            count, seq = (right, left) if isinstance(right, int) else (left, right)
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and count * max(len(seq), 1) > _MAX_REPEAT:
                raise SecurityError("a chat template tried to build a huge string")
            return left * right

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def raise_exception(message: str) -> None:
        raise TemplateError(f"the chat template refused the conversation: {message}")

    def strftime_now(fmt: str) -> str:
        return time.strftime(fmt)

    env.globals.update(raise_exception=raise_exception, strftime_now=strftime_now)
    return env


def compile_jinja(text: str, *, bos_token: str = "", eos_token: str = "", source: str = "template") -> Formatter:
    """Compile a Jinja chat template; raises TemplateError on a syntax error."""
    import jinja2

    env = _sandbox()
    try:
        template = env.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"the {source} has a syntax error on line {exc.lineno}: {exc.message}") from exc
    except Exception as exc:  # noqa: BLE001 - any compile failure means: don't use it
        raise TemplateError(f"the {source} does not compile: {exc}") from exc

    def render(messages: list[dict[str, str]]) -> str:
        return _bounded_render(template, source, dict(
            messages=messages, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token, tools=None,
        ))

    return Formatter(source=source, render=render, text=text)


def _bounded_render(template: Any, source: str, variables: dict[str, Any]) -> str:
    """Render with a wall-clock bound: a trace function watches the template's own frames
    (Jinja compiles to Python) and stops a render that runs past RENDER_SECONDS."""
    deadline = time.monotonic() + RENDER_SECONDS
    template_code = "<template>"

    def local_trace(frame, event, arg):
        if time.monotonic() > deadline:
            raise _Timeout
        return local_trace

    def global_trace(frame, event, arg):
        if frame.f_code.co_filename == template_code:
            return local_trace
        return None

    previous = sys.gettrace()
    sys.settrace(global_trace)
    try:
        pieces: list[str] = []
        size = 0
        for chunk in template.generate(**variables):
            pieces.append(chunk)
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise TemplateError(f"the {source} produced more than {MAX_OUTPUT >> 20} MB of text")
            if time.monotonic() > deadline:
                raise _Timeout
        return "".join(pieces)
    except _Timeout:
        raise TemplateError(f"the {source} took longer than {RENDER_SECONDS:g} s to render and was stopped") from None
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - SecurityError, TypeError, UndefinedError ...
        raise TemplateError(f"the {source} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.settrace(previous)


def named_format(name: str) -> Formatter:
    """A chat format from llama-cpp-python's registry (chatml, llama-2, baichuan-2 ...)."""
    from llama_cpp import llama_chat_format as lcf

    formatter = _registered_formatter(lcf, name)
    if formatter is None:
        known = sorted(lcf.LlamaChatCompletionHandlerRegistry()._chat_handlers)
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
    closure holds the function it wraps.
    """
    handlers = lcf.LlamaChatCompletionHandlerRegistry()._chat_handlers
    handler = handlers.get(name)
    if handler is None:
        return None
    for cell in getattr(handler, "__closure__", None) or ():
        value = cell.cell_contents
        if callable(value) and getattr(value, "__name__", "").startswith("format_"):
            return value
    return None


def choose(*, profile_template: str, profile_format: str, gguf_template: str | None,
           bos_token: str, eos_token: str, notices: list[str]) -> Formatter:
    """Pick the chat formatter in order of preference, falling back past broken templates
    with a notice rather than refusing to chat."""
    if profile_template:
        try:
            return compile_jinja(profile_template, bos_token=bos_token, eos_token=eos_token, source="profile's chat template")
        except TemplateError as exc:
            notices.append(f"{exc}; using the next choice")
    if profile_format:
        return named_format(profile_format)
    if gguf_template:
        try:
            formatter = compile_jinja(gguf_template, bos_token=bos_token, eos_token=eos_token, source="GGUF's chat template")
            formatter.render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
            return formatter
        except TemplateError as exc:
            notices.append(f"{exc}; falling back to ChatML")
    else:
        notices.append("the model has no chat template and the profile names none; using ChatML (set [chat] format)")
    return chatml()


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
                     stop=[swaps.get(s, s) for s in formatter.stop], text=formatter.text)
