"""The layering rules, checked by what a fresh interpreter has imported.

The engine never imports a UI library; the store and the front-ends never import llama_cpp
(only lcchat.engine talks to llama.cpp). Each check imports every module of a package in
a new interpreter, as an installed lcchat would, and looks at sys.modules. (A KV state's
fingerprint, which needs llama.cpp's version, is the model's: engine/protocol.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

UI = ["textual", "prompt_toolkit", "rich"]

IMPORT_ALL = """
import importlib, json, pkgutil, sys
package = importlib.import_module({package!r})
for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(info.name)
{then}
print(json.dumps(sorted(m for m in {banned!r} if m in sys.modules)))
"""

def imported(package: str, banned: list[str], then: str = "") -> list[str]:
    code = IMPORT_ALL.format(package=package, banned=banned, then=then)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


def test_the_engine_imports_no_ui_library() -> None:
    assert imported("lcchat.engine", UI) == []


def test_the_store_never_imports_llama_cpp() -> None:
    assert imported("lcchat.store", ["llama_cpp", *UI]) == []


@pytest.mark.parametrize("package, banned", [
    ("lcchat.repl", ["llama_cpp", "textual"]),
    ("lcchat.tui", ["llama_cpp", "prompt_toolkit"]),
    ("lcchat.commands", ["llama_cpp", *UI]),
    ("lcchat.hub", ["llama_cpp", *UI]),
])
def test_front_ends_commands_and_hub_keep_to_their_layer(package: str, banned: list[str]) -> None:
    """No llama_cpp outside the engine; the REPL and the TUI never import each other's
    library; the shared commands and the hub import no UI library."""
    assert imported(package, banned) == []
