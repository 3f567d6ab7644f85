"""Speculative decoding inside the token loop: drafters propose the next tokens, the target
model checks them all in one llama_decode, and every token kept is the one the session's
own sampler draws.

How the loop uses it (engine/generate.py): with speculation on, the loop's sample() and
decode_one() become Verifier.sample() and Verifier.advance(); nothing else changes, so
every stop condition (a stop string, EOS, max_tokens, the context's end, Ctrl+C) is
checked for each token exactly as in the plain loop, also in the middle of a draft.

- advance(token) puts `token` in the KV cache. When the last batch already holds it (the
  sampler drew what the draft proposed), there is nothing to evaluate. Otherwise the
  positions of the rejected draft are removed, a drafter proposes a continuation, and
  [token, draft...] are evaluated in one batch with logits for every position.
- sample() draws from the logits of the position the next token follows: the last one
  after a single decode, the batch index inside a verified draft. The sampler chain
  accepts each drawn token, as in the plain loop, and draws once per emitted token, so
  each emitted token comes from the target's distribution (and, for a seed, the same
  random numbers are used as without speculation).
- finish() removes what remains of a draft from the KV cache, so it holds exactly the
  tokens the loop kept and the next turn's prefix reuse is right.

How much to draft is decided per draft, from what the turn has measured (Planner):
- the acceptance of each source of drafted tokens, measured token by token: prompt lookup
  by how many tokens before the drafted one agree with the earlier text it copies (30
  tokens into copying a paragraph the next is nearly always right; after a 2-token match
  in free text seldom), and the draft model;
- the cost of verifying: a batch of 1 + k tokens costs about 1 + beta*k single decodes
  (beta is near 0.5 for a small model on a CPU, which is compute-bound, and far lower for
  a large or GPU one), or what that batch size has measured once it has been verified a
  few times (on a CPU a batch of 4 can cost what one of 3 does), plus the drafter's own
  time per token (the draft model's).
With p1, p2... the acceptance of each drafted token's source, a draft of k tokens gives
1 + p1 + p1p2 + ... + p1...pk tokens on average for that cost. The planner drafts the k that
gives most tokens per unit of time, and nothing when no k beats single decodes: free text,
where matches are rare and seldom right, is not slowed, and a lookup draft that starts on a
short match goes on as far as its match makes it sure.
A lookup draft it declines is still compared with what the reply goes on to say (knowing it
cost nothing), so a source comes back as soon as it is right again; a draft model, whose
drafts cost time, gets a one-token try now and then instead. Decode times are medians of
the last few, so a busy moment on a shared machine does not stop drafting.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from lcchat.config.schema import SPEC_MODES as MODES  # noqa: F401 - the modes, named once

NGRAM_MAX = 4  # the longest n-gram prompt lookup matches
NGRAM_MIN = 2  # ... and the shortest: a single token predicts too little
OCCURRENCES = 8  # the latest occurrences of an n-gram kept, to choose the longest match among
MATCH_CAP = 32  # how far back a match is followed
# A drafted token's source, by how many tokens before it agree with the earlier text (the
# match, then the drafted tokens before it): the largest of these it reaches.
MATCH_CLASSES = (2, 3, 4, 8, 16, 32)
EMA = 0.3  # weight of the newest measurement in the drafting-time averages
# Decode times are medians of the last few: on a shared machine one decode in ten can take
# twice as long, and the first batch of a new size builds llama.cpp's graph first.
RECENT = 15
# A source's acceptance before it has drafted, as (accepted, rejected) counts: hopeful
# enough that each source gets tried, and outweighed after a few drafts.
PRIOR = (3.0, 1.0)
# Lookup's, by how far its match agrees: the further, the surer (on the grounded tasks of
# benchmarks/llamacpp.py, tokens after 2 agreeing were right 17-53% of the time, after 32
# 98-100%). Without these a 256-token reply spent a third of itself learning what every
# copying reply shows.
PRIORS = {"lookup2": (1.5, 2.5), "lookup3": (2.4, 1.6), "lookup4": (3.0, 1.0), "lookup8": (3.4, 0.6),
          "lookup16": (3.6, 0.4), "lookup32": (3.8, 0.2)}
DECAY = 0.95  # older drafts count for less: a reply can move from quoting to free text
BETA = 0.5  # the cost of one more token in a verified batch, in single decodes, until measured
BETA_MAX = 1.5
SIZE_SEEN = 3  # a batch size's own cost is used once it has been measured this often
GAIN_MIN = 1.05  # draft only when it is expected to beat single decodes by this much
# A source the planner has stopped drafting from gets a one-token try after this many
# declined drafts: its figures may be stale (a reply that falls into repeating itself makes
# lookup right again). The wait doubles after each try that does not bring the source
# back, and is back to PROBE_FIRST once one does.
PROBE_FIRST = 8
PROBE_MAX = 256
PROBE_LEN = 1  # tokens drafted by such a try


# llama.cpp's rule for a draft model (common/speculative.cpp): the same vocab type and
# BOS/EOS, at most this many tokens more or fewer, and the same text for every token id
# from VOCAB_CHECK_FROM on that both have.
VOCAB_MAX_SIZE_DIFFERENCE = 128
VOCAB_CHECK_FROM = 5


def vocab_mismatch(target, draft) -> str | None:
    """Why `draft` cannot draft for `target` (two loaded models), or None when it can."""
    for what, attr in (("vocabulary type", "vocab_type"), ("add-BOS setting", "add_bos"),
                       ("add-EOS setting", "add_eos"), ("BOS token", "bos"), ("EOS token", "eos")):
        a, b = getattr(target, attr), getattr(draft, attr)
        if a != b:
            return f"its {what} differs ({b} against the model's {a})"
    n_t, n_d = target.n_vocab, draft.n_vocab
    if abs(n_t - n_d) > VOCAB_MAX_SIZE_DIFFERENCE:
        return f"it has {n_d} tokens against the model's {n_t}"
    t_tokens, d_tokens = _token_texts(target), _token_texts(draft)
    for i in range(VOCAB_CHECK_FROM, min(n_t, n_d)):
        if t_tokens[i] != d_tokens[i]:
            return f"token {i} differs"
    return None


def _token_texts(model) -> list[str]:
    """Every token's text: from the GGUF header already read, else from llama.cpp."""
    tokens = model.info.tokens if model.info is not None else None
    if tokens and len(tokens) == model.n_vocab:
        return tokens
    return [model.token_text(i) for i in range(model.n_vocab)]


