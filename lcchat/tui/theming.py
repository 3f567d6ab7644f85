"""The TUI's themes, as a mixin of the app: which files there are, and switching live.

The files are read by themes.py; this puts one on the running app (a Textual Theme for
the colours, the file's rules as a stylesheet source) and keeps FrontState.themes, which
/theme lists, up to date. The app provides `front` (a FrontState) and `_theme_dirs`.
"""

from __future__ import annotations

from pathlib import Path

from lcchat.tui import themes as theme_files

# Variables every theme has; a theme file may set any of them (themes/dark.tcss sets all).
THEME_DEFAULTS = {
    "lc-user": "$secondary",
    "lc-assistant": "$primary",
    "lc-notice": "$warning",
    "lc-muted": "$text-muted",
    "lc-error": "$error",
    "lc-ctx-ok": "$success",
    "lc-ctx-warn": "$warning",
    "lc-ctx-full": "$error",
    "lc-border": "$primary",
    "lc-title": "$primary",
    "lc-status-fg": "$foreground",
    "lc-status-bg": "$panel",
    "lc-code-bg": "$surface",
    # Textual's own CSS uses these under :ansi; its built-in ANSI themes define them.
    "ansi-background": "ansi_default",
    "ansi-foreground": "ansi_default",
}


class Theming:
    """Theme handling for LcchatApp (which is a textual App)."""

    _theme_paths: dict[str, Path]
    _theme_dirs: list[Path]

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_DEFAULTS)

    def get_css_variables(self) -> dict[str, str]:
        variables = theme_files.resolve_references(super().get_css_variables())
        self.theme_variables = variables
        return variables

    @property
    def theme_names(self) -> list[str]:
        return sorted(self._theme_paths)

    def _load_themes(self) -> None:
        self._theme_paths = theme_files.discover(self._theme_dirs)
        self.front.themes = self.theme_names

    def _variables_for(self, theme) -> dict[str, str]:
        variables = {**self.get_theme_variable_defaults(), **theme.to_color_system().generate(), **theme.variables}
        return theme_files.resolve_references(variables)

    def apply_theme(self, name: str) -> str | None:
        """Switch to theme `name` (a file in a theme dir, read again now); an error message if it cannot."""
        self._load_themes()
        path = self._theme_paths.get(name)
        if path is None:
            return f"No theme {name!r}; themes: {', '.join(self.theme_names) or 'none found'}."
        try:
            spec = theme_files.parse_theme(path)
            textual_theme = spec.to_textual()
            theme_files.check(spec, self._variables_for(textual_theme))
        except theme_files.ThemeError as exc:
            return f"Theme {name!r} cannot be used: {exc}"
        self.register_theme(textual_theme)
        sources = self.stylesheet.source
        for key in [k for k in sources if k[1] == "lcchat-theme"]:
            del sources[key]
        self.stylesheet.add_source(spec.rules, read_from=(str(spec.path), "lcchat-theme"), is_default_css=False)
        self.theme = textual_theme.name
        self.refresh_css(animate=False)
        self.front.theme = name
        return None
