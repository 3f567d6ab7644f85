"""How tests run the installed `lcchat` command."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def lcchat_cmd() -> list[str]:
    """The console script the install put beside this Python, else `python -m lcchat`."""
    script = Path(sys.executable).parent / "lcchat"
    if script.exists():
        return [str(script)]
    found = shutil.which("lcchat")
    return [found] if found else [sys.executable, "-m", "lcchat"]
