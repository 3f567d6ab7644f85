"""A reasoning model behind a server: its thinking is kept apart from the answer exactly as
for a local model (engine/reasoning.py's Splitter on the text, or the thinking the server
split off itself in `reasoning_content` / `reasoning`), so it never reaches the answer,
stdout, the stored answer or the next turn's messages. A stub server plays each stream."""

from __future__ import annotations

import json
import os
import subprocess
import threading

from lcchat.engine import remote
from lcchat.engine.events import Done, Error, Notice, Stats, Thinking, Token
from lcchat.engine.session import open_session
from lcchat.store.db import Store
import pytest

from tests import models
from tests.commandline import lcchat_cmd
from tests.remote.servers import LlamaServer, delta, sse
from tests.remote.test_faults import profile_for

MARKERS = ["<think>", "</think>"]
# A template that opens the thinking block itself (as DeepSeek-R1's does): the reply starts inside it.
OPENING_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                    "<|im_start|>assistant\n<think>\n")


def thinks(text: str) -> bytes:
    """A chat chunk whose thinking the server split off (llama-server, vLLM before 0.10)."""
    return sse({"choices": [{"index": 0, "delta": {"reasoning_content": text}, "finish_reason": None}]})


def text(piece: str, finish: str | None = None) -> bytes:
    """A /v1/completions chunk."""
    return sse({"choices": [{"index": 0, "text": piece, "finish_reason": finish}]})


def split(events) -> tuple[str, str]:
    """(answer, thinking) as the events showed them."""
    return ("".join(e.text for e in events if isinstance(e, Token)),
            "".join(e.text for e in events if isinstance(e, Thinking)))


def reasoning_profile(url: str, **backend):
    profile = profile_for(url, **backend)
    profile.chat.reasoning = list(MARKERS)
    return profile


def test_think_markers_split_across_chunks_are_taken_out_of_the_answer(stub):
    stub.reply = lambda h: h.stream([delta("<th"), delta("ink>\nThe capital"), delta(" is Paris.</th"),
                                     delta("ink>\n\nPar"), delta("is.", "stop"), sse("[DONE]")])
    session = open_session(reasoning_profile(stub.url))
    events = list(session.send("Capital of France?"))
    assert split(events) == ("Paris.", "The capital is Paris.")
    assert events[-1] == Done("stop", "Paris.", "The capital is Paris.")
    reply = session.conversation.messages[-1]
    assert (reply.content, reply.reasoning, reply.interrupted) == ("Paris.", "The capital is Paris.", False)
    stats = next(e for e in events if isinstance(e, Stats) and e.final)
    assert 0 < stats.reasoning_tokens < stats.completion_tokens


def test_a_server_model_whose_markers_nothing_names_still_keeps_its_thinking_apart(stub):
    """No [chat] reasoning and no template here: the server's model may reason all the
    same (a DeepSeek-R1 distill behind llama-server without --reasoning-format), and its
    `<think>` block must not become the answer."""
    stub.reply = lambda h: h.stream([delta("<think>\nHmm, France.</think>"), delta("\n\nParis.", "stop"),
                                     sse("[DONE]")])
    session = open_session(profile_for(stub.url))
    assert session.markers is not None and session.markers.source == "server default"
    events = list(session.send("Capital of France?"))
    assert split(events) == ("Paris.", "Hmm, France.")
    # A model that does not reason loses nothing: a later <think> is answer text.
    stub.reply = lambda h: h.stream([delta("Use <think> tags", "stop"), sse("[DONE]")])
    session.clear()
    assert split(list(session.send("How do I mark thinking?"))) == ("Use <think> tags", "")
    # ["none"] turns it off.
    profile = profile_for(stub.url)
    profile.chat.reasoning = ["none"]
    assert open_session(profile).markers is None


