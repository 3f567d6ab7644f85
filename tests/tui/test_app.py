"""The TUI driven with Pilot over a fake backend (a real ChatSession on a scripted model):
replies, streaming, interrupting, notices, loading, leaving."""

from __future__ import annotations

import threading

from textual.widgets import Markdown
from textual.widgets.markdown import MarkdownFence

from lcchat.engine.events import Notice
from lcchat.errors import ModelFileError
from lcchat.tui.transcript import SEGMENT_BLOCKS, AssistantTurn, LoadingLine, UserTurn, _segment_cut
from tests.tui.helpers import (
    FixedMonitor, app_for, drive, idle, make_app, notices, ready, say, session_with, type_line, wait_until,
)

LONG = [f"word{i} " for i in range(400)]


def test_loads_the_model_and_says_so() -> None:
    app = app_for(session_with(["hi"]))

    async def scenario(pilot):
        await ready(pilot)
        assert any("fake.gguf is loaded" in n for n in notices(app))
        f = app.dashboard.figures
        assert (f.model_file, f.quant, f.profile, f.load_s) == ("fake.gguf", "F32", "fake", 0.01)
        assert not app.query(LoadingLine)

    drive(app, scenario)


def test_a_reply_is_rendered_as_markdown_with_highlighted_code() -> None:
    reply = ["Here ", "is **bold**", " text.\n\n", "```python\n", "def f(x):\n", "    return x\n", "```\n"]
    app = app_for(session_with(reply))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "show me")
        user = app.transcript.query_one(UserTurn)
        assert user.text == "show me"
        turn = app.transcript.query_one(AssistantTurn)
        assert turn.source == "".join(reply)
        fence = turn.query_one(MarkdownFence)
        assert fence.code.rstrip() == "def f(x):\n    return x" and fence.lexer == "python"
        highlighted = fence._highlighted_code
        assert len({str(span.style) for span in highlighted.spans}) > 1  # keywords, names ... coloured apart
        assert "t/s" in str(turn.note.render())  # the reply's figures under it

    drive(app, scenario)


def test_streaming_appends_and_never_renders_the_whole_reply_again(monkeypatch) -> None:
    calls = {"update": 0, "append": 0}
    real_update, real_append = Markdown.update, Markdown.append

    def update(self, markdown):
        if isinstance(self.parent, AssistantTurn) and self.app.busy and markdown:
            calls["update"] += 1  # (a new, empty Markdown sets itself to "" when mounted)
        return real_update(self, markdown)

    def append(self, markdown):
        calls["append"] += 1
        return real_append(self, markdown)

    monkeypatch.setattr(Markdown, "update", update)
    monkeypatch.setattr(Markdown, "append", append)
    paragraphs = [f"Paragraph {i} has some words.\n\n" for i in range(60)]
    app = app_for(session_with(paragraphs, delay=0.002))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "go")
        turn = app.transcript.query_one(AssistantTurn)
        assert turn.source == "".join(paragraphs)
        assert calls["update"] == 0
        assert 1 <= calls["append"] <= len(paragraphs)  # fragments are batched, never re-sent
        assert sum(len(m.children) for m in turn.segments) == len(paragraphs)
        # a long reply is spread over several Markdown widgets, none of them large
        assert len(turn.segments) >= 2
        assert max(len(m.children) for m in turn.segments) <= SEGMENT_BLOCKS + 2

    drive(app, scenario)


def test_with_streaming_off_the_reply_appears_whole() -> None:
    from lcchat.engine.events import Done

    session = session_with(["one ", "two ", "three"])
    send, gate = session.send, threading.Event()

    def held_at_the_end(text):  # the whole reply is generated; it has not ended yet
        for event in send(text):
            if isinstance(event, Done):
                gate.wait(10)
            yield event

    session.send = held_at_the_end
    app = app_for(session)

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "/stream off")
        assert app.front.stream is False
        await type_line(pilot, "count")
        turn = app.transcript.query_one(AssistantTurn)
        await wait_until(pilot, lambda: turn.text == "one two three")
        assert app.busy and turn.source == ""  # held back while generating
        gate.set()
        await idle(pilot)
        assert turn.source == "one two three"

    drive(app, scenario)


def _interrupt(key: str) -> None:
    session = session_with(LONG, ["second reply"], delay=0.01)
    app = app_for(session)

    async def scenario(pilot):
        await ready(pilot)
        await type_line(pilot, "talk for a long time")
        turn = app.transcript.query_one(AssistantTurn)
        await wait_until(pilot, lambda: len(turn.text) > 20, what="some of the reply")
        await pilot.press(key)
        await idle(pilot)
        assert turn.finish_reason == "interrupted"
        assert turn.has_class("-interrupted")
        assert "interrupted" in str(turn.note.render())
        kept = session.conversation.messages[-1]
        assert kept.role == "assistant" and kept.interrupted and kept.content == turn.text
        assert 0 < len(turn.text) < len("".join(LONG))
        assert turn.source == turn.text
        # still usable
        await say(pilot, "and now?")
        last = app.transcript.query(AssistantTurn).last()
        assert last.text == "second reply" and last.finish_reason == "stop"
        assert app.prompt.has_focus

    drive(app, scenario)


