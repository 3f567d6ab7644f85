"""A stored conversation as text: the `history list` line, the `history show` transcript,
and the Markdown and JSON exports."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from lcchat.store.db import StoredConversation, Summary, one_line

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
    return f"{s.id:>5}  {local_time(s.updated)}  {s.profile or '-':<14}  {title}{flags}"


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


def to_markdown(conv: StoredConversation) -> str:
    title = conv.name or one_line(next((m.content for m in conv.messages if m.role == "user"), ""), 70) or "Conversation"
    out = [f"# {title}", "",
           f"- conversation: {conv.id}",
           f"- profile: {conv.profile or '-'}",
           f"- model: {Path(conv.model).name or '-'}",
           f"- started: {local_time(conv.created)}",
           f"- last turn: {local_time(conv.updated)}", ""]
    if conv.system:
        out += ["## System", "", conv.system, ""]
    for m in conv.messages:
        out += [f"## {'You' if m.role == 'user' else m.role.capitalize()}", "", m.content, ""]
        if m.interrupted:
            out += ["*(interrupted)*", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def to_json(conv: StoredConversation) -> str:
    data = {
        "id": conv.id,
        "name": conv.name,
        "profile": conv.profile,
        "model": conv.model,
        "created": iso(conv.created),
        "updated": iso(conv.updated),
        "system": conv.system,
        "messages": [
            {"role": m.role, "content": m.content, "interrupted": m.interrupted, "created": iso(m.created),
             **({"stats": m.stats} if m.stats else {})}
            for m in conv.messages
        ],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def render(conv: StoredConversation, fmt: str) -> str:
    return to_json(conv) if fmt == "json" else to_markdown(conv)
