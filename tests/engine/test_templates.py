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
    (GEMMA, ("<bos><start_of_turn>user\nBe brief.\nHi<end_of_turn>\n<start_of_turn>assistant\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")),
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


# ---------------------------------------------------------------- which template a session uses

# A ChatML template like most GGUFs carry: it names its roles and refuses any other.
STRICT_CHATML = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role ' + message['role']) }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _choose(profile_template: str = "", profile_format: str = "", gguf_template: str | None = None,
            bos: str = "", eos: str = "") -> tuple[templates.Formatter, list[str]]:
    notices: list[str] = []
    picked = templates.choose(profile_template=profile_template, profile_format=profile_format,
                              gguf_template=gguf_template, bos_token=bos, eos_token=eos, notices=notices)
    return picked, notices


def test_the_profile_template_gets_the_models_bos_and_eos_tokens() -> None:
    picked, notices = _choose(profile_template="{{ bos_token }}{{ messages[1].content }}{{ eos_token }}",
                              gguf_template=STRICT_CHATML, bos="<s>", eos="</s>")
    assert picked.render(MESSAGES) == "<s>U</s>"
    assert picked.source == "profile's chat template" and notices == []


def test_a_broken_profile_template_names_itself_and_the_format_is_used_next() -> None:
    picked, notices = _choose(profile_template="{% if %}", profile_format="chatml", gguf_template=STRICT_CHATML)
    assert picked.source == "format chatml"
    assert len(notices) == 1
    assert notices[0].startswith("the profile's chat template has a syntax error on line 1")
    assert notices[0].endswith("; using the next choice")


def test_a_broken_profile_template_falls_through_to_the_gguf_template() -> None:
    picked, notices = _choose(profile_template="{{ nope(", gguf_template=STRICT_CHATML)
    assert picked.source == "GGUF's chat template"
    assert picked.render(MESSAGES) == templates.chatml().render(MESSAGES)
    assert len(notices) == 1 and "profile's chat template" in notices[0]


def test_the_chat_format_wins_over_the_gguf_template() -> None:
    # `--chat-format NAME` clears the profile's template (cli.profile_from_args) and sets the format
    picked, notices = _choose(profile_format="llama-2", gguf_template=STRICT_CHATML)
    assert picked.source == "format llama-2" and "[INST]" in picked.render(MESSAGES)
    assert notices == []


def test_the_gguf_template_gets_the_models_bos_and_eos_tokens() -> None:
    picked, notices = _choose(gguf_template="{{ bos_token }}|{% for m in messages %}{{ m['content'] }}{% endfor %}|"
                                            "{{ eos_token }}", bos="<s>", eos="</s>")
    assert picked.render(MESSAGES) == "<s>|SU|</s>"
    assert picked.source == "GGUF's chat template" and notices == []


def test_a_gguf_template_that_names_its_roles_is_used_as_it_is() -> None:
    picked, notices = _choose(gguf_template=STRICT_CHATML)
    assert notices == []
    assert picked.source == "GGUF's chat template" and picked.text == STRICT_CHATML
    assert picked.render(CONV).startswith("<|im_start|>system\nBe brief.<|im_end|>\n")


def test_a_gguf_template_that_fails_on_a_conversation_falls_back_to_chatml() -> None:
    picked, notices = _choose(gguf_template="{{ messages[5]['content'] + 'x' }}")
    assert picked.source == "built-in ChatML template"
    assert len(notices) == 1
    assert notices[0].startswith("the GGUF's chat template failed: UndefinedError")
    assert notices[0].endswith("; falling back to ChatML")


def test_a_model_without_a_template_gets_chatml_and_is_told_how_to_choose() -> None:
    for missing in (None, ""):
        picked, notices = _choose(gguf_template=missing)
        assert picked.source == "built-in ChatML template" and picked.stop == ["<|im_end|>"]
        assert notices == [("the model has no chat template and the profile names none; using ChatML "
                           "(set [chat] format)")]


