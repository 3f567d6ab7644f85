"""The exact prompt, for people: what `lcchat --show-prompt` and `/show prompt` print.

Someone debugging a profile wants the rendered text and the tokens the model is fed, with
the special tokens marked, and to see where message text that looks like a special token
was kept as plain text (engine/guard.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from lcchat.engine import guard
from lcchat.engine.chat import Conversation, Message
from lcchat.engine.protocol import SPECIAL_ATTRS, ServedModel
from lcchat.textsafe import clean as visible  # a prompt's messages may hold control characters


@dataclass
class PromptView:
    text: str
    tokens: list[int]
    literal: tuple[tuple[int, int], ...]  # spans of message text that looks like special tokens
    source: str  # the chat format's name
    dropped: int = 0  # oldest messages the overflow policy leaves out this time
    cut: int = 0  # tokens cut from the start (overflow = truncate-left)


def describe(session, view: PromptView) -> str:
    """The view as lines of text: header, prompt text, special-text notes, then the tokens
    one per line (position, id, text), special ones marked with *."""
    model = session.model
    lines = [f"Prompt ({view.source}, {len(view.tokens)} tokens):", "-" * 40, visible(view.text), "-" * 40]
    if view.dropped:
        lines.append(f"the {view.dropped} oldest message{'s' if view.dropped != 1 else ''} are left out to fit the "
                     f"context ({session.model.n_ctx} tokens)")
    if view.cut:
        lines.append(f"the first {view.cut} tokens of this text are cut to fit the context (overflow = truncate-left)")
    if view.literal:
        parse = session.profile.chat.parse_special
        how = "read as special tokens ([chat] parse_special = true)" if parse else "kept as plain text"
        for a, b in view.literal:
            lines.append(f"special-token text in a message at character {a}: {visible(view.text[a:b])!r}, {how}")
    if isinstance(model, ServedModel):  # a remote model: whose template, whose tokens
        lines.insert(0, model.prompt_note())
        lines.append(f"Token ids: {' '.join(str(t) for t in view.tokens)}")
        return "\n".join(lines)
    lines.append("Tokens (* special):")
    for i, token in enumerate(view.tokens):
        piece = model.piece(token).decode("utf-8", "replace")
        special = bool(model.token_attr(token) & SPECIAL_ATTRS)
        lines.append(f"{i:6} {token:8} {'*' if special else ' '} {visible(repr(piece))}")
    return "\n".join(lines)


def preview(session, text: str | None = None) -> PromptView:
    """The prompt the session would feed the model for the next message `text` (or for the
    history as it stands): made by the function a turn makes it with
    (ChatSession.turn_prompt: the overflow policy, the thinking switch), on a copy of the
    conversation, tokenized as a turn that reuses nothing would tokenize it."""
    conv = session.conversation
    probe = Conversation(conv.system, [*conv.messages, *([Message("user", text)] if text else [])],
                         conv.window_start)
    prompt = session.turn_prompt(probe, session.tokenize_prompt)
    inner = session.formatter
    # message text that looks like special tokens, reported even with parse_special; the
    # rendered text is the start of the prompt
    found = guard.protect(inner.render, session.specials, probe.chat_messages(), inner.text)
    return PromptView(str(prompt.text), list(prompt.tokens), guard.literal_spans(found), inner.source,
                      prompt.dropped, prompt.cut)
