"""Fuzz the GGUF checks: thousands of damaged copies of a tiny model (random bytes in
the header, metadata and tensor table; wild values spliced into length, count, type and
offset fields; truncation anywhere) and random hyperparameter values. load_checked must
either accept the file or raise one ModelFileError with a one-line message: any other
exception, a hang or a memory blow-up is a bug.

Vocabularies are fuzzed end to end: mutated token texts and types, and every file the
checks accept is loaded by llama.cpp in a child process, which must not abort.

LCCHAT_FUZZ_EXAMPLES=20000 scales every test up for a long manual run.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gguf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lcchat.engine.gguf_info import GGUFInfo, load_checked, read_gguf, validate_for_llama
from lcchat.errors import ModelFileError
from tests.models import family_tokens, write_tiny_model, write_vocab_model

SCALE = int(os.environ.get("LCCHAT_FUZZ_EXAMPLES", "0"))


def fuzz_settings(examples: int):
    return settings(
        max_examples=max(examples, SCALE),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


class Base:
    """A tiny model written once, its bytes, and where its structural fields lie."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lcchat-fuzz-"))
        self.model = write_tiny_model(self.dir / "base.gguf", n_layer=1, n_embd=32, n_head=2, n_head_kv=1, n_ff=64)
        self.data = self.model.read_bytes()
        self.info = read_gguf(self.model)
        self.header_end = self.info.data_offset
        self.fields = _field_offsets(self.model)
        self.target = self.dir / "fuzzed.gguf"

    def check(self, blob: bytes, vocab: bool = True) -> None:
        self.target.write_bytes(blob)
        try:
            load_checked(self.target, vocab=vocab)
        except ModelFileError as e:
            message = str(e)
            assert "\n" not in message and "\r" not in message, message
            assert message.startswith(f"{self.target}: "), message
            assert len(message) < 400 + len(str(self.target)), message


def _field_offsets(path: Path) -> list[tuple[int, int]]:
    """(offset, width) of every 4- or 8-byte length, count, type and offset field, found
    with gguf's own reader on the known-good file."""
    reader = gguf.GGUFReader(path)
    found = [(8, 8), (16, 8)]
    fields = list(reader.fields.values()) + [t.field for t in reader.tensors]
    for f in fields:
        at = f.offset
        for part in f.parts:
            if part.nbytes in (4, 8):
                found.append((at, part.nbytes))
            at += part.nbytes
    return sorted(set(found))


@pytest.fixture(scope="module")
def base() -> Iterator[Base]:
    made = Base()
    yield made
    shutil.rmtree(made.dir, ignore_errors=True)


def wild(width: int) -> st.SearchStrategy[int]:
    top = 2 ** (8 * width) - 1
    edges = [0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 31, 32, 33, 63, 64, 255, 512, 513, 2**16, 2**31 - 1, 2**31, 2**32 - 1]
    edges += [2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
    return st.one_of(st.sampled_from([e for e in edges if e <= top]), st.integers(0, top))


@fuzz_settings(500)
@given(data=st.data(), vocab=st.booleans())
def test_random_bytes_in_header(base: Base, data: st.DataObject, vocab: bool) -> None:
    blob = bytearray(base.data)
    edits = data.draw(st.lists(st.tuples(st.integers(0, base.header_end - 1), st.integers(0, 255)), min_size=1, max_size=12))
    for at, value in edits:
        blob[at] = value
    base.check(bytes(blob), vocab)


@fuzz_settings(200)
@given(data=st.data(), vocab=st.booleans())
def test_bit_flips_in_first_kilobytes(base: Base, data: st.DataObject, vocab: bool) -> None:
    blob = bytearray(base.data)
    for at, bit in data.draw(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 7)), min_size=1, max_size=4)):
        blob[at] ^= 1 << bit
    base.check(bytes(blob), vocab)


@fuzz_settings(500)
@given(data=st.data(), vocab=st.booleans())
def test_wild_values_in_fields(base: Base, data: st.DataObject, vocab: bool) -> None:
    blob = bytearray(base.data)
    for _ in range(data.draw(st.integers(1, 3))):
        at, width = data.draw(st.sampled_from(base.fields))
        blob[at : at + width] = data.draw(wild(width)).to_bytes(width, "little")
    base.check(bytes(blob), vocab)


@fuzz_settings(250)
@given(data=st.data(), vocab=st.booleans())
def test_truncated_anywhere(base: Base, data: st.DataObject, vocab: bool) -> None:
    size = data.draw(st.one_of(st.integers(0, base.header_end + 64), st.integers(0, len(base.data) - 1)))
    if size == 0:
        return  # an empty file is tested on its own
    base.check(base.data[:size], vocab)


@fuzz_settings(100)
@given(prefix=st.binary(min_size=1, max_size=64), vocab=st.booleans())
def test_random_files(base: Base, prefix: bytes, vocab: bool) -> None:
    base.check(prefix, vocab)
    base.check(b"GGUF" + struct.pack("<I", 3) + prefix, vocab)


# ---------------------------------------------------------------------------- hyperparameters

