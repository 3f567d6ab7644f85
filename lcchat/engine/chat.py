"""The conversation, its prompt, and what happens when it outgrows the context.

The overflow policy drops the oldest exchanges from what the model sees, never the system
prompt, and says so. Dropped turns stay in the Conversation (and the store): only the
window the model reads moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lcchat.engine.templates import Formatter
from lcchat.errors import PromptTooLong

MIN_REPLY = 16  # a message leaving less room than this for the reply is refused


@dataclass
class Message:
    role: str  # "user" | "assistant"
    content: str
    interrupted: bool = False


@dataclass
class Conversation:
    system: str = ""
    messages: list[Message] = field(default_factory=list)
    window_start: int = 0  # index of the first message the model still sees

    def chat_messages(self, start: int | None = None) -> list[dict[str, str]]:
        start = self.window_start if start is None else start
        out = [{"role": "system", "content": self.system}] if self.system else []
        out += [{"role": m.role, "content": m.content} for m in self.messages[start:]]
        return out

    def last_reply(self) -> Message | None:
        for m in reversed(self.messages):
            if m.role == "assistant":
                return m
        return None

    def clear(self) -> None:
        self.messages.clear()
        self.window_start = 0


@dataclass
class Prompt:
    text: str
    tokens: list[int]
    dropped: int  # messages dropped from the window this time
    room: int  # tokens left for the reply


def build_prompt(conv: Conversation, formatter: Formatter, tokenize: Callable[[str], list[int]], *,
                 n_ctx: int, reserve: int, policy: str) -> Prompt:
    """Tokens for the conversation (ending with a user message), fitted to the context.

    With policy "drop-oldest", the oldest exchanges leave the window until the prompt plus
    `reserve` tokens for the reply fit. With "error", an overflow is an error.
    """
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
                break  # it fits, with less room for the reply than the reserve asks
            raise PromptTooLong(_too_long(len(tokens), n_ctx, reserve, alone=alone))
        start = _next_exchange(conv.messages, start)
    dropped = start - first
    conv.window_start = start
    return Prompt(text, tokens, dropped, n_ctx - len(tokens))


def _next_exchange(messages: list[Message], start: int) -> int:
    """Index after the oldest exchange in the window (a user message and its reply)."""
    i = start + 1
    while i < len(messages) - 1 and messages[i].role != "user":
        i += 1
    return i


def _too_long(n: int, n_ctx: int, reserve: int, *, alone: bool) -> str:
    if alone:
        return (f"the message is {n} tokens with the system prompt, but the context holds {n_ctx}; "
                "shorten it or raise n_ctx (-c)")
    return (f"the conversation needs {n} tokens plus {reserve} for the reply, but the context holds {n_ctx} "
            "and the overflow policy is 'error'; /clear, or raise n_ctx (-c)")
