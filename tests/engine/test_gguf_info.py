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


# How every message ends: the verdict on the file, or what to do about it.
ADVICE = (
    "check the path or download the model first", "check the file's permissions", "check the path",
    "give the path of a .gguf file inside it", "give the path of a .gguf model file",
    "the download or conversion probably failed, so fetch it again", "check that the file is intact and readable",
    "the download or conversion may be incomplete", "get a little-endian build of the model",
    "convert the model again with a current llama.cpp", "update lcchat and llama-cpp-python",
    "convert it to GGUF or download a GGUF version", "choose a .gguf model file", "the file is corrupt",
    "the file is corrupt or truncated", "the file is corrupt or needs a newer llama.cpp",
    "the file's metadata is corrupt", "the file's metadata is incomplete, so convert the model again",
    "the file is not a usable model", "update llama-cpp-python or choose another model",
    "the file's tokenizer data is corrupt",
)


def check_message(error: Exception, path: Path | str, *phrases: str) -> str:
    """One line: the file, then what is wrong (going on in lower case), then after the last
    "; " the verdict or what to do."""
    message = str(error)
    assert isinstance(error, InputError)
    assert "\n" not in message and message.strip() == message
    assert message.startswith(f"{path}: ")
    assert message[len(f"{path}: ")].islower(), message
    assert message.rpartition("; ")[2] in ADVICE, message
    for phrase in phrases:
        assert phrase in message, message
    return message


def invalid(info: GGUFInfo, *phrases: str) -> str:
    """validate_for_llama(info) raises a one-line ModelFileError; return it."""
    with pytest.raises(ModelFileError) as caught:
        validate_for_llama(info)
    return check_message(caught.value, info.path, *phrases)


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


@pytest.mark.smollm2
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
        # run from the checkout (nobody must read it anyway, to import lcchat): mutmut's copy of
        # lcchat finds its configuration there when the mutation run calls this test
        root = Path(__file__).resolve().parents[2]
        result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                 sys.executable, "-c", code, str(path)],
                                capture_output=True, text=True, timeout=60, cwd=root,
                                env={**os.environ, "PYTHONPATH": str(root)})
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
    fails(path, "is in an old pre-GGUF llama.cpp format (GGML/GGJT), which llama.cpp no longer reads")


