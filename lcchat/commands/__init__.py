"""Slash commands, written once for every front-end (see registry.py)."""

from lcchat.commands import builtin as _builtin  # noqa: F401 - registers the commands
from lcchat.commands.registry import (  # noqa: F401
    CLEAR, COPY, EDIT, EXIT, GENERATE, SETTINGS, THEME, Context, FrontState, Result, registry,
)
