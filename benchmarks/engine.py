"""Engine benchmarks: lcchat's token loop against a bare llama.cpp decode loop and against
llama-cpp-python's create_chat_completion(stream=True), on the same model and threads.

All three generate exactly the same number of tokens: end-of-generation tokens are not
honoured during these runs (lcchat: is_eog answers False and no stop strings; bare loop:
ignores them; llama-cpp-python: its llama_vocab_is_eog is patched to False), so the
work per token is identical and only the per-token overhead differs.
"""

from __future__ import annotations

import contextlib
import ctypes
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from lcchat.config.loader import load_profile
from lcchat.engine.events import Stats, Token
from lcchat.engine.generate import Generation, StopFilter
from lcchat.engine.model import load_llama_cpp
from lcchat.engine.session import open_session

PROMPT = "Write a long story about a lighthouse keeper and the sea."


@dataclass
class Run:
    tokens: int
    seconds: float  # generation only: first token to last
    ttft: float

    @property
    def tps(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


# ---------------------------------------------------------------- lcchat


class LcchatRunner:
    name = "lcchat engine"

    def __init__(self, model_path: Path, threads: int, n_ctx: int, **overrides):
        profile = load_profile("default", {
            "model.path": str(model_path), "model.n_ctx": n_ctx, "model.n_threads": threads,
            "sampling.temperature": 0.0, "sampling.repeat_penalty": 1.0, **overrides,
        })
        self.session = open_session(profile)
        self.session.model.is_eog = lambda token: False  # generate exactly n tokens

    def tokens(self, text: str) -> list[int]:
        return self.session.model.tokenize(text, add_bos=self.session.model.add_bos, special=True)

    def generate(self, prompt: list[int], n: int) -> Run:
        loop = self.session.loop
        loop.reset()
        sampling = self.session.sampling
        sampling.max_tokens = n
        started = time.perf_counter()
        first = last = 0.0
        count = 0
        for event in loop.run(prompt, sampling, StopFilter([]), Generation()):
            if isinstance(event, Token):
                now = time.perf_counter()
                first = first or now
                last = now
            if isinstance(event, Stats) and event.final:
                count = event.completion_tokens
        return Run(count, _span(first, last, count), first - started)

    def close(self) -> None:
        self.session.model.close()


def _span(first: float, last: float, count: int) -> float:
    """Seconds for `count` tokens, measured first-to-last (count - 1 intervals)."""
    return (last - first) * count / (count - 1) if count > 1 else 0.0


# ---------------------------------------------------------------- bare llama.cpp loop


class BareRunner:
    """The ceiling available from Python: llama.h calls only, one token per llama_decode."""

    name = "bare llama.cpp loop"

    def __init__(self, model_path: Path, threads: int, n_ctx: int):
        L = self.L = load_llama_cpp()
        mp = L.llama_model_default_params()
        self.model = L.llama_model_load_from_file(str(model_path).encode(), mp)
        self.vocab = L.llama_model_get_vocab(self.model)
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch = n_ctx, 512, 512
        cp.n_threads = cp.n_threads_batch = threads
        cp.no_perf = True
        # As lcchat's default on the CPU ("auto" resolves to off there: engine/model.py).
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = L.llama_init_from_model(self.model, cp)
        sp = L.llama_sampler_chain_default_params()
        self.sampler = L.llama_sampler_chain_init(sp)
        L.llama_sampler_chain_add(self.sampler, L.llama_sampler_init_greedy())
        self.buf = ctypes.create_string_buffer(256)

    def tokens(self, text: str) -> list[int]:
        L = self.L
        data = text.encode()
        arr = (L.llama_token * (len(data) + 8))()
        n = L.llama_tokenize(self.vocab, data, len(data), arr, len(arr), L.llama_vocab_get_add_bos(self.vocab), True)
        return list(arr[:n])

    def generate(self, prompt: list[int], n: int) -> Run:
        L = self.L
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        started = time.perf_counter()
        for i in range(0, len(prompt), 512):
            chunk = prompt[i:i + 512]
            arr = (L.llama_token * len(chunk))(*chunk)
            L.llama_decode(self.ctx, L.llama_batch_get_one(arr, len(chunk)))
        one = (L.llama_token * 1)()
        first = last = 0.0
        for i in range(n):
            token = L.llama_sampler_sample(self.sampler, self.ctx, -1)
            L.llama_token_to_piece(self.vocab, token, self.buf, 256, 0, True)
            now = time.perf_counter()
            first = first or now
            last = now
            if i == n - 1:
                break
            one[0] = token
            L.llama_decode(self.ctx, L.llama_batch_get_one(one, 1))
        return Run(n, _span(first, last, n), first - started)

    def close(self) -> None:
        L = self.L
        L.llama_sampler_free(self.sampler)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)


# ---------------------------------------------------------------- llama-cpp-python


