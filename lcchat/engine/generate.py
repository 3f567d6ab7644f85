"""The token loop: prompt evaluation with prefix reuse, then sample/decode one token at a time.

Per-token work is constant: one llama_decode, one native sample, a cached piece lookup,
an incremental UTF-8 decoder and a stop-string check bounded by the longest stop string.
Nothing re-reads the reply so far, so a long reply costs no more per token than a short one.
"""

from __future__ import annotations

import codecs
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from lcchat.engine import speculative
from lcchat.engine.events import Done, Event, Notice, Progress, ReplyLimit, Stats, Thinking, Token
from lcchat.engine.protocol import TokenModel
from lcchat.engine.reasoning import Splitter

STATS_EVERY_S = 0.25  # how often live Stats are sent while streaming


class StopFilter:
    """Holds back text that might be the start of a stop string, so no stop string (nor
    any part of one) is ever emitted, even when it is split across tokens.

    `stops` end the reply. `hidden` (texts of special tokens that leaked as plain text)
    are removed from the output and reported once.
    """

    def __init__(self, stops: list[str], hidden: list[str] = ()):  # type: ignore[assignment]
        self.stops = [s for s in dict.fromkeys(stops) if s]
        self.hidden = [h for h in dict.fromkeys(hidden) if h and h not in self.stops]
        self._all = self.stops + self.hidden
        self._longest = max((len(s) for s in self._all), default=0)
        self._buf = ""
        self.stopped_by: str | None = None
        self.hid: list[str] = []
        self._started = False

    def feed(self, text: str) -> str:
        """Add reply text; returns what is now safe to show."""
        if self.stopped_by is not None:
            return ""
        buf = self._buf + text
        if not self._started:  # a reply starts at its first non-blank character
            buf = buf.lstrip()
            if not buf:
                self._buf = ""
                return ""
            self._started = True
        out = []
        while True:
            hit, index = self._first_match(buf)
            if hit is None:
                break
            out.append(buf[:index])
            if hit in self.stops:
                self.stopped_by = hit
                self._buf = ""
                return "".join(out)
            self.hid.append(hit)
            buf = buf[index + len(hit):]
        keep = self._partial_suffix(buf)
        out.append(buf[: len(buf) - keep])
        self._buf = buf[len(buf) - keep:]
        return "".join(out)

    def flush(self) -> str:
        """The reply ended: what was held back was not a stop string after all."""
        rest, self._buf = self._buf, ""
        return "" if self.stopped_by is not None else rest

    def _first_match(self, buf: str) -> tuple[str | None, int]:
        best, best_index = None, -1
        for s in self._all:
            i = buf.find(s)
            if i >= 0 and (best_index < 0 or i < best_index):
                best, best_index = s, i
        return best, best_index

    def _partial_suffix(self, buf: str) -> int:
        """Length of the longest end of `buf` that begins some stop/hidden string."""
        for n in range(min(len(buf), self._longest - 1), 0, -1):
            tail = buf[-n:]
            if any(s.startswith(tail) for s in self._all):
                return n
        return 0


class DecodeError(RuntimeError):
    """llama.cpp could not evaluate a batch (no room in the KV cache, or an internal error)."""


@dataclass
class Generation:
    """The outcome of one run of the loop, kept by the session."""

    parts: list[str] = field(default_factory=list)  # the reply so far, as streamed
    finish_reason: str = "stop"
    stats: Stats = field(default_factory=Stats)
    tokens: list[int] = field(default_factory=list)
    evaluated: list[bytes] = field(default_factory=list)  # pieces of the reply tokens now in the KV cache
    thinking: list[str] = field(default_factory=list)  # the reply's thinking, when it has some
    reasoning_tokens: int = 0  # of the tokens, those generated inside the thinking block
    unclosed: bool = False  # the reply ended while still thinking

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def reasoning(self) -> str:
        return "".join(self.thinking)


@dataclass
class Reasoning:
    """What the loop needs for a reasoning model's turn: the splitter, and the thinking
    budget (-1: none) with the tokens that close the block when it is spent, as llama.cpp's
    reasoning budget does, so the model must go on with an answer (reasoning.closing: the
    second list for thinking that already ends with a newline)."""

    splitter: Splitter
    budget: int = -1
    close_tokens: list[int] = field(default_factory=list)
    close_after_newline: list[int] = field(default_factory=list)


