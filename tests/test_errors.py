"""lcchat.errors.report: every command's errors as the same one cleaned line."""

from __future__ import annotations

from lcchat.errors import InputError, report


def test_report_cleans_the_line_and_returns_the_exit_code(capsys) -> None:
    assert report(InputError("no file \x1b]0;owned\x07 here"), "lcchat pull", verbose=False) == 2
    err = capsys.readouterr().err
    assert err == "lcchat pull: no file ␛]0;owned␇ here\n"


def test_report_names_an_unexpected_error_and_shows_the_traceback_with_v(capsys) -> None:
    try:
        raise ValueError("\x1b[2J")
    except ValueError as exc:
        assert report(exc, "lcchat quant", verbose=True) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "\x1b" not in err
    assert err.splitlines()[-1] == "lcchat quant: internal error: ValueError: ␛[2J (run with -v for details)"


def test_pull_errors_reach_the_terminal_cleaned(lcchat_home, capsys) -> None:
    from lcchat.hub.pull import main

    assert main(["no-such-profile-\x1b[2J"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lcchat pull: ") and "\x1b" not in err and len(err.splitlines()) == 1


def test_exit_statuses_are_defined_once_and_never_written_as_numbers() -> None:
    """errors.py holds EXIT_OK/FAILURE/USAGE/INTERRUPTED; no other module defines its own
    or returns a bare 1, 2 or 130 as an exit status."""
    import re
    from pathlib import Path

    from lcchat import errors

    assert (errors.EXIT_OK, errors.EXIT_FAILURE, errors.EXIT_USAGE, errors.EXIT_INTERRUPTED) == (0, 1, 2, 130)
    assert errors.LcchatError.exit_code == errors.EXIT_FAILURE and errors.InputError.exit_code == errors.EXIT_USAGE
    defines = re.compile(r"^\s*EXIT_\w+\s*(,\s*EXIT_\w+\s*)*=", re.M)
    literal = re.compile(r"(return|exit\(|exit_code =)\s*(1|2|130)(?![\w.])|\"interrupted\", 130")
    root = Path(errors.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if path.name != "errors.py" and defines.search(text):
            found.append(f"{path.relative_to(root)} defines its own EXIT_ constants")
        found += [f"{path.relative_to(root)}: {m.group(0)}" for m in literal.finditer(text)
                  if path.parts[-2:] != ("engine", "fake.py")]  # the fake's llama_decode status, not an exit status
    assert found == []
