"""The shipped seed-model profiles on tiny GGUFs that carry each family's special tokens.

For every family: the exact prompt of a two-turn conversation, that the template's markers
are single tokens of the vocab, that the stops hold when a reply writes them (split across
tokens too), and that no template or control-token text ever reaches the output.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lcchat.config.loader import load_profile
from lcchat.engine.events import Done, Notice, Token
from lcchat.engine.fake import FakeModel
from lcchat.engine.generate import StopFilter
from lcchat.engine.session import ChatSession, open_session
from tests import models

SYSTEM = "Be brief."
CONVERSATION = [
    {"role": "system", "content": SYSTEM},
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi there."},
    {"role": "user", "content": "What is 2+2?"},
]
CHATML_PROMPT = ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                 "<|im_start|>assistant\nHi there.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                 "<|im_start|>assistant\n")
LLAMA2_PROMPT = "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHello [/INST] Hi there.</s><s>[INST] What is 2+2? [/INST]"


@dataclass
class Family:
    profile: str
    special: tuple[str, ...]  # the family's special tokens, written as CONTROL tokens
    prompt: str  # the exact prompt for CONVERSATION
    stops: tuple[str, ...]  # stops the session must have
    markers: tuple[str, ...]  # template markers that must be single tokens
    eos: str = "</s>"
    bos: str = "<s>"
    gguf_template: str | None = None  # what the family's GGUFs carry; None: the profile's own
    metadata: dict = field(default_factory=dict)


FAMILIES = [
    Family("internlm2", ("<|im_start|>", "<|im_end|>", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]"),
           "<s>" + CHATML_PROMPT, ("</s>", "<|im_end|>", "[UNUSED_TOKEN_145]", "<|im_start|>"),
           ("<s>", "<|im_start|>", "<|im_end|>")),
    Family("internlm2_5", ("<|im_start|>", "<|im_end|>", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]"),
           "<s>" + CHATML_PROMPT, ("</s>", "<|im_end|>", "[UNUSED_TOKEN_145]"),
           ("<s>", "<|im_start|>", "<|im_end|>"), eos="<|im_end|>"),
    Family("baichuan2", ("<reserved_106>", "<reserved_107>"),
           "Be brief.<reserved_106>Hello<reserved_107>Hi there.<reserved_106>What is 2+2?<reserved_107>",
           ("</s>", "<reserved_106>", "<reserved_107>"), ("<reserved_106>", "<reserved_107>"),
           gguf_template="", metadata={"tokenizer.ggml.add_bos_token": False}),
    Family("chinese-alpaca-2", (), LLAMA2_PROMPT, ("</s>",), ("<s>", "</s>"), gguf_template=""),
    Family("chinese-alpaca-2-16k", (), LLAMA2_PROMPT, ("</s>",), ("<s>", "</s>"), gguf_template=""),
    Family("yi-34b-chat", ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|im_sep|>"), CHATML_PROMPT,
           ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "<|im_sep|>"), ("<|im_start|>", "<|im_end|>"), eos="<|endoftext|>",
           metadata={"tokenizer.ggml.add_bos_token": False}),
    Family("qwen2", ("<|im_start|>", "<|im_end|>", "<|endoftext|>"), CHATML_PROMPT,
           ("<|im_end|>", "<|endoftext|>", "<|im_start|>"), ("<|im_start|>", "<|im_end|>"), eos="<|im_end|>",
           metadata={"tokenizer.ggml.add_bos_token": False}),
    Family("llama3", ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
           "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHi there.<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n",
           ("<|eot_id|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"),
           ("<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"),
           eos="<|eot_id|>", bos="<|begin_of_text|>"),
    Family("mistral", (), "<s>[INST] Be brief.\n\nHello [/INST]Hi there.</s>[INST] What is 2+2? [/INST]",
           ("</s>",), ("<s>", "</s>"), gguf_template=""),
]
IDS = [f.profile for f in FAMILIES]


def family_gguf(directory: Path, family: Family) -> Path:
    """A tiny llama-loadable GGUF with the family's special tokens, BOS/EOS and template."""
    tokens = models.family_tokens(family.special)
    metadata = {"tokenizer.ggml.bos_token_id": tokens.index(family.bos), **family.metadata}
    template = family.gguf_template
    if template is None:
        template = load_profile(family.profile).chat.template
    return models.write_tiny_model(directory / f"{family.profile}.gguf", chat_template=template or None,
                                   extra_special_tokens=family.special, eos_token=family.eos, metadata=metadata)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """One real session per family, opened the way `lcchat -p FAMILY -m FILE` opens it."""
    directory = tmp_path_factory.mktemp("families")
    opened = {}
    for family in FAMILIES:
        path = family_gguf(directory, family)
        profile = load_profile(family.profile, {"model.path": str(path), "chat.system": SYSTEM, "sampling.seed": 3})
        opened[family.profile] = open_session(profile)
    yield opened
    for session in opened.values():
        session.model.close()