# How many tokens to draft, given the source of each token a drafter could propose, in
# order ("lookup8", "model"...).
Budget = Callable[[list[str]], int]


def match_source(agree: int) -> str:
    """The source of a lookup token that `agree` tokens before it match."""
    reached = MATCH_CLASSES[0]
    for size in MATCH_CLASSES:
        if agree >= size:
            reached = size
    return f"lookup{reached}"


def family(source: str) -> str:
    """'lookup' or 'model': what the drafting time is measured for."""
    return source.rstrip("0123456789")


class Drafter(Protocol):
    sources: list[str]  # what made each token of the last draft, for the acceptance figures
    # What the last call would have drafted had the budget allowed, with each token's source,
    # when knowing costs nothing (prompt lookup): the planner still learns how often those
    # sources are right.
    declined: tuple[list[str], list[int]] | None

    def draft(self, context: list[int], last: int, n: int, budget: Budget | None = None) -> list[int]:
        """Up to `n` tokens that may follow `context` + [last], and no more than
        `budget(sources)` once the drafter knows where each would come from."""
        ...


class LookupDrafter:
    """Prompt lookup: the tokens that followed the earlier occurrence of what the context
    now ends with, found by its last NGRAM_MIN..NGRAM_MAX tokens and, among the recent
    occurrences of those, the one that agrees with the context furthest back.

    Free, and right whenever the reply quotes the conversation: summaries, code edits,
    corrections. How far back the match agrees says how sure the draft is: a reply 30
    tokens into copying a paragraph will almost surely copy the next token too, one whose
    last 2 tokens happen to occur earlier seldom does. So each drafted token's source is
    named by that agreement, counting the drafted tokens before it ("lookup2" ..
    "lookup32", see MATCH_CLASSES), and the planner learns each one's acceptance apart.
    The index of n-grams grows as the context does, so each draft costs a few dictionary
    look-ups and at most OCCURRENCES x MATCH_CAP token comparisons, never a scan."""

    def __init__(self) -> None:
        # n-gram -> where the continuations of its latest occurrences start, latest last
        self._index: dict[tuple[int, ...], list[int]] = {}
        self._indexed = 0  # positions of the context whose n-grams are in the index
        self._context: list[int] | None = None
        self.sources: list[str] = []  # the source of each token of the last draft
        self.declined: tuple[list[str], list[int]] | None = None

    def _update(self, context: list[int]) -> None:
        if context is not self._context or len(context) < self._indexed:
            self._index.clear()
            self._indexed, self._context = 0, context
        index = self._index
        end = len(context) - 1  # an n-gram ending here has no continuation in `context` yet
        for p in range(self._indexed, end):
            for size in range(NGRAM_MIN, NGRAM_MAX + 1):
                if p + 1 >= size:
                    key = tuple(context[p + 1 - size:p + 1])
                    at = index.get(key)
                    if at is None:
                        index[key] = [p + 1]
                    else:
                        at.append(p + 1)
                        if len(at) > OCCURRENCES:
                            del at[0]
        self._indexed = max(self._indexed, end)

    def match(self, context: list[int], last: int) -> tuple[int, int]:
        """(where the continuation starts in `context`, how many tokens before it agree
        with the end of `context` + [last]), or (-1, 0) when nothing matches."""
        self._update(context)
        n = len(context) + 1
        if n < NGRAM_MIN or (*context[n - NGRAM_MIN:], last) not in self._index:
            return -1, 0  # no match of the shortest size, so none of a longer one: the common case in free text
        for size in range(min(NGRAM_MAX, n), NGRAM_MIN - 1, -1):
            found = self._index.get((*context[n - size:], last))
            if found is None:
                continue
            best, best_len = -1, 0
            for at in reversed(found):  # the latest first: it wins a tie
                length = size  # context[at - size:at] is the n-gram itself
                while (length < MATCH_CAP and at - 1 - length >= 0
                       and context[at - 1 - length] == context[n - 2 - (length - 1)]):
                    length += 1
                if length > best_len:
                    best, best_len = at, length
            return best, best_len
        return -1, 0

    def draft(self, context: list[int], last: int, n: int, budget: Budget | None = None) -> list[int]:
        self.declined = None
        at, length = self.match(context, last)
        if at < 0:
            self.sources = []
            return []
        tokens = context[at:at + n]
        if len(tokens) < n:  # the match runs into the end: the text repeats itself, so the
            # draft goes on copying what it has just copied (context + [last] + the draft)
            tokens.append(last)
            copied = len(context) - at  # how far back the text repeats
            while len(tokens) < n:
                tokens.append(tokens[len(tokens) - copied - 1])
            del tokens[n:]
        self.sources = [match_source(length + i) for i in range(len(tokens))]
        k = len(tokens) if budget is None else min(len(tokens), budget(self.sources))
        if k <= 0:
            self.declined = (self.sources, tokens)
            return []
        del self.sources[k:]
        return tokens[:k]


