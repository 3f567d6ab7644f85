"""`lcchat profiles import FILE`: a profile from an Ollama Modelfile or an LM Studio preset.

Each reader turns its file into TOML-shaped profile data plus notes on what it could not
carry over; the notes go into the profile as comments, so nothing is dropped silently.
Values are checked against the schema as they are read, with the file and line (or key)
in the error. The profile is written to the user's profile directory only after it loads.

Ollama's TEMPLATE is a Go template: gotemplate translates it to a Jinja template that
renders what Ollama renders. What it cannot translate faithfully is named in a note, kept
as a comment, and the model's own GGUF template is used; never a look-alike template.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lcchat import paths
from lcchat.config import gotemplate, loader
from lcchat.config.gotemplate import jinja_string
from lcchat.engine import templates
from lcchat.config.schema import SECTIONS
from lcchat.errors import EXIT_OK, InputError, LcchatError, ProfileError

MAX_IMPORT = 16 << 20  # bytes: Modelfiles and presets are a few KB

# Ollama PARAMETER name -> profile key
OLLAMA_PARAMETERS = {
    "temperature": "sampling.temperature",
    "top_p": "sampling.top_p",
    "top_k": "sampling.top_k",
    "min_p": "sampling.min_p",
    "repeat_penalty": "sampling.repeat_penalty",
    "repeat_last_n": "sampling.repeat_last_n",
    "presence_penalty": "sampling.presence_penalty",
    "frequency_penalty": "sampling.frequency_penalty",
    "mirostat": "sampling.mirostat",
    "mirostat_tau": "sampling.mirostat_tau",
    "mirostat_eta": "sampling.mirostat_eta",
    "seed": "sampling.seed",
    "num_predict": "sampling.max_tokens",
    "num_ctx": "model.n_ctx",
    "num_batch": "model.n_batch",
    "num_gpu": "model.n_gpu_layers",
    "num_thread": "model.n_threads",
    "use_mmap": "model.use_mmap",
    "use_mlock": "model.use_mlock",
    "rope_frequency_base": "rope.freq_base",
    "rope_frequency_scale": "rope.freq_scale",
    "stop": "chat.stop",
}

# LM Studio 0.2 preset keys -> profile keys
LMSTUDIO_LOAD = {
    "n_ctx": "model.n_ctx",
    "n_batch": "model.n_batch",
    "n_gpu_layers": "model.n_gpu_layers",
    "use_mmap": "model.use_mmap",
    "use_mlock": "model.use_mlock",
    "rope_freq_base": "rope.freq_base",
    "rope_freq_scale": "rope.freq_scale",
    "seed": "sampling.seed",
}
LMSTUDIO_INFERENCE = {
    "n_threads": "model.n_threads",
    "seed": "sampling.seed",
    "n_predict": "sampling.max_tokens",
    "temp": "sampling.temperature",
    "top_k": "sampling.top_k",
    "top_p": "sampling.top_p",
    "min_p": "sampling.min_p",
    "repeat_penalty": "sampling.repeat_penalty",
    "repeat_last_n": "sampling.repeat_last_n",
    "frequency_penalty": "sampling.frequency_penalty",
    "presence_penalty": "sampling.presence_penalty",
    "mirostat": "sampling.mirostat",
    "mirostat_tau": "sampling.mirostat_tau",
    "mirostat_eta": "sampling.mirostat_eta",
    "antiprompt": "chat.stop",
    "pre_prompt": "chat.system",
}
_LMSTUDIO_TEMPLATE_KEYS = ("pre_prompt_prefix", "pre_prompt_suffix", "input_prefix", "input_suffix")
# LM Studio 0.3 preset fields ("operation"/"load" lists of {key, value}) -> profile keys
LMSTUDIO_FIELDS = {
    "llm.prediction.temperature": "sampling.temperature",
    "llm.prediction.topKSampling": "sampling.top_k",
    "llm.prediction.topPSampling": "sampling.top_p",
    "llm.prediction.minPSampling": "sampling.min_p",
    "llm.prediction.repeatPenalty": "sampling.repeat_penalty",
    "llm.prediction.maxPredictedTokens": "sampling.max_tokens",
    "llm.prediction.stopStrings": "chat.stop",
    "llm.prediction.systemPrompt": "chat.system",
    "llm.prediction.llama.cpuThreads": "model.n_threads",
    "llm.load.contextLength": "model.n_ctx",
    "llm.load.seed": "sampling.seed",
    "llm.load.llama.evalBatchSize": "model.n_batch",
    "llm.load.llama.cpuThreadPoolSize": "model.n_threads",
    "llm.load.llama.flashAttention": "model.flash_attn",
    "llm.load.llama.tryMmap": "model.use_mmap",
    "llm.load.llama.keepModelInMemory": "model.use_mlock",
    "llm.load.llama.ropeFrequencyBase": "rope.freq_base",
    "llm.load.llama.ropeFrequencyScale": "rope.freq_scale",
    "llm.load.llama.kCacheQuantizationType": "model.cache_type_k",
    "llm.load.llama.vCacheQuantizationType": "model.cache_type_v",
}
# What a checkbox left unticked means for a value in LM Studio 0.3: the feature is off.
_UNCHECKED = {"sampling.top_p": 1.0, "sampling.min_p": 0.0, "sampling.repeat_penalty": 1.0, "sampling.max_tokens": -1}

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class Imported:
    """A profile read from another tool's file: data for loader.to_toml, and notes."""

    kind: str
    source: Path
    name: str
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    comment_block: str = ""  # e.g. a Go template that was not converted, kept for reference

    def set(self, dotted: str, value: Any, where: str) -> None:
        """Set a profile key after checking the value against the schema."""
        section, _, key = dotted.partition(".")
        spec = {f.name: f for f in fields(SECTIONS[section])}[key]
        value = _coerce(spec, value, where)
        problem = loader.check_value(spec, value)
        if problem:
            raise ProfileError(f"{where}: {problem}")
        self.data.setdefault(section, {})[key] = value

    def add_stop(self, text: str, where: str) -> None:
        if not isinstance(text, str) or not text:
            raise ProfileError(f"{where}: a stop string must be non-empty text")
        stops = self.data.setdefault("chat", {}).setdefault("stop", [])
        if text not in stops:
            stops.append(text)


