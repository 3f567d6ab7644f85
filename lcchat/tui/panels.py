"""The live figures: speed, memory, VRAM, context fill and the model, as panels on a wide
terminal or as one status line on a small one (80x24).

One Dashboard widget holds both views and switches between them with a CSS class, so the
figures are kept (and updated) in one place. Live stats reach it as LiveStats messages
posted from the reply thread; a LiveStats still waiting in the queue is replaced by a
newer one (Message.can_replace), so a fast model never makes the panels fall behind.
The system monitor is sampled on a timer, about once a second, never per token.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Label, Sparkline, Static

from lcchat.engine.events import Stats
from lcchat.engine.monitor import Snapshot, human_bytes
from lcchat.textsafe import clean

WARN_AT = 0.80  # context fill from which the bar takes the warning colour
FULL_AT = 0.95  # ... and the error colour
HISTORY = 24  # replies kept for the sparkline
SAMPLE_EVERY = 1.0  # seconds between monitor samples


class MonitorLike(Protocol):
    def sample(self) -> Snapshot: ...


# ---------------------------------------------------------------- figures (plain data)


@dataclass
class Figures:
    """Everything the panels show; the widgets only format it."""

    gen_rate: float | None = None  # tokens/s of the current (or last) reply
    prompt_rate: float | None = None  # prompt-evaluation tokens/s of the current (or last) reply
    prompt_cached: bool = False  # that prompt came whole from the KV cache: no rate to show
    completion_tokens: int = 0
    spec: str = ""  # speculative decoding's accepted/drafted and tokens per decode; "" when off
    reasoning_tokens: int = 0  # of completion_tokens, those a reasoning model spent thinking
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))  # gen t/s of finished replies
    prompt_history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))
    context_used: int = 0
    context_size: int = 0
    snapshot: Snapshot | None = None
    model_file: str = ""
    quant: str = ""
    profile: str = ""
    load_s: float | None = None
    generating: bool = False
    remote: str = ""  # the server's URL when the model runs there (--remote): no local RAM/VRAM figures

    @property
    def fill(self) -> float:
        return self.context_used / self.context_size if self.context_size else 0.0

    @property
    def fill_level(self) -> str:
        """"ok", "warn" or "full": which colour the context bar takes."""
        if self.fill >= FULL_AT:
            return "full"
        if self.fill >= WARN_AT:
            return "warn"
        return "ok"

    def take_stats(self, stats: Stats) -> None:
        if stats.completion_tokens or stats.tokens_per_s:
            self.gen_rate = stats.tokens_per_s
        if stats.prompt_cached:
            self.prompt_cached, self.prompt_rate = True, None
        elif stats.prompt_tokens_per_s:
            self.prompt_cached, self.prompt_rate = False, stats.prompt_tokens_per_s
        self.completion_tokens = stats.completion_tokens
        self.spec = stats.spec_text
        self.reasoning_tokens = stats.reasoning_tokens
        if stats.context_size:
            self.context_used, self.context_size = stats.context_used, stats.context_size
        if stats.final:
            if stats.completion_tokens:
                self.history.append(stats.tokens_per_s)
            if stats.prompt_tokens_per_s and not stats.prompt_cached:
                self.prompt_history.append(stats.prompt_tokens_per_s)

    def take_model(self, describe: dict[str, Any], profile_name: str) -> None:
        self.model_file = clean(str(describe.get("file", "") or ""))
        self.quant = clean(str(describe.get("quant", "") or ""))
        load = describe.get("load_s")
        self.load_s = float(load) if isinstance(load, (int, float)) else None
        self.profile = profile_name
        self.remote = clean(str(describe.get("remote", "") or ""))


def short_bytes(n: int | None) -> str:
    """210M, 5.2G: the status line's compact sizes (binary units)."""
    if n is None:
        return "-"
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f}G"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f}M"
    return f"{n / 1024:.0f}K"


