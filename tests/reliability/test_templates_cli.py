"""Hostile and broken chat templates in a GGUF, at the command line: the model still
loads, the chat answers with a fallback format, and -v says why. (The sandbox and the
time bound are unit-tested in tests/engine/test_templates.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import models
from tests.reliability.helpers import answered, conversations, run

CHAT = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def model_with_template(tmp_path: Path, template: str) -> Path:
    return models.write_tiny_model(tmp_path / "t.gguf", chat_template=template)


@pytest.mark.parametrize("attack", [
    "{{ cycler.__init__.__globals__.os.popen('touch MARKER').read() }}",
    "{{ self.__init__.__globals__.__builtins__.open('MARKER', 'w').write('x') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__()[0].__init__.__globals__['os'].system('touch MARKER') }}",
    "{% set o = joiner.__init__.__globals__ %}{{ o.os.system('touch MARKER') }}",
])
def test_a_template_that_tries_to_run_code_runs_none(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    model = model_with_template(tmp_path, attack.replace("MARKER", str(marker)) + CHAT)
    result = run(["-v", "-m", model, "-n", "4", "hello"])
    answered(result)
    assert not marker.exists()
    err = result.stderr.decode()
    assert "GGUF's chat template failed" in err and "falling back to ChatML" in err
    stored = conversations()[-1]
    assert [m.role for m in stored.messages] == ["user", "assistant"]


def test_a_template_with_a_syntax_error_still_loads(tmp_path: Path) -> None:
    model = model_with_template(tmp_path, "{% for m in messages %}{{ m.content }")
    quiet = run(["-m", model, "-n", "4", "hello"])
    answered(quiet)
    assert quiet.stderr == b""  # the notice is for -v
    loud = run(["-v", "-m", model, "-n", "4", "hello"])
    answered(loud)
    assert b"syntax error" in loud.stderr and b"falling back to ChatML" in loud.stderr


def test_a_slow_template_is_stopped(tmp_path: Path) -> None:
    model = model_with_template(tmp_path, "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
                                + CHAT)
    result = run(["-v", "-m", model, "-n", "4", "hello"], timeout=60)
    answered(result)
    assert b"took longer than" in result.stderr and b"was stopped" in result.stderr
