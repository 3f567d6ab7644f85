"""Qwen3's and DeepSeek-R1's real chat templates (tests/profiles/templates, sources in
SOURCES.md) with thinking on and off, and a 3-turn conversation whose prompt is what the
family's own template gives: earlier thinking never reaches the next prompt."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from lcchat.config.schema import Profile
from lcchat.engine import templates
from lcchat.engine.events import Done, Thinking
from lcchat.engine.fake import FakeModel
from lcchat.engine.session import ChatSession

HERE = Path(__file__).parent / "templates"
QWEN3 = (HERE / "qwen3.jinja").read_text(encoding="utf-8")
R1 = (HERE / "deepseek-r1-distill-qwen.jinja").read_text(encoding="utf-8")
QUESTIONS = ["What is 2+2?", "And 3+3?", "And 4+4?"]
ANSWERS = ["Four.", "Six.", "Eight."]


def reference(template: str, messages: list[dict], **variables) -> str:
    """The template rendered as Hugging Face's apply_chat_template renders it."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token="",
                                            eos_token="", **variables)


def session_for(template: str, replies: list[list[str]], **chat) -> tuple[ChatSession, list[str]]:
    profile = Profile(name="t")
    for key, value in chat.items():
        setattr(profile.chat, key, value)
    model = FakeModel(replies=replies)
    session = ChatSession(model=model, profile=profile, formatter=templates.compile_jinja(template))
    prompts: list[str] = []
    run = session.loop.run

    def recording(prompt, *args, **kwargs):  # the FakeModel's tokens are characters
        prompts.append("".join(model.piece(t).decode() for t in prompt))
        return run(prompt, *args, **kwargs)

    session.loop.run = recording  # type: ignore[method-assign]
    return session, prompts


def converse(session: ChatSession) -> list[list]:
    return [list(session.send(q)) for q in QUESTIONS]


def test_qwen3_three_turns_match_its_template_and_drop_earlier_thinking() -> None:
    replies = [["<think>", f"\nthought {i}\n", "</think>", "\n\n", a] for i, a in enumerate(ANSWERS)]
    session, prompts = session_for(QWEN3, replies, system="Be brief.")
    turns = converse(session)
    assert [t[-1] for t in turns] == [Done("stop", a, f"thought {i}") for i, a in enumerate(ANSWERS)]
    # what the family's template gives for the raw replies: it strips the thinking itself
    raw = [{"role": "system", "content": "Be brief."}]
    for question, reply in zip(QUESTIONS, replies):
        raw.append({"role": "user", "content": question})
        expected = reference(QWEN3, raw)
        assert prompts[len(raw) // 2 - 1] == expected
        raw.append({"role": "assistant", "content": "".join(reply)})
    assert "thought" not in prompts[-1] and prompts[-1].endswith("<|im_start|>assistant\n")


def test_qwen3_thinking_off_uses_enable_thinking() -> None:
    session, prompts = session_for(QWEN3, [["Four."]], thinking=False)
    events = list(session.send("What is 2+2?"))
    assert not any(isinstance(e, Thinking) for e in events) and events[-1].text == "Four."
    expected = reference(QWEN3, [{"role": "user", "content": "What is 2+2?"}], enable_thinking=False)
    assert prompts[0] == expected and expected.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    session.thinking = True  # /think on: the switch goes to the template
    list(session.send("And 3+3?"))
    assert prompts[1].endswith("<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n")


def test_r1_starts_inside_the_block_and_three_turns_match_its_template() -> None:
    replies = [[f"thought {i}", "\n</think>", "\n\n", a] for i, a in enumerate(ANSWERS)]
    session, prompts = session_for(R1, replies)
    turns = converse(session)
    assert [t[-1] for t in turns] == [Done("stop", a, f"thought {i}") for i, a in enumerate(ANSWERS)]
    # DeepSeek's API hands back the answer as content and the thinking apart; the template
    # given those messages is the family's own prompt
    messages: list[dict] = []
    for i, question in enumerate(QUESTIONS):
        messages.append({"role": "user", "content": question})
        assert prompts[i] == reference(R1, messages)
        messages.append({"role": "assistant", "content": ANSWERS[i]})
    assert prompts[-1].endswith("<｜User｜>And 4+4?<｜Assistant｜><think>\n") and "thought" not in prompts[-1]


def test_r1_thinking_off_closes_the_block_the_template_opened() -> None:
    session, prompts = session_for(R1, [["Four."]], thinking=False)
    events = list(session.send("What is 2+2?"))
    assert events[-1] == Done("stop", "Four.")
    assert prompts[0] == reference(R1, [{"role": "user", "content": "What is 2+2?"}]) + "\n</think>\n\n"


@pytest.mark.parametrize("template", [QWEN3, R1], ids=["qwen3", "r1"])
def test_the_markers_come_from_the_template(template: str) -> None:
    session, _ = session_for(template, [])
    assert session.markers is not None and session.markers.open == "<think>"


def test_the_shipped_profiles_sample_per_mode_as_the_model_cards_say() -> None:
    from lcchat.config.loader import load_profile

    qwen3 = load_profile("qwen3")
    assert qwen3.chat.reasoning == ["<think>", "</think>"]
    s, off = qwen3.sampling, qwen3.sampling_no_think
    assert (s.temperature, s.top_p, s.top_k, s.min_p) == (0.6, 0.95, 20, 0.0)
    session = ChatSession(model=FakeModel(), profile=qwen3, formatter=templates.compile_jinja(QWEN3))
    session.thinking = False
    turn = session._turn_sampling()
    assert (turn.temperature, turn.top_p, turn.top_k, turn.min_p) == (0.7, 0.8, 20, 0.0)
    assert (off.temperature, session.sampling.temperature) == (0.7, 0.6)
    r1 = load_profile("deepseek-r1-distill")
    assert (r1.sampling.temperature, r1.sampling.top_p, r1.chat.system) == (0.6, 0.95, "")


def test_show_prompt_follows_think_off_at_once() -> None:
    from lcchat.engine.prompt_view import preview

    session, _ = session_for(QWEN3, [])
    assert preview(session, "Hi").text.endswith("<|im_start|>assistant\n")
    session.thinking = False  # /think off, before any turn
    assert preview(session, "Hi").text.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
