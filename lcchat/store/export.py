"""A stored conversation as text: the `history list` line, the `history show` transcript,
and the Markdown and JSON exports.

Exports show each turn as it happened: the system prompt, model file and quant type in
force for it (a /system or /quant mid-way shows where it changed). In Markdown each
message and system prompt sits in a fence longer than any run of backticks it holds, so a
reply that contains `## You` or an unclosed ``` cannot change the document's structure."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from lcchat.store.db import StoredConversation, StoredMessage, Summary, TurnSettings, one_line

FORMATS = ("md", "json")


def local_time(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def list_line(s: Summary) -> str:
    """id, date, profile, and the start of the first user message (or the name)."""
    title = one_line(s.first_user, 60)
    if s.name:
        title = f"[{s.name}] {title}"
    flags = " (interrupted)" if s.interrupted else ""
    state = _size(s.state_bytes) if s.state_bytes else "-"
    return f"{s.id:>5}  {local_time(s.updated)}  {s.profile or '-':<14}  {state:>9}  {title}{flags}"


def _size(n: int) -> str:
    from lcchat.engine.monitor import human_bytes

    return human_bytes(n)


def settings_of(conv: StoredConversation, m: StoredMessage) -> TurnSettings:
    """What was in force for message `m`; for messages stored before that was recorded,
    the conversation's own model and its current system prompt (all that is known)."""
    return m.settings or TurnSettings(conv.system, conv.model, "")


def fence(text: str) -> str:
    """`text` in a code fence it cannot close: longer than any backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return f"{marks}text\n{text}\n{marks}" if not text.endswith("\n") else f"{marks}text\n{text}{marks}"


def _model_label(t: TurnSettings) -> str:
    if t.server:
        return f"{t.model or '-'} on {t.server}"
    name = Path(t.model).name or "-"
    return f"{name} ({t.quant})" if t.quant else name


def transcript(conv: StoredConversation) -> str:
    """Plain text for the terminal."""
    head = f"conversation {conv.id}" + (f" ({conv.name})" if conv.name else "")
    lines = [f"# {head} · {conv.profile or '-'} · {Path(conv.model).name or '-'} · "
             f"{local_time(conv.created)} to {local_time(conv.updated)}"]
    if conv.system:
        lines += ["", f"system: {conv.system}"]
    for m in conv.messages:
        who = "you" if m.role == "user" else m.role
        lines += ["", f"{who}: {m.content}" + (" [interrupted]" if m.interrupted else "")]
    return "\n".join(lines) + "\n"


def to_markdown(conv: StoredConversation, reasoning: bool = False) -> str:
    title = conv.name or one_line(next((m.content for m in conv.messages if m.role == "user"), ""), 70) or "Conversation"
    first = settings_of(conv, conv.messages[0]) if conv.messages else TurnSettings(conv.system, conv.model, "")
    out = [f"# {_flat(title)}", "",
           f"- conversation: {conv.id}",
           f"- profile: {_flat(conv.profile) or '-'}",
           f"- model: {_flat(_model_label(first))}",
           f"- started: {local_time(conv.created)}",
           f"- last turn: {local_time(conv.updated)}", ""]
    if first.system:
        out += ["## System", "", fence(first.system), ""]
    current = first
    for m in conv.messages:
        turn = settings_of(conv, m)
        if turn.system != current.system:
            out += ["## System (changed)", "", fence(turn.system) if turn.system else "*(none)*", ""]
        if (turn.model, turn.quant, turn.server) != (current.model, current.quant, current.server):
            out += [f"*Model from here on: {_flat(_model_label(turn))}*", ""]
        current = turn
        out += [f"## {'You' if m.role == 'user' else m.role.capitalize()}", ""]
        if reasoning and m.reasoning:
            out += ["*Thinking:*", "", fence(m.reasoning), "", "*Answer:*", ""]
        out += [fence(m.content), ""]
        if m.interrupted:
            out += ["*(interrupted)*", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _flat(text: str) -> str:
    """One line of metadata, kept to one line."""
    return " ".join(text.split())


def to_json(conv: StoredConversation, reasoning: bool = False) -> str:
    def message(m: StoredMessage) -> dict:
        turn = settings_of(conv, m)
        return {"role": m.role, "content": m.content, "interrupted": m.interrupted, "created": iso(m.created),
                "system": turn.system, "model": turn.model, "quant": turn.quant,
                **({"server": turn.server} if turn.server else {}),
                **({"reasoning": m.reasoning} if reasoning and m.reasoning else {}),
                **({"stats": m.stats} if m.stats else {})}

    data = {
        "id": conv.id,
        "name": conv.name,
        "profile": conv.profile,
        "model": conv.model,
        "created": iso(conv.created),
        "updated": iso(conv.updated),
        "system": conv.system,
        "messages": [message(m) for m in conv.messages],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def render(conv: StoredConversation, fmt: str, *, reasoning: bool = False) -> str:
    """The export; a reasoning model's thinking only with `reasoning` (history export --reasoning)."""
    return to_json(conv, reasoning) if fmt == "json" else to_markdown(conv, reasoning)
