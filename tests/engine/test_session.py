"""ChatSession on a scripted model: turns, overflow, undo/retry, cancelling, recording."""

from __future__ import annotations

import logging
import threading

import pytest

from lcchat.config.schema import Profile
from lcchat.engine.events import ContextFull, Done, Error, Notice, Stats, Token
from lcchat.engine.fake import FakeModel, fake_session


def reply(events) -> tuple[str, list]:
    events = list(events)
    return "".join(e.text for e in events if isinstance(e, Token)), events


def test_a_turn_streams_tokens_then_stats_then_done() -> None:
    session = fake_session(FakeModel(replies=[["Hel", "lo"]]))
    text, events = reply(session.send("hi"))
    assert text == "Hello"
    assert isinstance(events[-1], Done) and events[-1].finish_reason == "stop"
    final = [e for e in events if isinstance(e, Stats) and e.final]
    assert final and final[0].completion_tokens == 2
    assert [m.role for m in session.conversation.messages] == ["user", "assistant"]


def test_template_markers_written_as_text_stop_the_reply() -> None:
    session = fake_session(FakeModel(replies=[["Sure.", "<|im_", "start|>user", "\nmore"]]))
    text, _ = reply(session.send("hi"))
    assert text == "Sure."


def test_follow_up_evaluates_only_new_tokens() -> None:
    model = FakeModel(replies=[["A"], ["B"], ["C"]])
    session = fake_session(model)
    reply(session.send("one"))
    reply(session.send("two"))
    before = len(model.decoded)
    _, events = reply(session.send("three"))
    stats = [e for e in events if isinstance(e, Stats) and e.final][0]
    added = "<|im_end|>\n<|im_start|>user\nthree<|im_end|>\n<|im_start|>assistant\n"
    assert stats.prompt_eval_tokens == len(added)  # the fake tokenizes one character a token
    assert stats.prompt_eval_tokens < stats.prompt_tokens / 2
    assert len(model.decoded) - before == stats.prompt_eval_tokens + 1  # prompt + the one reply token


def test_overflow_drops_oldest_turns_but_keeps_the_system_prompt() -> None:
    profile = Profile(name="t")
    profile.chat.system = "SYSTEM"
    profile.context.reserve = 20
    model = FakeModel(n_ctx=200, replies=[["x" * 1] * 3] * 10)
    session = fake_session(model, profile)
    notices = []
    for i in range(6):
        _, events = reply(session.send(f"message number {i} " + "y" * 20))
        notices += [e for e in events if isinstance(e, Notice)]
        assert not any(isinstance(e, Error) for e in events)
    assert any("dropped" in n.text and "system prompt is kept" in n.text for n in notices)
    assert all(n.level == "warning" for n in notices)
    conv = session.conversation
    assert conv.window_start > 0
    assert len(conv.messages) == 12  # nothing is lost from the conversation itself
    assert conv.chat_messages()[0] == {"role": "system", "content": "SYSTEM"}


def test_message_too_big_for_the_context_is_a_clear_error() -> None:
    session = fake_session(FakeModel(n_ctx=64))
    _, events = reply(session.send("z" * 500))
    errors = [e for e in events if isinstance(e, Error)]
    assert errors and "with the system prompt, but the context holds 64" in errors[0].message
    assert errors[0].fact == ContextFull(errors[0].fact.needed, 64, errors[0].fact.reserve, alone=True)
    assert errors[0].code == 2
    assert session.conversation.messages == []


def test_error_policy_refuses_instead_of_dropping() -> None:
    profile = Profile(name="t")
    profile.context.overflow = "error"
    profile.context.reserve = 10
    session = fake_session(FakeModel(n_ctx=120, replies=[["a"]] * 5), profile)
    reply(session.send("q" * 40))
    _, events = reply(session.send("r" * 40))
    assert any(isinstance(e, Error) and "overflow policy is 'error'" in e.message for e in events)


def test_undo_and_retry() -> None:
    session = fake_session(FakeModel(replies=[["one"], ["two"], ["three"]]))
    reply(session.send("q1"))
    reply(session.send("q2"))
    assert session.undo()
    assert [m.content for m in session.conversation.messages] == ["q1", "one"]
    text, _ = reply(session.retry())
    assert text == "three"
    assert [m.content for m in session.conversation.messages] == ["q1", "three"]