def test_ctrl_c_stops_a_reply_and_keeps_the_partial_text() -> None:
    _interrupt("ctrl+c")


def test_escape_stops_a_reply_too() -> None:
    _interrupt("escape")


def test_ctrl_c_with_nothing_to_stop_tells_how_to_quit() -> None:
    app = app_for(session_with())

    async def scenario(pilot):
        await ready(pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert any("Ctrl+Q" in n.message for n in app._notifications)
        assert app.is_running

    drive(app, scenario)


def test_ctrl_c_copies_a_selection_in_the_input_box() -> None:
    app = app_for(session_with())

    async def scenario(pilot):
        await ready(pilot)
        app.prompt.insert("copy me")
        app.prompt.select_all()
        await pilot.press("ctrl+c")
        assert app.clipboard == "copy me"

    drive(app, scenario)


def test_notices_from_the_engine_are_shown_in_place() -> None:
    session = session_with(list("abcdefghij"))
    session.sampling.max_tokens = 3
    session.notices.append(Notice("rope: beyond the training context", "warning"))
    app = app_for(session)

    async def scenario(pilot):
        await ready(pilot)
        assert "rope: beyond the training context" in notices(app)
        await say(pilot, "hi")
        children = list(app.transcript.children)
        turn = app.transcript.query_one(AssistantTurn)
        said = [n for n in notices(app) if "max_tokens (3)" in n]
        assert said, notices(app)
        assert said[0] == "the reply reached max_tokens (3); /set max_tokens N allows longer ones"
        note = next(w for w in children if getattr(w, "text", None) == said[0])
        assert children.index(note) > children.index(turn)  # said after the reply, shown after it

    drive(app, scenario)


def test_dropped_turns_are_announced_before_the_reply_and_dimmed() -> None:
    replies = [["x" * 30] for _ in range(6)]
    session = session_with(*replies, n_ctx=160, reserve=40)
    app = app_for(session)

    async def scenario(pilot):
        await ready(pilot)
        for i in range(6):
            await say(pilot, f"message number {i} " + "y" * 20)
        assert any("dropped" in n for n in notices(app))
        start = session.conversation.window_start
        assert start > 0
        turns = app.transcript.turns
        assert all(t.has_class("-forgotten") for t in turns[:start])
        assert not any(t.has_class("-forgotten") for t in turns[start:])

    drive(app, scenario)


def test_a_message_sent_while_a_reply_runs_stays_in_the_box() -> None:
    app = app_for(session_with(LONG, delay=0.01))

    async def scenario(pilot):
        await ready(pilot)
        await type_line(pilot, "first")
        assert app.busy
        await type_line(pilot, "second")
        assert app.prompt.text == "second"
        assert any("being generated" in n for n in notices(app))
        await pilot.press("escape")
        await idle(pilot)

    drive(app, scenario)


def test_the_ui_works_while_the_model_loads_and_shows_progress() -> None:
    release = threading.Event()
    session = session_with(["loaded reply"])

    def factory(on_progress=None, cancel=None):
        on_progress(0.25)
        on_progress(0.5)
        release.wait(10)
        return session

    app = make_app(factory, monitor=FixedMonitor(), cursor_blink=False)

    async def scenario(pilot):
        await wait_until(pilot, lambda: app._loading is not None and app._loading.bar.progress == 50)
        await say(pilot, "/help")  # commands that need no model work
        await type_line(pilot, "early")
        assert app.prompt.text == "early"  # kept until the model is there
        assert any("still loading" in n for n in notices(app))
        release.set()
        await ready(pilot)  # the waiting message goes as soon as the model is ready, no Enter needed
        await wait_until(pilot, lambda: app.transcript.last_reply() is not None, what="the waiting message's reply")
        await idle(pilot)
        assert [t.text for t in app.transcript.turns] == ["early", "loaded reply"]
        assert app.prompt.text == ""

    drive(app, scenario)


def test_a_load_failure_ends_the_app_with_the_errors_exit_code() -> None:
    def factory(on_progress=None, cancel=None):
        raise ModelFileError("/nowhere.gguf: no such file")

    app = make_app(factory, monitor=FixedMonitor())

    async def scenario(pilot):
        await wait_until(pilot, lambda: app.load_error is not None)

    drive(app, scenario)
    assert app.load_error == "/nowhere.gguf: no such file"
    assert app.return_value == 2 and app.exit_code == 2


def test_an_unexpected_load_error_is_one_line_with_exit_code_1() -> None:
    def factory(on_progress=None, cancel=None):
        raise RuntimeError("boom")

    app = make_app(factory, monitor=FixedMonitor())

    async def scenario(pilot):
        await wait_until(pilot, lambda: app.load_error is not None)

    drive(app, scenario)
    assert app.load_error.startswith("internal error: RuntimeError: boom")
    assert app.return_value == 1


def test_ctrl_q_quits_even_mid_reply() -> None:
    session = session_with(LONG, delay=0.01)
    app = app_for(session)

    async def scenario(pilot):
        await ready(pilot)
        await type_line(pilot, "long")
        await wait_until(pilot, lambda: app._turn is not None and app._turn.text)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)

    drive(app, scenario)
    assert app.return_value == 0
    assert app._reply_idle.is_set()  # the reply thread had stopped before the app left
    assert session.conversation.messages[-1].interrupted


