"""ChatSession's conversation state between turns: what undo forgets, what a restored
conversation and a model switch keep, what prefill reads, the history prefix whose KV
state is kept, kv_snapshot, warn and set_system. On the FakeModel, which tokenizes one
character a token and records every token it evaluates."""

from __future__ import annotations

import logging

import pytest

from lcchat.config.schema import Profile
from lcchat.engine import templates
from lcchat.engine.chat import Message
from lcchat.engine.events import Done, Error, Notice, Progress, Stats, Token
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.session import ChatSession
from lcchat.errors import LcchatError


def run(events) -> tuple[str, list]:
    events = list(events)
    return "".join(e.text for e in events if isinstance(e, Token)), events


def text_of(model: FakeModel, tokens: list[int]) -> str:
    return "".join(model.token_text(t) for t in tokens)


def final_stats(events) -> Stats:
    return [e for e in events if isinstance(e, Stats) and e.final][0]


def chatml(system: str, *turns: tuple[str, str]) -> str:
    """ChatML text of a system prompt and (role, content) messages."""
    out = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return out + "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in turns)


HISTORY = [Message("user", "q1"), Message("assistant", "a1"), Message("user", "q2"), Message("assistant", "a2")]
HISTORY_TEXT = chatml("sys", ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"))


def spy_tokenize(model: FakeModel, specials: list | None = None) -> list[str]:
    """The texts the model is asked to tokenize, from now on (and in `specials`, with
    whether special tokens are parsed in them)."""
    seen: list[str] = []
    inner = model.tokenize

    def tokenize(text, *, add_bos=False, special=True):
        seen.append(text)
        if specials is not None:
            specials.append((text, special))
        return inner(text, add_bos=add_bos, special=special)

    model.tokenize = tokenize
    return seen


def restored(model: FakeModel | None = None, messages=HISTORY, system: str = "sys", **kw):
    session = fake_session(model or FakeModel())
    got = session.restore(system, list(messages), **kw)
    return session, got


class CharModel(FakeModel):
    """A FakeModel whose token ids are the characters' codes, so that two of them agree on
    them as two loads of one model file do; its markers are the TAGGED template's, after
    which a new message starts a tokenizer fragment (so a cached prefix can be kept as text)."""

    def _id(self, text: str) -> int:
        if text not in self._ids:
            self._ids[text] = 1000 + ord(text) if len(text) == 1 else 2_000_000 + len(self._ids)
            self._texts[self._ids[text]] = text
        return self._ids[text]

    def control_texts(self):
        return ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

    def eog_texts(self):
        return ["<|end|>"]


TAGGED = templates.Formatter(
    source="tagged", stop=["<|end|>"],
    render=lambda ms: "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in ms) + "<|assistant|>")


def tagged(system: str, *turns: tuple[str, str]) -> str:
    out = f"<|system|>{system}<|end|>" if system else ""
    return out + "".join(f"<|{role}|>{content}<|end|>" for role, content in turns)


def tagged_session(model: FakeModel | None = None, messages=None, system: str = "sys", **kw):
    """A session on TAGGED and a CharModel; with `messages`, restored with them (and kw)."""
    from lcchat.engine.session import ChatSession

    session = ChatSession(model=model or CharModel(), profile=Profile(name="t"), formatter=TAGGED)
    got = session.restore(system, list(messages), **kw) if messages is not None else None
    return session, got


TAGGED_HISTORY = tagged("sys", ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2")) + "<|user|>"
ADDED = "q3<|end|><|assistant|>"  # what the next turn adds to the history


def test_a_follow_up_keeps_the_reply_as_evaluated() -> None:
    """The model wrote "a1" as one token, which the prompt's text tokenizes as two: the next
    turn keeps the reply's tokens as they are and evaluates (and tokenizes) only what is new."""
    model = CharModel(replies=[["a1", "b2"], ["ok"]])
    session, _ = tagged_session(model)
    run(session.send("q1"))
    seen = spy_tokenize(model)
    _, events = run(session.send("q2"))
    added = "<|end|><|user|>q2<|end|><|assistant|>"
    assert "".join(seen) == added
    assert final_stats(events).prompt_eval_tokens == len(added)
    assert text_of(model, session.loop.cached) == "<|user|>q1<|end|><|assistant|>a1b2" + added + "ok"


class BrokenBytes(CharModel):
    """A model one of whose tokens is a lone byte that is no UTF-8 text (half a character)."""

    def piece(self, token: int) -> bytes:
        return b"\xff" if self.token_text(token) == "<byte>" else super().piece(token)


def test_a_reply_with_bytes_that_are_no_text_is_kept_and_followed_up() -> None:
    model = BrokenBytes(replies=[["a", "<byte>", "b"], ["ok"]])
    session, _ = tagged_session(model)
    text, _ = run(session.send("q1"))
    assert text == "a\ufffdb"
    seen = spy_tokenize(model)
    reply, events = run(session.send("q2"))
    assert reply == "ok"
    added = "<|end|><|user|>q2<|end|><|assistant|>"
    assert "".join(seen) == added and final_stats(events).prompt_eval_tokens == len(added)


# ---------------------------------------------------------------- history_prefix

def test_history_prefix_is_none_without_messages() -> None:
    session = fake_session(FakeModel())
    session.set_system("sys")
    assert session.history_prefix() is None


def test_history_prefix_is_the_history_up_to_where_the_next_user_message_goes() -> None:
    session, _ = restored()
    text, tokens = session.history_prefix()
    assert text == HISTORY_TEXT + "<|im_start|>user\n"
    assert text_of(session.model, tokens) == text
    # The next turn's prompt starts with exactly those tokens.
    session.model.queue(["ok"])
    run(session.send("q3"))
    assert session.model.decoded[:len(tokens)] == tokens
    assert text_of(session.model, session.model.decoded).startswith(text + "q3<|im_end|>")


def test_history_prefix_follows_the_overflow_window() -> None:
    profile = Profile(name="t")
    profile.chat.system = "S"
    profile.context.reserve = 10
    session = fake_session(FakeModel(n_ctx=150), profile)
    messages = [Message("user" if i % 2 == 0 else "assistant", f"m{i}-" + "x" * 20) for i in range(8)]
    session.restore("S", messages)
    text, tokens = session.history_prefix()
    assert session.conversation.window_start > 0  # the oldest messages no longer fit
    kept = messages[session.conversation.window_start:]
    assert text == chatml("S", *((m.role, m.content) for m in kept)) + "<|im_start|>user\n"
    assert "m0-" not in text and len(tokens) == len(text)
    # What the next turn sends starts with it.
    session.model.queue(["ok"])
    run(session.send("q"))
    assert session.model.decoded[:len(tokens)] == tokens


def test_history_prefix_keeps_the_window_where_it_is() -> None:
    """The window only moves forward: after /undo of the exchange that pushed it, the older
    messages stay out, so what the cache holds from the window's start stays valid."""
    profile = Profile(name="t")
    profile.context.reserve = 10
    model = FakeModel(n_ctx=300)
    session = fake_session(model, profile)
    for i in range(3):
        model.queue(["r"])
        run(session.send(f"m{i}"))
    model.queue(["r"])
    run(session.send("big " + "y" * 200))
    conv = session.conversation
    start = conv.window_start
    assert start > 0
    assert session.undo()
    assert conv.window_start == start
    text, tokens = session.history_prefix()
    assert "m0" not in text and conv.window_start == start
    model.queue(["ok"])
    run(session.send("q"))
    assert session.loop.cached[:len(tokens)] == tokens and "m0" not in text_of(model, session.loop.cached)


def test_history_prefix_of_messages_holding_the_probe_text() -> None:
    """A message may hold any text, the private-use characters the prefix is found with too."""
    from lcchat.engine.session import _PROBE

    messages = [Message("user", f"odd {_PROBE} text"), Message("assistant", f"echo {_PROBE}")]
    session, _ = restored(messages=messages, system="")
    text, tokens = session.history_prefix()
    assert text == chatml("", ("user", f"odd {_PROBE} text"), ("assistant", f"echo {_PROBE}")) + "<|im_start|>user\n"
    assert len(tokens) == len(text)


def test_history_prefix_of_a_one_character_history() -> None:
    """A template that shows only the new message after a marker: the history is the marker."""
    session = fake_session(FakeModel())
    session.formatter = templates.Formatter(source="test", render=lambda ms: "#" + ms[-1]["content"])
    session.profile.chat.parse_special = True
    session.restore("", HISTORY)
    assert session.history_prefix() == ("#", session.model.tokenize("#"))


def test_history_prefix_is_none_when_the_history_is_cut_or_refused() -> None:
    long = [Message("user", "u" * 200), Message("assistant", "a")]
    for policy in ("truncate-left", "error"):
        profile = Profile(name="t")
        profile.context.overflow = policy
        profile.context.reserve = 10
        session = fake_session(FakeModel(n_ctx=100), profile)
        session.restore("", long)
        assert session.history_prefix() is None, policy
        assert list(session.prefill()) == [] and session.context_used == 0


@pytest.mark.parametrize("render", [
    lambda messages: "no messages here",  # the template drops what it is given
    lambda messages: messages[-1]["content"] + " then the rest",  # the next message comes first
])
def test_history_prefix_is_none_when_the_template_does_not_show_where_the_next_message_goes(render) -> None:
    formatter = templates.Formatter(source="test", render=render)
    session = fake_session(FakeModel())
    session.formatter = formatter
    session.profile.chat.parse_special = True
    session.restore("", HISTORY)
    assert session.history_prefix() is None


def test_history_prefix_keeps_special_token_text_in_messages_as_text() -> None:
    model = FakeModel()
    session = fake_session(model)
    session.restore("", [Message("user", "say <|im_end|> now"), Message("assistant", "ok")])
    seen: list = []
    spy_tokenize(model, seen)
    text, tokens = session.history_prefix()
    assert text == chatml("", ("user", "say <|im_end|> now"), ("assistant", "ok")) + "<|im_start|>user\n"
    # The message's marker text is tokenized as text (special tokens not parsed), the real markers not.
    last = seen[-3:]
    assert "".join(t for t, _ in last) == text
    assert last == [("<|im_start|>", True), ("user\nsay <|im_end|> now", False),
                    ("<|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n<|im_start|>user\n", True)]


# ---------------------------------------------------------------- undo and retry

def test_undo_drops_the_last_exchange_from_the_cache_too() -> None:
    model = FakeModel(replies=[list("one"), list("two")])  # a reply tokenized as the prompt does
    session = fake_session(model)
    run(session.send("q1"))
    run(session.send("q2"))
    assert session.undo()
    assert [m.content for m in session.conversation.messages] == ["q1", "one"]
    text, tokens = session.history_prefix()
    assert text == chatml("", ("user", "q1"), ("assistant", "one")) + "<|im_start|>user\n"
    # The cache holds the history the next turn starts from, and nothing of the undone exchange.
    assert session.loop.cached == tokens
    assert session.context_used == model.cache_len == len(tokens)
    model.queue(["three"])
    _, events = run(session.send("q3"))
    assert final_stats(events).prompt_eval_tokens == len("q3<|im_end|>\n<|im_start|>assistant\n")
    assert "q2" not in text_of(model, session.loop.cached)


def test_undo_of_the_only_exchange_empties_the_cache() -> None:
    model = FakeModel(replies=[["one"]])
    session = fake_session(model)
    run(session.send("q1"))
    assert session.context_used > 0
    assert session.undo()
    assert session.conversation.messages == []
    assert session.context_used == 0 and model.cache_len == 0


def test_undo_with_nothing_or_while_busy_does_nothing() -> None:
    session = fake_session(FakeModel(replies=[["one"]]))
    assert session.undo() is False
    run(session.send("q1"))
    with session._guard():
        assert session.undo() is False
    assert len(session.conversation.messages) == 2
    assert session.undo() is True
    assert session.undo() is False


def test_undo_after_an_unanswered_message_drops_only_it() -> None:
    session, _ = restored(messages=[*HISTORY, Message("user", "q3")])
    assert session.undo()
    assert [m.content for m in session.conversation.messages] == ["q1", "a1", "q2", "a2"]
    assert session.undo()
    assert [m.content for m in session.conversation.messages] == ["q1", "a1"]


def test_undo_in_a_conversation_the_assistant_opened() -> None:
    """An imported conversation may start with the assistant's greeting."""
    greeting = Message("assistant", "welcome")
    session, _ = restored(messages=[greeting, Message("user", "q1"), Message("assistant", "a1")])
    assert session.undo()
    assert [m.content for m in session.conversation.messages] == ["welcome"]
    assert session.undo()  # the greeting alone goes too
    assert session.conversation.messages == []
    assert session.undo() is False


def test_undo_past_the_overflow_window_brings_the_window_back() -> None:
    profile = Profile(name="t")
    profile.context.reserve = 10
    model = FakeModel(n_ctx=160)
    session = fake_session(model, profile)
    for i in range(6):
        model.queue(["r" * 10])
        run(session.send(f"message {i} " + "y" * 20))
    conv = session.conversation
    assert conv.window_start >= 4
    while len(conv.messages) > 2:
        assert session.undo()
    assert conv.window_start <= len(conv.messages)
    model.queue(["fresh"])
    text, _ = run(session.send("brand new"))
    assert text == "fresh"
    assert "brand new" in text_of(model, session.loop.cached)


def test_undo_when_the_history_cannot_be_found_keeps_the_cache() -> None:
    session = fake_session(FakeModel(replies=[["one"], ["two"]]))
    run(session.send("q1"))
    run(session.send("q2"))
    cached = list(session.loop.cached)

    def broken():
        raise RuntimeError("template failed")

    session.history_prefix = broken
    assert session.undo()
    assert session.loop.cached == cached  # only a figure: the next turn fits the cache anyway
    del session.history_prefix
    text, _ = run(session.send("q3"))
    assert text == "OK"


def test_a_turn_after_undo_tokenizes_its_whole_prompt() -> None:
    """After undo the cache no longer holds the undone reply, so nothing of it is reused as text."""
    model = FakeModel(replies=[["one"], ["two"], ["three"]])
    session = fake_session(model)
    run(session.send("q1"))
    run(session.send("q2"))
    session.undo()
    seen = spy_tokenize(model)
    run(session.send("q2"))
    whole = text_of(model, session.loop.cached)
    assert "".join(seen).startswith("<|im_start|>user\nq1")  # tokenized from the start
    assert whole.startswith("<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\none")


def test_retry_answers_the_same_prompt_again_without_the_old_reply() -> None:
    model = FakeModel(replies=[list("one"), list("two")])
    session = fake_session(model)
    _, first = run(session.send("q1"))
    prompt = text_of(model, session.loop.cached[:final_stats(first).prompt_tokens])
    text, events = run(session.retry())
    assert text == "two"
    assert text_of(model, session.loop.cached) == prompt + "two"  # "one" is forgotten
    stats = final_stats(events)
    assert stats.prompt_tokens == len(prompt) and stats.prompt_eval_tokens <= 1  # the prompt is kept in the cache
    assert [(m.role, m.content) for m in session.conversation.messages] == [("user", "q1"), ("assistant", "two")]


def test_retry_tells_the_listeners_which_message_it_answered() -> None:
    """The store records a retried reply against the user message it answers."""
    session = fake_session(FakeModel(replies=[["one"], ["two"]]))
    turns = []
    session.listeners.append(lambda s, user, reply: turns.append((user.role, user.content, reply.content)))
    run(session.send("q1"))
    run(session.retry())
    assert turns == [("user", "q1", "one"), ("user", "q1", "two")]


def test_retry_with_nothing_to_answer_or_while_busy() -> None:
    session = fake_session(FakeModel())
    assert list(session.retry()) == [Error("there is no message to answer again")]
    for messages in ([Message("assistant", "welcome")], [*HISTORY, Message("assistant", "more")]):
        session.restore("", messages)
        assert list(session.retry()) == [Error("there is no message to answer again")]
        assert session.conversation.messages == messages  # nothing is lost by asking
    session.restore("", HISTORY)
    with session._guard():
        assert list(session.retry()) == [Error("a reply is already being generated")]
    assert len(session.conversation.messages) == 4


# ---------------------------------------------------------------- restore

def test_restore_takes_over_the_conversation() -> None:
    model = FakeModel(replies=[["old"]])
    session = fake_session(model)
    run(session.send("before"))
    messages = [Message("user", "q1"), Message("assistant", "half", interrupted=True, reasoning="hmm")]
    seen = spy_tokenize(model)
    assert session.restore("new system", messages) == 0
    assert seen == []  # without a saved state nothing is read yet: prefill or the next turn does
    conv = session.conversation
    assert conv.system == "new system"
    assert [(m.role, m.content, m.interrupted, m.reasoning) for m in conv.messages] == [
        ("user", "q1", False, ""), ("assistant", "half", True, "hmm")]
    assert conv.messages[1] is not messages[1]  # later edits of the session's copy stay its own
    assert conv.window_start == 0
    assert session.context_used == 0 and model.cache_len == 0  # the old conversation's cache is gone
    model.queue(["next"])
    run(session.send("q2"))
    prompt = text_of(model, session.loop.cached)
    assert prompt.startswith(chatml("new system", ("user", "q1"), ("assistant", "half"), ("user", "q2")))
    assert "before" not in prompt


def test_restore_starts_the_window_at_the_first_message() -> None:
    profile = Profile(name="t")
    profile.context.reserve = 10
    model = FakeModel(n_ctx=300)
    session = fake_session(model, profile)
    for i in range(6):
        model.queue(["r" * 10])
        run(session.send(f"message {i} " + "y" * 60))
    assert session.conversation.window_start > 0
    session.restore("", HISTORY)
    assert session.conversation.window_start == 0
    model.queue(["ok"])
    run(session.send("q3"))
    assert text_of(model, session.loop.cached).startswith(chatml("", ("user", "q1")))


def test_restore_while_a_reply_runs_is_refused() -> None:
    session = fake_session(FakeModel())
    with session._guard():
        with pytest.raises(LcchatError) as info:
            session.restore("", HISTORY)
    assert str(info.value) == "wait for the reply to finish (Ctrl+C stops it)"
    assert session.conversation.messages == []


def snapshot_of(messages=HISTORY, system="sys"):
    """kv_snapshot of a session on another CharModel that read `messages`."""
    first, _ = tagged_session(CharModel(), messages, system)
    list(first.prefill())
    return first.kv_snapshot()


def test_restore_with_a_saved_state_puts_the_history_back_into_the_cache() -> None:
    saved = snapshot_of()
    model = CharModel(replies=[["ok"]])
    session, got = tagged_session(model, HISTORY, saved=saved)
    text, tokens = session.history_prefix()
    assert text == TAGGED_HISTORY
    assert got == len(tokens) == len(saved[0])
    assert session.loop.cached == tokens and model.cache_len == len(tokens)
    assert model.decoded == []  # nothing evaluated again
    # The next turn evaluates only its own message, and tokenizes only that.
    seen = spy_tokenize(model)
    _, events = run(session.send("q3"))
    assert final_stats(events).prompt_eval_tokens == len(ADDED)
    assert "".join(seen) == ADDED
    assert text_of(model, model.decoded) == ADDED + "ok"


def test_restore_with_a_state_of_a_longer_conversation_keeps_only_the_shared_start() -> None:
    saved = snapshot_of([*HISTORY, Message("user", "q3"), Message("assistant", "a3")])
    model = CharModel(replies=[["ok"]])
    session, got = tagged_session(model, HISTORY, saved=saved)
    _, tokens = session.history_prefix()
    assert got == len(tokens) < len(saved[0])
    assert session.loop.cached == tokens and model.cache_len == len(tokens)  # the rest is cut off
    seen = spy_tokenize(model)
    run(session.send("q3"))
    assert "".join(seen) == ADDED and text_of(model, model.decoded) == ADDED + "ok"


def test_restore_with_a_state_that_matches_in_part_restores_that_part() -> None:
    changed = [*HISTORY[:3], Message("assistant", "something else")]
    saved = snapshot_of()
    model = CharModel(replies=[["ok"]])
    session, got = tagged_session(model, changed, saved=saved)
    _, tokens = session.history_prefix()
    shared = len(tagged("sys", ("user", "q1"), ("assistant", "a1"), ("user", "q2")) + "<|assistant|>")
    assert got == shared < len(tokens)
    assert session.loop.cached == tokens[:shared] and model.cache_len == shared
    # The next turn reads the rest: its whole prompt, past what the cache holds.
    _, events = run(session.send("q3"))
    expected = tagged("sys", ("user", "q1"), ("assistant", "a1"), ("user", "q2"),
                      ("assistant", "something else"), ("user", "q3")) + "<|assistant|>"
    assert text_of(model, session.loop.cached) == expected + "ok"
    assert final_stats(events).prompt_eval_tokens == len(expected) - shared


def test_restore_with_a_state_that_shares_only_the_first_token() -> None:
    tokens, state = snapshot_of()
    saved = (tokens[:1] + CharModel().tokenize("different"), state)
    model = CharModel()
    session, got = tagged_session(model, HISTORY, saved=saved)
    assert got == 1 and session.loop.cached == tokens[:1] and model.cache_len == 1


@pytest.mark.parametrize("case", ["other conversation", "bad state", "no messages"])
def test_restore_with_a_state_it_cannot_use_restores_nothing(case) -> None:
    tokens, state = snapshot_of()
    messages, saved = HISTORY, (tokens, state)
    if case == "other conversation":
        saved = (CharModel().tokenize("hello"), state)
    elif case == "bad state":
        saved = (tokens, b"not a state")
    else:
        messages = []
    model = CharModel(replies=[["ok"]])
    model.cache_len = 7  # whatever the model held before
    loaded = []
    model.load_state = lambda data, inner=model.load_state: loaded.append(data) or inner(data)
    session, got = tagged_session(model, messages, saved=saved)
    assert got == 0
    if case != "bad state":
        assert loaded == []  # a state that holds nothing of the history is not even loaded
    assert session.context_used == 0 and model.cache_len == 0
    run(session.send("q3"))
    prompt = (TAGGED_HISTORY + ADDED) if messages else tagged("sys", ("user", "q3")) + "<|assistant|>"
    assert text_of(model, model.decoded) == prompt + "ok"  # the whole prompt is read


# ---------------------------------------------------------------- prefill

def test_prefill_reads_the_history_so_the_next_turn_evaluates_only_itself() -> None:
    model = CharModel(n_batch=16, replies=[["ok"]])
    session, _ = tagged_session(model, HISTORY)
    text, tokens = session.history_prefix()
    events = list(session.prefill())
    assert events and all(isinstance(e, Progress) and e.what == "history" for e in events)
    assert [e.done for e in events] == [*range(16, len(tokens), 16), len(tokens)]
    assert {e.total for e in events} == {len(tokens)}
    assert model.decoded == tokens and session.context_used == len(tokens)
    seen = spy_tokenize(model)
    _, events = run(session.send("q3"))
    assert final_stats(events).prompt_eval_tokens == len(ADDED)
    assert "".join(seen) == ADDED  # the history is not tokenized again
    assert text_of(model, model.decoded) == TAGGED_HISTORY + ADDED + "ok"


def test_prefill_with_no_history_does_nothing() -> None:
    model = FakeModel()
    session = fake_session(model)
    session.set_system("sys")
    assert list(session.prefill()) == []
    assert model.decoded == [] and session.context_used == 0


def test_prefill_while_a_reply_runs_is_refused() -> None:
    session, _ = tagged_session(CharModel(), HISTORY)
    with session._guard():
        events = list(session.prefill())
    assert [type(e) for e in events] == [Error]
    assert events[0].message == "a reply is already being generated"
    assert session.context_used == 0


def test_prefill_after_a_cancel_between_turns_still_reads() -> None:
    model = CharModel(n_batch=8)
    session, _ = tagged_session(model, HISTORY)
    session.cancel()  # e.g. Ctrl+C pressed after the last reply ended
    list(session.prefill())
    _, tokens = session.history_prefix()
    assert session.context_used == len(tokens) and model.decoded == tokens


def test_prefill_stopped_early_leaves_the_rest_to_the_next_turn() -> None:
    import threading

    model = CharModel(n_batch=8, replies=[["ok"]])
    session, _ = tagged_session(model, HISTORY)
    stop = threading.Event()
    for event in session.prefill(stop):
        stop.set()
    _, tokens = session.history_prefix()
    assert session.context_used == 8 and model.decoded == tokens[:8]
    text, events = run(session.send("q3"))
    assert text == "ok"
    assert final_stats(events).prompt_eval_tokens == len(tokens) + len(ADDED) - 8
    assert text_of(model, model.decoded) == TAGGED_HISTORY + ADDED + "ok"


class FailingModel(CharModel):
    """A model whose first batch after the first one fails (llama_decode status 1)."""

    failed = False

    def decode(self, tokens, n_past, *, logits_last=True):
        if len(tokens) > 1 and n_past > 0 and not self.failed:
            self.failed = True
            return 1
        return super().decode(tokens, n_past, logits_last=logits_last)


def test_prefill_that_cannot_read_the_history_says_so() -> None:
    model = FailingModel(n_batch=8, replies=[["ok"]])
    session, _ = tagged_session(model, HISTORY)
    events = list(session.prefill())
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and notices[0].level == "warning"
    assert notices[0].text == "could not read the whole history into the context now; the next message will"
    assert session.context_used == 8 and model.cache_len == 8
    text, events = run(session.send("q3"))  # the next message reads the rest
    assert text == "ok"
    assert text_of(model, model.decoded) == TAGGED_HISTORY + ADDED + "ok"


# ---------------------------------------------------------------- switch_model

def test_switch_model_goes_on_with_the_conversation_on_the_new_model() -> None:
    old = FakeModel(replies=[["one"]])
    session = fake_session(old)
    session.set_system("sys")
    run(session.send("q1"))
    session.sampling.temperature = 0.3
    new = FakeModel(n_batch=16, replies=[["two"]])
    events = list(session.switch_model(new))
    assert not old.is_loaded() and new.is_loaded()
    assert session.model is new
    text, tokens = session.history_prefix()
    assert text == chatml("sys", ("user", "q1"), ("assistant", "one")) + "<|im_start|>user\n"
    assert [e.what for e in events] == ["history"] * len(events) and events[-1].done == len(tokens)
    assert new.decoded == tokens and session.context_used == len(tokens)
    assert session.sampling.temperature == 0.3  # the session's settings stay
    assert session.loop.speculation is session.speculation
    reply, events = run(session.send("q2"))
    assert reply == "two"
    assert final_stats(events).prompt_eval_tokens == len("q2<|im_end|>\n<|im_start|>assistant\n")
    assert [m.content for m in session.conversation.messages] == ["q1", "one", "q2", "two"]


def test_switch_model_to_the_same_model_keeps_it_open() -> None:
    model = FakeModel(replies=[["one"], ["two"]])
    session = fake_session(model)
    run(session.send("q1"))
    list(session.switch_model(model))
    assert model.is_loaded()
    text, _ = run(session.send("q2"))
    assert text == "two"


def test_switch_model_takes_the_new_formatter_and_settings() -> None:
    from lcchat.config.schema import ModelSettings

    session = fake_session(FakeModel(replies=[["one"]]))
    run(session.send("q1"))
    kept_settings = session.model_settings
    list(session.switch_model(FakeModel()))
    assert session.model_settings is kept_settings and session.formatter.source == "built-in ChatML template"
    settings = ModelSettings(n_ctx=1024)
    formatter = templates.Formatter(source="other", stop=["END"],
                                    render=lambda ms: "".join(f"[{m['role']}] {m['content']}\n" for m in ms)
                                    + "[assistant] ")
    new = FakeModel(replies=[["two END three"]])
    list(session.switch_model(new, formatter, settings))
    assert session.model_settings is settings and session.formatter is formatter
    assert "END" in session.stops
    text, _ = run(session.send("q2"))
    assert text == "two "  # the new template's stop ends the reply
    assert text_of(new, new.decoded).startswith("[user] q1\n[assistant] one\n[user] q2\n[assistant] ")


class OtherVocab(FakeModel):
    def control_texts(self):
        return ["<|im_start|>", "<|im_end|>", "<|eot|>"]

    def eog_texts(self):
        return ["<|im_end|>", "<|eot|>"]


def test_switch_model_reads_the_new_models_vocab() -> None:
    session = fake_session(FakeModel(replies=[["one"]]))
    run(session.send("q1"))
    assert "<|eot|>" not in session.stops
    new = OtherVocab(replies=[["two", "<|eot|>", "more"]])
    list(session.switch_model(new))
    assert "<|eot|>" in session.stops and "<|eot|>" in session.specials.texts
    text, _ = run(session.send("q2"))
    assert text == "two"


class ThinkingVocab(FakeModel):
    def control_texts(self):
        return ["<|im_start|>", "<|im_end|>", "<think>", "</think>"]


def test_switch_model_to_a_reasoning_model_splits_its_thinking() -> None:
    session = fake_session(FakeModel(replies=[["one"]]))
    run(session.send("q1"))
    assert session.markers is None
    list(session.switch_model(ThinkingVocab(replies=[["<think>", "hmm", "</think>", "two"]])))
    assert (session.markers.open, session.markers.close) == ("<think>", "</think>")
    text, _ = run(session.send("q2"))
    assert text == "two"
    assert session.conversation.messages[-1].reasoning == "hmm"


def test_switch_model_while_a_reply_runs_is_refused() -> None:
    old = FakeModel()
    session, _ = restored(old)
    new = FakeModel()
    with session._guard():
        events = list(session.switch_model(new))
    assert events == [Error("a reply is being generated; stop it first")]
    assert session.model is old and old.is_loaded()


def test_switch_model_stopped_while_reading_leaves_the_rest_to_the_next_turn() -> None:
    old = CharModel(replies=[["a2"]])
    session, _ = tagged_session(old, HISTORY[:3])
    run(session.send("q2"))  # the old model's cache holds the prompt and reply as text
    session.conversation.messages[:] = HISTORY
    new = CharModel(n_batch=8, replies=[["ok"]])
    for _ in session.switch_model(new):
        session.cancel()
    assert session.context_used == 8 and new.cache_len == 8
    text, events = run(session.send("q3"))
    assert text == "ok"
    assert text_of(new, new.decoded) == TAGGED_HISTORY + ADDED + "ok"


# ---------------------------------------------------------------- kv_snapshot, warn, set_system

def test_kv_snapshot_is_the_cached_tokens_and_the_models_state() -> None:
    model = FakeModel(replies=[["one"]])
    session = fake_session(model)
    assert session.kv_snapshot() is None  # nothing held
    run(session.send("q1"))
    tokens, state = session.kv_snapshot()
    assert tokens == session.loop.cached and tokens is not session.loop.cached
    assert state == model.save_state()
    session.model.close()
    assert session.kv_snapshot() is None  # a closed model holds nothing


def test_warn_is_said_after_the_turns_events() -> None:
    session = fake_session(FakeModel(replies=[["one"], ["two"]]))
    session.listeners.append(lambda s, user, reply: s.warn(f"could not save {user.content}"))
    _, events = run(session.send("q1"))
    assert isinstance(events[-2], Done)
    assert events[-1] == Notice("could not save q1", "warning")
    _, events = run(session.send("q2"))
    assert [e for e in events if isinstance(e, Notice)] == [Notice("could not save q2", "warning")]


def test_set_system_changes_the_next_prompt() -> None:
    model = FakeModel(replies=[["one"], ["two"]])
    session = fake_session(model)
    run(session.send("q1"))
    session.set_system("be terse")
    assert session.conversation.system == "be terse"
    run(session.send("q2"))
    assert text_of(model, session.loop.cached).startswith(
        chatml("be terse", ("user", "q1"), ("assistant", "one"), ("user", "q2")))


def test_close_runs_each_hook_with_the_session_before_the_model_is_freed(caplog) -> None:
    """The store's hook saves the KV state on close: it needs the session and a loaded
    model, and one failing hook neither stops the others nor the closing."""
    model = FakeModel(replies=[["one"]])
    session = fake_session(model)
    run(session.send("q1"))
    seen = []

    def broken(s) -> None:
        raise OSError("disk full")

    session.on_close += [broken, lambda s: seen.append((s, s.model.is_loaded()))]
    with caplog.at_level(logging.WARNING, logger="lcchat.session"):
        session.close()
    assert seen == [(session, True)]
    assert not model.is_loaded() and session.on_close == []
    [record] = [r for r in caplog.records if r.name == "lcchat.session"]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "a close hook failed")
    assert record.exc_info[1].args == ("disk full",)  # the traceback goes to the log (-v)


# ---------------------------------------------------------------- on real llama.cpp

def test_on_llama_cpp_a_restored_kv_state_answers_as_re_reading_does(tiny_model) -> None:
    """history_prefix's tokens are the ones turns evaluate with the real tokenizer, and a
    kv_snapshot restored into another session holds them: its next (greedy) reply is the
    one a session that reads the whole history again gives."""
    from lcchat.config.loader import load_profile
    from lcchat.engine.session import open_session

    profile = load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 512, "sampling.seed": 7,
                                       "sampling.temperature": 0.0, "sampling.max_tokens": 6})
    first = open_session(profile)
    run(first.send("the sky is blue"))
    _, events = run(first.send("the cat <|im_end|> sat"))  # marker text in a message stays text
    prompt = final_stats(events).prompt_tokens
    text, tokens = first.history_prefix()
    assert tokens == first.tokenize_prompt(text)
    assert tokens[:prompt] == first.loop.cached[:prompt]  # the turn evaluated the same tokens
    saved = first.kv_snapshot()
    assert saved[0] == first.loop.cached
    system, messages = first.conversation.system, list(first.conversation.messages)
    first.close()

    restored_session, fresh = open_session(profile), open_session(profile)
    try:
        got = restored_session.restore(system, messages, saved=saved)
        assert 0 < got <= len(tokens)
        assert restored_session.loop.cached == tokens[:got]
        fresh.restore(system, messages)
        list(fresh.prefill())
        assert fresh.loop.cached == tokens
        answer, events = run(restored_session.send("and then"))
        expected, _ = run(fresh.send("and then"))
        assert answer == expected
        assert final_stats(events).prompt_eval_tokens < final_stats(events).prompt_tokens - got + 1
    finally:
        restored_session.close()
        fresh.close()


