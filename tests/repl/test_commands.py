"""Each kind of command action through the REPL loop, and how results and errors are shown
(what each command says is tested once, in tests/commands/)."""

from __future__ import annotations

import base64
import re

import pytest

from tests.repl.conftest import ENTER


def test_a_message_gets_a_reply_and_the_figures(drive) -> None:
    run = drive("hello" + ENTER, replies=[["Hi", " there", "!"]])
    assert run.status == 0
    assert "Hi there!" in run.text
    assert re.search(r"prompt [\d.]+ t/s · gen [\d.]+ t/s · 3 tokens · ctx \d+/2048 \(\d+%\)", run.text)
    assert run.messages() == [("user", "hello"), ("assistant", "Hi there!")]


@pytest.mark.parametrize("word", ["/exit", "/quit", "/bye", "/q"])
def test_exit_and_its_aliases_leave_with_status_0(drive, word) -> None:
    run = drive(word + ENTER + "not sent" + ENTER, end="")
    assert run.status == 0
    assert run.messages() == []


def test_ctrl_d_leaves(drive) -> None:
    assert drive("").status == 0


def test_help_lists_every_command_and_the_keys(drive) -> None:
    run = drive("/help" + ENTER)
    for name in ("/help", "/exit", "/clear", "/stream", "/vim", "/system", "/set", "/show", "/retry", "/undo",
                 "/copy", "/context"):
        assert name in run.text
    assert "Ctrl+J" in run.text and "Ctrl+D" in run.text


def test_an_unknown_command_gets_the_nearest_name(drive) -> None:
    run = drive("/hepl" + ENTER + "/sett temperature 1" + ENTER)
    assert "error: Unknown command /hepl. Did you mean /help?" in run.text
    assert "Did you mean /set?" in run.text
    assert run.messages() == []  # commands are never sent to the model


def test_set_vi_switches_the_editing_mode(drive) -> None:
    from prompt_toolkit.enums import EditingMode

    run = drive("/set vi on" + ENTER)
    assert "vi mode is on." in run.text
    assert run.repl.state.vi_mode is True
    assert run.repl.prompt.editing_mode == EditingMode.VI
    run = drive("/set vi maybe" + ENTER)
    assert "error: Expected on or off, not 'maybe'." in run.text


def test_vi_mode_from_the_profile(drive) -> None:
    from prompt_toolkit.enums import EditingMode

    from lcchat.config.schema import Profile
    from lcchat.engine.fake import FakeModel, fake_session

    profile = Profile(name="vi")
    profile.ui.vi_mode = True
    session = fake_session(FakeModel(), profile)
    run = drive("", session=session)
    assert run.repl.prompt.editing_mode == EditingMode.VI


def test_show_params_model_stats_profile_and_a_bad_topic(drive) -> None:
    run = drive("/show stats" + ENTER + "hi" + ENTER + "/show" + ENTER + "/show model" + ENTER + "/show stats" + ENTER
                + "/show profile" + ENTER + "/show nonsense" + ENTER, replies=[["one", " two"]])
    text = run.text
    assert "No reply yet." in text
    assert re.search(r"temperature\s+0\.8", text)  # a two-column table
    assert re.search(r"architecture\s+fake", text)
    assert re.search(r"reply tokens\s+2", text)
    assert "Profile fake" in text
    assert "error: Cannot show 'nonsense'." in text


def test_retry_streams_a_new_reply(drive) -> None:
    run = drive("/retry" + ENTER + "hello" + ENTER + "/retry" + ENTER, replies=[["first"], ["second"]])
    assert "error: Nothing to retry yet." in run.text
    assert "first" in run.text and "second" in run.text
    assert run.messages() == [("user", "hello"), ("assistant", "second")]
    assert run.text.count("1 tokens") == 2  # both replies get their figures


