"""What a model is to the rest of lcchat: the one declaration of the interface.

`ChatSession`, the token loop (engine/generate.py), the store (a KV state saved and
restored by fingerprint) and the doctor use a model only through these protocols, so a
new backend implements them and touches nothing else. `engine.model.Model` (llama.cpp)
and `engine.fake.FakeModel` (scripted, for tests) implement `TokenModel` in full;
tests/engine/test_protocol.py checks both, member by member and signature by signature.

- `Vocab`: text <-> tokens and what the vocabulary says about its special tokens. The
  session needs it to build prompts (BOS, guard.py's special texts) and derive stop
  strings (engine/stops.py); the doctor derives stops from a GGUF's vocab without
  loading it, so `stops.derive` takes only the few members it reads (`StopVocab`).
- `Sampler`: the next token from the last logits (llama.cpp's native chain).
- `TokenModel(Vocab)`: a context to evaluate tokens in (decode, KV cache truncation,
  abort), samplers, the KV state (save/load and the fingerprint of what it depends on),
  and the facts a front-end shows (`describe`).

A backend that does not hand out tokens (an OpenAI-compatible server: text in, text
out) cannot implement `TokenModel`: the token loop, prefix reuse and KV states are
llama.cpp's. Such a backend stands where `TokenLoop` stands: it implements what the
session asks of a reply (the events of engine/events.py for a prompt), plus `n_ctx`,
`describe`, `is_loaded`, `close`, and a `Vocab` whose `tokenize` may be an estimate
(the overflow policy counts tokens) and whose special-token lists may be empty;
`state_fingerprint()` returns None, so the store keeps no KV state for it. `ServedModel`
declares that (engine/remote.py's RemoteModel implements it) and `ServedReplies` its
reply source; code that must treat such a model apart checks `isinstance` against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing this module costs nothing
    from lcchat.config.schema import SamplingSettings
    from lcchat.engine.gguf_info import GGUFInfo


@runtime_checkable
class StopVocab(Protocol):
    """The part of a vocabulary stop strings are derived from (engine/stops.py)."""

    bos_text: str  # the BOS token's text ("" without one): never a stop, though it is a control token

    def control_texts(self) -> list[str]:
        """Texts of the control tokens (<|im_end|>, </s> ...), those of 3 characters or more."""
        ...

    def eog_texts(self) -> list[str]:
        """Texts of the end-of-generation tokens (EOS, EOT), without repeats."""
        ...


@runtime_checkable
class Vocab(StopVocab, Protocol):
    """Text to tokens and back, and the vocabulary's special tokens."""

    n_vocab: int
    bos: int  # the BOS token id, -1 without one
    eos_text: str  # the EOS token's text, for a chat template's {{ eos_token }}
    add_bos: bool  # whether the vocabulary asks for BOS in front of a prompt

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        """Tokens of `text`; with special=False special-token texts stay plain text."""
        ...

    def piece(self, token: int) -> bytes:
        """The bytes one token writes (special tokens as their text); O(1) per token."""
        ...

    def token_text(self, token: int) -> str:
        """The token's text as the vocabulary stores it."""
        ...

    def token_attr(self, token: int) -> int:
        """llama.cpp's llama_token_attr bits for the token (see SPECIAL_ATTRS)."""
        ...

    def is_eog(self, token: int) -> bool:
        """True for a token that ends generation (EOS, EOT ...)."""
        ...


# llama_token_attr bits (llama.h) that mark a token as special: UNKNOWN | CONTROL.
ATTR_UNKNOWN = 1 << 0
ATTR_CONTROL = 1 << 3
SPECIAL_ATTRS = ATTR_UNKNOWN | ATTR_CONTROL


@runtime_checkable
class Sampler(Protocol):
    """Chooses tokens from a model's last logits; make_sampler() builds one per reply."""

    def accept_history(self, tokens: list[int]) -> None:
        """Feed the tokens already in context to the penalty samplers."""
        ...

    def accept(self, token: int) -> None:
        """Take a token lcchat chose itself (a reasoning budget's closing marker) as if sampled."""
        ...

    def sample(self, idx: int = -1) -> int:
        """Sample (and accept) the next token from the logits of batch position `idx`
        (-1: the last one evaluated; a speculative draft's verification reads each)."""
        ...

    def close(self) -> None:
        ...


