"""What cli.py decides, with lcchat.cli.main run in this process (tests/clirun.py).

tests/test_cli.py runs the installed command as a person does; these call main() itself
so that a change to cli.py (a mutant, benchmarks/mutation.py) is seen. No model is loaded
(the fake model answers) and the REPL and the TUI are stand-ins that record which one was
started and with what.
"""

from __future__ import annotations

import json
import logging

import pytest

from lcchat.usage import UsageParser

from tests.clirun import Cli


@pytest.fixture
def cli(monkeypatch, tmp_path) -> Cli:
    return Cli(monkeypatch, tmp_path)


@pytest.fixture
def model(tmp_path):
    """A path for -m: open_session is the fake's, so the file only has to exist."""
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    return str(path)


def usage_error(result) -> str:
    assert result.status == 2, (result.status, result.err)
    assert result.out == "" and not result.opened and not result.started
    return result.err_line()


# ---------------------------------------------------------------- pipe and one-shot


def test_a_prompt_is_answered_on_stdout_alone(cli, model) -> None:
    cli.replies = [["Hel", "lo"]]
    r = cli("-m", model, "what", "is", "this?")
    assert (r.status, r.out, r.err) == (0, "Hello\n", "")
    assert [m.content for m in r.sessions[0].conversation.messages] == ["what is this?", "Hello"]
    assert not r.started


def test_piped_stdin_is_the_context_of_the_prompt(cli, model) -> None:
    r = cli("-m", model, "Summarise", stdin=b"notes\nmore notes\n")
    assert r.status == 0, r.err
    assert r.sessions[0].conversation.messages[0].content == "notes\nmore notes\n\nSummarise"


def test_piped_stdin_alone_is_the_message(cli, model) -> None:
    r = cli("-m", model, stdin=b"caf\xe9 only stdin\n")
    assert r.status == 0, r.err
    assert r.sessions[0].conversation.messages[0].content == "caf\ufffd only stdin"


def test_stdin_on_a_terminal_is_not_read_with_a_prompt(cli, model) -> None:
    r = cli("-m", model, "q", stdin=b"typed ahead\n", stdin_tty=True)
    assert r.status == 0, r.err
    assert r.sessions[0].conversation.messages[0].content == "q"


def test_no_stdin_at_all_with_a_prompt_answers_it(cli, model) -> None:
    r = cli("-m", model, "q", stdin=None)
    assert r.status == 0, r.err
    assert r.sessions[0].conversation.messages[0].content == "q"


def test_nothing_to_answer_is_a_usage_error(cli, model) -> None:
    r = cli("-m", model, stdin=b"\n  \n")
    assert r.status == 2 and r.out == ""
    assert r.err_line() == "lcchat: nothing to answer: give a PROMPT or pipe text on stdin"


def test_json_prints_one_object(cli, model) -> None:
    cli.replies = [["Hi", " there"]]
    r = cli("-m", model, "--json", "q")
    assert r.status == 0, r.err
    data = json.loads(r.out)
    assert data["text"] == "Hi there" and data["finish_reason"] == "stop"


def test_show_prompt_prints_the_prompt_instead_of_answering(cli, model) -> None:
    r = cli("-m", model, "--show-prompt", "the question")
    assert r.status == 0, r.err
    assert "<|im_start|>user\nthe question<|im_end|>" in r.out or "the question" in r.out
    assert "tokens" in r.out
    assert [m.role for m in r.sessions[0].conversation.messages] == []  # nothing was answered


def test_verbose_reaches_pipe_mode(cli, model) -> None:
    cli.replies = [["x"]]
    quiet = cli("-m", model, "q")
    loud = cli("-v", "-m", model, "q")
    assert quiet.err == "" and loud.status == 0
    assert "tokens" in loud.err  # pipe mode prints its stats with -v


def test_reasoning_goes_to_stderr_with_the_flag(cli, model, tmp_path) -> None:
    prof = tmp_path / "think.toml"
    prof.write_text(f'extends = "default"\n[model]\npath = "{model}"\n[chat]\nreasoning = ["<think>", "</think>"]\n')
    cli.replies = [["<think>", "hmm", "</think>", "Yes"], ["<think>", "hmm", "</think>", "Yes"]]
    plain = cli("-p", str(prof), "q")
    shown = cli("-p", str(prof), "--reasoning", "q")
    assert plain.status == shown.status == 0, (plain.err, shown.err)
    assert plain.out.strip() == shown.out.strip() == "Yes"
    assert "hmm" not in plain.err and "hmm" in shown.err


def test_text_that_stdout_cannot_encode_is_replaced_not_fatal(cli, model) -> None:
    cli.replies = [["caf\u00e9 \u2014 ok"]]
    r = cli("-m", model, "q", encoding="ascii")
    assert r.status == 0, r.err
    assert r.out == "caf? ? ok\n"


# ---------------------------------------------------------------- interactive


def test_a_terminal_and_no_prompt_starts_the_tui(cli) -> None:
    r = cli(stdin_tty=True, stdout_tty=True)
    assert r.status == 0, r.err
    assert [s.mode for s in r.started] == ["tui"]
    assert r.started[0].profile.name == "smollm2"  # the default profile
    assert r.started[0].recorder is not None and not r.started[0].verbose


