"""Reasoning models: the thinking is told from the answer (engine/reasoning.py), on real
llama.cpp with scripted GGUFs whose vocab holds <think>/</think>, and in the session."""

from __future__ import annotations

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.events import Done, Notice, Stats, Thinking, Token
from lcchat.engine.fake import FakeModel, fake_session
from lcchat.engine.reasoning import Markers, Splitter, detect, opened_by
from lcchat.engine.session import open_session
from tests import models

THINK = Markers("<think>", "</think>")
SPECIALS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
# DeepSeek-R1's newer templates end the prompt inside the block: the reply starts thinking.
OPENING_TEMPLATE = models.CHATML_TEMPLATE.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n'")


def split(pieces: list[str], inside: bool = False) -> tuple[str, str, Splitter]:
    s = Splitter(THINK, inside=inside)
    out = [p for piece in pieces for p in s.feed(piece)] + s.flush()
    return "".join(t for k, t in out if k), "".join(t for k, t in out if not k), s


# ---------------------------------------------------------------- the splitter


def test_markers_split_anywhere_are_found() -> None:
    text = "<think>\nLet me see: 2+2.\n</think>\n\nFour."
    for a in range(1, len(text)):
        for b in range(a + 1, len(text), 5):
            assert split([text[:a], text[a:b], text[b:]])[:2] == ("Let me see: 2+2.", "Four."), (a, b)


def test_a_reply_without_a_block_is_all_answer_and_a_later_marker_is_answer_text() -> None:
    assert split(["Four. ", "<think>x</think>"])[:2] == ("", "Four. <think>x</think>")
    assert split(["<thi", "s is fine"])[:2] == ("", "<this is fine")
    assert split(["<", "th"])[:2] == ("", "<th")  # ended before it could be a marker


def test_only_one_block_then_the_rest_is_answer() -> None:
    assert split(["<think>a</think>b<think>c</think>"])[:2] == ("a", "b<think>c</think>")


def test_a_reply_that_starts_inside_the_block() -> None:
    assert split(["Hmm.", "</think>", "Yes."], inside=True)[:2] == ("Hmm.", "Yes.")
    # a model that writes the opening marker again after the template did
    assert split(["\n<th", "ink>\nHmm.</think>Yes."], inside=True)[:2] == ("Hmm.", "Yes.")


def test_an_unclosed_block_stays_thinking() -> None:
    thinking, answer, s = split(["<think>still going", " </th"])
    assert (thinking, answer, s.unclosed) == ("still going </th", "", True)


def test_detect_reads_the_profile_then_template_then_vocab() -> None:
    assert detect(["<r>", "</r>"], "", ()) == Markers("<r>", "</r>")
    assert [detect(*where).source for where in ((["<r>", "</r>"], "<think>", ()), ([], "<think>", ()),
                                                 ([], "", ["<think>", "</think>"]))] == ["profile", "chat template", "vocab"]
    assert detect(["none"], "{{ '<think>' }}", ["<think>", "</think>"]) is None
    assert detect([], "{% if x %}<think>\n{% endif %}", ()) == THINK
    assert detect([], "", ["<think>", "</think>"]) == THINK
    assert detect([], "plain", ["<s>"]) is None
    assert opened_by("<|im_start|>assistant\n<think>\n", THINK) and not opened_by("assistant\n", THINK)


# ---------------------------------------------------------------- real llama.cpp, scripted replies


def run(path, message: str = "What is 2+2?", **overrides):
    values = {"model.path": str(path), "model.n_ctx": 512, "sampling.max_tokens": 64, **overrides}
    session = open_session(load_profile("default", values))
    try:
        events = list(session.send(message))
        return session, events
    finally:
        session.model.close()


def texts(events) -> tuple[str, str]:
    return ("".join(e.text for e in events if isinstance(e, Thinking)),
            "".join(e.text for e in events if isinstance(e, Token)))


@pytest.mark.parametrize("pieces", [
    ["<think>", "\nLet me add.\n", "</think>", "\n\nFour."],  # markers as single control tokens
    ["<th", "ink>\nLet", " me add.\n</", "think>\n\nFour."],  # split across plain tokens
    ["<think>\nLet me add.\n</think>\n\nFour."],  # as plain text in one token
], ids=["single-tokens", "split", "plain"])
def test_thinking_is_told_from_the_answer_on_real_llama_cpp(tmp_path, pieces) -> None:
    path = models.write_scripted_model(tmp_path / "r.gguf", pieces, extra_special_tokens=SPECIALS)
    session, events = run(path)
    assert texts(events) == ("Let me add.", "Four.")
    assert events[-1] == Done("stop", "Four.", "Let me add.")
    stats = [e for e in events if isinstance(e, Stats)][-1]
    assert 0 < stats.reasoning_tokens <= stats.completion_tokens
    reply = session.conversation.messages[-1]
    assert (reply.content, reply.reasoning) == ("Four.", "Let me add.")