class TokenLoop:
    """Evaluates prompts on one model, remembering what the KV cache holds so a follow-up
    prompt that starts the same way evaluates only what is new."""

    def __init__(self, model: TokenModel):
        self.model = model
        self.cached: list[int] = []  # token ids whose K/V are in the cache, in order
        self.cancel_event = threading.Event()
        self.speculation: speculative.Speculation | None = None  # the session's [speculative] settings

    def reset(self) -> None:
        self.cached = []
        self.model.kv_truncate(0)

    def cancel(self) -> None:
        """Stop the current prompt evaluation or generation (any thread)."""
        self.cancel_event.set()
        self.model.abort_requested = True

    def reusable(self, tokens: list[int], *, fresh_logits: bool = False) -> int:
        """How many of `tokens` the KV cache already holds (as a prefix)."""
        common = common_prefix(self.cached, tokens)
        if fresh_logits and common == len(tokens):  # the last token must be evaluated for its logits
            common -= 1
        return max(common, 0)

    def feed(self, tokens: list[int], what: str, *, fresh_logits: bool = False,
             stop: threading.Event | None = None) -> Iterator[Progress]:
        """Make the KV cache hold `tokens`: keep the prefix it already holds, evaluate the
        rest in batches with llama.cpp's abort callback on, yielding Progress(what, done,
        total) after each batch. cancel() (or `stop`) ends it early, leaving a valid
        prefix cached. Raises DecodeError when llama.cpp cannot evaluate a batch."""
        model = self.model
        common = self.reusable(tokens, fresh_logits=fresh_logits)
        if common < len(self.cached):
            model.kv_truncate(common)
            del self.cached[common:]
        todo = tokens[common:]
        if not todo:
            return
        cancel = self.cancel_event
        step = model.n_batch
        model.set_abortable(True)
        try:
            for i in range(0, len(todo), step):
                if cancel.is_set() or (stop is not None and stop.is_set()):
                    return
                chunk = todo[i:i + step]
                n_past = len(self.cached)
                status = model.decode(chunk, n_past)
                if status != 0:
                    model.kv_truncate(n_past)
                    if status == 2 or cancel.is_set():
                        return
                    raise DecodeError(f"llama_decode failed with status {status} while reading the {what}")
                self.cached.extend(chunk)
                yield Progress(what, i + len(chunk), len(todo))
        finally:
            model.set_abortable(False)

    def run(self, prompt: list[int], sampling, stop: StopFilter, result: Generation,
            reasoning: Reasoning | None = None) -> Iterator[Event]:
        model = self.model
        self.cancel_event.clear()
        model.abort_requested = False
        cancel = self.cancel_event
        n_ctx = model.n_ctx
        started = time.perf_counter()

        # ---- prompt: reuse the cached prefix, evaluate the rest in batches
        n_eval = len(prompt) - self.reusable(prompt, fresh_logits=True)
        for progress in self.feed(prompt, "prompt", fresh_logits=True):
            if n_eval > model.n_batch:
                yield progress
        prompt_done = time.perf_counter()
        prompt_s = prompt_done - started
        base = Stats(
            prompt_tokens=len(prompt), prompt_eval_tokens=n_eval,
            prompt_tokens_per_s=(n_eval / prompt_s) if prompt_s > 0 and n_eval else 0.0,
            context_used=len(self.cached), context_size=n_ctx,
        )
        if cancel.is_set():
            result.finish_reason = "interrupted"
            result.stats = base
            yield base
            yield Done("interrupted", "")
            return

        # ---- generation
        sampler = model.make_sampler(sampling)
        if sampling.repeat_penalty != 1.0 or sampling.presence_penalty or sampling.frequency_penalty:
            window = n_ctx if sampling.repeat_last_n < 0 else sampling.repeat_last_n
            sampler.accept_history(self.cached[-window:] if window else [])
        limit = sampling.max_tokens if sampling.max_tokens >= 0 else n_ctx
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        piece, is_eog, decode_one, sample = model.piece, model.is_eog, model.decode_one, sampler.sample
        verifier = speculative.verifier(self.speculation, model, sampler, self.cached, limit=limit, cancel=cancel)
        if verifier is not None:  # drafted tokens are verified in batches (engine/speculative.py)
            decode_one, sample = verifier.advance, verifier.sample
        cached = self.cached
        parts = result.parts
        generated: list[int] = []
        emit = _emitter(parts, result, reasoning)
        forced: list[int] = []  # tokens lcchat puts in the reply itself (the budget's closing text)
        if reasoning is not None and reasoning.budget == 0 and reasoning.splitter.inside:
            # a budget of 0 and a block the template opened: closed before any thinking, as
            # llama.cpp's budget 0 does (the check below comes after a thinking token)
            forced, reasoning.budget = list(reasoning.close_tokens), -1
        first_at = last_at = 0.0
        next_stats = prompt_done + STATS_EVERY_S
        finish = "stop"
        ends_context = False
        try:
            while True:
                if cancel.is_set():
                    finish = "interrupted"
                    break
                if forced:
                    token = forced.pop(0)
                    sampler.accept(token)
                else:
                    token = sample()
                now = time.perf_counter()
                if not generated:
                    first_at = now
                last_at = now
                if is_eog(token):
                    break
                generated.append(token)
                text = stop.feed(decoder.decode(piece(token)))
                if reasoning is None:
                    if text:
                        parts.append(text)
                        yield Token(text)
                else:
                    was_inside, thought = reasoning.splitter.inside, len(result.thinking)
                    yield from emit(text)
                    if was_inside or reasoning.splitter.inside or len(result.thinking) > thought:
                        result.reasoning_tokens += 1
                        if (reasoning.splitter.inside and not forced and reasoning.budget >= 0
                                and result.reasoning_tokens >= reasoning.budget):
                            after_newline = piece(token).endswith(b"\n")
                            forced = list(reasoning.close_after_newline if after_newline else reasoning.close_tokens)
                            reasoning.budget = -1  # once: what follows is the answer
                if stop.stopped_by is not None:
                    break
                if len(cached) + 1 >= n_ctx:
                    finish, ends_context = "length", True
                    break
                status = decode_one(token, len(cached))
                if status != 0:
                    model.kv_truncate(len(cached))
                    if status == 2 or cancel.is_set():
                        finish = "interrupted"
                        break
                    finish, ends_context = "length", True  # no KV slot left
                    break
                cached.append(token)
                result.evaluated.append(piece(token))
                if len(generated) >= limit:  # after evaluating it: the cache holds the reply as shown
                    finish = "length"
                    break
                if now >= next_stats:
                    next_stats = now + STATS_EVERY_S
                    yield _stats(base, generated, started, first_at, last_at, len(cached), result.reasoning_tokens,
                                 verifier)
        finally:
            if verifier is not None:
                verifier.finish()
            sampler.close()
        tail = stop.feed(decoder.decode(b"", final=True)) + stop.flush()
        if reasoning is None:
            if tail:
                parts.append(tail)
                yield Token(tail)
        else:
            yield from emit(tail, final=True)
            result.unclosed = reasoning.splitter.unclosed
        if ends_context:
            yield Notice(f"the reply reached the end of the context window ({n_ctx} tokens)", "warning")
        elif finish == "length":
            yield Notice(str(ReplyLimit(limit)), fact=ReplyLimit(limit))
        if stop.hid:
            yield Notice(f"hid special-token text the model wrote as plain text: {', '.join(dict.fromkeys(stop.hid))}", "warning")
        result.finish_reason = finish
        result.tokens = generated
        result.stats = _stats(base, generated, started, first_at, last_at, len(cached), result.reasoning_tokens,
                              verifier, final=True)
        yield result.stats
        yield Done(finish, result.text, result.reasoning)  # type: ignore[arg-type]


