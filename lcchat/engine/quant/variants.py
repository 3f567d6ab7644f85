"""Other quantizations of the same model: files beside it whose name differs only in its
quant tag (plus a profile's `model.variants` glob), and where a new one goes."""

from __future__ import annotations

import glob as globlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lcchat.engine import gguf_info
from lcchat.errors import LcchatError

_TAG = re.compile(r"[-_.](i?q\d+(?:_[a-z0-9]+)*|tq\d_\d|mxfp4(?:_moe)?|nvfp4|bf16|fp16|f16|fp32|f32)$", re.I)


def split_tag(stem: str) -> tuple[str, str | None]:
    """"ggml-model-q4_0" -> ("ggml-model", "Q4_0"); "x-fp16" -> ("x", "F16"); a stem
    without a quant tag -> (stem, None)."""
    match = _TAG.search(stem)
    if match is None:
        return stem, None
    tag = match.group(1).upper()
    return stem[: match.start()], {"FP16": "F16", "FP32": "F32"}.get(tag, tag)


@dataclass
class Variant:
    path: Path
    type_name: str | None  # from the header, else from the name
    size: int
    current: bool = False
    problem: str | None = None  # why the header could not be read


def _key(path: Path) -> str:
    return split_tag(path.stem)[0].lower()


def find_variants(path: str | os.PathLike[str], pattern: str = "", *,
                  relative_to: Path | None = None, read_headers: bool = True) -> list[Variant]:
    """Quantizations of the same model: .gguf files in the same directory whose name,
    with the quant tag taken off, matches (case-insensitive), plus whatever the profile's
    `model.variants` glob matches. The current file is included, marked current. Types
    come from each file's header; with read_headers=False (completion) from the names."""
    path = Path(path)
    found: dict[Path, None] = {}
    key = _key(path)
    folders = [path.parent]
    if in_installed_package(path):
        folders.append(user_models_dir())  # where /quant make put this model's quantizations
    for folder in folders:
        try:
            for candidate in sorted(folder.iterdir()):
                if candidate.suffix.lower() == ".gguf" and not candidate.name.startswith(".") and _key(candidate) == key:
                    found[candidate] = None
        except OSError:
            pass
    if pattern:
        expanded = os.path.expandvars(os.path.expanduser(pattern))
        if not os.path.isabs(expanded):
            expanded = str((relative_to or Path.cwd()) / expanded)
        for name in sorted(globlib.glob(expanded)):
            candidate = Path(name)
            if candidate.is_file() and not candidate.name.startswith("."):
                found[candidate] = None
    found.setdefault(path, None)
    variants = [_variant(p, same_file(p, path), read_headers) for p in found]
    return sorted(variants, key=lambda v: (v.size, v.path.name))


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def _variant(path: Path, current: bool, read_header: bool = True) -> Variant:
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if not read_header:
        return Variant(path, split_tag(path.stem)[1], size, current)
    try:
        info = gguf_info.read_gguf(path, vocab=False)
        return Variant(path, info.file_type_name, size, current)
    except LcchatError as exc:
        return Variant(path, split_tag(path.stem)[1], size, current, str(exc))


def pick_variant(variants: list[Variant], wanted: str) -> Variant | None:
    """The variant named by type ("Q5_K_M", any case) or by file name."""
    upper = wanted.strip().upper()
    for v in variants:
        if v.problem is None and v.type_name and v.type_name.upper() == upper:
            return v
    for v in variants:
        if v.problem is None and (v.path.name == wanted or v.path.stem.upper() == upper or split_tag(v.path.stem)[1] == upper):
            return v
    return None


def default_output(source: Path, type_name: str) -> Path:
    """Where a quantization goes by default: the source's name with its quant tag
    replaced (tiny-f32.gguf -> tiny-Q4_K_M.gguf), in the same directory when that is the
    user's; for a model shipped inside an installed package (site-packages), in the data
    dir's models/ instead: a package's files belong to pip, which would delete or
    overwrite ours."""
    stem = source.stem
    match = _TAG.search(stem)
    if match is not None:
        name = f"{stem[: match.start()]}{stem[match.start()]}{type_name}.gguf"
    else:
        name = f"{stem}-{type_name}.gguf"
    if in_installed_package(source):
        return user_models_dir() / name
    return source.with_name(name)


def user_models_dir() -> Path:
    """The data dir's models/: where lcchat writes models it makes for the user."""
    from lcchat.paths import data_dir

    return data_dir() / "models"


def in_installed_package(path: Path) -> bool:
    """True when `path` lies inside a Python package directory (site-packages or
    dist-packages, of this interpreter or any other)."""
    import site
    import sysconfig

    try:
        where = path.resolve()
    except OSError:
        where = path.absolute()
    if any(part in ("site-packages", "dist-packages") for part in where.parts):
        return True
    roots = set()
    for getter in (site.getsitepackages, site.getusersitepackages):
        try:
            found = getter()
        except (AttributeError, OSError):
            continue
        roots.update([found] if isinstance(found, str) else found)
    roots.update(p for p in (sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")) if p)
    for root in roots:
        try:
            where.relative_to(Path(root).resolve())
            return True
        except (ValueError, OSError):
            continue
    return False
