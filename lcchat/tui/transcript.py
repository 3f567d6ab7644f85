"""The transcript: user and assistant turns, notices and command output.

An assistant turn shows its reply in Markdown widgets fed through Textual's MarkdownStream:
each fragment is appended (Markdown.append re-parses only the last block), and fragments
that arrive while the widget is busy are joined into one append; the whole reply is never
rendered again. A long reply is split into segments of about SEGMENT_BLOCKS blocks, each
its own Markdown widget, at a blank line outside a code fence: mounting a block costs
time in proportion to its siblings, so without segments a token would cost more the
longer the reply grew.

Everything shown goes through textsafe.clean first: a reply, a notice or a command's
output may quote a model or a model file, and no control character from there may reach
the terminal. The text kept (turn.text, for /copy and the store) is the model's own.
"""

from __future__ import annotations

import logging

from markdown_it import MarkdownIt
from rich.table import Table
from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Label, Markdown, ProgressBar, Static
from textual.widgets.markdown import MarkdownStream

from lcchat.engine.events import LEVEL_PREFIX, Stats
from lcchat.textsafe import clean
from lcchat.tui.panels import rate
from lcchat.tui.thinking import ThinkingBlock

log = logging.getLogger("lcchat.tui")

FINISH_NOTES = {
    "interrupted": "interrupted: the partial reply is kept",
    "error": "the reply failed",
}


def markdown_parser() -> MarkdownIt:
    """Textual's own "gfm-like" parser with raw HTML off. With it on, HTML a reply writes
    as prose is dropped from the screen: "use the <div> element" showed as "use the
    element", and a `<script>` block, or `<think>` from a model lcchat doesn't know as a
    reasoning model, vanished. A chat client shows what the model wrote."""
    return MarkdownIt("gfm-like", {"html": False})


class UserTurn(Static):
    DEFAULT_CSS = """
    UserTurn {
        margin: 1 0 0 0;
        padding: 0 1;
        border-left: thick $lc-user;
        text-style: bold;
    }
    UserTurn.-unsent { color: $lc-muted; text-style: strike; }
    UserTurn.-forgotten, AssistantTurn.-forgotten { opacity: 60%; }
    """

    def __init__(self, text: str) -> None:
        super().__init__(Text(clean(text)), markup=False)
        self.text = text