def rate(value: float | None) -> str:
    """42.1, 312, 45k: three or four significant figures at most."""
    if value is None:
        return "-"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def bar(fill: float, width: int) -> tuple[str, str]:
    """The filled and empty parts of a bar `width` cells wide."""
    filled = max(0, min(width, round(fill * width)))
    if fill > 0 and filled == 0:
        filled = 1  # a context that is in use never looks empty
    return "█" * filled, "░" * (width - filled)


def prompt_text(f: Figures) -> str:
    """The prompt's speed, or "cached" when the whole prompt came from the KV cache."""
    return "cached" if f.prompt_cached else f"{rate(f.prompt_rate)} t/s"


def speed_text(f: Figures) -> str:
    text = f"gen {rate(f.gen_rate)} t/s"
    if f.prompt_rate is not None or f.prompt_cached:
        text += f" · pp {prompt_text(f).removesuffix(' t/s')}"
    return text


def memory_short(f: Figures) -> str:
    s = f.snapshot
    if s is None:
        return "RAM -"
    return f"RSS {short_bytes(s.rss)} · RAM {short_bytes(s.ram_used)}/{short_bytes(s.ram_total)}"


def vram_short(f: Figures) -> str:
    s = f.snapshot
    if s is None:
        return ""
    if not s.has_gpu:
        return "CPU only"
    return f"VRAM {short_bytes(s.vram_used)}/{short_bytes(s.vram_total)}"


# ---------------------------------------------------------------- messages


class LiveStats(Message, bubble=False):
    """Stats from the reply thread. A live one still queued is replaced by a newer one;
    a final one is never dropped (it feeds the sparkline)."""

    def __init__(self, stats: Stats) -> None:
        super().__init__()
        self.stats = stats

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LiveStats) and not self.stats.final


# ---------------------------------------------------------------- widgets


class ContextBar(Static):
    """A bar that takes the warning colour near the limit (classes -warn, -full)."""

    DEFAULT_CSS = """
    ContextBar { width: 1fr; height: 1; color: $lc-ctx-ok; }
    ContextBar.-warn { color: $lc-ctx-warn; }
    ContextBar.-full { color: $lc-ctx-full; text-style: bold; }
    """

    def show(self, fill: float, level: str, width: int) -> None:
        from rich.text import Text

        full, empty = bar(fill, width)
        text = Text(full)
        text.append(empty, style="dim")
        self.update(text, layout=False)  # always one line
        self.set_class(level == "warn", "-warn")
        self.set_class(level == "full", "-full")


class Panel(Vertical):
    DEFAULT_CSS = """
    Panel {
        height: auto;
        border: round $lc-border;
        border-title-color: $lc-title;
        padding: 0 1;
    }
    Panel Label { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    /* The model's file name is what tells models apart: shown whole, on two lines if need be. */
    Panel #model-file { height: auto; text-wrap: wrap; text-overflow: fold; }
    Panel .muted { color: $lc-muted; }
    """

    def __init__(self, title: str, *children: Widget, id: str | None = None) -> None:
        super().__init__(*children, id=id)
        self.border_title = title


