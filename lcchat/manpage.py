"""`lcchat --man`: the manual page through man(1), or as plain text where there is no man."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap

from lcchat.errors import LcchatError

_FONT = re.compile(r"\\f[BIRP]|\\f\(..|\\f\[[A-Z]*\]")
_ALTERNATING = ("BR", "IR", "BI", "IB", "RB", "RI")
WIDTH = 78


def show(name: str) -> int:
    from lcchat.completion import man_page_path

    page = man_page_path(name)
    if page is None:
        raise LcchatError(f"the manual page {name} is not installed with this copy of lcchat")
    if shutil.which("man") and sys.stdout.isatty():
        return subprocess.call(["man", "-l", str(page)])
    sys.stdout.write(to_text(page.read_text(encoding="utf-8")))
    return 0


class _Renderer:
    """Fills and indents the man(7) subset our pages use: SH SS TP IP PP RS RE nf fi br
    and the font requests."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.words: list[str] = []
        self.base = 0  # indent of the section body
        self.body = 0  # indent of the current paragraph
        self.tag_next = False
        self.fill = True

    def flush(self) -> None:
        if self.words:
            text = " ".join(self.words)
            self.lines += textwrap.wrap(text, WIDTH, initial_indent=" " * self.body,
                                        subsequent_indent=" " * self.body, break_on_hyphens=False) or [""]
            self.words = []

    def blank(self) -> None:
        self.flush()
        if self.lines and self.lines[-1] != "":
            self.lines.append("")

    def text(self, text: str) -> None:
        if self.tag_next:
            self.flush()
            self.lines.append(" " * self.base + text)
            self.tag_next = False
            self.body = self.base + 7
        elif not self.fill:
            self.lines.append(" " * self.body + text)
        else:
            self.words.append(text)

    def request(self, name: str, args: list[str]) -> None:
        if name == "TH":
            self.lines.append(f"{args[0]}({args[1] if len(args) > 1 else ''})")
        elif name == "SH":
            self.blank()
            self.lines.append(" ".join(args).upper())
            self.base = self.body = 7
        elif name == "SS":
            self.blank()
            self.lines.append("   " + " ".join(args))
            self.base = self.body = 7
        elif name in ("PP", "P", "LP"):
            self.blank()
            self.body = self.base
        elif name == "TP":
            self.blank()
            self.tag_next = True
        elif name == "IP":
            self.blank()
            self.body = self.base + 7
        elif name == "RS":
            self.flush()
            self.base += 4
            self.body = self.base
        elif name == "RE":
            self.flush()
            self.base = max(7, self.base - 4)
            self.body = self.base
        elif name == "br":
            self.flush()
        elif name == "nf":
            self.flush()
            self.fill = False
        elif name == "fi":
            self.fill = True
        elif name in ("B", "I"):
            self.text(_inline(" ".join(args)))
        elif name in _ALTERNATING:
            self.text(_inline("".join(args)))


def to_text(roff: str) -> str:
    """A plain-text rendering of a man page, for systems without man(1)."""
    r = _Renderer()
    for line in roff.splitlines():
        if line.startswith('.\\"'):
            continue
        if line.startswith("."):
            name, _, rest = line[1:].partition(" ")
            r.request(name, _args(rest))
        else:
            r.text(_inline(line))
    r.flush()
    return "\n".join(r.lines).strip("\n") + "\n"


def _args(text: str) -> list[str]:
    """Arguments of a request: space-separated, "double quoted" ones may hold spaces."""
    return [quoted or bare for quoted, bare in re.findall(r'"([^"]*)"|(\S+)', text)]


def _inline(text: str) -> str:
    text = _FONT.sub("", text)
    for escape, plain in (("\\-", "-"), ("\\(em", "—"), ("\\(en", "–"), ("\\(mu", "×"), ("\\(dq", '"'),
                          ("\\(bu", "•"), ("\\(aq", "'"), ("\\&", ""), ("\\ ", " "), ("\\e", "\\")):
        text = text.replace(escape, plain)
    return text