class AssistantTurn(Vertical):
    DEFAULT_CSS = """
    AssistantTurn {
        height: auto;
        margin: 1 0 0 0;
        padding: 0 0 0 1;
        border-left: wide $lc-assistant;
    }
    AssistantTurn > Markdown { margin: 0; padding: 0; background: transparent; }
    /* Blocks are spaced by a top margin, so the last one (still growing while a reply
       streams) leaves no blank line under it; the Markdown's own -1 hides the first
       block's. No :first-child/:last-child here: Textual restyles every sibling that
       has an order rule each time a block is mounted, which grows with the reply. */
    AssistantTurn > Markdown > MarkdownBlock, AssistantTurn > Markdown > MarkdownFence:ansi { margin: 1 0 0 0; }
    AssistantTurn.-has-text > Markdown.-lead { margin-top: -1; }
    /* A code line wider than the transcript is not cut: the block scrolls sideways
       (mouse wheel with Shift, or drag), with a scrollbar that shows there is more. */
    AssistantTurn MarkdownFence { background: $lc-code-bg; overflow-x: auto; scrollbar-size-horizontal: 1; }
    AssistantTurn MarkdownFence > Label, AssistantTurn MarkdownFence:ansi > Label { padding: 0 1; }
    AssistantTurn > .turn-note { color: $lc-muted; height: auto; width: 1fr; }
    AssistantTurn > .plain-reply { height: auto; }
    AssistantTurn.-interrupted { border-left: wide $lc-notice; }
    AssistantTurn.-interrupted > .turn-note { color: $lc-notice; text-style: bold; }
    AssistantTurn.-error > .turn-note { color: $lc-error; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.segments: list[Markdown] = [Markdown("", open_links=False, classes="-lead", parser_factory=markdown_parser)]
        self.note = Label("...", classes="turn-note")
        self._stream: MarkdownStream | None = None
        self._segment_text = ""  # what the last segment holds
        self.plain: Static | None = None  # the reply as plain text, once its Markdown failed
        self.notices: list[Widget] = []  # what was said about this reply: it goes with the reply
        self.text = ""
        self.finish_reason: str | None = None
        self.thinking: ThinkingBlock | None = None  # a reasoning model's thinking, above the answer

    @property
    def markdown(self) -> Markdown:
        """The segment being written."""
        return self.segments[-1]

    @property
    def source(self) -> str:
        """The Markdown shown, all segments together."""
        return "".join(m.source for m in self.segments)

    def compose(self):
        yield from self.segments
        yield self.note

    async def think(self, fragment: str, *, collapsed: bool = False) -> None:
        """Append a fragment of the thinking (its block is made on the first one)."""
        if self.thinking is None:
            self.thinking = ThinkingBlock(collapsed=collapsed)
            await self.mount(self.thinking, before=self.children[0] if self.children else None)
        self.thinking.add(fragment)

    def thinking_stats(self, stats: Stats) -> None:
        if self.thinking is not None:
            self.thinking.count(stats.reasoning_tokens)

    def end_thinking(self) -> None:
        if self.thinking is not None:
            self.thinking.end()

    async def write(self, fragment: str) -> None:
        """Append a fragment of the reply (streaming)."""
        self.end_thinking()
        self.text += fragment
        if self.plain is not None:
            self.plain.update(Text(clean(self.text)))
            return
        try:
            await self._write_markdown(clean(fragment))
        except Exception as exc:  # noqa: BLE001 - whatever breaks the Markdown, the reply is still shown
            await self.show_plain(exc)

    async def _write_markdown(self, fragment: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.markdown)
            self.add_class("-has-text")
        while (cut := _segment_cut(self._segment_text, fragment)) is not None:
            head, fragment = fragment[:cut], fragment[cut:]
            if head:
                await self._stream.write(head)
            await self._stream.stop()
            segment = Markdown("", open_links=False, parser_factory=markdown_parser)
            self.segments.append(segment)
            await self.mount(segment, before=self.note)
            self._stream = Markdown.get_stream(segment)
            self._segment_text = ""
        self._segment_text += fragment
        await self._stream.write(fragment)
        task = getattr(self._stream, "_task", None)  # the stream appends in a task of its own
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def show_plain(self, error: BaseException) -> None:
        """Show the reply as plain text from now on: its Markdown could not be drawn
        (`error` says why). One notice under the reply says so; the chat goes on."""
        if self.plain is not None:
            return
        log.warning("a reply could not be shown as Markdown", exc_info=error)
        self.plain = Static(Text(clean(self.text)), markup=False, classes="plain-reply")
        self.add_class("-has-text")
        stream, self._stream = self._stream, None
        task = getattr(stream, "_task", None)
        if task is not None:
            task.cancel()
        for segment in self.segments:
            try:
                await segment.remove()
            except Exception:  # noqa: BLE001 - a broken widget may fail to go; it is hidden instead
                segment.display = False
        await self.mount(self.plain, before=self.note)
        why = f"{type(error).__name__}: {error}".strip().splitlines()[0][:200]
        notice = Notice(f"This reply could not be shown as Markdown ({why}); it is shown as plain text.", "warning")
        if isinstance(self.parent, Widget):
            await self.parent.mount(notice, after=self)
            self.notices.append(notice)

    async def remove_with_notices(self) -> None:
        for notice in self.notices:
            if notice.is_attached:
                await notice.remove()
        self.notices.clear()
        await self.remove()

    def hold(self, fragment: str) -> None:
        """Keep a fragment without showing it (streaming is off)."""
        self.text += fragment
        self.note.update("generating...")

    async def finish(self, reason: str, text: str | None = None, stats: Stats | None = None) -> None:
        """Show the whole reply (if it was not streamed) and what happened."""
        if stats is not None:
            self.thinking_stats(stats)
        self.end_thinking()
        if self.plain is not None:
            self.plain.update(Text(clean(text if text is not None else self.text)))
        else:
            try:
                await self._finish_markdown(text)
            except Exception as exc:  # noqa: BLE001 - shown as plain text instead
                if text is not None:
                    self.text = text
                await self.show_plain(exc)
        if text is not None:
            self.text = text
        self._set_note(reason, stats)

    async def _finish_markdown(self, text: str | None) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()
            if text is not None and text != self.text:
                # The engine kept something other than what streamed (rare): show what is kept.
                for extra in self.segments[1:]:
                    await extra.remove()
                del self.segments[1:]
                await self.markdown.update(clean(text))
        elif text or self.text:
            self.add_class("-has-text")
            await self.markdown.update(clean(text if text is not None else self.text))

    def _set_note(self, reason: str, stats: Stats | None) -> None:
        self.finish_reason = reason
        self.set_class(reason == "interrupted", "-interrupted")
        self.set_class(reason == "error", "-error")
        parts = []
        if reason in FINISH_NOTES:
            parts.append(FINISH_NOTES[reason])
        if stats is not None and reason != "error":
            thinking = (f" ({stats.reasoning_tokens} thinking, {stats.completion_tokens - stats.reasoning_tokens} "
                        "answer)") if stats.reasoning_tokens else ""
            parts.append(f"gen {rate(stats.tokens_per_s)} t/s · {stats.completion_tokens} "
                         f"token{'s' if stats.completion_tokens != 1 else ''}{thinking} · "
                         f"prompt {'cached' if stats.prompt_cached else rate(stats.prompt_tokens_per_s) + ' t/s'}")
            if stats.spec_text:  # here too, as the compact status line leaves it out first
                parts.append(stats.spec_text)
        self.note.update(" · ".join(parts))
        self.note.display = bool(parts)


SEGMENT_BLOCKS = 24  # blank-line separated blocks per Markdown widget, about


def _segment_cut(segment: str, fragment: str) -> int | None:
    """Where in `fragment` a new segment may start: after the first blank line outside a
    code fence at which the segment holds SEGMENT_BLOCKS blocks. None: not in this fragment."""
    if "\n\n" not in segment[-1:] + fragment:
        return None
    text = segment + fragment
    pos = max(0, len(segment) - 1)
    while (pos := text.find("\n\n", pos)) >= 0:
        cut = pos + 2
        if text.count("\n\n", 0, cut) >= SEGMENT_BLOCKS and not _inside_fence(text[:cut]):
            return cut - len(segment)
        pos += 1
    return None


def _inside_fence(text: str) -> bool:
    fence = ""
    for line in text.split("\n"):
        stripped = line.lstrip(" ")
        if len(line) - len(stripped) > 3:
            continue
        mark = stripped[:3]
        if mark in ("```", "~~~"):
            if not fence:
                fence = mark
            elif mark == fence:
                fence = ""
    return bool(fence)


class Notice(Static):
    DEFAULT_CSS = """
    Notice { margin: 1 0 0 0; color: $lc-notice; padding: 0 1; }
    Notice.-info { color: $lc-muted; }
    Notice.-error { color: $lc-error; text-style: bold; }
    """

    def __init__(self, text: str, level: str = "info") -> None:
        prefix = LEVEL_PREFIX.get(level, "")
        super().__init__(Text(prefix + clean(text)), markup=False, classes=f"-{level}")
        self.text = text


class CommandOutput(Vertical):
    """What a slash command said: the command, its text, then a two-column table."""

    DEFAULT_CSS = """
    CommandOutput { height: auto; margin: 1 0 0 0; padding: 0 1; border-left: solid $lc-border; }
    CommandOutput > .command-line { color: $lc-muted; }
    CommandOutput.-error { border-left: solid $lc-error; }
    CommandOutput.-error > .command-body { color: $lc-error; }
    """

    def __init__(self, text: str, rows: list[tuple[str, str]] | None = None, *, error: bool = False,
                 line: str = "") -> None:
        super().__init__(classes="-error" if error else "")
        self.text = text
        self.rows = rows or []
        self.line = line

    def compose(self):
        if self.line:
            yield Label(Text(clean(self.line)), classes="command-line")
        yield Static(self._render_result(self.text, self.rows), markup=False, classes="command-body")

    @staticmethod
    def _render_result(text: str, rows: list[tuple[str, str]] | None):
        text = clean(text)
        if not rows:
            return Text(text)
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for left, right in rows:
            table.add_row(Text(clean(str(left))), Text(clean(str(right))))
        if not text:
            return table
        from rich.console import Group

        return Group(Text(text), Text(""), table)


class LoadingLine(Vertical):
    DEFAULT_CSS = """
    LoadingLine { height: auto; margin: 1 0 0 0; padding: 0 1; }
    LoadingLine ProgressBar { width: 1fr; }
    """

    def __init__(self, what: str) -> None:
        super().__init__()
        self.label = Label(Text(clean(what)))
        self.bar = ProgressBar(total=100, show_eta=False)

    def compose(self):
        yield self.label
        yield self.bar

    def progress(self, fraction: float) -> None:
        self.bar.update(progress=max(0.0, min(1.0, fraction)) * 100)


class Transcript(VerticalScroll):
    """The conversation as widgets. `turns` lists the user and assistant turns in the order
    of session.conversation.messages, so the view can follow /undo, /retry and errors."""

    DEFAULT_CSS = """
    Transcript {
        height: 1fr;
        padding: 0 1 1 1;
        scrollbar-size-vertical: 1;
    }
    """

    BINDINGS = [("end", "scroll_to_end", "Bottom")]

    def __init__(self, *, id: str | None = "transcript") -> None:
        super().__init__(id=id, can_focus=True)
        self.turns: list[Widget] = []

    def action_scroll_to_end(self) -> None:
        self.scroll_end(animate=False)

    def on_mount(self) -> None:
        self.anchor()

    def on_key(self, event) -> None:
        # Typing while the transcript has the focus (after Tab) goes to the input box.
        if event.is_printable and event.character:
            prompt = self.app.query_one("PromptInput")
            prompt.focus()
            prompt.insert(event.character)
            event.stop()

    async def _add(self, widget: Widget, before: Widget | None = None) -> Widget:
        if before is not None and before.parent is self:
            await self.mount(widget, before=before)
        else:
            await self.mount(widget)
        return widget

    @property
    def is_anchored(self) -> bool:
        return bool(getattr(self, "_anchored", False)) and not getattr(self, "_anchor_released", False)

    async def add_user(self, text: str) -> UserTurn:
        turn = UserTurn(text)
        self.turns.append(turn)
        await self._add(turn)
        return turn

    async def start_reply(self) -> AssistantTurn:
        turn = AssistantTurn()
        self.turns.append(turn)
        await self._add(turn)
        return turn

    async def add_notice(self, text: str, level: str = "info", before: Widget | None = None) -> Notice:
        return await self._add(Notice(text, level), before=before)  # type: ignore[return-value]

    async def add_output(self, text: str, rows=None, *, error: bool = False, line: str = "") -> CommandOutput:
        return await self._add(CommandOutput(text, rows, error=error, line=line))  # type: ignore[return-value]

    async def add_loading(self, what: str) -> LoadingLine:
        return await self._add(LoadingLine(what))  # type: ignore[return-value]

    async def clear(self) -> None:
        self.turns.clear()
        await self.remove_children()
        self.anchor()

    async def trim_turns(self, keep: int, *, unsent: bool = False) -> None:
        """Drop turns beyond the first `keep` (the session forgot them), with their notices.
        With unsent=True (a turn that failed) a user turn stays on screen, struck through,
        and empty replies go but what was said about them (the error) stays."""
        while len(self.turns) > keep:
            turn = self.turns.pop()
            if unsent and isinstance(turn, UserTurn):
                turn.add_class("-unsent")
            elif unsent and isinstance(turn, AssistantTurn) and turn.text:
                turn.add_class("-forgotten")
            elif isinstance(turn, AssistantTurn) and not unsent:
                await turn.remove_with_notices()  # /retry, /undo: what was said about it goes too
            else:
                await turn.remove()

    def mark_forgotten(self, window_start: int) -> None:
        """Dim the turns the model no longer sees (dropped to fit the context)."""
        for i, turn in enumerate(self.turns):
            turn.set_class(i < window_start, "-forgotten")

    def last_reply(self) -> AssistantTurn | None:
        for turn in reversed(self.turns):
            if isinstance(turn, AssistantTurn):
                return turn
        return None

    def follow(self) -> None:
        if self.is_anchored:
            self.scroll_end(animate=False, immediate=False)