def test_a_completions_template_that_opens_the_block_starts_the_reply_inside_it(stub):
    stub.reply = lambda h: h.stream([text("Two and two"), text(" make four.</"), text("think>Four."),
                                     sse("[DONE]")])
    profile = profile_for(stub.url)
    profile.chat.template = OPENING_TEMPLATE  # markers found in the template, none in the profile
    session = open_session(profile)
    assert session.loop.model.use_chat is False
    events = list(session.send("2+2?"))
    assert stub.requests[-1]["prompt"].rstrip().endswith("<|im_start|>assistant\n<think>")
    assert split(events) == ("Four.", "Two and two make four.")
    list(session.send("And 3+3?"))
    again = stub.requests[-1]["prompt"]  # the template shows no earlier thinking: neither does the prompt
    assert "<|im_start|>assistant\nFour.<|im_end|>" in again and "Two and two" not in again


def test_thinking_the_server_split_off_is_thinking(stub):
    # llama-server (--reasoning-format deepseek) sends reasoning_content, newer vLLM and Ollama `reasoning`
    vllm = sse({"choices": [{"index": 0, "delta": {"reasoning": " Paris."}, "finish_reason": None}]})
    stub.reply = lambda h: h.stream([sse({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}),
                                     thinks("\nThe capital"), vllm, delta("Paris"), delta(".", "stop"),
                                     sse("[DONE]")])
    session = open_session(profile_for(stub.url))  # no markers known: the server's split is still taken
    events = list(session.send("Capital of France?"))
    assert split(events) == ("Paris.", "The capital Paris.")
    reply = session.conversation.messages[-1]
    assert (reply.content, reply.reasoning) == ("Paris.", "The capital Paris.")
    stats = next(e for e in events if isinstance(e, Stats) and e.final)
    assert stats.reasoning_tokens == 2


def test_a_block_the_server_also_left_in_the_content_is_kept_once(stub):
    # llama-server --reasoning-format deepseek-legacy: the thinking in reasoning_content and,
    # with its tags, in the content too
    both = sse({"choices": [{"index": 0, "delta": {"reasoning_content": "Hmm.", "content": "<think>Hmm."}}]})
    stub.reply = lambda h: h.stream([both, delta("</think>"), delta("Yes."), sse("[DONE]")])
    events = list(open_session(reasoning_profile(stub.url)).send("Well?"))
    assert split(events) == ("Yes.", "Hmm.")
    assert next(e for e in events if isinstance(e, Stats) and e.final).reasoning_tokens == 1  # counted once


def test_a_server_that_splits_a_block_its_template_opened_sends_the_answer_as_content(stub):
    # llama-server with DeepSeek-R1's template: the prompt opens the block, the server parses it
    stub.reply = lambda h: h.stream([thinks("Two and two."), delta("Four."), sse("[DONE]")])
    profile = profile_for(stub.url, api="chat")
    profile.chat.template = OPENING_TEMPLATE
    session = open_session(profile)
    events = list(session.send("2+2?"))
    assert split(events) == ("Four.", "Two and two.")
    assert not session.conversation.messages[-1].interrupted


def test_server_thinking_is_cleaned_like_content(stub):
    stub.reply = lambda h: h.stream([thinks("a\u0000b<|im_end|>c"),
                                     sse({"choices": [{"delta": {"reasoning_content": 7, "content": "ok"}}]}),
                                     sse("[DONE]")])
    profile = profile_for(stub.url)
    profile.chat.format = "chatml"  # so <|im_end|> is a special text that must not pass as plain text
    profile.backend.api = "chat"
    events = list(open_session(profile).send("Hi"))
    assert split(events) == ("ok", "a\ufffdbc")
    assert any(isinstance(e, Notice) and "<|im_end|>" in e.text for e in events)


def test_server_thinking_is_bounded_like_content(stub, monkeypatch):
    monkeypatch.setattr(remote, "MAX_STREAM", 64 * 1024)
    stub.reply = lambda h: h.stream([thinks("x" * 1000)] * 100)
    session = open_session(profile_for(stub.url))
    events = list(session.send("Hi"))
    assert any(isinstance(e, Error) and "MiB for one reply" in e.message for e in events)
    reply = session.conversation.messages[-1]
    assert reply.content == "" and 0 < len(reply.reasoning) <= 64 * 1024 and reply.interrupted