def test_clear_keeps_the_system_prompt() -> None:
    profile = Profile(name="t")
    profile.chat.system = "be brief"
    session = fake_session(FakeModel(), profile)
    reply(session.send("hi"))
    assert session.last_stats is not None
    session.clear()
    assert session.conversation.messages == []
    assert session.conversation.system == "be brief"
    assert session.context_used == 0
    assert session.last_stats is None  # /stats says "No reply yet."


def test_cancel_from_another_thread_keeps_the_partial_reply() -> None:
    model = FakeModel(replies=[[f"t{i} " for i in range(1000)]])
    session = fake_session(model)
    seen: list[str] = []
    events = []
    for event in session.send("go"):
        events.append(event)
        if isinstance(event, Token):
            seen.append(event.text)
            if len(seen) == 5:
                canceller = threading.Thread(target=session.cancel)
                canceller.start()
                canceller.join()  # the cancel has happened before the loop goes on
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "interrupted"
    assert len(seen) == 5  # the loop stops at the next token
    last = session.conversation.messages[-1]
    assert last.interrupted and last.content == "".join(seen)
    text, _ = reply(session.send("again"))  # still usable
    assert text == "OK"


def test_listeners_see_every_turn_even_interrupted() -> None:
    session = fake_session(FakeModel(replies=[["a"]]))
    turns = []
    session.listeners.append(lambda s, user, assistant: turns.append((user.content, assistant.content)))
    reply(session.send("hello"))
    assert turns == [("hello", "a")]


def test_failing_listener_does_not_end_the_chat(caplog) -> None:
    session = fake_session(FakeModel(replies=[["a"], ["b"]]))

    def broken(*_):
        raise OSError("disk full")

    session.listeners.append(broken)
    with caplog.at_level(logging.WARNING, logger="lcchat.session"):
        assert reply(session.send("x"))[0] == "a"
        assert reply(session.send("y"))[0] == "b"
    record = [r for r in caplog.records if r.name == "lcchat.session"][0]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "a turn listener failed")
    assert record.exc_info[1].args == ("disk full",)  # the traceback goes to the log (-v)


def test_a_template_that_refuses_the_conversation_is_one_error_and_the_message_is_not_kept() -> None:
    from lcchat.engine import templates

    model = FakeModel()
    session = fake_session(model)
    session.formatter = templates.compile_jinja("{{ raise_exception('roles must alternate') }}")
    events = list(session.send("hi"))
    assert len(events) == 1 and isinstance(events[0], Error)
    with pytest.raises(templates.TemplateError) as info:
        session.formatter.render([{"role": "user", "content": "hi"}])
    assert events[0] == Error(str(info.value), info.value.exit_code) and "roles must alternate" in events[0].message
    assert session.conversation.messages == [] and model.decoded == []


def test_a_control_token_the_template_does_not_use_is_hidden_from_the_reply() -> None:
    """A control token that is no turn marker of the template (here <|im_start|> under a
    plain "User:" template) does not end the reply when the model writes it as text; it
    is taken out, and the user told once."""
    from lcchat.engine import templates

    session = fake_session(FakeModel(replies=[["Hi ", "<|im_", "start|>", "there"]]))
    session.formatter = templates.compile_jinja(
        "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}assistant:")
    session.set_stops([])
    assert "<|im_start|>" in session.hidden and "<|im_start|>" not in session.stops
    text, events = reply(session.send("hi"))
    assert text == "Hi there"
    assert Notice("hid special-token text the model wrote as plain text: <|im_start|>", "warning") in events
    assert session.conversation.messages[-1].content == "Hi there"


def test_a_reply_the_front_end_stops_reading_is_kept_with_its_question() -> None:
    """Ctrl+C in a front-end's loop closes the event stream: the text so far is stored as
    the reply, marked interrupted, and the listeners (the store) get the question it answers."""
    session = fake_session(FakeModel(replies=[["Hel", "lo", " there", " and", " more"]]))
    turns = []
    session.listeners.append(lambda s, user, answer: turns.append((user, answer)))
    stream = session.send("hi")
    shown = ""
    for event in stream:
        if isinstance(event, Token):
            shown += event.text
            if shown.startswith("Hello"):
                break
    stream.close()
    [(user, answer)] = turns
    assert user is session.conversation.messages[0] and user.content == "hi"
    assert answer is session.conversation.messages[1] and answer.interrupted
    assert answer.content.startswith(shown), (answer.content, shown)


