"""The overflow policies of engine/chat.py: which window of the conversation the model sees.

build_prompt used to drop one exchange at a time, re-rendering and re-tokenizing the whole
window after each drop (quadratic: a 3,000-message resume took minutes). It now searches
for the cut point. `reference_build_prompt` below is the old loop, kept verbatim as the
specification: the search must choose the same window on any conversation.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcchat.config.loader import load_profile
from lcchat.config.schema import Profile
from lcchat.engine import templates
from lcchat.engine.chat import MIN_REPLY, Conversation, Message, Prompt, build_prompt
from lcchat.engine.events import Error, Notice, Token
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.errors import PromptTooLong

# ---------------------------------------------------------------- the old behaviour


def reference_build_prompt(conv, formatter, tokenize, *, n_ctx, reserve, policy) -> Prompt:
    """build_prompt as it was before the search (drop one exchange, render, tokenize, repeat)."""
    reserve = min(reserve, n_ctx // 2)
    start = conv.window_start
    first = start
    last_user = len(conv.messages) - 1
    while True:
        text = formatter.render(conv.chat_messages(start))
        tokens = tokenize(text)
        if len(tokens) + reserve <= n_ctx:
            break
        alone = start >= last_user
        if alone or policy != "drop-oldest":
            if len(tokens) + MIN_REPLY <= n_ctx:
                break
            raise PromptTooLong("too long")
        i = start + 1
        while i < len(conv.messages) - 1 and conv.messages[i].role != "user":
            i += 1
        start = i
    conv.window_start = start
    return Prompt(text, tokens, start - first, n_ctx - len(tokens))


# Templates of different shapes: ChatML, one that repeats the system prompt in every turn
# ([INST] style), one that numbers the turns, and llama-cpp-python's llama-2 format.
REPEATING = templates.compile_jinja(
    "{% set sys = messages[0]['content'] if messages[0]['role'] == 'system' else '' %}"
    "{% for m in messages if m['role'] != 'system' %}"
    "{% if m['role'] == 'user' %}[INST] {{ sys }} {{ m['content'] }} [/INST]{% else %} {{ m['content'] }}</s>{% endif %}"
    "{% endfor %}")
NUMBERED = templates.compile_jinja(
    "{% for m in messages %}#{{ loop.index }} {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant:")
FORMATTERS = {"chatml": templates.chatml(), "repeating": REPEATING, "numbered": NUMBERED,
              "llama-2": templates.named_format("llama-2")}


def by_char(text: str) -> list[int]:
    return [ord(c) for c in text]


def by_word(text: str) -> list[int]:
    return [hash(w) & 0xFFFF for w in text.split()]


TOKENIZERS = {"char": by_char, "word": by_word}

words = st.text(alphabet="ab cd\n", min_size=0, max_size=60)


@st.composite
def conversations(draw) -> Conversation:
    """Alternating user/assistant messages ending with a user message, sometimes with two
    user messages in a row (an unanswered one kept after an error), and a window start."""
    n = draw(st.integers(0, 40))
    messages = []
    for i in range(n):
        role = "user" if i % 2 == 0 else "assistant"
        if role == "assistant" and draw(st.integers(0, 9)) == 0:
            role = "user"
        messages.append(Message(role, draw(words)))
    messages.append(Message("user", draw(words) or "q"))
    start = draw(st.integers(0, len(messages) - 1)) if draw(st.booleans()) else 0
    return Conversation(draw(st.sampled_from(["", "be brief", "S" * 50])), messages, start)


def outcome(fn, conv: Conversation, formatter, tokenize, **kw):
    conv = Conversation(conv.system, list(conv.messages), conv.window_start)
    try:
        prompt = fn(conv, formatter, tokenize, **kw)
    except PromptTooLong:
        return "too long", conv.window_start
    return (prompt.text, prompt.tokens, prompt.dropped, prompt.room), conv.window_start


@settings(max_examples=300, deadline=None, database=None)
@given(conv=conversations(), fill=st.floats(0.02, 1.3), share=st.floats(0, 0.6),
       fmt=st.sampled_from(sorted(FORMATTERS)), tok=st.sampled_from(sorted(TOKENIZERS)),
       policy=st.sampled_from(["drop-oldest", "error"]))
def test_the_search_chooses_the_window_the_old_loop_chose(conv, fill, share, fmt, tok, policy) -> None:
    """n_ctx is a fraction of the whole conversation's length, so most examples overflow,
    and the reserve a share of n_ctx."""
    formatter, tokenize = FORMATTERS[fmt], TOKENIZERS[tok]
    whole = len(tokenize(formatter.render(conv.chat_messages())))
    n_ctx = max(8, int(whole * fill))
    kw = dict(n_ctx=n_ctx, reserve=int(n_ctx * share), policy=policy)
    assert outcome(build_prompt, conv, formatter, tokenize, **kw) == \
        outcome(reference_build_prompt, conv, formatter, tokenize, **kw)


class Counting:
    """A formatter and tokenizer that count their calls and how many messages each render got."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.tokenized = 0
        inner = templates.chatml()

        def render(messages):
            self.sizes.append(len(messages))
            return inner.render(messages)

        self.formatter = templates.Formatter("counting", render)

    def tokenize(self, text: str) -> list[int]:
        self.tokenized += 1
        return by_char(text)


