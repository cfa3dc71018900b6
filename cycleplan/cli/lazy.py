"""A command group that imports a command's module only when that command is asked for.

:class:`LazyGroup` lists its commands from a registry of name -> (module, attribute, one-line help).
The top-level help prints the registry's lines, so it imports no command module; running a command, or
asking for its help, imports that command's module alone and builds its click command from the typer app
found there. A module's app may hold several commands: the one of the requested name is taken from it.
A subclass may add what every command shares in :meth:`LazyGroup.prepare`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from difflib import get_close_matches
from gettext import gettext
from typing import Any, ClassVar, NamedTuple

import typer.main
from typer import _click
from typer._click.exceptions import UsageError
from typer._click.utils import make_default_short_help
from typer.core import TyperGroup


class LazyCommand(NamedTuple):
    """Where a command lives, and the first line of its help for the list of commands."""

    module: str
    """The module to import, e.g. ``cycleplan.cli.scenario``."""
    attribute: str
    """The typer app in that module: the command itself, or an app that holds it among others."""
    help: str
    """The command's own short help (its help's first sentence), shown by the group's ``--help``."""


class LazyGroup(TyperGroup):
    """A typer group whose commands are in :attr:`registry`, loaded one at a time on demand.

    Subclass it with a registry and pass the subclass as ``typer.Typer(cls=...)``.
    """

    registry: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self._loaded: dict[str, _click.Command] = {}

    def list_commands(self, ctx: _click.Context) -> list[str]:
        return list(self.registry)

    def get_command(self, ctx: _click.Context, cmd_name: str) -> _click.Command | None:
        if cmd_name in self._loaded:
            return self._loaded[cmd_name]
        entry = self.registry.get(cmd_name)
        if entry is None:
            return None
        command = typer.main.get_command(getattr(importlib.import_module(entry.module), entry.attribute))
        if isinstance(command, TyperGroup) and command.name != cmd_name:
            command = command.commands[cmd_name]
        self.prepare(command)
        self._loaded[cmd_name] = command
        return command

    def prepare(self, command: _click.Command) -> None:
        """Called once on each command as it loads, before it runs; a subclass may add to it here."""

    def resolve_command(
        self, ctx: _click.Context, args: list[str]
    ) -> tuple[str | None, _click.Command | None, list[str]]:
        """TyperGroup's, with "Did you mean" drawn from the registry (TyperGroup draws it from the built
        commands, and a lazy group has built none)."""
        try:
            return super().resolve_command(ctx, args)
        except UsageError as error:
            if self.suggest_commands and args:
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    suggestions = ", ".join(f"{match!r}" for match in matches)
                    error.message = f"{error.message.rstrip('.')}. Did you mean {suggestions}?"
            raise

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The list of commands, from the registry's one-line helps, shortened as click shortens them."""
        if not self.registry:
            return
        limit = formatter.width - 6 - max(len(name) for name in self.registry)
        rows = [(name, make_default_short_help(entry.help, limit)) for name, entry in self.registry.items()]
        with formatter.section(gettext("Commands")):
            formatter.write_dl(rows)