def test_copy_writes_osc52_to_the_terminal(drive) -> None:
    reply = ["Here:\n```py\nprint(1)\n```\nand\n```\nls\n```\n"]
    run = drive("/copy" + ENTER + "code please" + ENTER + "/copy" + ENTER + "/copy 2" + ENTER + "/copy 3" + ENTER
                + "/copy x" + ENTER, replies=[reply])
    raw = run.raw
    assert "error: There is no reply to copy yet." in run.text
    kept = run.session.conversation.last_reply().content
    assert kept.startswith("Here:")
    whole = base64.b64encode(kept.encode()).decode()
    assert f"\x1b]52;c;{whole}\x07" in raw
    assert "\x1b]52;c;" + base64.b64encode(b"ls\n").decode() + "\x07" in raw
    assert "Copied code block 2" in run.text
    assert "error: The last reply has 2 code blocks." in run.text
    assert "error: N must be a code block number, not 'x'. Usage: /copy [N]" in run.text


def test_osc52_sequence() -> None:
    from lcchat.repl.render import osc52

    seq = osc52("héllo")
    assert seq.startswith("\x1b]52;c;") and seq.endswith("\x07")
    assert base64.b64decode(seq[7:-1]).decode() == "héllo"


def test_clear_forgets_the_conversation_and_clears_the_screen(drive) -> None:
    run = drive("hi" + ENTER + "/clear" + ENTER, replies=[["ok"]])
    assert run.messages() == []
    assert "\x1b[2J" in run.raw  # the screen too
    assert run.raw.rindex("\x1b[2J") < run.raw.rindex("Conversation cleared.")
    assert run.session.context_used == 0


def test_a_line_starting_with_a_space_is_a_message_not_a_command(drive) -> None:
    run = drive(" /usr/bin is a directory" + ENTER, replies=[["yes"]])
    assert run.messages()[0] == ("user", " /usr/bin is a directory")


def test_a_double_slash_sends_a_message_starting_with_a_slash(drive) -> None:
    run = drive("//help" + ENTER, replies=[["yes"]])
    assert run.messages()[0] == ("user", "/help")
    assert "Commands:" not in run.text  # /help did not run


def test_a_command_argument_may_span_lines(drive) -> None:
    from tests.repl.conftest import ALT_ENTER

    run = drive("/system Be brief." + ALT_ENTER + "Use lists." + ENTER)
    assert run.session.conversation.system == "Be brief.\nUse lists."
    assert run.messages() == []


def test_long_work_that_is_not_a_reply(drive) -> None:
    """A TASK (/quant's switch or quantization, /load) shows its notices and progress, and
    no reply figures."""
    from lcchat.commands.actions import Task
    from lcchat.commands.registry import Registry, Result
    from lcchat.engine.events import Done, Notice, Progress

    def work():
        yield Progress("quantize", 1, 2)
        yield Notice("wrote model.Q4_K_M.gguf")
        yield Done("stop", "")

    reg = Registry()
    reg.command("work", help="long work")(lambda ctx, arg: Result(action=Task(work, "quantize")))
    seen = []
    run = drive("/work" + ENTER, registry=reg, live_toolbar=True, toolbar_every=60,
                before=lambda repl: seen.append(repl))
    assert "wrote model.Q4_K_M.gguf" in run.text
    assert "t/s ·" not in run.text.split("wrote model")[1]
    assert "[interrupted]" not in run.text
    assert re.search(r"\x1b\[7m quantize…", run.raw)  # what the toolbar says before any progress




def test_a_theme_action_is_explained_not_applied(drive) -> None:
    """The REPL has no themes (/theme says so before any action); a Theme action that
    reaches it anyway is one dim line, and the chat goes on."""
    from lcchat.commands.actions import Theme
    from lcchat.commands.registry import Registry, Result

    reg = Registry()
    reg.command("look", help="test only")(lambda ctx, arg: Result("Theme: light.", action=Theme("light")))
    run = drive("/look" + ENTER, registry=reg)
    assert "Theme: light." in run.text and "Themes change the TUI's look; the REPL has none." in run.text
    assert run.status == 0
