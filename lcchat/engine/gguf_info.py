"""Read and check a GGUF model file before llama.cpp ever sees it.

llama.cpp trusts parts of a GGUF file's metadata. Some malformed values make it call
abort() through a GGML_ASSERT, and that kills the whole process (the chat, the terminal
state, anything unsaved) where we wanted an error message. For example
`llama.block_count = 100000` trips `GGML_ASSERT(n_layer <= LLAMA_MAX_LAYERS)`, an unknown
`rope.scaling.type` trips another, and a vocabulary with a repeated token a third.

So before a model is loaded this module parses the header, the metadata and the tensor
table itself, with `struct` over a plain file object, checking every count and length
against the bytes left in the file before using it, and never reading tensor data
(gguf.GGUFReader is not used: it memory-maps the file and believes its counts). Then
`validate_for_llama` checks the hyperparameters llama.cpp asserts on. Every problem
becomes a ModelFileError whose message is one sentence: the file, what is wrong, what to do.

The `gguf` package is used only for its constants (value types, quantization types and
block sizes, key names, file type names).
"""

from __future__ import annotations

import collections
import math
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, NoReturn

import gguf

from lcchat.errors import ModelFileError
from lcchat.textsafe import one_line

# Limits taken from the llama.cpp that llama-cpp-python vendors.
LLAMA_MAX_LAYERS = 512
LLAMA_MAX_EXPERTS = 1024
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64  # a tensor name must be shorter than this, in bytes
ROPE_SCALING_TYPES = ("none", "linear", "yarn", "longrope")
SUPPORTED_VERSIONS = (2, 3)

# Limits of this reader: sanity bounds, far above any real model.
MAX_CONTEXT_LENGTH = 2**24
MAX_COUNT = 2**24  # tensors, or metadata entries, in one file
MAX_ELEMENTS = 2**62  # elements in one tensor
MAX_STRING_BYTES = 64 * 2**20  # one metadata string
MAX_ARRAY_ITEMS = 2**24  # one metadata array that is read into a list
MAX_ARRAY_DEPTH = 2  # an array of arrays, no deeper

# Architectures without attention heads: the head checks do not apply to them.
ATTENTION_FREE_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})

_VT = gguf.GGUFValueType
_K = gguf.Keys
_SCALARS: dict[int, tuple[str, int]] = {
    _VT.UINT8: ("B", 1),
    _VT.INT8: ("b", 1),
    _VT.UINT16: ("H", 2),
    _VT.INT16: ("h", 2),
    _VT.UINT32: ("I", 4),
    _VT.INT32: ("i", 4),
    _VT.FLOAT32: ("f", 4),
    _VT.BOOL: ("B", 1),
    _VT.UINT64: ("Q", 8),
    _VT.INT64: ("q", 8),
    _VT.FLOAT64: ("d", 8),
}
_STRING_HEADER = 8  # u64 length
_ARRAY_HEADER = 12  # u32 item type + u64 count
_MIN_KV_BYTES = _STRING_HEADER + 1 + 4 + 1  # a 1-byte key, its type, a 1-byte value
_MIN_TENSOR_BYTES = _STRING_HEADER + 4 + 8 + 4 + 8  # name, n_dims, one dim, type, offset
_VOCAB_ARRAYS = frozenset(
    {_K.Tokenizer.LIST, _K.Tokenizer.SCORES, _K.Tokenizer.TOKEN_TYPE, _K.Tokenizer.MERGES}
)
_OLD_MAGICS = (b"ggml", b"ggjt", b"ggla", b"ggmf")
_UNQUANTIZED = frozenset({"F32", "F16", "BF16", "F64", "I8", "I16", "I32", "I64"})
_KNOWN_ARCHS = frozenset(gguf.MODEL_ARCH_NAMES.values())


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table. `shape` is in GGUF order (ne0 first);
    `offset` is the absolute file offset of the tensor's data."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    type_name: str
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        n = 1
        for dim in self.shape:
            n *= dim
        return n