@runtime_checkable
class TokenModel(Vocab, Protocol):
    """A loaded model with one context: what the session and the token loop drive."""

    n_ctx: int  # the context's size in tokens
    n_batch: int  # most tokens one decode() takes
    abort_requested: bool  # set from any thread: a running decode() returns 2 soon
    path: Path  # the model file (for people, /quant, the store's record of the turn)
    info: GGUFInfo | None  # the file's checked header; None for a model without one

    def decode(self, tokens: list[int], n_past: int, *, logits_last: bool = True) -> int:
        """Evaluate `tokens` at positions n_past..; 0 ok, 1 no KV slot, 2 aborted, <0 error."""
        ...

    def decode_one(self, token: int, n_past: int) -> int:
        """Evaluate one generated token at position n_past (the hot path); status as decode()."""
        ...

    def decode_batch(self, tokens: list[int], n_past: int) -> int:
        """Evaluate `tokens` at positions n_past.. with logits for every one of them, so
        Sampler.sample(i) can read each (engine/speculative.py verifies drafts so)."""
        ...

    def kv_truncate(self, n_keep: int) -> None:
        """Forget every cached position from `n_keep` on."""
        ...

    def set_abortable(self, on: bool) -> None:
        """Whether a decode() polls abort_requested (on while a prompt is read)."""
        ...

    def make_sampler(self, sampling: SamplingSettings) -> Sampler:
        ...

    def save_state(self) -> bytes | memoryview:
        """The context's state (the KV cache and what goes with it), bytes-like."""
        ...

    def load_state(self, data: bytes | bytearray | memoryview) -> bool:
        """Put back a state save_state() wrote under the same fingerprint; False if refused."""
        ...

    def state_fingerprint(self) -> str | None:
        """A hash of everything a saved state depends on (file, context settings, engine
        version); None when this model's states cannot be saved or compared."""
        ...

    def is_loaded(self) -> bool:
        """False once close() has freed the model."""
        ...

    def describe(self) -> dict[str, object]:
        """Facts for people: file, path, architecture, quant, parameters, size_bytes,
        train_ctx, n_ctx, threads, gpu_layers, rope, cache_type, load_s."""
        ...

    def close(self) -> None:
        """Free the model and its context; safe to call twice."""
        ...


@runtime_checkable
class ServedReplies(Protocol):
    """Where a served model's replies come from (engine/remote.py's RemoteReplies): it stands
    where the TokenLoop does, but takes the prompt's text and the window's messages."""

    cached: list[int]  # the tokens the conversation fills, for the context figure
    chat_settings: object  # the profile's [chat] (which endpoint, thinking), set by the session
    profile_stops: list[str]

    def reset(self) -> None:
        ...

    def cancel(self) -> None:
        ...

    def feed(self, tokens: list[int], what: str, *, fresh_logits: bool = False, stop=None) -> Iterator:
        ...

    def stream(self, prompt, messages: list[dict], sampling, stop, result, reasoning=None,
               thinking: bool | None = None) -> Iterator:
        """The events of one reply (engine/events.py), streamed from the server, its thinking
        sorted out by `reasoning` (engine/generate.Reasoning) as the token loop does."""
        ...


@runtime_checkable
class ServedModel(Vocab, Protocol):
    """A model on a server (engine/remote.py's RemoteModel), standing where a TokenModel
    does: the session checks for this protocol (isinstance) to take its replies from
    reply_source() instead of a TokenLoop, and front-ends to show the server."""

    server: str  # the server's URL
    n_ctx: int
    n_batch: int
    abort_requested: bool
    path: str  # the served model's name (what the store records as the model)
    info: None  # no GGUF header on this side of the wire
    counts_estimated: bool  # token counts are an estimate (the server has no tokenize endpoint)

    def reply_source(self) -> ServedReplies:
        ...

    def prompt_note(self) -> str:
        """What --show-prompt's text is (whose template renders it, whose tokens count it)."""
        ...

    def report(self) -> list[str]:
        """What the server reports about itself, for /quant."""
        ...

    def kv_truncate(self, n_keep: int) -> None:
        ...

    def state_fingerprint(self) -> None:
        """None: the store keeps no KV state for a served model."""
        ...

    def load_state(self, data) -> bool:
        ...

    def is_loaded(self) -> bool:
        ...

    def describe(self) -> dict[str, object]:
        ...

    def close(self) -> None:
        ...


def server_of(model: TokenModel | ServedModel) -> str:
    """The URL of the server a model runs on; "" for a model in this process."""
    return model.server if isinstance(model, ServedModel) else ""
