"""The layering rules, checked two ways.

The import-linter contracts in pyproject.toml ([tool.importlinter]) read every import in
the source, those inside functions too: the engine imports no UI library, front-end,
command or store, and the commands no UI library or front-end; the front-ends, the
commands and the store never import llama_cpp; the REPL and the TUI never import each
other or each other's library; nothing but the CLI imports the
composition root (lcchat.runtime) or the CLI. A test runs them, and another shows they
fail when a module reaches across (on a copy of the package with a forbidden import put in).

The other checks look at what a fresh interpreter has imported: each imports every module
of a package, as an installed lcchat would, and looks at sys.modules, which also catches a
path through a lower layer at run time. (A KV state's fingerprint, which needs llama.cpp's
version, is the model's: engine/protocol.py.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package and pyproject.toml under `root` (it puts the working
    directory first on sys.path, so that copy of lcchat is the one analysed)."""
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_are_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("path, line, source, forbidden", [
    ("lcchat/store/export.py", "import llama_cpp", "lcchat.store", "llama_cpp"),
    ("lcchat/engine/events.py", "from lcchat.tui import app", "lcchat.engine", "lcchat.tui"),
    ("lcchat/engine/chat.py", "import rich.text", "lcchat.engine", "rich"),
    ("lcchat/repl/render.py", "from llama_cpp import llama_cpp", "lcchat.repl", "llama_cpp"),
    ("lcchat/commands/ui.py", "import llama_cpp", "lcchat.commands", "llama_cpp"),
    ("lcchat/tui/panels.py", "import prompt_toolkit", "lcchat.tui", "prompt_toolkit"),
    ("lcchat/repl/toolbar.py", "from lcchat.tui import themes", "lcchat.repl", "lcchat.tui"),
    ("lcchat/commands/builtin.py", "from textual.app import App", "lcchat.commands", "textual"),
    ("lcchat/doctor.py", "from lcchat.cli import main", "lcchat.doctor", "lcchat.cli"),
    ("lcchat/tui/themes.py", "from lcchat.runtime import Run", "lcchat.tui", "lcchat.runtime"),
])
def test_a_module_reaching_across_breaks_a_contract(tmp_path, path: str, line: str, source: str,
                                                    forbidden: str) -> None:
    """The import goes inside a function, where only the linter sees it before it runs."""
    shutil.copytree(ROOT / "lcchat", tmp_path / "lcchat", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    module = tmp_path / path
    module.write_text(module.read_text(encoding="utf-8") + f"\n\ndef _reach_across():\n    {line}\n",
                      encoding="utf-8")
    result = lint_imports(tmp_path)
    said = result.stdout + result.stderr
    assert result.returncode == 1 and "0 broken" not in said, said
    assert f"{source} is not allowed to import {forbidden}" in said, said
    assert f"{path.removesuffix('.py').replace('/', '.')} -> " in said, said  # the module that reached across

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
