"""The plugin contract. A plugin is a module with functions named like these, decorated with
``embedify.hookimpl``, listed under the ``embedify`` entry-point group of its distribution::

    [project.entry-points.embedify]
    myprovider = "embedify_myprovider"

Keep that module light: import your SDK inside the model class, not at module level, so that
``import embedify``, ``embedify --help`` and resolving other providers' names stay fast. A hook
that raises (``SystemExit`` included) is reported by ``embedify plugins`` and skipped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from embedify.registry import Register

hookspec = pluggy.HookspecMarker("embedify")
hookimpl = pluggy.HookimplMarker("embedify")


@hookspec
def register_models(register: Register) -> None:
    """Register providers, known models and aliases.

    Called once, the first time a model name is resolved. ``register`` is a callback::

        register("myprovider", "embedify_myprovider.model:MyModel",
                 default_model="small", models=["small", "large"], aliases=["mp"])
        register.alias("tiny", "myprovider:small")

    The second argument is the :class:`~embedify.EmbeddingModel` subclass, or its import path as
    ``"module:Class"`` so that its dependencies load only when a model is built. ``models`` are
    model ids a bare name may resolve to; ``aliases`` are other names of the provider.
    ``register.alias`` maps a model name to another one (``"provider:model"``); a plugin that
    ships weights uses it to point a model id at its folder.

    A name another distribution also registers is not silently taken over: the user's choice
    (config ``"providers"`` or ``EMBEDIFY_PROVIDERS``), the built-in and first-party
    registrations win, and otherwise the first; ``embedify plugins`` shows who lost.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``embedify`` command line (a :class:`click.Group`).

    Import the command module inside this hook and heavy libraries inside the command, since
    the hook runs for ``embedify --help``.
    """
