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

The draft length adapts: it grows while whole drafts are accepted and shrinks to what was
accepted otherwise. Whether drafting pays is measured within the turn: the decode time per
token of verified batches (the drafting included) against that of single decodes. When
drafting costs more, it pauses for a number of tokens that doubles each time, so free text
loses at most a few batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from lcchat.config.schema import SPEC_MODES as MODES  # noqa: F401 - the modes, named once

NGRAM_MAX = 4  # the longest n-gram prompt lookup matches
NGRAM_MIN = 2  # ... and the shortest: a single token predicts too little
PAUSE_FIRST = 16  # tokens without drafting after drafting first cost more than it gave
PAUSE_MAX = 1024
EMA = 0.3  # weight of the newest measurement in the running averages


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


class Drafter(Protocol):
    def draft(self, context: list[int], last: int, n: int) -> list[int]:
        """Up to `n` tokens that may follow `context` + [last]."""
        ...


class LookupDrafter:
    """Prompt lookup: the tokens that followed the most recent earlier occurrence of the
    longest n-gram (NGRAM_MAX down to NGRAM_MIN tokens) the context now ends with.

    Free, and right whenever the reply quotes the conversation: summaries, code edits,
    corrections. The index of n-grams grows as the context does, so each draft costs a
    few dictionary look-ups, never a scan of the context."""

    def __init__(self) -> None:
        self._index: dict[tuple[int, ...], int] = {}  # n-gram -> where its continuation starts
        self._indexed = 0  # positions of the context whose n-grams are in the index
        self._context: list[int] | None = None

    def draft(self, context: list[int], last: int, n: int) -> list[int]:
        if context is not self._context or len(context) < self._indexed:
            self._index.clear()
            self._indexed, self._context = 0, context
        index = self._index
        end = len(context) - 1  # an n-gram ending here has no continuation in `context` yet
        for p in range(self._indexed, end):
            for size in range(NGRAM_MIN, NGRAM_MAX + 1):
                if p + 1 >= size:
                    index[tuple(context[p + 1 - size:p + 1])] = p + 1
        self._indexed = max(self._indexed, end)
        if len(context) + 1 < NGRAM_MIN or (*context[len(context) + 1 - NGRAM_MIN:], last) not in index:
            return []  # no match of the shortest size, so none of a longer one: the common case in free text
        for size in range(NGRAM_MAX, NGRAM_MIN - 1, -1):
            if len(context) + 1 < size:
                continue
            at = index.get((*context[len(context) + 1 - size:], last))
            if at is not None:
                return context[at:at + n]
        return []


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

    def draft(self, context: list[int], last: int, n: int) -> list[int]:
        model, cached = self.model, self.cached
        n = min(n, model.n_ctx - len(context) - 2)
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

    def draft(self, context: list[int], last: int, n: int) -> list[int]:
        found = self.lookup.draft(context, last, n)
        if found or self.model is None:
            return found
        return self.model.draft(context, last, n)


@dataclass
class Speculation:
    """The session's speculative settings and its draft model, kept across turns."""

    mode: str = "off"
    n_draft: int = 8
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


class Verifier:
    """Drafts, verifies and keeps the KV cache in step for one turn (see the module doc)."""

    def __init__(self, model, sampler, drafter: Drafter, cached: list[int], *, n_draft: int, limit: int,
                 adaptive: bool = True) -> None:
        self.model = model
        self.sampler = sampler
        self.drafter = drafter
        self.cached = cached  # the loop's list: what the KV cache holds for sure
        self.n_max = max(1, min(n_draft, model.n_batch - 1))
        self.n = min(4, self.n_max)  # the current draft length
        self.left = limit  # tokens the reply may still have
        self.pending: list[int] = []  # drafted tokens in the KV cache after `cached`, not yet drawn
        self.idx = -1  # where sample() reads its logits
        self.drafted = self.accepted = self.decodes = 0
        # Decode time per emitted token, of single decodes and of verified batches.
        self.single_s: float | None = None
        self.spec_s: float | None = None
        self._batch_cost = 0.0
        self._batch_drafted = 0
        self._batch_accepted = 0
        self.adaptive = adaptive
        self.pause = 0  # tokens to go before drafting again
        self.next_pause = PAUSE_FIRST

    def sample(self) -> int:
        return self.sampler.sample(self.idx)

    def advance(self, token: int, n_past: int) -> int:
        """Put `token` at position n_past of the KV cache (the loop then appends it to
        `cached`); returns llama_decode's status like Model.decode_one."""
        self.left -= 1
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
        model = self.model
        started = time.perf_counter()
        room = min(self.n, self.left, model.n_ctx - 2 - n_past)
        draft: list[int] = []
        if room > 0:
            if self.pause > 0:
                self.pause -= 1
            else:
                draft = self.drafter.draft(self.cached, token, room)[:room]
        if draft:
            self.decodes += 1
            status = model.decode_batch([token, *draft], n_past)
            if status == 0:
                self.pending = list(draft)
                self.idx = 0
                self.drafted += len(draft)
                self._batch_cost = time.perf_counter() - started  # drafting and verifying
                self._batch_drafted, self._batch_accepted = len(draft), 0
                return 0
            model.kv_truncate(n_past)
            if status != 1:
                return status
            # no KV slot for the whole batch: the single token may still fit
        self.decodes += 1
        self.idx = -1
        status = model.decode_one(token, n_past)
        elapsed = time.perf_counter() - started
        self.single_s = elapsed if self.single_s is None else self.single_s + EMA * (elapsed - self.single_s)
        return status

    def _batch_done(self) -> None:
        """A verified batch has given all it will: adapt the draft length, and measure
        whether drafting pays."""
        drafted, accepted = self._batch_drafted, self._batch_accepted
        if not drafted:
            return
        self._batch_drafted = 0
        per_token = self._batch_cost / (accepted + 1)  # the batch gave its accepted tokens and the next
        self.spec_s = per_token if self.spec_s is None else self.spec_s + EMA * (per_token - self.spec_s)
        if accepted == drafted:
            self.n = min(self.n_max, self.n + 2)
        else:
            self.n = max(1, accepted + 1)
        if self.adaptive and self.single_s is not None and self.spec_s > self.single_s:
            self.pause = self.next_pause
            self.next_pause = min(PAUSE_MAX, self.next_pause * 2)
            self.spec_s = None  # judge the next try on its own figures
        elif accepted:
            self.next_pause = PAUSE_FIRST

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
