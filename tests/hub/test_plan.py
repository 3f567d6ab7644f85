"""The pieces of a pull that need no server: Hub addresses and profile keys, reading a
GGUF header from the first bytes of a file, ranking quantizations and fitting them."""

from __future__ import annotations

import dataclasses

import pytest

from lcchat.config import loader
from lcchat.config.schema import ModelSettings
from lcchat.engine import gguf_info, quant
from lcchat.errors import InputError, ProfileError
from lcchat.hub import fit
from lcchat.hub.remote import RemoteFile
from lcchat.hub.source import HubSource, matching, parse_source


# ---------------------------------------------------------------- addresses and profile keys


def test_hub_addresses_parse_and_bad_ones_say_why() -> None:
    assert parse_source("hf://internlm/internlm2_5-7b-chat-gguf") == HubSource("internlm/internlm2_5-7b-chat-gguf")
    assert parse_source("hf://o/r/sub/x.Q4_K_M.gguf") == HubSource("o/r", "sub/x.Q4_K_M.gguf")
    for bad, why in (("internlm/x", "not a Hub address"), ("hf://only", "not of the form"),
                     ("hf://a--b/c", "not a valid Hub name"), ("hf://a/b/../x.gguf", "not a path inside"),
                     ("hf://a/b.git", "not a valid Hub name")):
        with pytest.raises(InputError, match=why):
            parse_source(bad)


def test_file_patterns_keep_their_order_and_leave_out_split_parts() -> None:
    files = ["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q5_K_M.gguf", "README.md", "big-Q8_0-00001-of-00002.gguf"]
    assert matching(files, ["*q5_k_m.gguf", "*Q4_K_M.gguf"]) == ["m-Q5_K_M.gguf", "m-Q4_K_M.gguf"]
    assert matching(files, []) == ["m-Q4_K_M.gguf", "m-Q5_K_M.gguf", "m-Q8_0.gguf"]


def write(tmp_path, body: str):
    path = tmp_path / "p.toml"
    path.write_text(body)
    return path


def test_a_profile_takes_one_glob_or_a_list(tmp_path) -> None:
    one = loader.check_file(write(tmp_path, '[model]\nsource = "hf://a/b"\nfile = "*Q4_K_M.gguf"\n'))
    assert one.model.source == "hf://a/b" and one.model.file == ["*Q4_K_M.gguf"]
    two = loader.check_file(write(tmp_path, '[model]\nsource = "hf://a/b"\nfile = ["*Q5*", "*Q4*"]\n'))
    assert two.model.file == ["*Q5*", "*Q4*"]


