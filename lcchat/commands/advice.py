"""What to do about an engine fact, said the chat front-ends' way (slash commands).

The engine's events state what happened (engine/events.py: ContextFull, ReplyLimit); the
REPL and the TUI show them through `phrase`, which adds the advice that fits a chat.
Pipe mode phrases its own, with flags (lcchat/pipe.py).
"""

from __future__ import annotations

from lcchat.engine.events import ContextFull, Error, Notice, ReplyLimit


def phrase(event: Notice | Error) -> str:
    """The event's message, with what to do about it in a chat."""
    text = event.text if isinstance(event, Notice) else event.message
    match event.fact:
        case ContextFull(alone=True):
            return f"{text}; shorten it, or start lcchat again with a larger n_ctx (-c)"
        case ContextFull():
            return f"{text}; /clear makes room, or start lcchat again with a larger n_ctx (-c)"
        case ReplyLimit():
            return f"{text}; /set max_tokens N allows longer ones"
    return text
