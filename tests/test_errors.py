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