def test_chatml_ends_the_reply_at_im_end() -> None:
    assert templates.chatml().stop == ["<|im_end|>"]
    assert templates.chatml().text == templates.CHATML


def test_a_named_format_brings_its_stop_strings() -> None:
    assert templates.named_format("chatml").stop == ["<|im_end|>"]
    assert templates.named_format("zephyr").stop == ["</s>"]
    assert templates.named_format("llama-2").stop == []


def test_every_named_format_llama_cpp_python_registers_for_prompts_can_be_used() -> None:
    # vicuna's formatter is a function called `format`, not `format_vicuna`
    fmt = templates.named_format("vicuna")
    assert fmt.source == "format vicuna" and "USER: U" in fmt.render(MESSAGES)


def test_an_unknown_format_with_no_near_name_lists_the_known_ones() -> None:
    from lcchat.errors import InputError

    with pytest.raises(InputError) as caught:
        templates.named_format("zzzzqqq")
    message = str(caught.value)
    assert message.startswith("unknown chat format 'zzzzqqq'; known formats: alpaca, baichuan, ")
    assert ", chatml, " in message and ", zephyr" in message


def test_a_function_calling_handler_is_not_offered_as_a_prompt_format() -> None:
    from lcchat.errors import InputError

    with pytest.raises(InputError) as caught:
        templates.named_format("functionary")
    assert "did you mean functionary?" not in str(caught.value)


# ---------------------------------------------------------------- compiling and rendering


def test_a_template_compiled_without_tokens_renders_them_empty() -> None:
    t = templates.compile_jinja("[{{ bos_token }}|{{ eos_token }}|{{ 'none' if tools is none else 'set' }}]")
    assert t.render(MESSAGES) == "[||none]"
    assert t.text.startswith("[{{ bos_token }}") and t.source == "template"


def test_errors_name_the_template_they_come_from() -> None:
    with pytest.raises(TemplateError, match=r"^the template has a syntax error on line 1"):
        templates.compile_jinja("{% for %}")
    with pytest.raises(TemplateError, match=r"^the GGUF's chat template failed: UndefinedError: 'nope' is undefined"):
        templates.compile_jinja("{{ nope.x }}", source="GGUF's chat template").render(MESSAGES)


def test_blocks_do_not_leave_their_newlines_and_indentation_in_the_prompt() -> None:
    # Hugging Face renders chat templates with trim_blocks and lstrip_blocks; so must we
    t = templates.compile_jinja("{% for m in messages %}\n    {% if true %}\n[{{ m['content'] }}]\n    {% endif %}\n{% endfor %}")
    assert t.render(MESSAGES) == "[S]\n[U]\n"


def test_templates_may_break_out_of_loops() -> None:
    t = templates.compile_jinja("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
                                "{{ m['content'] }}{% endfor %}")
    assert t.render(MESSAGES) == "S"


def test_strftime_now_gives_the_date_and_refuses_a_huge_format() -> None:
    import time

    year = time.strftime("%Y")
    assert templates.compile_jinja("{{ strftime_now('%Y') }}").render(MESSAGES) in (year, time.strftime("%Y"))
    with pytest.raises(TemplateError, match="strftime_now"):
        templates.compile_jinja("{{ strftime_now('%Y' * 101) }}").render(MESSAGES)


def test_a_long_refusal_is_cut_short() -> None:
    t = templates.compile_jinja("{{ raise_exception('x' * 2000) }}")
    with pytest.raises(TemplateError) as caught:
        t.render(MESSAGES)
    assert str(caught.value) == "the chat template refused the conversation: " + "x" * 500 + "…"


