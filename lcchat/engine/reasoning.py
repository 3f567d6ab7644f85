"""Reasoning models: telling a reply's thinking from its answer.

Qwen3, QwQ, the DeepSeek-R1 distills and others write their thinking first, between two
markers (`<think>` … `</think>`), then the answer. The markers come from the profile
([chat] reasoning), else from the chat template's text or the vocab (see detect).

Splitter is fed the reply text as the StopFilter lets it through (so stop strings are
already gone) and sorts it into thinking and answer. A marker may arrive whole as one
special token, split over several tokens, or as plain text: a possible start of one is
held back until the next text settles it, as the StopFilter does for stops. The block
counts only at the start of the reply: a model that answers at once has no thinking, and
a `<think>` inside an answer is answer text. A template that opens the block itself
(DeepSeek-R1's ends its prompt with `<think>\\n`) makes the reply start inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

# Marker pairs of the families that reason, for detect(): the pair whose opening marker the
# template writes, or that the vocab holds as tokens, is the model's.
KNOWN = (
    ("<think>", "</think>"),  # Qwen3, QwQ, DeepSeek-R1 and its distills, Phi-4-reasoning, InternLM
    ("◁think▷", "◁/think▷"),  # Kimi
    ("<|START_THINKING|>", "<|END_THINKING|>"),  # Command R7B, Command A reasoning
)

@dataclass(frozen=True)
class Markers:
    """The texts that open and close a reply's thinking, and where they were found
    ("profile", "chat template" or "vocab"; lcchat doctor says it)."""

    open: str
    close: str
    source: str = field(default="", compare=False)


# A model behind a server whose markers neither the profile nor a template here names: the
# commonest pair. A block counts only at the start of a reply, so a model that does not
# reason loses nothing (a reply that opens with a literal `<think>` is shown as thinking,
# kept whole); without it, a reasoning model's thinking read as the answer, markers and all.
# `[chat] reasoning = ["none"]` turns it off.
SERVER_DEFAULT = Markers("<think>", "</think>", "server default")


def detect(setting: list[str], template: str, vocab: Iterable[str] = ()) -> Markers | None:
    """The reasoning markers of a model: the profile's ([OPEN, CLOSE]; ["none"] says it does
    not reason), else a known pair whose opening marker the template text writes, else one
    whose two markers are both tokens of the vocab."""
    if setting == ["none"]:
        return None
    if len(setting) == 2:
        return Markers(setting[0], setting[1], "profile")
    for open_, close in KNOWN:
        if open_ in template:
            return Markers(open_, close, "chat template")
    vocab = set(vocab)
    for open_, close in KNOWN:
        if open_ in vocab and close in vocab:
            return Markers(open_, close, "vocab")
    return None


def opened_by(prompt: str, markers: Markers) -> bool:
    """The prompt ends inside a thinking block the template opened (DeepSeek-R1's
    `<｜Assistant｜><think>\\n`): the reply starts inside it."""
    tail = prompt.rstrip()
    return tail.endswith(markers.open)


def closing(markers: Markers, *, after_newline: bool) -> str:
    """What closes a thinking block that ran to its budget, written as the families write a
    finished block, so the answer starts as the model was trained: one newline, the closing
    marker, a blank line (Qwen3's template renders thinking as `<think>\\n` + thinking +
    `\\n</think>\\n\\n` + answer; DeepSeek-R1's replies close theirs the same way). The
    newline is left out when the thinking already ends with one. llama.cpp's own
    reasoning budget forces only the marker (and an optional message before it) and leaves
    the blank line to the model."""
    return ("" if after_newline else "\n") + markers.close + "\n\n"


def takes_switch(template: str) -> bool:
    """The template reads `enable_thinking` (Qwen3's does)."""
    return "enable_thinking" in template


class Splitter:
    """Sorts reply text into thinking and answer; see the module docstring."""

    def __init__(self, markers: Markers, *, inside: bool = False):
        self.markers = markers
        self.inside = inside  # now within the block
        self.had_block = inside  # the reply has (or had) a thinking block
        self.closed = False  # the block ended; the rest is answer
        self._decided = inside  # the start of the reply has been seen
        self._buf = ""
        self._thinking_started = False  # leading blank lines of the block are dropped
        self._answer_started = False  # and those of the answer after it
        self.thinking: list[str] = []
        self.answer: list[str] = []

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """Add reply text; returns (is_thinking, text) pieces now safe to show, in order."""
        out: list[tuple[bool, str]] = []
        buf = self._buf + text
        self._buf = ""
        m = self.markers
        if not self._decided:
            stripped = buf.lstrip()
            if not stripped or (m.open.startswith(stripped) and stripped != m.open):
                self._buf = buf  # could still be the opening marker
                return out
            self._decided = True
            if stripped.startswith(m.open):
                self.inside = self.had_block = True
                buf = stripped[len(m.open):]
            else:
                self._answer_started = True
        if self.inside and not self._thinking_started:
            # a template opened the block and the model writes the marker again: once is enough
            stripped = buf.lstrip()
            if m.open.startswith(stripped) and stripped != m.open and stripped:
                self._buf = buf
                return out
            if stripped.startswith(m.open):
                buf = stripped[len(m.open):]
        if self.inside:
            at = buf.find(m.close)
            if at < 0:
                keep = _partial(buf, m.close)
                head = buf[: len(buf) - keep]
                keep += len(head) - len(head.rstrip())  # blank space before the close stays out
                self._think(out, buf[: len(buf) - keep])
                self._buf = buf[len(buf) - keep:]
                return out
            self._think(out, buf[:at].rstrip())
            self.inside, self.closed = False, True
            buf = buf[at + len(m.close):]
        self._answer(out, buf)
        return out

    def flush(self) -> list[tuple[bool, str]]:
        """The reply ended: what was held back is shown (an unclosed block stays thinking)."""
        rest, self._buf = self._buf, ""
        out: list[tuple[bool, str]] = []
        if self.inside:
            self._think(out, rest.rstrip())
        else:
            self._answer(out, rest)
        return out

    @property
    def unclosed(self) -> bool:
        """The reply ended (max_tokens, Ctrl+C) while still thinking."""
        return self.inside

    @property
    def reasoning(self) -> str:
        return "".join(self.thinking)

    def _think(self, out: list[tuple[bool, str]], text: str) -> None:
        if not self._thinking_started:
            text = text.lstrip()
            if not text:
                return
            self._thinking_started = True
        if text:
            self.thinking.append(text)
            out.append((True, text))

    def _answer(self, out: list[tuple[bool, str]], text: str) -> None:
        if not self._answer_started:
            text = text.lstrip()
            if not text:
                return
            self._answer_started = True
        if text:
            self.answer.append(text)
            out.append((False, text))


def _partial(buf: str, marker: str) -> int:
    """Length of the longest end of `buf` that begins `marker`."""
    for n in range(min(len(buf), len(marker) - 1), 0, -1):
        if marker.startswith(buf[-n:]):
            return n
    return 0
