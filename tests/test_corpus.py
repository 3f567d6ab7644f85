"""The rendering corpus (tests/corpus/*.md: replies as models write them) through every
front-end: the TUI transcript, the REPL's printer and pipe mode.

TUI: each file is streamed in chunks of 1-7 characters (seeded, so a failure repeats). At
80x24 in the default theme every file goes through the transcript chunk by chunk; in the
other themes and sizes (120x40, 40x12) a rotating pair of files goes through the app's
real reply path, so over the combinations every file meets every theme and size while
the whole stays well under two minutes. Each time: no exception, the reply drawn as
Markdown (not the plain-text fallback), its last line on screen after scrolling to the
end, no control character drawn, and no line cut: a widget wider than its container is
only allowed where the container scrolls sideways with a visible scrollbar.

REPL and pipe mode: no control character reaches the terminal and every character of
the reply is printed, wrapped or not.
"""

from __future__ import annotations

import io
import random
import zlib
from pathlib import Path

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.output.vt100 import Vt100_Output
from textual.widget import Widget

from lcchat import pipe
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.repl.render import Printer
from lcchat.textsafe import clean
from lcchat.tui.transcript import AssistantTurn
from tests.tui.helpers import app_for, drive, ready, session_with, type_line, wait_until
from tests.tui.screen import screen_segments, screen_text

CORPUS = sorted((Path(__file__).parent / "corpus").glob("*.md"))
THEMES = ["dark", "light", "high-contrast", "ssh"]
SIZES = [(80, 24), (120, 40), (40, 12)]
BIG = 20_000  # files larger than this go through the reply path (frames coalesce chunks) even at the base size


def text_of(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def chunks(text: str, seed: str) -> list[str]:
    """`text` cut into pieces of 1-7 characters, the same cut every run."""
    rng = random.Random(zlib.crc32(seed.encode()))
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 7)
        out.append(text[i:i + n])
        i += n
    return out


def last_line(text: str) -> str:
    return clean(text).rstrip().rsplit("\n", 1)[-1].strip()


def is_control(c: str) -> bool:
    return (ord(c) < 0x20 and c not in "\t\n") or 0x7F <= ord(c) < 0xA0


# ---------------------------------------------------------------- the TUI


def combos() -> list[tuple[str, tuple[int, int], list[Path]]]:
    """(theme, size, files): every file at the base combination, a rotating pair elsewhere."""
    small = [p for p in CORPUS if p.stat().st_size <= BIG]
    out = [("dark", SIZES[0], CORPUS)]
    others = [(t, s) for t in THEMES for s in SIZES if (t, s) != ("dark", SIZES[0])]
    for i, (theme, size) in enumerate(others):
        out.append((theme, size, [small[(2 * i) % len(small)], small[(2 * i + 1) % len(small)]]))
    return out


async def check_drawn(app, pilot, turn: AssistantTurn, text: str, where: str) -> None:
    assert turn.plain is None, f"{where}: the Markdown failed and fell back to plain text"
    for widget in turn.walk_children(Widget):
        parent = widget.parent
        if not widget.display or not isinstance(parent, Widget):
            continue
        if widget.outer_size.width > parent.content_region.width:
            scrolls = parent.show_horizontal_scrollbar and parent.styles.scrollbar_size_horizontal > 0
            assert scrolls, (f"{where}: {type(widget).__name__} is {widget.outer_size.width} wide in a "
                             f"{type(parent).__name__} of {parent.content_region.width}, cut with no scrollbar")
    app.transcript.scroll_end(animate=False)
    await pilot.pause()
    end = last_line(text)[-18:]
    assert end in screen_text(app).replace("\n", ""), f"{where}: the end of the reply is not on screen"
    drawn = "".join(seg.text for seg in screen_segments(app))
    assert not [c for c in drawn if is_control(c)], f"{where}: a control character was drawn"


@pytest.mark.parametrize("theme,size,files", combos(),
                         ids=[f"{t}-{s[0]}x{s[1]}" for t, s, _ in combos()])
def test_the_corpus_in_the_tui(theme, size, files) -> None:
    direct = (theme, size) == ("dark", SIZES[0])
    replies = [chunks(text_of(p), p.name) for p in files if not direct or p.stat().st_size > BIG]
    session = session_with(*replies, n_ctx=1 << 17)
    session.sampling.max_tokens = -1
    app = app_for(session, theme=theme)

    async def scenario(pilot):
        await ready(pilot)
        for path in files:
            text, where = text_of(path), f"{path.name} at {size[0]}x{size[1]} in {theme}"
            await app.transcript.clear()
            if direct and path.stat().st_size <= BIG:
                turn = await app.transcript.start_reply()
                for piece in chunks(text, path.name):
                    await turn.write(piece)
                await turn.finish("stop", None, None)
            else:
                await type_line(pilot, f"show me {path.stem}")
                await wait_until(pilot, lambda: not app.busy, timeout=300, what=f"{where} to finish")
                turn = app.transcript.last_reply()
                assert turn is not None and turn.text == text, where
            await pilot.pause()
            await check_drawn(app, pilot, turn, text, where)

    drive(app, scenario, size=size)


# ---------------------------------------------------------------- the REPL and pipe mode


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
@pytest.mark.parametrize("columns", [80, 40])
def test_the_corpus_in_the_repl(path, columns) -> None:
    text = text_of(path)
    out = io.StringIO()
    printer = Printer(Vt100_Output(out, lambda: Size(rows=24, columns=columns), term="xterm"))
    for piece in chunks(text, path.name):
        printer.stream(piece)
    printer.flush()
    raw = out.getvalue().replace("\r\n", "\n")
    assert not [c for c in raw if is_control(c)]
    assert "".join(raw.split()) == "".join(clean(text).split())  # every character, however wrapped


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_the_corpus_in_pipe_mode(path) -> None:
    text = text_of(path)
    tty, piped = Tty(), io.StringIO()
    for out in (tty, piped):
        session = fake_session(FakeModel(replies=[chunks(text, path.name)], n_ctx=1 << 17))
        session.sampling.max_tokens = -1
        assert pipe.run(session, "go", out=out, err=io.StringIO()) == 0
    end = "" if text.endswith("\n") else "\n"
    assert tty.getvalue() == clean(text) + end
    assert not [c for c in tty.getvalue() if is_control(c)]
    assert piped.getvalue() == text + end  # to a pipe: the bytes as written
