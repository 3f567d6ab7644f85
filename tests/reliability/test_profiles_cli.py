"""Broken profiles at the command line: one line naming file, line and key; exit 2; the
stored conversations untouched. (A wrong type is in tests/test_cli.py; every loader error
is unit-tested in tests/config/.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.helpers import assert_seed_intact, clean_failure, run, seed_conversation


@pytest.mark.parametrize("text, phrases", [
    ("[sampling]\ntemprature = 0.5\n", ["p.toml:2", "sampling.temprature", "unknown key", "did you mean sampling.temperature"]),
    ("[sampling\ntemperature = 0.5\n", ["p.toml:1", "bad TOML"]),
    ("[sampling]\ntop_k = 'forty'\n", ["p.toml:2", "sampling.top_k"]),
    ("[model]\nn_ctx = -5\n", ["p.toml:2", "model.n_ctx"]),
])
def test_broken_profile_is_one_line_exit_2(tmp_path: Path, text: str, phrases: list[str]) -> None:
    profile = tmp_path / "p.toml"
    profile.write_text(text)
    seed = seed_conversation()
    for args in (["-p", profile, "hello"], ["-p", profile, "-C", "hello"]):
        line = clean_failure(run(args), 2)
        for phrase in phrases:
            assert phrase in line, line
    assert_seed_intact(seed)
