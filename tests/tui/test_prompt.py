"""The input box and the command palette, driven with real key presses."""

from __future__ import annotations

from lcchat.tui.prompt import MAX_LINES
from lcchat.tui.transcript import CommandOutput, UserTurn
from tests.tui.helpers import app_for, drive, idle, outputs, ready, session_with, wait_until


def run(scenario, replies=(), size=(80, 24)) -> None:
    app = app_for(session_with(*replies))

    async def main(pilot):
        await ready(pilot)
        await scenario(pilot, app)

    drive(app, main, size)


def test_enter_sends_and_shift_enter_or_ctrl_j_adds_a_line() -> None:
    async def scenario(pilot, app):
        await pilot.press(*"one", "shift+enter", *"two", "ctrl+j", *"three")
        assert app.prompt.text == "one\ntwo\nthree"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.transcript.query(UserTurn))
        await idle(pilot)
        assert app.transcript.query_one(UserTurn).text == "one\ntwo\nthree"
        assert app.prompt.text == ""

    run(scenario, [["ok"]])


def test_enter_on_an_empty_box_sends_nothing() -> None:
    async def scenario(pilot, app):
        await pilot.press("enter", "space", "enter")
        await pilot.pause()
        assert not app.transcript.query(UserTurn)

    run(scenario)


def test_the_box_grows_with_its_text_up_to_a_limit() -> None:
    async def scenario(pilot, app):
        prompt = app.prompt
        one = prompt.region.height
        await pilot.press("a", "ctrl+j", "b", "ctrl+j", "c")
        await pilot.pause()
        assert prompt.region.height == one + 2
        for _ in range(MAX_LINES + 4):
            await pilot.press("ctrl+j", "x")
        await pilot.pause()
        assert prompt.region.height == MAX_LINES + 2  # lines + the border
        assert app.transcript.region.height > 8

    run(scenario)


def test_up_and_down_walk_through_what_was_sent() -> None:
    async def scenario(pilot, app):
        for line in ("first", "second"):
            await pilot.press(*line, "enter")
            await wait_until(pilot, lambda: app.lines_handled and not app.busy)
            await idle(pilot)
        await pilot.press(*"draft")
        await pilot.press("up")
        assert app.prompt.text == "second"
        await pilot.press("up")
        assert app.prompt.text == "first"
        await pilot.press("up")
        assert app.prompt.text == "first"
        await pilot.press("down", "down")
        assert app.prompt.text == "draft"

    run(scenario, [["1"], ["2"]])


def test_tab_completes_slash_commands_and_their_arguments() -> None:
    async def scenario(pilot, app):
        await pilot.press(*"/the", "tab")
        assert app.prompt.text == "/theme "
        await pilot.press(*"hi", "tab")
        assert app.prompt.text == "/theme high-contrast "
        app.prompt.clear_input()
        await pilot.press(*"/s", "tab")
        assert app.prompt.text == "/s"  # several: /set /show /stream /system; nothing in common
        await pilot.press(*"ho", "tab")
        assert app.prompt.text == "/show "

    run(scenario)


def test_the_command_palette_lists_the_slash_commands() -> None:
    async def scenario(pilot, app):
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"context")
        await wait_until(pilot, lambda: _palette_options(app) and "/context" in _palette_options(app)[0])
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.transcript.query(CommandOutput))
        assert outputs(app)[-1] == "Context:"
        # a command that needs an argument is put in the box to finish
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"set PARAM")
        await wait_until(pilot, lambda: _palette_options(app) and "/set PARAM VALUE" in _palette_options(app)[0])
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.prompt.text == "/set ")
        assert app.prompt.has_focus

    run(scenario)


def test_the_palette_offers_each_theme() -> None:
    async def scenario(pilot, app):
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"theme ssh")
        await wait_until(pilot, lambda: _palette_options(app) and "/theme ssh" in _palette_options(app)[0])
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.front.theme == "ssh")

    run(scenario)


def _palette_options(app) -> list[str]:
    from textual.command import CommandList

    try:
        options = app.screen.query_one(CommandList)
    except Exception:  # noqa: BLE001 - no palette open (or not yet): no options
        return []
    return [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