def test_a_reply_that_ends_while_the_server_still_sends_thinking_is_marked(stub):
    stub.reply = lambda h: h.stream([thinks("Let me count"), thinks(" slowly"), delta("", "length"), sse("[DONE]")])
    session = open_session(profile_for(stub.url))
    events = list(session.send("Hi"))
    assert split(events) == ("", "Let me count slowly")
    assert any(isinstance(e, Notice) and "while still thinking" in e.text for e in events)
    assert session.conversation.messages[-1].interrupted


def test_an_unclosed_block_at_interrupt_is_kept_and_marked(stub):
    stub.reply = lambda h: (h.stream([delta("<think>Still"), delta(" going</thi")], end=False),
                            stub.release.wait(30))
    session = open_session(reasoning_profile(stub.url, timeout=600))
    seen = threading.Event()
    events = []

    def run():
        for event in session.send("Think hard."):
            events.append(event)
            if isinstance(event, Thinking):
                seen.set()

    worker = threading.Thread(target=run)
    worker.start()
    assert seen.wait(30)
    session.cancel()
    worker.join(10)
    assert not worker.is_alive()
    assert split(events) == ("", "Still going</thi")  # held back as a maybe-marker, then kept as thinking
    assert Done("interrupted", "", "Still going</thi") in events
    assert any(isinstance(e, Notice) and "while still thinking" in e.text for e in events)
    reply = session.conversation.messages[-1]
    assert (reply.content, reply.reasoning, reply.interrupted) == ("", "Still going</thi", True)


def test_a_server_dying_mid_thought_keeps_the_thinking_apart(stub):
    stub.reply = lambda h: h.stream([thinks("Half a"), thinks(" thought")], close=True)
    session = open_session(profile_for(stub.url))
    events = list(session.send("Hi"))
    assert split(events) == ("", "Half a thought")
    assert any(isinstance(e, Error) and e.message.endswith("the partial reply is kept") for e in events)
    reply = session.conversation.messages[-1]
    assert (reply.content, reply.reasoning, reply.interrupted) == ("", "Half a thought", True)


def test_the_next_turn_carries_the_thinking_only_as_the_local_path_does(stub):
    stub.reply = lambda h: h.stream([thinks("Hmm."), delta("Paris."), sse("[DONE]")])
    session = open_session(reasoning_profile(stub.url))
    list(session.send("Capital of France?"))
    list(session.send("And Italy?"))
    earlier = stub.requests[-1]["messages"][-2]
    # as messages go to a local template: the answer as content, the thinking apart under
    # reasoning_content (a template that shows it, Qwen3's, does so only after the last user turn)
    assert earlier == {"role": "assistant", "content": "Paris.", "reasoning_content": "Hmm."}


