"""build_prompt: the window the model reads, fitted to the context by whole exchanges."""

from __future__ import annotations

import pytest

from lcchat.engine import templates
from lcchat.engine.chat import MIN_REPLY, Conversation, Message, build_prompt
from lcchat.errors import PromptTooLong

PLAIN = templates.Formatter("test", lambda messages: "".join(f"[{m['role']}]{m['content']}" for m in messages))


def chars(text: str) -> list[int]:
    """One token per character, so sizes are easy to reason about."""
    return [ord(c) for c in text]


def conversation(*contents: str, system: str = "") -> Conversation:
    roles = ["user", "assistant"]
    return Conversation(system=system, messages=[Message(roles[i % 2], c) for i, c in enumerate(contents)])


def size(conv: Conversation, start: int) -> int:
    return len(PLAIN.render(conv.chat_messages(start)))


def test_a_prompt_that_fits_is_the_whole_conversation() -> None:
    conv = conversation("hello", "hi", "again", system="S")
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=200, reserve=10, policy="drop-oldest")
    assert prompt.text == "[system]S[user]hello[assistant]hi[user]again"
    assert prompt.tokens == chars(prompt.text)
    assert prompt.dropped == 0 and conv.window_start == 0
    assert prompt.room == 200 - len(prompt.text)


def test_drop_oldest_drops_a_whole_exchange_not_one_message() -> None:
    conv = conversation("u1" * 5, "a1", "u2", "a2", "u3", system="SYS")
    full = size(conv, 0)
    # Dropping the first user message alone would be enough room; the policy still drops
    # its reply with it, so the window never starts with an assistant message.
    n_ctx = full - 4 + 10
    assert size(conv, 1) + 10 <= n_ctx
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=n_ctx, reserve=10, policy="drop-oldest")
    assert prompt.dropped == 2 and conv.window_start == 2
    assert conv.chat_messages()[:2] == [{"role": "system", "content": "SYS"}, {"role": "user", "content": "u2"}]
    assert prompt.text == "[system]SYS[user]u2[assistant]a2[user]u3"
    assert len(conv.messages) == 5  # the conversation keeps what the window dropped


def test_drop_oldest_drops_as_many_exchanges_as_needed_and_keeps_the_last_message() -> None:
    conv = conversation("a" * 30, "b" * 30, "c" * 30, "d" * 30, "last", system="S")
    n_ctx = len("[system]S[user]last") + 8
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=n_ctx, reserve=8, policy="drop-oldest")
    assert conv.window_start == 4 and prompt.dropped == 4
    assert prompt.text == "[system]S[user]last"
    assert prompt.room == 8


def test_the_window_only_moves_forward() -> None:
    conv = conversation("one", "two", "three", system="S")
    conv.window_start = 2
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=500, reserve=10, policy="drop-oldest")
    assert prompt.text == "[system]S[user]three" and prompt.dropped == 0


def test_an_exchange_of_several_assistant_messages_goes_together() -> None:
    conv = Conversation(messages=[Message("user", "q" * 20), Message("assistant", "r1"), Message("assistant", "r2"),
                                  Message("user", "next")])
    n_ctx = len("[user]next") + 4
    build_prompt(conv, PLAIN, chars, n_ctx=n_ctx, reserve=4, policy="drop-oldest")
    assert conv.window_start == 3


def test_error_policy_refuses_what_does_not_fit_with_the_reserve() -> None:
    conv = conversation("x" * 50, "y" * 50, "z")
    need = size(conv, 0)
    with pytest.raises(PromptTooLong, match="overflow policy is 'error'") as caught:
        build_prompt(conv, PLAIN, chars, n_ctx=need + MIN_REPLY - 1, reserve=MIN_REPLY * 2, policy="error")
    assert f"needs {need} tokens plus {MIN_REPLY * 2} for the reply" in str(caught.value)
    assert conv.window_start == 0


def test_a_prompt_leaving_at_least_min_reply_is_sent_with_less_room_than_the_reserve() -> None:
    conv = conversation("x" * 50)
    need = size(conv, 0)
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=need + MIN_REPLY, reserve=MIN_REPLY + 5, policy="error")
    assert prompt.room == MIN_REPLY


def test_a_single_message_too_long_is_refused_whatever_the_policy() -> None:
    conv = conversation("x" * 100, system="S")
    need = size(conv, 0)
    for policy in ("drop-oldest", "error"):
        with pytest.raises(PromptTooLong, match="with the system prompt, but the context holds") as caught:
            build_prompt(conv, PLAIN, chars, n_ctx=need + MIN_REPLY - 1, reserve=MIN_REPLY * 2, policy=policy)
        assert f"the message is {need} tokens with the system prompt, but the context holds {need + MIN_REPLY - 1}" \
            in str(caught.value)


