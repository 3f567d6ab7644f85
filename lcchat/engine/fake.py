"""A scripted stand-in for engine.model.Model, for front-end tests and UI benchmarks.

It implements engine.protocol.TokenModel as Model does, so a front-end test drives the
real session, stop filter and stats code with replies it chose:

    model = FakeModel(replies=[["Hello", ", world"]], delay=0.01)
    session = fake_session(model)
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from lcchat.config.schema import Profile, SamplingSettings
from lcchat.engine import templates
from lcchat.engine.gguf_info import GGUFInfo
from lcchat.engine.protocol import ATTR_CONTROL

EOG = 0


@dataclass
class _FakeLoad:
    seconds: float = 0.01


@dataclass
class FakeModel:
    replies: list = field(default_factory=list)  # each reply: a list of token texts
    delay: float = 0.0  # seconds per generated token
    prompt_delay: float = 0.0  # seconds per prompt batch
    n_ctx: int = 2048
    n_batch: int = 512
    default_reply: tuple = ("OK",)

    def __post_init__(self) -> None:
        self.abort_requested = False
        self.add_bos = False
        self.bos = -1
        self.bos_text = ""
        self.eos_text = "<|im_end|>"
        self.n_vocab = 1 << 16
        self.path = Path("fake.gguf")
        self.info: GGUFInfo | None = None
        self.load = _FakeLoad()
        self._loaded = True
        self.decoded: list[int] = []  # every token evaluated, for tests
        self.decode_calls = 0
        self._queue: deque = deque(list(r) for r in self.replies)
        self._ids: dict[str, int] = {"<|im_end|>": EOG}
        self._texts: dict[int, str] = {EOG: "<|im_end|>"}
        self.cache_len = 0

    def queue(self, *replies: list[str]) -> None:
        """Add replies; each is the list of token texts the model will 'generate'."""
        self._queue.extend(list(r) for r in replies)

    def _id(self, text: str) -> int:
        if text not in self._ids:
            self._ids[text] = len(self._ids) + 1000
            self._texts[self._ids[text]] = text
        return self._ids[text]

    # --- the Model surface
    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        return [self._id(ch) for ch in text]

    def piece(self, token: int) -> bytes:
        return self._texts.get(token, "").encode("utf-8")

    def token_text(self, token: int) -> str:
        return self._texts.get(token, "")

    def token_attr(self, token: int) -> int:
        return ATTR_CONTROL if token == EOG else 0

    def is_eog(self, token: int) -> bool:
        return token == EOG

    def control_texts(self) -> list[str]:
        return ["<|im_start|>", "<|im_end|>"]

    def eog_texts(self) -> list[str]:
        return ["<|im_end|>"]

    def decode(self, tokens: list[int], n_past: int, *, logits_last: bool = True) -> int:
        self.decode_calls += 1
        if self.abort_requested:
            return 2
        if len(tokens) > 1 and self.prompt_delay:
            time.sleep(self.prompt_delay)
        self.decoded.extend(tokens)
        self.cache_len = n_past + len(tokens)
        return 0

    def decode_one(self, token: int, n_past: int) -> int:
        return self.decode([token], n_past)

    def decode_batch(self, tokens: list[int], n_past: int) -> int:
        return self.decode(tokens, n_past)

    def kv_truncate(self, n_keep: int) -> None:
        self.cache_len = min(self.cache_len, n_keep)

    def set_abortable(self, on: bool) -> None:
        pass

    def make_sampler(self, sampling: SamplingSettings) -> "_FakeSampler":
        reply = self._queue.popleft() if self._queue else list(self.default_reply)
        return _FakeSampler(self, [self._id(t) for t in reply] + [EOG])

    def describe(self) -> dict[str, object]:
        return {"file": "fake.gguf", "path": "fake.gguf", "architecture": "fake", "quant": "F32",
                "parameters": 0, "size_bytes": 0, "train_ctx": self.n_ctx, "n_ctx": self.n_ctx,
                "threads": "1/1", "gpu_layers": 0, "rope": "as the model says", "cache_type": "f16/f16",
                "load_s": 0.01}

    def save_state(self) -> bytes:
        """The fake's whole state: how many positions its 'KV cache' holds."""
        return json.dumps({"cache_len": self.cache_len}).encode()

    def load_state(self, data: bytes | bytearray | memoryview) -> bool:
        try:
            self.cache_len = int(json.loads(bytes(data))["cache_len"])
        except (ValueError, KeyError, TypeError):
            return False
        return True

    def state_fingerprint(self) -> str | None:
        return None  # a fake's state is not worth keeping: the store saves none

    def is_loaded(self) -> bool:
        return self._loaded

    def close(self) -> None:
        self._loaded = False


class _FakeSampler:
    def __init__(self, model: FakeModel, tokens: list[int]):
        self.model = model
        self.tokens = deque(tokens)

    def accept_history(self, tokens: list[int]) -> None:
        pass

    def accept(self, token: int) -> None:
        pass

    def sample(self, idx: int = -1) -> int:
        if self.model.delay:
            time.sleep(self.model.delay)
        return self.tokens.popleft() if self.tokens else EOG

    def close(self) -> None:
        pass


def fake_session(model: FakeModel | None = None, profile: Profile | None = None):
    """A ChatSession over a FakeModel with a ChatML template."""
    from lcchat.engine.session import ChatSession

    profile = profile or Profile(name="fake")
    formatter = templates.chatml()
    return ChatSession(model=model or FakeModel(), profile=profile, formatter=formatter)
