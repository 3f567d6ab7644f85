"""Tab completion, tested by feeding Document objects to the completer."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from lcchat.commands import builtin  # noqa: F401 - declares the commands
from lcchat.commands.registry import Context, FrontState, registry
from lcchat.engine.fake import fake_session
from lcchat.repl.completer import SlashCompleter


@pytest.fixture
def completer() -> SlashCompleter:
    ctx = Context(fake_session(), FrontState())
    return SlashCompleter(registry, lambda: ctx)


def complete(completer, text: str, cursor: int | None = None):
    doc = Document(text, len(text) if cursor is None else cursor)
    return list(completer.get_completions(doc, CompleteEvent(completion_requested=True)))


def apply(text: str, completion) -> str:
    """The line after accepting `completion` with the cursor at the end of `text`."""
    return text[: len(text) + completion.start_position] + completion.text


def test_command_names(completer) -> None:
    got = complete(completer, "/se")
    assert [c.display_text for c in got] == ["/set"]
    assert apply("/se", got[0]) == "/set "  # ready for the argument
    assert "change a parameter" in got[0].display_meta_text


def test_every_command_for_a_lone_slash(completer) -> None:
    names = {c.display_text for c in complete(completer, "/")}
    assert {"/help", "/exit", "/quit", "/bye", "/clear", "/stream", "/vim", "/system", "/set", "/show", "/retry",
            "/undo", "/copy", "/context"} <= names


def test_an_alias_says_what_it_stands_for(completer) -> None:
    (bye,) = complete(completer, "/by")
    assert bye.display_meta_text == "= /exit"
    assert apply("/by", bye) == "/bye"  # no argument: no trailing space


def test_set_parameter_names(completer) -> None:
    got = complete(completer, "/set tem")
    assert [c.text for c in got] == ["temperature"]
    assert apply("/set tem", got[0]) == "/set temperature"
    names = {c.text for c in complete(completer, "/set ")}
    assert {"temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed", "stop", "vi"} <= names


def test_argument_values(completer) -> None:
    assert [c.text for c in complete(completer, "/set vi o")] == ["on", "off"]
    assert [c.text for c in complete(completer, "/stream of")] == ["off"]
    assert {c.text for c in complete(completer, "/show ")} == {"params", "profile", "model", "stats", "prompt"}
    assert [c.text for c in complete(completer, "/help cop")] == ["copy"]


def test_only_the_text_before_the_cursor_counts(completer) -> None:
    assert [c.display_text for c in complete(completer, "/st and more", cursor=3)] == ["/stream"]


@pytest.mark.parametrize("text", ["", "hello", "hello /se", "/nosuch ", "/set temperature 0.", '"""\n/se', "/clear x"])
def test_nothing_to_complete(completer, text) -> None:
    assert complete(completer, text) == []


def test_a_failing_argument_completer_completes_nothing(monkeypatch, completer) -> None:
    cmd = registry.get("show")

    def broken(ctx, arg):
        raise RuntimeError("bug")

    monkeypatch.setattr(cmd, "complete", broken)
    assert complete(completer, "/show p") == []
