"""The live panels and the status line: what they show and when they change."""

from __future__ import annotations

import re

from lcchat.engine.events import Stats
from lcchat.engine.monitor import Snapshot
from lcchat.tui.panels import ContextBar, Figures, LiveStats, Panel, StatusLine, bar, rate, short_bytes
from tests.tui.helpers import GiB, MiB, FixedMonitor, app_for, drive, ready, say, session_with, type_line, wait_until


def label(app, selector: str) -> str:
    return str(app.dashboard.query_one(selector).render())


# ---------------------------------------------------------------- pure formatting


def test_figures_take_live_and_final_stats() -> None:
    f = Figures()
    f.take_stats(Stats(prompt_tokens_per_s=300, completion_tokens=5, tokens_per_s=40, context_used=50,
                       context_size=100))
    assert (f.gen_rate, f.prompt_rate, f.fill) == (40, 300, 0.5)
    assert not f.history
    f.take_stats(Stats(prompt_tokens_per_s=310, completion_tokens=9, tokens_per_s=41, context_used=60,
                       context_size=100, final=True))
    assert list(f.history) == [41] and list(f.prompt_history) == [310]


def test_fill_levels_and_bars() -> None:
    f = Figures(context_used=79, context_size=100)
    assert f.fill_level == "ok"
    f.context_used = 80
    assert f.fill_level == "warn"
    f.context_used = 96
    assert f.fill_level == "full"
    assert bar(0.5, 10) == ("█" * 5, "░" * 5)
    assert bar(0.001, 10)[0] == "█"  # in use never looks empty
    assert bar(0, 4) == ("", "░░░░")


def test_number_formats() -> None:
    assert [rate(None), rate(4.25), rate(312.4), rate(45678)] == ["-", "4.2", "312", "46k"]
    assert [short_bytes(512 * 1024), short_bytes(210 * MiB), short_bytes(int(5.25 * GiB))] == ["512K", "210M", "5.2G"]


def test_the_status_line_fits_80_columns_and_drops_the_least_useful_first() -> None:
    f = Figures(gen_rate=123.4, prompt_rate=4567.0, context_used=3000, context_size=32768,
                snapshot=Snapshot(rss=900 * MiB, ram_used=int(12.5 * GiB), ram_total=64 * GiB,
                                  vram_used=3 * GiB, vram_total=24 * GiB),
                model_file="a-rather-long-model-name.Q4_K_M.gguf", quant="Q4_K_M")
    wide = StatusLine.line(f, 200).plain
    assert "a-rather-long-model-name" in wide and "pp 4567" in wide
    line = StatusLine.line(f, 78).plain
    assert len(line) <= 78
    for must in ("gen 123 t/s", "ctx", "3000/32768", "RAM 900M", "VRAM 3.0G/24.0G"):
        assert must in line
    assert "a-rather-long" not in line
    assert "CPU only" in StatusLine.line(Figures(snapshot=Snapshot(1, 2, 3)), 78).plain


def test_a_queued_live_stats_is_replaced_but_a_final_one_is_not() -> None:
    live, final = LiveStats(Stats(tokens_per_s=1)), LiveStats(Stats(tokens_per_s=2, final=True))
    assert live.can_replace(LiveStats(Stats()))
    assert live.can_replace(final)
    assert not final.can_replace(live)


# ---------------------------------------------------------------- in the app


def test_panels_update_while_a_reply_streams() -> None:
    app = app_for(session_with([f"t{i} " for i in range(60)], delay=0.02))

    async def scenario(pilot):
        await ready(pilot)
        assert "-" in label(app, "#speed-gen")
        await type_line(pilot, "go")
        await wait_until(pilot, lambda: app.busy and app.dashboard.figures.gen_rate is not None,
                         what="a live tokens/s figure while streaming")
        assert app.busy
        assert label(app, "#speed-gen").startswith("gen ") and "t/s" in label(app, "#speed-gen")
        assert app.dashboard.figures.context_used > 0
        await wait_until(pilot, lambda: not app.busy)
        await pilot.pause()
        f = app.dashboard.figures
        assert len(f.history) == 1 and f.gen_rate > 0 and f.prompt_rate > 0
        assert re.fullmatch(r"prompt [\d.]+k? t/s", label(app, "#speed-prompt"))
        assert label(app, "#speed-history-label").startswith("last reply ")
        assert app.dashboard.query_one("#speed-history").data == list(f.history)
        used, size = app.session.context_used, app.session.context_size
        assert (f.context_used, f.context_size) == (used, size)
        assert label(app, "#ctx-text") == f"{used} / {size} tokens ({100 * used / size:.0f}%)"

    drive(app, scenario, size=(120, 40))


def test_stats_that_pile_up_are_merged_before_drawing() -> None:
    app = app_for(session_with())

    async def scenario(pilot):
        await ready(pilot)
        dashboard = app.dashboard
        taken = []
        real = dashboard.figures.take_stats
        dashboard.figures.take_stats = lambda s: (taken.append(s), real(s))
        for i in range(50):
            dashboard.post_message(LiveStats(Stats(tokens_per_s=float(i), completion_tokens=i)))
        dashboard.post_message(LiveStats(Stats(tokens_per_s=99.0, completion_tokens=50, final=True)))
        await pilot.pause()
        # posted in one go, before the dashboard runs: the newest replaced those queued before it
        assert [(s.completion_tokens, s.final) for s in taken] == [(50, True)]
        assert dashboard.figures.gen_rate == 99.0 and list(dashboard.figures.history) == [99.0]

    drive(app, scenario)


