"""The token loop (engine.generate.TokenLoop) on a scripted model: prompt batches and
their progress, prefix reuse, stats, notices, decode failures and cancelling."""

from __future__ import annotations

import pytest

from lcchat.config.schema import SamplingSettings as Sampling
from lcchat.engine import generate
from lcchat.engine.events import Done, Notice, Progress, ReplyLimit, Stats, Token
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


def test_max_tokens_ends_with_length_and_says_so() -> None:
    model = FakeModel(replies=[["w"] * 10])
    events, result, _ = run(model, tokens(model, "q"), max_tokens=3)
    assert result.text == "www" and events[-1] == Done("length", "www")
    assert Notice("the reply reached max_tokens (3)", fact=ReplyLimit(3)) in events  # the advice is the front-end's


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


class Spy(FakeModel):
    """Records what the loop asks of the model."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.abortable: list[bool] = []
        self.samplings: list = []
        self.on_sampler = None

    def set_abortable(self, on):
        self.abortable.append(on)

    def make_sampler(self, s):
        self.samplings.append(s)
        if self.on_sampler is not None:
            self.on_sampler()
        return super().make_sampler(s)


def test_the_abort_callback_is_on_only_while_the_prompt_is_read() -> None:
    model = Spy(replies=[["a", "b"]])
    events, _, _ = run(model, tokens(model, "hello"))
    assert model.abortable == [True, False]


def test_the_sampler_is_made_from_the_sampling_settings() -> None:
    model = Spy(replies=[["a"]])
    s = sampling(temperature=0.3)
    list(TokenLoop(model).run(tokens(model, "q"), s, StopFilter([]), Generation()))
    assert model.samplings == [s]


def test_reply_tokens_are_decoded_in_order() -> None:
    model = FakeModel(replies=[["a", "b", "c"]])
    prompt = tokens(model, "q")
    _, result, _ = run(model, prompt)
    assert model.decoded == prompt + result.tokens


def test_reset_empties_the_cache() -> None:
    model = FakeModel(replies=[["a"]])
    _, _, loop = run(model, tokens(model, "hello"))
    loop.reset()
    assert loop.cached == [] and model.cache_len == 0


def test_cancel_sets_the_flag_llama_cpp_polls() -> None:
    model = FakeModel()
    loop = TokenLoop(model)
    loop.cancel()
    assert model.abort_requested is True and loop.cancel_event.is_set()


def test_reusable_and_feed_keep_the_last_token_only_when_asked() -> None:
    model = FakeModel()
    loop = TokenLoop(model)
    loop.cached = [1, 2, 3]
    assert loop.reusable([1, 2, 3]) == 3 and loop.reusable([1, 2, 3], fresh_logits=True) == 2
    assert list(loop.feed([1, 2, 3], "history")) == [] and model.decode_calls == 0


def test_a_cancelled_or_stopped_feed_evaluates_nothing() -> None:
    import threading

    model = FakeModel()
    loop = TokenLoop(model)
    stop = threading.Event()
    stop.set()
    assert list(loop.feed([1, 2, 3], "history", stop=stop)) == [] and model.decode_calls == 0
    loop.cancel()
    assert list(loop.feed([1, 2, 3], "history")) == [] and model.decode_calls == 0


def test_an_abort_without_a_cancel_ends_the_feed_quietly() -> None:
    class Aborts(FakeModel):
        def decode(self, tokens, n_past, *, logits_last=True):
            return 2

    model = Aborts()
    loop = TokenLoop(model)
    assert list(loop.feed([1, 2, 3], "history")) == [] and loop.cached == []


def test_the_same_prompt_again_evaluates_its_last_token() -> None:
    model = FakeModel(replies=[["a"], ["b"]])
    prompt = tokens(model, "abc")
    loop = TokenLoop(model)
    loop.cached = list(prompt)
    run(model, prompt, loop)
    assert model.decoded[0] == prompt[-1]


def test_a_cancel_after_the_prompt_ends_before_the_first_token(monkeypatch) -> None:
    model = Spy(replies=[["never"]])
    loop = TokenLoop(model)
    model.on_sampler = loop.cancel
    events, result, _ = run(model, tokens(model, "q"), loop)
    assert events[-1] == Done("interrupted", "") and result.finish_reason == "interrupted"
    stats = events[-2]
    assert stats.completion_tokens == 0 and stats.ttft_s == 0.0 and stats.tokens_per_s == 0.0


def test_the_interrupted_prompt_reports_what_the_cache_holds() -> None:
    model = FakeModel(replies=[["never"]], n_batch=2)
    loop = TokenLoop(model)
    result = Generation()
    gen = loop.run(tokens(model, "abcdef"), sampling(), StopFilter([]), result)
    next(gen)
    loop.cancel()
    rest = list(gen)
    assert rest[-2].context_used == 2 and rest[-2].prompt_tokens == 6
    assert result.finish_reason == "interrupted" and result.stats == rest[-2]


def clocked(monkeypatch, step: float, start: float = 10.0) -> None:
    times = iter(start + step * i for i in range(1000))
    monkeypatch.setattr(generate.time, "perf_counter", lambda: next(times))


def test_rates_with_a_clock_that_does_not_start_at_zero(monkeypatch) -> None:
    clocked(monkeypatch, 2.0)
    model = FakeModel(replies=[["a", "b", "c"]])
    stats = of(run(model, tokens(model, "four"))[0], Stats)[-1]
    # started 10, prompt done 12, tokens at 14, 16, 18, EOG at 20
    assert stats.prompt_tokens_per_s == 2.0 and stats.ttft_s == 4.0 and stats.tokens_per_s == 0.5


def test_a_clock_that_did_not_move_gives_no_rates(monkeypatch) -> None:
    clocked(monkeypatch, 0.0)
    monkeypatch.setattr(generate, "STATS_EVERY_S", 0.0)
    model = FakeModel(replies=[["a", "b"]])
    events, _, _ = run(model, tokens(model, "q"))
    final = of(events, Stats)[-1]
    assert final.prompt_tokens_per_s == 0.0 and final.tokens_per_s == 0.0
    assert [s.completion_tokens for s in of(events, Stats) if not s.final] == [1, 2]  # due at once


def test_a_cached_prompt_s_rate_counts_only_what_was_evaluated(monkeypatch) -> None:
    clocked(monkeypatch, 0.25)
    model = FakeModel(replies=[["a"]])
    prompt = tokens(model, "abc")
    loop = TokenLoop(model)
    loop.cached = list(prompt) + [999]  # the cache holds more: only the last token is evaluated again
    stats = of(run(model, prompt, loop)[0], Stats)[-1]
    assert stats.prompt_eval_tokens == 1 and stats.prompt_tokens_per_s == 4.0


def test_one_token_reply_has_a_rate(monkeypatch) -> None:
    clocked(monkeypatch, 0.25)
    model = FakeModel(replies=[["a"]])
    stats = of(run(model, tokens(model, "q"))[0], Stats)[-1]
    assert stats.tokens_per_s == 4.0  # one token, 0.25 s to the end-of-generation sample


def test_an_empty_reply_has_no_rate(monkeypatch) -> None:
    clocked(monkeypatch, 0.25)
    model = FakeModel(replies=[[]])
    stats = of(run(model, tokens(model, "q"))[0], Stats)[-1]
    assert stats.tokens_per_s == 0.0 and stats.completion_tokens == 0


def test_live_stats_keep_their_interval(monkeypatch) -> None:
    clocked(monkeypatch, 1.0, start=0.0)
    monkeypatch.setattr(generate, "STATS_EVERY_S", 1.5)
    model = FakeModel(replies=[["a"] * 6])
    events, _, _ = run(model, tokens(model, "q"))
    live = [s for s in of(events, Stats) if not s.final]
    # prompt done at 1: due at 2.5; tokens at 2..7 -> stats at 3, then due 4.5 -> 5, then 6.5 -> 7
    assert [s.completion_tokens for s in live] == [2, 4, 6]
    assert [s.context_used for s in live] == [1 + 2, 1 + 4, 1 + 6]


def test_max_tokens_zero_stops_after_one_token() -> None:
    model = FakeModel(replies=[["a", "b", "c"]])
    _, result, _ = run(model, tokens(model, "q"), max_tokens=0)
    assert result.text == "a" and result.finish_reason == "length"


def test_the_held_back_tail_comes_as_a_last_token() -> None:
    model = FakeModel(replies=[["value <"]])
    events, result, _ = run(model, tokens(model, "q"))
    assert of(events, Token) == [Token("value "), Token("<")] and result.text == "value <"


def test_flush_empties_the_filter() -> None:
    f = StopFilter(["</s>"])
    assert f.feed("a <") == "a " and f.flush() == "<"
    assert f.flush() == "" and f.feed("b") == "b"


def test_a_stop_wins_over_a_hidden_text_starting_at_the_same_place() -> None:
    f = StopFilter(["<x>"], ["<x>y"])
    assert f.feed("a<x>yb") == "a" and f.stopped_by == "<x>" and f.hid == []