class ChatCompletionRunner:
    """What a user of llama-cpp-python would write: create_chat_completion(stream=True)."""

    name = "create_chat_completion(stream=True)"

    def __init__(self, model_path: Path, threads: int, n_ctx: int):
        load_llama_cpp()
        import llama_cpp

        self.llama_cpp = llama_cpp
        # flash_attn off: llama-cpp-python's default, and what lcchat's "auto" is on the CPU.
        self.llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=threads,
                                   n_threads_batch=threads, flash_attn=False, verbose=False)

    def tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def generate_chat(self, messages: list[dict], n: int) -> Run:
        self.llm.reset()
        started = time.perf_counter()
        first = last = 0.0
        count = 0
        with _eog_disabled(self.llama_cpp):
            for chunk in self.llm.create_chat_completion(messages=messages, max_tokens=n, temperature=0.0,
                                                         repeat_penalty=1.0, stream=True):
                if chunk["choices"][0]["delta"].get("content"):
                    now = time.perf_counter()
                    first = first or now
                    last = now
                    count += 1
        # chunks can carry more than one token (held back for stop checks): count tokens by n
        return Run(n, _span(first, last, n), first - started)

    def close(self) -> None:
        self.llm.close()


@contextlib.contextmanager
def _eog_disabled(llama_cpp):
    inner = llama_cpp.llama_cpp
    saved = inner.llama_vocab_is_eog
    inner.llama_vocab_is_eog = lambda vocab, token: False
    try:
        yield
    finally:
        inner.llama_vocab_is_eog = saved


# ---------------------------------------------------------------- measurements


def chat_prompt_text(runner: LcchatRunner, user: str) -> str:
    conv = runner.session.conversation
    return runner.session.formatter.render(conv.chat_messages() + [{"role": "user", "content": user}])


def generation(model_path: Path, threads: int, lengths: tuple[int, ...], repeats: int) -> list[dict]:
    """Tokens/s for replies of each length, the three implementations interleaved."""
    n_ctx = max(lengths) + 256
    lc = LcchatRunner(model_path, threads, n_ctx)
    bare = BareRunner(model_path, threads, n_ctx)
    ccc = ChatCompletionRunner(model_path, threads, n_ctx)
    messages = [{"role": "user", "content": PROMPT}]
    prompt = lc.tokens(chat_prompt_text(lc, PROMPT))
    rows = []
    try:
        for n in lengths:
            runs: dict[str, list[Run]] = {"lcchat": [], "bare": [], "ccc": []}
            for _ in range(repeats):
                runs["bare"].append(bare.generate(prompt, n))
                runs["lcchat"].append(lc.generate(prompt, n))
                runs["ccc"].append(ccc.generate_chat(messages, n))
            med = {k: statistics.median(r.tps for r in v) for k, v in runs.items()}
            rows.append({"tokens": n, **med})
    finally:
        for r in (lc, bare, ccc):
            r.close()
    return rows


def time_to_first_token(model_path: Path, threads: int, prompt_sizes: tuple[int, ...], repeats: int) -> list[dict]:
    n_ctx = max(prompt_sizes) + 256
    lc = LcchatRunner(model_path, threads, n_ctx)
    bare = BareRunner(model_path, threads, n_ctx)
    ccc = ChatCompletionRunner(model_path, threads, n_ctx)
    rows = []
    try:
        for size in prompt_sizes:
            words = " ".join(["the lighthouse keeper watched the sea"] * 200)
            user = words
            # trim the user text until the chat prompt has `size` tokens
            while len(lc.tokens(chat_prompt_text(lc, user))) > size:
                user = user[: int(len(user) * 0.97)]
            prompt = lc.tokens(chat_prompt_text(lc, user))
            messages = [{"role": "user", "content": user}]
            got: dict[str, list[float]] = {"lcchat": [], "bare": [], "ccc": []}
            for _ in range(repeats):
                got["bare"].append(bare.generate(prompt, 2).ttft)
                got["lcchat"].append(lc.generate(prompt, 2).ttft)
                got["ccc"].append(ccc.generate_chat(messages, 2).ttft)
            rows.append({"prompt_tokens": len(prompt), **{k: statistics.median(v) for k, v in got.items()}})
    finally:
        for r in (lc, bare, ccc):
            r.close()
    return rows


def multi_turn(model_path: Path, threads: int, turns: int = 10) -> list[dict]:
    """Tokens evaluated per turn against the tokens the turn added, over a real conversation."""
    profile = load_profile("default", {"model.path": str(model_path), "model.n_ctx": 4096,
                                       "model.n_threads": threads, "sampling.temperature": 0.0,
                                       "sampling.max_tokens": 48})
    session = open_session(profile)
    questions = ["What is the capital of France?", "And of Germany?", "Which is larger?", "Name a river in each.",
                 "Which river is longer?", "What sea does it flow into?", "Name a fish living there.",
                 "Is it edible?", "How would you cook it?", "Thanks, summarise our chat."]
    rows = []
    used = 0
    try:
        for i in range(turns):
            stats = None
            for event in session.send(questions[i % len(questions)]):
                if isinstance(event, Stats) and event.final:
                    stats = event
            added = stats.prompt_tokens - used
            rows.append({"turn": i + 1, "prompt_tokens": stats.prompt_tokens, "added": added,
                         "evaluated": stats.prompt_eval_tokens})
            used = stats.context_used
    finally:
        session.model.close()
    return rows
