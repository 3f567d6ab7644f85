"""Saving and restoring a KV state costs one copy of it in memory, not a Python object per
byte (issue 13 item 15: `bytes(buf[:n])` built a list of ints, 450 MB for a 47 MB state)."""

from __future__ import annotations

import tracemalloc

from lcchat.config.loader import load_profile
from lcchat.engine.session import open_session
from lcchat.store import attach, kvstate
from tests import models


def test_saving_and_loading_a_state_holds_at_most_one_copy(tmp_path) -> None:
    wide = models.write_tiny_model(tmp_path / "wide.gguf", n_embd=256, n_head=4, n_head_kv=4, n_ff=512, n_layer=4,
                                   n_ctx_train=4096)
    profile = load_profile("default", {"model.path": str(wide), "model.n_ctx": 2048, "model.n_batch": 512,
                                       "sampling.temperature": 0.0, "sampling.max_tokens": 2})
    session = open_session(profile)
    recorder = attach(session)
    list(session.send("a long message " * 150))  # a few hundred tokens in the cache
    path = kvstate.state_path(recorder.conversation_id)
    path.unlink()
    recorder._kv_saved = None

    tracemalloc.start()
    try:
        assert recorder.save_kv()
        _now, peak_save = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > 1 << 20, size  # big enough for copies to show against the interpreter's noise
    assert peak_save < 1.5 * size, (peak_save, size)

    cid = recorder.conversation_id
    session.close()
    fresh = open_session(profile)
    again = attach(fresh)
    tracemalloc.start()
    try:
        again.load(cid)
        _now, peak_load = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert again.restored_tokens > 0
    assert peak_load < 1.5 * size, (peak_load, size)
    fresh.close()
