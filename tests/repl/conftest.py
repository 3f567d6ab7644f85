"""Drive the REPL loop with prompt-toolkit's pipe input and a StringIO-backed vt100 output."""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass, field

import pytest
from prompt_toolkit.data_structures import Size
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output.vt100 import Vt100_Output

from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.monitor import Snapshot
from lcchat.repl.app import Repl

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[78DM=>]|\x1b\][^\x07]*\x07")

CTRL_C, CTRL_D, ENTER, ALT_ENTER, CTRL_J = "\x03", "\x04", "\r", "\x1b\r", "\n"


def plain(text: str) -> str:
    """Terminal output without escape sequences or carriage returns."""
    return ANSI.sub("", text).replace("\r", "")


class Recorder(io.StringIO):
    """A StringIO that also keeps each write, to check what one write carried."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            self.writes.append(s)
            return super().write(s)

    def isatty(self) -> bool:
        return False


class FakeMonitor:
    def __init__(self, vram: bool = False):
        self.vram = vram
        self.calls = 0

    def sample(self) -> Snapshot:
        self.calls += 1
        gib = 1024 ** 3
        if self.vram:
            return Snapshot(rss=300 * 1024 ** 2, ram_used=3 * gib, ram_total=16 * gib, vram_used=2 * gib, vram_total=24 * gib)
        return Snapshot(rss=300 * 1024 ** 2, ram_used=3 * gib, ram_total=16 * gib)


@dataclass
class Run:
    repl: Repl
    status: int
    raw: str
    writes: list[str]
    session: object
    model: FakeModel

    @property
    def text(self) -> str:
        return plain(self.raw)

    def messages(self) -> list[tuple[str, str]]:
        return [(m.role, m.content) for m in self.session.conversation.messages]


@dataclass
class Harness:
    """Build a Repl over a fake session, type `keys`, run it to the end (Ctrl+D is added)."""

    replies: list = field(default_factory=list)
    delay: float = 0.0
    rows: int = 24
    columns: int = 80

    def __call__(self, keys: str, *, replies=None, delay=None, model: FakeModel | None = None, session=None,
                 before=None, end: str = CTRL_D, **repl_kwargs) -> Run:
        model = model or FakeModel(replies=list(self.replies if replies is None else replies),
                                   delay=self.delay if delay is None else delay)
        session = session or fake_session(model)
        out = Recorder()
        output = Vt100_Output(out, lambda: Size(rows=self.rows, columns=self.columns), term="xterm")
        repl_kwargs.setdefault("history", InMemoryHistory())
        repl_kwargs.setdefault("monitor", FakeMonitor())
        repl_kwargs.setdefault("live_toolbar", False)
        with create_pipe_input() as pipe:
            repl = Repl(session, input=pipe, output=output, **repl_kwargs)
            if before is not None:
                before(repl)
            pipe.send_text(keys + end)
            status = repl.run()
        return Run(repl, status, out.getvalue(), out.writes, session, model)


@pytest.fixture
def drive() -> Harness:
    return Harness()
