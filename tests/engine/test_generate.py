"""The token loop (engine.generate.TokenLoop) on a scripted model: prompt batches and
their progress, prefix reuse, stats, notices, decode failures and cancelling."""

from __future__ import annotations

import pytest

from lcchat.config.schema import SamplingSettings as Sampling
from lcchat.engine import generate
from lcchat.engine.events import Done, Notice, Progress, Stats, Token
from lcchat.engine.fake import EOG, FakeModel, _FakeSampler
from lcchat.engine.generate import DecodeError, Generation, StopFilter, TokenLoop, common_prefix


def sampling(**values) -> Sampling:
    s = Sampling()
    for key, value in values.items():
        setattr(s, key, value)
    return s


def run(model: FakeModel, prompt: list[int], loop: TokenLoop | None = None, stops=("</s>",), hidden=(),
        **sampling_values) -> tuple[list, Generation, TokenLoop]:
    loop = loop or TokenLoop(model)
    result = Generation()
    events = list(loop.run(prompt, sampling(**sampling_values), StopFilter(list(stops), list(hidden)), result))
    return events, result, loop


def tokens(model: FakeModel, text: str) -> list[int]:
    return model.tokenize(text)


def of(events, kind) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_a_reply_streams_then_final_stats_then_done() -> None:
    model = FakeModel(replies=[["Hel", "lo"]])
    prompt = tokens(model, "hi there")
    events, result, loop = run(model, prompt)
    assert of(events, Token) == [Token("Hel"), Token("lo")]
    assert isinstance(events[-2], Stats) and events[-2].final and events[-1] == Done("stop", "Hello")
    stats = events[-2]
    assert (stats.prompt_tokens, stats.prompt_eval_tokens, stats.completion_tokens) == (8, 8, 2)
    assert stats.context_used == 8 + 2  # each reply token is evaluated; EOG is not
    assert stats.context_size == model.n_ctx
    assert result.text == "Hello" and result.finish_reason == "stop" and result.stats == stats
    assert len(result.tokens) == 2 and result.evaluated == [b"Hel", b"lo"]
    assert loop.cached == prompt + result.tokens


def test_a_long_prompt_is_read_in_batches_with_progress() -> None:
    model = FakeModel(replies=[["ok"]], n_batch=4)
    prompt = tokens(model, "x" * 10)
    events, _, _ = run(model, prompt)
    assert of(events, Progress) == [Progress("prompt", 4, 10), Progress("prompt", 8, 10), Progress("prompt", 10, 10)]
    assert model.decode_calls == 3 + 1  # three batches, then the one reply token


def test_a_prompt_of_one_batch_shows_no_progress() -> None:
    model = FakeModel(replies=[["ok"]], n_batch=4)
    events, _, _ = run(model, tokens(model, "x" * 4))
    assert of(events, Progress) == []


def test_a_follow_up_evaluates_only_what_is_new() -> None:
    model = FakeModel(replies=[["a"], ["b"]], n_batch=4)
    first = tokens(model, "hello")
    _, result, loop = run(model, first)
    second = first + result.tokens + tokens(model, " more")
    before = list(model.decoded)
    events, _, _ = run(model, second, loop)
    stats = of(events, Stats)[-1]
    assert stats.prompt_eval_tokens == len(" more") and stats.prompt_tokens == len(second)
    assert model.decoded[len(before):len(before) + 5] == tokens(model, " more")


def test_the_same_prompt_again_re_evaluates_its_last_token_for_fresh_logits() -> None:
    model = FakeModel(replies=[["a"], ["b"]])
    prompt = tokens(model, "abc")
    _, _, loop = run(model, prompt)
    loop.cached = list(prompt)
    events, _, _ = run(model, prompt, loop)
    assert of(events, Stats)[-1].prompt_eval_tokens == 1


def test_a_changed_history_truncates_the_cache_to_the_common_prefix() -> None:
    model = FakeModel(replies=[["a"], ["b"]])
    _, _, loop = run(model, tokens(model, "abcdef"))
    events, _, _ = run(model, tokens(model, "abcXYZ"), loop)
    assert of(events, Stats)[-1].prompt_eval_tokens == 3
    assert loop.cached[:6] == tokens(model, "abcXYZ")


def test_live_stats_come_while_streaming(monkeypatch) -> None:
    monkeypatch.setattr(generate, "STATS_EVERY_S", 0.0)
    model = FakeModel(replies=[["a", "b", "c", "d"]])
    events, _, _ = run(model, tokens(model, "q"))
    live = [e for e in of(events, Stats) if not e.final]
    assert [s.completion_tokens for s in live] == [1, 2, 3, 4]
    assert all(s.context_size == model.n_ctx and s.prompt_tokens == 1 for s in live)


def test_no_live_stats_within_the_interval(monkeypatch) -> None:
    monkeypatch.setattr(generate, "STATS_EVERY_S", 3600.0)
    model = FakeModel(replies=[["a", "b", "c", "d"]])
    events, _, _ = run(model, tokens(model, "q"))
    assert [e.final for e in of(events, Stats)] == [True]


def test_rates_and_time_to_first_token(monkeypatch) -> None:
    clock = iter(float(i) for i in range(100))
    monkeypatch.setattr(generate.time, "perf_counter", lambda: next(clock))
    model = FakeModel(replies=[["a", "b", "c"]])
    events, _, _ = run(model, tokens(model, "four"))
    stats = of(events, Stats)[-1]
    # started 0, prompt done 1, tokens sampled at 2, 3, 4 (and EOG at 5)
    assert stats.prompt_tokens_per_s == 4.0
    assert stats.ttft_s == 2.0
    assert stats.tokens_per_s == 1.0  # 3 tokens over 3 s from the first to the last sample


