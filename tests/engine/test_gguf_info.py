"""gguf_info: parse tiny and real GGUF files, and turn every kind of damage into one
clear ModelFileError (never a crash, never an abort inside llama.cpp)."""

from __future__ import annotations

import dataclasses
import os
import struct
from pathlib import Path

import gguf
import pytest

from lcchat.engine.gguf_info import (
    GGUFInfo,
    load_checked,
    read_gguf,
    validate_for_llama,
)
from lcchat.errors import InputError, ModelFileError
from tests.models import CHATML_TEMPLATE, corrupt, truncate, write_tiny_model

VT = gguf.GGUFValueType


def fails(path: Path, *phrases: str, vocab: bool = True) -> str:
    """load_checked(path) raises a one-line ModelFileError naming the file; return it."""
    with pytest.raises(ModelFileError) as caught:
        load_checked(path, vocab=vocab)
    return check_message(caught.value, path, *phrases)


def check_message(error: Exception, path: Path, *phrases: str) -> str:
    message = str(error)
    assert isinstance(error, InputError)
    assert "\n" not in message and message.strip() == message
    assert message.startswith(f"{path}: ")
    for phrase in phrases:
        assert phrase in message, message
    return message


def key_offset(data: bytes, key: str) -> int:
    """Offset of a metadata key's text (its u64 length is just before it)."""
    encoded = key.encode()
    return data.index(struct.pack("<Q", len(encoded)) + encoded) + 8


def tensor_fields(data: bytes, name: str) -> dict[str, int]:
    """Offsets of one tensor-table entry's fields in a file's bytes."""
    info_start = data.index(struct.pack("<Q", len(name)) + name.encode(), 24)
    n_dims_at = info_start + 8 + len(name)
    (n_dims,) = struct.unpack_from("<I", data, n_dims_at)
    type_at = n_dims_at + 4 + 8 * n_dims
    return {"name_len": info_start, "n_dims": n_dims_at, "dims": n_dims_at + 4, "type": type_at, "offset": type_at + 4}


@pytest.fixture
def data(tiny_model: Path) -> bytes:
    return tiny_model.read_bytes()


# ---------------------------------------------------------------------------- good files


def test_tiny_model_properties(tiny_model: Path) -> None:
    info = load_checked(tiny_model)
    assert isinstance(info, GGUFInfo)
    assert info.version == 3 and info.alignment == 32 and info.data_offset % 32 == 0
    assert info.file_size == tiny_model.stat().st_size
    assert info.architecture == "llama"
    assert (info.block_count, info.context_length, info.embedding_length) == (2, 512, 64)
    assert (info.head_count, info.head_count_kv, info.rope_dimension_count) == (4, 4, 16)
    assert info.rope_freq_base == 10000.0
    assert info.rope_scaling_type is None and info.rope_scaling_factor is None
    assert info.chat_template == CHATML_TEMPLATE
    tokens = info.tokens
    assert tokens[:3] == ["<unk>", "<s>", "</s>"] and tokens[3] == "<0x00>" and tokens[258] == "<0xFF>"
    assert "<|im_start|>" in tokens and "▁Paris" in tokens and len(set(tokens)) == len(tokens)
    assert info.token_types[:4] == [2, 3, 3, 6] and len(info.token_types) == len(tokens)
    assert info.bos_token_id == 1 and tokens[info.eos_token_id] == "<|im_end|>"
    assert info.eot_token_id is None
    assert info.vocab_size == len(tokens)
    assert info.file_type_name == "F32"
    assert info.tensor_type_histogram == {"F32": 21}
    embd = next(t for t in info.tensors if t.name == "token_embd.weight")
    assert embd.shape == (64, len(tokens)) and embd.type_name == "F32" and embd.nbytes == 64 * len(tokens) * 4
    assert embd.offset == info.data_offset
    assert info.n_params == sum(t.n_elements for t in info.tensors)
    assert info.bits_per_weight == pytest.approx(32.0)
    assert info.tensors[-1].offset + info.tensors[-1].nbytes <= info.file_size