class FamilyModel(FakeModel):
    """A scripted model with a real family model's vocab surface (control and EOG texts)."""

    def __init__(self, real, replies):
        super().__init__(replies=replies)
        self._controls = real.control_texts()
        self._eog = real.eog_texts()
        self.bos_text, self.eos_text, self.add_bos = real.bos_text, real.eos_text, real.add_bos

    def control_texts(self) -> list[str]:
        return list(self._controls)

    def eog_texts(self) -> list[str]:
        return list(self._eog)


def chat(session: ChatSession, text: str) -> tuple[str, list]:
    events = list(session.send(text))
    return "".join(e.text for e in events if isinstance(e, Token)), events


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_two_turn_prompt_is_exactly_the_family_format(sessions, family: Family) -> None:
    session = sessions[family.profile]
    assert session.formatter.render(CONVERSATION) == family.prompt
    # the markers are single special tokens of the vocab, so the model sees them as such
    for marker in family.markers:
        assert len(session.model.tokenize(marker, special=True)) == 1, marker


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_the_session_stops_at_the_family_stops(sessions, family: Family) -> None:
    session = sessions[family.profile]
    assert set(family.stops) <= set(session.stops), session.stops
    for stop in session.stops:
        for cut in range(1, len(stop)):
            f = StopFilter(session.stops, session.hidden)
            shown = f.feed("Four.") + f.feed(stop[:cut]) + f.feed(stop[cut:] + "\nuser: more") + f.flush()
            assert shown == "Four." and f.stopped_by == stop