def test_a_bos_token_goes_in_front_only_where_the_vocab_or_the_profile_asks_and_never_twice() -> None:
    model = FakeModel()
    model.bos_text = "<s>"
    model.bos = model.tokenize("<s>")[0]
    profile = Profile(name="t")
    session = fake_session(model, profile)
    assert model.add_bos is False and session.tokenize_prompt("hi") == model.tokenize("hi")  # "auto": the vocab's no
    model.add_bos = True
    assert session.tokenize_prompt("hi") == [model.bos, *model.tokenize("hi")]
    assert session.tokenize_prompt("<s>hi") == model.tokenize("<s>hi")  # a template that writes it: once
    profile.chat.add_bos = False  # [chat] add_bos = false wins over the vocab
    assert session.tokenize_prompt("hi") == model.tokenize("hi")
    model.add_bos, profile.chat.add_bos = False, True
    assert session.tokenize_prompt("hi") == [model.bos, *model.tokenize("hi")]


def test_a_session_keeps_the_model_settings_it_was_loaded_with() -> None:
    """/quant, /spec and the draft model start from the settings the model was loaded
    with: the profile's [model] unless the session was given others (after a /quant switch)."""
    import dataclasses

    profile = Profile(name="t")
    assert fake_session(FakeModel(), profile).model_settings is profile.model
    other = dataclasses.replace(profile.model, n_ctx=128)
    session = ChatSession(model=FakeModel(), profile=profile, formatter=templates.chatml(), model_settings=other)
    assert session.model_settings is other


