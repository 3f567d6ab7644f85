"""The conversation, its prompt, and what happens when it outgrows the context.

The overflow policy drops the oldest exchanges from what the model sees, never the system
prompt, and says so; "truncate-left" then cuts a last message that is still too long.
Dropped turns stay in the Conversation (and the store): only the window the model reads
moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from lcchat.engine.templates import Formatter
from lcchat.engine.events import ContextFull
from lcchat.errors import PromptTooLong

MIN_REPLY = 16  # a message leaving less room than this for the reply is refused


@dataclass
class Message:
    role: str  # "user" | "assistant"
    content: str
    interrupted: bool = False
    reasoning: str = ""  # a reasoning model's thinking before the answer (content), kept apart


def _chat_message(m: Message) -> dict[str, str]:
    """A message as templates take it. Earlier thinking goes along as reasoning_content, as
    Hugging Face's chat templates name it: only a template that shows it (Qwen3's, for
    messages after the last user turn) puts it in the prompt; the others never read it."""
    out = {"role": m.role, "content": m.content}
    if m.reasoning and m.role == "assistant":
        out["reasoning_content"] = m.reasoning
    return out


@dataclass
class Conversation:
    system: str = ""
    messages: list[Message] = field(default_factory=list)
    window_start: int = 0  # index of the first message the model still sees

    def chat_messages(self, start: int | None = None) -> list[dict[str, str]]:
        start = self.window_start if start is None else start
        out = [{"role": "system", "content": self.system}] if self.system else []
        out += [_chat_message(m) for m in self.messages[start:]]
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
    cut: int = 0  # tokens cut from the start of the prompt (policy "truncate-left")


def build_prompt(conv: Conversation, formatter: Formatter, tokenize: Callable[[str], list[int]], *,
                 n_ctx: int, reserve: int, policy: str, max_new: int = 0) -> Prompt:
    """Tokens for the conversation (ending with a user message), fitted to the context.

    With policy "drop-oldest", the oldest exchanges leave the window until the prompt plus
    `reserve` tokens for the reply fit. "truncate-left" does the same with `max_new` (the
    longest reply) as the reserve, and when the last message alone is still too long it
    cuts the prompt's tokens from the left to n_ctx - max_new, as Baichuan2's
    build_chat_input does. With "error", an overflow is an error.

    The first window that fits is found by search, not by dropping one exchange at a time:
    a window's rendered length shrinks as exchanges leave it, so only O(log n) windows are
    rendered and tokenized, none much longer than the one that fits (a history of
    thousands of messages used to be re-rendered once per dropped exchange).
    """
    if policy == "truncate-left" and max_new > 0:
        reserve = max_new
    reserve = min(reserve, n_ctx // 2)
    starts = _exchange_starts(conv.messages, conv.window_start)
    windows: dict[int, tuple[str, list[int]]] = {}

    def window(i: int) -> tuple[str, list[int]]:
        if i not in windows:
            text = formatter.render(conv.chat_messages(starts[i]))
            windows[i] = (text, tokenize(text))
        return windows[i]

    def fits(i: int) -> bool:
        return len(window(i)[1]) + reserve <= n_ctx

    chosen = 0
    if not fits(0) and policy != "error":
        chosen = _first_fitting(fits, len(starts))
    text, tokens = window(chosen)
    cut = 0
    if len(tokens) + reserve > n_ctx:
        alone = starts[chosen] >= len(conv.messages) - 1
        if policy == "truncate-left":
            cut = len(tokens) - (n_ctx - reserve)
            tokens = tokens[cut:]
        elif len(tokens) + MIN_REPLY > n_ctx:
            full = ContextFull(len(tokens), n_ctx, reserve, alone)
            raise PromptTooLong(str(full), full)
        # else it fits, with less room for the reply than the reserve asks
    dropped = starts[chosen] - starts[0]
    conv.window_start = starts[chosen]
    return Prompt(text, tokens, dropped, n_ctx - len(tokens), cut)


def _exchange_starts(messages: list[Message], start: int) -> list[int]:
    """Where the window may begin: `start`, then each later exchange (a user message and
    its reply), the last being the final message alone. Exchanges leave whole."""
    starts = [start]
    last = len(messages) - 1
    for i in range(start + 1, last):
        if messages[i].role == "user":
            starts.append(i)
    if start < last:
        starts.append(last)
    return starts


def _first_fitting(fits: Callable[[int], bool], n: int) -> int:
    """The smallest i < n with fits(i), given fits(0) is false and fits is monotonic; n - 1
    when none fits. Gallops back from the end, so the windows tried stay close in size to
    the answer, then bisects."""
    last = n - 1
    if last <= 0 or not fits(last):
        return last
    bad, good, step = 0, last, 1
    while good - step > bad:
        if not fits(good - step):
            bad = good - step
            break
        good, step = good - step, step * 2
    while good - bad > 1:
        mid = (bad + good) // 2
        if fits(mid):
            good = mid
        else:
            bad = mid
    return good

