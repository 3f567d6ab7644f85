"""Command-line words for the store, kept free of heavy imports (used before parsing)."""

from __future__ import annotations


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
            if following is not None and following.lstrip("#").isdigit():
                out.append(f"--continue={following.lstrip('#')}")
                i += 2
                continue
            out.append("--continue=")
            i += 1
            continue
        out.append(word)
        i += 1
    return out