@pytest.mark.parametrize("text", [
    "{{ lipsum(2) }}",
    "{{ 2 ** 100 }}",
    "{% set ns = namespace(s='x' * 60000) %}{% for i in range(8) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(s='x' * 60000) %}{% for i in range(8) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "{{ ('%*s' % (9000000, 'a'))|length }}",
    "{{ 'x'.center(9000000)|length }}",
    "{{ ('x'|center(9000000))|length }}",
    "{% set x %}{% for i in range(200) %}{{ 'x' * 60000 }}{% endfor %}{% endset %}{{ x|length }}",
])
def test_every_way_to_build_a_big_string_is_bounded(text: str) -> None:
    with pytest.raises(TemplateError, match=r"^the template failed: "):
        templates.compile_jinja(text).render(MESSAGES)


def test_a_printed_structure_is_bounded_before_it_is_built() -> None:
    with pytest.raises(TemplateError) as caught:
        templates.compile_jinja("{{ ['x' * 60000] * 200 }}").render(MESSAGES)
    assert "produced more than" not in str(caught.value)


def test_the_output_is_bounded_as_a_whole(monkeypatch) -> None:
    monkeypatch.setattr(templates, "MAX_OUTPUT", 10)
    assert templates.compile_jinja("{% for i in range(10) %}x{% endfor %}").render(MESSAGES) == "x" * 10
    with pytest.raises(TemplateError, match="the template produced more than"):
        templates.compile_jinja("{% for i in range(11) %}x{% endfor %}").render(MESSAGES)


def test_the_output_bound_is_told_in_megabytes() -> None:
    with pytest.raises(TemplateError, match=r"^the template produced more than 8 MB of text$"):
        templates.compile_jinja("{% for i in range(150) %}{{ 'x' * 60000 }}{% endfor %}").render(MESSAGES)


# ---------------------------------------------------------------- chat markers an older conversion renamed

INTERNLM2_OLD = {"[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]", "<s>", "</s>"}  # no <|im_start|>, no <|im_end|>


def test_an_older_internlm2_conversion_gets_its_chat_markers_by_their_old_names() -> None:
    notices: list[str] = []
    adapted = templates.adapt_to_vocab(templates.compile_jinja(STRICT_CHATML, source="GGUF's chat template"),
                                       INTERNLM2_OLD, notices)
    assert adapted.render(MESSAGES) == ("[UNUSED_TOKEN_146]system\nS[UNUSED_TOKEN_145]\n"
                                        "[UNUSED_TOKEN_146]user\nU[UNUSED_TOKEN_145]\n[UNUSED_TOKEN_146]assistant\n")
    assert notices == [("this GGUF has no <|im_start|> or <|im_end|> token (an older conversion); "
                       "writing <|im_start|> as [UNUSED_TOKEN_146], <|im_end|> as [UNUSED_TOKEN_145]")]
    assert adapted.source == "GGUF's chat template, markers renamed for this vocab"
    assert adapted.text == STRICT_CHATML
    # the renamed markers are control tokens for the guard, and the reply ends at the renamed end marker
    assert adapted.renamed == ("<|im_start|>", "<|im_end|>")


def test_the_stop_strings_follow_the_renamed_markers() -> None:
    adapted = templates.adapt_to_vocab(templates.chatml(), INTERNLM2_OLD, [])
    assert adapted.stop == ["[UNUSED_TOKEN_145]"]
    llama = templates.named_format("zephyr")
    llama.render = templates.chatml().render  # a format whose stop string is not a marker keeps it
    assert templates.adapt_to_vocab(llama, INTERNLM2_OLD, []).stop == ["</s>"]


def test_only_the_missing_marker_is_renamed() -> None:
    notices: list[str] = []
    adapted = templates.adapt_to_vocab(templates.chatml(), {"<|im_start|>", "[UNUSED_TOKEN_145]"}, notices)
    assert adapted.render(MESSAGES[1:]) == "<|im_start|>user\nU[UNUSED_TOKEN_145]\n<|im_start|>assistant\n"
    assert adapted.renamed == ("<|im_end|>",)
    assert notices == [("this GGUF has no <|im_end|> token (an older conversion); "
                       "writing <|im_end|> as [UNUSED_TOKEN_145]")]


