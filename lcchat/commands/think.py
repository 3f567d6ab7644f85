"""/think: a reasoning model's thinking, per turn: on, off, a token budget, shown or hidden.

on/off/auto set ChatSession.thinking (the next turn passes enable_thinking to a template
that reads it, or closes the thinking block in the prompt); budget N sets
ChatSession.thinking_budget; show/hide is the front-end's (FrontState.show_thinking):
hidden, the REPL shows one live line and the TUI keeps the block collapsed.
"""

from __future__ import annotations

from lcchat.commands.actions import Settings
from lcchat.commands.registry import Context, Result, UsageError, registry
from lcchat.engine.protocol import server_of

WORDS = ("on", "off", "auto", "budget", "show", "hide")


def _state(ctx: Context) -> str:
    session = ctx.session
    mode = {None: "as the template does", True: "on", False: "off"}[session.thinking]
    budget = "no budget" if session.thinking_budget < 0 else f"budget {session.thinking_budget} tokens"
    shown = "shown" if ctx.state.show_thinking else "hidden (one live line)"
    return f"Thinking: {mode}, {budget}, {shown}."


@registry.command("think", args="[on|off|auto|budget N|show|hide]",
                  help="a reasoning model's thinking: on or off per turn, a token budget, shown or hidden",
                  complete=lambda ctx, arg: list(WORDS),
                  details="on/off passes enable_thinking to a template that reads it (Qwen3's); for other "
                          "templates off closes the thinking block in the prompt so the model answers at once. "
                          "budget N: after N thinking tokens lcchat closes the block itself and the model "
                          "answers (budget -1: no limit; not on a server, which keeps its own: llama-server "
                          "--reasoning-budget). hide: one live line instead of the thinking text. "
                          "[chat] thinking and thinking_budget set them in a profile; --think/--no-think too.")
def cmd_think(ctx: Context, arg: str) -> Result:
    session = ctx.session
    words = arg.lower().split()
    if not words:
        if session.markers is None:
            return Result("This model does not think before it answers (no thinking markers in its template "
                          "or vocab; [chat] reasoning names them).")
        return Result(_state(ctx))
    word, rest = words[0], words[1:]
    if word in ("show", "hide"):
        ctx.state.show_thinking = word == "show"
        return Result(_state(ctx), action=Settings())
    if session.markers is None:
        return Result("This model does not think before it answers (no thinking markers in its template or "
                      "vocab); set [chat] reasoning = [OPEN, CLOSE] in its profile if it does.", error=True)
    if word in ("on", "off", "auto") and not rest:
        session.thinking = {"on": True, "off": False, "auto": None}[word]
        return Result(_state(ctx))
    if word == "budget" and len(rest) == 1:
        try:
            n = int(rest[0])
        except ValueError:
            n = -2
        if n < -1:
            raise UsageError(f"A budget is a number of tokens (or -1 for none), not {rest[0]!r}.")
        if server_of(session.model) and n >= 0:
            from lcchat.engine.remote import BUDGET_NOT_APPLIED

            return Result(BUDGET_NOT_APPLIED[0].upper() + BUDGET_NOT_APPLIED[1:] + ".", error=True)
        session.thinking_budget = n
        return Result(_state(ctx))
    raise UsageError("Usage: /think [on|off|auto|budget N|show|hide]")
