"""Errors that reach the user as one line.

The CLI maps these to exit codes: InputError (bad input the user can fix: a profile, a
model file, an argument) exits 2; any other LcchatError exits 1. Messages are written for
people: what was wrong and what to do about it.
"""

from __future__ import annotations

# Exit statuses, the same for every command: defined here once.
EXIT_OK = 0
EXIT_FAILURE = 1  # something failed (or, for `lcchat doctor`, problems were found)
EXIT_USAGE = 2  # bad input the user can fix
EXIT_INTERRUPTED = 130  # Ctrl+C (128 + SIGINT, as shells report it)


class LcchatError(Exception):
    """A failure with a message fit to show as it is."""

    exit_code = EXIT_FAILURE


class InputError(LcchatError):
    """Bad input from the user: a profile, a model file, a command-line value."""

    exit_code = EXIT_USAGE


class ModelFileError(InputError):
    """A model file that is missing, unreadable or malformed."""


class ProfileError(InputError):
    """A profile that cannot be read or has a wrong key or value."""


class PromptTooLong(InputError):
    """A prompt that cannot fit in the context window. `fact` (an engine.events.ContextFull)
    has the numbers; the message states them, and each front-end adds what to do."""

    def __init__(self, message: str, fact=None):
        super().__init__(message)
        self.fact = fact


class ModelNotDownloaded(ModelFileError):
    """A profile names a Hub source whose file is not in the cache yet. `command` is the
    `lcchat pull ...` that fetches it: interactive front-ends offer to run it."""

    def __init__(self, message: str, command: str):
        super().__init__(message)
        self.command = command


def report(exc: BaseException, prog: str, *, verbose: bool) -> int:
    """Write `exc` to stderr as the one line a person reads and return the exit status.

    Every command's top level ends here, so each error looks the same: "PROG: message",
    control characters from outside shown rather than obeyed, the traceback only with -v,
    and an unexpected exception named as an internal error (exit 1)."""
    import sys
    import traceback

    from lcchat.textsafe import clean

    if verbose:
        print(clean("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))), end="", file=sys.stderr)
    if isinstance(exc, LcchatError):
        print(f"{prog}: {clean(str(exc))}", file=sys.stderr)
        return exc.exit_code
    print(f"{prog}: internal error: {type(exc).__name__}: {clean(str(exc))} (run with -v for details)", file=sys.stderr)
    return EXIT_FAILURE