@pytest.mark.parametrize("argv, term, size, stdout_tty, mode", [
    ((), "xterm", (80, 24), True, "tui"),
    ((), "xterm", (60, 16), True, "tui"),  # the smallest the TUI takes
    ((), "xterm", (59, 40), True, "repl"),
    ((), "xterm", (200, 15), True, "repl"),
    ((), "dumb", (200, 60), True, "repl"),
    ((), "unknown", (200, 60), True, "repl"),
    ((), "", (200, 60), True, "repl"),
    ((), "xterm", (80, 24), False, "repl"),  # stdout redirected: no size to read
    (("--repl",), "xterm", (200, 60), True, "repl"),
    (("--tui",), "dumb", (20, 5), False, "tui"),
])
def test_the_front_end_follows_the_terminal(cli, monkeypatch, argv, term, size, stdout_tty, mode) -> None:
    monkeypatch.setenv("TERM", term)
    cli.size = size
    r = cli(*argv, stdin_tty=True, stdout_tty=stdout_tty)
    assert r.status == 0, r.err
    assert [s.mode for s in r.started] == [mode]


@pytest.mark.parametrize("argv, term, size, mode", [
    ((), "xterm", (80, 24), "tui"),
    ((), "xterm", (59, 24), "repl"),
    ((), "dumb", (80, 24), "repl"),
    (("--repl",), "xterm", (80, 24), "repl"),
    (("--tui",), "dumb", (20, 5), "tui"),
    ((), "xterm", None, "repl"),  # no size to read: stdout is not a terminal
])
def test_choose_mode_names_the_front_end(cli, monkeypatch, argv, term, size, mode) -> None:
    """choose_mode's own answer (Run.interactive takes anything but "tui" as the REPL), with
    the terminal given as arguments, which win over $TERM and the real size."""
    from lcchat import cli as cli_module

    monkeypatch.setenv("TERM", "xterm" if term == "dumb" else "dumb")
    cli.size = None
    args = cli_module.build_parser().parse_args(list(argv))
    assert cli_module.choose_mode(args, term=term, size=size) == mode


def test_no_term_at_all_means_the_repl(cli, monkeypatch) -> None:
    monkeypatch.delenv("TERM")
    r = cli(stdin_tty=True, stdout_tty=True)
    assert [s.mode for s in r.started] == ["repl"]


def test_a_tui_that_cannot_be_imported_means_the_repl(cli, monkeypatch) -> None:
    import sys

    import lcchat.tui

    monkeypatch.setitem(sys.modules, "lcchat.tui.app", None)  # import lcchat.tui.app raises ImportError
    monkeypatch.delattr(lcchat.tui, "app", raising=False)
    r = cli(stdin_tty=True, stdout_tty=True)
    assert [s.mode for s in r.started] == ["repl"]


def test_choose_mode_names_the_repl_when_the_tui_cannot_be_imported(cli, monkeypatch) -> None:
    import sys

    import lcchat.tui
    from lcchat import cli as cli_module

    args = cli_module.build_parser().parse_args([])
    assert cli_module.choose_mode(args, term="xterm", size=(80, 24)) == "tui"
    monkeypatch.setitem(sys.modules, "lcchat.tui.app", None)
    monkeypatch.delattr(lcchat.tui, "app", raising=False)
    assert cli_module.choose_mode(args, term="xterm", size=(80, 24)) == "repl"


def test_tui_and_repl_flags_exclude_each_other(cli) -> None:
    line = usage_error(cli("--tui", "--repl", stdin_tty=True, stdout_tty=True))
    assert line.startswith("lcchat: argument --repl: not allowed with argument --tui")


def test_no_stdin_and_no_prompt_is_interactive(cli) -> None:
    r = cli(stdin=None, stdout_tty=True)
    assert r.status == 0, r.err
    assert [s.mode for s in r.started] == ["tui"]


def test_the_front_end_s_status_is_the_exit_status(cli) -> None:
    cli.status = 130
    assert cli(stdin_tty=True, stdout_tty=True).status == 130


