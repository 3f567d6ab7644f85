"""parse_line: the one rule, for both front-ends, for what is a command and what a message.
tests/repl/test_commands.py and tests/tui/test_commands.py check that each front-end keeps it."""

from __future__ import annotations

import pytest

from lcchat.commands.parse import CommandLine, Message, parse_line


@pytest.mark.parametrize("text,parsed", [
    ("/help", CommandLine("help")),
    ("/help set", CommandLine("help", "set")),
    ("/set  temperature 0.2  \n", CommandLine("set", "temperature 0.2")),
    ("/system Be brief.\nUse lists.", CommandLine("system", "Be brief.\nUse lists.")),  # an argument of lines
    ("/system\nBe brief.", CommandLine("system", "Be brief.")),
    ("/", CommandLine("")),
    ("//help", Message("/help")),  # the escape: the rest is sent, starting with a slash
    ("//etc/hosts is a file", Message("/etc/hosts is a file")),
    (" /help", Message(" /help")),  # leading space: a message, sent as typed
    ("\t/usr/bin", Message("\t/usr/bin")),
    ("hello /help", Message("hello /help")),
    ("", Message("")),
])
def test_the_rule(text, parsed) -> None:
    assert parse_line(text) == parsed


def test_a_command_line_reads_back() -> None:
    assert CommandLine("set", "top_k 7").line == "/set top_k 7"
    assert CommandLine("help").line == "/help"
