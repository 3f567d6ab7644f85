"""Sizes written by people in profiles ("4GiB", "500MB"), as bytes."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "m": 1000**2, "mb": 1000**2, "mib": 1 << 20,
          "g": 1000**3, "gb": 1000**3, "gib": 1 << 30, "t": 1000**4, "tb": 1000**4, "tib": 1 << 40}


def parse_size(text: str) -> int:
    """ "4GiB", "500 MB", "0" -> bytes. ValueError, with the reason, for anything else."""
    match = re.fullmatch(r"\s*(\d{1,15}(?:\.\d{1,6})?)\s*([a-zA-Z]{0,3})\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size; write it like 4GiB, 500MB or 0")
    return int(float(match.group(1)) * _UNITS[unit])


def size_problem(value: object) -> str | None:
    """For the profile schema: why a size value is wrong, or None ("" means the default)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parse_size(value)
    except ValueError as exc:
        return str(exc)
    return None
