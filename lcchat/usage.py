"""The argument parser every lcchat command uses (`lcchat`, `history`, `quant`, `doctor`,
`pull`, `models`, `profiles`).

It lives apart from cli.py because the subcommands' modules need it and cli.py imports
them: borrowing it from cli.py made each of them import its own caller. It imports only
errors.py (for the exit status).
"""

from __future__ import annotations

import argparse

from lcchat.errors import EXIT_USAGE


class UsageParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits 2 (every lcchat command uses it)."""

    # Said after the usage error, when the caller knows more (set by cli._dispatch while a
    # subcommand parses words that may have been meant as a question).
    note = ""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: {message}{self._suggestion(message)} (see {self.prog} --help)"
                              f"{UsageParser.note}\n")

    def _suggestion(self, message: str) -> str:
        """'; did you mean --temp?' for a mistyped flag (argparse before 3.14 has none)."""
        import difflib

        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        known = [o for action in self._actions for o in action.option_strings if o.startswith("--")]
        for word in message[len(prefix):].split():
            if word.startswith("--"):
                close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1, cutoff=0.6)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""
