"""Replies the TUI must always show: tables in every theme, a reply whose Markdown cannot
be drawn (shown as plain text, the chat goes on), control characters made visible."""

from __future__ import annotations

import pytest
from textual.geometry import Region
from textual.widgets._markdown import MarkdownTable

from lcchat.engine.chat import Message
from lcchat.engine.events import Notice, Stats
from lcchat.tui.transcript import AssistantTurn
from tests.tui.helpers import app_for, drive, notices, ready, say, session_with
from tests.tui.screen import screen_segments, screen_text

TABLE = ["| Language | Speed | Safety |\n", "|---|---|---|\n", "| Python | Slow | GC |\n",
         "| Rust | Fast | borrow checker |\n", "| Go | Fast | GC |\n"]
THEMES = ["dark", "light", "high-contrast", "ssh"]


@pytest.mark.parametrize("theme", THEMES)
def test_a_markdown_table_is_drawn_in_every_theme(theme) -> None:
    app = app_for(session_with(TABLE), theme=theme)

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "Make a markdown table")
        turn = app.transcript.query_one(AssistantTurn)
        assert turn.plain is None and turn.query(MarkdownTable)
        assert "borrow checker" in screen_text(app)

    drive(app, scenario, size=(120, 40))


def test_html_in_a_reply_is_shown_as_written() -> None:
    """A reply about HTML, or a model's <think> the TUI doesn't treat as reasoning, keeps
    its tags on screen: Markdown's raw HTML would drop them."""
    reply = ["Use the <div> element, ", "then <think>hmm</think> and <b>bold</b>.\n\n",
             "<script>alert(1)</script>\n\nend"]
    app = app_for(session_with(reply))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "How do I lay out a page?")
        await pilot.pause()
        text = screen_text(app)
        assert "Use the <div> element, then <think>hmm</think> and <b>bold</b>." in text
        assert "<script>alert(1)</script>" in text

    drive(app, scenario, size=(120, 40))


def test_a_saved_table_reply_is_drawn_when_the_conversation_continues() -> None:
    session = session_with(["first"])
    session.conversation.messages[:] = [Message("user", "Make a markdown table"), Message("assistant", "".join(TABLE))]
    app = app_for(session)

    async def scenario(pilot):
        await ready(pilot)
        assert app.transcript.query(MarkdownTable)
        assert "borrow checker" in screen_text(app)

    drive(app, scenario, size=(120, 40))


def test_a_reply_that_cannot_be_drawn_as_markdown_is_shown_as_plain_text(monkeypatch) -> None:
    def broken(self):
        raise RuntimeError("table drawing is broken")

    monkeypatch.setattr(MarkdownTable, "compose", broken)
    app = app_for(session_with(["Intro line.\n\n", *TABLE, "\nAfter the table."], ["second reply"]))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "Make a markdown table")
        turn = app.transcript.query(AssistantTurn).first()
        await pilot.pause()
        assert turn.plain is not None
        assert "borrow checker" in screen_text(app) and "After the table." in screen_text(app)
        said = [n for n in notices(app) if "could not be shown as Markdown" in n]
        assert len(said) == 1 and "table drawing is broken" in said[0]
        await say(pilot, "and now?")  # the chat goes on
        assert "second reply" in screen_text(app)

    drive(app, scenario, size=(120, 40))
    assert app.return_code in (0, None)


HOSTILE = "safe \x1b]0;PWNED\x07 \x1b]52;c;ZWNobyBwd25lZA==\x07 \x1b[2J \x9b31m end"


def test_control_characters_in_a_reply_are_shown_not_obeyed() -> None:
    app = app_for(session_with(list(HOSTILE)))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "hi \x1b[31m")
        await app.transcript.add_notice("template said \x1b]0;x\x07", "error")
        await pilot.pause()
        drawn = "".join(seg.text for seg in screen_segments(app))
        assert not any(ord(c) < 0x20 and c != "\n" or 0x7F <= ord(c) < 0xA0 for c in drawn)
        assert "␛]0;PWNED␇" in drawn and "␛[2J" in drawn and "template said ␛]0;x␇" in drawn
        assert app.transcript.query_one(AssistantTurn).text == HOSTILE  # the text kept is the model's

    drive(app, scenario, size=(120, 40))


def test_a_warning_reads_the_same_in_the_tui_as_in_the_repl() -> None:
    import io

    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.output.vt100 import Vt100_Output

    from lcchat.repl.render import Printer

    session = session_with(["ok"])
    session.notices = [Notice("continuing conversation 3", "info"), Notice("no chat template; using ChatML", "warning")]
    app = app_for(session)
    out = io.StringIO()
    printer = Printer(Vt100_Output(out, lambda: Size(24, 80), term="xterm"), colour=False, attributes=False)
    for notice in session.notices:
        printer.notice(notice)

    async def scenario(pilot):
        await ready(pilot)
        shown = [str(n.render()) for n in app.transcript.query("Notice") if "continuing" in n.text or "ChatML" in n.text]
        assert shown == out.getvalue().strip().splitlines() == [
            "continuing conversation 3", "warning: no chat template; using ChatML"]

    drive(app, scenario)


def test_sending_while_scrolled_up_follows_the_new_reply() -> None:
    long = [f"line {i}\n\n" for i in range(60)]
    app = app_for(session_with(long, ["the new reply"]))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "a long one")
        transcript = app.transcript
        transcript.scroll_home(animate=False)
        await pilot.pause()
        assert transcript.scroll_y == 0 and transcript.max_scroll_y > 0
        await say(pilot, "next")
        await pilot.pause()
        assert transcript.scroll_y == transcript.max_scroll_y and "the new reply" in screen_text(app)
        transcript.scroll_home(animate=False)
        await pilot.pause()
        await pilot.press("ctrl+end")  # from the input box too
        await pilot.pause()
        assert transcript.scroll_y == transcript.max_scroll_y

    drive(app, scenario)


