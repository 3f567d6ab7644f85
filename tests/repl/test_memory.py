"""Memory over many REPL turns on a real (tiny) model with the conversation store attached.

The REPL's RSS grew from 70 to 137 MB over 50 turns. Two things grew: llama.cpp's KV
cache and compute buffer becoming resident as the context fills (bounded by n_ctx, and in
the /quant estimate), and, every turn, the KV state saved for a fast resume being copied
through a Python list of ints: 8 bytes of list per byte of state, which the allocator
kept. Over 500 turns nothing else accumulates: benchmarks/growth.py measures RSS growth
per turn, after the context is full, against the text the turns kept.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from lcchat.config.loader import load_profile
from lcchat.engine.session import open_session
from lcchat.repl.app import Repl
from lcchat.store import attach

MiB = 2**20


@pytest.fixture
def repl_on_tiny_model(tiny_model: Path, tmp_path: Path):
    profile = load_profile("default", {"model.path": str(tiny_model), "model.n_threads": 1, "model.n_ctx": 2048,
                                       "sampling.temperature": 0.0, "sampling.max_tokens": 8})
    session = open_session(profile)
    attach(session)  # the conversation store, as the CLI attaches it
    with create_pipe_input() as inp:
        repl = Repl(session, input=inp, output=DummyOutput(), history=tmp_path / "history", live_toolbar=False,
                    monitor=None)
        yield repl, session
    session.close()


def test_a_turn_does_not_copy_the_kv_state_through_a_python_list(repl_on_tiny_model) -> None:
    """With the context well filled, one more turn (which saves the KV state) peaks at
    about twice the state's size in Python memory, not the ~9x a list of ints costs."""
    repl, session = repl_on_tiny_model
    repl.send("the cat and the dog " * 240)  # about 1,200 tokens of context
    state = session.model.save_state()
    gc.collect()
    tracemalloc.start()
    try:
        repl.send("one more question")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert session.conversation.window_start == 0 and len(session.loop.cached) > 1000  # nothing dropped
    assert recorded_tokens(session) == len(session.loop.cached)  # the state was saved after the turn
    assert peak < 3 * len(state) + MiB, f"peak {peak / MiB:.1f} MiB for a {len(state) / MiB:.1f} MiB state"


def recorded_tokens(session) -> int:
    """How many tokens the KV state saved for the conversation holds."""
    from lcchat.store import kvstate
    from lcchat.store.db import Store

    cid = Store().last()
    print_ = session.model.state_fingerprint()
    saved = kvstate.load(kvstate.state_path(cid), print_)
    return len(saved[0]) if saved else 0
