"""Themes: themes/*.tcss shipped with lcchat, and the user's own in paths.user_themes_dir().

A theme file is Textual CSS. Its variable declarations at the top level do two jobs:

- the core colours ($primary, $secondary, $accent, $foreground, $background, $surface,
  $panel, $boost, $warning, $error, $success) and two switches ($dark: true|false,
  $ansi: true|false) build a Textual Theme, so Textual's own widgets (the input box, the
  command palette, scrollbars, Markdown) follow it;
- every other declaration (the $lc-* names in theming.THEME_DEFAULTS, or any of Textual's
  own variables such as $border) becomes a theme variable that all CSS can use.

Any rules in the file are loaded as well, after lcchat's own CSS, so a theme may restyle
anything. A user theme with the name of a shipped one replaces it.

The declarations themselves never reach Textual's stylesheet (ThemeSpec.rules drops
them): Textual 8 copies its variable table shallowly when it parses a source, so a
`$foreground: ...;` in a source appends to the shared $foreground and every widget CSS
parsed later (a Markdown table's `keyline: thin $foreground 20%`) breaks. The Theme
object alone carries the colours.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from textual.css.stylesheet import Stylesheet
from textual.theme import Theme

CORE = ("primary", "secondary", "accent", "foreground", "background", "surface", "panel", "boost",
        "warning", "error", "success")
SWITCHES = ("dark", "ansi")
_DECLARATION = re.compile(r"^\s*\$([A-Za-z_][\w-]*)\s*:\s*([^;\n]+?)\s*;?\s*$", re.M)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
PREFIX = "lcchat-"  # the Textual theme of lcchat theme NAME is registered as lcchat-NAME


class ThemeError(Exception):
    """A theme file that cannot be used; the message says which file and why."""


@dataclass
class ThemeSpec:
    name: str
    path: Path
    css: str
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def rules(self) -> str:
        """The file's CSS without its top-level variable declarations: what the
        stylesheet gets (the variables reach it through the Theme)."""
        return _without_declarations(self.css)

    @property
    def textual_name(self) -> str:
        return PREFIX + self.name

    def to_textual(self) -> Theme:
        v = self.variables
        core = {k: v[k] for k in CORE if k in v}
        if "primary" not in core:
            raise ThemeError(f"{self.path}: a theme needs at least $primary")
        extra = {k: val for k, val in v.items() if k not in CORE and k not in SWITCHES}
        return Theme(name=self.textual_name, dark=_flag(v.get("dark"), True), ansi=_flag(v.get("ansi"), False),
                     variables=extra, **core)


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("true", "yes", "on", "1")


def parse_theme(path: Path) -> ThemeSpec:
    try:
        css = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ThemeError(f"{path}: cannot read the theme ({exc})") from None
    top = _top_level(_COMMENT.sub("", css))
    variables = {m.group(1): m.group(2).strip() for m in _DECLARATION.finditer(top)}
    return ThemeSpec(name=path.stem, path=path, css=css, variables=variables)


def _top_level(css: str) -> str:
    """The text outside any { ... } block: where theme variables are declared."""
    out, depth = [], 0
    for ch in css:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _without_declarations(css: str) -> str:
    """`css` with the `$name: value;` lines outside any { ... } block removed."""
    out: list[str] = []
    top: list[str] = []
    depth = 0
    for ch in _COMMENT.sub("", css):
        if depth == 0 and ch != "{":
            top.append(ch)
            continue
        if depth == 0:
            out.append(_DECLARATION.sub("", "".join(top)))
            top = []
        out.append(ch)
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
    out.append(_DECLARATION.sub("", "".join(top)))
    return "".join(out)


def discover(dirs: list[Path]) -> dict[str, Path]:
    """Theme name -> file; later directories win (shipped first, then the user's)."""
    found: dict[str, Path] = {}
    for d in dirs:
        try:
            files = sorted(d.glob("*.tcss"))
        except OSError:
            continue
        for f in files:
            if f.is_file():
                found[f.stem] = f
    return found


def check(spec: ThemeSpec, variables: dict[str, str]) -> None:
    """Parse the theme's CSS against the variables it will meet; raise ThemeError if it fails."""
    sheet = Stylesheet(variables=variables)
    try:
        sheet.add_source(spec.rules, read_from=(str(spec.path), ""))
        sheet.parse()
    except Exception as exc:  # noqa: BLE001 - Textual raises several kinds; all mean "broken"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ThemeError(f"{spec.path}: {first}") from None


def default_dirs() -> list[Path]:
    from lcchat import paths

    return [paths.shipped_themes_dir(), paths.user_themes_dir()]


_REF = re.compile(r"\$([A-Za-z_][\w-]*)")


def resolve_references(variables: dict[str, str]) -> dict[str, str]:
    """Values may name other variables ($accent 40%); Textual only resolves references
    inside one CSS file, so resolve them here, for the variables every file sees."""
    out = dict(variables)
    for _ in range(4):
        changed = False
        for key, value in out.items():
            if "$" not in value:
                continue
            new = _REF.sub(lambda m: out.get(m.group(1), m.group(0)) if m.group(1) != key else m.group(0), value)
            if new != value:
                out[key] = new
                changed = True
        if not changed:
            break
    return out
