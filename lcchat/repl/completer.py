"""Tab completion for slash commands and their arguments, from the shared registry."""

from __future__ import annotations

from typing import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from lcchat.commands.registry import Context, Registry


class SlashCompleter(Completer):
    """Completes "/se" to "/set " and "/set tem" to "/set temperature"; nothing else.

    The registry decides what completes; this only turns its words into Completions that
    replace the word under the cursor.
    """

    def __init__(self, registry: Registry, context: Callable[[], Context | None]):
        self.registry = registry
        self.context = context

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        ctx = self.context()
        try:
            words = self.registry.completions(ctx, text)
        except Exception:  # noqa: BLE001 - a broken argument completer must not break typing
            return
        naming = " " not in text  # still typing the command's name
        prefix = text if naming else text.rsplit(" ", 1)[-1]
        for word in words:
            meta, insert = "", word
            if naming:
                cmd = self.registry.get(word)
                if cmd is not None:
                    meta = cmd.help if word.lstrip("/") == cmd.name else f"= /{cmd.name}"
                    if cmd.args:  # ready for the argument, whose completions then show
                        insert = word + " "
            yield Completion(insert, start_position=-len(prefix), display=word, display_meta=meta)