def test_think_on_and_off_go_to_the_servers_template(stub):
    session = open_session(reasoning_profile(stub.url))
    list(session.send("Hi"))
    assert "chat_template_kwargs" not in stub.requests[-1]  # auto: as the template does
    session.thinking = False
    list(session.send("Hi"))
    assert stub.requests[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    session.thinking = True
    list(session.send("Hi"))
    assert stub.requests[-1]["chat_template_kwargs"] == {"enable_thinking": True}


def test_a_thinking_budget_is_said_not_to_apply(stub):
    profile = reasoning_profile(stub.url)
    profile.chat.thinking_budget = 100
    session = open_session(profile)
    first = list(session.send("Hi"))
    said = [e for e in first if isinstance(e, Notice) and "thinking budget is not applied" in e.text]
    assert len(said) == 1 and "--reasoning-budget" in said[0].text
    assert not any(isinstance(e, Notice) and "budget" in e.text for e in session.send("Again"))  # said once


def test_no_budget_marker_is_tokenized_on_the_server_for_nothing(stub, monkeypatch):
    profile = reasoning_profile(stub.url)
    profile.chat.thinking_budget = 100
    session = open_session(profile)
    asked = []
    tokenize = session.model.tokenize
    monkeypatch.setattr(session.model, "tokenize", lambda text, **kw: asked.append(text) or tokenize(text, **kw))
    list(session.send("Hi"))
    assert asked and not any("</think>" in text for text in asked)  # a request to the server each, on llama-server


def test_think_budget_on_a_server_says_in_one_line_that_it_does_not_apply(stub):
    from lcchat.commands import Context, FrontState, registry

    ctx = Context(open_session(reasoning_profile(stub.url)), FrontState())
    result = registry.dispatch(ctx, "/think budget 50")
    assert result.error and "\n" not in result.text and "--reasoning-budget" in result.text
    assert ctx.session.thinking_budget == -1
    assert not registry.dispatch(ctx, "/think budget -1").error  # no budget is what a server has anyway


def run_lcchat(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*lcchat_cmd(), "--remote", url, *args], env=dict(os.environ), capture_output=True,
                          text=True, timeout=120, check=False, stdin=subprocess.DEVNULL)


THINKING_REPLY = [delta("<think>\nThe user"), delta(" asks.</think>"), delta("\n\nParis."), sse("[DONE]")]
SPLIT_REPLY = [thinks("The user asks."), delta("Paris."), sse("[DONE]")]


def test_pipe_stdout_holds_only_the_answer_and_the_store_keeps_the_thinking_apart(stub, lcchat_home, tmp_path):
    stub.reply = lambda h: h.stream(THINKING_REPLY)
    profile = tmp_path / "thinker.toml"
    profile.write_text('[chat]\nreasoning = ["<think>", "</think>"]\n')
    done = run_lcchat(stub.url, "-p", str(profile), "Capital of France?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Paris.\n" and "asks" not in done.stderr
    store = Store()
    reply = store.get(store.last()).messages[-1]
    assert (reply.content, reply.reasoning) == ("Paris.", "The user asks.")


def test_pipe_reasoning_goes_to_stderr_and_json_holds_it(stub, lcchat_home):
    stub.reply = lambda h: h.stream(SPLIT_REPLY)
    done = run_lcchat(stub.url, "--reasoning", "Capital of France?")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Paris.\n" and "The user asks." in done.stderr
    done = run_lcchat(stub.url, "--json", "Capital of France?")
    doc = json.loads(done.stdout)
    assert doc["text"] == "Paris." and doc["reasoning"] == "The user asks."
    assert doc["stats"]["reasoning_tokens"] == 1


# A real server: llama-cpp-python's own, serving a tiny scripted GGUF that thinks in plain
# text (it splits nothing itself), its markers cut across tokens.
THINKER = ["<thi", "nk>\n", "Add them", " up.", "</thi", "nk>\n\n", "Four."]


@pytest.fixture(scope="module")
def thinking_server(tmp_path_factory):
    model = models.write_scripted_model(tmp_path_factory.mktemp("thinker") / "thinker.gguf", THINKER)
    server = LlamaServer(model, n_ctx=512)
    yield server
    server.stop()


def test_a_real_servers_thinking_stays_out_of_stdout_and_the_answer(thinking_server, lcchat_home, tmp_path):
    profile = tmp_path / "thinker.toml"
    profile.write_text('[chat]\nreasoning = ["<think>", "</think>"]\n[sampling]\ntemperature = 0.0\n')
    done = run_lcchat(thinking_server.url, "-p", str(profile), "--json", "What is 2+2?")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["text"], doc["reasoning"]) == ("Four.", "Add them up.")
    store = Store()
    reply = store.get(store.last()).messages[-1]
    assert (reply.content, reply.reasoning) == ("Four.", "Add them up.")