class StatusLine(Static):
    """The one-line view for small terminals: speed, context, memory, VRAM, model. What
    does not fit is left out, least useful first (model, prompt rate, system RAM, VRAM)."""

    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        width: 1fr;
        background: $lc-status-bg;
        color: $lc-status-fg;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    """

    figures: Figures | None = None

    def show(self, f: Figures) -> None:
        self.figures = f
        self.update(self.line(f, max(20, self.size.width or 78)), layout=False)  # always one line

    def on_resize(self) -> None:
        if self.figures is not None:
            self.show(self.figures)

    @staticmethod
    def line(f: Figures, width: int) -> Content:
        """The richest line that fits in `width` cells."""
        colour = {"ok": "$lc-ctx-ok", "warn": "$lc-ctx-warn", "full": "bold $lc-ctx-full"}[f.fill_level]
        full, empty = bar(f.fill, 6)
        ctx = Content.from_markup(f"ctx [{colour}]{full}[/][dim]{empty}[/] {f.context_used}/{f.context_size}")
        speed = f"gen {rate(f.gen_rate)} t/s"
        pp = f" · pp {prompt_text(f).removesuffix(' t/s')}" if f.prompt_rate is not None or f.prompt_cached else ""
        s = f.snapshot
        ram = "RAM -" if s is None else f"RAM {short_bytes(s.rss)}"
        ram_sys = "" if s is None else f" · {short_bytes(s.ram_used).rstrip('G')}/{short_bytes(s.ram_total)}"
        vram = vram_short(f)
        if f.remote:
            ram, ram_sys, vram = "RAM remote", "", "VRAM remote"
        model = " ".join(x for x in (f.model_file, f.quant) if x)
        spec = f" · {f.spec}" if f.spec else ""
        sep = Content.from_markup("[$lc-muted] │ [/]")
        # (drop order) speculation, model, prompt rate, system RAM, VRAM
        variants = [(True, True, True, True, True), (False, True, True, True, True),
                    (False, False, True, True, True), (False, False, False, True, True),
                    (False, False, False, False, True), (False, False, False, False, False)]
        line = Content("")
        for with_spec, with_model, with_pp, with_sys, with_vram in variants:
            head = speed + (pp if with_pp else "") + (spec if with_spec else "")
            parts = [Content(head), ctx, Content(ram + (ram_sys if with_sys else ""))]
            if with_vram and vram:
                parts.append(Content(vram))
            if with_model and model:
                parts.append(Content(model))
            line = sep.join(parts)
            if line.cell_length <= width:
                return line
        return line


class Dashboard(Vertical):
    """Both views of the figures. `-wide` shows the panels, otherwise the status line."""

    DEFAULT_CSS = """
    Dashboard { height: 1; width: 1fr; }
    Dashboard > Panel { display: none; }
    Dashboard.-wide {
        dock: right;
        width: 34;
        height: 1fr;
        padding: 0 0 0 1;
        overflow-y: auto;
    }
    Dashboard.-wide > StatusLine { display: none; }
    Dashboard.-wide > Panel { display: block; }
    Dashboard #speed-history { width: 1fr; margin: 0 0; }
    Dashboard #speed-history > .sparkline--max-color { color: $lc-assistant; }
    Dashboard #speed-history > .sparkline--min-color { color: $lc-assistant 40%; }
    """

    def __init__(self, monitor: MonitorLike | None = None, *, id: str | None = "dashboard") -> None:
        super().__init__(id=id)
        self.monitor = monitor
        self.figures = Figures()
        self._shown: dict[str, str] = {}  # what each label shows

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield Panel("tokens/s",
                    Label("gen    -", id="speed-gen"),
                    Label("prompt -", id="speed-prompt"),
                    Label("", id="speed-spec"),
                    Sparkline([], id="speed-history"),
                    Label("no replies yet", id="speed-history-label", classes="muted"),
                    id="panel-speed")
        yield Panel("RAM",
                    Label("process -", id="ram-rss"),
                    Label("system  -", id="ram-system"),
                    id="panel-ram")
        yield Panel("VRAM", Label("-", id="vram-value"), id="panel-vram")
        yield Panel("context",
                    ContextBar("", id="ctx-bar"),
                    Label("0 / 0 tokens", id="ctx-text"),
                    id="panel-ctx")
        yield Panel("model",
                    Label("-", id="model-file"),
                    Label("", id="model-quant"),
                    Label("", id="model-profile"),
                    Label("", id="model-load", classes="muted"),
                    id="panel-model")

    def on_mount(self) -> None:
        self.sample()
        if self.monitor is not None:
            self.set_interval(SAMPLE_EVERY, self.sample, name="monitor")

    # --- inputs

    def sample(self) -> None:
        if self.monitor is None:
            return
        try:
            self.figures.snapshot = self.monitor.sample()
        except Exception:  # noqa: BLE001 - a failed read only leaves the old figures
            return
        self.redraw()

    def on_live_stats(self, message: LiveStats) -> None:
        self.figures.take_stats(message.stats)
        self.redraw()

    def set_context(self, used: int, size: int) -> None:
        self.figures.context_used, self.figures.context_size = used, size
        self.redraw()

    def set_model(self, describe: dict[str, Any], profile_name: str) -> None:
        self.figures.take_model(describe, profile_name)
        self.redraw()

    def set_loading(self, model_file: str, profile_name: str) -> None:
        self.figures.model_file, self.figures.profile = model_file, profile_name
        self.redraw()

    def set_generating(self, on: bool) -> None:
        self.figures.generating = on
        if on:
            self.figures.gen_rate = None
            self.figures.prompt_rate = None
            self.figures.prompt_cached = False
        self.redraw()

    # --- output

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        f = self.figures
        self.query_one(StatusLine).show(f)
        q, show = self.query_one, self._show_line
        thinking = f" · {f.reasoning_tokens} think" if f.reasoning_tokens else ""  # thinking and answer apart
        show("#speed-gen", f"gen    {rate(f.gen_rate)} t/s{thinking}")
        show("#speed-prompt", f"prompt {prompt_text(f)}")
        show("#speed-spec", f.spec)
        spec = q("#speed-spec", Label)
        if spec.display != bool(f.spec):  # shown or hidden: a layout, only then
            spec.display = bool(f.spec)
        spark = q("#speed-history", Sparkline)
        spark.data = list(f.history)
        if len(f.history) == 1:
            show("#speed-history-label", f"last reply {rate(f.history[0])} t/s")
        elif f.history:
            show("#speed-history-label", f"last {len(f.history)}: {rate(min(f.history))}-{rate(max(f.history))} t/s")
        elif f.generating:  # the first reply is on its way
            show("#speed-history-label", f"this reply {rate(f.gen_rate)} t/s")
        else:
            show("#speed-history-label", "no replies yet")
        s = f.snapshot
        if f.remote:  # the model's memory is the server's; this process holds only the chat
            show("#ram-rss", "model   remote")
            show("#ram-system", f"lcchat  {human_bytes(s.rss) if s else '-'}")
            show("#vram-value", "remote")
        elif s is None:
            show("#ram-rss", "process -")
            show("#ram-system", "system  -")
            show("#vram-value", "-")
        else:
            show("#ram-rss", f"process {human_bytes(s.rss)}")
            show("#ram-system", f"system  {human_bytes(s.ram_used)} / {human_bytes(s.ram_total)}")
            show("#vram-value", f"{human_bytes(s.vram_used)} / {human_bytes(s.vram_total)}" if s.has_gpu else "CPU only")
        ctx = q("#ctx-bar", ContextBar)
        ctx.show(f.fill, f.fill_level, max(8, (ctx.size.width or 28)))
        show("#ctx-text", f"{f.context_used} / {f.context_size} tokens ({100 * f.fill:.0f}%)")
        # These may wrap or be empty: laid out again, but only when they change.
        show("#model-file", f.model_file or "-", layout=True)
        show("#model-profile", f"profile {f.profile}" if f.profile else "", layout=True)
        if f.remote:
            show("#model-quant", f"server  {f.remote}", layout=True)
            show("#model-load", "remote", layout=True)
        else:
            show("#model-quant", f"quant   {f.quant}" if f.quant else "", layout=True)
            show("#model-load", f"loaded in {f.load_s:.2f} s" if f.load_s is not None else "loading...", layout=True)

    def _show_line(self, selector: str, text: str, *, layout: bool = False) -> None:
        """Update a label of the panels, only when its text changed: a layout re-measures
        the whole screen, the streaming reply included, which took milliseconds of the
        GIL at each redraw, four times a second (see tui/pacing.py). Most labels are one
        line of the panel's width whatever they say, so they need none."""
        if self._shown.get(selector) != text:
            self._shown[selector] = text
            self.query_one(selector, Label).update(Text(text), layout=layout)

    def on_resize(self) -> None:
        self.redraw()
