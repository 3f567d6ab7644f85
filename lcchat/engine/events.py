"""What the engine tells a front-end while it works.

ChatSession.send() yields these. They are plain data: a front-end renders them, the
store records them, and tests compare them. Nothing here knows about terminals.

Messages state facts; they never say which command or flag to use, because that depends
on the front-end (`/set max_tokens N` in a chat, `-n N` in pipe mode). Where there is
something to do about it, the event carries a `fact` (ContextFull, ReplyLimit) with the
numbers, and each front-end adds the advice that fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from lcchat.errors import EXIT_FAILURE

FinishReason = Literal["stop", "length", "interrupted", "error"]


@dataclass(frozen=True)
class ContextFull:
    """The prompt does not fit the context window. `alone`: the last message with the
    system prompt is too long by itself; else the conversation is, and the overflow policy
    ('error') forbids dropping old turns."""

    needed: int  # tokens the prompt needs
    n_ctx: int  # tokens the context holds
    reserve: int  # tokens kept for the reply
    alone: bool

    def __str__(self) -> str:
        if self.alone:
            return f"the message is {self.needed} tokens with the system prompt, but the context holds {self.n_ctx}"
        return (f"the conversation needs {self.needed} tokens plus {self.reserve} for the reply, but the context "
                f"holds {self.n_ctx} and the overflow policy is 'error'")


@dataclass(frozen=True)
class ReplyLimit:
    """The reply stopped at max_tokens."""

    max_tokens: int

    def __str__(self) -> str:
        return f"the reply reached max_tokens ({self.max_tokens})"


Fact = Union[ContextFull, ReplyLimit]


@dataclass(frozen=True)
class Token:
    """A piece of reply text, whole UTF-8 characters, never part of a stop string."""

    text: str


@dataclass(frozen=True)
class Thinking:
    """A piece of the reply's thinking (a reasoning model's `<think>` block, markers
    removed): shown apart from the answer, never part of it (engine/reasoning.py)."""

    text: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know, e.g. that old turns were dropped."""

    text: str
    level: Literal["info", "warning"] = "info"
    fact: Fact | None = None  # what happened, for a front-end to add its advice to


# The word before a notice of each level, in every front-end: one message reads the same
# in the REPL as in the TUI.
LEVEL_PREFIX = {"warning": "warning: ", "error": "error: "}


@dataclass(frozen=True)
class Progress:
    """Progress of a long step: prompt evaluation, model load, quantization."""

    what: str
    done: int
    total: int


@dataclass(frozen=True)
class Stats:
    """Figures for the reply so far; the last one of a reply is final."""

    prompt_tokens: int = 0  # tokens in the prompt
    prompt_eval_tokens: int = 0  # of those, tokens actually evaluated (the rest came from the KV cache)
    prompt_tokens_per_s: float = 0.0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    ttft_s: float = 0.0
    context_used: int = 0
    context_size: int = 0
    # Speculative decoding (engine/speculative.py); decodes stays 0 when it is off.
    drafted: int = 0  # tokens drafted and verified
    accepted: int = 0  # of those, tokens the sampler drew as drafted
    decodes: int = 0  # llama_decode calls while generating
    final: bool = False
    reasoning_tokens: int = 0  # of completion_tokens, those spent thinking
    # Where the figures come from when that is not this process's token loop: a remote
    # server's own figures, or lcchat's measurement of its stream (engine/remote.py).
    note: str = ""

    def as_json(self) -> dict:
        out = {
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_per_s": round(self.prompt_tokens_per_s, 2),
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "ttft_s": round(self.ttft_s, 4),
            "context_used": self.context_used,
            "context_size": self.context_size,
            "reasoning_tokens": self.reasoning_tokens,
        }
        if self.decodes:
            out.update(drafted=self.drafted, accepted=self.accepted, decodes=self.decodes,
                       tokens_per_decode=round(self.tokens_per_decode, 3))
        if self.note:
            out["note"] = self.note
        return out

    @property
    def tokens_per_decode(self) -> float:
        """Reply tokens per llama_decode: above 1 when speculation pays."""
        return self.completion_tokens / self.decodes if self.decodes else 0.0

    @property
    def spec_text(self) -> str:
        """Speculation's figures as the front-ends show them; empty when it is off."""
        if not self.decodes:
            return ""
        return f"draft {self.accepted}/{self.drafted} · {self.tokens_per_decode:.2f} t/decode"

    @property
    def prompt_cached(self) -> bool:
        """The whole prompt came from the KV cache (a /retry, say): llama.cpp evaluated
        at most the last token again, so a prompt rate would mean nothing."""
        return self.prompt_tokens > 1 and self.prompt_eval_tokens <= 1

    @property
    def prompt_rate_text(self) -> str:
        """The prompt's speed as both front-ends show it: "cached" after a full cache hit."""
        return "cached" if self.prompt_cached else f"{self.prompt_tokens_per_s:.1f} t/s"

    @property
    def thinking_text(self) -> str:
        """" (412 thinking)": a reasoning model's thinking tokens, counted apart; else empty."""
        return f" ({self.reasoning_tokens} thinking)" if self.reasoning_tokens else ""

    def summary(self) -> str:
        """The one-line figures shown after a reply."""
        pct = 100.0 * self.context_used / self.context_size if self.context_size else 0.0
        spec = f" · {self.spec_text}" if self.decodes else ""
        return (
            f"prompt {self.prompt_rate_text} · gen {self.tokens_per_s:.1f} t/s · "
            f"{self.completion_tokens} tokens{self.thinking_text}{spec} · ctx {self.context_used}/{self.context_size} ({pct:.0f}%)"
            + (f" · {self.note}" if self.note else "")
        )


@dataclass(frozen=True)
class Done:
    """The reply ended. `text` is the answer as it will be kept in the history; `reasoning`
    the thinking before it, kept apart (empty for a model that does not reason)."""

    finish_reason: FinishReason
    text: str = ""
    reasoning: str = ""


@dataclass(frozen=True)
class Error:
    """The turn failed; the session is still usable. `code` is the exit status a
    one-shot run should end with: 2 for bad input, 1 for a failure."""

    message: str
    code: int = EXIT_FAILURE
    fact: Fact | None = None  # what happened, for a front-end to add its advice to


Event = Union[Token, Thinking, Notice, Progress, Stats, Done, Error]