def test_max_tokens_ends_with_length_and_says_how_to_allow_more() -> None:
    model = FakeModel(replies=[["w"] * 10])
    events, result, _ = run(model, tokens(model, "q"), max_tokens=3)
    assert result.text == "www" and events[-1] == Done("length", "www")
    assert Notice("the reply reached max_tokens (3); /set max_tokens N allows longer ones") in events


def test_the_end_of_the_context_ends_the_reply_with_a_warning() -> None:
    model = FakeModel(replies=[["w"] * 50], n_ctx=20)
    events, result, loop = run(model, tokens(model, "x" * 10), max_tokens=-1)
    assert events[-1].finish_reason == "length"
    assert Notice("the reply reached the end of the context window (20 tokens)", "warning") in events
    assert len(loop.cached) == 19 and len(result.text) == 10


def test_no_kv_slot_left_ends_the_reply_like_a_full_context() -> None:
    class Full(FakeModel):
        def decode_one(self, token, n_past):
            return 1

    model = Full(replies=[["w"] * 5])
    events, result, loop = run(model, tokens(model, "q"))
    assert result.finish_reason == "length" and result.text == "w"
    assert any(isinstance(e, Notice) and e.level == "warning" and "end of the context" in e.text for e in events)
    assert loop.cached == tokens(model, "q")


def test_a_failed_prompt_decode_is_a_decode_error_and_the_cache_stays_valid() -> None:
    class Broken(FakeModel):
        def decode(self, tokens, n_past, *, logits_last=True):
            if len(tokens) > 1 and n_past >= 4:
                return -3
            return super().decode(tokens, n_past, logits_last=logits_last)

    model = Broken(n_batch=4)
    loop = TokenLoop(model)
    with pytest.raises(DecodeError, match="llama_decode failed with status -3 while reading the prompt"):
        run(model, tokens(model, "x" * 10), loop)
    assert loop.cached == tokens(model, "xxxx") and model.cache_len == 4


def test_an_aborted_prompt_decode_ends_the_turn_interrupted() -> None:
    class Aborts(FakeModel):
        def decode(self, tokens, n_past, *, logits_last=True):
            return 2 if len(tokens) > 1 else super().decode(tokens, n_past, logits_last=logits_last)

    model = Aborts(replies=[["never"]])
    loop = TokenLoop(model)
    loop.cancel()  # llama.cpp's abort callback fired: the loop was cancelled
    events = []
    for event in loop.feed(tokens(model, "abc"), "prompt"):
        events.append(event)
    assert events == [] and loop.cached == []


def test_cancel_before_the_reply_keeps_nothing() -> None:
    model = FakeModel(replies=[["never"]], n_batch=2)
    loop = TokenLoop(model)
    prompt = tokens(model, "abcdef")
    gen = loop.run(prompt, sampling(), StopFilter([]), Generation())
    first = next(gen)  # the first batch's progress
    assert first == Progress("prompt", 2, 6)
    loop.cancel()
    rest = list(gen)
    assert rest[-1] == Done("interrupted", "")
    assert isinstance(rest[-2], Stats) and rest[-2].completion_tokens == 0
    assert loop.cached == prompt[:2]


def test_a_decode_aborted_mid_reply_ends_it_interrupted() -> None:
    model = FakeModel(replies=[["a", "b", "c"]])
    loop = TokenLoop(model)
    gen = loop.run(tokens(model, "q"), sampling(), StopFilter([]), Generation())
    events = []
    for event in gen:
        events.append(event)
        if event == Token("a"):
            model.abort_requested = True  # llama.cpp's abort, without the loop's cancel
    assert events[-1] == Done("interrupted", "a")


def test_hidden_special_text_is_reported_once_each() -> None:
    model = FakeModel(replies=[["a<x>", "b<x>", "<y>c"]])
    events, result, _ = run(model, tokens(model, "q"), hidden=("<x>", "<y>"))
    assert result.text == "abc"
    assert Notice("hid special-token text the model wrote as plain text: <x>, <y>", "warning") in events


def test_a_token_split_utf8_character_is_held_until_whole_and_a_broken_one_replaced() -> None:
    class Bytes(FakeModel):
        PIECES = {2001: "é".encode()[:1], 2002: "é".encode()[1:], 2003: b"\xf0\x9f"}

        def piece(self, token):
            return self.PIECES.get(token) or super().piece(token)

        def make_sampler(self, s):
            return _FakeSampler(self, [2001, 2002, 2003, EOG])

    events, result, _ = run(Bytes(), [1])
    assert of(events, Token)[0] == Token("é")
    assert result.text == "é\ufffd"


@pytest.mark.parametrize("values, window", [
    ({"repeat_penalty": 1.0}, None),
    ({"repeat_penalty": 1.1, "repeat_last_n": 3}, 3),
    ({"presence_penalty": 0.5, "repeat_last_n": 0}, 0),
    ({"frequency_penalty": 0.5, "repeat_last_n": -1}, "all"),
])
def test_penalties_see_the_recent_tokens(values, window) -> None:
    seen = []

    class Spy(FakeModel):
        def make_sampler(self, s):
            sampler = super().make_sampler(s)
            sampler.accept_history = lambda history: seen.append(list(history))
            return sampler

    model = Spy(replies=[["a"]])
    prompt = tokens(model, "abcdefgh")
    run(model, prompt, **values)
    if window is None:
        assert seen == []
    else:
        assert seen == [prompt if window == "all" else prompt[len(prompt) - window:] if window else []]


def test_common_prefix() -> None:
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([1, 2, 3], [1, 2]) == 2
    assert common_prefix([5], [6]) == 0
