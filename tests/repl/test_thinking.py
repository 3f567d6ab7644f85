"""A reasoning model in the REPL (prompt-toolkit pipe input): the thinking dimmed and apart
from the answer, or with /think hide one live line; /copy copies the answer alone."""

from __future__ import annotations

import base64
import re

from lcchat.config.schema import Profile
from lcchat.engine.fake import FakeModel, fake_session
from tests.repl.conftest import ENTER

REPLY = ["<think>", "\nLet me add", " the two.\x1b[2J", "\n</think>", "\n\nFour."]


def thinking_session(replies, delay: float = 0.0):
    profile = Profile(name="r")
    profile.chat.reasoning = ["<think>", "</think>"]
    return fake_session(FakeModel(replies=replies, delay=delay), profile)


def test_the_thinking_is_dimmed_and_apart_from_the_answer(drive) -> None:
    run = drive("What is 2+2?" + ENTER, session=thinking_session([REPLY]))
    lines = run.text.splitlines()
    i = next(i for i, line in enumerate(lines) if "Let me add" in line)
    assert lines[i] == "Let me add the two.␛[2J"  # cleaned: no escape reaches the terminal
    assert lines[i + 1] == "" and lines[i + 2] == "Four."
    assert "\x1b[2J" not in run.raw
    dim = run.raw.index("\x1b[2m")
    assert dim < run.raw.index("Let me add") < run.raw.index("\x1b[0m", dim) < run.raw.index("Four.")
    assert run.messages()[-1] == ("assistant", "Four.")
    assert re.search(r"5 tokens \(4 thinking\) · ctx", run.text)  # the figures count the thinking apart


def test_think_hide_shows_one_live_line_instead(drive) -> None:
    run = drive("/think hide" + ENTER + "What is 2+2?" + ENTER, session=thinking_session([REPLY]))
    assert "Let me add" not in run.text
    assert re.search(r"thought for \d+ tokens, \d+ s", run.text)
    assert "thinking…" in run.text and "Four." in run.text


def test_copy_copies_the_answer_alone(drive) -> None:
    run = drive("What is 2+2?" + ENTER + "/copy" + ENTER, session=thinking_session([REPLY]))
    payload = re.search(r"\x1b\]52;c;([A-Za-z0-9+/=]+)", run.raw).group(1)
    assert base64.b64decode(payload).decode() == "Four."


def test_stream_off_shows_the_thinking_dimmed_before_the_answer(drive) -> None:
    run = drive("/stream off" + ENTER + "What is 2+2?" + ENTER, session=thinking_session([REPLY]))
    text = run.text
    assert text.index("Let me add the two.") < text.index("Four.")
