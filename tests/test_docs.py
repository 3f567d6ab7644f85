"""The man pages and completion scripts keep up with the code: every option, subcommand,
slash command and profile key is read from the code itself and looked up in the pages."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lcchat import cli, completion
from lcchat.commands import registry
from lcchat.config.schema import SECTIONS, TOP_LEVEL, all_keys
from lcchat.manpage import to_text

MAN = Path(__file__).resolve().parents[1] / "man"
PAGE1 = to_text((MAN / "lcchat.1").read_text(encoding="utf-8"))
PAGE5 = to_text((MAN / "lcchat-profile.5").read_text(encoding="utf-8"))


def visible_options(parser: argparse.ArgumentParser) -> list[str]:
    return [s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings]


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """Each subcommand's parser, found through the module that handles it."""
    found = {}
    for name, target in cli.SUBCOMMANDS.items():
        module = importlib.import_module(target.partition(":")[0])
        builder = getattr(module, "build_parser", None) if name != "profiles" else cli.build_profiles_parser
        if builder is not None:
            found[name] = builder()
    return found


def test_every_option_is_in_the_man_page() -> None:
    missing = [o for o in visible_options(cli.build_parser()) if o not in PAGE1]
    assert not missing, f"undocumented options: {missing}"


def test_every_subcommand_and_its_options_are_in_the_man_page() -> None:
    for name, parser in subcommand_parsers().items():
        assert f"lcchat {name}" in PAGE1, name
        for option in visible_options(parser):
            if option not in ("-h", "--help", "-v", "--verbose", "--debug"):
                assert option in PAGE1, f"lcchat {name} {option} is not documented"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sub_parser in action.choices.items():
                    assert f"lcchat {name} {sub}" in PAGE1, f"lcchat {name} {sub}"
                    for option in visible_options(sub_parser):
                        if option not in ("-h", "--help"):
                            assert option in PAGE1, f"lcchat {name} {sub} {option} is not documented"


def test_every_slash_command_and_alias_is_in_the_man_page() -> None:
    section = PAGE1[PAGE1.index("SLASH COMMANDS"):PAGE1.index("\nKEYS")]
    for cmd in registry.commands():
        for name in (cmd.name, *cmd.aliases):
            assert f"/{name}" in section, f"/{name} is not documented"