@pytest.mark.parametrize("body, message", [
    ('[model]\nsource = "a/b"\n', r"p\.toml:2: model\.source: 'a/b' is not a Hub address"),
    ('[model]\nsource = "hf://a/b/c.gguf"\n', r"p\.toml:2: model\.source: .* not of the form"),
    ('[model]\nfile = 3\n', r"p\.toml:2: model\.file: must be a glob or a list of globs"),
    ('[model]\n\nfile = ["/etc/passwd"]\n', r"p\.toml:3: model\.file: '/etc/passwd' is not a path inside"),
])
def test_bad_source_and_file_name_the_line(tmp_path, body: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        loader.check_file(write(tmp_path, body))


def test_every_shipped_profile_with_a_model_names_a_source() -> None:
    for name, path in loader.available_profiles().items():
        profile = loader.load_profile(str(path))
        if name != "default":
            assert profile.model.source.startswith("hf://"), name
            assert profile.model.file, name


# ---------------------------------------------------------------- headers from a prefix


def test_a_header_reads_from_the_first_bytes_and_asks_for_more(tiny_model) -> None:
    data = tiny_model.read_bytes()
    whole = gguf_info.read_gguf(tiny_model, vocab=False)
    with pytest.raises(gguf_info.HeaderIncomplete) as short:
        gguf_info.read_gguf_prefix(data[:1000], len(data), "remote")
    assert 1000 < short.value.needed <= whole.data_offset
    info = gguf_info.read_gguf_prefix(data[: whole.data_offset], len(data), "remote")
    assert (info.file_size, info.data_offset, info.tensors) == (whole.file_size, whole.data_offset, whole.tensors)


def test_a_prefix_claiming_more_than_the_file_is_still_an_error(tiny_model) -> None:
    data = tiny_model.read_bytes()
    with pytest.raises(gguf_info.ModelFileError, match="truncated"):
        gguf_info.read_gguf_prefix(data, len(data) - 100, "remote")


# ---------------------------------------------------------------- ranking and fitting


def test_quality_ranks_by_measured_loss_and_prefers_the_smaller_lossless_file() -> None:
    names = ["Q2_K", "Q4_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "F32", "Q3_K_M", "Q4_K"]
    ranked = sorted(names, key=quant.quality_key)
    assert ranked[:3] == ["Q8_0", "F16", "F32"]  # ties on quality: the caller's size order decides
    assert ranked.index("Q6_K") < ranked.index("Q5_K_M") < ranked.index("Q4_K_M") < ranked.index("Q4_0")
    assert ranked.index("Q4_0") < ranked.index("Q3_K_M") < ranked.index("Q2_K")
    assert quant.quality_key("Q4_K") == quant.quality_key("Q4_K_M")  # llama.cpp's short name
    assert quant.split_tag("qwen2-7b-instruct-fp16") == ("qwen2-7b-instruct", "F16")


def files_like(header: gguf_info.GGUFInfo) -> list[RemoteFile]:
    """A repository of one model in several quantizations, sized by bits per weight."""
    weights = sum(t.nbytes for t in header.tensors)
    out = []
    for name, bpw in (("Q8_0", 8.5), ("Q6_K", 6.56), ("Q4_K_M", 4.85), ("Q2_K", 3.35), ("F16", 16.0)):
        out.append(RemoteFile(f"m-{name}.gguf", header.data_offset + int(weights * bpw / 32), None))
    return out


def test_the_best_quality_that_fits_is_chosen(tiny_model) -> None:
    header = gguf_info.read_gguf(tiny_model, vocab=False)
    files = files_like(header)
    candidates = fit.rank(files, ["*.gguf"])
    assert [c.label for c in candidates] == ["Q8_0", "F16", "Q6_K", "Q4_K_M", "Q2_K"]
    settings = ModelSettings(n_ctx=512)
    need = {c.label: fit.estimate(header, c.file, settings, available_ram=None).ram for c in candidates}
    plenty = fit.choose("o/r", fit.rank(files, []), header, settings, available_ram=10 * need["F16"])
    assert plenty.chosen.label == "Q8_0"
    tight = fit.choose("o/r", fit.rank(files, []), header, settings,
                       available_ram=(need["Q6_K"] + need["Q8_0"]) // 2)
    assert tight.chosen.label == "Q6_K"
    text = "\n".join(fit.describe(tight))
    assert "→ Q6_K" in text and "Q8_0" in text and "would not fit" in text


def test_a_profiles_order_of_preference_wins_over_quality(tiny_model) -> None:
    header = gguf_info.read_gguf(tiny_model, vocab=False)
    plan = fit.choose("o/r", fit.rank(files_like(header), ["*Q4_K_M.gguf", "*Q8_0.gguf"]), header,
                      ModelSettings(n_ctx=512), available_ram=2**40)
    assert plan.chosen.label == "Q4_K_M"
    assert [c.label for c in plan.candidates][:2] == ["Q4_K_M", "Q8_0"]


def test_when_nothing_fits_the_answer_says_what_would(tiny_model) -> None:
    header = gguf_info.read_gguf(tiny_model, vocab=False)
    files = files_like(header)
    settings = ModelSettings(n_ctx=4096)
    smallest = min(files, key=lambda f: f.size)
    at_1k = fit.estimate(header, smallest, dataclasses.replace(settings, n_ctx=1024), available_ram=None).ram
    plan = fit.choose("o/r", fit.rank(files, []), header, settings, available_ram=at_1k)
    assert plan.chosen is None
    line = fit.nothing_fits("o/r", plan.candidates, header, settings, at_1k, None)
    assert line.startswith("nothing in hf://o/r fits: the smallest, Q2_K")
    assert "it would fit with -c 1024" in line


def test_quant_overrides_by_name_or_llama_cpp_alias() -> None:
    files = [RemoteFile("ggml-model-q4_k.gguf", 10, None), RemoteFile("ggml-model-q8_0.gguf", 20, None)]
    assert fit.pick_quant(files, "Q4_K_M", "o/r").filename == "ggml-model-q4_k.gguf"
    assert fit.pick_quant(files, "q8_0", "o/r").filename == "ggml-model-q8_0.gguf"
    with pytest.raises(InputError, match="has no Q6_K file .* it has: Q4_K, Q8_0"):
        fit.pick_quant(files, "Q6_K", "o/r")


def test_bash_completes_pull_with_profile_names_and_models_with_its_actions(tmp_path) -> None:
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from lcchat import cli, completion

    if shutil.which("bash") is None:
        pytest.skip("no bash")
    script = tmp_path / "c.bash"
    script.write_text(completion.script("bash", cli.build_parser()))
    probe = f"""
export PATH="{Path(sys.executable).parent}:$PATH"
source {script}
COMP_WORDS=(lcchat pull intern); COMP_CWORD=2; _lcchat; echo "P:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat models r); COMP_CWORD=2; _lcchat; echo "M:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat pu); COMP_CWORD=1; _lcchat; echo "S:${{COMPREPLY[*]}}"
"""
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True).stdout
    assert "P:internlm2 internlm2_5" in out
    assert "M:rm" in out.split()
    assert "S:pull" in out


def test_a_profile_without_its_model_names_the_pull_and_finds_a_pulled_file(monkeypatch, tmp_path) -> None:
    from lcchat.config.schema import Profile
    from lcchat.errors import ModelNotDownloaded

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    profile = Profile(name="bundled")
    profile.model.path = "pkg:no_such_pkg_xyz/m.gguf"  # its package is missing, but the Hub has it
    profile.model.source = "hf://o/r"
    profile.model.file = ["*Q4_1.gguf"]
    with pytest.raises(ModelNotDownloaded) as missing:
        loader.resolve_model_path(profile)
    assert missing.value.command == "lcchat pull bundled"
    assert "from hf://o/r that is not downloaded yet; download it with: lcchat pull bundled" in str(missing.value)

    snapshot = tmp_path / "models--o--r" / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "m.Q8_0.gguf").write_bytes(b"x")  # not allowed by the profile's pattern
    assert pytest.raises(ModelNotDownloaded, loader.resolve_model_path, profile)
    (snapshot / "m.Q4_1.gguf").write_bytes(b"x")
    assert loader.resolve_model_path(profile) == snapshot / "m.Q4_1.gguf"
