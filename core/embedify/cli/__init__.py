"""The ``embedify`` command line. Plugins add subcommands through ``register_commands``.

A user's mistake prints one ``Error: ...`` line that says how to fix it. Exit statuses, the same
for every command (docs/cli.md has the table; plugin commands follow it too): 0 done; 1 the work
failed (no API key, a server that does not answer, a damaged file, a port in use); 2 the command
line is wrong (a usage error, an unknown command, model or option, a broken config file, a
command whose plugin is not installed); 130 interrupted (Ctrl-C). ``--debug`` or
``EMBEDIFY_DEBUG=1`` shows the traceback instead. Imports stay inside the commands so that
``embedify --help`` is fast.

Each command has its own module (``embed``, ``search``, ``models``, ``plugins``, ``cache``);
``group`` holds the root group's error handling and plugin commands, ``options`` and
``failures`` what commands share. Plugins import the shared names from here.
"""

from __future__ import annotations

import click

from embedify.cli import cache, embed, models, plugins, search
from embedify.cli.failures import INTERRUPTED, UsageFailure
from embedify.cli.group import CommandGroup
from embedify.cli.options import (
    ROLES,
    load_model,
    model_option,
    options_option,
    parse_options,
)
from embedify.cli.search import NAMED_SKIPS, PREVIEW_CHARS, shown_path
from embedify.cli.search import preview as _preview  # noqa: F401 - tests/test_cli.py


@click.group(cls=CommandGroup)
@click.version_option(package_name="embedify")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also: EMBEDIFY_DEBUG=1).")
def cli(debug: bool) -> None:
    """Text embeddings from any provider, with one engine for limits, retries and caching."""


cli.add_command(embed.embed)
cli.add_command(embed.similarity)
cli.add_command(models.models)
cli.add_command(plugins.plugins)
cli.add_command(cache.cache)
cli.add_command(search.search)

__all__ = [
    "INTERRUPTED",
    "NAMED_SKIPS",
    "PREVIEW_CHARS",
    "ROLES",
    "UsageFailure",
    "cli",
    "load_model",
    "model_option",
    "options_option",
    "parse_options",
    "shown_path",
]
