"""Drafting policies replayed on real greedy replies, with a clock from measured batch costs.

A greedy reply is the same with or without speculation (each kept token is the one the
model draws), so which drafts would have been right is known exactly once the reply is: a
policy can be replayed against it with no model at all. What a replay cannot know is time;
it takes it from the model's measured cost of one llama_decode over n tokens at the
reply's context depth (cost(1) = 1). Each drafted batch then costs cost(1 + k), each single
step 1, and a policy's gain is the reply's tokens over its total cost.

So the drafting policies compare on the very same replies with no noise: lcchat's
(engine/speculative.py: LookupDrafter and Planner, run inside its own Verifier) against a
port of llama.cpp's prompt lookup (common/ngram-cache.cpp, as llama-lookup runs it: the
context's n-gram cache, sizes 1 to 4, its "lax" thresholds, a draft made token by token
and always verified, at most n_max tokens, 3 by default). The measured runs in
benchmarks/llamacpp.py show what the machine really gives; this shows why.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable

from lcchat.engine import speculative

# llama.cpp's thresholds for drafting from the context's n-gram cache (ngram-cache.cpp,
# draft_min_sample_size_lax and draft_min_percent_lax), for n-gram sizes 1 to 4.
LLAMA_NGRAM_MIN, LLAMA_NGRAM_MAX = 1, 4
LLAMA_MIN_SAMPLES = (2, 2, 1, 1)
LLAMA_MIN_PERCENT = (66, 50, 50, 50)
LLAMA_N_MAX = 3  # llama-lookup's default --draft-max (common.h: speculative.draft.n_max)


class LlamaNgramCache:
    """llama.cpp's context n-gram cache drafter, in Python: for each n-gram of 1 to 4 tokens
    the counts of the tokens that followed it; a draft goes token by token, each the most
    frequent follower of the longest n-gram (of the context and the draft so far) whose
    counts pass the thresholds, and ends at the first that none passes."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, ...], dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._seen = 0
        self.sources: list[str] = []
        self.declined = None

    def _update(self, tokens: list[int]) -> None:
        for i in range(self._seen, len(tokens)):
            for size in range(LLAMA_NGRAM_MIN, LLAMA_NGRAM_MAX + 1):
                if i >= size:
                    self._counts[tuple(tokens[i - size:i])][tokens[i]] += 1
        self._seen = len(tokens)

    def next_token(self, tokens: list[int]) -> int | None:
        for size in range(LLAMA_NGRAM_MAX, LLAMA_NGRAM_MIN - 1, -1):
            if len(tokens) < size:
                continue
            followers = self._counts.get(tuple(tokens[-size:]))
            if not followers:
                continue
            best = max(followers, key=followers.__getitem__)  # of equal counts the first seen (C++: the map's order)
            total = sum(followers.values())
            if total < LLAMA_MIN_SAMPLES[size - 1] or 100 * followers[best] < LLAMA_MIN_PERCENT[size - 1] * total:
                continue
            return best
        return None

    def draft(self, context: list[int], last: int, n: int, budget=None) -> list[int]:
        seen = [*context, last]
        self._update(seen)
        out: list[int] = []
        while len(out) < n:
            token = self.next_token(seen + out)
            if token is None:
                break
            out.append(token)
        self.sources = ["llama"] * len(out)
        return out


class _Clock:
    now = 0.0


class _CostedModel:
    """What a Verifier calls, advancing a clock by the measured cost of each decode."""

    n_batch, n_ctx = 512, 1 << 20

    def __init__(self, clock: _Clock, cost: Callable[[int], float]) -> None:
        self.clock, self.cost = clock, cost

    def decode_batch(self, tokens, n_past) -> int:
        self.clock.now += self.cost(len(tokens))
        return 0

    def decode_one(self, token, n_past) -> int:
        self.clock.now += self.cost(1)
        return 0

    def kv_truncate(self, n_keep) -> None:
        pass


def replay(prompt: list[int], reply: list[int], drafter, cost: Callable[[int], float], *, n_draft: int,
           adaptive: bool) -> dict:
    """Run `reply` through a Verifier drafting with `drafter`, on a clock where a decode of
    n tokens costs cost(n): the time, the gain over single steps, and the draft figures."""
    clock = _Clock()
    cached = list(prompt)
    verifier = speculative.Verifier(_CostedModel(clock, cost), None, drafter, cached, n_draft=n_draft,
                                    limit=len(reply), adaptive=adaptive, clock=lambda: clock.now)
    for token in reply:
        verifier.advance(token, len(cached))
        cached.append(token)
    verifier.finish()
    plain = len(reply) * cost(1)
    return {"gain": plain / clock.now if clock.now else 1.0, "drafted": verifier.drafted,
            "accepted": verifier.accepted, "per_decode": len(reply) / max(1, verifier.decodes)}


def policies(prompt: list[int], reply: list[int], cost: Callable[[int], float], n_draft: int = 16) -> dict[str, dict]:
    """lcchat's lookup (as it runs) against llama.cpp's prompt lookup at its default and at
    lcchat's draft length, on one reply."""
    return {
        "lcchat": replay(prompt, reply, speculative.LookupDrafter(), cost, n_draft=n_draft, adaptive=True),
        f"llama.cpp n_max {LLAMA_N_MAX}": replay(prompt, reply, LlamaNgramCache(), cost, n_draft=LLAMA_N_MAX,
                                                 adaptive=False),
        f"llama.cpp n_max {n_draft}": replay(prompt, reply, LlamaNgramCache(), cost, n_draft=n_draft, adaptive=False),
    }


def cost_function(measured: dict[int, float]) -> Callable[[int], float]:
    """cost(n) relative to one token, from seconds per decode of n tokens; past the largest
    measured n, growing by the last measured step's average."""
    top = max(measured)
    slope = (measured[top] - measured[1]) / (top - 1) if top > 1 else measured[1]

    def cost(n: int) -> float:
        seconds = measured[n] if n in measured else measured[top] + slope * (n - top)
        return seconds / measured[1]

    return cost
