"""The chat commands every front-end has: /help /exit /clear /stream /vim /system /set
/show /retry /undo /copy /context."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import fields

from lcchat.commands.actions import Clear, Copy, Edit, Exit, Generate, Settings
from lcchat.commands.registry import Context, Result, UsageError, registry
from lcchat.config.schema import SamplingSettings

ON = ("on", "true", "yes", "1")
OFF = ("off", "false", "no", "0")


def _on_off(arg: str, current: bool) -> bool:
    word = arg.lower()
    if not word:
        return not current
    if word in ON:
        return True
    if word in OFF:
        return False
    raise UsageError(f"Expected on or off, not {arg!r}.")


# ---------------------------------------------------------------- help and leaving


@registry.command("help", args="[COMMAND]", aliases=("?",), help="list the commands, or explain one",
                  complete=lambda ctx, arg: registry.names())
def cmd_help(ctx: Context, arg: str) -> Result:
    if arg:
        cmd = registry.get(arg)
        if cmd is None:
            hint = registry.suggest(arg)
            return Result(f"No command /{arg.lstrip('/')}." + (f" Did you mean /{hint}?" if hint else ""), error=True)
        alias = f" (also {', '.join('/' + a for a in cmd.aliases)})" if cmd.aliases else ""
        text = f"{cmd.usage}{alias}\n{cmd.help}"
        return Result(text + (f"\n\n{cmd.details}" if cmd.details else ""))
    rows = [(c.usage, c.help) for c in registry.commands()]
    keys = f"Keys: {ctx.state.keys}\n\n" if ctx.state.keys else ""  # each front-end lists its own
    return Result(f"{keys}Commands:", rows=rows)


@registry.command("exit", aliases=("quit", "bye", "q"), help="leave lcchat")
def cmd_exit(ctx: Context, arg: str) -> Result:
    return Result(action=Exit())


# ---------------------------------------------------------------- the conversation


@registry.command("clear", help="forget the conversation and clear the screen; the system prompt stays")
def cmd_clear(ctx: Context, arg: str) -> Result:
    if ctx.session.busy:
        return Result("Wait for the reply to finish (Ctrl+C stops it).", error=True)
    ctx.session.clear()
    return Result("Conversation cleared.", action=Clear())


@registry.command("retry", aliases=("regen",), help="generate the last reply again")
def cmd_retry(ctx: Context, arg: str) -> Result:
    msgs = ctx.session.conversation.messages
    if not msgs:
        return Result("Nothing to retry yet.", error=True)
    return Result(action=Generate(ctx.session.retry))


@registry.command("undo", help="drop the last exchange (your message and its reply)")
def cmd_undo(ctx: Context, arg: str) -> Result:
    if not ctx.session.conversation.messages:
        return Result("Nothing to undo.", error=True)
    if not ctx.session.undo():
        return Result("Wait for the reply to finish (Ctrl+C stops it).", error=True)
    left = len(ctx.session.conversation.messages)
    return Result(f"Dropped the last exchange; {left} message{'s' if left != 1 else ''} left.")


@registry.command("system", args="[TEXT]", help="show the system prompt, or set it",
                  details="/system - (a lone dash) removes the system prompt.")
def cmd_system(ctx: Context, arg: str) -> Result:
    conv = ctx.session.conversation
    if not arg:
        return Result(f"System prompt: {conv.system}" if conv.system else "No system prompt is set.")
    ctx.session.set_system("" if arg == "-" else arg)
    return Result("System prompt removed." if arg == "-" else "System prompt set.")


@registry.command("vim", aliases=("edit",), help="write the next message in your editor ($VISUAL, $EDITOR, vim, vi, nano)",
                  details="Save and quit to send what you wrote; an empty file cancels.")
def cmd_vim(ctx: Context, arg: str) -> Result:
    return Result(action=Edit(arg))


@registry.command("stream", args="[on|off]", help="show replies as they are generated, or whole when done",
                  complete=lambda ctx, arg: ["on", "off"])
def cmd_stream(ctx: Context, arg: str) -> Result:
    ctx.state.stream = _on_off(arg, ctx.state.stream)
    return Result(f"Streaming is {'on' if ctx.state.stream else 'off'}.", action=Settings())


# ---------------------------------------------------------------- parameters


SETTABLE = [f.name for f in fields(SamplingSettings)]
EXTRA_SETTABLE = {"stop": "stop strings, separated by commas (/set stop - removes them)",
                  "vi": "vi key bindings in the REPL (on/off)", "stream": "streamed display (on/off)"}


def _complete_set(ctx: Context, arg: str) -> list[str]:
    words = arg.split(" ")
    if len(words) <= 1:
        return [*SETTABLE, *EXTRA_SETTABLE]
    if words[0] in ("vi", "stream"):
        return ["on", "off"]
    return []


@registry.command("set", args="PARAM VALUE", help="change a parameter for this session (temperature, top_p, max_tokens, stop, vi ...)",
                  complete=_complete_set,
                  details="Parameters: " + ", ".join(SETTABLE + list(EXTRA_SETTABLE)) + ".")
def cmd_set(ctx: Context, arg: str) -> Result:
    from lcchat.config.loader import check_value

    name, _, raw = arg.partition(" ")
    raw = raw.strip()
    if not name:
        raise UsageError("Name a parameter.")
    if name == "vi":
        ctx.state.vi_mode = _on_off(raw, ctx.state.vi_mode)
        return Result(f"vi mode is {'on' if ctx.state.vi_mode else 'off'}.", action=Settings())
    if name == "stream":
        return cmd_stream(ctx, raw)
    if name == "stop":
        stops = [] if raw in ("", "-") else [_unescape(s) for s in raw.split(",") if s]
        ctx.session.set_stops(stops)
        return Result(f"Extra stop strings: {', '.join(map(repr, stops))}." if stops else "Extra stop strings removed.")
    spec = {f.name: f for f in fields(SamplingSettings)}
    f = spec.get(name)
    if f is None:
        import difflib

        hint = difflib.get_close_matches(name, [*spec, *EXTRA_SETTABLE], n=1)
        raise UsageError(f"No parameter {name!r}." + (f" Did you mean {hint[0]}?" if hint else ""))
    if not raw:
        raise UsageError(f"Give a value for {name}.")
    value = _parse(raw, str(f.type))
    problem = check_value(f, value)
    if problem:
        return Result(f"{name} {problem}.", error=True)
    setattr(ctx.session.sampling, name, value)
    return Result(f"{name} = {value}")


def _parse(raw: str, kind: str):
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        return raw  # check_value explains what was expected
    return raw


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t")


@registry.command("show", args="[params|profile|model|stats|prompt [TEXT]]",
                  help="show the sampling parameters, profile, model, last stats, or the exact prompt and its tokens",
                  complete=lambda ctx, arg: ["params", "profile", "model", "stats", "prompt"])
def cmd_show(ctx: Context, arg: str) -> Result:
    what, _, rest = (arg or "params").partition(" ")
    session = ctx.session
    if what == "prompt":
        from lcchat.engine import prompt_view
        from lcchat.engine.templates import TemplateError
        from lcchat.errors import LcchatError

        try:
            view = prompt_view.preview(session, rest.strip() or None)
        except TemplateError as exc:
            raise UsageError(str(exc)) from None
        except LcchatError as exc:  # the prompt does not fit the context (overflow = error)
            return Result(str(exc), error=True)
        return Result(prompt_view.describe(session, view))
    if what == "params":
        s = session.sampling
        rows = [(f.name, str(getattr(s, f.name))) for f in fields(s)]
        rows.append(("stop", ", ".join(repr(x) for x in session.stops)))
        return Result("Sampling parameters:", rows=rows)
    if what == "profile":
        from lcchat.config.loader import to_toml

        p = session.profile
        return Result(f"Profile {p.name} ({p.source or 'built in'}):\n\n" + to_toml(p.to_dict()))
    if what == "model":
        rows = [(k, str(v)) for k, v in session.model.describe().items()]
        rows.append(("chat format", session.formatter.source))
        return Result("Model:", rows=rows)
    if what == "stats":
        st = session.last_stats
        if st is None:
            return Result("No reply yet.")
        return Result("Last reply:", rows=[
            ("prompt tokens", f"{st.prompt_tokens} ({st.prompt_eval_tokens} evaluated)"),
            ("prompt speed", f"{st.prompt_tokens_per_s:.1f} tokens/s"),
            ("reply tokens", str(st.completion_tokens)),
            ("generation speed", f"{st.tokens_per_s:.1f} tokens/s"),
            ("time to first token", f"{st.ttft_s:.3f} s"),
            ("context", f"{st.context_used}/{st.context_size}"),
        ])
    raise UsageError(f"Cannot show {what!r}.")


@registry.command("context", help="how full the context is, and what happens when it overflows")
def cmd_context(ctx: Context, arg: str) -> Result:
    s = ctx.session
    conv = s.conversation
    used, size = s.context_used, s.context_size
    pct = 100.0 * used / size if size else 0.0
    policy = s.profile.context.overflow
    rule = {
        "drop-oldest": "the oldest exchanges are dropped, the system prompt is kept",
        "truncate-left": "the oldest exchanges are dropped, then a message still too long loses its start",
    }.get(policy, "an overflow is an error; /clear to start again")
    return Result("Context:", rows=[
        ("used", f"{used} of {size} tokens ({pct:.0f}%)"),
        ("kept for the reply", f"{s.profile.context.reserve} tokens"),
        ("messages seen by the model", f"{len(conv.messages) - conv.window_start} of {len(conv.messages)}"),
        ("overflow", f"{policy}: {rule}"),
    ])


# ---------------------------------------------------------------- clipboard


FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})")


def code_blocks(text: str) -> list[str]:
    """The fenced code blocks of a Markdown reply (``` or ~~~, indented too, as in a list),
    in order. A fence left open (an interrupted reply, max_tokens) runs to the end."""
    blocks: list[str] = []
    fence = indent = ""
    body: list[str] = []
    for line in text.split("\n"):
        if not fence:
            m = FENCE.match(line)
            if m:
                indent, fence, body = m.group(1), m.group(2), []
            continue
        stripped = line.strip()
        if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
            blocks.append("".join(b + "\n" for b in body))
            fence = ""
            continue
        body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
    if fence:
        while body and not body[-1].strip():
            body.pop()
        blocks.append("".join(b + "\n" for b in body))
    return blocks


def tmux_clipboard_hint(env=None, ask=None) -> str:
    """Inside tmux, OSC 52 reaches the outer terminal only with `set-clipboard on`; with
    its default `external` lcchat's copy stops at tmux. What to set, or "" when fine."""
    env = os.environ if env is None else env
    if not env.get("TMUX"):
        return ""
    if ask is None:
        def ask() -> str:
            done = subprocess.run(["tmux", "show-options", "-gv", "set-clipboard"], capture_output=True, text=True,
                                  timeout=2, check=False)
            return done.stdout.strip()
    try:
        value = ask()
    except (OSError, subprocess.SubprocessError):
        value = ""
    if value == "on":
        return ""
    now = f"is {value!r}" if value else "may not be 'on'"
    return (f" Inside tmux the copy reaches your terminal only with set-clipboard on (it {now}): "
            "run `tmux set -g set-clipboard on`, or add it to ~/.tmux.conf.")


@registry.command("copy", args="[N]", help="copy the last reply, or its Nth code block, to the clipboard (OSC 52, works over SSH)")
def cmd_copy(ctx: Context, arg: str) -> Result:
    reply = ctx.session.conversation.last_reply()
    if reply is None or not reply.content:
        return Result("There is no reply to copy yet.", error=True)
    text = reply.content
    if arg:
        if not (arg.isascii() and arg.isdigit()) or int(arg) < 1:  # int() reads "²" too
            raise UsageError(f"N must be a code block number, not {arg!r}.")
        blocks = code_blocks(text)
        n = int(arg)
        if n > len(blocks):
            return Result(f"The last reply has {len(blocks)} code block{'s' if len(blocks) != 1 else ''}.", error=True)
        text = blocks[n - 1]
        what = f"code block {n}"
    else:
        what = "the last reply"
    return Result(f"Copied {what} ({len(text)} characters).{tmux_clipboard_hint()}", action=Copy(text))