def _coerce(spec: Any, value: Any, where: str) -> Any:
    """A value from a text file or JSON as the schema's type (numbers from strings ...).
    Numbers must be finite: `inf`, `1e400` (which JSON reads as infinity) and `nan` are errors."""
    kind = str(spec.type)
    if isinstance(value, bool):
        return value
    if kind == "bool" and isinstance(value, str):
        lowered = value.strip().lower()
        return lowered == "true" if lowered in ("true", "false") else value
    if kind in ("int", "float") and isinstance(value, str):
        value = _number(value.strip(), where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ProfileError(f"{where}: {value} is not a finite number")
    if kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int):
        return float(value)
    if kind == "str" and isinstance(value, (int, float)):
        return str(value)
    return value


def _number(text: str, where: str) -> int | float:
    """A number written in a file: whole numbers exactly, others as floats."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        raise ProfileError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(number):
        raise ProfileError(f"{where}: {text!r} is not a finite number")
    return number


# ---------------------------------------------------------------- Ollama Modelfile


def read_modelfile(path: Path) -> Imported:
    text = _read_text(path)
    imported = Imported("Ollama Modelfile", path, _name_from_file(path))
    from_name = ""
    for number, instruction, argument in _modelfile_instructions(text, path):
        where = f"{path}:{number}"
        if instruction == "FROM":
            from_name = argument
            _from(imported, argument, path)
        elif instruction == "PARAMETER":
            _parameter(imported, argument, where)
        elif instruction == "SYSTEM":
            imported.set("chat.system", argument, f"{where}: SYSTEM")
        elif instruction == "TEMPLATE":
            _template(imported, argument, number)
        elif instruction == "ADAPTER":
            imported.notes.append(f"ADAPTER (line {number}) was not converted: lcchat loads no LoRA adapters; merge "
                                  f"{argument} into the model (llama.cpp's llama-export-lora) and give the merged "
                                  "GGUF with -m")
        elif instruction == "MESSAGE":
            imported.notes.append(f"MESSAGE (line {number}) was not converted: a profile holds no opening "
                                  "conversation; to start from one, keep it in a conversation and resume it "
                                  "with -C ID")
        elif instruction in ("LICENSE", "REQUIRES"):
            imported.notes.append(f"{instruction} (line {number}) has no lcchat equivalent and was not converted")
        else:
            raise ProfileError(f"{where}: unknown Modelfile instruction {instruction!r}")
    if not from_name:
        imported.notes.append("the Modelfile has no FROM line: give the model with -m FILE.gguf")
    if imported.name == "modelfile" and from_name:
        imported.name = _slug(Path(from_name).stem if _looks_like_path(from_name) else from_name) or "imported"
    return imported


def _modelfile_instructions(text: str, path: Path):
    """(line number, INSTRUCTION, argument) for each instruction; quoted and triple-quoted
    arguments may span lines."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        number = i + 1
        i += 1
        stripped = line.lstrip()
        if not stripped.strip() or stripped.startswith("#"):
            continue
        cut = next((k for k, c in enumerate(stripped) if c in " \t"), len(stripped))
        word, rest = stripped[:cut], stripped[cut:].lstrip(" \t")
        if rest.startswith('"""'):
            parts = [rest[3:]]  # verbatim: a template's spaces are part of the prompt
            while '"""' not in parts[-1]:  # each line looked at once: linear in the file
                if i >= len(lines):
                    raise ProfileError(f"{path}:{number}: {word.upper()} opens \"\"\" but never closes it")
                parts.append(lines[i])
                i += 1
            argument, _, after = "\n".join(parts).partition('"""')
            if after.strip():
                raise ProfileError(f"{path}:{number}: unexpected text after the closing \"\"\": {after.strip()!r}")
        else:
            argument = _unquote(rest.strip())
        if not argument and word.upper() not in ("SYSTEM", "TEMPLATE"):
            raise ProfileError(f"{path}:{number}: {word.upper()} needs a value")
        yield number, word.upper(), argument


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r'\\(["\\])', r"\1", text[1:-1])
    return text


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or os.sep in text or text.lower().endswith(".gguf")