def test_every_profile_key_is_in_the_profile_page() -> None:
    for key, _kind, _default, _doc in all_keys():
        section, _, name = key.rpartition(".")
        if not section:
            assert name in PAGE5
            continue
        start = PAGE5.index(f"[{section}]", PAGE5.index("KEYS"))
        following = [PAGE5.find(f"[{s}]", start + 1) for s in SECTIONS if PAGE5.find(f"[{s}]", start + 1) > 0]
        end = min(following, default=len(PAGE5))
        assert f"{name} (" in PAGE5[start:end], f"{key} is not documented in its section"
    for key in TOP_LEVEL:
        assert key in PAGE5


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
@pytest.mark.parametrize("page", ["lcchat.1", "lcchat-profile.5"])
def test_groff_renders_without_warnings(page: str) -> None:
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", str(MAN / page)], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stderr == ""


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_valid(shell: str, tmp_path: Path) -> None:
    """The shell itself parses the script. .ci/run installs zsh and fish, so in CI a
    missing shell is a failure; elsewhere the structural checks below still run."""
    text = completion.script(shell, cli.build_parser())
    assert ("-l profile" if shell == "fish" else "--profile") in text
    assert "profiles" in text and "--list-names" in text
    if shutil.which(shell) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{shell} is not installed: .ci/run installs it")
        pytest.skip(f"{shell} is not installed (test_{shell}_completion_structure checks the script)")
    script = tmp_path / f"lcchat.{shell}"
    script.write_text(text)
    check = [shell, "-n", str(script)] if shell != "fish" else ["fish", "--no-execute", str(script)]
    r = subprocess.run(check, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def _visible_options() -> list[argparse.Action]:
    return [a for a in cli.build_parser()._actions if a.option_strings and a.help != argparse.SUPPRESS]


def test_zsh_completion_structure() -> None:
    """Without zsh: every option is one well-quoted _arguments spec, OPTION[HELP]ACTION."""
    text = completion.script("zsh", cli.build_parser())
    assert text.startswith("#compdef lcchat\n")
    body = text[text.index("_arguments -s \\\n"):text.index("\n}\n")]
    specs = []
    for line in body.splitlines()[1:]:
        words = shlex.split(line.rstrip("\\"))  # sh quoting: zsh reads these lines the same way
        assert len(words) == 1, line
        specs.append(words[0])
    assert specs[-1] == "*:prompt: "
    spec = re.compile(r"^(-{1,2}[A-Za-z][\w-]*)\[([^\[\]]*)\](:.*)?$")
    seen = {}
    for item in specs[:-1]:
        match = spec.match(item)
        assert match, item
        seen[match.group(1)] = match.group(3) or ""
    for action in _visible_options():
        for option in action.option_strings:
            assert option in seen, option
            takes_value = action.nargs != 0 and not isinstance(action, argparse._StoreConstAction)
            assert bool(seen[option]) == takes_value, option
            if action.choices:
                assert seen[option] == f":value:({' '.join(str(c) for c in action.choices)})"
    assert seen["--profile"] == ":profiles:_lcchat_profiles" and seen["--theme"] == ":themes:_lcchat_themes"
    assert seen["--model"] == ':model:_files -g "*.gguf"'  # an unquoted glob here fails: "no matches found"
    assert text.count("{") == text.count("}")


def _fish_words(line: str) -> list[str]:
    """Split a fish command line: single quotes take only \\' and \\\\ as escapes."""
    words, word, i, quoted = [], None, 0, False
    while i < len(line):
        c = line[i]
        if quoted:
            if c == "\\" and line[i + 1:i + 2] in ("'", "\\"):
                word += line[i + 1]
                i += 1
            elif c == "'":
                quoted = False
            else:
                word += c
        elif c == "'":
            quoted, word = True, word or ""
        elif c == " ":
            if word is not None:
                words.append(word)
            word = None
        else:
            assert c not in "\"$;|&<>()", f"unquoted {c!r} in {line!r}"
            word = (word or "") + c
        i += 1
    assert not quoted, f"unterminated quote in {line!r}"
    if word is not None:
        words.append(word)
    return words


def test_fish_completion_structure() -> None:
    """Without fish: every line is a well-quoted `complete -c lcchat` with known flags,
    and every option of the parser is there with its help text."""
    text = completion.script("fish", cli.build_parser())
    described = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        words = _fish_words(line)
        assert words[:3] == ["complete", "-c", "lcchat"], line
        rest, options, i = words[3:], [], 0
        while i < len(rest):
            flag = rest[i]
            assert flag in ("-f", "-r", "-F", "-x", "-n", "-a", "-l", "-s", "-o", "-d"), line
            if flag in ("-n", "-a", "-l", "-s", "-o", "-d"):
                value = rest[i + 1]
                if flag in ("-l", "-s", "-o"):
                    options.append(("--" if flag == "-l" else "-") + value)
                if flag == "-d":
                    for option in options:
                        described[option] = value
                i += 1
            i += 1
    for action in _visible_options():
        for option in action.option_strings:
            assert described.get(option) == action.help, option


def test_bash_completion_completes_profiles_options_and_subcommands(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    bin_dir = Path(sys.executable).parent
    script = tmp_path / "c.bash"
    script.write_text(completion.script("bash", cli.build_parser()))
    probe = f"""
export PATH="{bin_dir}:$PATH"
source {script}
COMP_WORDS=(lcchat -p sm); COMP_CWORD=2; _lcchat; echo "P:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat --tem); COMP_CWORD=1; _lcchat; echo "O:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat pro); COMP_CWORD=1; _lcchat; echo "S:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat --theme s); COMP_CWORD=2; _lcchat; echo "T:${{COMPREPLY[*]}}"
cd {tmp_path}; touch stray.gguf
COMP_WORDS=(lcchat history ""); COMP_CWORD=2; _lcchat; echo "H:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat history show ""); COMP_CWORD=3; _lcchat; echo "I:${{COMPREPLY[*]}}"
COMP_WORDS=(lcchat doctor ""); COMP_CWORD=2; _lcchat; echo "D:${{COMPREPLY[*]}}"
"""
    r = subprocess.run(["bash", "-c", probe], capture_output=True, text=True)
    assert "H:list show export rm\n" in r.stdout  # no files from the current directory
    assert "I:\n" in r.stdout
    assert "stray.gguf" in r.stdout.split("D:", 1)[1]
    assert "P:smollm2" in r.stdout
    assert "O:--temp" in r.stdout
    assert "S:profiles" in r.stdout
    assert "T:ssh" in r.stdout


def test_man_option_prints_text_without_man(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "lcchat", "--man"], capture_output=True, text=True)
    assert r.returncode == 0
    assert "SLASH COMMANDS" in r.stdout and "EXIT STATUS" in r.stdout
    assert "\\f" not in r.stdout and ".TP" not in r.stdout


def test_pyproject_installs_the_pages_under_share_man() -> None:
    from lcchat.config.loader import tomllib

    data = tomllib.loads((MAN.parent / "pyproject.toml").read_text())
    files = data["tool"]["setuptools"]["data-files"]
    assert files["share/man/man1"] == ["man/lcchat.1"]
    assert files["share/man/man5"] == ["man/lcchat-profile.5"]


def test_ci_runs_exactly_the_readme_s_test_commands() -> None:
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("**To install and run the whole test suite**"):]
    start = section.index("```sh\n") + 6
    block = section[start:section.index("\n```", start)]
    ci = (root / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = ci[ci.index('cd "$(dirname "$0")/.."') + 1:]
    assert block.splitlines() == commands
