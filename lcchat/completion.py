"""Shell completion scripts, generated from the argument parser so they never drift.

`lcchat --completion bash|zsh|fish` prints one. Options and subcommands are written into
the script; profile and theme names are asked of lcchat when completing (`lcchat
--list-names profiles`), so new profiles complete without regenerating anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lcchat import paths

SUBCOMMAND_ACTIONS = {
    "profiles": ("list", "show", "check", "import"),
    "history": ("list", "show", "export", "rm"),
    "doctor": (),
    "quant": (),
    "pull": (),
    "models": ("list", "rm"),
}
# Subcommands whose argument is a name lcchat lists (`lcchat pull NAME`: a profile).
SUBCOMMAND_NAMES = {"pull": "profiles"}
# The subcommands (and their actions) that take a file; None: every action. The rest
# (history) take ids and names, so files are not offered there.
SUBCOMMAND_FILES: dict[str, tuple[str, ...] | None] = {"profiles": ("check", "import"), "doctor": None, "quant": None}
DYNAMIC = {"--profile": "profiles", "-p": "profiles", "--theme": "themes"}
FILES = {"--model", "-m"}


def names(kind: str) -> list[str]:
    """Profile or theme names, for completion."""
    if kind == "profiles":
        from lcchat.config.loader import available_profiles

        return list(available_profiles())
    if kind == "themes":
        found = set()
        for directory in (paths.shipped_themes_dir(), paths.user_themes_dir()):
            if directory.is_dir():
                found.update(p.stem for p in directory.glob("*.tcss"))
        return sorted(found)
    raise ValueError(kind)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS]


def _choices(action: argparse.Action) -> list[str]:
    return [str(c) for c in action.choices] if action.choices else []


def bash(parser: argparse.ArgumentParser) -> str:
    opts = " ".join(s for a in _options(parser) for s in a.option_strings)
    takes_value = [a for a in _options(parser) if a.nargs != 0 and not isinstance(a, argparse._StoreConstAction)]
    cases = []
    for action in takes_value:
        pattern = "|".join(action.option_strings)
        dynamic = next((DYNAMIC[s] for s in action.option_strings if s in DYNAMIC), None)
        if dynamic:
            cases.append(f'        {pattern}) COMPREPLY=( $(compgen -W "$(lcchat --list-names {dynamic} 2>/dev/null)" -- "$cur") ); return ;;')
        elif set(action.option_strings) & FILES:
            cases.append(f'        {pattern}) COMPREPLY=( $(compgen -f -X "!*.gguf" -- "$cur") $(compgen -d -S / -- "$cur") ); return ;;')
        elif _choices(action):
            cases.append(f'        {pattern}) COMPREPLY=( $(compgen -W "{" ".join(_choices(action))}" -- "$cur") ); return ;;')
        else:
            cases.append(f"        {pattern}) return ;;")
    subs = " ".join(SUBCOMMAND_ACTIONS)
    case_block = "\n".join(cases)
    sub_cases = "\n".join(_bash_subcommand(name, acts) for name, acts in SUBCOMMAND_ACTIONS.items())
    return f"""# bash completion for lcchat; load with: source <(lcchat --completion bash)
_lcchat() {{
    local cur prev
    COMPREPLY=()
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    case "$prev" in
{case_block}
    esac
    if [[ $COMP_CWORD -ge 2 ]]; then
        case "${{COMP_WORDS[1]}}" in
{sub_cases}
        esac
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "{opts}" -- "$cur") )
    elif [[ $COMP_CWORD -eq 1 ]]; then
        COMPREPLY=( $(compgen -W "{subs}" -- "$cur") )
    fi
}}
complete -o filenames -F _lcchat lcchat
"""


def _bash_subcommand(name: str, acts: tuple[str, ...]) -> str:
    """The case for `lcchat NAME ...`: its actions as the first word, then files only
    where it takes one (and after -o/--output)."""
    if name in SUBCOMMAND_NAMES:
        return (f'        {name}) COMPREPLY=( $(compgen -W "$(lcchat --list-names {SUBCOMMAND_NAMES[name]} 2>/dev/null)" '
                f'-- "$cur") ); return ;;')
    files = 'COMPREPLY=( $(compgen -f -- "$cur") )'
    takes = SUBCOMMAND_FILES.get(name, ())
    if takes is None:
        later = files
    elif takes:
        later = f'[[ " {" ".join(takes)} " == *" ${{COMP_WORDS[2]}} "* ]] && {files}'
    else:
        later = f'[[ "$prev" == -o || "$prev" == --output ]] && {files}'
    if not acts:
        return f"        {name}) {later}; return ;;"
    first = f'COMPREPLY=( $(compgen -W "{" ".join(acts)}" -- "$cur") )'
    return f"        {name}) if [[ $COMP_CWORD -eq 2 ]]; then {first}; else {later}; fi; return ;;"


def zsh(parser: argparse.ArgumentParser) -> str:
    lines = []
    for action in _options(parser):
        help_text = (action.help or "").replace("'", "'\\''").replace("[", "(").replace("]", ")").replace(":", " -")
        takes_value = action.nargs != 0 and not isinstance(action, argparse._StoreConstAction)
        dynamic = next((DYNAMIC[s] for s in action.option_strings if s in DYNAMIC), None)
        if not takes_value:
            spec = ""
        elif dynamic:
            spec = f":{dynamic}:_lcchat_{dynamic}"
        elif set(action.option_strings) & FILES:
            spec = ':model:_files -g "*.gguf"'  # quoted for _arguments, which evals it
        elif _choices(action):
            spec = f":value:({' '.join(_choices(action))})"
        else:
            spec = ":value: "
        for s in action.option_strings:
            lines.append(f"    '{s}[{help_text}]{spec}'")
    subs = " ".join(SUBCOMMAND_ACTIONS)
    args_block = "\n".join(line + " \\" for line in lines)
    sub_cases = "\n".join(_zsh_subcommand(name, acts) for name, acts in SUBCOMMAND_ACTIONS.items())
    return f"""#compdef lcchat