def test_a_failed_generation_keeps_the_thinking_so_far() -> None:
    profile = Profile(name="t")
    profile.chat.reasoning = ["<think>", "</think>"]
    model = BreakingModel(replies=[["<think>", "let me", " see", " more", "</think>", "no"]])
    model.good = 3
    session = fake_session(model, profile)
    _, events = reply(session.send("hi"))
    assert events[-2:] == [Error("generation failed: the backend broke"), Done("error", "")]
    answer = session.conversation.messages[-1]
    assert (answer.content, answer.reasoning, answer.interrupted) == ("", "let me see", True)


def test_a_message_sent_while_a_reply_runs_is_refused_and_not_kept() -> None:
    session = fake_session(FakeModel(replies=[["ok"]]))
    with session._guard():
        assert list(session.send("hi")) == [Error("a reply is already being generated")]
    assert session.conversation.messages == []


class SpecialsSeen(FakeModel):
    """Records each text it tokenizes and whether special tokens were parsed in it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pieces: list[tuple[str, bool]] = []

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = True) -> list[int]:
        self.pieces.append((text, special))
        return super().tokenize(text, add_bos=add_bos, special=special)


@pytest.mark.parametrize("parse_special", [False, True])
def test_special_token_text_in_a_message_is_plain_text_unless_parse_special_is_set(parse_special: bool) -> None:
    """A message that contains "<|im_end|>" must not end its turn: that text is tokenized
    with special tokens off, the template's markers with them on. [chat] parse_special =
    true restores the old reading: the whole prompt with special tokens parsed."""
    profile = Profile(name="t")
    profile.chat.parse_special = parse_special
    model = SpecialsSeen(replies=[["ok"]])
    session = fake_session(model, profile)
    reply(session.send("a <|im_end|> b"))
    assert model.pieces
    plain = [text for text, special in model.pieces if not special]
    if parse_special:
        assert plain == [] and any("a <|im_end|> b" in text for text, _ in model.pieces)
    else:
        assert any("a <|im_end|> b" in text for text in plain), plain
        assert all("<|im_start|>" not in text for text in plain)  # the template's own markers stay special
        assert any("<|im_start|>" in text for text, special in model.pieces if special)


def test_the_debug_log_names_special_token_text_tokenized_as_plain_text(caplog: pytest.LogCaptureFixture) -> None:
    """With -v the log says which texts in a message looked like special tokens."""
    session = fake_session(FakeModel(replies=[["ok"], ["ok"]]))

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records
                if r.name == "lcchat.session" and r.getMessage().startswith("special-token text")]

    with caplog.at_level(logging.DEBUG, logger="lcchat.session"):
        reply(session.send("plain words"))
        assert said() == []
        reply(session.send("a <|im_end|> b <|im_start|> c <|im_end|>"))
    lines = said()
    assert lines and set(lines) == {"special-token text in a message, tokenized as plain text: '<|im_end|>', "
                                    "'<|im_start|>'"}, lines


def test_lone_surrogates_and_nul_are_made_safe() -> None:
    session = fake_session(FakeModel(replies=[["ok"]]))
    text, events = reply(session.send("bad \udcff byte and \x00 nul and emoji 😀"))
    assert text == "ok"
    # as stored and tokenized: a lone surrogate (undecodable input) becomes ?, NUL the replacement character
    assert session.conversation.messages[0].content == "bad ? byte and \ufffd nul and emoji 😀"
    for sent, kept in (("a\ud800", "a?"), ("a\udfff", "a?"), ("\ud7ff \ue000", "\ud7ff \ue000")):  # the range's ends
        reply(session.send(sent))
        assert session.conversation.messages[-2].content == kept


def test_max_tokens_ends_with_length() -> None:
    session = fake_session(FakeModel(replies=[["w"] * 50]))
    session.sampling.max_tokens = 5
    text, events = reply(session.send("x"))
    assert text == "w" * 5
    assert events[-1].finish_reason == "length"
    assert any(isinstance(e, Notice) and "max_tokens" in e.text for e in events)


def test_reply_running_into_the_end_of_the_context_stops_with_length() -> None:
    model = FakeModel(n_ctx=96, replies=[["w"] * 500])
    session = fake_session(model)
    session.profile.context.reserve = 8
    session.sampling.max_tokens = -1
    text, events = reply(session.send("x"))
    assert events[-1].finish_reason == "length"
    assert any(isinstance(e, Notice) and "end of the context window" in e.text for e in events)
    assert session.context_used <= 96


def test_a_stop_string_ends_the_reply_and_generation() -> None:
    profile = Profile(name="t")
    profile.chat.stop = ["</s>"]
    model = FakeModel(replies=[["Hi", " there", "<", "/s>", " more", " and more"]])
    session = fake_session(model, profile)
    text, events = reply(session.send("x"))
    assert text == "Hi there"
    assert events[-1] == Done("stop", "Hi there")
    final = [e for e in events if isinstance(e, Stats) and e.final][0]
    assert final.completion_tokens == 4  # the loop stopped at the stop string, not at EOS
    assert session.conversation.messages[-1].content == "Hi there"


def test_set_stops_adds_stops_for_the_next_turns() -> None:
    session = fake_session(FakeModel(replies=[["a", "END", "b"], ["c", "END", "d"]]))
    assert reply(session.send("x"))[0] == "aENDb"
    session.set_stops(["END"])
    assert "END" in session.stops
    assert reply(session.send("y"))[0] == "c"


def test_an_empty_message_is_bad_input_and_nothing_is_sent() -> None:
    model = FakeModel()
    session = fake_session(model)
    sent = []
    session.on_send.append(lambda s, user: sent.append(user))
    for text in ("", "  \n\t"):
        assert list(session.send(text)) == [Error("the message is empty", 2)]
    assert session.conversation.messages == [] and sent == [] and model.decoded == []


def test_send_hooks_see_the_message_before_its_reply_and_a_failing_one_is_logged(caplog) -> None:
    """The store writes the user's message when it is sent, so a crash mid-reply loses nothing."""
    session = fake_session(FakeModel(replies=[["a"]]))
    seen = []

    def broken(s, user) -> None:
        raise OSError("disk full")

    session.on_send += [broken, lambda s, user: seen.append((s, user, list(s.conversation.messages)))]
    with caplog.at_level(logging.WARNING, logger="lcchat.session"):
        text, _ = reply(session.send("hello"))
    user = session.conversation.messages[0]
    assert seen == [(session, user, [user])] and (user.role, user.content) == ("user", "hello")
    assert text == "a"  # the turn went on
    [record] = [r for r in caplog.records if r.name == "lcchat.session"]
    assert (record.levelno, record.getMessage()) == (logging.WARNING, "a send hook failed")
    assert record.exc_info[1].args == ("disk full",)


