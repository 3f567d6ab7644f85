"""The profile schema: every key a profile may hold, its type, default and meaning.

One TOML file holds what loading and inference need. The dataclasses below are the single
source of truth: the loader checks files against them, `lcchat profiles show` prints them,
and the man page test reads them, so a new key is documented or a test fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lcchat.hub.source import patterns_problem, source_problem

# Choices for keys that take one of a few words.
ROPE_SCALING = ("auto", "none", "linear", "yarn", "ntk")
OVERFLOW = ("drop-oldest", "truncate-left", "error")
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


MAX_MARKER = 64  # characters: a reasoning marker longer than this is refused


def markers_problem(value: object) -> str | None:
    """What is wrong with a profile's [chat] reasoning value, if anything (schema check)."""
    if not isinstance(value, list):
        return "must be a list"
    if value in ([], ["none"]):
        return None
    if len(value) != 2 or not all(isinstance(v, str) and v.strip() for v in value):
        return 'must be [OPEN, CLOSE] (two non-empty strings), [] to detect them, or ["none"]'
    if any(len(v) > MAX_MARKER for v in value) or value[0] == value[1]:
        return f"markers must differ and be at most {MAX_MARKER} characters"
    return None


@dataclass
class ModelSettings:
    path: str = field(default="", metadata={"doc": "GGUF file; ~ and $VARS expand, relative paths are relative to the profile file. pkg:MODULE/FILE names a file shipped inside an installed Python package."})
    n_ctx: int = field(default=4096, metadata={"doc": "context window in tokens; 0 uses the model's training context. A KV cache larger than the memory available is refused before loading", "min": 0, "max": 2**24})
    n_batch: int = field(default=512, metadata={"doc": "prompt tokens evaluated per llama_decode call (also the physical batch, n_ubatch); --batch-size", "min": 1})
    n_threads: int = field(default=0, metadata={"doc": "generation threads; 0 means the physical cores less those other processes keep busy at load time; more than the CPUs lcchat may use are reduced to that, with a notice", "min": 0})
    n_threads_batch: int = field(default=0, metadata={"doc": "prompt-evaluation threads; 0 means every physical core (at least n_threads): a prompt is one large batch, faster on all cores even when generation uses fewer; --threads-batch", "min": 0})
    n_gpu_layers: int = field(default=0, metadata={"doc": "layers offloaded to the GPU; -1 offloads all", "min": -1})
    use_mmap: bool = field(default=True, metadata={"doc": "memory-map the model file"})
    use_mlock: bool = field(default=False, metadata={"doc": "lock the model in RAM so it is never swapped out"})
    cache_type_k: str = field(default="f16", metadata={"doc": "KV cache type for K; --cache-type-k. A quantized type (32 values per block) must divide the model's attention head size, or the model is refused before loading", "choices": KV_CACHE_TYPES})
    cache_type_v: str = field(default="f16", metadata={"doc": "KV cache type for V (a quantized V cache needs flash attention, so flash_attn must not be false); --cache-type-v", "choices": KV_CACHE_TYPES})
    flash_attn: bool | str = field(default="auto", metadata={"doc": "flash attention: \"auto\" (llama.cpp's choice when layers go to a GPU or the V cache is quantized; off on the CPU alone, where it measured slower at long contexts), true (on) or false (off); --flash-attn"})
    variants: str = field(default="", metadata={"doc": "glob for other quantizations of this model, used by /quant"})
    source: str = field(default="", metadata={"doc": "where the model can be downloaded: hf://OWNER/REPO, a Hugging Face Hub repository. With path empty, `lcchat pull` and `-p NAME` fetch the model from it into the Hub's shared cache", "check": lambda v: source_problem(v) if v else None})
    file: list = field(default_factory=list, metadata={"doc": "which GGUF files of source to take: a glob, or a list of globs in order of preference; when several quantizations match, the best one that fits this machine's memory is chosen", "item": str, "one_or_more": True, "check": patterns_problem})

    def __post_init__(self) -> None:
        if isinstance(self.file, str):  # `file = "*.gguf"` is a list of one
            self.file = [self.file]


@dataclass
class RopeSettings:
    scaling: str = field(default="auto", metadata={"doc": "auto (what the GGUF says), none, linear, yarn or ntk", "choices": ROPE_SCALING})
    freq_base: float = field(default=0.0, metadata={"doc": "RoPE base frequency; 0 keeps the model's", "min": 0})
    freq_scale: float = field(default=0.0, metadata={"doc": "RoPE frequency scale (linear: 1/factor); 0 keeps the model's", "min": 0})
    yarn_ext_factor: float = field(default=-1.0, metadata={"doc": "YaRN extrapolation mix factor; -1 lets llama.cpp choose"})
    yarn_attn_factor: float = field(default=1.0, metadata={"doc": "YaRN attention magnitude scale"})
    yarn_beta_fast: float = field(default=32.0, metadata={"doc": "YaRN low correction dimension"})
    yarn_beta_slow: float = field(default=1.0, metadata={"doc": "YaRN high correction dimension"})
    yarn_orig_ctx: int = field(default=0, metadata={"doc": "YaRN original training context; 0 uses the model's", "min": 0})
    ntk_alpha: float = field(default=0.0, metadata={"doc": "ntk: the NTK alpha; 0 derives it from ntk_target_ctx", "min": 0})
    ntk_target_ctx: int = field(default=0, metadata={"doc": "ntk: the context to reach; 0 uses model.n_ctx", "min": 0})
    ntk_factor: float = field(default=1.0, metadata={"doc": "ntk: the model's dynamic-NTK scaling factor (config.json rope_scaling.factor); alpha = factor*n_ctx/train - (factor-1)", "min": 1})