def _from(imported: Imported, argument: str, modelfile: Path) -> None:
    if not _looks_like_path(argument):
        imported.notes.append(f"FROM {argument} names a model in Ollama's library, not a file: give the GGUF with "
                              "-m FILE.gguf (Ollama keeps its files under ~/.ollama/models/blobs)")
        return
    target = Path(os.path.expandvars(os.path.expanduser(argument)))
    if not target.is_absolute():
        target = loader.resolved_path(modelfile.parent / target)
    if target.is_dir():
        imported.notes.append(f"FROM {argument} is a directory (weights to convert), not a GGUF file: convert it "
                              "with llama.cpp and give the GGUF with -m")
        return
    if not target.exists():
        imported.notes.append(f"FROM {argument}: {target} does not exist (yet)")
    imported.data.setdefault("model", {})["path"] = str(target)


def _parameter(imported: Imported, argument: str, where: str) -> None:
    name, _, value = argument.partition(" ")
    name, value = name.strip().lower(), _unquote(value.strip())
    if not value:
        raise ProfileError(f"{where}: PARAMETER {name} needs a value")
    key = OLLAMA_PARAMETERS.get(name)
    if key is None:
        imported.notes.append(f"PARAMETER {name} {value} has no lcchat equivalent and was not converted")
        return
    label = f"{where}: PARAMETER {name}"
    if key == "chat.stop":
        imported.add_stop(value, label)
    elif key == "sampling.max_tokens" and value.strip() == "-2":
        imported.set(key, -1, label)  # Ollama's -2 is "fill the context"; -1 here
    else:
        imported.set(key, value, label)