def test_f16_model(tmp_path: Path) -> None:
    info = load_checked(write_tiny_model(tmp_path / "f16.gguf", file_type="F16"))
    assert info.file_type_name == "F16"
    assert info.tensor_type_histogram == {"F16": 16, "F32": 5}
    assert 16 < info.bits_per_weight < 17


def test_vocab_false_skips_tokenizer_arrays(tiny_model: Path) -> None:
    full, lean = read_gguf(tiny_model), load_checked(tiny_model, vocab=False)
    assert lean.tokens == [] and lean.token_types == []
    assert "tokenizer.ggml.tokens" not in lean.metadata
    assert lean.skipped_arrays["tokenizer.ggml.tokens"] == len(full.tokens)
    assert lean.vocab_size == full.vocab_size
    assert lean.tensors == full.tensors and lean.chat_template == full.chat_template


def test_metadata_override_replaces_key(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.gguf", metadata={"llama.block_count": 3, "x.new": "hi", "general.name": None})
    info = read_gguf(path)
    assert info.block_count == 3 and info.value_types["llama.block_count"] == VT.UINT32
    assert info.metadata["x.new"] == "hi" and "general.name" not in info.metadata
    assert path.read_bytes().count(b"llama.block_count") == 1


def test_nested_array_one_level_is_read(tmp_path: Path) -> None:
    info = load_checked(write_tiny_model(tmp_path / "n.gguf", metadata={"test.nested": [[1, 2], [3]]}))
    assert info.metadata["test.nested"] == [[1, 2], [3]]


def test_llama_cpp_loads_and_runs_the_tiny_model(tiny_model: Path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    # One thread for prompts too (llama-cpp-python's default is every CPU, its affinity ignored): a
    # 2-thread OpenMP team left in this process hangs any child forked from it that decodes
    # (mutmut forks one per mutant; see benchmarks/mutation.py).
    llm = llama_cpp.Llama(model_path=str(tiny_model), n_ctx=64, n_threads=1, n_threads_batch=1, logits_all=True,
                          verbose=False)
    tokens = llm.tokenize(b"hello Paris")
    assert tokens[0] == 1 and len(tokens) == 3  # BOS, "▁hello", "▁Paris"
    assert llm.detokenize(tokens[1:]) == b" hello Paris"
    assert llm.tokenize(b"<|im_start|>", special=True)[-1] == read_gguf(tiny_model).tokens.index("<|im_start|>")
    llm.eval(tokens)
    logits = llm.scores[len(tokens) - 1]
    assert llm.n_tokens == 3 and logits.any() and all(abs(x) < 100 for x in logits)
    out = llm.create_completion("hello", max_tokens=2, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1


def test_smollm2(smollm2: Path) -> None:
    info = load_checked(smollm2)
    assert info.architecture == "llama" and info.file_type_name == "Q4_1"
    assert 130e6 < info.n_params < 140e6
    assert (info.block_count, info.embedding_length, info.head_count, info.head_count_kv) == (30, 576, 9, 3)
    assert info.vocab_size == len(info.tokens) == 49152
    assert "<|im_start|>" in info.chat_template
    assert info.tensor_type_histogram["Q4_1"] > 100
    assert 4.5 < info.bits_per_weight < 6.5
    lean = load_checked(smollm2, vocab=False)
    assert lean.tokens == [] and lean.vocab_size == 49152 and lean.n_params == info.n_params


# ---------------------------------------------------------------------------- the file itself


def test_missing(tmp_path: Path) -> None:
    fails(tmp_path / "nope.gguf", "no such file")


def test_directory(tmp_path: Path) -> None:
    fails(tmp_path, "is a directory")


def test_empty(tmp_path: Path) -> None:
    (tmp_path / "e.gguf").touch()
    fails(tmp_path / "e.gguf", "is empty")


def test_unreadable(tmp_path: Path, tiny_model: Path) -> None:
    """A file its user may not read. Root reads any file whatever its mode (CI runs as
    root), so there the check runs in a child as the user nobody."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() != 0:
        path = tmp_path / "locked.gguf"
        path.write_bytes(tiny_model.read_bytes())
        path.chmod(0)
        try:
            fails(path, "permission denied")
        finally:
            path.chmod(0o644)
        return
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to test an unreadable file as root"
    shared = Path(tempfile.mkdtemp(prefix="lcchat-unreadable-"))
    try:
        shared.chmod(0o755)
        path = shared / "locked.gguf"
        shutil.copy(tiny_model, path)
        path.chmod(0o600)  # root's: unreadable to nobody
        code = ("import sys\nfrom lcchat.engine import gguf_info\nfrom lcchat.errors import ModelFileError\n"
                "try:\n    gguf_info.load_checked(sys.argv[1])\nexcept ModelFileError as e:\n    print(e)\n")
        result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 sys.executable, "-c", code, str(path)],
                                capture_output=True, text=True, timeout=60, cwd=shared,
                                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert result.returncode == 0, result.stderr
        assert str(path) in result.stdout and "permission denied" in result.stdout, result.stdout
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_unreadable_mid_read(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    """The same message when open() itself is refused (as it is for non-root users)."""
    from lcchat.engine import gguf_info

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gguf_info, "open", refuse, raising=False)
    fails(tiny_model, "permission denied")


def test_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("hello, this is a text file\n")
    fails(path, "is not a GGUF file")


@pytest.mark.parametrize("magic", [b"lmgg", b"ggjt", b"tjgg", b"algg"])
def test_old_ggml_formats(tmp_path: Path, data: bytes, magic: bytes) -> None:
    path = tmp_path / "old.bin"
    path.write_bytes(magic + data[4:])
    fails(path, "old pre-GGUF", "convert")


@pytest.mark.parametrize(
    ("version", "phrase"),
    [(1, "version 1"), (4, "version 4, newer"), (0, "invalid GGUF version"), (0x03000000, "big-endian")],
)
def test_bad_version(tmp_path: Path, tiny_model: Path, version: int, phrase: str) -> None:
    fails(corrupt(tiny_model, tmp_path / "v.gguf", at=4, data=struct.pack("<I", version)), phrase)


# ---------------------------------------------------------------------------- truncation


@pytest.mark.parametrize("size", [2, 6, 20])
def test_truncated_header(tmp_path: Path, tiny_model: Path, size: int) -> None:
    message = fails(truncate(tiny_model, tmp_path / "t.gguf", size), "truncated")
    assert f"only {size} bytes" in message


def test_truncated_kv_section(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    cut = key_offset(data, "tokenizer.ggml.model") + 3
    fails(truncate(tiny_model, tmp_path / "t.gguf", cut), "truncated", "metadata")


def test_truncated_inside_a_string_array(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    cut = data.index(b"\xe2\x96\x81Paris") + 2
    for vocab in (True, False):
        fails(truncate(tiny_model, tmp_path / "t.gguf", cut), "corrupt or truncated", vocab=vocab)


def test_truncated_tensor_info(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    cut = tensor_fields(data, "output.weight")["type"] + 2
    fails(truncate(tiny_model, tmp_path / "t.gguf", cut), "truncated", "tensor table")


def test_truncated_before_data(tmp_path: Path, tiny_model: Path) -> None:
    info = read_gguf(tiny_model)
    cut = info.data_offset - 4
    message = fails(truncate(tiny_model, tmp_path / "t.gguf", cut), "truncated")
    assert "tensor data" in message or "tensor table" in message


def test_truncated_data(tmp_path: Path, tiny_model: Path) -> None:
    size = tiny_model.stat().st_size
    end = read_gguf(tiny_model).tensors[-1]
    message = fails(
        truncate(tiny_model, tmp_path / "t.gguf", size - 1000), "is truncated", "download or conversion may be incomplete"
    )
    assert f"ends at byte {end.offset + end.nbytes:,}" in message and f"{size - 1000:,} bytes" in message


# ---------------------------------------------------------------------------- corrupt header and metadata


def test_absurd_tensor_count(tmp_path: Path, tiny_model: Path) -> None:
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=8, data=struct.pack("<Q", 2**60)), "tensors, an impossible number")


def test_absurd_kv_count(tmp_path: Path, tiny_model: Path) -> None:
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=16, data=struct.pack("<Q", 2**63)), "metadata entries, an impossible")


def test_counts_too_big_for_a_short_file(tmp_path: Path, tiny_model: Path) -> None:
    fails(truncate(tiny_model, tmp_path / "t.gguf", 500), "is truncated", "lists 22 metadata entries and 21 tensors")


def test_absurd_string_length(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = key_offset(data, "general.architecture") + len("general.architecture") + 4
    path = corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=struct.pack("<Q", 2**62))
    fails(path, "general.architecture", "claims", "bytes")


def test_absurd_key_length(tmp_path: Path, tiny_model: Path) -> None:
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=24, data=struct.pack("<Q", 2**64 - 1)), "metadata key #0", "claims")


def test_bad_value_type(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = key_offset(data, "llama.context_length") + len("llama.context_length")
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=struct.pack("<I", 99)), "llama.context_length", "unknown value type")


def test_bad_array_item_type(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = key_offset(data, "tokenizer.ggml.scores") + len("tokenizer.ggml.scores") + 4
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=struct.pack("<I", 13)), "tokenizer.ggml.scores", "unknown value type")


def test_array_count_past_end(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = key_offset(data, "tokenizer.ggml.tokens") + len("tokenizer.ggml.tokens") + 8
    path = corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=struct.pack("<Q", 2**40))
    for vocab in (True, False):
        fails(path, "tokenizer.ggml.tokens", "array of", vocab=vocab)


def test_arrays_nested_too_deep(tmp_path: Path) -> None:
    fails(write_tiny_model(tmp_path / "n.gguf", metadata={"test.nested": [[[1]]]}), "test.nested", "nests arrays")


def test_duplicate_key(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = key_offset(data, "llama.context_length")  # same length as general.architecture
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=b"general.architecture"), "appears twice")


def test_empty_key(tmp_path: Path) -> None:
    fails(write_tiny_model(tmp_path / "k.gguf", metadata={"": 1}), "is empty")


@pytest.mark.parametrize("alignment", [48, 0])
def test_alignment_not_power_of_two(tmp_path: Path, alignment: int) -> None:
    fails(write_tiny_model(tmp_path / "a.gguf", metadata={"general.alignment": alignment}), "general.alignment", "power of two")


def test_alignment_wrong_type(tmp_path: Path) -> None:
    fails(write_tiny_model(tmp_path / "a.gguf", metadata={"general.alignment": (32, VT.UINT64)}), "UINT32")


# ---------------------------------------------------------------------------- corrupt tensor table


def corrupt_tensor(tmp_path: Path, tiny_model: Path, data: bytes, name: str, field: str, value: bytes) -> Path:
    return corrupt(tiny_model, tmp_path / "c.gguf", at=tensor_fields(data, name)[field], data=value)


def test_unknown_ggml_type(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "blk.0.attn_q.weight", "type", struct.pack("<I", 33))
    fails(path, "blk.0.attn_q.weight", "unknown ggml type (33)")


def test_row_not_multiple_of_block(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "blk.0.attn_q.weight", "type", struct.pack("<I", gguf.GGMLQuantizationType.Q4_K))
    fails(path, "blk.0.attn_q.weight", "not a multiple", "Q4_K")


@pytest.mark.parametrize("n_dims", [0, 5, 2**32 - 1])
def test_bad_n_dims(tmp_path: Path, tiny_model: Path, data: bytes, n_dims: int) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "output_norm.weight", "n_dims", struct.pack("<I", n_dims))
    fails(path, "output_norm.weight", "dimensions")


def test_zero_dim(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "blk.1.ffn_up.weight", "dims", struct.pack("<Q", 0))
    fails(path, "blk.1.ffn_up.weight", "size 0")


def test_too_many_elements(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "blk.1.ffn_up.weight", "dims", struct.pack("<QQ", 2**40, 2**40))
    fails(path, "blk.1.ffn_up.weight", "2**62")


def test_unaligned_offset(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = tensor_fields(data, "output.weight")["offset"]
    (offset,) = struct.unpack_from("<Q", data, at)
    fails(corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=struct.pack("<Q", offset + 4)), "output.weight", "not a multiple of the alignment 32")


def test_tensor_outside_file(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "blk.0.attn_k.weight", "offset", struct.pack("<Q", 2**50))
    fails(path, "blk.0.attn_k.weight", "lies outside the file")


def test_duplicate_tensor_name(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    at = tensor_fields(data, "blk.0.attn_k.weight")["name_len"] + 8
    path = corrupt(tiny_model, tmp_path / "c.gguf", at=at, data=b"blk.0.attn_q.weight")
    fails(path, "blk.0.attn_q.weight", "appears twice")


def test_tensor_name_too_long(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt_tensor(tmp_path, tiny_model, data, "output.weight", "name_len", struct.pack("<Q", 64))
    fails(path, "name 64 bytes long", "at most 63")


# ---------------------------------------------------------------------------- hyperparameters


def test_block_count_too_large(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "model.gguf", metadata={"llama.block_count": 100000})
    info = read_gguf(path)  # parsing alone is fine: it is llama.cpp that would abort
    with pytest.raises(ModelFileError) as caught:
        validate_for_llama(info)
    assert str(caught.value) == (
        f"{path}: llama.block_count is 100000, but llama.cpp allows at most 512 layers; the file's metadata is corrupt"
    )


def test_head_count_zero(tmp_path: Path) -> None:
    fails(write_tiny_model(tmp_path / "h.gguf", metadata={"llama.attention.head_count": 0}), "llama.attention.head_count is 0")


def with_metadata(info: GGUFInfo, **changes: object) -> GGUFInfo:
    """A copy of `info` with some keys changed (None removes one); keys use __ for dots."""
    metadata = dict(info.metadata)
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    return dataclasses.replace(info, metadata=metadata)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> GGUFInfo:
    return read_gguf(write_tiny_model(tmp_path_factory.mktemp("good") / "good.gguf"))


@pytest.mark.parametrize(
    ("changes", "phrases"),
    [
        ({"general__architecture": None}, ["general.architecture is missing"]),
        ({"general__architecture": 7}, ["general.architecture is 7"]),
        ({"general__architecture": "nosuch"}, ["does not know"]),
        ({"llama__block_count": None}, ["llama.block_count (number of layers) is missing"]),
        ({"llama__block_count": 0}, ["llama.block_count is 0", "at least 1"]),
        ({"llama__block_count": "two"}, ["llama.block_count is 'two'", "whole number"]),
        ({"llama__block_count": True}, ["whole number"]),
        ({"llama__nextn_predict_layers": 3}, ["nextn_predict_layers is 3"]),
        ({"llama__context_length": 0}, ["llama.context_length is 0"]),
        ({"llama__context_length": 2**25}, ["16,777,216"]),
        ({"llama__context_length": -5}, ["whole number"]),
        ({"llama__embedding_length": 0}, ["llama.embedding_length is 0"]),
        ({"llama__attention__head_count": 65}, ["cannot exceed the embedding length (64)"]),
        ({"llama__attention__head_count": [4, 4, 4]}, ["3 entries", "2 layers"]),
        ({"llama__attention__head_count": [0, 0]}, ["at least one attention head"]),
        ({"llama__attention__head_count": [4, "x"]}, ["whole numbers"]),
        ({"llama__attention__head_count_kv": 0}, ["head_count_kv is 0", "at least 1"]),
        ({"llama__attention__head_count_kv": 3}, ["head_count_kv is 3", "must divide llama.attention.head_count (4)"]),
        ({"llama__attention__head_count_kv": [4, 3]}, ["must divide"]),
        ({"llama__expert_count": 2000, "llama__expert_used_count": 2}, ["at most 1024 experts"]),
        ({"llama__expert_used_count": 2}, ["expert_used_count is 2", "expert_count is only 0"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 9}, ["expert_used_count is 9"]),
        ({"llama__expert_count": 8}, ["must use at least one"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 3}, ["must divide the 8 experts"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 4}, ["expert_group_used_count is 0"]),
        ({"llama__rope__scaling__type": "dynamic"}, ["llama.rope.scaling.type is 'dynamic'", "yarn"]),
        ({"llama__rope__dimension_count": 17}, ["llama.rope.dimension_count is 17", "head size (16)"]),
        ({"tokenizer__ggml__bos_token_id": 901}, ["bos_token_id is 901", "only 901 tokens"]),
        ({"tokenizer__ggml__eos_token_id": 10**6}, ["eos_token_id is 1000000"]),
        ({"tokenizer__ggml__eos_token_id": -1}, ["whole number"]),
        ({"tokenizer__ggml__tokens": [1, 2]}, ["not a list of strings"]),
        ({"llama__attention__layer_norm_rms_epsilon": -1e-5}, ["layer_norm_rms_epsilon is -1e-05"]),
        ({"llama__attention__layer_norm_rms_epsilon": float("nan")}, ["is nan", "small positive number"]),
        ({"llama__attention__layer_norm_epsilon": "tiny"}, ["layer_norm_epsilon is 'tiny'"]),
        ({"tokenizer__ggml__model": "bert"}, ["'bert' but the vocabulary has byte tokens"]),
    ],
)
def test_bad_hyperparameters(good: GGUFInfo, changes: dict, phrases: list[str]) -> None:
    with pytest.raises(ModelFileError) as caught:
        validate_for_llama(with_metadata(good, **changes))
    check_message(caught.value, good.path, *phrases)


def test_good_variants_pass(good: GGUFInfo) -> None:
    validate_for_llama(good)
    validate_for_llama(with_metadata(good, llama__attention__head_count=[4, 4], llama__attention__head_count_kv=[2, 0]))
    validate_for_llama(with_metadata(good, llama__expert_count=8, llama__expert_used_count=[2, 2]))
    validate_for_llama(with_metadata(good, llama__rope__scaling__type="yarn", llama__attention__head_count_kv=None))
    validate_for_llama(with_metadata(good, general__architecture="mamba", mamba__block_count=2, mamba__context_length=4, mamba__embedding_length=8))


def test_vocab_size_must_match_embeddings(tmp_path: Path, good: GGUFInfo) -> None:
    tokens = good.tokens[:-1]
    path = write_tiny_model(tmp_path / "v.gguf", metadata={"tokenizer.ggml.tokens": tokens})
    fails(path, "token_embd.weight has 901 rows", "lists 900 tokens")
    fails(path, "token_embd.weight has 901 rows", vocab=False)


def test_duplicate_token(tmp_path: Path, tiny_model: Path, data: bytes) -> None:
    path = corrupt(tiny_model, tmp_path / "d.gguf", at=data.index(b"<0x01>"), data=b"<0x00>")
    fails(path, "contains the token '<0x00>' twice")


def test_duplicate_token_as_llama_cpp_sees_it(tmp_path: Path, good: GGUFInfo) -> None:
    """llama.cpp compares token texts as C strings: "!" and "!\\0x" are the same token, and
    empty tokens are renamed, so several of them are fine."""
    tokens = list(good.tokens)
    tokens[-1], tokens[-2], tokens[-3] = "", "", "!\0x"
    path = write_tiny_model(tmp_path / "d.gguf", metadata={"tokenizer.ggml.tokens": tokens})
    assert read_gguf(path).duplicate_token == len(tokens) - 3
    fails(path, "contains the token '!' twice")
    tokens[-3] = "fine"
    load_checked(write_tiny_model(tmp_path / "ok.gguf", metadata={"tokenizer.ggml.tokens": tokens}))


def test_messages_escape_control_characters(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "x.gguf", metadata={"general.architecture": "lla\nma\x1b[31m"})
    fails(path, "lla\\nma\\x1b[31m")