@pytest.mark.parametrize("vocab", [
    {"<|im_start|>", "<|im_end|>", "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"},  # a newer conversion
    {"<s>", "</s>"},  # a model without either name: nothing to rename to
])
def test_a_vocab_with_the_markers_or_without_either_name_is_left_alone(vocab: set[str]) -> None:
    formatter = templates.chatml()
    notices: list[str] = []
    assert templates.adapt_to_vocab(formatter, vocab, notices) is formatter
    assert notices == []


def test_a_template_that_writes_no_marker_is_left_alone() -> None:
    formatter = templates.named_format("llama-2")
    notices: list[str] = []
    assert templates.adapt_to_vocab(formatter, INTERNLM2_OLD, notices) is formatter and notices == []


def test_a_template_that_fails_is_left_for_the_session_to_report() -> None:
    formatter = templates.compile_jinja("<|im_start|>{{ raise_exception('no') }}")
    notices: list[str] = []
    assert templates.adapt_to_vocab(formatter, INTERNLM2_OLD, notices) is formatter and notices == []


def test_a_profile_template_or_format_without_a_system_role_folds_it_too() -> None:
    picked, notices = _choose(profile_template=PHI3)
    assert picked.render(CONV).startswith("<|user|>\nBe brief.\nHi<|end|>\n")
    assert notices == [("the profile's chat template has no system role; the system prompt goes at the start of "
                       "the first user message")]
    picked, notices = _choose(profile_format="gemma")
    assert "Be brief.\nHi" in picked.render(CONV)
    assert notices == [("the format gemma has no system role; the system prompt goes at the start of the first "
                       "user message")]
    assert picked.source == "format gemma, system prompt in the first user message"


def test_folding_keeps_the_stop_strings_the_text_and_the_renamed_markers() -> None:
    inner = templates.compile_jinja(PHI3)
    marked = templates.Formatter(source="x", render=inner.render, stop=["<|end|>"], text=PHI3, renamed=("<|end|>",))
    folded = templates.fold_system(marked, [])
    assert (folded.stop, folded.text, folded.renamed) == (["<|end|>"], PHI3, ("<|end|>",))
    assert folded.render([]) == "<|assistant|>\n"  # an empty conversation has nothing to fold
    assert templates.fold_messages([]) == []
    assert templates.fold_messages(CONV[:1]) == []  # a system prompt alone has no user message to go in


def test_concatenation_and_set_blocks_still_work_in_the_sandbox() -> None:
    t = templates.compile_jinja("{{ 'a' ~ messages[0]['content'] ~ 1 }}|{% set x %}<{{ messages[1]['content'] }}>"
                                "{{ 2 }}{% endset %}{{ x }}")
    assert t.render(MESSAGES) == "aS1|<U>2"


def test_a_refusal_of_500_characters_is_shown_whole() -> None:
    with pytest.raises(TemplateError) as caught:
        templates.compile_jinja("{{ raise_exception('x' * 500) }}").render(MESSAGES)
    assert str(caught.value) == "the chat template refused the conversation: " + "x" * 500
    with pytest.raises(TemplateError) as caught:
        templates.compile_jinja("{{ raise_exception('x' * 501) }}").render(MESSAGES)
    assert str(caught.value).endswith("x" * 500 + "…")


def test_strftime_now_takes_a_format_of_up_to_200_characters() -> None:
    assert templates.compile_jinja("{{ strftime_now('%%' * 100) }}").render(MESSAGES) == "%" * 100
    with pytest.raises(TemplateError) as caught:
        templates.compile_jinja("{{ strftime_now('%%' * 100 ~ 'x') }}").render(MESSAGES)
    assert str(caught.value) == "the template failed: strftime_now() format too long"


def test_a_bounded_string_method_with_a_keyword_argument_is_checked() -> None:
    with pytest.raises(TemplateError, match=r"^the template failed: (?!AttributeError)"):
        templates.compile_jinja("{{ ('\\t' * 10).expandtabs(tabsize=9000000)|length }}").render(MESSAGES)