@dataclass
class GGUFInfo:
    """What read_gguf found. `metadata` holds every key: arrays as lists, strings decoded
    as UTF-8 (errors replaced); with vocab=False the big tokenizer arrays are left out and
    their lengths are in `skipped_arrays`. `value_types` gives each key's GGUF value type.
    `duplicate_token` is the index of the first token whose text repeats an earlier one
    as llama.cpp compares them (raw bytes up to the first NUL), found while reading."""

    path: Path
    file_size: int
    version: int
    alignment: int
    data_offset: int
    metadata: dict[str, object]
    tensors: list[TensorInfo]
    value_types: dict[str, int] = field(default_factory=dict)
    skipped_arrays: dict[str, int] = field(default_factory=dict)
    duplicate_token: int | None = None

    def _arch(self, template: str) -> object:
        arch = self.architecture
        return self.metadata.get(template.format(arch=arch)) if arch else None

    @property
    def architecture(self) -> str | None:
        value = self.metadata.get(_K.General.ARCHITECTURE)
        return value if isinstance(value, str) else None

    @property
    def block_count(self) -> int | None:
        return _int(self._arch(_K.LLM.BLOCK_COUNT))

    @property
    def context_length(self) -> int | None:
        """The training context length."""
        return _int(self._arch(_K.LLM.CONTEXT_LENGTH))

    @property
    def embedding_length(self) -> int | None:
        return _int(self._arch(_K.LLM.EMBEDDING_LENGTH))

    @property
    def head_count(self) -> int | list[int] | None:
        """An int, or a list with one entry per layer."""
        return _int_or_list(self._arch(_K.Attention.HEAD_COUNT))

    @property
    def head_count_kv(self) -> int | list[int] | None:
        value = self._arch(_K.Attention.HEAD_COUNT_KV)
        return self.head_count if value is None else _int_or_list(value)

    @property
    def head_dims(self) -> tuple[int, int]:
        """(K, V) values per attention head, as llama.cpp reads them: attention.key_length
        and value_length, else n_embd / n_head of the first layer with heads; 0 unknown."""
        heads, n_embd = self.head_count, self.embedding_length
        heads = next((h for h in heads if h), 0) if isinstance(heads, list) else heads
        default = n_embd // heads if heads and n_embd else 0
        dim_k = _int(self._arch(_K.Attention.KEY_LENGTH))
        dim_v = _int(self._arch(_K.Attention.VALUE_LENGTH))
        return (dim_k if dim_k is not None else default), (dim_v if dim_v is not None else default)

    @property
    def rope_dimension_count(self) -> int | None:
        explicit = _int(self._arch(_K.Rope.DIMENSION_COUNT))
        if explicit is not None:
            return explicit
        heads, n_embd = _first_layer(self.head_count), self.embedding_length
        return n_embd // heads if heads and n_embd is not None else None

    @property
    def rope_freq_base(self) -> float | None:
        return _float(self._arch(_K.Rope.FREQ_BASE))

    @property
    def rope_scaling_type(self) -> str | None:
        value = self._arch(_K.Rope.SCALING_TYPE)
        return value if isinstance(value, str) else None

    @property
    def rope_scaling_factor(self) -> float | None:
        return _float(self._arch(_K.Rope.SCALING_FACTOR))

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get(_K.Tokenizer.CHAT_TEMPLATE)
        return value if isinstance(value, str) else None

    @property
    def tokens(self) -> list[str]:
        value = self.metadata.get(_K.Tokenizer.LIST)
        return value if isinstance(value, list) else []

    @property
    def token_types(self) -> list[int]:
        value = self.metadata.get(_K.Tokenizer.TOKEN_TYPE)
        return value if isinstance(value, list) else []

    @property
    def vocab_size(self) -> int | None:
        """Number of tokens, known even when the token list was skipped."""
        value = self.metadata.get(_K.Tokenizer.LIST)
        if isinstance(value, list):
            return len(value)
        return self.skipped_arrays.get(_K.Tokenizer.LIST)

    @property
    def bos_token_id(self) -> int | None:
        return _int(self.metadata.get(_K.Tokenizer.BOS_ID))

    @property
    def eos_token_id(self) -> int | None:
        return _int(self.metadata.get(_K.Tokenizer.EOS_ID))

    @property
    def eot_token_id(self) -> int | None:
        return _int(self.metadata.get(_K.Tokenizer.EOT_ID))

    @property
    def file_type_name(self) -> str | None:
        """"Q4_K_M", "F16"...: from general.file_type, else the commonest quantized
        type among the weight matrices."""
        code = _int(self.metadata.get(_K.General.FILE_TYPE))
        name = _file_type_name(code) if code is not None else None
        return name or _guess_file_type(self.tensors)

    @property
    def n_params(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def bits_per_weight(self) -> float | None:
        n = self.n_params
        return 8 * sum(t.nbytes for t in self.tensors) / n if n else None

    @property
    def tensor_type_histogram(self) -> dict[str, int]:
        return dict(collections.Counter(t.type_name for t in self.tensors))


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _int_or_list(value: object) -> int | list[int] | None:
    if isinstance(value, list) and all(_int(v) is not None for v in value):
        return value
    return _int(value)


def _first_layer(value: int | list[int] | None) -> int | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _file_type_name(code: int) -> str | None:
    try:
        name = gguf.LlamaFileType(code).name
    except (ValueError, AttributeError):
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _guess_file_type(tensors: list[TensorInfo]) -> str | None:
    matrices = [t.type_name for t in tensors if len(t.shape) >= 2]
    quantized = [name for name in matrices if name not in _UNQUANTIZED]
    counts = collections.Counter(quantized or matrices)
    return counts.most_common(1)[0][0] if counts else None


# ---------------------------------------------------------------------------- reading


def read_gguf(path: str | os.PathLike[str], *, vocab: bool = True) -> GGUFInfo:
    """Parse a GGUF file's header, metadata and tensor table, checking everything that
    could be out of bounds. With vocab=False the tokenizer's big arrays (tokens, scores,
    token types, merges) are checked and skipped rather than read into lists."""
    name = str(path)
    size = _file_size(Path(path), name)
    try:
        with open(path, "rb") as f:
            return _Parser(f, size, name, vocab).parse(Path(path))
    except PermissionError:
        _fail(name, "cannot be read: permission denied; check the file's permissions")
    except OSError as e:
        _fail(name, f"cannot be read ({e.strerror or e}); check that the file is intact and readable")


class HeaderIncomplete(Exception):
    """The bytes given end inside the header; `needed` bytes from the start would hold it."""

    def __init__(self, needed: int):
        super().__init__(needed)
        self.needed = needed


def read_gguf_prefix(data: bytes, file_size: int, name: str) -> GGUFInfo:
    """Parse a GGUF header from the first bytes of a file of `file_size` bytes (a remote
    file, before downloading it), with the same checks as read_gguf(vocab=False). Raises
    HeaderIncomplete when `data` ends inside the header."""
    import io

    return _Parser(io.BytesIO(data), file_size, name, False, available=len(data)).parse(Path(name))


def _fail(name: str, problem: str) -> NoReturn:
    raise ModelFileError(f"{name}: {problem}")


def _file_size(path: Path, name: str) -> int:
    try:
        st = path.stat()
    except FileNotFoundError:
        _fail(name, "no such file; check the path or download the model first")
    except PermissionError:
        _fail(name, "cannot be read: permission denied; check the file's permissions")
    except OSError as e:
        _fail(name, f"cannot be read ({e.strerror or e}); check the path")
    if stat.S_ISDIR(st.st_mode):
        _fail(name, "is a directory, not a model file; give the path of a .gguf file inside it")
    if not stat.S_ISREG(st.st_mode):
        _fail(name, "is not a regular file; give the path of a .gguf model file")
    if st.st_size == 0:
        _fail(name, "is empty (0 bytes); the download or conversion probably failed, so fetch it again")
    return st.st_size


def _show(value: object, limit: int = 60) -> str:
    """A value from the file as one short printable line."""
    value = _start(value, limit)
    text = repr(value[:8])[:-1] + ", ...]" if isinstance(value, list) and len(value) > 8 else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _start(value: object, limit: int) -> object:
    """Enough of a value from the file to show its first `limit` characters: a string or
    list in a file may be 64 MiB long, and a message shows 60 characters of it, so only
    that much is turned into text."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, list):
        return [_start(v, limit) for v in value[:limit]]
    return value


def _plain(text: str, limit: int = 80) -> str:
    """A key or name from the file, unquoted but with control characters escaped. A key
    may be 64 MiB long: only the first `limit` + 1 characters are escaped (escaping never
    shortens, so the cut comes out the same)."""
    return one_line(text[: limit + 1], limit)


class _PastEnd(Exception):
    """A fixed-size read ran past the end of the file."""

    def __init__(self, end: int):
        super().__init__(end)
        self.end = end


class _Reader:
    """Little-endian reads from a file object, never past the size it was given."""

    CHUNK = 1 << 20

    def __init__(self, f: BinaryIO, size: int, available: int | None = None):
        self._f = f
        self.size = size
        self.available = size if available is None else available  # bytes `f` holds
        self.pos = 0
        self._buf = b""
        self._buf_pos = 0

    @property
    def left(self) -> int:
        return self.size - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left or self.pos + n > self.available:
            raise _PastEnd(self.pos + n)
        start = self.pos - self._buf_pos
        if start < 0 or start + n > len(self._buf):
            self._f.seek(self.pos)
            self._buf = self._f.read(max(n, min(self.CHUNK, self.left)))
            self._buf_pos, start = self.pos, 0
            if len(self._buf) < n:  # the file shrank under us
                raise _PastEnd(self.pos + n)
        self.pos += n
        return self._buf[start : start + n]

    def skip(self, n: int) -> None:
        if n > self.left or self.pos + n > self.available:
            raise _PastEnd(self.pos + n)
        self.pos += n

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]


class _Parser:
    def __init__(self, f: BinaryIO, size: int, name: str, vocab: bool, available: int | None = None):
        self.r = _Reader(f, size, available)
        self.prefix = available is not None  # `f` holds only the first `available` bytes
        self.name = name
        self.vocab = vocab
        self.where = "header"
        self.duplicate_token: int | None = None

    def fail(self, problem: str) -> NoReturn:
        _fail(self.name, problem)

    def parse(self, path: Path) -> GGUFInfo:
        try:
            version = self._magic_and_version()
            n_tensors, n_kv = self._counts()
            self.where = "metadata"
            metadata, types, skipped = self._metadata(n_kv)
            alignment = self._alignment(metadata, types)
            self.where = "tensor table"
            table = self._tensor_table(n_tensors, alignment)
        except _PastEnd as e:
            if self.prefix and e.end <= self.r.size:
                raise HeaderIncomplete(e.end) from None
            self.fail(
                f"is truncated: its {self.where} runs to byte {e.end:,} but the file has "
                f"only {self.r.size:,} bytes; the download or conversion may be incomplete"
            )
        data_offset = _pad(self.r.pos, alignment) if table else self.r.pos
        tensors = [
            TensorInfo(name, shape, int(t), t.name, data_offset + rel, nbytes)
            for name, shape, t, rel, nbytes in table
        ]
        self._check_data(tensors, data_offset, alignment)
        return GGUFInfo(
            path, self.r.size, version, alignment, data_offset, metadata, tensors, types, skipped,
            self.duplicate_token,
        )

    # header

    def _magic_and_version(self) -> int:
        head = self.r.take(min(4, self.r.size))
        if head != b"GGUF":
            self._bad_magic(head)
        version = self.r.u32()
        if version in SUPPORTED_VERSIONS:
            return version
        if version and version & 0xFFFF == 0:
            self.fail("is a big-endian GGUF file, which llama.cpp cannot load on this machine; get a little-endian build of the model")
        if version == 1:
            self.fail("uses GGUF version 1, which llama.cpp no longer reads; convert the model again with a current llama.cpp")
        if version > max(SUPPORTED_VERSIONS):
            self.fail(f"uses GGUF version {version}, newer than the versions 2 and 3 this build reads; update lcchat and llama-cpp-python")
        self.fail(f"has an invalid GGUF version number ({version}); the file is corrupt")

    def _bad_magic(self, head: bytes) -> NoReturn:
        if len(head) < 4 and b"GGUF".startswith(head):
            raise _PastEnd(4)
        if head in _OLD_MAGICS or head[::-1] in _OLD_MAGICS:
            self.fail("is in an old pre-GGUF llama.cpp format (GGML/GGJT), which llama.cpp no longer reads; convert it to GGUF or download a GGUF version")
        self.fail(f"is not a GGUF file (it starts with {_show(head)}, not b'GGUF'); choose a .gguf model file")

    def _counts(self) -> tuple[int, int]:
        n_tensors, n_kv = self.r.u64(), self.r.u64()
        size = self.r.size
        if n_tensors > MAX_COUNT:
            self.fail(f"claims {n_tensors:,} tensors, an impossible number; the file is corrupt")
        if n_kv > MAX_COUNT:
            self.fail(f"claims {n_kv:,} metadata entries, an impossible number; the file is corrupt")
        if n_tensors * _MIN_TENSOR_BYTES + n_kv * _MIN_KV_BYTES > self.r.left:
            self.fail(f"is truncated: its header lists {n_kv:,} metadata entries and {n_tensors:,} tensors, which cannot fit in its {size:,} bytes; the download or conversion may be incomplete")
        return n_tensors, n_kv

    # metadata

    def _metadata(self, n_kv: int) -> tuple[dict[str, object], dict[str, int], dict[str, int]]:
        metadata: dict[str, object] = {}
        types: dict[str, int] = {}
        skipped: dict[str, int] = {}
        for i in range(n_kv):
            key = self._string(f"metadata key #{i}")
            if not key:
                self.fail(f"metadata key #{i} is empty; the file is corrupt")
            if key in metadata or key in skipped:
                self.fail(f"metadata key {_plain(key)} appears twice; the file is corrupt")
            vtype = self._value_type(self.r.u32(), key)
            types[key] = vtype
            if vtype == _VT.ARRAY and not self.vocab and key in _VOCAB_ARRAYS:
                skipped[key] = self._skip_array(key, depth=0)
            else:
                metadata[key] = self._value(vtype, key, depth=0)
        return metadata, types, skipped

    def _value_type(self, raw: int, key: str) -> _VT:
        try:
            return _VT(raw)
        except ValueError:
            self.fail(f"metadata key {_plain(key)} has an unknown value type ({raw}); the file is corrupt")

    def _value(self, vtype: _VT, key: str, depth: int) -> object:
        if vtype in _SCALARS:
            fmt, size = _SCALARS[vtype]
            value = struct.unpack("<" + fmt, self.r.take(size))[0]
            return bool(value) if vtype == _VT.BOOL else value
        if vtype == _VT.STRING:
            return self._string(f"the value of {_plain(key)}")
        return self._array(key, depth)

    def _string(self, what: str) -> str:
        n = self.r.u64()
        if n > self.r.left or n > MAX_STRING_BYTES:
            self._bad_string_length(what, n)
        return self.r.take(n).decode("utf-8", errors="replace")

    def _strings(self, key: str, n: int, vocabulary: bool) -> list[str]:
        """The items of a string array: _string, unrolled, for 100k-token vocabularies."""
        r = self.r
        out, seen = [], set()
        for i in range(n):
            size = r.u64()
            if size > r.left or size > MAX_STRING_BYTES:
                self._bad_string_length(f"item {i} of {_plain(key)}", size)
            raw = r.take(size)
            if vocabulary:
                self._note_token(raw, i, seen)
            out.append(raw.decode("utf-8", errors="replace"))
        return out

    def _note_token(self, raw: bytes, index: int, seen: set[bytes]) -> None:
        """llama.cpp asserts that no two tokens have the same text, as a C string (cut at
        the first NUL), empty ones being renamed "[EMPTY_<index>]"."""
        text = raw.split(b"\0", 1)[0] or b"[EMPTY_%d]" % index
        if text in seen and self.duplicate_token is None:
            self.duplicate_token = index
        seen.add(text)

    def _bad_string_length(self, what: str, n: int) -> NoReturn:
        if n > self.r.left:
            self.fail(f"{what} claims {n:,} bytes, but only {self.r.left:,} are left in the file; the file is corrupt or truncated")
        self.fail(f"{what} is {n:,} bytes long, more than the {MAX_STRING_BYTES:,} allowed; the file is corrupt")

    def _array_header(self, key: str, depth: int) -> tuple[_VT, int]:
        item = self._value_type(self.r.u32(), key)
        n = self.r.u64()
        if item == _VT.ARRAY and depth + 1 >= MAX_ARRAY_DEPTH:
            self.fail(f"metadata key {_plain(key)} nests arrays more than {MAX_ARRAY_DEPTH} deep; the file is corrupt")
        min_size = _SCALARS[item][1] if item in _SCALARS else _STRING_HEADER if item == _VT.STRING else _ARRAY_HEADER
        if n * min_size > self.r.left:
            self.fail(f"metadata key {_plain(key)} claims an array of {n:,} items, which cannot fit in the {self.r.left:,} bytes left in the file; the file is corrupt or truncated")
        return item, n

    def _array(self, key: str, depth: int) -> list[object]:
        item, n = self._array_header(key, depth)
        if n > MAX_ARRAY_ITEMS:
            self.fail(f"metadata key {_plain(key)} holds an array of {n:,} items, more than the {MAX_ARRAY_ITEMS:,} allowed; the file is corrupt")
        if item in _SCALARS:
            fmt, size = _SCALARS[item]
            values = struct.unpack(f"<{n}{fmt}", self.r.take(n * size))
            return [bool(v) for v in values] if item == _VT.BOOL else list(values)
        if item == _VT.STRING:
            return self._strings(key, n, vocabulary=depth == 0 and key == _K.Tokenizer.LIST)
        return [self._array(key, depth + 1) for _ in range(n)]

    def _skip_array(self, key: str, depth: int) -> int:
        """Check an array's bounds and move past it; return its length."""
        item, n = self._array_header(key, depth)
        if item in _SCALARS:
            self.r.skip(n * _SCALARS[item][1])
        elif item == _VT.STRING:
            for i in range(n):
                size = self.r.u64()
                if size > self.r.left:
                    self._bad_string_length(f"item {i} of {_plain(key)}", size)
                self.r.skip(size)
        else:
            for _ in range(n):
                self._skip_array(key, depth + 1)
        return n

    def _alignment(self, metadata: dict[str, object], types: dict[str, int]) -> int:
        key = _K.General.ALIGNMENT
        if key not in metadata:
            return gguf.GGUF_DEFAULT_ALIGNMENT
        value = metadata[key]
        if types[key] != _VT.UINT32:
            self.fail(f"{key} is stored as {_VT(types[key]).name}, but llama.cpp requires UINT32; the file is corrupt")
        if value <= 0 or value & (value - 1):
            self.fail(f"{key} is {value}, which is not a power of two; the file is corrupt")
        return value

    # tensor table

    def _tensor_table(self, n_tensors: int, alignment: int) -> list[tuple]:
        table, seen = [], set()
        for i in range(n_tensors):
            name = self._tensor_name(i)
            if name in seen:
                self.fail(f"tensor {_plain(name)} appears twice in the tensor table; the file is corrupt")
            seen.add(name)
            shape = self._tensor_shape(name)
            ggml_type = self._tensor_type(name, shape)
            offset = self.r.u64()
            if offset % alignment:
                self.fail(f"tensor {_plain(name)} starts at data offset {offset:,}, which is not a multiple of the alignment {alignment}; the file is corrupt")
            block, type_size = gguf.GGML_QUANT_SIZES[ggml_type]
            n = 1
            for dim in shape:
                n *= dim
            table.append((name, shape, ggml_type, offset, n // block * type_size))
        return table

    def _tensor_name(self, index: int) -> str:
        n = self.r.u64()
        if n >= GGML_MAX_NAME:
            self.fail(f"tensor #{index} has a name {n:,} bytes long, but llama.cpp allows at most {GGML_MAX_NAME - 1}; the file is corrupt")
        if n > self.r.left:
            raise _PastEnd(self.r.pos + n)
        return self.r.take(n).decode("utf-8", errors="replace")

    def _tensor_shape(self, name: str) -> tuple[int, ...]:
        n_dims = self.r.u32()
        if not 1 <= n_dims <= GGML_MAX_DIMS:
            self.fail(f"tensor {_plain(name)} has {n_dims:,} dimensions, but llama.cpp supports 1 to {GGML_MAX_DIMS}; the file is corrupt")
        shape = tuple(self.r.u64() for _ in range(n_dims))
        if min(shape) < 1:
            self.fail(f"tensor {_plain(name)} has a dimension of size 0 in its shape {shape}; the file is corrupt")
        n = 1
        for dim in shape:
            n *= dim
        if n > MAX_ELEMENTS:
            self.fail(f"tensor {_plain(name)} has shape {shape}, more than 2**62 elements; the file is corrupt")
        return shape

    def _tensor_type(self, name: str, shape: tuple[int, ...]) -> gguf.GGMLQuantizationType:
        raw = self.r.u32()
        try:
            ggml_type = gguf.GGMLQuantizationType(raw)
        except ValueError:
            ggml_type = None
        if ggml_type is None or ggml_type not in gguf.GGML_QUANT_SIZES:
            self.fail(f"tensor {_plain(name)} has an unknown ggml type ({raw}); the file is corrupt or needs a newer llama.cpp")
        block = gguf.GGML_QUANT_SIZES[ggml_type][0]
        if shape[0] % block:
            self.fail(f"tensor {_plain(name)} has rows of {shape[0]:,} elements, not a multiple of the {block}-element blocks of type {ggml_type.name}; the file is corrupt")
        return ggml_type

    # tensor data

    def _check_data(self, tensors: list[TensorInfo], data_offset: int, alignment: int) -> None:
        size = self.r.size
        if not tensors:
            return
        if data_offset > size:
            self.fail(f"is truncated: the tensor data should start at byte {data_offset:,} but the file has only {size:,} bytes; the download or conversion may be incomplete")
        end = max(t.offset + t.nbytes for t in tensors)
        if end <= size:
            return
        if _laid_out_in_order(tensors, data_offset, alignment):
            self.fail(f"is truncated: the tensor data ends at byte {end:,} but the file has {size:,} bytes; the download or conversion may be incomplete")
        bad = next(t for t in tensors if t.offset + t.nbytes > size)
        self.fail(f"tensor {_plain(bad.name)} lies outside the file (bytes {bad.offset:,} to {bad.offset + bad.nbytes:,} of a {size:,}-byte file); the file is corrupt")


def _pad(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def _laid_out_in_order(tensors: list[TensorInfo], data_offset: int, alignment: int) -> bool:
    """Whether the tensors sit back to back, as writers put them (so a short file is a
    truncated one rather than one with wild offsets)."""
    expected = data_offset
    for t in tensors:
        if t.offset != expected:
            return False
        expected += _pad(t.nbytes, alignment)
    return True


# ---------------------------------------------------------------------------- validating


def validate_for_llama(info: GGUFInfo) -> None:
    """Check the hyperparameters that llama.cpp asserts on (and so would abort on)."""
    check = _Checker(info)
    arch = check.architecture()
    n_layer = check.block_count(arch)
    check.context_length(arch)
    n_embd = check.required_count(_K.LLM.EMBEDDING_LENGTH.format(arch=arch), "embedding length")
    check.experts(arch, n_layer)
    n_head = check.heads(arch, n_layer, n_embd)
    check.rope(arch, n_embd, n_head)
    check.norm_epsilon(arch)
    check.vocab()


def load_checked(path: str | os.PathLike[str], vocab: bool = True) -> GGUFInfo:
    """read_gguf + validate_for_llama: a file that passes is safe to hand to llama.cpp."""
    info = read_gguf(path, vocab=vocab)
    validate_for_llama(info)
    return info


_BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")


class _Checker:
    def __init__(self, info: GGUFInfo):
        self.info = info
        self.md = info.metadata

    def fail(self, problem: str) -> NoReturn:
        _fail(str(self.info.path), problem)

    def corrupt(self, key: str, value: object, why: str) -> NoReturn:
        self.fail(f"{_plain(key)} is {_show(value)}, but {why}; the file's metadata is corrupt")

    def count(self, key: str) -> int | None:
        """A non-negative whole number, or None when the key is absent."""
        if key not in self.md:
            return None
        value = self.md[key]
        if _int(value) is None or value < 0:
            self.corrupt(key, value, "it must be a whole number")
        return value

    def required_count(self, key: str, what: str, low: int = 1) -> int:
        value = self.count(key)
        if value is None:
            self.fail(f"{_plain(key)} ({what}) is missing; the file's metadata is incomplete, so convert the model again")
        if value < low:
            self.corrupt(key, value, f"it must be at least {low}")
        return value

    def per_layer(self, key: str, n_layer: int) -> list[int] | None:
        """A key that is one number or one number per layer, as a per-layer list."""
        if key not in self.md:
            return None
        value = self.md[key]
        if not isinstance(value, list):
            return [self.count(key)] * n_layer
        if len(value) != n_layer:
            self.fail(f"{_plain(key)} has {len(value)} entries, but the model has {n_layer} layers; the file's metadata is corrupt")
        if any(_int(v) is None or v < 0 for v in value):
            self.corrupt(key, value, "it must hold whole numbers")
        return value

    def architecture(self) -> str:
        key = _K.General.ARCHITECTURE
        value = self.md.get(key)
        if value is None:
            self.fail(f"{key} is missing, so llama.cpp cannot tell what model this is; the file is not a usable model")
        if not isinstance(value, str) or not value:
            self.corrupt(key, value, "it must be an architecture name such as 'llama'")
        return value

    def block_count(self, arch: str) -> int:
        key = _K.LLM.BLOCK_COUNT.format(arch=arch)
        if key not in self.md and arch not in _KNOWN_ARCHS:
            self.fail(f"general.architecture is {_show(arch)}, an architecture llama.cpp does not know; update llama-cpp-python or choose another model")
        n_layer = self.required_count(key, "number of layers")
        if n_layer > LLAMA_MAX_LAYERS:
            self.fail(f"{_plain(key)} is {n_layer}, but llama.cpp allows at most {LLAMA_MAX_LAYERS} layers; the file's metadata is corrupt")
        nextn = self.count(_K.LLM.NEXTN_PREDICT_LAYERS.format(arch=arch))
        if nextn is not None and nextn > n_layer:
            self.corrupt(_K.LLM.NEXTN_PREDICT_LAYERS.format(arch=arch), nextn, f"the model has only {n_layer} layers")
        return n_layer

    def context_length(self, arch: str) -> None:
        key = _K.LLM.CONTEXT_LENGTH.format(arch=arch)
        n_ctx = self.required_count(key, "training context length")
        if n_ctx > MAX_CONTEXT_LENGTH:
            self.corrupt(key, n_ctx, f"no model has a context over {MAX_CONTEXT_LENGTH:,} tokens")

    def experts(self, arch: str, n_layer: int) -> None:
        count_key = _K.LLM.EXPERT_COUNT.format(arch=arch)
        used_key = _K.LLM.EXPERT_USED_COUNT.format(arch=arch)
        n_expert = self.count(count_key) or 0
        if n_expert > LLAMA_MAX_EXPERTS:
            self.corrupt(count_key, n_expert, f"llama.cpp allows at most {LLAMA_MAX_EXPERTS} experts")
        used = max(self.per_layer(used_key, n_layer) or [0])
        if used > n_expert:
            self.corrupt(used_key, used, f"{_plain(count_key)} is only {n_expert}")
        if n_expert and not used:
            self.corrupt(used_key, used, f"a model with {n_expert} experts must use at least one")
        self.expert_groups(arch, n_expert)

    def expert_groups(self, arch: str, n_expert: int) -> None:
        groups_key = _K.LLM.EXPERT_GROUP_COUNT.format(arch=arch)
        used_key = _K.LLM.EXPERT_GROUP_USED_COUNT.format(arch=arch)
        groups = self.count(groups_key) or 0
        if not groups:
            return
        if groups >= n_expert:
            self.corrupt(groups_key, groups, f"it must be less than the {n_expert} experts")
        if groups > 1:
            if n_expert % groups:
                self.corrupt(groups_key, groups, f"it must divide the {n_expert} experts")
            used = self.count(used_key) or 0
            if not 0 < used < groups:
                self.corrupt(used_key, used, f"it must be between 1 and {groups - 1}")

    def heads(self, arch: str, n_layer: int, n_embd: int) -> list[int] | None:
        if arch in ATTENTION_FREE_ARCHS:
            return None
        key = _K.Attention.HEAD_COUNT.format(arch=arch)
        kv_key = _K.Attention.HEAD_COUNT_KV.format(arch=arch)
        n_head = self.per_layer(key, n_layer)
        if n_head is None:
            self.fail(f"{_plain(key)} (number of attention heads) is missing; the file's metadata is incomplete, so convert the model again")
        if not any(n_head):
            self.corrupt(key, self.md[key], "a model needs at least one attention head")
        if max(n_head) > n_embd:
            self.corrupt(key, self.md[key], f"it cannot exceed the embedding length ({n_embd})")
        n_head_kv = self.per_layer(kv_key, n_layer)
        if n_head_kv is None:
            return n_head
        if not isinstance(self.md[kv_key], list) and n_head_kv[0] == 0:
            self.corrupt(kv_key, 0, "it must be at least 1")
        for heads, kv_heads in zip(n_head, n_head_kv):
            # a 0 in a per-layer list marks a layer without attention (hybrid models)
            if kv_heads and (not heads or heads % kv_heads):
                self.corrupt(kv_key, self.md[kv_key], f"it must divide {_plain(key)} ({_show(self.md[key])})")
        return n_head

    def rope(self, arch: str, n_embd: int, n_head: list[int] | None) -> None:
        type_key = _K.Rope.SCALING_TYPE.format(arch=arch)
        if type_key in self.md and self.md[type_key] not in ROPE_SCALING_TYPES:
            self.corrupt(type_key, self.md[type_key], f"llama.cpp knows only {', '.join(ROPE_SCALING_TYPES)}")
        dim_key = _K.Rope.DIMENSION_COUNT.format(arch=arch)
        n_rot = self.count(dim_key)
        if n_rot is None or not n_head or not n_head[0]:
            return
        head_dim = self.count(_K.Attention.KEY_LENGTH.format(arch=arch)) or n_embd // n_head[0]
        if n_rot > head_dim:
            self.corrupt(dim_key, n_rot, f"it cannot exceed the head size ({head_dim})")

    def norm_epsilon(self, arch: str) -> None:
        """ggml's norm kernels assert eps >= 0, at the first token rather than at load."""
        for template in (_K.Attention.LAYERNORM_EPS, _K.Attention.LAYERNORM_RMS_EPS):
            key = template.format(arch=arch)
            if key in self.md:
                eps = _float(self.md[key])
                if eps is None or not 0 <= eps < math.inf:
                    self.corrupt(key, self.md[key], "it must be a small positive number")

    def byte_tokens(self, tokens: list[str]) -> None:
        """llama.cpp reads a byte token's value from its spelling, <0xNN>, and finds the
        token for a byte by writing that spelling (upper-case hex). A byte token spelled
        otherwise, or a SentencePiece vocab with <0x0A> but not all 256 byte tokens, makes
        tokenizing text that needs the missing byte throw from C++: the process aborts.
        (A SentencePiece vocab with no byte tokens at all is fine: model.py spells around
        the characters it cannot encode.)"""
        types = self.info.token_types
        for index, kind in enumerate(types[: len(tokens)]):
            if kind == gguf.TokenType.BYTE and not _BYTE_TOKEN.fullmatch(tokens[index]):
                self.fail(f"token {index} ({_show(tokens[index])}) is a byte token but is not spelled <0xNN> "
                          "(two upper-case hex digits), which makes llama.cpp abort; the file's tokenizer data is corrupt")
        if self.md.get(_K.Tokenizer.MODEL) == "llama" and "<0x0A>" in tokens:
            present = set(tokens)
            missing = [f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" not in present]
            if missing:
                self.fail(f"{_K.Tokenizer.LIST} has byte tokens for only {256 - len(missing)} of the 256 bytes "
                          f"(no {missing[0]}), so llama.cpp aborts on text that needs a missing one; "
                          "the file's tokenizer data is corrupt")

    def vocab(self) -> None:
        tokens_key = _K.Tokenizer.LIST
        tokens = self.md.get(tokens_key)
        if tokens is not None:
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                self.fail(f"{tokens_key} is not a list of strings; the file's tokenizer data is corrupt")
            index = self.info.duplicate_token
            if index is not None and index < len(tokens):
                token = tokens[index].split("\0", 1)[0]
                self.fail(f"{tokens_key} contains the token {_show(token)} twice, which makes llama.cpp abort; the file's tokenizer data is corrupt")
        if self.md.get(_K.Tokenizer.MODEL) == "bert" and gguf.TokenType.BYTE in self.info.token_types:
            self.fail(f"{_K.Tokenizer.MODEL} is 'bert' but the vocabulary has byte tokens, which makes llama.cpp abort; the file's tokenizer data is corrupt")
        if isinstance(tokens, list):
            self.byte_tokens(tokens)
        n_vocab = self.info.vocab_size
        if not n_vocab:
            return
        embd = next((t for t in self.info.tensors if t.name == "token_embd.weight"), None)
        if embd is not None and len(embd.shape) >= 2 and embd.shape[1] != n_vocab:
            self.fail(f"tensor token_embd.weight has {embd.shape[1]:,} rows but {tokens_key} lists {n_vocab:,} tokens; the file is corrupt")
        for key in (_K.Tokenizer.BOS_ID, _K.Tokenizer.EOS_ID, _K.Tokenizer.EOT_ID):
            token_id = self.count(key)
            if token_id is not None and token_id >= n_vocab:
                self.corrupt(key, token_id, f"the vocabulary has only {n_vocab:,} tokens")
