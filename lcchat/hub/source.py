"""Where a model lives: `hf://OWNER/REPO[/FILE]` and the profile's `file` globs.

Stdlib only: the profile loader checks `[model] source` and `file` with these functions,
and loading a profile must not import huggingface_hub.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from lcchat.errors import InputError

SCHEME = "hf://"
# The Hub's own rules for a name (huggingface_hub.utils.validate_repo_id): letters, digits,
# "-", "_", "."; at most 96 characters; no "--" or ".."; not ending in ".git".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
MAX_PATTERNS = 32
MAX_PATTERN_CHARS = 200


@dataclass(frozen=True)
class HubSource:
    repo_id: str  # "OWNER/REPO"
    filename: str | None = None  # a path inside the repository, or None for "choose one"

    def __str__(self) -> str:
        return SCHEME + self.repo_id + (f"/{self.filename}" if self.filename else "")


def source_problem(text: str, *, with_file: bool = False) -> str | None:
    """Why `text` is not a valid hf://OWNER/REPO (or, with_file, hf://OWNER/REPO[/FILE]); None if it is."""
    if not text.startswith(SCHEME):
        return f'{text!r} is not a Hub address; write "hf://OWNER/REPO", e.g. "hf://internlm/internlm2_5-7b-chat-gguf"'
    parts = text[len(SCHEME):].split("/")
    if len(parts) < 2 or (len(parts) > 2 and not with_file):
        return f'{text!r} is not of the form "hf://OWNER/REPO"'
    for name in parts[:2]:
        if not _NAME.fullmatch(name) or "--" in name or ".." in name or name.endswith(".git"):
            return (f"{name!r} in {text!r} is not a valid Hub name (letters, digits, '-', '_' and '.', "
                    "at most 96 characters, no '--' or '..')")
    if len(parts) > 2:
        problem = file_pattern_problem("/".join(parts[2:]))
        if problem:
            return problem
    return None


def parse_source(text: str, *, with_file: bool = True) -> HubSource:
    """hf://OWNER/REPO[/FILE] -> HubSource; InputError with the reason otherwise."""
    problem = source_problem(text, with_file=with_file)
    if problem:
        raise InputError(problem)
    parts = text[len(SCHEME):].split("/")
    return HubSource("/".join(parts[:2]), "/".join(parts[2:]) or None)


def file_pattern_problem(pattern: str) -> str | None:
    """Why a `file` entry cannot name files inside a repository; None if it can."""
    if not pattern.strip():
        return "a file pattern is empty"
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"a file pattern is longer than {MAX_PATTERN_CHARS} characters"
    if pattern.startswith("/") or "\\" in pattern or any(part in ("", ".", "..") for part in pattern.split("/")):
        return f"{pattern!r} is not a path inside a repository (no leading '/', no '..' or empty parts)"
    if any(not c.isprintable() for c in pattern):
        return f"{pattern!r} holds control characters"
    return None


def patterns_problem(value: object) -> str | None:
    """The schema check for `[model] file`: one glob or a list of them."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        return 'must be a glob or a list of globs, e.g. "*Q4_K_M.gguf" or ["*Q5_K_M.gguf", "*Q4_K_M.gguf"]'
    if len(items) > MAX_PATTERNS:
        return f"lists {len(items)} patterns; at most {MAX_PATTERNS} are allowed"
    for item in items:
        problem = file_pattern_problem(item)
        if problem:
            return problem
    return None


def matching(files: list[str], patterns: list[str]) -> list[str]:
    """The GGUF files that the patterns allow, in the patterns' order of preference (no
    patterns: every .gguf). Matching ignores case, as quant tags come in both cases. Parts
    of a split model (-00001-of-00003.gguf) are left out: lcchat loads single files."""
    ggufs = [f for f in files if f.lower().endswith(".gguf") and not _SPLIT.search(f)]
    if not patterns:
        return sorted(ggufs)
    chosen: list[str] = []
    for pattern in patterns:
        for f in sorted(ggufs):
            if f not in chosen and fnmatch.fnmatchcase(f.lower(), pattern.lower()):
                chosen.append(f)
    return chosen


def rank_of(filename: str, patterns: list[str]) -> int:
    """Index of the first pattern that matches `filename` (len(patterns) when none does)."""
    for i, pattern in enumerate(patterns):
        if fnmatch.fnmatchcase(filename.lower(), pattern.lower()):
            return i
    return len(patterns)


_SPLIT = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.I)