def test_a_block_opened_by_the_template(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "o.gguf", ["Let me add.", "\n</think>", "\n\nFour."],
                                       chat_template=OPENING_TEMPLATE, extra_special_tokens=SPECIALS)
    _, events = run(path)
    assert texts(events) == ("Let me add.", "Four.")


def test_an_unclosed_block_at_max_tokens_is_kept_marked_and_not_an_answer(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "u.gguf", ["<think>", "hmm", " more"], loop=True,
                                       extra_special_tokens=SPECIALS)
    session, events = run(path, **{"sampling.max_tokens": 7})
    thinking, answer = texts(events)
    assert thinking.startswith("hmm more") and answer == ""
    assert [(e.text, e.level) for e in events if isinstance(e, Notice) and "still thinking" in e.text] == [
        ("the reply ended while still thinking: its thinking is kept, apart; there is no answer", "warning")]
    reply = session.conversation.messages[-1]
    assert reply.content == "" and reply.reasoning == thinking and reply.interrupted
    prompt = session.formatter.render(session.conversation.chat_messages())
    assert "hmm" not in prompt  # not fed back as an answer


def test_an_unclosed_block_at_ctrl_c_is_kept(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "c.gguf", ["<think>", "hmm", " more"], loop=True,
                                       extra_special_tokens=SPECIALS)
    session = open_session(load_profile("default", {"model.path": str(path), "model.n_ctx": 512,
                                                    "sampling.max_tokens": -1}))
    try:
        seen = 0
        stream = session.send("go on")
        for event in stream:
            if isinstance(event, Thinking):
                seen += 1
                if seen == 3:
                    break  # the front-end stops reading, as on Ctrl+C
        stream.close()
        reply = session.conversation.messages[-1]
        assert reply.interrupted and reply.content == "" and reply.reasoning.startswith("hmm more")
    finally:
        session.model.close()


def test_the_budget_closes_the_block_and_an_answer_follows(tmp_path) -> None:
    # The template opens the block; after the 2-token budget lcchat writes "\n</think>\n\n"
    # itself. This scripted model then starts its script again, as answer text.
    path = models.write_scripted_model(tmp_path / "b.gguf", ["one", " two", " three", " four"],
                                       chat_template=OPENING_TEMPLATE, extra_special_tokens=SPECIALS)
    _, events = run(path, **{"chat.thinking_budget": 2})
    assert texts(events) == ("one two", "one two three four")
    unbudgeted = run(path)[1]
    assert texts(unbudgeted) == ("one two three four", "")


def test_a_budget_of_0_closes_the_block_before_any_thinking(tmp_path) -> None:
    """/think budget 0: the answer at once, the block the template opened closed by lcchat."""
    path = models.write_scripted_model(tmp_path / "z.gguf", ["one", " two", " three", " four"],
                                       chat_template=OPENING_TEMPLATE, extra_special_tokens=SPECIALS)
    session, events = run(path, **{"chat.thinking_budget": 0, "sampling.max_tokens": 64})
    thinking, answer = texts(events)
    assert answer == "one two three four"
    assert thinking == ""  # not one token of it (llama.cpp's budget 0 thinks none too)
    assert session.conversation.messages[-1].content == "one two three four"


@pytest.mark.parametrize(("pieces", "closing"), [
    (["one", " two", " three", " four"], "\n</think>\n\n"),
    (["one", " two\n", " three", " four"], "</think>\n\n"),  # the thinking ends a line already
], ids=["mid-line", "after-newline"])
def test_the_budget_closes_the_block_as_the_template_writes_one(tmp_path, pieces, closing) -> None:
    # Qwen3's template writes a finished block as "<think>\n" + thinking + "\n</think>\n\n" +
    # answer (tests/profiles/templates/qwen3.jinja): the answer starts after a blank line
    path = models.write_scripted_model(tmp_path / "b.gguf", pieces, chat_template=OPENING_TEMPLATE,
                                       extra_special_tokens=SPECIALS)
    session = open_session(load_profile("default", {"model.path": str(path), "model.n_ctx": 512,
                                                    "sampling.max_tokens": 64, "chat.thinking_budget": 2}))
    try:
        events = list(session.send("What is 2+2?"))
        n_prompt = [e for e in events if isinstance(e, Stats)][-1].prompt_tokens
        fed = [session.model.piece(t) for t in session.loop.cached[n_prompt:]]  # the reply as the model read it
        # the marker as its one control token, the newlines as newline tokens: no space in front
        # (llama.cpp's tokenizer puts one before a SentencePiece text and after a special token)
        assert fed[2:2 + len(closing) - 7] == [b"\n"] * closing.startswith("\n") + [b"</think>", b"\n", b"\n"]
        assert b"".join(fed) == ("".join(pieces[:2]) + closing + "".join(pieces)).encode()
        assert texts(events) == ("one two", "".join(pieces))
    finally:
        session.close()