@pytest.mark.parametrize(
    ("version", "phrase"),
    [(1, "uses GGUF version 1, which llama.cpp no longer reads"), (4, "version 4, newer"), (0, "invalid GGUF version"),
     (0x03000000, "big-endian")],
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
    fails(path, "tensor #20 has a name 64 bytes long, but llama.cpp allows at most 63")


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
        ({"llama__block_count": "two"}, ["llama.block_count is 'two', but it must be a whole number"]),
        ({"llama__block_count": True}, ["whole number"]),
        ({"llama__nextn_predict_layers": 3}, ["llama.nextn_predict_layers is 3, but the model has only 2 layers"]),
        ({"llama__context_length": 0}, ["llama.context_length is 0"]),
        ({"llama__context_length": 2**25}, ["16,777,216"]),
        ({"llama__context_length": -5}, ["whole number"]),
        ({"llama__embedding_length": 0}, ["llama.embedding_length is 0"]),
        ({"llama__attention__head_count": 65}, ["head_count is 65, but it cannot exceed the embedding length (64)"]),
        ({"llama__attention__head_count": [4, 4, 4]}, ["3 entries", "2 layers"]),
        ({"llama__attention__head_count": [0, 0]}, ["head_count is [0, 0], but a model needs at least one attention head"]),
        ({"llama__attention__head_count": [4, "x"]}, ["whole numbers"]),
        ({"llama__attention__head_count_kv": 0}, ["head_count_kv is 0, but it must be at least 1"]),
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


# ---------------------------------------------------------------------------- files built byte by byte
# Hostile and odd files that no writer makes: each field is chosen, so a bound can be hit exactly.

TT = gguf.TokenType
Q8_0 = gguf.GGMLQuantizationType.Q8_0


def s(text: str | bytes) -> bytes:
    """A GGUF string: u64 length, then the bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def u32(key: str, value: int) -> bytes:
    return kv(key, VT.UINT32, struct.pack("<I", value))


def string_array(key: str, items: list[str | bytes]) -> bytes:
    return kv(key, VT.ARRAY, struct.pack("<IQ", VT.STRING, len(items)) + b"".join(s(i) for i in items))


def tensor(name: str, shape: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return s(name) + struct.pack(f"<I{len(shape)}QIQ", len(shape), *shape, ggml_type, offset)


def gguf_bytes(kvs: list[bytes] = (), tensors: list[bytes] = (), *, data: bytes = b"", version: int = 3,
               alignment: int = 32, n_kv: int | None = None, n_tensors: int | None = None) -> bytes:
    """A GGUF file: header, the metadata entries and tensor entries given, padding to
    `alignment`, then `data`. The counts default to the entries given."""
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    if tensors:
        body += bytes(-len(body) % alignment)
    return body + data


def write(tmp_path: Path, blob: bytes, name: str = "b.gguf") -> Path:
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def test_the_smallest_metadata_entry_fits_exactly(tmp_path: Path) -> None:
    """One 1-byte key with a 1-byte value is 14 bytes: the count check must not call that
    file too short (nor a version 2 file unreadable)."""
    blob = gguf_bytes([kv("k", VT.UINT8, b"\x07")], version=2)
    assert len(blob) == 24 + 14
    info = read_gguf(write(tmp_path, blob))
    assert (info.version, info.metadata, info.value_types) == (2, {"k": 7}, {"k": VT.UINT8})
    assert info.tensors == [] and info.data_offset == len(blob) and info.alignment == 32
    assert info.file_size == len(blob)
    fails(write(tmp_path, blob[:-1]), "lists 1 metadata entries and 0 tensors", "cannot fit in its 37 bytes")


def test_counts_are_checked_against_the_bytes_left_with_both_counts(tmp_path: Path) -> None:
    blob = gguf_bytes([kv("k", VT.UINT8, b"\x07")], n_tensors=1) + bytes(31)  # one byte short of a tensor entry
    fails(write(tmp_path, blob), "lists 1 metadata entries and 1 tensors")


@pytest.mark.parametrize(("count", "where"), [(8, 8), (16, 16)])
def test_the_largest_possible_count_is_not_called_impossible(tmp_path: Path, count: int, where: int) -> None:
    """2**24 entries is the bound itself: the file is then merely too short for them."""
    blob = bytearray(gguf_bytes([kv("k", VT.UINT8, b"\x07")]))
    blob[where:where + 8] = struct.pack("<Q", 2**24)
    message = fails(write(tmp_path, bytes(blob)), "cannot fit")
    assert "16,777,216" in message and "impossible" not in message
    blob[where:where + 8] = struct.pack("<Q", 2**24 + 1)
    fails(write(tmp_path, bytes(blob)), "16,777,217", "an impossible number")


def test_a_scalar_of_every_type_is_read_as_its_value(tmp_path: Path) -> None:
    values = {
        "u8": (VT.UINT8, "<B", 200), "i8": (VT.INT8, "<b", -100), "u16": (VT.UINT16, "<H", 60000),
        "i16": (VT.INT16, "<h", -30000), "u32": (VT.UINT32, "<I", 4_000_000_000), "i32": (VT.INT32, "<i", -2**31),
        "f32": (VT.FLOAT32, "<f", 0.5), "u64": (VT.UINT64, "<Q", 2**64 - 1), "i64": (VT.INT64, "<q", -2**63),
        "f64": (VT.FLOAT64, "<d", 1e300),
    }
    kvs = [kv(key, vtype, struct.pack(fmt, value)) for key, (vtype, fmt, value) in values.items()]
    kvs += [kv("yes", VT.BOOL, b"\x02"), kv("no", VT.BOOL, b"\x00"), kv("text", VT.STRING, s("caf\xe9".encode("latin-1")))]
    info = read_gguf(write(tmp_path, gguf_bytes(kvs)))
    for key, (vtype, _, value) in values.items():
        assert info.metadata[key] == value and info.value_types[key] == vtype
    assert info.metadata["yes"] is True and info.metadata["no"] is False
    assert info.metadata["text"] == "caf\ufffd"  # bad UTF-8 is replaced, never an error


def test_arrays_of_scalars_bools_and_strings_are_read(tmp_path: Path) -> None:
    kvs = [kv("nums", VT.ARRAY, struct.pack("<IQ3h", VT.INT16, 3, -1, 0, 7)),
           kv("flags", VT.ARRAY, struct.pack("<IQ3B", VT.BOOL, 3, 1, 0, 9)),
           string_array("words", ["a", "", "\u00e9", b"\xff"]),
           kv("empty", VT.ARRAY, struct.pack("<IQ", VT.FLOAT64, 0))]
    info = read_gguf(write(tmp_path, gguf_bytes(kvs)))
    assert info.metadata["nums"] == [-1, 0, 7]
    assert info.metadata["flags"] == [True, False, True] and all(type(v) is bool for v in info.metadata["flags"])
    assert info.metadata["words"] == ["a", "", "\u00e9", "\ufffd"] and info.metadata["empty"] == []


def test_an_array_count_is_checked_against_its_items_smallest_size(tmp_path: Path) -> None:
    """12 bytes hold 12 u8 items, 3 u32, 1 string header: one more item of each does not fit."""
    for item, n in ((VT.UINT8, 12), (VT.UINT32, 3), (VT.STRING, 1), (VT.ARRAY, 1)):
        entry = kv("arr", VT.ARRAY, struct.pack("<IQ", item, n + 1))
        blob = gguf_bytes([entry]) + bytes(12)
        for vocab in (True, False):
            message = fails(write(tmp_path, blob), "arr", f"array of {n + 1} items", "the 12 bytes left", vocab=vocab)
            assert "corrupt or truncated" in message


def test_an_array_of_arrays_needs_12_bytes_an_item(tmp_path: Path) -> None:
    """An inner array's header is 12 bytes (item type and count): two need 24."""
    blob = gguf_bytes([kv("arr", VT.ARRAY, struct.pack("<IQ", VT.ARRAY, 2))]) + bytes(16)
    fails(write(tmp_path, blob), "arr claims an array of 2 items, which cannot fit in the 16 bytes left")


def test_the_array_and_string_bounds_hold_without_a_huge_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_ARRAY_ITEMS and MAX_STRING_BYTES, lowered so that a small file reaches them:
    exactly the bound is read, one more is refused before anything is built."""
    from lcchat.engine import gguf_info

    monkeypatch.setattr(gguf_info, "MAX_ARRAY_ITEMS", 4)
    monkeypatch.setattr(gguf_info, "MAX_STRING_BYTES", 5)
    ok = gguf_bytes([kv("nums", VT.ARRAY, struct.pack("<IQ4B", VT.UINT8, 4, 1, 2, 3, 4)),
                     string_array("words", ["12345"]), kv("word", VT.STRING, s("abcde"))])
    info = read_gguf(write(tmp_path, ok))
    assert info.metadata == {"nums": [1, 2, 3, 4], "words": ["12345"], "word": "abcde"}
    too_many = gguf_bytes([kv("nums", VT.ARRAY, struct.pack("<IQ5B", VT.UINT8, 5, 1, 2, 3, 4, 5))])
    fails(write(tmp_path, too_many), "nums holds an array of 5 items, more than the 4 allowed")
    for blob, what in ((gguf_bytes([string_array("words", ["123456"])]), "item 0 of words"),
                       (gguf_bytes([kv("word", VT.STRING, s("abcdef"))]), "the value of word"),
                       (gguf_bytes([kv("abcdef", VT.UINT8, b"\x01")]), "metadata key #0")):
        fails(write(tmp_path, blob), what, "is 6 bytes long, more than the 5 allowed")


def test_a_string_item_longer_than_the_file_is_refused_in_every_array(tmp_path: Path) -> None:
    for key in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "other"):
        blob = gguf_bytes([kv(key, VT.ARRAY, struct.pack("<IQ", VT.STRING, 2) + s("ok") + struct.pack("<Q", 2**40))])
        for vocab in (True, False):
            message = fails(write(tmp_path, blob + bytes(8)), f"item 1 of {key} claims 1,099,511,627,776 bytes",
                            "but only 8 are left", vocab=vocab)
            assert "corrupt or truncated" in message


def test_skipped_vocabulary_arrays_of_every_kind_are_measured_and_stepped_over(tmp_path: Path) -> None:
    """With vocab=False the tokenizer's arrays are not read, but their lengths are known
    and what follows them is read from the right place."""
    kvs = [string_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"]),
           kv("tokenizer.ggml.scores", VT.ARRAY, struct.pack("<IQ3f", VT.FLOAT32, 3, 0, 1, 2)),
           kv("tokenizer.ggml.token_type", VT.ARRAY, struct.pack("<IQ3i", VT.INT32, 3, 1, 1, 1)),
           kv("tokenizer.ggml.merges", VT.ARRAY, struct.pack("<IQ", VT.ARRAY, 2)
              + struct.pack("<IQ2H", VT.UINT16, 2, 1, 2) + struct.pack("<IQ", VT.STRING, 1) + s("xy")),
           u32("after", 42)]
    path = write(tmp_path, gguf_bytes(kvs))
    lean = read_gguf(path, vocab=False)
    assert lean.metadata == {"after": 42}
    assert lean.skipped_arrays == {"tokenizer.ggml.tokens": 3, "tokenizer.ggml.scores": 3,
                                   "tokenizer.ggml.token_type": 3, "tokenizer.ggml.merges": 2}
    assert lean.vocab_size == 3 and lean.tokens == [] and lean.value_types["tokenizer.ggml.merges"] == VT.ARRAY
    full = read_gguf(path)
    assert full.metadata["tokenizer.ggml.merges"] == [[1, 2], ["xy"]] and full.skipped_arrays == {}
    assert full.metadata["after"] == 42 and full.vocab_size == 3


def test_a_skipped_array_nested_too_deep_or_past_the_end_is_refused(tmp_path: Path) -> None:
    deep = kv("tokenizer.ggml.merges", VT.ARRAY, struct.pack("<IQ", VT.ARRAY, 1) + struct.pack("<IQ", VT.ARRAY, 1)
              + struct.pack("<IQB", VT.UINT8, 1, 0))
    fails(write(tmp_path, gguf_bytes([deep])), "tokenizer.ggml.merges nests arrays more than 2 deep", vocab=False)
    short = kv("tokenizer.ggml.scores", VT.ARRAY, struct.pack("<IQ", VT.FLOAT32, 4) + bytes(12))
    fails(write(tmp_path, gguf_bytes([short])), "tokenizer.ggml.scores claims an array of 4 items", vocab=False)


def test_a_key_repeated_after_a_skipped_array_is_refused(tmp_path: Path) -> None:
    tokens = string_array("tokenizer.ggml.tokens", ["a"])
    for vocab in (True, False):
        fails(write(tmp_path, gguf_bytes([tokens, tokens])), "tokenizer.ggml.tokens appears twice", vocab=vocab)


def test_a_duplicate_only_counts_in_the_token_list(tmp_path: Path) -> None:
    """Repeated merges or repeated strings in another array are not llama.cpp's concern."""
    kvs = [string_array("tokenizer.ggml.merges", ["a b", "a b"]), string_array("tokenizer.ggml.tokens", ["a", "b"]),
           string_array("x.tokenizer.ggml.tokens", ["a", "a"])]
    assert read_gguf(write(tmp_path, gguf_bytes(kvs))).duplicate_token is None
    nested = kv("tokenizer.ggml.tokens", VT.ARRAY, struct.pack("<IQ", VT.ARRAY, 1) + struct.pack("<IQ", VT.STRING, 2)
                + s("a") + s("a"))
    assert read_gguf(write(tmp_path, gguf_bytes([nested]))).duplicate_token is None


def test_the_first_duplicate_token_is_the_one_reported(tmp_path: Path) -> None:
    blob = gguf_bytes([string_array("tokenizer.ggml.tokens", ["a", "b", "b", "a", "c\0d", "c"])])
    assert read_gguf(write(tmp_path, blob)).duplicate_token == 2


def test_an_empty_token_clashes_with_the_name_llama_cpp_gives_it(tmp_path: Path) -> None:
    """llama.cpp renames the empty token at index 2 "[EMPTY_2]"; a token spelled so is then a
    repeat (and an abort), wherever it comes."""
    for tokens, index in ((["a", "[EMPTY_2]", ""], 2), (["a", "", "[EMPTY_1]"], 2), (["a", "", "[EMPTY_2]"], None)):
        blob = gguf_bytes([string_array("tokenizer.ggml.tokens", tokens)])
        assert read_gguf(write(tmp_path, blob)).duplicate_token == index, tokens


def test_a_token_with_a_nul_is_compared_up_to_it(tmp_path: Path) -> None:
    blob = gguf_bytes([string_array("tokenizer.ggml.tokens", [b"ab\0x", b"ab\0y"])])
    assert read_gguf(write(tmp_path, blob)).duplicate_token == 1
    blob = gguf_bytes([string_array("tokenizer.ggml.tokens", [b"a\0b\0c", b"a\0d\0c"])])  # the first NUL ends it
    assert read_gguf(write(tmp_path, blob)).duplicate_token == 1
    blob = gguf_bytes([string_array("tokenizer.ggml.tokens", [b"\0x", b"\0y"])])  # both empty: renamed apart
    assert read_gguf(write(tmp_path, blob)).duplicate_token is None


def test_alignment_is_read_from_the_file_and_lays_out_the_data(tmp_path: Path) -> None:
    """general.alignment = 64: the data starts at the next multiple of 64, and a tensor's
    offset must be a multiple of 64."""
    kvs = [u32("general.alignment", 64)]
    table = [tensor("a", (3,), gguf.GGMLQuantizationType.F32, 0), tensor("b", (2,), gguf.GGMLQuantizationType.F32, 64)]
    blob = gguf_bytes(kvs, table, alignment=64, data=bytes(64 + 8))
    info = read_gguf(write(tmp_path, blob))
    assert info.alignment == 64 and info.data_offset % 64 == 0 and info.data_offset > len(blob) - 72 - 64
    assert [(t.name, t.offset - info.data_offset, t.nbytes) for t in info.tensors] == [("a", 0, 12), ("b", 64, 8)]
    assert info.file_size == len(blob) == info.tensors[-1].offset + 8
    unaligned = gguf_bytes(kvs, [tensor("a", (3,), gguf.GGMLQuantizationType.F32, 32)], alignment=64, data=bytes(64))
    fails(write(tmp_path, unaligned), "tensor a starts at data offset 32", "not a multiple of the alignment 64")


@pytest.mark.parametrize("alignment", [1, 2, 4096])
def test_any_power_of_two_is_an_alignment(tmp_path: Path, alignment: int) -> None:
    blob = gguf_bytes([u32("general.alignment", alignment)])
    assert read_gguf(write(tmp_path, blob)).alignment == alignment


def test_an_alignment_of_another_type_is_named(tmp_path: Path) -> None:
    blob = gguf_bytes([kv("general.alignment", VT.INT32, struct.pack("<i", 32))])
    fails(write(tmp_path, blob), "general.alignment is stored as INT32, but llama.cpp requires UINT32")


def test_a_quantized_tensor_has_its_block_size(tmp_path: Path) -> None:
    """nbytes of a Q8_0 tensor: 34 bytes per block of 32 values."""
    blob = gguf_bytes([], [tensor("w", (64, 3), Q8_0, 0)], data=bytes(2 * 3 * 34))
    info = read_gguf(write(tmp_path, blob))
    (w,) = info.tensors
    assert (w.shape, w.ggml_type, w.type_name, w.nbytes, w.n_elements) == ((64, 3), Q8_0, "Q8_0", 204, 192)
    assert info.bits_per_weight == pytest.approx(8.5) and info.file_type_name == "Q8_0"
    fails(write(tmp_path, blob[:-1]), "is truncated: the tensor data ends at byte", f"the file has {len(blob) - 1:,} bytes")
    ragged = gguf_bytes([], [tensor("w", (100, 3), Q8_0, 0)], data=bytes(2 * 3 * 34))
    fails(write(tmp_path, ragged), "tensor w has rows of 100 elements, not a multiple of the 32-element blocks of type Q8_0")


def test_tensor_shape_bounds_are_inclusive(tmp_path: Path) -> None:
    """Four dimensions, a 63-byte name and 2**62 elements are allowed (the data then does
    not fit this file, which is a different complaint)."""
    name = "n" * 63
    blob = gguf_bytes([], [tensor(name, (1, 2, 1, 3), gguf.GGMLQuantizationType.F32, 0)], data=bytes(24))
    (t,) = read_gguf(write(tmp_path, blob)).tensors
    assert t.name == name and t.shape == (1, 2, 1, 3) and t.n_elements == 6 and t.nbytes == 24
    huge = gguf_bytes([], [tensor("big", (2**31, 2**31), gguf.GGMLQuantizationType.I8, 0)], data=bytes(32))
    message = fails(write(tmp_path, huge), "is truncated: the tensor data ends at byte 4,611,686,018,427,388,")
    assert "2**62" not in message
    bigger = gguf_bytes([], [tensor("big", (2**31, 2**31 + 1), gguf.GGMLQuantizationType.I8, 0)], data=bytes(32))
    fails(write(tmp_path, bigger), "tensor big has shape (2147483648, 2147483649), more than 2**62 elements")


def test_a_short_file_with_tensors_in_order_is_truncated_however_they_are_padded(tmp_path: Path) -> None:
    """Tensors written back to back, each padded to the alignment: a short file is a cut
    download. The same tensors out of order point outside the file."""
    f32 = gguf.GGMLQuantizationType.F32
    in_order = [tensor("a", (3,), f32, 0), tensor("b", (5,), f32, 32), tensor("c", (8,), f32, 64)]
    blob = gguf_bytes([], in_order, data=bytes(64 + 16))  # c's 32 bytes: half there
    message = fails(write(tmp_path, blob), "is truncated: the tensor data ends at byte", "may be incomplete")
    assert f"ends at byte {len(blob) + 16:,}" in message
    shuffled = [tensor("a", (3,), f32, 0), tensor("b", (5,), f32, 64), tensor("c", (8,), f32, 32)]
    # the data starts at 128, after the header (24) and the table (3 x 33), padded to 32
    fails(write(tmp_path, gguf_bytes([], shuffled, data=bytes(64 + 16))),
          "tensor b lies outside the file (bytes 192 to 212 of a 208-byte file); the file is corrupt")
    ends_at_the_end = [tensor("c", (8,), f32, 32), tensor("a", (3,), f32, 0), tensor("b", (5,), f32, 64)]
    fails(write(tmp_path, gguf_bytes([], ends_at_the_end, data=bytes(64))), "tensor b lies outside the file")
    first_moved = [tensor("a", (3,), f32, 32), tensor("b", (5,), f32, 64)]
    fails(write(tmp_path, gguf_bytes([], first_moved, data=bytes(64))), "tensor b lies outside the file")


def test_a_file_cut_between_the_tensor_table_and_the_data(tmp_path: Path) -> None:
    blob = gguf_bytes([], [tensor("a", (8,), gguf.GGMLQuantizationType.F32, 0)], data=bytes(32))
    table_end = 24 + 8 + 1 + 4 + 8 + 4 + 8
    info = read_gguf(write(tmp_path, blob))
    assert info.data_offset == 64 and table_end < 64
    message = fails(write(tmp_path, blob[:table_end + 1]), "tensor data should start at byte 64",
                    f"has only {table_end + 1} bytes")
    assert message.endswith("may be incomplete")
    # cut where the data starts: the data is what is missing
    fails(write(tmp_path, blob[:64]), "is truncated: the tensor data ends at byte 96 but the file has 64 bytes")


def test_a_file_without_tensors_needs_no_data(tmp_path: Path) -> None:
    blob = gguf_bytes([kv("k", VT.STRING, s("abc"))])
    info = read_gguf(write(tmp_path, blob))
    assert info.tensors == [] and info.data_offset == len(blob) == 24 + 8 + 1 + 4 + 8 + 3
    assert info.n_params == 0 and info.bits_per_weight is None and info.file_type_name is None
    assert info.tensor_type_histogram == {} and info.vocab_size is None and info.architecture is None


def test_magic_shorter_than_four_bytes(tmp_path: Path) -> None:
    fails(write(tmp_path, b"GGU"), "is truncated: its header runs to byte 4 but the file has only 3 bytes")
    fails(write(tmp_path, b"GG"), "is truncated", "only 2 bytes")
    fails(write(tmp_path, b"GGX"), "is not a GGUF file (it starts with b'GGX'")
    fails(write(tmp_path, b"x"), "is not a GGUF file (it starts with b'x'")


def test_a_version_with_low_bits_is_not_big_endian(tmp_path: Path) -> None:
    blob = bytearray(gguf_bytes())
    blob[4:8] = struct.pack("<I", 0x00010003)
    message = fails(write(tmp_path, bytes(blob)), "uses GGUF version 65539, newer than the versions 2 and 3")
    assert "big-endian" not in message
    blob[4:8] = struct.pack("<I", 0x00020000)
    fails(write(tmp_path, bytes(blob)), "is a big-endian GGUF file")


def test_a_tensor_without_a_name_or_with_a_name_past_the_end(tmp_path: Path) -> None:
    f32 = gguf.GGMLQuantizationType.F32
    info = read_gguf(write(tmp_path, gguf_bytes([], [tensor("", (1,), f32, 0)], data=bytes(4))))
    assert [t.name for t in info.tensors] == [""]
    odd = gguf_bytes([], [s(b"w\xff") + struct.pack("<IQIQ", 1, 1, f32, 0)], data=bytes(4))
    assert [t.name for t in read_gguf(write(tmp_path, odd)).tensors] == ["w\ufffd"]  # not UTF-8: replaced
    # cut right after a tensor's name (a long value first, so the counts alone fit): n_dims is missing
    named = gguf_bytes([kv("k", VT.STRING, s("v" * 50))], [tensor("abc", (1,), f32, 0)], data=bytes(4))
    fails(write(tmp_path, named[:24 + 71 + 11]), "its tensor table runs to byte 110 but the file has only 106 bytes")
    # the name's length fits the limit but not what is left of the file
    short = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 40) + bytes(24)
    fails(write(tmp_path, short), "is truncated: its tensor table runs to byte 72 but the file has only 56 bytes")


