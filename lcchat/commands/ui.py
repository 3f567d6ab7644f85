"""Commands about the front-end's look: /theme."""

from __future__ import annotations

from lcchat.commands.actions import Theme
from lcchat.commands.registry import Context, Result, registry


@registry.command("theme", args="[NAME]", help="list the themes, or switch to one",
                  complete=lambda ctx, arg: list(ctx.state.themes),
                  details="Themes are files in themes/ and in the config dir's themes/ folder (NAME.tcss).")
def cmd_theme(ctx: Context, arg: str) -> Result:
    themes = list(ctx.state.themes)
    if not themes:
        return Result("This interface has no themes; they are for the full-screen one (lcchat --tui).", error=True)
    if not arg:
        rows = [(name, "(current)" if name == ctx.state.theme else "") for name in themes]
        return Result("Themes:", rows=rows)
    if arg not in themes:
        import difflib

        hint = difflib.get_close_matches(arg, themes, n=1)
        return Result(f"No theme {arg!r}." + (f" Did you mean {hint[0]}?" if hint else "")
                      + f" Themes: {', '.join(themes)}.", error=True)
    return Result(f"Theme: {arg}.", action=Theme(arg))