def test_the_reserve_is_at_most_half_the_context() -> None:
    conv = conversation("x" * 40, "y", "z")
    need = size(conv, 0)
    # a reserve bigger than the context would drop everything; it is cut to n_ctx // 2
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=2 * need, reserve=100 * need, policy="drop-oldest")
    assert prompt.dropped == 0 and prompt.room == need


def test_conversation_helpers() -> None:
    conv = conversation("q", "a1", "q2", "a2", system="S")
    assert conv.last_reply().content == "a2"
    assert conv.chat_messages(3) == [{"role": "system", "content": "S"}, {"role": "assistant", "content": "a2"}]
    conv.window_start = 2
    conv.clear()
    assert conv.messages == [] and conv.window_start == 0 and conv.system == "S"
    assert conv.last_reply() is None
    assert Conversation().chat_messages() == []


def test_the_reserve_cap_rounds_down_on_an_odd_context() -> None:
    conv = conversation("x" * 40, "y", "z")
    need = size(conv, 0)
    # n_ctx // 2 = need - 1 for n_ctx = 2 * need - 1: exactly room for the prompt
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=2 * need - 1, reserve=100 * need, policy="drop-oldest")
    assert prompt.dropped == 0 and prompt.room == need - 1


def test_a_huge_reserve_still_keeps_half_the_context_for_the_reply() -> None:
    conv = conversation("x" * 40, "y", "z")
    need = size(conv, 0)
    n_ctx = need * 3 // 2 + 1  # the prompt fits with a third of the context left, not with half
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=n_ctx, reserve=100 * need, policy="drop-oldest")
    assert prompt.dropped == 2 and prompt.text == "[user]z"


def test_a_user_message_without_a_reply_is_dropped_alone() -> None:
    """After a failed turn the history can hold two user messages in a row."""
    conv = Conversation(messages=[Message("user", "x" * 50), Message("user", "q"), Message("assistant", "a"),
                                  Message("user", "last")])
    n_ctx = size(conv, 1) + 4
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=n_ctx, reserve=4, policy="drop-oldest")
    assert conv.window_start == 1 and prompt.dropped == 1


def test_two_user_messages_at_the_end_drop_down_to_the_last() -> None:
    conv = Conversation(messages=[Message("user", "x" * 50), Message("user", "q")])
    prompt = build_prompt(conv, PLAIN, chars, n_ctx=len("[user]q") + 4, reserve=4, policy="drop-oldest")
    assert conv.window_start == 1 and prompt.text == "[user]q"


def test_the_window_never_starts_at_the_second_reply_of_an_exchange() -> None:
    conv = Conversation(messages=[Message("user", "q" * 20), Message("assistant", "r1"), Message("assistant", "r2"),
                                  Message("user", "next")])
    # room for "[assistant]r2[user]next" but the window moves by whole exchanges
    n_ctx = size(conv, 2) + 4
    build_prompt(conv, PLAIN, chars, n_ctx=n_ctx, reserve=4, policy="drop-oldest")
    assert conv.window_start == 3


def test_the_too_long_messages_state_the_facts() -> None:
    """The engine says what happened and carries the numbers (ContextFull); what to do is
    each front-end's to say (tests/repl, tests/tui and tests/test_pipe.py)."""
    from lcchat.engine.events import ContextFull

    conv = conversation("x" * 100)
    need = size(conv, 0)
    with pytest.raises(PromptTooLong) as caught:
        build_prompt(conv, PLAIN, chars, n_ctx=need, reserve=MIN_REPLY * 2, policy="error")
    assert str(caught.value) == (f"the message is {need} tokens with the system prompt, but the context holds "
                                 f"{need}")
    assert caught.value.fact == ContextFull(need, need, MIN_REPLY * 2, alone=True)
    conv = conversation("x" * 100, "y", "z")
    need = size(conv, 0)
    with pytest.raises(PromptTooLong) as caught:
        build_prompt(conv, PLAIN, chars, n_ctx=need, reserve=MIN_REPLY * 2, policy="error")
    assert str(caught.value) == (f"the conversation needs {need} tokens plus {MIN_REPLY * 2} for the reply, but the "
                                 f"context holds {need} and the overflow policy is 'error'")
    assert caught.value.fact == ContextFull(need, need, MIN_REPLY * 2, alone=False)