def test_verbose_and_theme_reach_the_front_end(cli, tmp_path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text('extends = "smollm2"\n[ui]\ntheme = "light"\n')
    r = cli("-p", str(prof), "--debug", "--theme", "high-contrast", stdin_tty=True, stdout_tty=True)
    assert r.started[0].verbose and r.started[0].profile.ui.theme == "high-contrast"
    r = cli("-p", str(prof), stdin_tty=True, stdout_tty=True)
    assert not r.started[0].verbose and r.started[0].profile.ui.theme == "light"


@pytest.mark.parametrize("argv", [("history", "of", "Rome"), ("doctor", "the", "patient"),
                                  ("models", "are", "great")])
def test_a_question_that_starts_with_a_command_name_is_told_how_to_ask_it(cli, argv) -> None:
    """`lcchat history of Rome` runs the history command (its first word is the command's
    name): its usage error says how to ask the question instead, on the same line."""
    r = cli(*argv)
    line = r.err_line()
    assert r.status == 2 and not r.runs and line.startswith(f"lcchat {argv[0]}: ")
    assert line.endswith(f"(see lcchat {argv[0]} --help); to ask it as a question, quote it: "
                         f"lcchat '{' '.join(argv)}'")


def test_a_command_s_own_usage_error_has_no_such_note(cli) -> None:
    r = cli("history", "show", "--bogus")
    assert r.status == 2 and "quote it" not in r.err_line()
    assert UsageParser.note == ""


@pytest.mark.parametrize("flags, said", [
    (("--json", "--show-prompt"), "--json and --show-prompt do not go together: --show-prompt prints the prompt, "
                                  "not a reply"),
    (("--save-state", "--no-history"), "--save-state keeps the KV state with the saved conversation, and "
                                       "--no-history saves nothing: drop one of them"),
])
def test_flags_that_contradict_each_other_are_refused(cli, flags, said) -> None:
    """Before, one of each pair was silently ignored: no JSON, or no state kept."""
    r = cli(*flags, "a question")
    assert r.status == 2 and r.err_line() == f"lcchat: {said}" and not r.runs and r.out == ""


@pytest.mark.parametrize("flag", ["--json", "--show-prompt"])
def test_one_shot_flags_need_a_prompt(cli, flag) -> None:
    r = cli(flag, stdin_tty=True, stdout_tty=True)
    assert r.status == 2 and not r.started
    assert r.err_line() == f"lcchat: {flag} needs a PROMPT or piped stdin"


# ---------------------------------------------------------------- flags into the profile


@pytest.mark.parametrize("flags, section, key, value", [
    (["-c", "300"], "model", "n_ctx", 300),
    (["--n-ctx", "301"], "model", "n_ctx", 301),
    (["-t", "3"], "model", "n_threads", 3),
    (["-tb", "5"], "model", "n_threads_batch", 5),
    (["-b", "64"], "model", "n_batch", 64),
    (["-fa", "on"], "model", "flash_attn", True),
    (["-fa", "off"], "model", "flash_attn", False),
    (["-fa", "auto"], "model", "flash_attn", "auto"),
    (["-ctk", "q8_0"], "model", "cache_type_k", "q8_0"),
    (["-ctv", "q4_0", "-fa", "on"], "model", "cache_type_v", "q4_0"),
    (["-ngl", "-1"], "model", "n_gpu_layers", -1),
    (["--temp", "0.25"], "sampling", "temperature", 0.25),
    (["--top-p", "0.5"], "sampling", "top_p", 0.5),
    (["--top-k", "7"], "sampling", "top_k", 7),
    (["--min-p", "0.1"], "sampling", "min_p", 0.1),
    (["--repeat-penalty", "1.3"], "sampling", "repeat_penalty", 1.3),
    (["--seed", "42"], "sampling", "seed", 42),
    (["-n", "9"], "sampling", "max_tokens", 9),
    (["--system", "Be brief."], "chat", "system", "Be brief."),
    (["--rope-freq-base", "20000"], "rope", "freq_base", 20000.0),
    (["--rope-freq-scale", "0.5"], "rope", "freq_scale", 0.5),
    (["--rope-scaling", "yarn"], "rope", "scaling", "yarn"),
    (["--think"], "chat", "thinking", True),
    (["--no-think"], "chat", "thinking", False),
    (["--spec", "lookup"], "speculative", "mode", "lookup"),
])
def test_each_flag_reaches_its_profile_key(cli, model, flags, section, key, value) -> None:
    r = cli("-m", model, *flags, "q")
    assert r.status == 0, r.err
    assert getattr(getattr(r.opened[0], section), key) == value


def test_model_flag_and_remote_flag_reach_the_profile(cli, model) -> None:
    r = cli("-m", model, "q")
    assert r.opened[0].model.path == model
    r = cli("--remote", "http://127.0.0.1:9/", "q")
    assert r.status == 0, r.err
    assert r.opened[0].backend.url == "http://127.0.0.1:9/"


def test_draft_flag_reaches_the_profile(cli, model) -> None:
    r = cli("-m", model, "--spec", "draft", "--draft", model, "q")
    assert r.status == 0, r.err
    assert r.opened[0].speculative.draft == model


def test_the_profile_is_smollm2_by_default_default_with_a_model_or_the_one_named(cli, model, tmp_path) -> None:
    assert cli("q").opened[0].name == "smollm2"
    assert cli("-m", model, "q").opened[0].name == "default"
    prof = tmp_path / "mine.toml"
    prof.write_text(f'[model]\npath = "{model}"\n')
    assert cli("--profile", str(prof), "q").opened[0].source == prof


def test_flags_win_over_the_profile_and_unset_flags_keep_it(cli, model, tmp_path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{model}"\n[chat]\nsystem = "from the profile"\n'
                    '[sampling]\ntemperature = 0.5\ntop_k = 7\n')
    r = cli("-p", str(prof), "--system", "from the flag", "--temp", "0", "q")
    assert r.opened[0].chat.system == "from the flag"
    assert r.opened[0].sampling.temperature == 0.0 and r.opened[0].sampling.top_k == 7
    assert r.sessions[0].conversation.system == "from the flag"
    r = cli("-p", str(prof), "q")
    assert r.opened[0].chat.system == "from the profile" and r.opened[0].sampling.temperature == 0.5


def test_chat_format_wins_over_the_profile_s_template(cli, model, tmp_path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{model}"\n[chat]\ntemplate = "{{{{ messages }}}}"\n')
    r = cli("-p", str(prof), "q")
    assert r.opened[0].chat.template == "{{ messages }}" and r.opened[0].chat.format == ""
    r = cli("-p", str(prof), "--chat-format", "llama-2", "q")
    assert r.opened[0].chat.template == "" and r.opened[0].chat.format == "llama-2"


def test_stop_flags_are_added_to_the_profile_s_and_end_the_reply(cli, model, tmp_path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{model}"\n[chat]\nstop = ["###"]\n')
    cli.replies = [["one ", "END", " two"]]
    r = cli("-p", str(prof), "--stop", "END", "--stop", "</s>", "q")
    assert r.opened[0].chat.stop == ["###", "END", "</s>"]
    assert (r.status, r.out) == (0, "one \n")
    cli.replies = [["one ", "END", " two"]]
    r = cli("-p", str(prof), "q")
    assert r.opened[0].chat.stop == ["###"] and r.out == "one END two\n"


# ---------------------------------------------------------------- bad input: exit 2, one line


@pytest.mark.parametrize("argv, expected", [
    (["--temp", "hot", "q"], "lcchat: argument --temp/--temperature: invalid float value: 'hot' (see lcchat --help)"),
    (["-c", "big", "q"], "lcchat: argument -c/--ctx/--n-ctx: invalid int value: 'big' (see lcchat --help)"),
    (["--top-k", "1.5", "q"], "lcchat: argument --top-k: invalid int value: '1.5' (see lcchat --help)"),
    (["-fa", "maybe", "q"], "lcchat: argument -fa/--flash-attn: invalid choice: 'maybe' "
                            "(choose from 'on', 'off', 'auto') (see lcchat --help)"),
    (["--spec", "fast", "q"], "lcchat: argument --spec: invalid choice: 'fast' "
                              "(choose from 'off', 'lookup', 'draft', 'auto') (see lcchat --help)"),
    (["--rope-scaling", "big", "q"], "lcchat: argument --rope-scaling: invalid choice: 'big' "
                                     "(choose from 'auto', 'none', 'linear', 'yarn', 'ntk') (see lcchat --help)"),
    (["--stop"], "lcchat: argument --stop: expected one argument (see lcchat --help)"),
    (["--tmep", "0", "q"], "lcchat: unrecognized arguments: --tmep (see lcchat --help); did you mean --temp?"),
])
def test_a_bad_flag_is_one_line_and_exit_2(cli, argv, expected) -> None:
    line = usage_error(cli(*argv))
    assert line in (expected, expected.replace(" (see lcchat --help); did you mean --temp?",
                                               "; did you mean --temp? (see lcchat --help)"))


@pytest.mark.parametrize("argv, words", [
    (["-p", "no-such-profile", "q"], "no-such-profile"),
    (["-c", "-5", "q"], "model.n_ctx"),
    (["--temp", "-1", "q"], "sampling.temperature"),
    (["-t", "-2", "q"], "lcchat: command line: model.n_threads: must be at least 0, not -2"),
    (["-ctk", "bogus", "q"], "lcchat: command line: model.cache_type_k: 'bogus' is not one of"),
    (["--top-p", "2", "q"], "lcchat: command line: sampling.top_p: must be at most 1, not 2.0"),
])
def test_a_bad_value_is_one_line_and_exit_2(cli, model, argv, words) -> None:
    r = cli("-m", model, *argv)
    assert r.status == 2 and r.out == "" and not r.sessions
    line = r.err_line()
    assert line.startswith("lcchat: ") and words in line


def test_continuing_a_conversation_that_does_not_exist_is_exit_2(cli, model) -> None:
    r = cli("-m", model, "-C", "42", "q")
    assert r.status == 2 and not r.opened
    assert "42" in r.err_line()


def test_continue_reaches_the_run_and_the_conversation_goes_on(cli, model) -> None:
    cli.replies = [["first"]]
    assert cli("-m", model, "one").status == 0
    cli.replies = [["second"]]
    r = cli("-m", model, "-C", "go", "on")
    assert r.status == 0, r.err
    assert [m.content for m in r.sessions[0].conversation.messages] == ["one", "first", "go on", "second"]
    cli.replies = [["third"]]
    r = cli("-m", model, "--continue=1", "again")
    assert [m.content for m in r.sessions[0].conversation.messages][-2:] == ["again", "third"]


def test_the_run_is_made_with_what_the_flags_say(cli, model, monkeypatch) -> None:
    one = cli("-m", model, "q").runs[0]
    assert (one.recording.interactive, one.recording.keep_state, one.recording.record) == (False, False, True)
    assert one.signals.mode == "pipe"
    kept = cli("-m", model, "--save-state", "q").runs[0]
    assert kept.recording.keep_state and kept.recording.record
    with monkeypatch.context() as env:  # history off by the environment: what it opts out of wins
        env.setenv("LCCHAT_NO_HISTORY", "1")
        none = cli("-m", model, "--save-state", "q").runs[0]
    assert not none.recording.record and not none.recording.keep_state
    chat = cli("-m", model, stdin_tty=True, stdout_tty=True).runs[0]
    assert chat.recording.interactive and chat.recording.keep_state and chat.signals.mode == "interactive"


def test_main_reads_sys_argv_when_given_no_arguments(cli, tmp_path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('description = "fine"\n')
    r = cli("profiles", "check", str(good), from_sys_argv=True)
    assert (r.status, r.out) == (0, f"{good}: ok (fine)\n")
    r = cli("-v", "--tmep", from_sys_argv=True)
    assert r.status == 2 and "--tmep" in r.err_line()


def test_no_history_stores_nothing(cli, model) -> None:
    from lcchat.store.db import Store

    cli.replies = [["kept"]]
    assert cli("-m", model, "--no-history", "q").status == 0
    assert Store().ids() == []
    assert cli("-m", model, "q").status == 0
    assert len(Store().ids()) == 1


# ---------------------------------------------------------------- failures: 1, Ctrl+C: 130


def test_ctrl_c_is_exit_130_and_a_newline(cli, model) -> None:
    cli.open_error = KeyboardInterrupt()
    r = cli("-m", model, "q")
    assert (r.status, r.out, r.err) == (130, "", "\n")


def test_a_closed_stdout_is_a_quiet_exit_0(cli, model) -> None:
    cli.open_error = BrokenPipeError()
    r = cli("-m", model, "q")
    assert (r.status, r.err) == (0, "")


def test_a_failure_is_one_line_and_exit_1(cli, model) -> None:
    from lcchat.errors import LcchatError

    cli.open_error = LcchatError("the server went away")
    r = cli("-m", model, "q")
    assert (r.status, r.err) == (1, "lcchat: the server went away\n")


def test_an_unexpected_error_is_one_line_and_a_traceback_only_with_v(cli, model) -> None:
    cli.open_error = RuntimeError("boom")
    r = cli("-m", model, "q")
    assert (r.status, r.err) == (1, "lcchat: internal error: RuntimeError: boom (run with -v for details)\n")
    for flag in ("-v", "--verbose", "--debug"):
        r = cli(flag, "-m", model, "q")
        assert r.status == 1
        assert r.err.startswith("Traceback (most recent call last):") and "RuntimeError: boom" in r.err
        assert r.err.endswith("lcchat: internal error: RuntimeError: boom (run with -v for details)\n")


def test_llama_cpp_s_log_shows_only_with_v_and_cleaned(cli, model) -> None:
    def log(_profile) -> None:
        logging.getLogger("lcchat.llama").warning("llama says \x1b[2J hi")
        logging.getLogger("lcchat.engine").debug("a debug line")
        logging.getLogger("lcchat.engine").warning("a warning line")

    def log_elsewhere(profile) -> None:
        log(profile)
        logging.getLogger("some.library").debug("another library's debug line")

    from lcchat.textsafe import clean

    cli.on_open = log
    quiet = cli("-m", model, "q")
    assert quiet.status == 0 and quiet.err == ""
    cli.on_open = log_elsewhere
    loud = cli("-v", "-m", model, "q")
    assert loud.status == 0, loud.err
    lines = loud.err.splitlines()
    assert clean("llama says \x1b[2J hi") in lines and "\x1b" not in loud.err
    assert "a debug line" in lines and "a warning line" in lines
    assert "another library" not in loud.err  # -v shows lcchat's log, not every library's


def test_without_v_llama_s_log_is_dropped_and_lcchat_s_errors_kept(cli, model) -> None:
    """Checked on the loggers themselves: under pytest, records that reach the root logger
    go to pytest's capture, not to stderr."""
    seen = {}

    def look(_profile) -> None:
        llama, lcchat = logging.getLogger("lcchat.llama"), logging.getLogger("lcchat")
        seen["llama"] = (llama.propagate, llama.isEnabledFor(logging.CRITICAL),
                         [type(h).__name__ for h in llama.handlers])
        seen["lcchat"] = (lcchat.isEnabledFor(logging.WARNING), lcchat.isEnabledFor(logging.ERROR))

    def look_at_root(profile) -> None:
        look(profile)
        seen["root"] = logging.getLogger().level

    root_level = logging.getLogger().level
    cli.on_open = look_at_root
    assert cli("-m", model, "q").status == 0
    assert seen["llama"] == (False, False, ["NullHandler"])
    assert seen["lcchat"] == (False, True)
    assert seen["root"] == root_level  # other libraries' warnings are not lcchat's to hide


def test_the_clean_formatter_cleans_a_traceback_too() -> None:
    from lcchat.cli import CleanFormatter

    try:
        raise ValueError("bad \x1b]0;title\x07 value")
    except ValueError:
        import sys

        record = logging.LogRecord("lcchat", logging.ERROR, __file__, 1, "failed \x1b[31m", None, sys.exc_info())
    text = CleanFormatter("%(message)s").format(record)
    assert text.startswith("failed ") and "ValueError: bad" in text
    assert "\x1b" not in text and "\x07" not in text


# ---------------------------------------------------------------- -C and its ID


@pytest.mark.parametrize("argv, expected", [
    (["-C", "12", "hi"], ["--continue=12", "hi"]),
    (["-C", "#12"], ["--continue=12"]),
    (["--continue", "7", "x"], ["--continue=7", "x"]),
    (["-C", "go on"], ["--continue=", "go on"]),
    (["-C", "²"], ["--continue=", "²"]),
    (["hi", "-C"], ["hi", "--continue="]),
    (["-C"], ["--continue="]),
    (["--continue=name", "x"], ["--continue=name", "x"]),
    (["-v", "--", "-C", "5"], ["-v", "--", "-C", "5"]),
    (["a", "--", "b"], ["a", "--", "b"]),
    (["-C", "3", "-C", "4"], ["--continue=3", "--continue=4"]),
    ([], []),
])
def test_split_continue_takes_an_id_only_when_the_next_word_is_one(argv, expected) -> None:
    from lcchat.cli import split_continue

    assert split_continue(argv) == expected


# ---------------------------------------------------------------- subcommands and documentation


@pytest.mark.parametrize("name, target", [
    ("history", "lcchat.store.cli.main"),
    ("quant", "lcchat.quantcli.main"),
    ("doctor", "lcchat.doctor.main"),
    ("pull", "lcchat.hub.pull.main"),
    ("models", "lcchat.hub.models.main"),
    ("profiles", "lcchat.cli.cmd_profiles"),
])
def test_a_subcommand_gets_the_other_arguments(cli, monkeypatch, name, target) -> None:
    seen = []
    monkeypatch.setattr(target, lambda argv: seen.append(argv) or 5)
    assert cli(name, "a", "-x").status == 5
    assert cli("-v", name, "b").status == 5
    assert cli("--verbose", name, "c").status == 5
    assert cli("--debug", name, "d").status == 5
    assert seen == [["a", "-x"], ["-v", "b"], ["--verbose", "c"], ["--debug", "d"]]


def test_a_subcommand_name_after_a_flag_is_a_prompt(cli, model, monkeypatch) -> None:
    monkeypatch.setattr("lcchat.doctor.main", lambda argv: pytest.fail("doctor ran"))
    r = cli("-m", model, "doctor")
    assert r.status == 0 and r.sessions[0].conversation.messages[0].content == "doctor"


def test_help_and_version_exit_0(cli) -> None:
    from lcchat import __version__

    r = cli("--help")
    assert r.status == 0 and r.out.startswith("usage: lcchat ") and "--profile" in r.out
    r = cli("--version")
    assert (r.status, r.out) == (0, f"lcchat {__version__}\n")


def test_man_shows_the_manual_page(cli) -> None:
    r = cli("--man")
    assert r.status == 0, r.err
    assert "lcchat" in r.out and "--chat-format" in r.out and not r.opened


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_script(cli, shell) -> None:
    from lcchat import cli as cli_module
    from lcchat import completion

    r = cli("--completion", shell)
    assert r.status == 0 and not r.opened
    assert r.out == completion.script(shell, cli_module.build_parser())


@pytest.mark.parametrize("kind", ["profiles", "themes"])
def test_list_names_prints_one_a_line(cli, kind) -> None:
    from lcchat import completion

    r = cli("--list-names", kind)
    assert r.status == 0 and not r.opened
    assert r.out == "\n".join(completion.names(kind)) + "\n"
    assert ("smollm2" if kind == "profiles" else "high-contrast") in r.out.splitlines()


# ---------------------------------------------------------------- the model is on the Hub but not here


@pytest.fixture
def hub_profile(tmp_path):
    prof = tmp_path / "hub.toml"
    prof.write_text('[model]\nsource = "hf://someone/tiny-GGUF"\nfile = ["tiny.Q4_0.gguf"]\n')
    return str(prof)


def test_a_model_not_downloaded_says_how_to_pull_it(cli, hub_profile) -> None:
    r = cli("-p", hub_profile, "q")
    assert r.status == 2 and not r.opened
    assert "lcchat pull" in r.err_line()


def test_a_model_not_downloaded_is_offered_on_a_terminal_only(cli, monkeypatch, hub_profile) -> None:
    offered = []
    monkeypatch.setattr("lcchat.hub.pull.offer",
                        lambda profile, missing: offered.append((profile.model.source, missing.command)))
    r = cli("-p", hub_profile, stdin_tty=True, stdout_tty=True, stderr_tty=True)
    assert r.status == 0 and len(offered) == 1
    assert offered[0][0] == "hf://someone/tiny-GGUF" and "lcchat pull" in offered[0][1]
    assert [s.mode for s in r.started] == ["tui"]
    for kwargs in ({"stdin_tty": True, "stdout_tty": True}, {"stdin": b"q", "stderr_tty": True}):
        r = cli("-p", hub_profile, **kwargs)
        assert r.status == 2 and "lcchat pull" in r.err_line()
    assert len(offered) == 1


@pytest.mark.parametrize("flag", ["--json", "--show-prompt"])
def test_a_one_shot_flag_without_a_prompt_is_refused_before_a_download_is_offered(cli, monkeypatch, hub_profile,
                                                                                 flag) -> None:
    monkeypatch.setattr("lcchat.hub.pull.offer", lambda profile, missing: pytest.fail("offered"))
    r = cli("-p", hub_profile, flag, stdin_tty=True, stdout_tty=True, stderr_tty=True)
    assert r.status == 2 and r.err_line() == f"lcchat: {flag} needs a PROMPT or piped stdin"
    assert not r.runs


def test_a_model_not_downloaded_is_not_offered_without_a_terminal_to_answer_on(cli, monkeypatch, hub_profile) -> None:
    monkeypatch.setattr("lcchat.hub.pull.offer", lambda profile, missing: pytest.fail("offered"))
    for argv, kwargs in ((["q"], {"stdin_tty": True, "stderr_tty": True}),  # a prompt: one answer
                         ([], {"stdin": None, "stderr_tty": True})):  # no stdin to answer on
        r = cli("-p", hub_profile, *argv, **kwargs)
        assert r.status == 2 and "lcchat pull" in r.err_line()


def test_a_missing_model_file_fails_where_the_model_is_opened(cli, tmp_path) -> None:
    r = cli("-m", str(tmp_path / "missing.gguf"), "q")
    assert r.status == 0 and len(r.opened) == 1  # the fake opens anything: the check is the engine's


def test_a_remote_profile_needs_no_model_file(cli, hub_profile) -> None:
    r = cli("-p", hub_profile, "--remote", "http://127.0.0.1:9", "q")
    assert r.status == 0, r.err


# ---------------------------------------------------------------- lcchat profiles


def test_profiles_list_shows_each_with_its_description_and_the_broken_ones(cli, monkeypatch, tmp_path) -> None:
    from lcchat import paths

    mine = paths.config_dir() / "profiles"
    mine.mkdir(parents=True)
    (mine / "broken.toml").write_text("[sampling]\ntemperature = 'warm'\n")
    (mine / "nice.toml").write_text('description = "my nice one"\n')
    r = cli("profiles", "list")
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert any(line.split() == ["nice", "my", "nice", "one"] for line in lines), r.out
    broken = next(line for line in lines if line.startswith("broken "))
    assert "(broken: " in broken and "sampling.temperature" in broken
    assert any(line.startswith("smollm2 ") and "SmolLM2" in line for line in lines)


def test_profiles_show_prints_the_resolved_profile_and_its_model(cli, tmp_path) -> None:
    from tests import models

    gguf = models.write_tiny_model(tmp_path / "tiny.gguf")
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{gguf}"\nn_ctx = 256\n')
    r = cli("profiles", "show", str(prof))
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == f"# profile {prof} from {prof}"
    assert lines[1] == f"# model file: {gguf}"
    assert lines[2].startswith("# llama, ") and lines[2].endswith("tokens; n_ctx 256")
    assert "trained to " in lines[2]
    assert lines[3].startswith("# rope: ")
    assert "[sampling]" in lines and "n_ctx = 256" in lines
    assert r.out.endswith("\n") and not r.out.endswith("\n\n")


def test_profiles_show_takes_the_model_s_context_when_the_profile_gives_none(cli, tmp_path) -> None:
    from tests import models

    gguf = models.write_tiny_model(tmp_path / "tiny.gguf", n_ctx_train=1024)
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{gguf}"\nn_ctx = 0\n')
    r = cli("profiles", "show", str(prof))
    assert "trained to 1024 tokens; n_ctx 1024" in r.out, r.out


def test_profiles_show_with_rope_warnings(cli, tmp_path) -> None:
    from tests import models

    gguf = models.write_tiny_model(tmp_path / "tiny.gguf", n_ctx_train=1024)
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{gguf}"\nn_ctx = 8192\n[rope]\nscaling = "none"\n')
    r = cli("profiles", "show", str(prof))
    assert r.status == 0, r.err
    assert any(line.startswith("# warning: ") for line in r.out.splitlines()), r.out


def test_profiles_show_says_what_is_wrong_with_the_model(cli, tmp_path) -> None:
    prof = tmp_path / "p.toml"
    prof.write_text(f'[model]\npath = "{tmp_path / "none.gguf"}"\n')
    r = cli("profiles", "show", str(prof))
    assert r.status == 0, r.err
    assert r.out.splitlines()[1] == f"# model file: {tmp_path / 'none.gguf'}"
    prof.write_text('[model]\npath = ""\n')
    line = cli("profiles", "show", str(prof)).out.splitlines()[1]
    assert line.startswith("# model: ") and "-m" in line, line
    bad = tmp_path / "bad.gguf"
    bad.write_text("not a model\n" * 10)
    prof.write_text(f'[model]\npath = "{bad}"\n')
    lines = cli("profiles", "show", str(prof)).out.splitlines()
    assert lines[1] == f"# model file: {bad}"
    assert lines[2].startswith("# model check: ") and "GGUF" in lines[2]
    assert lines[3] == "[model]" or lines[3].startswith(("[", "description", "extends", "name"))


def test_profiles_check_says_ok_with_the_description(cli, tmp_path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('description = "fine"\n[sampling]\ntop_k = 5\n')
    r = cli("profiles", "check", str(good))
    assert (r.status, r.out) == (0, f"{good}: ok (fine)\n")
    plain = tmp_path / "plain.toml"
    plain.write_text("[sampling]\ntop_k = 5\n")
    assert cli("profiles", "check", str(plain)).out == f"{plain}: ok (no description)\n"


def test_profiles_check_expands_the_home_directory(cli, tmp_path) -> None:
    import os

    (tmp_path / "home" / "p.toml").write_text('description = "at home"\n')
    assert os.environ["HOME"] == str(tmp_path / "home")
    r = cli("profiles", "check", "~/p.toml")
    assert (r.status, r.out) == (0, "~/p.toml: ok (at home)\n")


def test_profiles_check_of_a_bad_file_is_one_line_and_exit_2(cli, tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[sampling]\ntop_kk = 5\n")
    r = cli("profiles", "check", str(bad))
    assert r.status == 2 and r.out == ""
    assert "did you mean sampling.top_k" in r.err_line()


def test_profiles_import_passes_the_file_the_name_and_force(cli, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr("lcchat.config.importers.import_profile",
                        lambda path, *, name, force: seen.append((path, name, force)) or 0)
    assert cli("profiles", "import", "~/Modelfile").status == 0
    assert cli("profiles", "import", "x.json", "-o", "mine", "--force").status == 0
    from pathlib import Path

    assert seen == [(Path("~/Modelfile").expanduser(), None, False), (Path("x.json"), "mine", True)]


def test_profiles_import_makes_a_profile(cli, tmp_path) -> None:
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM ./m.gguf\nPARAMETER temperature 0.3\nSYSTEM Be brief.\n")
    r = cli("profiles", "import", str(modelfile), "-o", "imported")
    assert r.status == 0, r.err
    shown = cli("profiles", "show", "imported")
    assert shown.status == 0 and "temperature = 0.3" in shown.out


@pytest.mark.parametrize("argv, words", [
    (["profiles"], "the following arguments are required"),
    (["profiles", "frob"], "invalid choice: 'frob'"),
    (["profiles", "show"], "the following arguments are required: NAME"),
    (["profiles", "check"], "the following arguments are required: FILE"),
    (["profiles", "show", "no-such-profile"], "no-such-profile"),
])
def test_profiles_bad_input_is_one_line_and_exit_2(cli, argv, words) -> None:
    r = cli(*argv)
    assert r.status == 2 and words in r.err_line()
    assert r.err_line().startswith(("lcchat profiles", "lcchat: ", "lcchat profiles show:")) or "lcchat" in r.err_line()


# ---------------------------------------------------------------- the interface


def test_the_flags_are_the_reviewed_ones() -> None:
    """Each flag's names, metavar, help, type, choices and default, and each group and
    subcommand, are what tests/cli_interface.json holds: --help, completion and the man page
    are made from them, so a change must be deliberate. After one, run
    `python -m tests.clirun` and check the man page (tests/test_docs.py) still says the same."""
    from tests.clirun import INTERFACE, interface

    reviewed = json.loads(INTERFACE.read_text(encoding="utf-8"))
    now = json.loads(json.dumps(interface(), ensure_ascii=False, default=repr))
    for command in reviewed:
        for key in ("prog", "description", "epilog", "class", "exclusive"):
            assert now[command][key] == reviewed[command][key], (command, key)
        assert [g["title"] for g in now[command]["groups"]] == [g["title"] for g in reviewed[command]["groups"]]
        for group, was in zip(now[command]["groups"], reviewed[command]["groups"]):
            assert [a["dest"] for a in group["actions"]] == [a["dest"] for a in was["actions"]], group["title"]
            for action, before in zip(group["actions"], was["actions"]):
                assert action == before, f"{command} {action['flags'] or action['dest']} changed: " \
                                         "run python -m tests.clirun if that was meant"
    assert now == reviewed


# ---------------------------------------------------------------- small helpers


def test_a_closed_pipe_points_stdout_at_dev_null(monkeypatch, tmp_path) -> None:
    import os
    import sys

    from lcchat import cli

    with open(tmp_path / "out", "wb") as f:
        class Stdout:
            def fileno(self) -> int:
                return f.fileno()

        monkeypatch.setattr(sys, "stdout", Stdout())
        cli._quiet_stdout()
        os.write(f.fileno(), b"after the pipe closed")
    assert (tmp_path / "out").read_bytes() == b""


@pytest.mark.parametrize("error", [ValueError("closed"), OSError("no fd")])
def test_quieting_a_stdout_without_a_descriptor_is_no_error(monkeypatch, error) -> None:
    import sys

    from lcchat import cli

    class Stdout:
        def fileno(self) -> int:
            raise error

    monkeypatch.setattr(sys, "stdout", Stdout())
    cli._quiet_stdout()


def test_profile_lines_keep_their_column() -> None:
    from lcchat.cli import profile_lines

    lines = profile_lines([("smollm2", "SmolLM2"), ("a-very-long-profile-name-indeed", "long one"), ("x", "short")])
    assert lines == ["smollm2" + " " * 15 + "  SmolLM2", "a-very-long-profile-name-indeed",
                     " " * 22 + "  long one", "x" + " " * 21 + "  short"]
    assert profile_lines([("ab", "two"), ("a", "one")]) == ["ab  two", "a   one"]
    exact = "n" * 22
    assert profile_lines([(exact, "fits")]) == [exact + "  fits"]
    assert profile_lines([(exact, "fits")], width=21) == [exact, " " * 21 + "  fits"]
    assert profile_lines([]) == []
    assert profile_lines([("bad\x1b[2Jname", "desc\x07")]) == [clean_line("bad\x1b[2Jname", "desc\x07")]


def clean_line(name: str, description: str) -> str:
    from lcchat.textsafe import clean

    assert "\x1b" not in clean(name) and "\x07" not in clean(description)
    return f"{clean(name)}  {clean(description)}"


def test_logging_set_up_twice_keeps_one_handler_of_ours() -> None:
    """main() run again in one process (these tests, an embedding program) must not stack
    handlers: with -v each log line would print once per call so far."""
    import logging

    from lcchat import cli as cli_module

    llama, root = logging.getLogger("lcchat.llama"), logging.getLogger("lcchat")
    saved = (list(llama.handlers), list(root.handlers), llama.level, root.level, llama.propagate)
    try:
        for verbose in (False, False, True, True, False):
            cli_module._setup_logging(verbose)
            ours = [h for h in (*llama.handlers, *root.handlers) if getattr(h, "lcchat_cli", False)]
            assert len({id(h) for h in ours}) == 1
    finally:
        llama.handlers[:], root.handlers[:] = saved[0], saved[1]
        llama.setLevel(saved[2]), root.setLevel(saved[3])
        llama.propagate = saved[4]