@pytest.mark.parametrize("mode", ["lookup", "auto"])
def test_a_session_starts_with_the_profiles_speculative_mode(mode: str) -> None:
    """[speculative] mode (or --spec) is the session's from its first turn; /spec switches
    it for the session and its token loop together."""
    profile = Profile(name="t")
    profile.speculative.mode, profile.speculative.n_draft = mode, 7
    session = fake_session(FakeModel(), profile)
    assert (session.speculation.mode, session.speculation.n_draft) == (mode, 7)
    assert session.loop.speculation is session.speculation


def test_a_new_session_has_no_last_stats_until_a_reply_ends() -> None:
    """/stats and the toolbar say "no reply yet" from None."""
    session = fake_session(FakeModel(replies=[["ok"]]))
    assert session.last_stats is None
    events = list(session.send("hi"))
    assert session.last_stats is [e for e in events if isinstance(e, Stats) and e.final][0]


@pytest.mark.parametrize(("setting", "thinking"), [("auto", None), (True, True), ("true", True), (False, False),
                                                   ("false", False)])
def test_the_thinking_setting_starts_the_session_thinking_or_not(setting, thinking) -> None:
    profile = Profile(name="t")
    profile.chat.thinking = setting
    assert fake_session(FakeModel(), profile).thinking is thinking