class ModelDrafter:
    """A small model with the target's vocabulary proposes its greedy continuation.

    It keeps its own KV cache across tokens and turns: each draft first evaluates what the
    target kept since the last one (the prompt, at a turn's start), then decodes the draft
    one token at a time."""

    def __init__(self, model) -> None:
        from lcchat.config.schema import SamplingSettings

        self.model = model
        self.cached: list[int] = []
        self.sampler = model.make_sampler(SamplingSettings(temperature=0.0, seed=0))
        self.cancel = None  # the target loop's cancel event, while a turn runs
        self.sources: list[str] = []
        self.declined: tuple[list[str], list[int]] | None = None  # knowing what it would draft costs a draft

    def _sync(self, tokens: list[int]) -> bool:
        """Make the draft model's KV cache hold `tokens` with fresh logits for the last."""
        model, cached = self.model, self.cached
        n = min(len(cached), len(tokens) - 1)
        i = 0
        # The context only grows within a turn: compare from where it may differ.
        start = max(0, n - 64)
        if cached[:start] == tokens[:start]:
            i = start
        while i < n and cached[i] == tokens[i]:
            i += 1
        if i < len(cached):
            model.kv_truncate(i)
            del cached[i:]
        step = model.n_batch
        while len(cached) < len(tokens):
            if self.cancel is not None and self.cancel.is_set():
                return False
            chunk = tokens[len(cached):len(cached) + step]
            if model.decode(chunk, len(cached)) != 0:
                model.kv_truncate(len(cached))
                return False
            cached.extend(chunk)
        return True

    def prime(self, context: list[int]) -> None:
        """Read `context` (the prompt) into the draft model's KV cache."""
        if context:
            self._sync(context)

    def draft(self, context: list[int], last: int, n: int, budget: Budget | None = None) -> list[int]:
        model, cached = self.model, self.cached
        n = min(n, model.n_ctx - len(context) - 2)
        if budget is not None and n > 0:
            n = min(n, budget(["model"] * n))
        self.sources = []
        if n <= 0 or not self._sync([*context, last]):
            return []
        out: list[int] = []
        while True:
            token = self.sampler.sample()
            if model.is_eog(token):
                break
            out.append(token)
            if len(out) >= n or model.decode_one(token, len(cached)) != 0:
                break
            cached.append(token)
        self.sources = ["model"] * len(out)
        return out

    def reset(self) -> None:
        self.cached = []
        self.model.kv_truncate(0)

    def close(self) -> None:
        self.sampler.close()
        self.model.close()


