"""Chat templates: the order of choice, the sandbox, and bounds on hostile templates."""

from __future__ import annotations


import pytest

from lcchat.engine import templates
from lcchat.engine.templates import TemplateError

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def test_chatml_renders_the_generation_prompt() -> None:
    assert templates.chatml().render(MESSAGES) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )


def test_named_format_comes_from_llama_cpp_python() -> None:
    fmt = templates.named_format("llama-2")
    assert "[INST]" in fmt.render(MESSAGES)


def test_unknown_named_format_suggests() -> None:
    with pytest.raises(Exception, match="did you mean chatml"):
        templates.named_format("chatmll")


def test_profile_template_wins_then_format_then_gguf() -> None:
    notices: list[str] = []
    picked = templates.choose(profile_template="P{{ messages[0].content }}", profile_format="llama-2",
                              gguf_template="G", bos_token="", eos_token="", notices=notices)
    assert picked.render(MESSAGES) == "PS"
    picked = templates.choose(profile_template="", profile_format="llama-2", gguf_template="G",
                              bos_token="", eos_token="", notices=notices)
    assert picked.source == "format llama-2"
    picked = templates.choose(profile_template="", profile_format="", gguf_template="G{{ bos_token }}",
                              bos_token="<s>", eos_token="", notices=notices)
    assert picked.render(MESSAGES) == "G<s>"
    assert notices == []


def test_template_with_syntax_error_falls_back_with_a_notice() -> None:
    notices: list[str] = []
    picked = templates.choose(profile_template="", profile_format="", gguf_template="{% for x in %}",
                              bos_token="", eos_token="", notices=notices)
    assert picked.source == "built-in ChatML template"
    assert "syntax error" in notices[0]


def test_sandbox_blocks_code_execution() -> None:
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    with pytest.raises(TemplateError, match="GGUF's chat template failed|unsafe|access"):
        templates.compile_jinja(evil, source="GGUF's chat template").render(MESSAGES)
    evil2 = "{{ cycler.__init__.__globals__.os.popen('echo pwned').read() }}"
    with pytest.raises(TemplateError):
        templates.compile_jinja(evil2).render(MESSAGES)


def test_slow_template_is_stopped(monkeypatch) -> None:
    monkeypatch.setattr(templates, "RENDER_SECONDS", 0.3)
    slow = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}x"
    with pytest.raises(TemplateError, match="took longer than 0.3 s"):  # stopped by the bound, not the end
        templates.compile_jinja(slow).render(MESSAGES)


def test_huge_string_is_refused() -> None:
    with pytest.raises(TemplateError, match="huge string"):
        templates.compile_jinja("{{ 'x' * 100000000 }}").render(MESSAGES)


def test_raise_exception_is_a_clear_error() -> None:
    t = templates.compile_jinja("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="roles must alternate"):
        t.render(MESSAGES)


# ---------------------------------------------------------------- templates without a system role (issue 15)

GEMMA = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
         "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
         "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
         "{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}")
PHI3 = ("{% for message in messages %}{% if message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
        "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}")
CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]


@pytest.mark.parametrize("template, expected", [
    (GEMMA, "<bos><start_of_turn>user\nBe brief.\nHi<end_of_turn>\n<start_of_turn>assistant\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n"),
    (PHI3, "<|user|>\nBe brief.\nHi<|end|>\n<|assistant|>\nHello.<|end|>\n<|user|>\nBye<|end|>\n<|assistant|>\n"),
])
def test_a_template_without_a_system_role_gets_the_system_prompt_in_the_first_user_message(template, expected) -> None:
    notices: list[str] = []
    picked = templates.choose(profile_template="", profile_format="", gguf_template=template,
                              bos_token="<bos>", eos_token="", notices=notices)
    assert "ChatML" not in picked.source
    assert picked.render(CONV) == expected
    assert len(notices) == 1 and "no system role" in notices[0]


def test_a_template_with_a_system_role_is_left_alone() -> None:
    notices: list[str] = []
    picked = templates.choose(profile_template="", profile_format="", gguf_template=templates.CHATML,
                              bos_token="", eos_token="", notices=notices)
    assert notices == [] and "Be brief." in picked.render(CONV)