def test_a_message_too_long_for_the_context_stays_in_the_box() -> None:
    app = app_for(session_with(["never"], n_ctx=64, reserve=8))

    async def scenario(pilot):
        await ready(pilot)
        words = " ".join(["word"] * 200)
        await say(pilot, words)
        assert app.prompt.text == words  # to be shortened, not typed again
        assert not app.session.conversation.messages
        said = [n for n in notices(app) if "but the context holds 64" in n]
        assert said and said[0].endswith("; shorten it, or start lcchat again with a larger n_ctx (-c)"), notices(app)

    drive(app, scenario)


def test_retry_and_undo_take_the_replys_notices_with_it() -> None:
    session = session_with(["cut ", "short ", "here"], ["again"], ["third"])
    session.sampling.max_tokens = 2
    app = app_for(session)

    def about_max_tokens() -> list[str]:
        return [n for n in notices(app) if "max_tokens" in n]

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "long answer please")
        assert len(about_max_tokens()) == 1
        await say(pilot, "/retry")  # the notice was about the reply /retry replaced
        assert about_max_tokens() == [] and app.transcript.last_reply().text == "again"
        session.sampling.max_tokens = 1
        await say(pilot, "/retry")
        assert len(about_max_tokens()) == 1
        await say(pilot, "/undo")
        assert about_max_tokens() == [] and not app.transcript.query(AssistantTurn)

    drive(app, scenario)


def test_the_footer_and_the_model_name_are_not_cut() -> None:
    long_name = "SmolLM2-135M-Instruct-long-name.Q4_K_M.gguf"

    def app_with_long_name():
        session = session_with(["hi"])
        describe = session.model.describe
        session.model.describe = lambda: {**describe(), "file": long_name}
        return app_for(session)

    async def footer(pilot):
        await ready(pilot)
        last = screen_text(pilot.app).splitlines()[-1]
        assert "Ctrl+Q quit" in last and "…" not in last

    async def model_name(pilot):
        await ready(pilot)
        label = pilot.app.dashboard.query_one("#model-file")
        strips = label.render_lines(Region(0, 0, label.size.width, label.size.height))
        assert "".join(seg.text for strip in strips for seg in strip).replace(" ", "") == long_name

    drive(app_with_long_name(), footer, size=(60, 20))
    drive(app_with_long_name(), model_name, size=(120, 40))


def test_the_figures_agree_after_undo_and_retry() -> None:
    session = session_with(["first ", "reply"], ["second ", "reply"], ["again"])
    app = app_for(session)

    def context_row() -> str:
        return app.transcript.query("CommandOutput").last().rows[0][1]  # /context's "used" row

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "one")
        await say(pilot, "two")
        await say(pilot, "/retry")
        turn = app.transcript.last_reply()  # as after a /retry whose prompt came whole from the KV cache:
        cached = Stats(prompt_tokens=119, prompt_eval_tokens=1, prompt_tokens_per_s=1.7e6, completion_tokens=1,
                       tokens_per_s=20.0, final=True)
        await turn.finish("stop", turn.text, cached)
        app.dashboard.figures.take_stats(cached)
        app.dashboard.redraw()
        await pilot.pause()
        assert "prompt cached" in str(turn.note.render()) and "prompt cached" in screen_text(app)
        await say(pilot, "/undo")
        await say(pilot, "/context")
        used = session.context_used
        assert app.dashboard.figures.context_used == used
        assert context_row().startswith(f"{used} of ")
        assert used < session.last_stats.context_used  # the undone exchange is no longer counted

    drive(app, scenario, size=(120, 40))


def test_the_speed_panel_speaks_of_the_first_reply_while_it_streams() -> None:
    from lcchat.engine.events import Stats
    from lcchat.tui.panels import Figures

    f = Figures()
    f.generating = True
    f.take_stats(Stats(prompt_tokens=10, prompt_eval_tokens=10, completion_tokens=3, tokens_per_s=12.5))
    app = app_for(session_with(["x"]))

    async def scenario(pilot):
        await ready(pilot)
        app.dashboard.figures = f
        app.dashboard.redraw()
        await pilot.pause()
        label = str(app.dashboard.query_one("#speed-history-label").render())
        assert label == "this reply 12.5 t/s"

    drive(app, scenario, size=(120, 40))


def test_continuing_shows_the_history_being_read_and_esc_stops_it() -> None:
    from lcchat.engine.events import Progress
    from tests.tui.helpers import FixedMonitor, make_app, wait_until

    session = session_with(["hi"])
    seen: dict[str, object] = {}

    def factory(on_progress=None, cancel=None):
        app.report_load_event(Progress("history", 640, 1729))
        seen["stopped"] = cancel.wait(10)  # the store's prefill stops when this is set
        return session

    app = make_app(factory, monitor=FixedMonitor(), cursor_blink=False)

    async def scenario(pilot):
        await wait_until(pilot, lambda: app._loading is not None and "1,729 tokens of history… 37%" in str(
            app._loading.label.render()), what="the history's progress")
        assert round(app._loading.bar.progress) == 37
        await pilot.press("escape")
        await ready(pilot)
        assert seen["stopped"] is True and app.session is session

    drive(app, scenario)