def test_ram_and_vram_panels_follow_the_monitor() -> None:
    monitor = FixedMonitor(Snapshot(rss=300 * MiB, ram_used=4 * GiB, ram_total=16 * GiB))
    app = app_for(session_with(), monitor=monitor)

    async def scenario(pilot):
        await ready(pilot)
        assert label(app, "#ram-rss") == "process 300.0 MiB"
        assert label(app, "#ram-system") == "system  4.0 GiB / 16.0 GiB"
        assert label(app, "#vram-value") == "CPU only"
        monitor.snapshot = Snapshot(rss=400 * MiB, ram_used=5 * GiB, ram_total=16 * GiB,
                                    vram_used=2 * GiB, vram_total=8 * GiB)
        calls = monitor.calls
        await wait_until(pilot, lambda: monitor.calls > calls, timeout=3, what="the 1 s monitor timer")
        await pilot.pause()
        assert label(app, "#ram-rss") == "process 400.0 MiB"
        assert label(app, "#vram-value") == "2.0 GiB / 8.0 GiB"
        assert "VRAM 2.0G/8.0G" in str(app.query_one(StatusLine).render())

    drive(app, scenario, size=(120, 40))


def test_the_context_bar_turns_to_the_warning_colour_near_the_limit() -> None:
    app = app_for(session_with())

    async def scenario(pilot):
        await ready(pilot)
        ctx_bar = app.dashboard.query_one(ContextBar)
        ok_colour = ctx_bar.styles.color
        app.dashboard.set_context(85, 100)
        await pilot.pause()
        assert ctx_bar.has_class("-warn") and ctx_bar.styles.color != ok_colour
        warn_colour = ctx_bar.styles.color
        app.dashboard.set_context(99, 100)
        await pilot.pause()
        assert ctx_bar.has_class("-full") and not ctx_bar.has_class("-warn")
        assert ctx_bar.styles.color not in (ok_colour, warn_colour)
        status = app.query_one(StatusLine)
        spans = StatusLine.line(app.dashboard.figures, 78).spans
        assert any("lc-ctx-full" in str(span.style) for span in spans)
        assert "99/100" in str(status.render())

    drive(app, scenario, size=(120, 40))


def test_the_model_panel() -> None:
    app = app_for(session_with(profile_name="mine"))

    async def scenario(pilot):
        await ready(pilot)
        assert label(app, "#model-file") == "fake.gguf"
        assert label(app, "#model-quant") == "quant   F32"
        assert label(app, "#model-profile") == "profile mine"
        assert label(app, "#model-load") == "loaded in 0.01 s"

    drive(app, scenario, size=(120, 40))


def test_panels_collapse_to_one_status_line_on_a_small_terminal() -> None:
    app = app_for(session_with())

    async def scenario(pilot):
        await ready(pilot)
        status = app.query_one(StatusLine)
        assert status.display and status.region.height == 1
        assert all(p.region.height == 0 for p in app.query(Panel))
        assert app.dashboard.region.height == 1
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert app.dashboard.has_class("-wide")
        assert status.region.height == 0
        assert all(p.region.height > 0 for p in app.query(Panel))
        assert app.transcript.region.width + app.dashboard.region.width == 120
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert not app.dashboard.has_class("-wide") and status.region.height == 1

    drive(app, scenario, size=(80, 24))


def test_status_line_after_a_reply_at_80x24() -> None:
    app = app_for(session_with(["hello"]))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "hi")
        text = str(app.query_one(StatusLine).render())
        assert "gen " in text and "t/s" in text
        assert f"{app.session.context_used}/2048" in text
        assert "RAM 312M" in text and "CPU only" in text

    drive(app, scenario)


def test_speculation_s_acceptance_shows_in_the_panel_and_first_leaves_the_status_line() -> None:
    f = Figures(context_used=10, context_size=100)
    f.take_stats(Stats(tokens_per_s=50.0, completion_tokens=40, drafted=30, accepted=27, decodes=13))
    assert f.spec == "draft 27/30 · 3.08 t/decode"
    assert "draft 27/30" in StatusLine.line(f, 200).plain
    f.model_file = "a-rather-long-model-name.Q4_K_M.gguf"
    narrow = StatusLine.line(f, 60).plain
    assert "draft" not in narrow and "gen 50.0 t/s" in narrow
    f.take_stats(Stats(tokens_per_s=50.0, completion_tokens=40))  # speculation off: nothing said
    assert f.spec == "" and "draft" not in StatusLine.line(f, 200).plain


def test_after_a_reply_with_spec_lookup_the_speed_panel_shows_the_acceptance() -> None:
    words = ["a1", "b2", "c3", "d4"] * 6
    app = app_for(session_with(words))

    async def scenario(pilot):
        await ready(pilot)
        assert not app.dashboard.query_one("#speed-spec").display  # off: no line for it
        await say(pilot, "/spec lookup")
        await say(pilot, "hi")
        text = label(app, "#speed-spec")
        stats = app.session.last_stats
        assert stats.accepted > 0 and text == f"draft {stats.accepted}/{stats.drafted} · {stats.tokens_per_decode:.2f} t/decode"
        assert app.dashboard.query_one("#speed-spec").display

    drive(app, scenario, size=(120, 40))


def test_at_80x24_the_reply_s_note_shows_the_acceptance() -> None:
    """The compact layout has no speed panel and its status line drops speculation first:
    the figures then stay under the reply they belong to."""
    words = ["a1", "b2", "c3", "d4"] * 6
    app = app_for(session_with(words))

    async def scenario(pilot):
        await ready(pilot)
        await say(pilot, "/spec lookup")
        await say(pilot, "hi")
        stats = app.session.last_stats
        assert stats.accepted > 0
        assert "draft" not in str(app.query_one(StatusLine).render())
        assert stats.spec_text in str(app.transcript.last_reply().note.render())

    drive(app, scenario, size=(80, 24))