@pytest.mark.parametrize("family", FAMILIES, ids=IDS)
def test_no_template_text_leaks_in_a_scripted_conversation(sessions, family: Family) -> None:
    real = sessions[family.profile]
    controls = real.model.control_texts()
    replies = []
    for stop in real.stops:  # each stop written by the model, split across two tokens
        replies.append(["Four", ".", stop[: len(stop) // 2], stop[len(stop) // 2:], "LEAKED"])
    for hidden in real.hidden:  # control tokens that are not stops are hidden, with a warning
        replies.append(["Fo", hidden, "ur."])
    model = FamilyModel(real.model, replies)
    session = ChatSession(model=model, profile=real.profile, formatter=real.formatter)
    assert session.stops == real.stops and session.hidden == real.hidden
    for _ in real.stops:
        text, events = chat(session, "What is 2+2?")
        assert text == "Four." and events[-1] == Done("stop", "Four.")
    for hidden in real.hidden:
        text, events = chat(session, "Again?")
        assert text == "Four."
        assert any(isinstance(e, Notice) and hidden in e.text for e in events)
    for message in session.conversation.messages:
        assert "LEAKED" not in message.content
        if message.role == "assistant":
            assert not any(c in message.content for c in controls), message.content


def test_internlm2_profile_defaults_come_from_the_model() -> None:
    profile = load_profile("internlm2")
    assert profile.chat.system.startswith("You are an AI assistant whose name is InternLM (书生·浦语).")
    assert (profile.sampling.temperature, profile.sampling.top_p, profile.sampling.top_k) == (0.2, 0.9, 5)
    assert profile.sampling.repeat_penalty == 1.1 and profile.model.n_gpu_layers == -1
    assert profile.rope.scaling == "ntk"


def test_baichuan2_keeps_half_the_context_for_the_reply() -> None:
    profile = load_profile("baichuan2")
    assert (profile.model.n_ctx, profile.context.reserve, profile.sampling.max_tokens) == (4096, 2048, 2048)


def test_alpaca_16k_and_yi_rope_settings() -> None:
    alpaca = load_profile("chinese-alpaca-2-16k")
    assert (alpaca.model.n_ctx, alpaca.rope.scaling, alpaca.rope.freq_scale) == (16384, "auto", 0.25)
    assert alpaca.chat.template == load_profile("chinese-alpaca-2").chat.template
    yi = load_profile("yi-34b-chat")
    assert (yi.model.n_ctx, yi.rope.freq_base) == (4096, 5_000_000.0)


def test_every_seed_profile_extends_default_and_leaves_the_model_path_to_m() -> None:
    for family in FAMILIES:
        profile = load_profile(family.profile)
        assert profile.model.path == ""
        assert profile.extends in ("default", "chinese-alpaca-2")


def test_baichuan2_prompt_history_is_trimmed_from_the_oldest_turn(sessions) -> None:
    real = sessions["baichuan2"]
    model = FamilyModel(real.model, [["ok"]] * 20)
    model.n_ctx = 4096
    session = ChatSession(model=model, profile=real.profile, formatter=real.formatter)
    for i in range(12):  # the fake tokenizer counts characters: 12 x ~260 > 4096 - 2048
        chat(session, f"question {i} " + "x" * 250)
    kept = session.conversation.chat_messages()
    assert kept[0] == {"role": "system", "content": SYSTEM}
    assert session.conversation.window_start > 0
    assert len(real.formatter.render(kept[:-1])) + 2048 <= 4096  # the last prompt left 2048 for the reply


# ---------------------------------------------------------------- the InternLM2 stop-token guard


@pytest.mark.parametrize("template_marker", ["<|im_end|>", "[UNUSED_TOKEN_145]"])
def test_internlm2_turn_end_never_prints_even_with_the_default_profile(tmp_path, template_marker) -> None:
    """A GGUF whose EOS is </s> while its chat turns end with <|im_end|> (or, in older
    conversions, [UNUSED_TOKEN_145]): neither text may reach the screen, profile or not."""
    start = "<|im_start|>" if template_marker == "<|im_end|>" else "[UNUSED_TOKEN_146]"
    template = models.CHATML_TEMPLATE.replace("<|im_start|>", start).replace("<|im_end|>", template_marker)
    path = models.write_tiny_model(tmp_path / "internlm2.gguf", chat_template=template, eos_token="</s>",
                                   extra_special_tokens=("<|im_start|>", "<|im_end|>", "[UNUSED_TOKEN_145]",
                                                         "[UNUSED_TOKEN_146]"))
    real = open_session(load_profile("default", {"model.path": str(path), "model.n_ctx": 512}))
    try:
        assert template_marker in real.stops and "</s>" in real.stops
        model = FamilyModel(real.model, [["Hi", "[UNUSED_TOKEN_", "145]", " more"], ["Hi", "<|im_", "end|>", "x"]])
        session = ChatSession(model=model, profile=real.profile, formatter=real.formatter)
        for _ in range(2):
            text, _ = chat(session, "hello")
            assert "[UNUSED_TOKEN_145]" not in text and "<|im_end|>" not in text
            assert text.startswith("Hi")
    finally:
        real.model.close()


# ---------------------------------------------------------------- on llama.cpp, from the command line


def lcchat(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "lcchat"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lcchat"]
    return subprocess.run([*command, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)


def test_lcchat_p_internlm2_m_model_answers_without_leaking(tmp_path) -> None:
    path = family_gguf(tmp_path, FAMILIES[0])
    r = lcchat("-p", "internlm2", "-m", str(path), "-c", "512", "-n", "24", "--seed", "5", "--temp", "1.5", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    for text in ("<|im_start|>", "<|im_end|>", "[UNUSED_TOKEN_145]", "[UNUSED_TOKEN_146]", "</s>"):
        assert text not in r.stdout


def test_all_layers_on_the_gpu_setting_loads_on_a_cpu_build(sessions) -> None:
    session = sessions["internlm2"]
    assert session.profile.model.n_gpu_layers == -1 and session.model.load.n_gpu_layers == -1
    session.sampling.max_tokens = 8
    text, events = chat(session, "hello")
    assert isinstance(events[-1], Done)


def test_rope_warning_reaches_the_session(tiny_model) -> None:
    session = open_session(load_profile("default", {"model.path": str(tiny_model), "model.n_ctx": 1024}))
    try:
        assert any("beyond the model's training context 512" in n for n in (notice.text for notice in session.notices))
    finally:
        session.model.close()


def test_show_model_reports_the_resolved_rope(sessions) -> None:
    rows = sessions["chinese-alpaca-2-16k"].model.describe()
    assert rows["rope"].startswith("linear, scale 0.25 (the GGUF carries no RoPE scaling)")
    assert rows["n_ctx"] == 16384
    # HF's dynamic NTK with InternLM2's factor 2: 2 * 4096/512 - 1
    assert sessions["internlm2"].model.describe()["rope"].startswith("ntk: alpha 15 from 4096/512 tokens, factor 2")
    assert "base 5e+06" in sessions["yi-34b-chat"].model.describe()["rope"]


def test_old_internlm2_conversion_gets_its_markers_renamed(tmp_path) -> None:
    """A GGUF whose vocab names the chat markers [UNUSED_TOKEN_146]/[UNUSED_TOKEN_145]
    (older InternLM2 conversions) must be prompted with those tokens, not with
    <|im_start|> spelled out as plain text, and must stop on [UNUSED_TOKEN_145]."""
    from lcchat.config.loader import load_profile
    from lcchat.engine.events import Token
    from lcchat.engine.session import open_session
    from tests.models import write_tiny_model

    path = write_tiny_model(tmp_path / "old-internlm2.gguf", chat_template=None,
                            extra_special_tokens=("[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"), eos_token="</s>")
    session = open_session(load_profile("internlm2", {"model.path": str(path), "model.n_ctx": 512,
                                                      "sampling.max_tokens": 16}))
    try:
        prompt = session.formatter.render([{"role": "user", "content": "hi"}])
        assert "<|im_start|>" not in prompt and "[UNUSED_TOKEN_146]user\nhi[UNUSED_TOKEN_145]" in prompt
        ids = session._tokenize(prompt)
        assert session.model.tokenize("[UNUSED_TOKEN_146]", special=True)[0] in ids  # one special token
        assert "[UNUSED_TOKEN_145]" in session.stops
        assert any("older conversion" in n for n in (notice.text for notice in session.notices))
        text = "".join(e.text for e in session.send("hello") if isinstance(e, Token))
        assert "[UNUSED_TOKEN" not in text and "<|im_" not in text
    finally:
        session.model.close()