def test_quitting_while_loading_cancels_the_load() -> None:
    seen = {}

    def factory(on_progress=None, cancel=None):
        seen["cancel"] = cancel
        cancel.wait(10)
        raise ModelFileError("cancelled")

    app = make_app(factory, monitor=FixedMonitor())

    async def scenario(pilot):
        await wait_until(pilot, lambda: "cancel" in seen)
        await pilot.press("ctrl+q")
        await wait_until(pilot, lambda: not app.is_running)

    drive(app, scenario)
    assert seen["cancel"].is_set()
    assert app.return_value == 0 and app.load_error is None


def test_a_failing_reply_is_reported_and_the_chat_goes_on() -> None:
    session = session_with(["fine"])
    app = app_for(session)

    def broken(text):
        raise RuntimeError("the model fell over")
        yield  # pragma: no cover

    async def scenario(pilot):
        await ready(pilot)
        real_send = session.send
        session.send = broken
        await say(pilot, "hello")
        assert any("the model fell over" in n for n in notices(app))
        user = app.transcript.query(UserTurn).last()
        assert user.has_class("-unsent")  # the session never took it
        session.send = real_send
        await say(pilot, "again")
        assert app.transcript.query(AssistantTurn).last().text == "fine"

    drive(app, scenario)


def test_page_keys_scroll_the_transcript() -> None:
    app = app_for(session_with(["line\n\n" * 60]))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "long one")
        transcript = app.transcript
        assert transcript.max_scroll_y > 0
        await pilot.press("pageup")
        await pilot.pause()
        assert transcript.scroll_y < transcript.max_scroll_y
        await pilot.press("ctrl+end")
        await pilot.pause()
        assert transcript.scroll_y == transcript.max_scroll_y

    drive(app, scenario)


def test_segments_start_after_a_blank_line_outside_code_fences() -> None:
    full = "para\n\n" * SEGMENT_BLOCKS
    assert _segment_cut("para\n\n" * 3, "more\n\nx") is None  # not enough blocks yet
    assert _segment_cut(full, "more text") is None  # no blank line in the fragment
    assert _segment_cut(full, "end.\n\nnext") == len("end.\n\n")
    assert _segment_cut(full + "tail\n", "\nnext") == 1  # a blank line across the join
    in_code = full + "```python\nx = 1\n"
    assert _segment_cut(in_code, "\n\ny = 2\n") is None
    assert _segment_cut(in_code + "```\n", "\nafter") == 1


def test_a_long_code_block_is_never_split() -> None:
    code = ["```python\n"] + [f"x{i} = {i}\n\n" for i in range(SEGMENT_BLOCKS * 3)] + ["```\n", "Done.\n"]
    app = app_for(session_with(code, delay=0.001))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "code please")
        turn = app.transcript.query_one(AssistantTurn)
        fences = list(turn.query(MarkdownFence))
        assert len(fences) == 1 and fences[0].code.count("\n\n") >= SEGMENT_BLOCKS * 3 - 1
        assert turn.source == "".join(code)

    drive(app, scenario)


def test_a_session_that_is_not_recorded_says_so_while_it_runs() -> None:
    from lcchat.store.recording import NOT_RECORDED, ChatRecording
    from lcchat.tui.app import NOT_RECORDED as TUI_NOT_RECORDED

    session = session_with(["hi"])
    recorder = ChatRecording(session.profile, None, interactive=True, record=False).opened(session)
    app = app_for(session, recorder=recorder)

    async def scenario(pilot):
        await ready(pilot)
        assert app.prompt.border_title == TUI_NOT_RECORDED
        assert NOT_RECORDED in notices(app)
        await say(pilot, "secret")
        assert app.prompt.border_title == TUI_NOT_RECORDED

    drive(app, scenario)
