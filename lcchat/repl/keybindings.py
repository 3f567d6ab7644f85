"""Key bindings for the prompt, each group made by a small factory with Condition filters.

They sit on top of prompt-toolkit's emacs/vi bindings (ours win):
- Enter sends, except inside a \"\"\" block, where it starts a new line;
- Alt+Enter (Escape, Enter) and Ctrl+J insert a newline;
- Ctrl+C with text clears the line; on an empty line it leaves the prompt with
  KeyboardInterrupt, and the REPL says how to quit.
"""

from __future__ import annotations

from prompt_toolkit.application import get_app
from prompt_toolkit.filters import Condition, has_focus, is_searching
from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings
from prompt_toolkit.key_binding.key_bindings import KeyBindingsBase
from prompt_toolkit.key_binding.key_processor import KeyPressEvent
from prompt_toolkit.enums import DEFAULT_BUFFER

FENCE = '"""'

default_focused = has_focus(DEFAULT_BUFFER)


def open_block(text: str) -> bool:
    """True while `text` is an unfinished \"\"\" block: it starts with the fence and has not
    ended with a second one."""
    if not text.lstrip().startswith(FENCE):
        return False
    body = text.lstrip()[len(FENCE):]
    return not body.rstrip().endswith(FENCE)


def strip_block(text: str) -> str:
    """The message inside a \"\"\" block (fences removed); other text unchanged."""
    stripped = text.strip()
    if stripped.startswith(FENCE) and len(stripped) >= 2 * len(FENCE) and stripped.endswith(FENCE):
        return stripped[len(FENCE):-len(FENCE)].strip("\n")
    return text


@Condition
def _in_open_block() -> bool:
    return open_block(get_app().current_buffer.text)


@Condition
def _has_text() -> bool:
    return bool(get_app().current_buffer.text)


def newline_bindings() -> KeyBindings:
    """Alt+Enter and Ctrl+J add a line instead of sending."""
    kb = KeyBindings()

    @kb.add("escape", "enter", filter=default_focused & ~is_searching)
    @kb.add("c-j", filter=default_focused & ~is_searching)
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def block_bindings() -> KeyBindings:
    """Inside a \"\"\" block, Enter adds a line; the closing fence makes Enter send."""
    kb = KeyBindings()

    @kb.add("enter", filter=default_focused & _in_open_block & ~is_searching)
    def _block_newline(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def interrupt_bindings() -> KeyBindings:
    """Ctrl+C with text in the prompt clears it (prompt-toolkit's own Ctrl+C, which leaves
    the prompt with KeyboardInterrupt, stays for the empty line)."""
    kb = KeyBindings()

    @kb.add("c-c", filter=default_focused & _has_text)
    def _clear(event: KeyPressEvent) -> None:
        event.current_buffer.reset()

    return kb


def build_key_bindings() -> KeyBindingsBase:
    return merge_key_bindings([newline_bindings(), block_bindings(), interrupt_bindings()])
