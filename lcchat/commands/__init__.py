"""Slash commands, written once for every front-end (see registry.py)."""

from lcchat.commands import builtin as _builtin  # noqa: F401 - registers the commands
from lcchat.commands import ui as _ui  # noqa: F401 - /theme
from lcchat.commands import history as _history  # noqa: F401 - /save /load /history
from lcchat.commands import quant as _quant  # noqa: F401 - /quant
from lcchat.commands import think as _think  # noqa: F401 - /think
from lcchat.commands import spec as _spec  # noqa: F401 - /spec
from lcchat.commands.actions import (  # noqa: F401
    Action, Clear, Copy, Edit, Exit, Generate, Settings, Task, Theme,
)
from lcchat.commands.parse import CommandLine, Message, parse_line  # noqa: F401
from lcchat.commands.registry import Context, FrontState, Result, registry  # noqa: F401
