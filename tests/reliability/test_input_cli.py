"""Odd input and the ends of the context, at the command line, with what got stored.
(Exit codes for invalid UTF-8 and a megabyte on stdin are also in tests/test_cli.py; here
the conversation that results is checked too.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.helpers import answered, assert_seed_intact, clean_failure, conversations, run, seed_conversation


def test_invalid_utf8_nul_and_emoji_on_stdin_are_answered_and_stored(tiny_model: Path) -> None:
    answered(run(["-m", tiny_model, "-n", "4"], stdin=b"caf\xe9 nul\x00 emoji \xf0\x9f\x98\x80 half \xf0\x9f"))
    question = conversations()[-1].messages[0].content
    assert question.startswith("caf\ufffd nul\ufffd emoji 😀 half \ufffd")
    question.encode("utf-8")  # strict: storable and exportable


def test_a_lone_surrogate_in_the_arguments(tiny_model: Path) -> None:
    # Not valid UTF-8: Python hands it to lcchat as lone surrogates (surrogateescape).
    answered(run(["-m", tiny_model, "-n", "4", b"caf\xed\xa0\x80 ok"], stdin=None))
    question = conversations()[-1].messages[0].content
    assert question.startswith("caf") and question.endswith(" ok")
    question.encode("utf-8")


def test_a_message_too_big_for_the_context_leaves_the_conversation_as_it_was(tiny_model: Path) -> None:
    """A megabyte on stdin (~300k tokens here) continuing a stored conversation: refused
    with exit 2, and the refused message is not added to the conversation."""
    seed = seed_conversation()
    line = clean_failure(run(["-m", tiny_model, "-c", "512", "-n", "4", "-C", str(seed)], stdin=b"the cat " * 131072), 2)
    assert "raise n_ctx" in line
    assert_seed_intact(seed)


def test_a_reply_to_the_end_of_the_context_with_byte_tokens(tiny_model: Path) -> None:
    """The random tiny model writes many of its 256 byte tokens, which seldom form whole
    UTF-8 characters; greedy, it never stops on its own, so the reply fills the context
    (llama.cpp makes -c 64 a 256-token context). The output stays valid UTF-8, the
    incomplete characters become U+FFFD, and the reply is stored as it was printed."""
    tries = [["--temp", "0"]] + [["--temp", "1.5", "--seed", str(seed)] for seed in range(1, 7)]
    for sampling in tries:
        result = run(["--json", "-m", tiny_model, "-c", "64", "-n", "-1", *sampling, "hi"])
        data = json.loads(answered(result))
        if data["finish_reason"] == "length":
            break
    else:
        pytest.fail("no reply reached the end of the context")
    assert data["stats"]["context_used"] >= data["stats"]["context_size"] - 2
    assert "\ufffd" in data["text"]  # bytes that did not make a character
    reply = conversations()[-1].messages[-1]
    assert reply.role == "assistant" and not reply.interrupted
    assert reply.content == data["text"]
