"""The root command group: turns user errors into one line with the right exit status, and
adds the plugins' commands (``register_commands``) the first time they are needed."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import click

from embedify.cli.failures import INTERRUPTED, UsageFailure, debugging, explain, one_line


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    click.echo(f"warning: {message}", err=True)


class CommandGroup(click.Group):
    """The ``embedify`` group: one line per user error, and the plugins' subcommands."""

    _plugins_added = False

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get("EMBEDIFY_DEBUG", "") in ("", "0"):
            warnings.showwarning = _show_warning
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            if debugging(ctx):
                raise
            click.echo("\nInterrupted.", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None
        except BrokenPipeError:  # the reader went away (| head): stop quietly, like cat does
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps exit from failing to flush
            raise click.exceptions.Exit(1) from None
        except Exception as error:
            message = None if debugging(ctx) else explain(error)
            if message is None:
                raise
            raise click.ClickException(message) from error

    def add_plugin_commands(self) -> None:
        """Each plugin adds its commands to a group of its own; the registry then decides which
        to keep, so that no plugin replaces a built-in or first-party command (``serve``
        receives the API key) unless the user chose it. A hook that raises adds nothing."""
        if self._plugins_added:
            return
        self._plugins_added = True
        from embedify.errors import EmbedifyError
        from embedify.registry import registry

        try:
            registry.load()
        except EmbedifyError as error:  # e.g. a broken config file: help still works
            click.echo(f"warning: {one_line(str(error))}", err=True)
        claims: list[tuple[str, str, click.Command, str | None]] = []
        for implementation in registry.plugin_manager.hook.register_commands.get_hookimpls():
            own_group = click.Group(self.name)
            try:
                implementation.function(cli=own_group)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # SystemExit too: one plugin must not stop the CLI
                status = registry.plugins.get(implementation.plugin_name)
                source = f" ({status.distribution})" if status and status.distribution else ""
                click.echo(
                    f"warning: plugin {implementation.plugin_name!r}{source} failed to add "
                    f"commands: {type(error).__name__}: {error}",
                    err=True,
                )
                continue
            for name, command in own_group.commands.items():
                claims.append((name, implementation.plugin_name, command, _command_module(command)))
        try:
            chosen = registry.settle_commands(self.commands, claims)
        except EmbedifyError as error:
            click.echo(f"warning: {one_line(str(error))}", err=True)
            return
        self.commands.update(chosen)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self.add_plugin_commands()
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """A command that one of our distributions adds names it and how to install it; any
        other unknown name gets a did-you-mean over the plugins' commands and ours."""
        name = click.utils.make_str(args[0])
        if (
            not ctx.resilient_parsing
            and not name.startswith("-")
            and not self.get_command(ctx, name)
        ):
            from embedify.registry import COMMAND_OWNERS, close_matches, registry

            missing = registry.missing_command(name)
            if missing:
                raise UsageFailure(missing)
            hint = close_matches(name, [*self.commands, *COMMAND_OWNERS])
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)


def _command_module(command: object) -> str | None:
    """The module a plugin's command comes from: its callback's, else its class's."""
    callback = getattr(command, "callback", None)
    module = getattr(callback if callback is not None else type(command), "__module__", None)
    return module if isinstance(module, str) else None