KEYS = [
    "general.architecture",
    "general.alignment",
    "llama.block_count",
    "llama.context_length",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.attention.key_length",
    "llama.expert_count",
    "llama.expert_used_count",
    "llama.expert_group_count",
    "llama.expert_group_used_count",
    "llama.nextn_predict_layers",
    "llama.rope.dimension_count",
    "llama.rope.scaling.type",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.eot_token_id",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(0, 1100),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["llama", "mamba", "none", "yarn", "", "qwen2"]),
)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4), st.lists(st.integers(0, 8), min_size=1, max_size=3))


@fuzz_settings(300)
@given(changes=st.dictionaries(st.sampled_from(KEYS), VALUES, min_size=1, max_size=5))
def test_random_hyperparameters(base: Base, changes: dict[str, object]) -> None:
    metadata = dict(base.info.metadata)
    for key, value in changes.items():
        if value is None:
            metadata.pop(key, None)
        else:
            metadata[key] = value
    info: GGUFInfo = dataclasses.replace(base.info, metadata=metadata)
    try:
        validate_for_llama(info)
    except ModelFileError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{base.info.path}: ")
    # the convenience properties never raise, whatever the metadata holds
    for name in ("architecture", "block_count", "context_length", "head_count", "head_count_kv",
                 "rope_dimension_count", "rope_freq_base", "tokens", "vocab_size", "bos_token_id",
                 "file_type_name", "n_params", "bits_per_weight"):
        getattr(info, name)


# ---------------------------------------------------------------------------- vocabularies

# Text that makes a SentencePiece vocab use every path: byte fallback (emoji, CJK, control
# characters, every Latin-1 letter), whitespace runs, and special-token text.
VOCAB_SAMPLE = (
    "Hello, world!\n\t  caf\u00e9 \u4e2d\u6587 \U0001f600\U0001f9ea \x01\x7f "
    + "".join(chr(c) for c in range(0xA0, 0x180))
    + " <|im_start|>user\nhi<|im_end|> </s> <0x41> <unk>"
)

# The child loads each file it is given with llama.cpp (through lcchat's Model), tokenizes
# the sample, turns every token back into text and evaluates a few: what a chat does.
CHILD = """
import sys
from lcchat.config.schema import ModelSettings, RopeSettings
from lcchat.engine.model import Model
sample = sys.argv[1]
for line in sys.stdin:
    model = None
    try:
        model = Model(line.strip(), ModelSettings(n_ctx=64, n_batch=64, n_threads=1), RopeSettings())
        tokens = model.tokenize(sample, add_bos=True, special=True)
        model.tokenize(sample, add_bos=False, special=False)
        for t in range(model.n_vocab):
            model.piece(t)
            model.token_text(t)
        model.decode(tokens[:32], 0)
        result = "ok"
    except Exception as e:
        result = "refused " + type(e).__name__
    finally:
        if model is not None:
            model.close()
    print(result, flush=True)
"""


class VocabChild:
    """One long-lived child process that loads vocab-fuzzed files: a native abort kills
    the child, not the test run, and shows up as a failure naming the file."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        return subprocess.Popen([sys.executable, "-c", CHILD, VOCAB_SAMPLE], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def load(self, path: Path) -> str:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        answer = proc.stdout.readline().strip()
        if not answer:
            code = proc.wait(timeout=60)
            tail = proc.stderr.read()[-600:]
            self.proc = None
            pytest.fail(f"llama.cpp died (exit {code}) on a vocab the checks accepted: {path}\n{tail}")
        return answer

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def vocab_child() -> Iterator[VocabChild]:
    child = VocabChild()
    yield child
    child.close()


BASE_TOKENS = family_tokens(("<|im_start|>", "<|im_end|>"))
_TT = gguf.TokenType
BASE_TYPES = [int(_TT.UNKNOWN), int(_TT.CONTROL), int(_TT.CONTROL)] + [
    int(_TT.BYTE if t.startswith("<0x") and len(t) == 6 else _TT.CONTROL if t.startswith("<|") else _TT.NORMAL)
    for t in BASE_TOKENS[3:]
]
BYTE_INDEXES = [i for i, t in enumerate(BASE_TOKENS) if BASE_TYPES[i] == _TT.BYTE]


def _respell(data: st.DataObject, text: str) -> str:
    """A near miss of a byte token's spelling, or any short text."""
    hexpart = text[3:5] if text.startswith("<0x") else "41"
    return data.draw(st.one_of(
        st.sampled_from([text.lower(), text[:-1], text + ">", text[1:], f"<0x{hexpart}0>", f"<0X{hexpart}>",
                         f"<0x{hexpart[0]}>", "<0x>", "<0xZZ>", "<0x 1>", "", "<", "0x41", "\u2581" + text]),
        st.text(max_size=7),
    ))


