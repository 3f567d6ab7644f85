"""benchmarks/replay.py: the drafting policies replayed on a known reply, and the port of
llama.cpp's prompt lookup it compares lcchat's with."""

from __future__ import annotations

import pytest

from benchmarks import replay


def test_the_llama_cpp_port_drafts_what_passes_its_thresholds() -> None:
    cache = replay.LlamaNgramCache()
    # After (5, 6): 7 twice, 8 once. The 2-gram (5, 6) has 3 samples, 67% for 7: it drafts 7,
    # then (6, 7) -> 1 ... the draft follows the commonest continuation token by token.
    context = [5, 6, 7, 1, 5, 6, 7, 1, 5, 6, 8, 2, 5]
    assert cache.draft(context, 6, 3) == [7, 1, 5]
    # A 1-gram needs 2 samples and 66%: 9 was followed once by 4 and once by 3 (50%), so
    # after 9 nothing is drafted.
    cache = replay.LlamaNgramCache()
    assert cache.draft([9, 4, 0, 9, 3, 0], 9, 3) == []
    # A 4-gram seen once is enough (1 sample, 100%).
    cache = replay.LlamaNgramCache()
    assert cache.draft([1, 2, 3, 4, 42, 0, 1, 2, 3], 4, 1) == [42]


def test_a_replay_counts_exactly_what_verifying_the_drafts_would_have_kept() -> None:
    """A reply that copies its prompt: every draft of the llama.cpp port is right and costs
    cost(1 + k); without drafts each token costs 1."""
    passage = list(range(100, 140))
    prompt = [*passage, 1]
    reply = passage[:20]
    flat = replay.replay(prompt, reply, replay.LlamaNgramCache(), lambda n: 1.0, n_draft=3, adaptive=False)
    # The first two tokens are decoded alone: after (1, 100) and (100, 101), each seen once,
    # no n-gram passes the thresholds (a 2-gram needs 2 samples) until the 3-gram (100, 101,
    # 102). Then each decode of [token, 3 drafted] keeps all 4: 2 + 18 tokens in 2 + 5 decodes.
    assert flat["drafted"] == flat["accepted"] == 18 - 5
    assert flat["per_decode"] == pytest.approx(20 / 7)
    assert flat["gain"] == pytest.approx(20 / 7)  # every decode costs 1 here
    # Batches as dear as their tokens: drafting gains nothing.
    dear = replay.replay(prompt, reply, replay.LlamaNgramCache(), lambda n: float(n), n_draft=3, adaptive=False)
    assert dear["gain"] == pytest.approx(1.0, abs=0.06)
    ours = replay.replay(prompt, reply, replay.speculative.LookupDrafter(), lambda n: 1 + 0.5 * (n - 1),
                         n_draft=16, adaptive=True)
    assert ours["accepted"] == ours["drafted"] > 0 and ours["gain"] > 1.2


def test_the_cost_function_extends_past_what_was_measured() -> None:
    cost = replay.cost_function({1: 0.02, 2: 0.03, 3: 0.04})
    assert cost(1) == 1.0 and cost(3) == pytest.approx(2.0)
    assert cost(5) == pytest.approx(3.0)  # 0.01 s more per token past 3
