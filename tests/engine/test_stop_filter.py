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
