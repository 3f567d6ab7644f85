"""The status line's text, and the figures' refresh rate."""

from __future__ import annotations

from lcchat.engine.events import Progress, Stats
from lcchat.engine.monitor import Snapshot
from lcchat.repl.toolbar import Figures, compact, fit, toolbar_text
from tests.repl.conftest import ENTER

GIB, MIB = 1024 ** 3, 1024 ** 2
CPU = Snapshot(rss=512 * MIB, ram_used=7 * GIB, ram_total=16 * GIB)
GPU = Snapshot(rss=512 * MIB, ram_used=7 * GIB, ram_total=16 * GIB, vram_used=3 * GIB, vram_total=24 * GIB)


def test_all_figures_fit_in_80_columns() -> None:
    stats = Stats(tokens_per_s=42.25, context_used=1234, context_size=4096, completion_tokens=10)
    line = toolbar_text(stats=stats, snapshot=GPU, context_used=1234, context_size=4096, width=79)
    assert line.rstrip() == " 42.2 t/s · RSS 512M · RAM 7.0/16.0G · VRAM 3.0/24.0G · ctx 1234/4096 30%"
    assert len(line) == 79


def test_cpu_only_shows_a_dash_for_vram() -> None:
    line = toolbar_text(stats=None, snapshot=CPU, context_used=10, context_size=100, width=80)
    assert "VRAM —" in line
    assert "— t/s" in line
    assert "ctx 10/100 10%" in line


def test_prompt_reading_and_progress() -> None:
    assert "reading prompt…" in toolbar_text(stats=None, snapshot=None, context_used=0, context_size=1, waiting=True)
    line = toolbar_text(stats=None, snapshot=None, context_used=0, context_size=1, progress=Progress("prompt", 512, 2048))
    assert "prompt 25%" in line


def test_no_monitor_still_shows_speed_and_context() -> None:
    line = toolbar_text(stats=Stats(tokens_per_s=5), snapshot=None, context_used=3, context_size=0, width=40)
    assert line.strip() == "5.0 t/s · ctx 3/0 0%"


def test_compact_units() -> None:
    assert [compact(n) for n in (2048, 300 * MIB, 1000 * MIB, 7.25 * GIB, 1.5 * 1024 * GIB)] == [
        "2K", "300M", "1.0G", "7.2G", "1.5T"]


def test_fit_cuts_and_pads_by_columns() -> None:
    assert fit("abc", 5) == "abc  "
    assert fit("abcdef", 4) == "abcd"
    assert fit("日本語", 5) == "日本 "  # wide characters count twice


def test_mixed_units() -> None:
    small = Snapshot(rss=1, ram_used=900 * MIB, ram_total=16 * GIB)
    assert "RAM 900M/16.0G" in toolbar_text(stats=None, snapshot=small, context_used=0, context_size=1, width=120)


class CountingMonitor:
    def __init__(self):
        self.calls = 0

    def sample(self):
        self.calls += 1
        return CPU


def test_figures_read_the_monitor_at_most_once_per_interval() -> None:
    monitor = CountingMonitor()
    figures = Figures(monitor, every=60)
    for _ in range(100):
        assert figures.snapshot() == CPU
    assert monitor.calls == 1


def test_a_failing_monitor_shows_no_figures() -> None:
    class Broken:
        def sample(self):
            raise OSError("no /proc")

    assert Figures(Broken()).snapshot() is None
    assert Figures(None).snapshot() is None


def test_the_status_line_follows_undo(drive) -> None:
    run = drive("hello" + ENTER + "/undo" + ENTER, replies=[["a ", "reply"]])
    assert run.session.last_stats.context_used > 0
    assert run.session.context_used == 0  # the undone exchange left the KV cache
    assert "ctx 0/" in run.repl._bottom_toolbar()


def test_a_prompt_read_whole_from_the_cache_says_cached() -> None:
    from lcchat.engine.events import Stats

    assert Stats(prompt_tokens=50, prompt_eval_tokens=1, prompt_tokens_per_s=9000.0).summary().startswith("prompt cached")
    assert Stats(prompt_tokens=50, prompt_eval_tokens=50, prompt_tokens_per_s=90.0).summary().startswith("prompt 90.0 t/s")


def test_speculation_s_acceptance_follows_the_speed() -> None:
    stats = Stats(tokens_per_s=42.25, completion_tokens=40, drafted=30, accepted=27, decodes=13)
    line = toolbar_text(stats=stats, snapshot=None, context_used=10, context_size=100, width=100)
    assert line.startswith(" 42.2 t/s · draft 27/30 · 3.08 t/decode · ctx")
    plain = toolbar_text(stats=Stats(tokens_per_s=42.25), snapshot=None, context_used=10, context_size=100)
    assert "draft" not in plain
