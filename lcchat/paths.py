"""Where lcchat keeps its files.

XDG base directories by default. LCCHAT_HOME, when set, overrides all of them with one
directory (config/, data/, state/ below it): tests and portable installs use it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def _home() -> Path | None:
    value = os.environ.get("LCCHAT_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    home = _home()
    return home / "config" if home else _xdg("XDG_CONFIG_HOME", ".config") / "lcchat"


def data_dir() -> Path:
    home = _home()
    return home / "data" if home else _xdg("XDG_DATA_HOME", ".local/share") / "lcchat"


def state_dir() -> Path:
    home = _home()
    return home / "state" if home else _xdg("XDG_STATE_HOME", ".local/state") / "lcchat"


def user_profiles_dir() -> Path:
    return config_dir() / "profiles"


def user_themes_dir() -> Path:
    return config_dir() / "themes"


def _shipped(name: str) -> Path:
    """A directory shipped with the package (profiles/, themes/, man/).

    In a wheel they are installed inside the package (lcchat/profiles ...); in a source
    checkout or an editable install they sit at the top of the repository.
    """
    here = Path(__file__).resolve().parent
    inside = here / name
    if inside.is_dir():
        return inside
    return here.parent / name


def shipped_profiles_dir() -> Path:
    return _shipped("profiles")


def shipped_themes_dir() -> Path:
    return _shipped("themes")


def shipped_man_dir() -> Path:
    return _shipped("man")


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) if missing and return it."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path