def test_a_file_that_shrinks_while_it_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_model: Path) -> None:
    """stat() said one size, the file then holds fewer bytes: truncated, not a crash."""
    from lcchat.engine import gguf_info

    cut = truncate(tiny_model, tmp_path / "shrunk.gguf", 5000)
    monkeypatch.setattr(gguf_info, "_file_size", lambda path, name: tiny_model.stat().st_size)
    message = fails(cut, "is truncated: its metadata runs to byte", f"has only {tiny_model.stat().st_size:,} bytes")
    end = int(message.partition("runs to byte ")[2].partition(" ")[0].replace(",", ""))
    assert 5000 < end < 5100, message  # the end of the field that the cut falls in


def test_reading_in_small_chunks_reads_the_same(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    """The reader buffers the file: reads that straddle, exactly fill or exceed its chunk
    give the same values."""
    from lcchat.engine import gguf_info

    whole = read_gguf(tiny_model)
    for chunk in (1, 7, 64):
        monkeypatch.setattr(gguf_info._Reader, "CHUNK", chunk)
        again = read_gguf(tiny_model)
        assert again.metadata == whole.metadata and again.tensors == whole.tensors


def test_an_os_error_while_reading_is_one_line(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    from lcchat.engine import gguf_info

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(gguf_info, "open", broken, raising=False)
    fails(tiny_model, "cannot be read (Input/output error); check that the file is intact and readable")

    def bare(*args: object, **kwargs: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(gguf_info, "open", bare, raising=False)
    fails(tiny_model, "cannot be read (disk gone)")


def test_a_path_that_cannot_be_looked_at(tmp_path: Path) -> None:
    loop = tmp_path / "loop.gguf"
    loop.symlink_to(loop)
    fails(loop, "cannot be read (Too many levels of symbolic links); check the path")
    fifo = tmp_path / "pipe.gguf"
    os.mkfifo(fifo)
    fails(fifo, "is not a regular file; give the path of a .gguf model file")


def test_stat_refused_is_permission_denied(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "stat", refuse)
    fails(tiny_model, "cannot be read: permission denied; check the file's permissions")


# ---------------------------------------------------------------------------- a remote file's first bytes


def test_a_prefix_parses_like_the_file(tiny_model: Path, data: bytes) -> None:
    from lcchat.engine.gguf_info import HeaderIncomplete, read_gguf_prefix

    whole = read_gguf(tiny_model, vocab=False)
    info = read_gguf_prefix(data[:whole.data_offset], len(data), "remote.gguf")
    assert info.path == Path("remote.gguf") and info.file_size == len(data)
    assert info.tensors == whole.tensors and info.metadata == whole.metadata and info.skipped_arrays == whole.skipped_arrays
    with pytest.raises(HeaderIncomplete) as short:
        read_gguf_prefix(data[:100], len(data), "remote.gguf")
    assert 100 < short.value.needed <= whole.data_offset
    with pytest.raises(ModelFileError) as truncated:  # the file itself is too short, not the bytes fetched
        read_gguf_prefix(data[:100], 100, "remote.gguf")
    assert str(truncated.value).startswith("remote.gguf: is truncated")


# ---------------------------------------------------------------------------- what the metadata says


def test_head_dims_and_rope_dimensions_as_llama_cpp_derives_them(good: GGUFInfo) -> None:
    assert good.head_dims == (16, 16) and good.rope_dimension_count == 16
    explicit = with_metadata(good, llama__attention__key_length=24, llama__attention__value_length=8,
                             llama__rope__dimension_count=None)
    assert explicit.head_dims == (24, 8) and explicit.rope_dimension_count == 16
    per_layer = with_metadata(good, llama__attention__head_count=[0, 8], llama__rope__dimension_count=None)
    assert per_layer.head_dims == (8, 8) and per_layer.rope_dimension_count is None
    assert with_metadata(good, llama__attention__head_count=[2, 8], llama__rope__dimension_count=None).rope_dimension_count == 32
    unknown = with_metadata(good, llama__attention__head_count=None, llama__rope__dimension_count=None)
    assert unknown.head_dims == (0, 0) and unknown.rope_dimension_count is None and unknown.head_count_kv == 4
    assert with_metadata(good, llama__embedding_length=None).head_dims == (0, 0)
    no_arch = with_metadata(good, general__architecture=None)
    assert (no_arch.architecture, no_arch.block_count, no_arch.head_count, no_arch.head_dims) == (None, None, None, (0, 0))
    assert with_metadata(good, general__architecture=3).block_count is None
    assert with_metadata(good, general__architecture=None, **{"None__block_count": 3}).block_count is None
    empty = with_metadata(good, llama__attention__head_count=[], llama__rope__dimension_count=None)
    assert empty.head_count == [] and empty.rope_dimension_count is None and empty.head_dims == (0, 0)


def test_typed_views_of_the_metadata_reject_wrong_types(good: GGUFInfo) -> None:
    odd = with_metadata(good, llama__block_count=True, llama__context_length="512", llama__attention__head_count=[4, "4"],
                        llama__attention__head_count_kv=[2, 2], llama__rope__freq_base=True,
                        llama__rope__scaling__factor=4, llama__rope__scaling__type=7,
                        tokenizer__chat_template=["x"], tokenizer__ggml__tokens="abc", tokenizer__ggml__token_type=3,
                        tokenizer__ggml__eot_token_id=5, tokenizer__ggml__bos_token_id=1.0)
    assert (odd.block_count, odd.context_length, odd.head_count, odd.head_count_kv) == (None, None, None, [2, 2])
    assert odd.rope_freq_base is None and odd.rope_scaling_factor == 4.0 and isinstance(odd.rope_scaling_factor, float)
    assert odd.rope_scaling_type is None and odd.chat_template is None
    assert odd.tokens == [] and odd.token_types == [] and odd.vocab_size is None
    assert odd.eot_token_id == 5 and odd.bos_token_id is None
    assert with_metadata(good, llama__rope__scaling__type="yarn").rope_scaling_type == "yarn"
    assert with_metadata(good, llama__attention__head_count_kv=None).head_count_kv == 4


def test_file_type_name_from_the_code_or_the_commonest_quantized_matrix(good: GGUFInfo) -> None:
    def named(code: object, *types: tuple[str, tuple[int, ...]]) -> str | None:
        info = with_metadata(good, general__file_type=code)
        if types:
            info = dataclasses.replace(info, tensors=[
                gguf_info_tensor(f"t{i}", shape, name) for i, (name, shape) in enumerate(types)])
        return info.file_type_name

    assert named(15) == "Q4_K_M" and named(0) == "F32" and named(7) == "Q8_0"
    matrices = (("F32", (64, 2)), ("Q4_K", (256, 2)), ("Q6_K", (256, 2)), ("Q6_K", (256, 4)), ("F32", (64, 2)),
                ("F32", (64, 2)), ("Q8_0", (64,)), ("Q8_0", (64,)), ("Q8_0", (64,)), ("Q8_0", (64,)))
    assert named(None, *matrices) == "Q6_K"  # vectors and unquantized matrices do not count
    assert named(1024, *matrices) == "Q6_K" and named(9999, *matrices) == "Q6_K" and named("15", *matrices) == "Q6_K"
    assert named(None, ("F16", (64, 2)), ("F32", (64, 2)), ("F16", (64, 2)), ("F32", (64,))) == "F16"
    assert named(None, ("F32", (64,))) is None


def gguf_info_tensor(name: str, shape: tuple[int, ...], type_name: str):
    from lcchat.engine.gguf_info import TensorInfo

    ggml_type = gguf.GGMLQuantizationType[type_name]
    block, size = gguf.GGML_QUANT_SIZES[ggml_type]
    n = 1
    for dim in shape:
        n *= dim
    return TensorInfo(name, shape, int(ggml_type), type_name, 0, n // block * size)


def test_a_long_value_is_shortened_in_a_message(good: GGUFInfo) -> None:
    heads = list(range(1, 11))
    message = invalid(with_metadata(good, llama__attention__head_count=heads))
    assert "10 entries" in message
    bad = list(range(9)) + ["x"]
    info = with_metadata(good, llama__block_count=10, llama__attention__head_count=bad)
    message = invalid(info)
    assert "llama.attention.head_count is [0, 1, 2, 3, 4, 5, 6, 7, ...], but it must hold whole numbers" in message
    long = "z" * 100
    message = invalid(with_metadata(good, llama__rope__scaling__type=long))
    assert f"is '{'z' * 56}..., but" in message


def test_a_long_key_or_tensor_name_is_cut_in_a_message(tmp_path: Path) -> None:
    key = "k" * 100
    message = fails(write(tmp_path, gguf_bytes([kv(key, 99, b"")])), "unknown value type (99)")
    assert "k" * 79 in message and "k" * 81 not in message


# ---------------------------------------------------------------------------- hyperparameter bounds


@pytest.mark.parametrize(
    "changes",
    [
        {"llama__block_count": 512, "llama__attention__head_count": 4},
        {"llama__nextn_predict_layers": 2},
        {"llama__context_length": 2**24},
        {"llama__attention__head_count": 64, "llama__rope__dimension_count": 1},
        {"llama__attention__head_count": 64, "llama__attention__head_count_kv": 64, "llama__rope__dimension_count": 1},
        {"llama__expert_count": 1024, "llama__expert_used_count": 1024},
        {"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 1},
        {"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 4,
         "llama__expert_group_used_count": 3},
        {"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 4,
         "llama__expert_group_used_count": 1},
        {"llama__rope__dimension_count": 16},
        {"llama__rope__dimension_count": 24, "llama__attention__key_length": 24},
        {"llama__rope__dimension_count": 17, "llama__attention__head_count": [0, 4], "llama__attention__head_count_kv": [0, 4]},
        {"llama__rope__scaling__type": "none"},
        {"llama__rope__scaling__type": "longrope"},
        {"llama__rope__scaling__type": "linear"},
        {"llama__attention__layer_norm_rms_epsilon": 0.0, "llama__attention__layer_norm_epsilon": 1e-5},
        {"tokenizer__ggml__bos_token_id": 900, "tokenizer__ggml__eos_token_id": 0, "tokenizer__ggml__eot_token_id": 900},
        {"llama__attention__head_count_kv": [2, 1]},
        {"llama__block_count": 1},
        {"llama__block_count": 1, "llama__attention__head_count_kv": 2},
    ],
)
def test_values_at_llama_cpp_limits_pass(good: GGUFInfo, changes: dict) -> None:
    validate_for_llama(with_metadata(good, **changes))


@pytest.mark.parametrize(
    ("changes", "phrases"),
    [
        ({"llama__block_count": 513}, ["llama.block_count is 513, but llama.cpp allows at most 512 layers"]),
        ({"llama__block_count": [2]}, ["llama.block_count is [2]", "whole number"]),
        ({"llama__embedding_length": None}, ["llama.embedding_length (embedding length) is missing", "convert the model again"]),
        ({"llama__context_length": None}, ["llama.context_length (training context length) is missing"]),
        ({"llama__context_length": 2**24 + 1}, ["llama.context_length is 16777217", "no model has a context over 16,777,216 tokens"]),
        ({"general__architecture": ""}, ["general.architecture is '', but it must be an architecture name such as 'llama'"]),
        ({"general__architecture": "nosuch"}, ["general.architecture is 'nosuch', an architecture llama.cpp does not know",
                                               "update llama-cpp-python"]),
        ({"llama__attention__head_count": None}, ["llama.attention.head_count (number of attention heads) is missing"]),
        ({"llama__attention__head_count": -1}, ["llama.attention.head_count is -1", "whole number"]),
        ({"llama__attention__head_count": [4, -4]}, ["whole numbers"]),
        ({"llama__attention__head_count": [0, 65]}, ["cannot exceed the embedding length (64)"]),
        ({"llama__attention__head_count_kv": [0, 0], "llama__attention__head_count": [4, 0]}, None),
        ({"llama__attention__head_count_kv": [4, 4], "llama__attention__head_count": [4, 0]},
         ["llama.attention.head_count_kv is [4, 4], but it must divide llama.attention.head_count ([4, 0])"]),
        ({"llama__attention__head_count_kv": [1, 2, 3]}, ["head_count_kv has 3 entries, but the model has 2 layers"]),
        ({"llama__expert_count": 1025, "llama__expert_used_count": 1}, ["llama.expert_count is 1025", "at most 1024 experts"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": [2, 9]}, ["llama.expert_used_count is 9",
                                                                          "llama.expert_count is only 8"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": [0, 0]}, ["llama.expert_used_count is 0",
                                                                          "a model with 8 experts must use at least one"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 8},
         ["llama.expert_group_count is 8, but it must be less than the 8 experts"]),
        ({"llama__expert_group_count": 2}, ["llama.expert_group_count is 2, but it must be less than the 0 experts"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 4,
          "llama__expert_group_used_count": 4}, ["llama.expert_group_used_count is 4, but it must be between 1 and 3"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 3},
         ["llama.expert_group_count is 3, but it must divide the 8 experts"]),
        ({"llama__expert_count": 8, "llama__expert_used_count": 2, "llama__expert_group_count": 2},
         ["llama.expert_group_used_count is 0, but it must be between 1 and 1"]),
        ({"llama__rope__dimension_count": 25, "llama__attention__key_length": 24}, ["head size (24)"]),
        ({"llama__rope__dimension_count": 17, "llama__attention__head_count": [4, 0],
          "llama__attention__head_count_kv": [4, 0]}, ["llama.rope.dimension_count is 17", "head size (16)"]),
        ({"llama__rope__dimension_count": -1}, ["llama.rope.dimension_count is -1", "whole number"]),
        ({"llama__attention__layer_norm_epsilon": float("inf")},
         ["llama.attention.layer_norm_epsilon is inf, but it must be a small positive number"]),
        ({"llama__rope__scaling__type": "dynamic"}, ["llama.cpp knows only none, linear, yarn, longrope"]),
        ({"llama__attention__layer_norm_epsilon": True}, ["layer_norm_epsilon is True"]),
        ({"tokenizer__ggml__bos_token_id": 901}, ["tokenizer.ggml.bos_token_id is 901",
                                                  "the vocabulary has only 901 tokens"]),
        ({"tokenizer__ggml__eot_token_id": 901}, ["tokenizer.ggml.eot_token_id is 901"]),
        ({"tokenizer__ggml__eot_token_id": "x"}, ["tokenizer.ggml.eot_token_id is 'x'", "whole number"]),
        ({"tokenizer__ggml__tokens": "abc"}, ["tokenizer.ggml.tokens is not a list of strings",
                                              "tokenizer data is corrupt"]),
    ],
)
def test_values_past_llama_cpp_limits_fail(good: GGUFInfo, changes: dict, phrases: list[str] | None) -> None:
    info = with_metadata(good, **changes)
    if phrases is None:  # a layer without attention has no KV heads: fine
        validate_for_llama(info)
        return
    with pytest.raises(ModelFileError) as caught:
        validate_for_llama(info)
    message = check_message(caught.value, good.path, *phrases)
    assert message.endswith("; the file's metadata is corrupt") or "missing" in message or "tokenizer" in message \
        or "update" in message, message


def test_metadata_missing_named_with_what_to_do(good: GGUFInfo) -> None:
    message = invalid(with_metadata(good, general__architecture=None))
    assert message == (f"{good.path}: general.architecture is missing, so llama.cpp cannot tell what model this is; "
                       "the file is not a usable model")
    message = invalid(with_metadata(good, llama__block_count=None))
    assert message == (f"{good.path}: llama.block_count (number of layers) is missing; the file's metadata is "
                       "incomplete, so convert the model again")


def test_an_unknown_architecture_with_its_own_keys_is_checked_like_any(good: GGUFInfo) -> None:
    """llama.cpp may know an architecture this gguf package does not: its keys decide."""
    keys = {f"newarch__{k}": v for k, v in (("block_count", 2), ("context_length", 64), ("embedding_length", 8),
                                             ("attention__head_count", 2))}
    validate_for_llama(with_metadata(good, general__architecture="newarch", **keys))
    with pytest.raises(ModelFileError, match="newarch.attention.head_count is 0"):
        validate_for_llama(with_metadata(good, general__architecture="newarch", **{**keys, "newarch__attention__head_count": 0}))


def test_attention_free_models_skip_the_head_checks(good: GGUFInfo) -> None:
    for arch in ("mamba", "rwkv6", "rwkv7"):
        keys = {f"{arch}__block_count": 2, f"{arch}__context_length": 4, f"{arch}__embedding_length": 8}
        validate_for_llama(with_metadata(good, general__architecture=arch, **keys))
        keys[f"{arch}__rope__dimension_count"] = 1000  # no heads: nothing to compare it with
        validate_for_llama(with_metadata(good, general__architecture=arch, **keys))


# ---------------------------------------------------------------------------- byte tokens


def byte_vocab(spell=lambda b: f"<0x{b:02X}>", skip: int | None = None) -> list[str]:
    return ["<unk>", "<s>", "</s>"] + [spell(b) for b in range(256) if b != skip]


def vocab_info(good: GGUFInfo, tokens: list[str], types: list[int] | None = None, model: str = "llama") -> GGUFInfo:
    types = types if types is not None else [int(TT.CONTROL)] * 3 + [int(TT.BYTE)] * (len(tokens) - 3)
    info = with_metadata(good, tokenizer__ggml__tokens=tokens, tokenizer__ggml__token_type=types,
                         tokenizer__ggml__model=model, tokenizer__ggml__bos_token_id=1, tokenizer__ggml__eos_token_id=2)
    return dataclasses.replace(info, tensors=[t for t in good.tensors if t.name != "token_embd.weight"])


def test_a_complete_byte_vocabulary_passes(good: GGUFInfo) -> None:
    validate_for_llama(vocab_info(good, byte_vocab()))
    validate_for_llama(vocab_info(good, ["<unk>", "<s>", "</s>", "a"], [2, 3, 3, 1]))  # no byte tokens at all: fine


def test_a_byte_token_spelled_otherwise_is_refused(good: GGUFInfo) -> None:
    for spelling, shown in ((lambda b: f"<0x{b:02x}>", "'<0x0a>'"), (lambda b: f"<0x{b:03X}>", "'<0x000>'"),
                            (lambda b: f" <0x{b:02X}>", "' <0x00>'"), (lambda b: f"<0x{b:02X}>x", "'<0x00>x'")):
        message = invalid(vocab_info(good, byte_vocab(spelling)))
        assert "is a byte token but is not spelled <0xNN>" in message and "makes llama.cpp abort" in message
        assert shown in message or "token 3 " in message, message
    tokens = byte_vocab()
    tokens[5] = "<0x0g>"
    message = invalid(vocab_info(good, tokens))
    assert "token 5 ('<0x0g>') is a byte token" in message


def test_only_tokens_typed_byte_need_the_byte_spelling(good: GGUFInfo) -> None:
    tokens = byte_vocab() + ["<0xzz>"]
    types = [int(TT.CONTROL)] * 3 + [int(TT.BYTE)] * 256 + [int(TT.NORMAL)]
    validate_for_llama(vocab_info(good, tokens, types))
    validate_for_llama(vocab_info(good, tokens, types[:-5]))  # fewer types than tokens: the rest are not checked
    types[-1] = int(TT.BYTE)
    with pytest.raises(ModelFileError, match=r"token 259 \('<0xzz>'\)"):
        validate_for_llama(vocab_info(good, tokens, types))


def test_a_sentencepiece_vocabulary_missing_a_byte_is_refused(good: GGUFInfo) -> None:
    message = invalid(vocab_info(good, byte_vocab(skip=0x41)))
    assert "tokenizer.ggml.tokens has byte tokens for only 255 of the 256 bytes (no <0x41>)" in message
    assert "llama.cpp aborts on text that needs a missing one" in message
    # only SentencePiece ("llama") vocabularies with a newline byte are concerned
    validate_for_llama(vocab_info(good, byte_vocab(skip=0x41), model="gpt2"))
    validate_for_llama(vocab_info(good, byte_vocab(skip=0x0A)))


def test_a_bert_vocabulary_without_byte_tokens_passes(good: GGUFInfo) -> None:
    validate_for_llama(vocab_info(good, ["[UNK]", "[CLS]", "[SEP]", "a"], [2, 3, 3, 1], model="bert"))
    with pytest.raises(ModelFileError, match="tokenizer.ggml.model is 'bert' but the vocabulary has byte tokens"):
        validate_for_llama(vocab_info(good, byte_vocab(), model="bert"))


def test_the_duplicate_token_found_while_reading_is_named(good: GGUFInfo) -> None:
    tokens = list(good.tokens)
    info = dataclasses.replace(good, duplicate_token=5)
    message = invalid(info)
    assert f"contains the token {tokens[5]!r} twice, which makes llama.cpp abort" in message
    validate_for_llama(dataclasses.replace(good, duplicate_token=len(tokens)))  # from another list: not this one
    tokens[7] = "ab\0c\0d"  # shown as llama.cpp reads it: up to the first NUL
    invalid(dataclasses.replace(with_metadata(good, tokenizer__ggml__tokens=tokens), duplicate_token=7),
            "contains the token 'ab' twice")


def test_the_embedding_rows_are_compared_only_for_a_matrix(good: GGUFInfo) -> None:
    flat = [dataclasses.replace(t, shape=(64 * 901,)) if t.name == "token_embd.weight" else t for t in good.tensors]
    validate_for_llama(dataclasses.replace(good, tensors=flat))
    wrong = [dataclasses.replace(t, shape=(64, 900)) if t.name == "token_embd.weight" else t for t in good.tensors]
    message = invalid(dataclasses.replace(good, tensors=wrong))
    assert message == (f"{good.path}: tensor token_embd.weight has 900 rows but tokenizer.ggml.tokens lists 901 "
                       "tokens; the file is corrupt")


def test_a_value_in_a_message_is_cut_after_8_items_or_60_characters(good: GGUFInfo) -> None:
    """_show: a list of 8 is shown whole, of 9 cut after 8; a text of 60 characters whole."""
    eight = [1, 2, 3, 4, 5, 6, 7, "x"]
    info = with_metadata(good, llama__block_count=8, llama__attention__head_count=eight)
    invalid(info, "llama.attention.head_count is [1, 2, 3, 4, 5, 6, 7, 'x'], but it must hold whole numbers")
    nine = [1, 2, 3, 4, 5, 6, 7, 8, "x"]
    info = with_metadata(good, llama__block_count=9, llama__attention__head_count=nine)
    invalid(info, "llama.attention.head_count is [1, 2, 3, 4, 5, 6, 7, 8, ...], but it must hold whole numbers")
    invalid(with_metadata(good, llama__rope__scaling__type="y" * 58), f"is '{'y' * 58}', but")
    invalid(with_metadata(good, llama__rope__scaling__type="y" * 59), f"is '{'y' * 56}..., but")


def test_skipped_arrays_may_end_the_file(tmp_path: Path) -> None:
    """A tokenizer array that ends exactly at the end of the file is whole."""
    scores = kv("tokenizer.ggml.scores", VT.ARRAY, struct.pack("<IQ2f", VT.FLOAT32, 2, 0, 1))
    tokens = string_array("tokenizer.ggml.tokens", ["a", "bc"])
    for kvs in ([tokens, scores], [scores, tokens]):
        blob = gguf_bytes(kvs)
        lean = read_gguf(write(tmp_path, blob), vocab=False)
        assert lean.skipped_arrays == {"tokenizer.ggml.tokens": 2, "tokenizer.ggml.scores": 2}
        assert lean.data_offset == lean.file_size == len(blob)
        full = read_gguf(write(tmp_path, blob))
        assert full.tokens == ["a", "bc"] and full.metadata["tokenizer.ggml.scores"] == [0.0, 1.0]


def test_a_prefix_asks_for_the_bytes_up_to_the_end_of_a_skipped_array(tiny_model: Path, data: bytes) -> None:
    """A remote file's header is fetched in pieces: when the piece ends inside the
    tokenizer's scores (skipped, not read), the next fetch must reach the end of them."""
    from lcchat.engine.gguf_info import HeaderIncomplete, read_gguf_prefix

    key = "tokenizer.ggml.scores"
    count_at = key_offset(data, key) + len(key) + 4 + 4
    (n,) = struct.unpack_from("<Q", data, count_at)
    end = count_at + 8 + 4 * n
    tokens_key = "tokenizer.ggml.tokens"
    item_at = key_offset(data, tokens_key) + len(tokens_key) + 4 + 4 + 8  # the first token's length
    for cut in (count_at + 8 + 10, end - 1):
        with pytest.raises(HeaderIncomplete) as short:
            read_gguf_prefix(data[:cut], len(data), "remote.gguf")
        assert short.value.needed == end
    with pytest.raises(HeaderIncomplete) as short:  # inside the first token: up to its end
        read_gguf_prefix(data[:item_at + 9], len(data), "remote.gguf")
    (first,) = struct.unpack_from("<Q", data, item_at)
    assert short.value.needed == item_at + 8 + first


def test_a_huge_key_or_value_in_a_message_costs_no_more_than_its_bytes(tmp_path: Path, good: GGUFInfo) -> None:
    """A message shows 60-80 characters of a key or value, so only that much is escaped:
    a 2 MiB key of NULs used to become two million escape strings (about 130 MB and
    seconds; a 64 MiB key, gigabytes) before the message was cut, and a value was
    repr()'d whole (four times its size)."""
    import tracemalloc

    huge = "\0" * 2**21
    key_file = write(tmp_path, gguf_bytes([kv(huge, 99, b"")]), "key.gguf")
    info = with_metadata(good, llama__rope__scaling__type=huge)
    tracemalloc.start()
    try:
        message = fails(key_file, "has an unknown value type (99)")
        _, reading = tracemalloc.get_traced_memory()
        assert "metadata key " + "\\x00" * 19 + "\\x0\u2026 has" in message
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        invalid(info, "llama.rope.scaling.type is '" + "\\x00" * 14 + "..., but llama.cpp knows only")
        showing = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        invalid(with_metadata(good, llama__rope__scaling__type=[huge, "linear"]),
                "llama.rope.scaling.type is ['" + "\\x00" * 13 + "\\x0..., but llama.cpp knows only")
        showing_list = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert reading < 4 * 2**21, reading  # the file's bytes and the key's text, no more
    assert showing < 2**20, showing  # less than the value itself: none of it was copied whole
    assert showing_list < 2**20, showing_list  # nor the strings inside a list


def test_a_prefix_that_ends_one_byte_short_of_a_header_that_fills_the_file(tmp_path: Path) -> None:
    """A file with no tensors is all header: the fetch must reach its last byte."""
    from lcchat.engine.gguf_info import HeaderIncomplete, read_gguf_prefix

    blob = gguf_bytes([kv("k", VT.STRING, s("abc"))])
    with pytest.raises(HeaderIncomplete) as short:
        read_gguf_prefix(blob[:-1], len(blob), "remote.gguf")
    assert short.value.needed == len(blob)
    assert read_gguf_prefix(blob, len(blob), "remote.gguf").metadata == {"k": "abc"}


def test_the_reader_holds_one_chunk_of_the_file_not_the_whole_file(monkeypatch: pytest.MonkeyPatch,
                                                                     tiny_model: Path) -> None:
    """A model is gigabytes: reading its header buffers one chunk at a time (1 MiB; 64 KiB
    here, so that the tiny model is many chunks)."""
    import tracemalloc

    from lcchat.engine import gguf_info

    monkeypatch.setattr(gguf_info._Reader, "CHUNK", 2**16)
    size = tiny_model.stat().st_size
    assert size > 8 * 2**16
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        info = read_gguf(tiny_model, vocab=False)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert info.tensors and peak < size // 2, peak


@pytest.mark.parametrize("vtype", [2**31, 2**32 - 1])
def test_a_value_type_past_the_signed_range_is_shown_as_the_file_has_it(tmp_path: Path, vtype: int) -> None:
    """The header's 32-bit fields are unsigned: a type of 2**31 or more is that number in
    the message, not a negative one."""
    fails(write(tmp_path, gguf_bytes([kv("general.name", vtype, b"\0" * 16)])), f"has an unknown value type ({vtype})")


@pytest.mark.parametrize("length", [80, 81])
def test_a_key_is_shown_whole_up_to_80_characters(tmp_path: Path, length: int) -> None:
    """A key in a message: whole up to 80 characters, longer ones cut to 79 and '…'."""
    key = "k" * length
    shown = key if length <= 80 else "k" * 79 + "\u2026"
    fails(write(tmp_path, gguf_bytes([kv(key, 99, b"")])), f"metadata key {shown} has an unknown value type (99)")


def test_the_reader_reads_each_chunk_of_the_header_once(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> None:
    """The header is read a chunk at a time, each byte once: a reader that lost its place
    in its buffer still gives the right values (test_reading_in_small_chunks_reads_the_same)
    but reads a chunk again for every field, megabytes for a header of kilobytes."""
    import builtins

    from lcchat.engine import gguf_info

    read: list[int] = []

    class Counted:
        def __init__(self, f) -> None:  # the file object open() gave
            self.f = f

        def read(self, n: int = -1) -> bytes:
            data = self.f.read(n)
            read.append(len(data))
            return data

        def __getattr__(self, name: str) -> object:
            return getattr(self.f, name)

        def __enter__(self) -> "Counted":
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    monkeypatch.setattr(gguf_info, "open", lambda *a, **k: Counted(builtins.open(*a, **k)), raising=False)
    monkeypatch.setattr(gguf_info._Reader, "CHUNK", 4096)
    for vocab in (False, True):
        read.clear()
        info = read_gguf(tiny_model, vocab=vocab)
        assert info.data_offset > 4 * 4096  # the header is many chunks
        assert sum(read) <= info.data_offset + 4096, (vocab, len(read), sum(read))
