"""``embedify plugins``: each plugin, what it provides, lost or was refused, and who owns each
name."""

from __future__ import annotations

import click

from embedify.cli.group import CommandGroup
from embedify.cli.options import user_config


@click.command()
def plugins() -> None:
    """Show each plugin (its distribution, version, the names it provides, names it lost or was
    refused, and any load error), then who provides each name and whether it is ours."""
    from embedify.registry import CHOICE_VARIABLES, registry

    user_config()
    registry.load()
    root = click.get_current_context().find_root().command
    if isinstance(root, CommandGroup):  # the plugins' commands take names too
        root.add_plugin_commands()
    conflicts = [*registry.conflicts, *registry.command_conflicts]
    overrides = [*registry.overrides, *registry.command_overrides]
    for status in sorted(registry.plugins.values(), key=lambda s: s.name):
        state = f"ERROR: {status.error}" if status.error else "ok"
        source = " ".join(filter(None, [status.distribution, status.version]))
        provided = [
            n for n, p in sorted(registry.provider_names.items()) if p.plugin == status.name
        ]
        provided += [
            a for a, (_, plugin) in sorted(registry.aliases.items()) if plugin == status.name
        ]
        click.echo(f"{status.name}{f' ({source})' if source else ''}: {state}")
        if provided:
            click.echo(f"    provides: {', '.join(provided)}")
        owner = status.distribution or status.name
        for conflict in conflicts:
            if conflict.loser_plugin != status.name:
                continue
            choose = f"{CHOICE_VARIABLES[conflict.kind]}='{conflict.name}={owner}'"
            if conflict.refused:
                click.echo(
                    f"    refused {conflict.kind} {conflict.name!r}: {conflict.reason}; "
                    f"allow with {choose}"
                )
            else:
                click.echo(
                    f"    lost {conflict.kind} {conflict.name!r} to {conflict.winner} "
                    f"({conflict.reason}); choose with {choose}"
                )
        for override in overrides:
            if override.plugin == status.name:
                click.echo(
                    f"    holds {override.kind} {override.name!r} instead of {override.owner} "
                    "(your choice)"
                )
        for problem in status.problems:
            click.echo(f"    refused {problem}")
    click.echo("names:")
    for (kind, name), (who, origin) in sorted(registry.owners.items()):
        click.echo(f"    {kind} {name}: {who}, {origin}")