def test_a_local_models_reasoning_markers_come_from_its_template_else_its_vocab(tiny_model) -> None:
    """Found in the chat template when it writes a known opening marker; else in the
    vocab when it holds both markers (as plain tokens too); else the model does not reason."""
    import dataclasses

    from lcchat.engine.gguf_info import read_gguf

    def markers(model: FakeModel, formatter: templates.Formatter):
        found = ChatSession(model=model, profile=Profile(name="t"), formatter=formatter).markers
        return found if found is None else (found.open, found.close, found.source)

    thinking_template = templates.compile_jinja(
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant: <think>\n")
    assert markers(FakeModel(), thinking_template) == ("<think>", "</think>", "chat template")
    assert markers(FakeModel(), templates.chatml()) is None
    model = FakeModel()
    info = read_gguf(tiny_model)
    model.info = dataclasses.replace(info, metadata={**info.metadata,
                                                     "tokenizer.ggml.tokens": [*info.tokens, "<think>", "</think>"]})
    assert markers(model, templates.chatml()) == ("<think>", "</think>", "vocab")


def test_a_bos_token_with_id_0_goes_in_front() -> None:
    """Token 0 is a real token (the BOS of many vocabs); only -1 means the vocab has none."""
    model = FakeModel()
    model.bos_text, model.bos, model.add_bos = "<s>", 0, True
    session = fake_session(model, Profile(name="t"))
    assert session.tokenize_prompt("hi") == [0, *model.tokenize("hi")]
    model.bos = -1
    assert session.tokenize_prompt("hi") == model.tokenize("hi")


def test_opening_a_model_reports_the_loads_progress(tiny_model) -> None:
    from lcchat.config.loader import load_profile
    from lcchat.engine.session import open_session

    seen: list[float] = []
    session = open_session(load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 256}),
                           on_progress=seen.append)
    try:
        assert seen and seen == sorted(seen) and all(0.0 <= f <= 1.0 for f in seen)
    finally:
        session.close()