@fuzz_settings(60)
@given(data=st.data())
def test_vocab_mutations_either_fail_the_checks_or_load(tmp_path_factory, vocab_child: VocabChild,
                                                        data: st.DataObject) -> None:
    """Mutate token texts (byte tokens most often) and types; a file the checks accept must
    load, tokenize any text and detokenize every token without the process aborting."""
    tokens, types = list(BASE_TOKENS), list(BASE_TYPES)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.one_of(st.sampled_from(BYTE_INDEXES), st.integers(0, len(tokens) - 1)))
        what = data.draw(st.sampled_from(["respell", "retype", "both", "drop"]))
        if what in ("respell", "both"):
            tokens[at] = _respell(data, tokens[at])
        if what in ("retype", "both"):
            types[at] = data.draw(st.sampled_from([int(t) for t in _TT]))
        if what == "drop" and len(tokens) > 8:
            del tokens[at], types[at]
    seen: set[str] = set()
    for i, t in enumerate(tokens):  # duplicate tokens are refused, and fuzzed, elsewhere
        if t.split("\0", 1)[0] in seen or not t:
            tokens[i] = t = f"{t}#{i}"
        seen.add(t.split("\0", 1)[0])
    path = tmp_path_factory.mktemp("vocab") / "mutated.gguf"
    write_vocab_model(path, tokens, types=types, eos_token="<|im_end|>")
    try:
        load_checked(path)
    except ModelFileError as e:
        assert "\n" not in str(e)
        return
    assert vocab_child.load(path) in ("ok", "refused ModelFileError", "refused LcchatError", "refused InputError")


def test_a_misspelled_byte_token_is_refused_before_loading(tmp_path) -> None:
    tokens = list(BASE_TOKENS)
    at = tokens.index("<0xF0>")
    tokens[at] = "<0xf0>"
    path = write_vocab_model(tmp_path / "bad-byte.gguf", tokens, types=BASE_TYPES)
    with pytest.raises(ModelFileError, match=r"token \d+ \('<0xf0>'\) is a byte token but is not spelled <0xNN>"):
        load_checked(path)


def test_a_partial_set_of_byte_tokens_is_refused(tmp_path) -> None:
    tokens, types = list(BASE_TOKENS), list(BASE_TYPES)
    at = tokens.index("<0x9F>")
    tokens[at], types[at] = "\u2581zz", int(_TT.NORMAL)
    path = write_vocab_model(tmp_path / "partial.gguf", tokens, types=types)
    with pytest.raises(ModelFileError, match=r"byte tokens for only 255 of the 256 bytes \(no <0x9F>\)"):
        load_checked(path)


# ---------------------------------------------------------------------------- accepted files load

LOAD_CHILD = """
import sys
from lcchat.config.loader import load_profile
from lcchat.engine.session import open_session
from lcchat.errors import LcchatError

for i, path in enumerate(sys.argv[1:]):
    print("start", i, flush=True)
    try:
        session = open_session(load_profile("default", {"model.path": path, "model.n_ctx": 64,
                                                        "model.n_threads": 1, "sampling.max_tokens": 4,
                                                        "sampling.seed": 1}))
        for _ in session.send("hi"):
            pass
        session.close()
        print("ok", i, flush=True)
    except LcchatError as exc:
        print("refused", i, str(exc).replace(chr(10), " "), flush=True)
"""


def accepted_sample(base: Base, count: int, seed: int = 0) -> list[Path]:
    """Copies of the tiny model with random bytes in the header that load_checked still
    accepts (a fixed seed: the same files every run)."""
    import random

    rng = random.Random(seed)
    found: list[Path] = []
    for attempt in range(3000):
        if len(found) == count:
            break
        blob = bytearray(base.data)
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.5:
                at, width = rng.choice(base.fields)
                value = rng.choice([0, 1, 2, 3, 7, 64, 255, 2**16, 2**31 - 1, rng.getrandbits(8 * width)])
                blob[at:at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
            else:
                blob[rng.randrange(base.header_end)] = rng.randrange(256)
        if blob == base.data:
            continue
        path = base.dir / f"accepted-{attempt}.gguf"
        path.write_bytes(blob)
        try:
            load_checked(path)
        except ModelFileError:
            path.unlink()
            continue
        found.append(path)
    return found


def test_files_the_checks_accept_load_into_llama_cpp_without_an_abort(base: Base) -> None:
    """Accepting a file promises llama.cpp can take it: load each of a sample of accepted
    damaged files in a child process, chat one short turn, and require a clean end (a
    reply, or one clear refusal), never an abort."""
    import subprocess
    import sys

    sample = accepted_sample(base, count=12)
    assert len(sample) >= 6, "too few damaged files were accepted to test anything"
    result = subprocess.run([sys.executable, "-c", LOAD_CHILD, *map(str, sample)], capture_output=True, text=True,
                            timeout=600, cwd=base.dir,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    started = [line for line in result.stdout.splitlines() if line.startswith("start")]
    last = sample[int(started[-1].split()[1])] if started else None
    assert result.returncode == 0, (f"the child died ({result.returncode}) loading {last}: "
                                    f"{result.stderr[-800:]}")
    ended = [line for line in result.stdout.splitlines() if line.startswith(("ok", "refused"))]
    assert len(ended) == len(sample), result.stdout