@dataclass
class ChatSettings:
    format: str = field(default="", metadata={"doc": "a chat format name from llama-cpp-python (chatml, llama-2, ...)"})
    template: str = field(default="", metadata={"doc": "a Jinja chat template; wins over format and the GGUF's own"})
    system: str = field(default="", metadata={"doc": "the system prompt"})
    stop: list = field(default_factory=list, metadata={"doc": "extra stop strings; the model's EOS/EOT are always added", "item": str})
    add_bos: bool | str = field(default="auto", metadata={"doc": "put a BOS token before the prompt: \"auto\" as the GGUF's vocab says, true or false (a template that writes one gets no second)"})
    parse_special: bool = field(default=False, metadata={"doc": "read special-token text inside messages as control tokens; off, message text is plain text and cannot forge a turn"})
    reasoning: list = field(default_factory=list, metadata={"doc": "the markers around a reasoning model's thinking, [OPEN, CLOSE] (e.g. [\"<think>\", \"</think>\"]); empty finds them in the template and vocab, [\"none\"] treats all of a reply as answer", "item": str, "check": markers_problem})
    thinking: bool | str = field(default="auto", metadata={"doc": "a reasoning model thinks before it answers: \"auto\" as the template does, true or false (passed as enable_thinking to templates that read it; otherwise false closes the thinking block before the reply starts). /think on|off and --think/--no-think switch it"})
    thinking_budget: int = field(default=-1, metadata={"doc": "after this many thinking tokens lcchat closes the thinking block itself so the model answers; -1 is no limit (/think budget N)", "min": -1})


@dataclass
class ContextSettings:
    overflow: str = field(default="drop-oldest", metadata={"doc": "what to do when the history outgrows the context: drop-oldest (whole exchanges leave, the system prompt stays), truncate-left (the same, keeping max_tokens for the reply, then a last message still too long loses its start) or error", "choices": OVERFLOW})
    reserve: int = field(default=512, metadata={"doc": "tokens kept free for the reply when the history is trimmed", "min": 0})


@dataclass
class SamplingSettings:
    temperature: float = field(default=0.8, metadata={"doc": "sampling temperature; 0 is greedy", "min": 0})
    top_p: float = field(default=0.95, metadata={"doc": "nucleus sampling threshold", "min": 0, "max": 1})
    top_k: int = field(default=40, metadata={"doc": "keep the k most likely tokens; 0 disables", "min": 0})
    min_p: float = field(default=0.05, metadata={"doc": "drop tokens below min_p times the top probability", "min": 0, "max": 1})
    repeat_penalty: float = field(default=1.0, metadata={"doc": "penalty for repeated tokens; 1.0 disables", "min": 0})
    repeat_last_n: int = field(default=64, metadata={"doc": "how many recent tokens the penalties look at; -1 means the whole context", "min": -1})
    presence_penalty: float = field(default=0.0, metadata={"doc": "penalty for tokens already present"})
    frequency_penalty: float = field(default=0.0, metadata={"doc": "penalty scaled by how often a token appeared"})
    mirostat: int = field(default=0, metadata={"doc": "mirostat mode: 0 off, 1 or 2", "choices": (0, 1, 2)})
    mirostat_tau: float = field(default=5.0, metadata={"doc": "mirostat target entropy", "min": 0})
    mirostat_eta: float = field(default=0.1, metadata={"doc": "mirostat learning rate", "min": 0})
    seed: int = field(default=-1, metadata={"doc": "random seed; -1 picks a new one each run", "min": -1})
    max_tokens: int = field(default=1024, metadata={"doc": "longest reply in tokens; -1 means until the context is full", "min": -1})


def _unset(doc: str) -> dict[str, Any]:
    return {"doc": doc + "; -1 keeps [sampling]'s", "min": -1}


@dataclass
class NoThinkSamplingSettings:
    """Sampling while a reasoning model's thinking is off: the model cards of Qwen3 and
    others advise other settings for each mode ([sampling] holds the thinking mode's)."""

    temperature: float = field(default=-1.0, metadata=_unset("sampling temperature with thinking off"))
    top_p: float = field(default=-1.0, metadata={**_unset("top_p with thinking off"), "max": 1})
    top_k: int = field(default=-1, metadata=_unset("top_k with thinking off"))
    min_p: float = field(default=-1.0, metadata={**_unset("min_p with thinking off"), "max": 1})
    presence_penalty: float = field(default=-1.0, metadata=_unset("presence_penalty with thinking off"))
