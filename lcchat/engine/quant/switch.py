"""Switching the loaded model mid-conversation: another quantization of it, or another KV
cache type. The model is opened as a session opens it (engine/loading.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

from lcchat.config.schema import KV_CACHE_TYPES, ModelSettings
from lcchat.engine import gguf_info
from lcchat.engine.events import Done, Error, Event, Notice
from lcchat.engine.monitor import human_bytes
from lcchat.engine.quant.memory import kv_cache_bytes, quantized_kv
from lcchat.engine.quant.variants import Variant
from lcchat.errors import EXIT_USAGE, LcchatError

def _reload(session, path: Path, settings: ModelSettings, *, what: str, keep_formatter: bool,
            success: Callable[[], str]) -> Iterator[Event]:
    """Load `path` with `settings` (engine/loading.py, as a session opens its model), then
    hand it to the session, which keeps the conversation and evaluates it again. The old
    model stays in use if loading fails or is cancelled. Ends with Done: "stop",
    "interrupted" (the load, or the re-evaluation of the history, was stopped) or "error"."""
    from lcchat.engine import loading
    from lcchat.engine.model import Cancelled

    cancel = session.loop.cancel_event
    cancel.clear()
    old_name = Path(str(session.model.path)).name
    loaded = None
    try:
        for item in loading.steps(session.profile, settings, path=path, cancel=cancel,
                                  formatter=session.formatter if keep_formatter else None):
            if isinstance(item, loading.Loaded):
                loaded = item
            else:
                yield item
    except Cancelled:
        yield Notice(f"{what} was cancelled; still using {old_name}", "warning")
        yield Done("interrupted", "")
        return
    except LcchatError as exc:
        yield Error(f"{what} failed: {exc}; still using {old_name}", exc.exit_code)
        yield Done("error", "")
        return
    assert loaded is not None
    model = loaded.model
    switched = False
    for event in session.switch_model(model, loaded.formatter, loaded.settings):
        if isinstance(event, Error):
            if session.model is not model:
                model.close()
            yield event
            yield Done("error", "")
            return
        if not switched and session.model is model:
            switched = True
            yield Notice(success())
        yield event
    if not switched and session.model is model:
        yield Notice(success())
    yield Done("interrupted" if cancel.is_set() or session.loop.cancel_event.is_set() else "stop", "")


def switch_variant(session, variant: Variant) -> Iterator[Event]:
    """Reload the session on another quantization of its model, keeping the conversation."""
    settings = dataclasses.replace(session.model_settings, path=str(variant.path))
    yield Notice(f"switching to {variant.path.name} ({variant.type_name}, {human_bytes(variant.size)})")
    yield from _reload(session, variant.path, settings, what="switching", keep_formatter=False,
                       success=lambda: f"now using {variant.path.name}; the conversation is kept")


def switch_kv(session, type_k: str, type_v: str) -> Iterator[Event]:
    """Reload the context with another KV cache type (the weights come back from the page
    cache), keeping the conversation. A quantized V cache turns flash attention on."""
    for name in (type_k, type_v):
        if name not in KV_CACHE_TYPES:
            yield Error(f"unknown KV cache type {name!r}; choose one of {', '.join(KV_CACHE_TYPES)}", EXIT_USAGE)
            yield Done("error", "")
            return
    current = session.model_settings
    settings = dataclasses.replace(current, cache_type_k=type_k, cache_type_v=type_v)
    if quantized_kv(type_v) and not settings.flash_attn:
        settings.flash_attn = True
        yield Notice(f"flash attention turned on: llama.cpp quantizes the V cache ({type_v}) only with it")
    path = Path(str(session.model.path))
    info = session.model.info or gguf_info.load_checked(path, vocab=False)
    n_ctx = int(session.model.n_ctx or current.n_ctx or info.context_length or 0)
    before = kv_cache_bytes(info, n_ctx, current.cache_type_k, current.cache_type_v)
    after = kv_cache_bytes(info, n_ctx, type_k, type_v)
    saved = before - after
    change = f"saves {human_bytes(saved)}" if saved > 0 else f"costs {human_bytes(-saved)} more" if saved < 0 else "same size"
    yield from _reload(session, path, settings, what="changing the KV cache", keep_formatter=True,
                       success=lambda: f"KV cache is now {type_k}/{type_v}: {human_bytes(after)} instead of "
                                       f"{human_bytes(before)} at n_ctx {n_ctx} ({change}); the conversation is kept")
