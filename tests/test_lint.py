"""ruff, configured in pyproject.toml ([tool.ruff]), passes on the code, the tests and the
benchmarks; and the configuration catches what it is there for: an unused import, a
broad `except` that neither says why nor logs, a `# noqa` that suppresses nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_passes() -> None:
    result = ruff("lcchat", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_catches_what_it_is_configured_for(tmp_path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\n"
        "\n"
        "\n"
        "def f(g):\n"
        "    try:\n"
        "        return g()\n"
        "    except Exception:\n"
        "        return None\n"
        "\n"
        "\n"
        "X = 1  # noqa: F401 - nothing to suppress here\n"
    )
    result = ruff("--config", str(ROOT / "pyproject.toml"), str(bad), cwd=tmp_path)
    assert result.returncode == 1
    codes = {line.split(" ", 2)[1] for line in result.stdout.splitlines() if line.startswith("bad.py:")}
    assert codes == {"F401", "BLE001", "RUF100"}, result.stdout