def test_opening_a_model_keeps_the_loads_notices(tiny_model) -> None:
    """What the load had to say (here: more threads than CPUs, reduced) is the session's to show."""
    from lcchat.config.loader import load_profile
    from lcchat.engine.session import open_session

    session = open_session(load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 256,
                                                    "model.n_threads": 512}))
    try:
        assert any(n.text.startswith("n_threads = 512 is more than the") and n.level == "warning"
                   for n in session.notices), session.notices
    finally:
        session.close()


def test_a_cancelled_open_stops_the_load_of_the_model_and_of_its_draft(tiny_model, monkeypatch) -> None:
    """Ctrl+C while the model loads, or after it and while its draft model loads: the open
    stops with Cancelled (and frees what it loaded) rather than finishing the load."""
    import threading

    from lcchat.config.loader import load_profile
    from lcchat.engine import loading
    from lcchat.engine.model import Cancelled
    from lcchat.engine.session import open_session

    cancel = threading.Event()
    cancel.set()
    profile = load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 256})
    with pytest.raises(Cancelled):
        open_session(profile, cancel=cancel)

    cancel.clear()
    real, loads = loading.load, []

    def load_then_cancel(*args, **kwargs):
        loaded = real(*args, **kwargs)
        loads.append(loaded.model)
        cancel.set()  # Ctrl+C right after the model loaded, before its draft did
        return loaded

    monkeypatch.setattr(loading, "load", load_then_cancel)
    drafted = load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 256,
                                       "speculative.mode": "draft", "speculative.draft": str(tiny_model)})
    with pytest.raises(Cancelled):
        open_session(drafted, cancel=cancel)
    assert len(loads) == 1  # the draft never loaded


def test_think_on_or_off_reaches_a_template_that_reads_enable_thinking() -> None:
    profile = Profile(name="t")
    profile.chat.reasoning = ["<think>", "</think>"]
    formatter = templates.compile_jinja(
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}")
    session = ChatSession(model=FakeModel(), profile=profile, formatter=formatter)
    session.thinking = False  # /think off
    assert formatter.options == {"enable_thinking": False}
    assert formatter.render([{"role": "user", "content": "hi"}]).endswith("<think></think>")
    session.thinking = None  # /think auto: as the template does
    assert "enable_thinking" not in formatter.options
