"""Stop strings are never shown, not even a piece of one split across tokens."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lcchat.engine.generate import StopFilter


def run(pieces: list[str], stops: list[str], hidden: list[str] = ()) -> tuple[str, StopFilter]:
    f = StopFilter(stops, list(hidden))
    out = "".join(f.feed(p) for p in pieces)
    return out + f.flush(), f


def test_stop_split_across_tokens_is_not_printed() -> None:
    out, f = run(["Hello", " wor", "ld<|im", "_e", "nd|>", "junk"], ["<|im_end|>"])
    assert out == "Hello world"
    assert f.stopped_by == "<|im_end|>"


def test_partial_stop_that_turns_out_not_to_be_one_is_released() -> None:
    out, f = run(["a <|im", "_start is not it"], ["<|im_end|>"])
    assert out == "a <|im_start is not it"
    assert f.stopped_by is None


def test_held_back_tail_is_flushed_at_the_end() -> None:
    out, _ = run(["value <", "|im"], ["<|im_end|>"])
    assert out == "value <|im"


def test_hidden_special_text_is_removed_and_reported() -> None:
    out, f = run(["x [UNUSED_TOK", "EN_146] y"], ["</s>"], ["[UNUSED_TOKEN_146]"])
    assert out == "x  y"
    assert f.hid == ["[UNUSED_TOKEN_146]"]


def test_leading_blank_space_of_a_reply_is_dropped() -> None:
    out, _ = run(["\n", "  ", " Hi", " there"], ["</s>"])
    assert out == "Hi there"


def test_earliest_of_several_stops_wins() -> None:
    out, f = run(["ab</s>cd<|im_end|>"], ["<|im_end|>", "</s>"])
    assert out == "ab"
    assert f.stopped_by == "</s>"


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab<|>/s", max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=8),
)
def test_any_split_gives_the_text_before_the_first_stop(text: str, cuts: list[int]) -> None:
    stops = ["</s>", "<|a|>"]
    bounds = sorted({0, len(text), *[c for c in cuts if c <= len(text)]})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    out, _ = run(pieces, stops)
    first = min((text.find(s) for s in stops if s in text), default=-1)
    expected = (text if first < 0 else text[:first]).lstrip()
    assert out == expected


def test_the_start_of_a_stop_string_is_held_back_until_it_is_known() -> None:
    f = StopFilter(["</s>"])
    assert f.feed("Hi <") == "Hi "  # "<" may begin "</s>": not shown yet
    assert f.feed("/s>") == ""
    assert f.stopped_by == "</s>"
    assert f.flush() == ""


def test_held_back_text_is_released_as_soon_as_it_cannot_be_a_stop() -> None:
    f = StopFilter(["</s>"])
    assert f.feed("a </") == "a "
    assert f.feed("b") == "</b"
    assert f.stopped_by is None


def test_nothing_is_shown_after_a_stop() -> None:
    f = StopFilter(["STOP"])
    assert f.feed("one STOP two") == "one "
    assert f.feed(" three") == ""
    assert f.flush() == ""


def test_a_hidden_text_between_stops_is_reported_once_per_occurrence() -> None:
    out, f = run(["<h>a<h>b</s>c"], ["</s>"], ["<h>"])
    assert out == "ab" and f.hid == ["<h>", "<h>"] and f.stopped_by == "</s>"


def test_empty_and_repeated_stops_are_ignored() -> None:
    f = StopFilter(["", "</s>", "</s>"], ["</s>", "", "<x>"])
    assert f.stops == ["</s>"] and f.hidden == ["<x>"]


def test_without_stops_text_flows_straight_through() -> None:
    f = StopFilter([])
    assert f.feed("  <a") == "<a" and f.feed("b") == "b"


STOPS = ["</s>", "<|a|>", "ss"]
HIDDEN = ["<h>"]


@settings(max_examples=300, deadline=None)
@given(
    chunks=st.lists(st.one_of(st.text(alphabet="ab<|>/sh ", max_size=6), st.sampled_from(STOPS + HIDDEN)),
                    max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=10),
)
def test_texts_with_stops_split_anywhere_stream_only_what_comes_before_the_first(chunks, cuts) -> None:
    """Texts built with stop and hidden strings in them, cut into tokens at any places:
    the stream never shows text it later takes back, and ends at the first stop."""
    text = "".join(chunks)
    bounds = sorted({0, len(text), *[c for c in cuts if c <= len(text)]})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    expected, stopped_by, hid = _reference(text)
    f = StopFilter(STOPS, HIDDEN)
    shown = ""
    for piece in pieces:
        shown += f.feed(piece)
        assert expected.startswith(shown), (shown, expected)
    shown += f.flush()
    assert shown == expected
    assert f.stopped_by == stopped_by
    assert f.hid == hid


def _reference(text: str) -> tuple[str, str | None, list[str]]:
    """What the filter must produce, by the slow obvious method over the whole text."""
    text = text.lstrip()  # a reply starts at its first non-blank character
    out, hid, i = "", [], 0
    while i < len(text):
        found = next(((s, True) for s in STOPS if text.startswith(s, i)), None) or \
            next(((h, False) for h in HIDDEN if text.startswith(h, i)), None)
        if found is None:
            out += text[i]
            i += 1
        elif found[1]:
            return out, found[0], hid
        else:
            hid.append(found[0])
            i += len(found[0])
    return out, None, hid