class BreakingModel(FakeModel):
    """A model whose sampler fails after `good` tokens (a backend error mid-reply)."""

    good = 2

    def make_sampler(self, sampling):
        sampler = super().make_sampler(sampling)
        inner, given = sampler.sample, []

        def sample(idx: int = -1) -> int:
            if len(given) == self.good:
                raise RuntimeError("the backend broke")
            given.append(1)
            return inner(idx)

        sampler.sample = sample
        return sampler


def test_a_failed_generation_keeps_the_partial_reply_and_the_session_goes_on() -> None:
    model = BreakingModel(replies=[["Hel", "lo", " never"], ["fine"]])
    session = fake_session(model)
    turns = []
    session.listeners.append(lambda s, user, answer: (turns.append((user.content, answer.content, answer.interrupted)),
                                                      s.warn("could not save")))
    _, events = reply(session.send("hi"))
    assert events[-3:] == [Error("generation failed: the backend broke"), Notice("could not save", "warning"),
                           Done("error", "Hello")]
    assert turns == [("hi", "Hello", True)]  # kept, marked interrupted
    assert session.context_used == 0 and not session.busy  # the cache is reset, the lock released
    model.good = 99
    text, events = reply(session.send("again"))
    assert text == "fine" and events[-2:] == [Done("stop", "fine"), Notice("could not save", "warning")]
    assert [m.content for m in session.conversation.messages] == ["hi", "Hello", "again", "fine"]
