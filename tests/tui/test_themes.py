"""Themes: the four shipped ones, the user's own, switching live, and ssh's 16 colours."""

from __future__ import annotations

import re

import pytest
from rich.color import ColorType

from lcchat import paths
from lcchat.tui import themes
from lcchat.tui.app import LcchatApp
from lcchat.tui.transcript import CommandOutput, UserTurn
from tests.tui.helpers import app_for, drive, notices, outputs, ready, say, session_with
from tests.tui.screen import screen_segments

SHIPPED = ("dark", "light", "high-contrast", "ssh")
REPLY = ["A *reply* with `code`:\n\n", "```python\n", "def f():\n", "    return 1\n", "```\n"]


def test_the_four_themes_are_shipped() -> None:
    found = themes.discover([paths.shipped_themes_dir()])
    assert set(SHIPPED) <= set(found)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_theme_parses_and_applies(name) -> None:
    app = app_for(session_with(REPLY), theme=name)

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "hi")
        assert app.front.theme == name and app.theme == f"lcchat-{name}"
        assert not [n for n in notices(app) if "theme" in n.lower()]

    drive(app, scenario)


def test_ssh_declares_only_basic_ansi_colours() -> None:
    spec = themes.parse_theme(paths.shipped_themes_dir() / "ssh.tcss")
    assert spec.variables["ansi"] == "true"
    for key, value in spec.variables.items():
        if key in ("ansi", "dark"):
            continue
        assert re.fullmatch(r"ansi_(default|(bright_)?(black|red|green|yellow|blue|magenta|cyan|white))", value), \
            (key, value)
    rules = themes._COMMENT.sub("", spec.css)
    assert "#" not in rules and "rgb" not in rules


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_ssh_draws_with_the_16_colours_only(size) -> None:
    app = app_for(session_with(REPLY, ["interrupted?"]), theme="ssh")

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "hi")
        await say(pilot, "/help")
        app.dashboard.set_context(2000, 2048)  # the warning colours too
        await pilot.pause()
        bad = set()
        for seg in screen_segments(app):
            for colour in (seg.style.color, seg.style.bgcolor) if seg.style else ():
                if colour is not None and colour.type not in (ColorType.DEFAULT, ColorType.STANDARD):
                    bad.add((colour.name, seg.text[:20]))
        assert not bad
        assert app.native_ansi_color

    drive(app, scenario, size)


def test_a_user_theme_is_listed_and_used(lcchat_home) -> None:
    user_dir = paths.user_themes_dir()
    user_dir.mkdir(parents=True)
    (user_dir / "mine.tcss").write_text(
        "$primary: #ff0000;\n$background: #000080;\n$lc-user: #00ff00;\n"
        "UserTurn { text-style: italic; }\n")
    app = app_for(session_with(["ok"]))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "/theme")
        assert "mine" in dict(app.transcript.query(CommandOutput).last().rows)
        await say(pilot, "/theme mine")
        await say(pilot, "hello")
        turn = app.transcript.query_one(UserTurn)
        assert turn.styles.text_style.italic
        assert turn.styles.border_left[1].hex.upper() == "#00FF00"
        assert app.screen.styles.background.hex.upper() == "#000080"
        await say(pilot, "/theme dark")
        assert not turn.styles.text_style.italic

    drive(app, scenario)


def test_a_user_theme_replaces_a_shipped_one_of_the_same_name(lcchat_home) -> None:
    user_dir = paths.user_themes_dir()
    user_dir.mkdir(parents=True)
    (user_dir / "light.tcss").write_text("$primary: #123456;\n$dark: false;\n$background: #fafafa;\n")
    app = app_for(session_with(), theme="light")

    async def scenario(pilot):
        await ready(pilot)
        assert app.screen.styles.background.hex.upper() == "#FAFAFA"
        assert app.current_theme.dark is False

    drive(app, scenario)


def test_a_broken_theme_is_refused_and_the_current_one_stays(lcchat_home) -> None:
    user_dir = paths.user_themes_dir()
    user_dir.mkdir(parents=True)
    (user_dir / "broken.tcss").write_text("$primary: #ff0000;\nScreen { colour: nonsense; }\n")
    (user_dir / "empty.tcss").write_text("/* no colours */\n")
    app = app_for(session_with())

    async def scenario(pilot):
        await ready(pilot)
        for name in ("broken", "empty"):
            await say(pilot, f"/theme {name}")
            assert "cannot be used" in outputs(app)[-1]
            assert app.front.theme == "dark" and app.theme == "lcchat-dark"

    drive(app, scenario)


def test_an_unknown_theme_at_start_warns_and_uses_dark() -> None:
    app = app_for(session_with(), theme="nope")

    async def scenario(pilot):
        await ready(pilot)
        assert any("No theme 'nope'" in n for n in notices(app))
        assert app.front.theme == "dark"

    drive(app, scenario)


def test_the_profile_names_the_theme() -> None:
    from lcchat.config.schema import Profile

    profile = Profile(name="p")
    profile.ui.theme = "high-contrast"
    app = app_for(session_with(), profile=profile)

    async def scenario(pilot):
        await ready(pilot)
        assert app.front.theme == "high-contrast"

    drive(app, scenario)


def test_references_between_variables_are_resolved() -> None:
    out = themes.resolve_references({"a": "#ff0000", "b": "$a 50%", "c": "$b", "d": "$nope", "e": "$e"})
    assert out == {"a": "#ff0000", "b": "#ff0000 50%", "c": "#ff0000 50%", "d": "$nope", "e": "$e"}


def test_theme_variables_have_defaults_for_themes_that_set_few() -> None:
    assert all(key.startswith(("lc-", "ansi-")) for key in LcchatApp(lambda **_: None).get_theme_variable_defaults())