def _emitter(parts: list[str], result: Generation, reasoning: Reasoning | None):
    """Turns text the StopFilter let through into Thinking and Token events, keeping each
    kind in the result."""

    def emit(text: str, final: bool = False) -> Iterator[Event]:
        assert reasoning is not None
        pieces = reasoning.splitter.feed(text) if text else []
        if final:
            pieces += reasoning.splitter.flush()
        for thinking, piece in pieces:
            if thinking:
                result.thinking.append(piece)
                yield Thinking(piece)
            else:
                parts.append(piece)
                yield Token(piece)

    return emit


def _stats(base: Stats, generated: list[int], started: float, first_at: float, last_at: float,
           used: int, reasoning_tokens: int = 0, verifier: speculative.Verifier | None = None,
           final: bool = False) -> Stats:
    n = len(generated)
    span = last_at - first_at
    spec = {} if verifier is None else {"drafted": verifier.drafted, "accepted": verifier.accepted,
                                        "decodes": verifier.decodes}
    return Stats(**spec,
        prompt_tokens=base.prompt_tokens, prompt_eval_tokens=base.prompt_eval_tokens,
        prompt_tokens_per_s=base.prompt_tokens_per_s, completion_tokens=n,
        tokens_per_s=(n / span) if span > 0 and n > 0 else 0.0,
        ttft_s=(first_at - started) if first_at else 0.0,
        context_used=used, context_size=base.context_size, final=final, reasoning_tokens=reasoning_tokens,
    )


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common start of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