def test_the_markers_are_neither_stops_nor_hidden_even_as_control_tokens(tmp_path) -> None:
    path = models.write_scripted_model(tmp_path / "s.gguf", ["<think>", "hmm", "</think>", "yes"],
                                       extra_special_tokens=SPECIALS)
    session, _ = run(path)
    assert not {"<think>", "</think>"} & set(session.stops + session.hidden)
    plain, _ = run(path, **{"chat.reasoning": ["none"]})
    assert "<think>" in plain.hidden  # without reasoning, a control token is hidden as before


# ---------------------------------------------------------------- thinking off


def test_thinking_off_closes_the_block_in_the_prompt_without_a_switch() -> None:
    from lcchat.config.schema import Profile

    profile = Profile(name="r")
    profile.chat.reasoning = ["<think>", "</think>"]
    profile.chat.thinking = False
    profile.sampling_no_think.temperature = 0.7
    model = FakeModel(replies=[["Four."]])
    session = fake_session(model, profile)
    events = list(session.send("2+2?"))
    assert events[-1] == Done("stop", "Four.")
    prompt = "".join(model.piece(t).decode() for t in model.decoded)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\nFour.")
    assert session._turn_sampling().temperature == 0.7 and session.sampling.temperature == 0.8
    for thinking in (None, True):  # /think auto, /think on: the profile's own sampling
        session.thinking = thinking
        assert session._turn_sampling().temperature == 0.8
    profile.chat.reasoning = ["none"]  # a model that does not reason: thinking off changes nothing
    plain = fake_session(FakeModel(), profile)
    assert plain.markers is None and plain.thinking is False and plain._turn_sampling().temperature == 0.8


def test_show_prompt_shows_the_empty_block_no_think_writes(tmp_path) -> None:
    # ChatML has no enable_thinking: --no-think closes the block in the prompt itself
    from tests.test_cli import run as run_cli

    path = models.write_scripted_model(tmp_path / "n.gguf", ["Four."], extra_special_tokens=SPECIALS)
    r = run_cli(["-m", str(path), "-c", "512", "--no-think", "--show-prompt", "What is 2+2?"])
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()  # the text ends with "\n\n", then the ruler's own line
    assert "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n\n----" in out
    assert "'<think>'" in out and "'</think>'" in out  # among the tokens, as the control tokens they are
    shown = run_cli(["-m", str(path), "-c", "512", "--show-prompt", "What is 2+2?"]).stdout.decode()
    assert "<think>" not in shown and "<|im_start|>assistant\n\n----" in shown


@pytest.mark.parametrize("template", [models.CHATML_TEMPLATE, OPENING_TEMPLATE], ids=["chatml", "opening"])
def test_the_prompt_shown_is_the_prompt_evaluated(tmp_path, template) -> None:
    from lcchat.engine.prompt_view import preview

    path = models.write_scripted_model(tmp_path / "e.gguf", ["Four."], chat_template=template,
                                       extra_special_tokens=SPECIALS)
    session = open_session(load_profile("default", {"model.path": str(path), "model.n_ctx": 512,
                                                    "chat.thinking": False}))
    try:
        for message in ("What is 2+2?", "And 3+3?"):  # the second turn reuses the first's tokens
            shown = preview(session, message)
            events = list(session.send(message))
            assert events[-1] == Done("stop", "Four.")
            stats = [e for e in events if isinstance(e, Stats)][-1]
            assert stats.prompt_tokens == len(shown.tokens)
            assert session.loop.cached[:len(shown.tokens)] == shown.tokens
            fed = b"".join(session.model.piece(t) for t in shown.tokens).decode()
            assert shown.text.endswith("assistant\n<think>\n\n</think>\n\n") and fed.endswith("\n</think>\n\n")
    finally:
        session.close()


def test_thinking_budget_on_a_fake_model_counts_thinking_tokens_apart() -> None:
    from lcchat.config.schema import Profile

    profile = Profile(name="r")
    profile.chat.reasoning = ["<think>", "</think>"]
    model = FakeModel(replies=[["<think>", "a", "b", "</think>", "Four", "."]])
    events = list(fake_session(model, profile).send("2+2?"))
    stats = [e for e in events if isinstance(e, Stats)][-1]
    assert (stats.reasoning_tokens, stats.completion_tokens) == (4, 6)
    assert stats.as_json()["reasoning_tokens"] == 4


def test_no_markers_no_change() -> None:
    model = FakeModel(replies=[["<think>", "a", "</think>", "b"]])
    events = list(fake_session(model).send("hi"))
    assert not any(isinstance(e, Thinking) for e in events)
    assert events[-1].text == "<think>a</think>b"