class AutoDrafter:
    """Prompt lookup where the conversation offers a match, else the draft model if any."""

    def __init__(self, lookup: LookupDrafter, model: ModelDrafter | None) -> None:
        self.lookup, self.model = lookup, model
        self.sources: list[str] = []
        self.declined: tuple[list[str], list[int]] | None = None

    def draft(self, context: list[int], last: int, n: int, budget: Budget | None = None) -> list[int]:
        found = self.lookup.draft(context, last, n, budget)
        self.sources, self.declined = self.lookup.sources, self.lookup.declined
        if found or self.model is None:
            return found
        found = self.model.draft(context, last, n, budget)
        self.sources = self.model.sources
        return found


@dataclass
class Speculation:
    """The session's speculative settings and its draft model, kept across turns."""

    mode: str = "off"
    n_draft: int = 16
    draft_model: ModelDrafter | None = None
    adaptive: bool = True  # pause drafting when it does not pay (tests turn it off to draft always)

    def drafter(self) -> Drafter | None:
        if self.mode == "lookup":
            return LookupDrafter()
        if self.mode == "draft":
            return self.draft_model
        if self.mode == "auto":
            return AutoDrafter(LookupDrafter(), self.draft_model)
        return None

    def close(self) -> None:
        if self.draft_model is not None:
            self.draft_model.close()
            self.draft_model = None


