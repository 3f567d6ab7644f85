"""One loaded GGUF model: llama.cpp's model, one context, and the vocab helpers around it.

Built on llama-cpp-python's ctypes bindings of llama.h rather than its `Llama` class:
`Llama()` compiles the GGUF's chat template with Jinja while loading (a template with a
syntax error then stops the model from loading at all), prints through its own logger,
and re-detokenizes whole replies. Here the file is checked with gguf_info before llama.cpp
opens it, llama.cpp's log goes through one callback into Python logging, and every long
call can be cancelled.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lcchat.config.schema import ModelSettings, RopeSettings, SamplingSettings
from lcchat.engine import gguf_info, rope
from lcchat.engine.protocol import ATTR_CONTROL
from lcchat.errors import InputError, LcchatError, ModelFileError

log = logging.getLogger("lcchat.llama")

# ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_LEVELS = {1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}


class Cancelled(LcchatError):
    """A long call was stopped on request."""


class _LlamaLog:
    """The one llama.cpp log callback: native log lines go to Python logging, never to the
    terminal directly. Listeners (e.g. quantization progress) can watch the lines too."""

    def __init__(self) -> None:
        self._callback = None
        self._level = logging.DEBUG
        self._partial = ""
        self.listeners: list[Callable[[int, str], None]] = []

    def install(self, llama_cpp) -> None:
        if self._callback is not None:
            return

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
            try:
                self._emit(level, text.decode("utf-8", "replace"))
            except Exception:  # noqa: BLE001 - an exception must never cross into C
                pass

        self._callback = callback  # keep a reference: llama.cpp holds a raw pointer
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))

    def _emit(self, level: int, text: str) -> None:
        if level != 5:  # 5 is GGML_LOG_LEVEL_CONT: a continuation of the last line
            self._level = _LEVELS.get(level, logging.DEBUG)
        self._partial += text
        if not self._partial.endswith("\n"):
            return
        line, self._partial = self._partial.rstrip("\n"), ""
        for listener in list(self.listeners):
            listener(self._level, line)
        log.log(self._level, "%s", line)


llama_log = _LlamaLog()
_backend_lock = threading.Lock()
_backend_ready = False


def load_llama_cpp():
    """Import llama_cpp with its log routed through our callback, and start the backend."""
    global _backend_ready
    with _backend_lock:
        import llama_cpp

        llama_log.install(llama_cpp)
        if not _backend_ready:
            llama_cpp.llama_backend_init()
            _backend_ready = True
        return llama_cpp


def physical_cores() -> int:
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except Exception:  # noqa: BLE001 - psutil may not know on exotic systems
        n = None
    return max(1, n or os.cpu_count() or 1)


# Batches this long or longer (a prompt) use n_threads_batch; shorter ones (a draft being
# verified, a few tokens lcchat writes itself) the generation threads.
PROMPT_BATCH_MIN = 32

# GGML_MAX_N_THREADS: ggml's thread pool holds at most this many threads.
GGML_MAX_THREADS = 512


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which a container or taskset
    narrows), else every CPU of the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def bounded_threads(wanted: int, key: str, notices: list[str]) -> int:
    """`wanted` threads, at most one per usable CPU. More threads than CPUs only wait for
    each other (and 100,000 made llama.cpp's OpenMP runtime abort the process), while a
    profile written on a bigger machine should still run here: clamp and say so once."""
    cap = min(usable_cpus(), GGML_MAX_THREADS)
    if wanted <= cap:
        return wanted
    notices.append(f"{key} = {wanted} is more than the {cap} CPUs lcchat can use here; using {cap}")
    return cap


def auto_threads(sample_s: float = 0.1) -> int:
    """Threads for n_threads = 0: the physical cores, less those other processes keep busy,
    and no more than the CPUs this process may use (taskset or a container's CPU set).

    llama.cpp's threads wait for each other at every graph node, so one thread that shares
    a core with another process holds all of them back: on a 2-core machine with the other
    core busy, 2 threads ran at half the speed of 1 (benchmarks/RESULTS.md, Threads). Two
    threads pinned to one CPU share it the same way.
    """
    cores = physical_cores()
    try:
        import psutil

        logical = psutil.cpu_count() or cores
        busy_logical = sum(psutil.cpu_percent(interval=sample_s, percpu=True)) / 100.0
    except Exception:  # noqa: BLE001 - no figures: use every core
        return min(cores, usable_cpus())
    busy_cores = busy_logical * cores / logical
    return max(1, min(cores - int(busy_cores + 0.5), usable_cpus()))


class _Speller:
    """For a SentencePiece vocab without <0xNN> byte tokens: replaces the characters it
    cannot spell. llama.cpp falls back to byte tokens for a character such a vocab has no
    piece for; with none there it throws from C++ and the process aborts (an emoji is
    enough). Special-token texts (<|im_start|> ...) are left whole: they are matched as
    tokens, not spelled."""

    def __init__(self, tokens: list[str], types: list[int]):
        self.chars = frozenset(t.replace("\u2581", " ") for t in tokens if len(t.replace("\u2581", " ")) == 1)
        specials = sorted({t for t, kind in zip(tokens, types) if kind in (3, 4) and t}, key=len, reverse=True)
        self.specials = re.compile("(" + "|".join(map(re.escape, specials)) + ")") if specials else None
        self.stand_in = next((c for c in "?\ufffd " if c in self.chars), "")

    @classmethod
    def for_vocab(cls, info: gguf_info.GGUFInfo) -> "_Speller | None":
        tokens = info.tokens
        if info.metadata.get("tokenizer.ggml.model") != "llama" or not tokens or "<0x0A>" in tokens:
            return None
        return cls(tokens, info.token_types or [1] * len(tokens))

    def __call__(self, text: str) -> str:
        parts = self.specials.split(text) if self.specials else [text]
        for i in range(0, len(parts), 2):  # even parts are plain text, odd ones special tokens
            part = parts[i]
            if any(c not in self.chars for c in part):
                parts[i] = "".join(c if c in self.chars else self._stand_in(c) for c in part)
        return "".join(parts)

    def _stand_in(self, c: str) -> str:
        return " " if c.isspace() and " " in self.chars else self.stand_in


def flash_attn_choice(settings: ModelSettings) -> bool | str:
    """[model] flash_attn as lcchat applies it: True (on), False (off) or "auto" (llama.cpp's
    own choice). "auto" is llama.cpp's choice when layers go to a GPU or a quantized V cache
    needs it; on the CPU alone it is off: there the fused kernel was 1.13x faster with 64
    tokens in the KV cache but 0.62x with 1,800 (benchmarks/RESULTS.md, section 9), and a
    chat's context grows. Loading with speculative decoding turns "auto" on
    (engine/loading.py): without it a batch's logits differ from one token's in rounding."""
    setting = settings.flash_attn
    if setting == "auto":
        quantized_v = settings.cache_type_v.lower() not in ("f32", "f16", "bf16")
        return "auto" if settings.n_gpu_layers != 0 or quantized_v else False
    return bool(setting)


def flash_attn_type(llama_cpp, settings: ModelSettings) -> int:
    """flash_attn_choice as llama.cpp's enum."""
    choice = flash_attn_choice(settings)
    if choice == "auto":
        return llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
    return llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if choice else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED


def flash_attn_name(setting: bool | str) -> str:
    """"auto", "on" or "off", as llama-cli's --flash-attn spells them."""
    return "auto" if setting == "auto" else ("on" if setting else "off")


def _context_failure(name: str, n_ctx: int, settings: ModelSettings) -> str:
    """Why llama_init_from_model may have refused. The cache types it refuses for the model
    are checked before (engine/quant/memory.py's kv_cache_problem), but a quantized V cache
    also needs flash attention that the device runs for this model, which only llama.cpp
    knows: with such a cache that is the likely cause, not memory."""
    types = (settings.cache_type_k, settings.cache_type_v)
    if any(t.lower() not in ("f32", "f16", "bf16") for t in types):
        return (f"llama.cpp could not create a context of {n_ctx} tokens for {name} with a {types[0]}/{types[1]} "
                "KV cache: it refuses cache types the model or device cannot use; try cache_type_k and "
                "cache_type_v = 'f16' (-ctk f16 -ctv f16), or a smaller n_ctx (-v shows details)")
    return (f"llama.cpp could not create a context of {n_ctx} tokens for {name} "
            "(too little memory? try a smaller n_ctx or another cache type; -v shows details)")


def _ggml_type(name: str) -> int:
    import gguf

    return int(gguf.GGMLQuantizationType[name.upper()])


@dataclass
class LoadInfo:
    path: Path
    seconds: float
    n_ctx: int
    n_threads: int
    n_threads_batch: int
    n_gpu_layers: int
    rope: rope.ResolvedRope
    notices: list[str] = field(default_factory=list)  # settings this machine made us change


class Model:
    """A GGUF loaded into llama.cpp with one context (one conversation at a time): the
    engine.protocol.TokenModel the session and the token loop drive."""

    def __init__(self, path: Path, settings: ModelSettings, rope_settings: RopeSettings, *,
                 seed: int = -1, on_progress: Callable[[float], None] | None = None,
                 cancel: threading.Event | None = None, info: gguf_info.GGUFInfo | None = None):
        started = time.perf_counter()
        self.path = Path(path)
        self.settings = settings
        self.info = info or gguf_info.load_checked(self.path)
        from lcchat.engine.quant.memory import context_problem

        problem = context_problem(self.info, settings)  # before llama.cpp allocates the KV cache
        if problem:
            raise InputError(problem)
        self._llama = llama_cpp = load_llama_cpp()
        self._model = None
        self._ctx = None
        self._batch = None
        self._abort_cb = None
        self.abort_requested = False

        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0x7FFFFFFF if settings.n_gpu_layers < 0 else settings.n_gpu_layers
        _set_load_mode(llama_cpp, mparams, settings.use_mmap, settings.use_mlock)

        def progress(fraction: float, _user) -> bool:
            if cancel is not None and cancel.is_set():
                return False
            if on_progress is not None:
                try:
                    on_progress(float(fraction))
                except Exception:  # noqa: BLE001 - never raise into C
                    pass
            return True

        self._progress_cb = llama_cpp.llama_progress_callback(progress)
        mparams.progress_callback = self._progress_cb
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            if cancel is not None and cancel.is_set():
                raise Cancelled("loading was cancelled")
            raise ModelFileError(
                f"{self.path}: llama.cpp could not load this model (run with -v to see why; "
                f"`lcchat doctor {self.path}` checks the file)"
            )
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.train_ctx = llama_cpp.llama_model_n_ctx_train(self._model)

        notices: list[str] = []
        n_threads = bounded_threads(settings.n_threads, "n_threads", notices) or auto_threads()
        # Prompt evaluation is one large batch: every core pays, even with fewer generation
        # threads (510 tokens: 3.5 s on 2 threads against 6.3 s on 1, benchmarks/RESULTS.md).
        n_threads_batch = (bounded_threads(settings.n_threads_batch, "n_threads_batch", notices)
                           or max(n_threads, min(physical_cores(), usable_cpus())))
        n_ctx = settings.n_ctx or self.train_ctx
        resolved = rope.resolve_for(rope_settings, self.info, n_ctx=n_ctx)
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = min(settings.n_batch, n_ctx)
        cparams.n_ubatch = min(settings.n_batch, n_ctx)
        cparams.n_seq_max = 1
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads_batch
        cparams.rope_scaling_type = resolved.scaling_type
        cparams.rope_freq_base = resolved.freq_base
        cparams.rope_freq_scale = resolved.freq_scale
        cparams.yarn_ext_factor = resolved.yarn_ext_factor
        cparams.yarn_attn_factor = resolved.yarn_attn_factor
        cparams.yarn_beta_fast = resolved.yarn_beta_fast
        cparams.yarn_beta_slow = resolved.yarn_beta_slow
        cparams.yarn_orig_ctx = resolved.yarn_orig_ctx
        cparams.type_k = _ggml_type(settings.cache_type_k)
        cparams.type_v = _ggml_type(settings.cache_type_v)
        cparams.flash_attn_type = flash_attn_type(llama_cpp, settings)
        cparams.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise LcchatError(_context_failure(self.path.name, n_ctx, settings))
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
        self.n_batch = llama_cpp.llama_n_batch(self._ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._one = (llama_cpp.llama_token * 1)()
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self.abort_requested)

        self.vocab_type = int(llama_cpp.llama_vocab_type(self._vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self.add_eos = bool(llama_cpp.llama_vocab_get_add_eos(self._vocab))
        self.bos = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos = llama_cpp.llama_vocab_eos(self._vocab)
        self.eot = llama_cpp.llama_vocab_eot(self._vocab)
        self.bos_text = self.token_text(self.bos) if self.bos >= 0 else ""
        self.eos_text = self.token_text(self.eos) if self.eos >= 0 else ""
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._speller = _Speller.for_vocab(self.info)
        self._piece_buf = ctypes.create_string_buffer(256)
        self.load = LoadInfo(self.path, time.perf_counter() - started, self.n_ctx, n_threads,
                             n_threads_batch, settings.n_gpu_layers, resolved, notices)
        self._batch_threads = n_threads_batch  # what llama.cpp uses for a batch of 2+ tokens now

    # ------------------------------------------------------------ vocab

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        if self._speller is not None:
            text = self._speller(text)
        data = text.encode("utf-8", "replace")
        llama_cpp = self._llama
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_bos, special)
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, add_bos, special)
            if n < 0:
                raise LcchatError("the text could not be tokenized")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes of one token, special tokens as their text. Cached: O(1) per token."""
        cached = self._pieces.get(token)
        if cached is None:
            n = self._llama.llama_token_to_piece(self._vocab, token, self._piece_buf, 256, 0, True)
            cached = self._piece_buf.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def token_text(self, token: int) -> str:
        raw = self._llama.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", "replace") if raw else ""

    def token_attr(self, token: int) -> int:
        return int(self._llama.llama_vocab_get_attr(self._vocab, token))

    def is_eog(self, token: int) -> bool:
        known = self._eog.get(token)
        if known is None:
            known = self._eog[token] = bool(self._llama.llama_vocab_is_eog(self._vocab, token))
        return known

    def control_texts(self) -> list[str]:
        """Texts of the vocab's control tokens (<|im_end|>, [UNUSED_TOKEN_145], </s> ...)."""
        tokens, types = self.info.tokens, self.info.token_types
        if tokens and len(types) == len(tokens):
            found = [t for t, kind in zip(tokens, types) if kind == 3]  # gguf TokenType.CONTROL
        else:
            found = [self.token_text(t) for t in range(self.n_vocab) if self.token_attr(t) & ATTR_CONTROL]
        return [t for t in found if len(t) >= 3]

    def eog_texts(self) -> list[str]:
        texts = []
        for token in (self.eos, self.eot):
            if token is not None and token >= 0:
                text = self.token_text(token)
                if text and text not in texts:
                    texts.append(text)
        return texts

    # ------------------------------------------------------------ KV cache and decoding

    def kv_truncate(self, n_keep: int) -> None:
        """Forget every cached position from `n_keep` on."""
        self._llama.llama_memory_seq_rm(self._memory, 0, n_keep, -1)

    def set_abortable(self, on: bool) -> None:
        """Let llama.cpp poll abort_requested while it computes (prompt evaluation only: the
        poll runs for every graph node, which would cost a few percent per generated token)."""
        self._llama.llama_set_abort_callback(self._ctx, self._abort_cb if on else self._llama.ggml_abort_callback(), None)

    def decode(self, tokens: list[int], n_past: int, *, logits_last: bool = True) -> int:
        """Evaluate `tokens` at positions n_past..; returns llama_decode's status (0 ok,
        1 no KV slot, 2 aborted, <0 error)."""
        self._use_batch_threads(self.load.n_threads_batch if len(tokens) >= PROMPT_BATCH_MIN else self.load.n_threads)
        return self._decode(tokens, n_past, every_logit=False, last_logit=logits_last)

    def decode_batch(self, tokens: list[int], n_past: int) -> int:
        """Evaluate `tokens` at positions n_past.. with logits for every one of them, so
        each can be sampled (Sampler.sample(i)): how a speculative draft is verified."""
        self._use_batch_threads(self.load.n_threads)
        return self._decode(tokens, n_past, every_logit=True, last_logit=True)

    def _use_batch_threads(self, n: int) -> None:
        """llama.cpp runs every batch of 2+ tokens on n_threads_batch threads. A prompt is
        worth all of them; a draft of a few tokens is not: its threads meet at every graph
        node, and one that shares a core with another process stalls the rest (a 2-token
        batch took 0.6-0.8 s instead of ~0.06 s with the other core busy). So small batches
        run on the generation threads."""
        if n != self._batch_threads:
            self._llama.llama_set_n_threads(self._ctx, self.load.n_threads, n)
            self._batch_threads = n

    def _decode(self, tokens: list[int], n_past: int, *, every_logit: bool, last_logit: bool) -> int:
        batch = self._batch
        n = len(tokens)
        tok, pos, nseq, seq, logits = batch.token, batch.pos, batch.n_seq_id, batch.seq_id, batch.logits
        flag = 1 if every_logit else 0
        for i, t in enumerate(tokens):
            tok[i] = t
            pos[i] = n_past + i
            nseq[i] = 1
            seq[i][0] = 0
            logits[i] = flag
        if last_logit and n:
            logits[n - 1] = 1
        batch.n_tokens = n
        return self._llama.llama_decode(self._ctx, batch)

    def decode_one(self, token: int, n_past: int) -> int:
        """Evaluate one generated token at position n_past (the hot path: no batch filling;
        llama.cpp places it after the cached positions, which is n_past)."""
        one = self._one
        one[0] = token
        return self._llama.llama_decode(self._ctx, self._llama.llama_batch_get_one(one, 1))

    # ------------------------------------------------------------ sampling

    def make_sampler(self, sampling: SamplingSettings) -> "Sampler":
        return Sampler(self, sampling)

    # ------------------------------------------------------------ state

    def state_fingerprint(self) -> str | None:
        """What a saved state depends on (see state_fingerprint below), hashed; None when
        the file cannot be read."""
        return state_fingerprint(self.path, n_ctx=self.n_ctx, settings=self.settings, load=self.load,
                                 backend_version=str(self._llama.__version__))

    def is_loaded(self) -> bool:
        return self._ctx is not None

    def save_state(self) -> memoryview:
        """llama.cpp's state (the KV cache and what goes with it), as a read-only view of
        the buffer llama.cpp wrote it into: no second copy, and no Python objects per byte
        (slicing a ctypes array would build a list of ints, 8+ bytes for every byte)."""
        llama_cpp = self._llama
        size = llama_cpp.llama_state_get_size(self._ctx)
        buf = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_get_data(self._ctx, buf, size)
        return memoryview(buf).cast("B")[:written].toreadonly()

    def load_state(self, data: bytes | bytearray | memoryview) -> bool:
        llama_cpp = self._llama
        n = memoryview(data).nbytes
        try:
            buf = (ctypes.c_uint8 * n).from_buffer(data)  # a bytearray: used in place
        except TypeError:  # read-only bytes: one copy
            buf = (ctypes.c_uint8 * n).from_buffer_copy(data)
        return llama_cpp.llama_state_set_data(self._ctx, buf, n) == n

    def describe(self) -> dict[str, object]:
        info = self.info
        return {
            "file": self.path.name,
            "path": str(self.path),
            "architecture": info.architecture,
            "quant": info.file_type_name,
            "parameters": info.n_params,
            "size_bytes": info.file_size,
            "train_ctx": self.train_ctx,
            "n_ctx": self.n_ctx,
            "threads": f"{self.load.n_threads}/{self.load.n_threads_batch}",
            "gpu_layers": self.load.n_gpu_layers,
            "rope": self.load.rope.description,
            "cache_type": f"{self.settings.cache_type_k}/{self.settings.cache_type_v}",
            "flash_attn": flash_attn_name(self.settings.flash_attn),
            "n_batch": self.n_batch,
            "load_s": round(self.load.seconds, 2),
        }

    def close(self) -> None:
        llama_cpp = self._llama
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def state_fingerprint(path: Path, *, n_ctx: int, settings: ModelSettings, load: LoadInfo,
                      backend_version: str) -> str | None:
    """A hash of what a saved KV state depends on: the model file (path, size, mtime), the
    context's size and cache types, RoPE, offloading, and the llama-cpp-python version (a
    state is only good for the build that wrote it). None when the file cannot be read."""
    try:
        st = path.stat()
        rope_fields = {k: v for k, v in dataclasses.asdict(load.rope).items() if k not in ("description", "warnings")}
        parts = {
            "format": 1,
            "llama_cpp": backend_version,
            "path": str(path.resolve()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "n_ctx": int(n_ctx),
            "cache_type_k": settings.cache_type_k,
            "cache_type_v": settings.cache_type_v,
            "flash_attn": flash_attn_name(flash_attn_choice(settings)),  # the V cache's layout differs
            "n_gpu_layers": load.n_gpu_layers,
            "rope": rope_fields,
        }
    except (OSError, TypeError, ValueError):
        return None
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Sampler:
    """llama.cpp's native sampler chain built from [sampling] settings."""

    def __init__(self, model: Model, s) -> None:
        llama_cpp = model._llama
        self._llama = llama_cpp
        self._ctx = model._ctx
        params = llama_cpp.llama_sampler_chain_default_params()
        params.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(params)
        self._chain = chain
        add = lambda smpl: llama_cpp.llama_sampler_chain_add(chain, smpl)  # noqa: E731
        seed = s.seed if s.seed >= 0 else int.from_bytes(os.urandom(4), "little")
        last_n = model.n_ctx if s.repeat_last_n < 0 else s.repeat_last_n
        if s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty:
            args = (last_n, s.repeat_penalty, s.frequency_penalty, s.presence_penalty)
            if _penalties_take_n_vocab(llama_cpp):
                args = (model.n_vocab, *args)
            add(llama_cpp.llama_sampler_init_penalties(*args))
        if s.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
        elif s.mirostat == 1:
            add(llama_cpp.llama_sampler_init_temp(s.temperature))
            add(llama_cpp.llama_sampler_init_mirostat(model.n_vocab, seed, s.mirostat_tau, s.mirostat_eta, 100))
        elif s.mirostat == 2:
            add(llama_cpp.llama_sampler_init_temp(s.temperature))
            add(llama_cpp.llama_sampler_init_mirostat_v2(seed, s.mirostat_tau, s.mirostat_eta))
        else:
            if s.top_k > 0:
                add(llama_cpp.llama_sampler_init_top_k(s.top_k))
            if s.top_p < 1.0:
                add(llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
            if s.min_p > 0:
                add(llama_cpp.llama_sampler_init_min_p(s.min_p, 1))
            add(llama_cpp.llama_sampler_init_temp(s.temperature))
            add(llama_cpp.llama_sampler_init_dist(seed))
        self.sample_fn = llama_cpp.llama_sampler_sample

    def accept_history(self, tokens: list[int]) -> None:
        """Feed the tokens already in context to the penalty samplers."""
        accept = self._llama.llama_sampler_accept
        for t in tokens:
            accept(self._chain, t)

    def accept(self, token: int) -> None:
        """Take a token lcchat chose itself (a reasoning budget's closing marker) as if sampled."""
        self._llama.llama_sampler_accept(self._chain, token)

    def sample(self, idx: int = -1) -> int:
        """Sample (and accept) the next token from the logits of batch position `idx`
        (-1: the last one evaluated)."""
        return self.sample_fn(self._chain, self._ctx, idx)

    def close(self) -> None:
        if self._chain is not None:
            self._llama.llama_sampler_free(self._chain)
            self._chain = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _penalties_take_n_vocab(llama_cpp) -> bool:
    """Some llama.cpp versions take n_vocab first in llama_sampler_init_penalties."""
    import inspect

    return len(inspect.signature(llama_cpp.llama_sampler_init_penalties).parameters) == 5


def _set_load_mode(llama_cpp, mparams, use_mmap: bool, use_mlock: bool) -> None:
    """mmap/mlock; newer llama.cpp has one load_mode field, older ones two booleans."""
    if hasattr(mparams, "load_mode") and hasattr(llama_cpp, "LLAMA_LOAD_MODE_MMAP"):
        if use_mmap and use_mlock:
            mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP_MLOCK
        elif use_mlock:
            mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_MLOCK
        elif use_mmap:
            mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_MMAP
        else:
            mparams.load_mode = llama_cpp.LLAMA_LOAD_MODE_NONE
    else:
        mparams.use_mmap = use_mmap
        mparams.use_mlock = use_mlock
