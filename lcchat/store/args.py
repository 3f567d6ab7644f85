"""Command-line words for the store, kept free of heavy imports (used before parsing)."""

from __future__ import annotations


def is_conversation_number(word: str) -> bool:
    """Whether `word` is a conversation number ("12" or "#12"): ASCII digits only, since
    str.isdigit() also accepts "²" or "٣", which are names, not numbers."""
    digits = word.lstrip("#")
    return digits.isascii() and digits.isdigit()


def split_continue(argv: list[str]) -> list[str]:
    """`-C` takes an ID only when the next word is one (digits): in `lcchat -C "go on"`
    the words are the prompt. A name needs the = form: --continue=NAME."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            out += argv[i:]
            break
        if word in ("-C", "--continue"):
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is not None and is_conversation_number(following):
                out.append(f"--continue={following.lstrip('#')}")
                i += 2
                continue
            out.append("--continue=")
            i += 1
            continue
        out.append(word)
        i += 1
    return out
