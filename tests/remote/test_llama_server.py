"""The remote backend against a real server: llama-cpp-python's own OpenAI-compatible
server with SmolLM2, started once for the test session (tests/remote/conftest.py).

Through it: a pipe-mode answer, the greedy reply compared with the in-process one, a
conversation continued with -C (its turns stored with the server's URL), a server killed
mid-reply (the partial reply and the conversation kept), and /quant saying what applies.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.events import Done, Token
from lcchat.engine.session import open_session
from lcchat.store.db import Store
from tests.commandline import lcchat_cmd
from tests.remote.servers import LlamaServer

pytestmark = pytest.mark.smollm2


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*lcchat_cmd(), *args], check=False, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=dict(os.environ))


def test_pipe_mode_answers_through_the_server(llama_server):
    done = run("--remote", llama_server.url, "--json", "What is the capital of France?")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert "Paris" in answer["text"] and answer["finish_reason"] == "stop"
    stats = answer["stats"]
    assert stats["note"].startswith("remote: measured by lcchat") and stats["completion_tokens"] > 0
    assert 0 < stats["context_used"] <= stats["context_size"] == 4096  # the profile's: the server does not say


def greedy(profile_overrides: dict) -> str:
    profile = load_profile("smollm2", {"sampling.temperature": 0.0, "sampling.repeat_penalty": 1.0,
                                       "sampling.seed": 1, "sampling.max_tokens": 48, **profile_overrides})
    session = open_session(profile)
    try:
        events = list(session.send("Tell me about the moon."))
    finally:
        session.close()
    assert isinstance(events[-1], Done), events[-1]
    return "".join(e.text for e in events if isinstance(e, Token))


def test_the_greedy_reply_is_the_in_process_one(llama_server):
    """Same model, profile and seed; repeat_penalty 1 because llama-cpp-python's server
    counts only the reply's tokens for the penalty and lcchat the prompt's too (README,
    "Past one machine")."""
    local = greedy({"model.n_threads": 1})
    remote = greedy({"backend.url": llama_server.url})
    assert len(local) > 80 and remote == local


def test_continue_a_remote_conversation(llama_server):
    first = run("--remote", llama_server.url, "--temp", "0", "My name is Ada. Say hello to me.")
    assert first.returncode == 0, first.stderr
    second = run("--remote", llama_server.url, "--temp", "0", "-C", "What is my name?")
    assert second.returncode == 0, second.stderr
    store = Store()
    conv = store.get(store.last("smollm2"))
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert conv.messages[2].content == "What is my name?"
    # the second prompt held the first exchange: the server was sent the whole conversation
    first_turn, second_turn = conv.messages[1].stats, conv.messages[3].stats
    assert second_turn["prompt_tokens"] > first_turn["context_used"]
    assert {m.settings.server for m in conv.messages} == {llama_server.url}
    assert conv.messages[0].settings.model.endswith(".gguf")  # the model name the server gave
    shown = run("history", "export", str(conv.id), "--format", "json")
    assert json.loads(shown.stdout)["messages"][1]["server"] == llama_server.url


def test_quant_says_what_the_server_reports(llama_server):
    import lcchat.commands.builtin  # noqa: F401 - registers the commands
    from lcchat.commands.registry import Context, FrontState, registry

    session = open_session(load_profile("smollm2", {"backend.url": llama_server.url}))
    ctx = Context(session, FrontState())
    try:
        shown = registry.dispatch(ctx, "/quant")
        assert not shown.error and f"on llama-cpp-python server at {llama_server.url}" in shown.text
        assert "token counts: the server tokenizer (/extras/tokenize)" in shown.text
        refused = registry.dispatch(ctx, "/quant make Q8_0")
        assert refused.error and "runs on the server" in refused.text
        assert registry.dispatch(ctx, "/quant kv q8_0").error
    finally:
        session.close()


def test_a_server_killed_mid_reply_keeps_the_partial_reply(smollm2, tmp_path):
    server = LlamaServer(smollm2, log=tmp_path / "server.log")
    try:
        child = subprocess.Popen([*lcchat_cmd(), "--remote", server.url, "-n", "400",
                                  "Write a long story about a dragon who learns to bake bread."],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        first = child.stdout.read(40)  # some of the reply has streamed
        assert first
        server.kill()
        out, err = child.communicate(timeout=60)
    finally:
        server.stop()
    assert child.returncode == 1
    message = err.decode()
    assert "lcchat: the server closed the connection mid-reply" in message and "partial reply is kept" in message
    assert "Traceback" not in message
    store = Store()
    conv = store.get(store.last("smollm2"))
    reply = conv.messages[-1]
    assert conv.messages[0].content.startswith("Write a long story")
    assert reply.interrupted and reply.content and (first + out).decode().strip().startswith(reply.content[:30])
