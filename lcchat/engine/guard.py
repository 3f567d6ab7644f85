"""Message text stays text: special-token text inside a message never becomes a control token.

A prompt is the template's markers (<|im_start|>, [INST], <|eot_id|> ...) around message
contents. llama.cpp either parses every special-token text in a string as the token or
none, so tokenizing the rendered prompt in one piece would let a user message (or a piped
file, or an earlier reply) that contains `<|im_end|>\\n<|im_start|>system` forge a turn.

So, before rendering, each special-token text inside a message is swapped for a private
stand-in character; the template renders around it (strip, trim and the like leave it
alone); afterwards the stand-ins are put back and their places recorded (`PromptText.literal`).
Tokenizing then parses specials everywhere except those places, fragment by fragment the
way llama.cpp does: the run of text between two real markers that holds message special
text is tokenized with parse_special off, the rest with it on. A prompt with no special
text in its messages is tokenized in one call, exactly as before.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Callable, Sequence

# Stand-ins come from the top of Supplementary Private Use Area-B, downwards, skipping any
# character the messages or the template already use.
_STAND_IN_TOP = 0x10FFFD


class PromptText(str):
    """Prompt text that knows where message text that looks like special tokens lies:
    `literal` holds (start, end) spans that must be tokenized as plain text."""

    literal: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, text: str, literal: Sequence[tuple[int, int]] = ()) -> "PromptText":
        out = cls(text)
        out.literal = tuple(literal)
        return out

    def head(self, end: int) -> "PromptText":
        """The first `end` characters, keeping the spans that lie inside them."""
        return PromptText.of(self[:end], [(a, b) for a, b in self.literal if b <= end])


def literal_spans(text: str) -> tuple[tuple[int, int], ...]:
    return getattr(text, "literal", ())


@dataclass
class Specials:
    """The special-token texts of one vocab that llama.cpp matches only with parse_special."""

    texts: tuple[str, ...]

    def __post_init__(self) -> None:
        ordered = sorted({t for t in self.texts if t}, key=len, reverse=True)  # longest first, as llama.cpp
        self.pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def find(self, text: str) -> list[tuple[int, int]]:
        if self.pattern is None or not text:
            return []
        return [m.span() for m in self.pattern.finditer(text)]


_TEXT_KEYS = ("content", "reasoning_content")  # the message fields that hold message text


def protect(render: Callable[[list[dict[str, str]]], str], specials: Specials,
            messages: list[dict[str, str]], template_text: str = "") -> PromptText:
    """Render `messages` with `render`, recording where special-token text from a message
    ended up in the prompt. An assistant message's earlier thinking (reasoning_content, for
    the templates that show it) is message text too."""
    found = {m[key]: specials.find(m[key]) for m in messages for key in _TEXT_KEYS if isinstance(m.get(key), str)}
    if not any(found.values()):
        return PromptText(render(messages))
    used = set(template_text)
    for m in messages:
        for key in _TEXT_KEYS:
            used.update(m.get(key) or "")
    stand_in: dict[str, str] = {}
    code = _STAND_IN_TOP
    for content, spans in found.items():
        for a, b in spans:
            if content[a:b] not in stand_in:
                while chr(code) in used:
                    code -= 1
                stand_in[content[a:b]] = chr(code)
                used.add(chr(code))
    swapped = []
    for m in messages:
        for key in _TEXT_KEYS:
            content = m.get(key)
            if isinstance(content, str) and found.get(content):
                m = {**m, key: _swap(content, found[content], stand_in)}
        swapped.append(m)
    text = render(swapped)
    back = {v: k for k, v in stand_in.items()}
    out, spans, pos = [], [], 0
    for ch in text:
        original = back.get(ch)
        if original is None:
            out.append(ch)
            pos += 1
        else:
            out.append(original)
            spans.append((pos, pos + len(original)))
            pos += len(original)
    return PromptText.of("".join(out), spans)


def _swap(content: str, spans: list[tuple[int, int]], stand_in: dict[str, str]) -> str:
    pieces, last = [], 0
    for a, b in spans:
        pieces += [content[last:a], stand_in[content[a:b]]]
        last = b
    pieces.append(content[last:])
    return "".join(pieces)


def pieces(text: str, specials: Specials) -> list[tuple[str, bool]]:
    """Split prompt text into (piece, parse_special) for tokenizing: llama.cpp tokenizes the
    text between two special tokens on its own, so a run between two real markers that
    holds message special text can be tokenized with parse_special off and the result is
    the same as if those texts had been plain all along."""
    literal = literal_spans(text)
    if not literal:
        return [(text, True)]
    masked = list(text)
    for a, b in literal:
        masked[a:b] = "\0" * (b - a)
    markers = specials.find("".join(masked))
    starts = [s for s, _ in markers]
    ends = [e for _, e in markers]
    cuts: list[tuple[int, int]] = []  # [start, end) of each run tokenized as plain text
    for a, b in literal:
        i = bisect.bisect_right(ends, a)  # markers are in order and do not overlap
        start = ends[i - 1] if i else 0
        j = bisect.bisect_left(starts, b)
        end = starts[j] if j < len(starts) else len(text)
        if cuts and start <= cuts[-1][1]:
            cuts[-1] = (cuts[-1][0], max(end, cuts[-1][1]))
        else:
            cuts.append((start, end))
    out: list[tuple[str, bool]] = []
    last = 0
    for start, end in cuts:
        if start > last:
            out.append((text[last:start], True))
        out.append((text[start:end], False))
        last = end
    if last < len(text):
        out.append((text[last:], True))
    return out


def starts_fragment(text: str, at: int, specials: Specials) -> bool:
    """Whether position `at` of the prompt is a place where llama.cpp's tokenizer starts a
    new fragment (right before or right after a real special token), so the text from
    `at` on tokenizes the same alone as inside the whole. Right after a special token,
    whitespace counts as not sure: llama.cpp strips the spaces after some (Phi-3's RSTRIP);
    the spaces before one it strips only for an embedding model's <mask> (LSTRIP)."""
    if at <= 0:
        return True
    if any(a <= at <= b for a, b in literal_spans(text)):
        return False  # next to message text: not a real marker there
    texts = [t for t in specials.texts if t]
    if any(text.startswith(t, at) for t in texts):
        return True
    return at < len(text) and not text[at].isspace() and any(text.endswith(t, 0, at) for t in texts)