SPEC_MODES = ("off", "lookup", "draft", "auto")


@dataclass
class SpeculativeSettings:
    mode: str = field(default="off", metadata={"doc": "speculative decoding: off; lookup (draft the continuation of the longest recent n-gram match in the conversation: free, and fast when the reply quotes its input); draft (a small model with the same vocabulary proposes tokens, see draft); auto (lookup where the conversation matches, else the draft model if one is set). Output is unchanged: identical when greedy (with flash_attn on), the same distribution at any temperature", "choices": SPEC_MODES})
    draft: str = field(default="", metadata={"doc": "the draft model's GGUF file for mode = draft or auto; it must share the model's vocabulary. ~ and $VARS expand, relative paths are relative to the profile file"})
    n_draft: int = field(default=16, metadata={"doc": "the most tokens drafted at a time (llama.cpp's default too); each draft's length is chosen below it from the acceptance and cost measured in the reply", "min": 1, "max": 64})


@dataclass
class UISettings:
    theme: str = field(default="dark", metadata={"doc": "TUI theme name (themes/*.tcss or the config dir)"})
    stream: bool = field(default=True, metadata={"doc": "show replies as they stream"})
    vi_mode: bool = field(default=False, metadata={"doc": "vi key bindings in the REPL"})


def _state_max_problem(value: Any) -> str | None:
    from lcchat.config.sizes import size_problem

    return size_problem(value)


@dataclass
class StoreSettings:
    enabled: bool = field(default=True, metadata={"doc": "record conversations in the history; false records nothing (as --no-history does)"})
    state_max: str = field(default="", metadata={"doc": "the most disk all saved KV states may use, e.g. \"4GiB\"; past it the least recently used are deleted. Empty: 4 GiB or 10% of the free space, whichever is less", "check": _state_max_problem})


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL, e.g. http://gpu-box:8080"
    return None


@dataclass
class BackendSettings:
    url: str = field(default="", metadata={"doc": "an OpenAI-compatible server to chat through instead of loading [model] path here (llama-server, vLLM, Ollama, llama-cpp-python's server), e.g. \"http://gpu-box:8080\"; --remote URL sets it. Empty: the model runs in this process", "check": lambda v: _url_problem(v) if v else None})
    api_key_env: str = field(default="", metadata={"doc": "the environment variable holding the server's API key, sent as a Bearer token (the key itself never goes in a profile)"})
    model: str = field(default="", metadata={"doc": "the model name to ask the server for; empty: the first one /v1/models lists"})
    api: str = field(default="auto", metadata={"doc": "chat (/v1/chat/completions: the server applies its template), completions (/v1/completions: lcchat renders the prompt with the profile's template and stops) or auto: completions when the profile sets [chat] template or format, chat otherwise", "choices": ("auto", "chat", "completions")})
    timeout: float = field(default=120.0, metadata={"doc": "seconds without a byte from the server before a reply counts as stalled (Ctrl+C stops sooner)", "min": 1})


SECTIONS: dict[str, type] = {
    "model": ModelSettings,
    "rope": RopeSettings,
    "chat": ChatSettings,
    "context": ContextSettings,
    "sampling": SamplingSettings,
    "sampling_no_think": NoThinkSamplingSettings,
    "speculative": SpeculativeSettings,
    "ui": UISettings,
    "store": StoreSettings,
    "backend": BackendSettings,
}

# Keys allowed at the top of a file, outside any table.
TOP_LEVEL = {
    "description": "one line saying what the profile is for",
    "extends": "name or path of a profile this one builds on",
}


@dataclass
class Profile:
    name: str = "default"
    source: Path | None = None
    description: str = ""
    extends: str = ""
    model: ModelSettings = field(default_factory=ModelSettings)
    rope: RopeSettings = field(default_factory=RopeSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    context: ContextSettings = field(default_factory=ContextSettings)
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    sampling_no_think: NoThinkSamplingSettings = field(default_factory=NoThinkSamplingSettings)
    speculative: SpeculativeSettings = field(default_factory=SpeculativeSettings)
    ui: UISettings = field(default_factory=UISettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)

    def to_dict(self) -> dict[str, Any]:
        """The profile as TOML-shaped data (tables for sections)."""
        out: dict[str, Any] = {"description": self.description}
        for section in SECTIONS:
            obj = getattr(self, section)
            out[section] = {f.name: _copy(getattr(obj, f.name)) for f in fields(obj)}
        return out


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def all_keys() -> list[tuple[str, str, Any, str]]:
    """Every profile key as (dotted name, type name, default, doc), for docs and tests."""
    rows = [(k, "string", "", doc) for k, doc in TOP_LEVEL.items()]
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
            rows.append((f"{section}.{f.name}", type_name(f.type, f.metadata), default, f.metadata.get("doc", "")))
    return rows


def type_name(annotation: Any, metadata: Any = None) -> str:
    if metadata and metadata.get("one_or_more"):
        return "string or list of strings"
    return {"int": "integer", "float": "float", "bool": "boolean", "str": "string", "list": "list of strings",
            "bool | str": '"auto" or boolean'}.get(
        str(annotation), str(annotation)
    )