def long_conversation(n: int) -> Conversation:
    messages = [Message("user" if i % 2 == 0 else "assistant", f"message {i} " + "x" * 40) for i in range(n)]
    messages.append(Message("user", "the last question"))
    return Conversation("SYSTEM", messages)


@pytest.mark.parametrize("n", [300, 3000])
def test_a_long_history_is_rendered_a_logarithmic_number_of_times(n: int) -> None:
    counting = Counting()
    conv = long_conversation(n)
    prompt = build_prompt(conv, counting.formatter, counting.tokenize, n_ctx=2048, reserve=256, policy="drop-oldest")
    assert prompt.dropped > 0 and len(prompt.tokens) + 256 <= 2048
    exchanges = n // 2 + 1
    assert len(counting.sizes) == counting.tokenized <= 2 * math.ceil(math.log2(exchanges)) + 2
    # The first render is the window as it was (the whole history); after it, no window
    # tried is much larger than the one that fits: the search never re-reads the history.
    fitted = len(conv.chat_messages())
    assert counting.sizes[0] == n + 2
    assert max(counting.sizes[1:]) <= 2 * fitted + 2, (counting.sizes, fitted)


def test_a_window_that_fits_is_rendered_once() -> None:
    counting = Counting()
    conv = long_conversation(3000)
    build_prompt(conv, counting.formatter, counting.tokenize, n_ctx=2048, reserve=256, policy="drop-oldest")
    counting.sizes.clear()
    counting.tokenized = 0
    build_prompt(conv, counting.formatter, counting.tokenize, n_ctx=2048, reserve=256, policy="drop-oldest")
    assert len(counting.sizes) == counting.tokenized == 1


# ---------------------------------------------------------------- drop-oldest


def test_drop_oldest_drops_whole_exchanges_never_single_messages() -> None:
    conv = Conversation("S", [Message("user" if i % 2 == 0 else "assistant", f"m{i} " + "z" * 30) for i in range(21)])
    for n_ctx in range(120, 700, 7):
        probe = Conversation(conv.system, list(conv.messages))
        prompt = build_prompt(probe, templates.chatml(), by_char, n_ctx=n_ctx, reserve=0, policy="drop-oldest")
        assert prompt.dropped % 2 == 0, (n_ctx, prompt.dropped)
        assert probe.messages[probe.window_start].role == "user"
        shown = probe.chat_messages()
        assert shown[0] == {"role": "system", "content": "S"} and shown[1]["role"] == "user"


def test_drop_oldest_in_a_session_says_how_many_messages_went() -> None:
    profile = Profile(name="t")
    profile.context.reserve = 10
    session = fake_session(FakeModel(n_ctx=160, replies=[["ok"]] * 8), profile)
    notices = []
    for i in range(6):
        notices += [e.text for e in session.send(f"question {i} " + "q" * 20) if isinstance(e, Notice)]
    dropped = [n for n in notices if n.startswith("dropped ")]
    assert dropped and all(int(n.split()[1]) % 2 == 0 for n in dropped)
    assert session.conversation.messages[session.conversation.window_start].role == "user"