# zsh completion for lcchat; put it in your $fpath as _lcchat, or: source <(lcchat --completion zsh)
_lcchat_profiles() {{ compadd -- ${{(f)"$(lcchat --list-names profiles 2>/dev/null)"}} }}
_lcchat_themes() {{ compadd -- ${{(f)"$(lcchat --list-names themes 2>/dev/null)"}} }}
_lcchat() {{
  if (( CURRENT == 2 )) && [[ $words[2] != -* ]]; then
    compadd -- {subs}
    return
  fi
  case $words[2] in
{sub_cases}
  esac
  _arguments -s \\
{args_block}
    '*:prompt: '
}}
compdef _lcchat lcchat 2>/dev/null || true
"""


def _zsh_subcommand(name: str, acts: tuple[str, ...]) -> str:
    if name in SUBCOMMAND_NAMES:
        return f"    {name}) _lcchat_{SUBCOMMAND_NAMES[name]}; return ;;"
    takes = SUBCOMMAND_FILES.get(name, ())
    later = "_files" if takes is None or takes else ":"
    if not acts:
        return f"    {name}) {later}; return ;;"
    return f"    {name}) if (( CURRENT == 3 )); then compadd -- {' '.join(acts)}; else {later}; fi; return ;;"


def fish(parser: argparse.ArgumentParser) -> str:
    lines = ["# fish completion for lcchat; load with: lcchat --completion fish | source", "complete -c lcchat -f"]
    subs = " ".join(SUBCOMMAND_ACTIONS)
    lines.append(f"complete -c lcchat -n __fish_use_subcommand -a '{subs}'")
    for name, acts in SUBCOMMAND_ACTIONS.items():
        if acts:
            lines.append(f"complete -c lcchat -n '__fish_seen_subcommand_from {name}' -a '{' '.join(acts)}'")
        if name in SUBCOMMAND_NAMES:
            lines.append(f"complete -c lcchat -n '__fish_seen_subcommand_from {name}' "
                         f"-a '(lcchat --list-names {SUBCOMMAND_NAMES[name]} 2>/dev/null)'")
    for action in _options(parser):
        parts = ["complete -c lcchat"]
        for s in action.option_strings:
            if s.startswith("--"):
                parts.append(f"-l {s[2:]}")
            elif len(s) == 2:
                parts.append(f"-s {s[1:]}")
            else:
                parts.append(f"-o {s[1:]}")
        takes_value = action.nargs != 0 and not isinstance(action, argparse._StoreConstAction)
        dynamic = next((DYNAMIC[s] for s in action.option_strings if s in DYNAMIC), None)
        if dynamic:
            parts.append(f"-x -a '(lcchat --list-names {dynamic} 2>/dev/null)'")
        elif set(action.option_strings) & FILES:
            parts.append("-r -F")
        elif _choices(action):
            parts.append(f"-x -a '{' '.join(_choices(action))}'")
        elif takes_value:
            parts.append("-x")
        if action.help:
            parts.append("-d " + _fish_quote(action.help))
        lines.append(" ".join(parts))
    return "\n".join(lines) + "\n"


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


SHELLS = {"bash": bash, "zsh": zsh, "fish": fish}


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    return SHELLS[shell](parser)


def man_page_path(name: str = "lcchat.1") -> Path | None:
    """Where the installed (or source checkout's) man page is."""
    import sys

    section = name.rsplit(".", 1)[-1]
    for candidate in (paths.shipped_man_dir() / name, Path(sys.prefix) / "share" / "man" / f"man{section}" / name):
        if candidate.is_file():
            return candidate
    return None
