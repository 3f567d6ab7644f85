"""Each shipped family's own prompt format, as the family's code writes it: the reference the
profiles are checked against, token by token (test_prompt_fidelity.py).

Official Jinja chat templates are kept as their text (from the model's tokenizer_config.json)
and rendered as transformers' apply_chat_template renders them (an immutable sandbox with
trim_blocks and lstrip_blocks); families whose reference is Python code are written out
from that code. Each entry names its source.
"""

from __future__ import annotations

from typing import Callable

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

Messages = list[dict[str, str]]

# Qwen/Qwen2-7B-Instruct, tokenizer_config.json "chat_template".
QWEN2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# internlm/internlm2-chat-7b and internlm/internlm2_5-7b-chat, tokenizer_config.json "chat_template".
INTERNLM2 = (
    "{{ bos_token }}{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# meta-llama/Meta-Llama-3-8B-Instruct, tokenizer_config.json "chat_template".
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

# mistralai/Mistral-7B-Instruct-v0.2, tokenizer_config.json "chat_template". It has no system
# role: the system prompt goes in front of the first user message (see mistral.toml).
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# 01-ai/Yi-34B-Chat: the README's chat format, ChatML, no system block without a system prompt.
YI = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# HuggingFaceTB/SmolLM2-135M-Instruct: the chat template its GGUF carries (ChatML); the
# smollm2 profile uses the GGUF's own template, so the reference is read from the file.


def render_jinja(template: str, messages: Messages, *, bos_token: str = "", eos_token: str = "") -> str:
    """As transformers renders a chat template (apply_chat_template, add_generation_prompt)."""
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True,
                                            bos_token=bos_token, eos_token=eos_token)


def mistral_messages(messages: Messages) -> Messages:
    """mistral.toml's choice for the system prompt: before the first user message, a blank
    line between."""
    if messages and messages[0]["role"] == "system":
        system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
        return rest
    return messages


# ymcui/Chinese-LLaMA-Alpaca-2, scripts/inference/gradio_demo.py: generate_prompt() and predict().
ALPACA2_DEFAULT_SYSTEM = "You are a helpful assistant. 你是一个乐于助人的助手。"


def alpaca2(messages: Messages) -> str:
    """The prompt predict() builds from history [[user, reply], ..., [user, None]] (the BOS
    is the tokenizer's)."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    if len(system) == 0:
        system = ALPACA2_DEFAULT_SYSTEM
    turns = [m for m in messages if m["role"] != "system"]
    history = [[turns[i]["content"], turns[i + 1]["content"] if i + 1 < len(turns) else ""]
               for i in range(0, len(turns), 2)]

    def generate_prompt(instruction, response="", with_system_prompt=True):
        if with_system_prompt:
            prompt = f"[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{instruction} [/INST]"
        else:
            prompt = f"[INST] {instruction} [/INST]"
        if len(response) > 0:
            prompt += " " + response
        return prompt

    if len(history) == 1:
        return generate_prompt(history[0][0])
    prompt = generate_prompt(history[0][0], response=history[0][1]) + "</s>"
    for user, reply in history[1:-1]:
        prompt = prompt + "<s>" + generate_prompt(user, response=reply, with_system_prompt=False) + "</s>"
    return prompt + "<s>" + generate_prompt(history[-1][0], with_system_prompt=False)


def baichuan2_tokens(messages: Messages, encode: Callable[[str], list[int]], user_id: int, assistant_id: int) -> list[int]:
    """baichuan-inc/Baichuan2-13B-Chat, generation_utils.py build_chat_input(), without the
    context cut: the system prompt's tokens, then each message's role token and its
    separately encoded content, then the assistant token."""
    system = messages[0]["content"] if messages[0]["role"] == "system" else ""
    tokens = encode(system) if system else []
    for m in messages:
        if m["role"] == "system":
            continue
        tokens.append(user_id if m["role"] == "user" else assistant_id)
        tokens += encode(m["content"])
    if messages[-1]["role"] != "assistant":
        tokens.append(assistant_id)
    return tokens