def _template(imported: Imported, go: str, line: int) -> None:
    try:
        translation = gotemplate.translate(go)
        templates.compile_jinja(translation.jinja, source="translated TEMPLATE")  # a safety net
    except gotemplate.Untranslatable as exc:
        where = f" (line {exc.line + line - 1} of the Modelfile)" if exc.line else ""
        why = f"lcchat cannot translate {exc.what}{where}"
    except templates.TemplateError as exc:
        why = f"{exc} (a bug in lcchat's translator: please report it)"
    else:
        imported.data.setdefault("chat", {})["template"] = translation.jinja
        imported.notes.append(f"TEMPLATE {translation.how}")
        imported.notes += translation.notes
        return
    imported.notes.append(f"TEMPLATE was not converted: {why}; the GGUF's own chat template is used and the "
                          "original is kept below for reference (set [chat] format or template if the GGUF has none)")
    imported.comment_block = "Ollama TEMPLATE (not converted):\n" + go


# ---------------------------------------------------------------- LM Studio presets


def read_lmstudio(path: Path) -> Imported:
    try:
        preset = json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    except RecursionError:
        raise ProfileError(f"{path}: JSON nested too deeply to be an LM Studio preset") from None
    if not isinstance(preset, dict):
        raise ProfileError(f"{path}: an LM Studio preset is a JSON object")
    name = preset.get("name") if isinstance(preset.get("name"), str) else ""
    imported = Imported("LM Studio preset", path, _slug(name) or _name_from_file(path))
    if name:
        imported.data["description"] = f"{name} (imported from the LM Studio preset {path.name})"
    known = {"name", "load_params", "inference_params", "operation", "load", "identifier", "changed"}
    for key in preset:
        if key not in known:
            imported.notes.append(f"{key} has no lcchat equivalent and was not converted")
    load = preset.get("load_params") or {}
    inference = preset.get("inference_params") or {}
    for section, table in (("load_params", load), ("inference_params", inference)):
        if not isinstance(table, dict):
            raise ProfileError(f"{path}: {section} must be a JSON object")
    for key, value in load.items():
        _lmstudio_value(imported, LMSTUDIO_LOAD.get(key), value, f"{path}: load_params.{key}")
    for key, value in inference.items():
        if key in _LMSTUDIO_TEMPLATE_KEYS:
            continue
        _lmstudio_value(imported, LMSTUDIO_INFERENCE.get(key), value, f"{path}: inference_params.{key}")
    wrappers = {k: inference.get(k) or "" for k in _LMSTUDIO_TEMPLATE_KEYS}
    if any(not isinstance(v, str) for v in wrappers.values()):
        raise ProfileError(f"{path}: inference_params prefixes and suffixes must be strings")
    if any(wrappers.values()):
        imported.data.setdefault("chat", {})["template"] = _wrapper_template(
            before_system=wrappers["pre_prompt_prefix"], after_system=wrappers["pre_prompt_suffix"],
            before_user=wrappers["input_prefix"], after_user=wrappers["input_suffix"],
            always_system=True)
        imported.notes.append("the chat template was made from the preset's pre_prompt/input prefixes and suffixes")
    for section in ("operation", "load"):
        block = preset.get(section)
        if block is None:
            continue
        items = block.get("fields") if isinstance(block, dict) else None
        if not isinstance(items, list):
            raise ProfileError(f"{path}: {section}.fields must be a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise ProfileError(f"{path}: {section}.fields holds an entry without a key")
            _lmstudio_field(imported, item["key"], item.get("value"), f"{path}: {item['key']}")
    return imported


def _lmstudio_value(imported: Imported, key: str | None, value: Any, where: str) -> None:
    label = where.rsplit(": ", 1)[-1]
    if key is None:
        imported.notes.append(f"{label} = {json.dumps(value)} has no lcchat equivalent and was not converted")
        return
    if key == "chat.stop":
        _add_stops(imported, value, where)
        return
    if (key == "rope.freq_base" and value == 0) or (key == "rope.freq_scale" and value in (0, 1)):
        return  # the model's own
    if key == "model.n_threads" and isinstance(value, (int, float)) and value <= 0:
        return
    if key == "sampling.max_tokens" and value == -2:
        value = -1
    if key == "chat.system" and value == "":
        return
    imported.set(key, value, where)


def _add_stops(imported: Imported, value: Any, where: str) -> None:
    """Stop strings from a preset: a JSON list of strings and nothing else (a lone string is
    not read as a list of its characters)."""
    if not isinstance(value, list) or not all(isinstance(stop, str) for stop in value):
        raise ProfileError(f"{where}: must be a list of strings, not {_json_kind(value)}")
    for stop in value:
        if stop:
            imported.add_stop(stop, where)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list with a non-string in it" if value else "a list"
    for kinds, name in ((bool, "true/false"), ((int, float), "a number"), (str, "a string"), (dict, "an object")):
        if isinstance(value, kinds):
            return name
    return "null"


def _lmstudio_field(imported: Imported, name: str, value: Any, where: str) -> None:
    if name == "llm.prediction.promptTemplate":
        _lmstudio_prompt_template(imported, value, where)
        return
    if name == "llm.load.llama.acceleration.offloadRatio":
        if value == "max" or value == 1 or value == 1.0:
            imported.set("model.n_gpu_layers", -1, where)
        elif value in (0, 0.0, "off"):
            imported.set("model.n_gpu_layers", 0, where)
        else:
            imported.notes.append(f"{name} = {json.dumps(value)} is a share of the layers, which depends on the "
                                  "model: set [model] n_gpu_layers yourself")
        return
    key = LMSTUDIO_FIELDS.get(name)
    if isinstance(value, dict) and "checked" in value:
        if not value.get("checked"):
            if key in _UNCHECKED:
                imported.set(key, _UNCHECKED[key], where)
            return
        value = value.get("value")
    _lmstudio_value(imported, key, value, where)


def _lmstudio_prompt_template(imported: Imported, value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: must be a JSON object")
    if value.get("stopStrings") is not None:
        _add_stops(imported, value["stopStrings"], f"{where}.stopStrings")
    for key in ("jinjaPromptTemplate", "manualPromptTemplate"):
        if value.get(key) is not None and not isinstance(value[key], dict):
            raise ProfileError(f"{where}.{key}: must be a JSON object, not {_json_kind(value[key])}")
    kind = value.get("type")
    if kind == "jinja":
        template = (value.get("jinjaPromptTemplate") or {}).get("template")
        if isinstance(template, str) and template:
            imported.data.setdefault("chat", {})["template"] = template
            imported.notes.append("the preset's Jinja prompt template is used as it is")
            return
    elif kind == "manual":
        manual = value.get("manualPromptTemplate") or {}
        names = ("beforeSystem", "afterSystem", "beforeUser", "afterUser", "beforeAssistant", "afterAssistant")
        if isinstance(manual, dict) and all(isinstance(manual.get(k, ""), str) for k in names):
            imported.data.setdefault("chat", {})["template"] = _wrapper_template(
                before_system=manual.get("beforeSystem", ""), after_system=manual.get("afterSystem", ""),
                before_user=manual.get("beforeUser", ""), after_user=manual.get("afterUser", ""),
                before_assistant=manual.get("beforeAssistant", ""), after_assistant=manual.get("afterAssistant", ""))
            imported.notes.append("the chat template was made from the preset's manual prompt template")
            return
    imported.notes.append(f"{where.rsplit(': ', 1)[-1]} of type {kind!r} was not converted; the GGUF's template is used")


def _wrapper_template(*, before_system: str, after_system: str, before_user: str, after_user: str,
                      before_assistant: str = "", after_assistant: str = "", always_system: bool = False) -> str:
    """A Jinja template that wraps each message in fixed text (LM Studio's model of a format).
    `always_system` writes the system wrapper even without a system prompt, as LM Studio 0.2 does."""
    s = jinja_string
    system = (
        "{% if messages and messages[0]['role'] == 'system' %}"
        f"{{{{ {s(before_system)} + messages[0]['content'] + {s(after_system)} }}}}"
        + (f"{{% else %}}{{{{ {s(before_system + after_system)} }}}}" if always_system else "")
        + "{% endif %}"
    )
    turns = (
        "{% for message in messages %}"
        f"{{% if message['role'] == 'user' %}}{{{{ {s(before_user)} + message['content'] + {s(after_user)} }}}}"
        f"{{% elif message['role'] == 'assistant' %}}{{{{ {s(before_assistant)} + message['content'] + {s(after_assistant)} }}}}"
        "{% endif %}{% endfor %}"
    )
    prompt = f"{{% if add_generation_prompt %}}{{{{ {s(before_assistant)} }}}}{{% endif %}}" if before_assistant else ""
    return system + turns + prompt


# ---------------------------------------------------------------- writing


def read_any(path: Path) -> Imported:
    """An Ollama Modelfile or an LM Studio preset, told apart by content."""
    text = _read_text(path)
    if text.lstrip().startswith("{"):
        return read_lmstudio(path)
    return read_modelfile(path)


def render(imported: Imported) -> str:
    """The profile's TOML: comments on where it came from and what was left out, then the data."""
    data = {"description": f"imported from {imported.source.name} ({imported.kind})", "extends": "default"}
    data.update(imported.data)
    lines = [f"# Imported by `lcchat profiles import` from the {imported.kind}", f"# {imported.source}"]
    for note in imported.notes:
        lines.append(f"# - {note}")
    if imported.comment_block:
        lines.append("#")
        lines += [f"# {line}".rstrip() for line in imported.comment_block.split("\n")]
    return "\n".join(lines) + "\n" + loader.to_toml(data)


def import_profile(path: Path, *, name: str | None = None, force: bool = False, out=None) -> int:
    """Read FILE, write NAME.toml to the user's profile directory, check that it loads."""
    out = out or sys.stdout
    if not path.is_file():
        raise InputError(f"{path}: no such file; give an Ollama Modelfile or an LM Studio preset (.json)")
    imported = read_any(path)
    name = _profile_name(name) if name else imported.name
    directory = paths.user_profiles_dir()
    target = directory / f"{name}.toml"
    if target.exists() and not force:
        raise InputError(f"a profile named {name!r} already exists ({target}); use --force to replace it or -o NAME")
    text = render(imported)
    paths.ensure_private_dir(directory)
    fd, temp = tempfile.mkstemp(prefix=f".{name}-", suffix=".toml", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            loader.load_profile(temp)
        except LcchatError as exc:
            raise ProfileError(f"the profile made from {path} does not load ({exc}); please report this") from exc
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    shipped = paths.shipped_profiles_dir() / f"{name}.toml"
    print(f"wrote profile {name!r} to {target}", file=out)
    if shipped.is_file():
        print("note: it hides the shipped profile of the same name", file=out)
    for note in imported.notes:
        print(f"note: {note}", file=out)
    model = "" if imported.data.get("model", {}).get("path") else " -m MODEL.gguf"
    print(f"chat with it: lcchat -p {name}{model}", file=out)
    return EXIT_OK


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_IMPORT + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    if len(raw) > MAX_IMPORT:
        raise ProfileError(f"{path}: larger than {MAX_IMPORT >> 20} MB, so not a Modelfile or a preset")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: not valid UTF-8 (byte {exc.start})") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _profile_name(name: str) -> str:
    name = name[:-5] if name.endswith(".toml") else name
    if not _NAME_OK.match(name):
        raise InputError(f"{name!r} cannot be a profile name: use letters, digits, '.', '_' and '-'")
    return name


def _name_from_file(path: Path) -> str:
    stem = path.name
    for suffix in (".preset.json", ".json", ".modelfile", ".Modelfile"):
        if stem.endswith(suffix) and len(stem) > len(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem.lower().startswith("modelfile.") and len(stem) > len("modelfile."):
        stem = stem[len("modelfile."):]
    return _slug(stem) or "imported"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-._").lower()