class Planner:
    """How many tokens to draft, from what this turn has measured of each source (see the
    module doc). Times are in seconds; costs in single decodes."""

    def __init__(self, n_max: int) -> None:
        self.n_max = n_max
        self.odds: dict[str, list[float]] = {}  # source -> [accepted, rejected], decayed
        self._singles: deque[float] = deque(maxlen=RECENT)  # seconds of recent single decodes
        # each drafted token's share of a verified batch; BETA counts twice until outvoted,
        # as the first batches of each size also build llama.cpp's graph
        self._betas: deque[float] = deque([BETA, BETA], maxlen=RECENT)
        self._sizes: dict[int, deque[float]] = {}  # batch size -> its recent costs, in single decodes
        self.drafting: dict[str, float] = {}  # family -> its drafting time per token, in single decodes
        self.declined: dict[str, int] = {}  # first token's source -> drafts declined since its last try
        self.probe_after: dict[str, int] = {}  # first token's source -> declines before the next one-token try

    def acceptance(self, source: str) -> float:
        hit, miss = self.odds.get(source) or PRIORS.get(source, PRIOR)
        return hit / (hit + miss)

    def budget(self, sources: list[str]) -> int:
        """How many of the tokens whose sources are `sources` to draft: the length with the
        most tokens per unit of time, or 0 when none beats single decodes (now and then 1
        even so: a try that keeps the figures current)."""
        if not sources:
            return 0
        best = self._best(sources)
        first = sources[0]
        if best:
            self.declined[first] = 0
            return best
        declined = self.declined.get(first, 0) + 1
        if declined < self.probe_after.get(first, PROBE_FIRST):
            self.declined[first] = declined
            return 0
        self.declined[first] = 0
        return PROBE_LEN

    def _best(self, sources: list[str]) -> int:
        drafting = self.drafting.get(family(sources[0]), 0.0)
        best, best_gain = 0, GAIN_MIN
        expected, reach = 1.0, 1.0  # 1 + p1 + p1p2 + ..., and p1...pk: the chance all k are right
        for k, source in enumerate(sources[:self.n_max], start=1):
            reach *= self.acceptance(source)
            expected += reach
            gain = expected / (self.cost(1 + k) + drafting * k)
            if gain > best_gain:
                best, best_gain = k, gain
            elif reach < 0.01:
                break  # more drafted tokens only cost
        return best

    def single(self, seconds: float) -> None:
        self._singles.append(seconds)

    @property
    def single_s(self) -> float | None:
        return statistics.median(self._singles) if self._singles else None

    def cost(self, size: int) -> float:
        """What verifying a batch of `size` tokens costs, in single decodes: as measured for
        that size once it has been a few times (llama.cpp's CPU kernels make some sizes
        cost no more than the one below), else 1 + beta per token past the first."""
        seen = self._sizes.get(size)
        if seen is not None and len(seen) >= SIZE_SEEN:
            return statistics.median(seen)
        return 1.0 + self.beta * (size - 1)

    @property
    def beta(self) -> float:
        """What one more drafted token adds to a verified batch, in single decodes."""
        return statistics.median(self._betas)

    def observed(self, sources: list[str], accepted: int) -> None:
        """Of the tokens proposed from `sources` (verified, or declined and compared with
        what the reply went on to say), the first `accepted` were right: each of those is
        a hit for its source, and the one after them, if any, a miss for its own."""
        seen: dict[str, list[float]] = {}
        for i, source in enumerate(sources[:accepted + 1]):
            counts = seen.setdefault(source, [0.0, 0.0])
            counts[0 if i < accepted else 1] += 1.0
        for source, (hit, miss) in seen.items():  # older drafts count for less, once per draft
            was_hit, was_miss = self.odds.get(source) or PRIORS.get(source, PRIOR)
            self.odds[source] = [was_hit * DECAY + hit, was_miss * DECAY + miss]
        first = sources[0]
        wait = self.probe_after.get(first, PROBE_FIRST)
        self.probe_after[first] = PROBE_FIRST if self._best(sources) else min(PROBE_MAX, 2 * wait)

    def verified(self, sources: list[str], accepted: int, draft_s: float, verify_s: float) -> None:
        """A draft has been verified: `accepted` of its tokens (from `sources`) were right,
        and it took these times to make and to verify."""
        single = self.single_s
        drafted = len(sources)
        if single:
            self._betas.append(min(BETA_MAX, max(0.0, (verify_s / single - 1.0) / drafted)))
            self._sizes.setdefault(1 + drafted, deque(maxlen=RECENT)).append(verify_s / single)
            cost = draft_s / drafted / single
            kind = family(sources[0])
            was = self.drafting.get(kind)
            self.drafting[kind] = cost if was is None else was + EMA * (cost - was)
        self.observed(sources, accepted)