def test_show_prompt_shows_the_window_the_next_turn_sends() -> None:
    from lcchat.engine.prompt_view import describe, preview

    profile = Profile(name="t")
    profile.context.reserve = 10
    model = FakeModel(n_ctx=160, replies=[["ok"]] * 8)
    session = fake_session(model, profile)
    for i in range(4):
        list(session.send(f"question {i} " + "q" * 20))
    window = session.conversation.window_start
    shown = preview(session, "question 4 " + "q" * 20)
    assert shown.dropped and "question 0" not in shown.text
    assert session.conversation.window_start == window  # looking does not move the window
    assert f"the {shown.dropped} oldest messages are left out to fit the context (160 tokens)" in describe(session, shown)
    list(session.send("question 4 " + "q" * 20))
    assert session.last_stats.prompt_tokens == len(shown.tokens)
    assert session.loop.cached[:len(shown.tokens)] == shown.tokens


def test_default_policy_still_refuses_a_message_longer_than_the_context() -> None:
    session = fake_session(FakeModel(n_ctx=100))
    assert Profile().context.overflow == "drop-oldest"
    errors = [e for e in session.send("w" * 200) if isinstance(e, Error)]
    assert errors and "with the system prompt, but the context holds 100" in errors[0].message
    assert errors[0].fact.alone


# ---------------------------------------------------------------- truncate-left


def truncating_session(n_ctx: int, max_tokens: int, system: str = ""):
    profile = Profile(name="t")
    profile.context.overflow = "truncate-left"
    profile.sampling.max_tokens = max_tokens
    profile.chat.system = system
    model = FakeModel(n_ctx=n_ctx, replies=[["fine"]] * 4)
    return fake_session(model, profile), model


def test_truncate_left_cuts_a_long_message_to_n_ctx_minus_max_tokens_and_says_so() -> None:
    session, model = truncating_session(400, 100, system="SYS")
    events = list(session.send("a" * 1000 + "THE END"))
    assert not [e for e in events if isinstance(e, Error)]
    notices = [e.text for e in events if isinstance(e, Notice)]
    cut = [n for n in notices if "truncate-left" in n]
    assert len(cut) == 1, notices
    assert [e.level for e in events if isinstance(e, Notice) and "truncate-left" in e.text] == ["warning"]
    prompt = templates.chatml().render([{"role": "system", "content": "SYS"},
                                        {"role": "user", "content": "a" * 1000 + "THE END"}])
    expected = [model._id(c) for c in prompt][-(400 - 100):]  # the fake: one token a character
    assert model.decoded[: len(expected)] == expected
    assert f"cut the first {len(prompt) - 300} tokens" in cut[0] and "leave 100 for the reply" in cut[0]
    assert "".join(e.text for e in events if isinstance(e, Token)) == "fine"
    assert session.conversation.messages[-1].content == "fine"  # the turn is kept whole


def test_truncate_left_first_drops_whole_exchanges_keeping_max_tokens_free() -> None:
    session, model = truncating_session(300, 120)
    for text in ("first " * 10, "second " * 10):
        list(session.send(text))
    events = list(session.send("third " * 10))
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert any(n.startswith("dropped 2 oldest messages") for n in notices), notices
    assert not any("truncate-left" in n for n in notices)  # nothing cut: dropping was enough
    used = len(session.loop.cached)
    assert used - 1 + 120 <= 300  # the prompt left max_tokens free (the reply added one token)


def test_dropping_one_unanswered_message_says_message_in_the_singular() -> None:
    """A resumed conversation can end with a question that never got its reply (a message
    is stored when sent, and the app ended mid-reply). A next turn that fits only without
    it drops that one message, and says so in the singular."""
    session, model = truncating_session(300, 120)
    session.restore("", [Message("user", "first " * 20)])
    events = list(session.send("second " * 10))
    notices = [e.text for e in events if isinstance(e, Notice)]
    assert ("dropped 1 oldest message to fit the context (300 tokens); the system prompt is kept"
            in notices), notices
    assert session.conversation.window_start == 1


def test_truncate_left_keeps_at_most_half_the_context_for_the_reply() -> None:
    session, model = truncating_session(200, 5000)
    events = list(session.send("b" * 500))
    cut = [e.text for e in events if isinstance(e, Notice) and "truncate-left" in e.text]
    assert cut and "leave 100 for the reply" in cut[0]


def test_baichuan2_profile_truncates_left_like_build_chat_input() -> None:
    profile = load_profile("baichuan2")
    assert profile.context.overflow == "truncate-left"
    assert profile.model.n_ctx - profile.sampling.max_tokens == 2048
