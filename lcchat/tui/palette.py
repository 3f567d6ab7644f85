"""The command palette (Ctrl+P) lists the slash commands of the shared registry.

Choosing a command that needs an argument puts "/name " in the input box to finish;
one whose argument is optional runs at once. Each theme also gets a "/theme NAME" entry.
"""

from __future__ import annotations

from functools import partial

from textual.command import CommandPalette, DiscoveryHit, Hit, Hits, Provider, SearchIcon

from lcchat.commands import registry


def needs_argument(args: str) -> bool:
    """"PARAM VALUE" needs one; "[on|off]" or "" does not."""
    return bool(args) and not args.startswith("[")


class SlashCommands(Provider):
    def _entries(self) -> list[tuple[str, str, object]]:
        app = self.app
        entries: list[tuple[str, str, object]] = []
        for cmd in registry.commands():
            if needs_argument(cmd.args):
                action = partial(app.fill_prompt, f"/{cmd.name} ")  # type: ignore[attr-defined]
            else:
                action = partial(app.run_line, f"/{cmd.name}")  # type: ignore[attr-defined]
            entries.append((cmd.usage, cmd.help, action))
            if cmd.name == "theme":
                for name in getattr(app, "theme_names", []):
                    entries.append((f"/theme {name}", f"switch to the {name} theme",
                                    partial(app.run_line, f"/theme {name}")))  # type: ignore[attr-defined]
        return entries

    async def discover(self) -> Hits:
        for usage, help_text, action in self._entries():
            yield DiscoveryHit(usage, action, text=usage, help=help_text)  # type: ignore[arg-type]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query.lstrip("/") if query.startswith("/") else query)
        for index, (usage, help_text, action) in enumerate(self._entries()):
            score = max(matcher.match(usage.lstrip("/")), matcher.match(help_text) * 0.5)
            if score > 0:
                score -= index * 1e-6  # equal scores keep the registry's order, every time
                yield Hit(score, matcher.highlight(usage), action, text=usage, help=help_text)  # type: ignore[arg-type]


class Palette(CommandPalette):
    """Textual's palette with a plain ">" for its search icon, which the linux console's
    font has (it has no emoji)."""

    DEFAULT_CSS = """
    Palette SearchIcon { color: $primary; }
    """

    def on_mount(self) -> None:
        self.query_one(SearchIcon).icon = ">"