class Verifier:
    """Drafts, verifies and keeps the KV cache in step for one turn (see the module doc)."""

    def __init__(self, model, sampler, drafter: Drafter, cached: list[int], *, n_draft: int, limit: int,
                 adaptive: bool = True, clock: Callable[[], float] = time.perf_counter) -> None:
        self.model = model
        self.clock = clock  # what the planner's times are read from (benchmarks/replay.py gives its own)
        self.sampler = sampler
        self.drafter = drafter
        self.cached = cached  # the loop's list: what the KV cache holds for sure
        self.n_max = max(1, min(n_draft, model.n_batch - 1))
        self.left = limit  # tokens the reply may still have
        self.pending: list[int] = []  # drafted tokens in the KV cache after `cached`, not yet drawn
        self.idx = -1  # where sample() reads its logits
        self.drafted = self.accepted = self.decodes = 0
        self.adaptive = adaptive  # off: always draft as much as there is (tests, to land stops mid-draft)
        self.planner = Planner(self.n_max)
        self._batch: tuple[list[str], float, float] | None = None  # sources, draft_s, verify_s
        self._batch_accepted = 0
        self._shadow: tuple[list[str], list[int]] | None = None  # a declined draft, checked against the reply
        self._shadow_at = 0  # how much of it the reply has matched so far

    def sample(self) -> int:
        return self.sampler.sample(self.idx)

    def _budget(self, sources: list[str]) -> int:
        return self.planner.budget(sources) if self.adaptive else self.n_max

    def advance(self, token: int, n_past: int) -> int:
        """Put `token` at position n_past of the KV cache (the loop then appends it to
        `cached`); returns llama_decode's status like Model.decode_one."""
        self.left -= 1
        if self._shadow is not None:
            self._follow_shadow(token)
        pending = self.pending
        if pending:
            if token == pending[0]:  # the draft was right: already evaluated
                pending.pop(0)
                self.idx += 1
                self.accepted += 1
                self._batch_accepted += 1
                if not pending:
                    self._batch_done()
                return 0
            self.model.kv_truncate(n_past)  # the rest of the draft was wrong
            pending.clear()
            self._batch_done()
        model, clock = self.model, self.clock
        started = clock()
        room = min(self.n_max, self.left, model.n_ctx - 2 - n_past)
        draft = self.drafter.draft(self.cached, token, room, self._budget)[:room] if room > 0 else []
        if not draft and self._shadow is None and self.drafter.declined:
            self._shadow, self._shadow_at = self.drafter.declined, 0
        if draft:
            self.decodes += 1
            drafted_at = clock()
            status = model.decode_batch([token, *draft], n_past)
            if status == 0:
                self.pending = list(draft)
                self.idx = 0
                self.drafted += len(draft)
                self._batch = (self.drafter.sources[:len(draft)], drafted_at - started, clock() - drafted_at)
                self._batch_accepted = 0
                return 0
            model.kv_truncate(n_past)
            if status != 1:
                return status
            # no KV slot for the whole batch: the single token may still fit
        self.decodes += 1
        self.idx = -1
        began = clock()
        status = model.decode_one(token, n_past)
        self.planner.single(clock() - began)
        return status

    def _follow_shadow(self, token: int) -> None:
        sources, tokens = self._shadow
        if token == tokens[self._shadow_at]:
            self._shadow_at += 1
            if self._shadow_at < len(tokens):
                return
        self._shadow = None
        self.planner.observed(sources, self._shadow_at)

    def _batch_done(self) -> None:
        """A verified batch has given all it will: what it shows goes to the planner."""
        if self._batch is None:
            return
        sources, draft_s, verify_s = self._batch
        self._batch = None
        self.planner.verified(sources, self._batch_accepted, draft_s, verify_s)

    def finish(self) -> None:
        """Drop what is left of a draft from the KV cache: it holds `cached`, no more."""
        if self.pending:
            self.model.kv_truncate(len(self.cached))
            self.pending.clear()


def verifier(speculation: Speculation | None, model, sampler, cached: list[int], *, limit: int,
             cancel) -> Verifier | None:
    """The turn's Verifier, or None when speculation is off (the plain loop runs)."""
    if speculation is None:
        return None
    drafter = speculation.drafter()
    if drafter is None:
        return None
    if speculation.draft_model is not None and speculation.mode in ("draft", "auto"):
        # The draft model reads the prompt now, with the target's: its first draft then costs
        # only the draft, and the measure of what drafting saves is fair from the start.
        speculation.draft_model.cancel = cancel
        speculation.draft_model.prime(cached)
    return Verifier(model, sampler, drafter, cached, n_draft=speculation.n_draft, limit=limit,
                    adaptive=speculation.adaptive)
