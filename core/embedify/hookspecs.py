"""The plugin contract. A plugin is a module with functions named like these, decorated with
``embedify.hookimpl``, listed under the ``embedify`` entry-point group of its distribution::

    [project.entry-points.embedify]
    myprovider = "embedify_myprovider"

Keep that module light: import your SDK inside the model class, not at module level, so that
``import embedify``, ``embedify --help`` and resolving other providers' names stay fast. A hook
that raises (``SystemExit`` included) is reported by ``embedify plugins`` and skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    import click

    from embedify.model import EmbeddingModel


class Register(Protocol):
    """What ``register_models`` receives: the calls a plugin may make (the registry implements
    them, and checks every registration)."""

    def __call__(
        self,
        name: str,
        factory: type[EmbeddingModel] | str,
        *,
        default_model: str | None = None,
        models: Iterable[str] = (),
        aliases: Iterable[str] = (),
    ) -> None: ...

    def alias(self, alias: str, target: str) -> None: ...


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

    Names must be usable: provider names and aliases are letters, digits, ``.``, ``_`` and
    ``-``; model aliases hold no spaces. A registration that is not well formed (or whose
    factory is neither a class nor ``"module:Class"``) is refused alone, with a warning.

    A name another distribution also registers is not silently taken over: the user's choice
    (config ``"providers"`` or ``EMBEDIFY_PROVIDERS``), the built-in and first-party
    registrations win, and otherwise the first; ``embedify plugins`` shows who lost. Names that
    embedify or one of its own distributions owns (``fake``, ``openai``, ``local``, ...; see
    ``embedify.registry.FIRST_PARTY_DISTRIBUTIONS``) are refused to any other distribution
    unless the user chose it, and then still warned about.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add subcommands to ``cli``, a :class:`click.Group` of the plugin's own, from which
    embedify takes them into its command line.

    A built-in command (``search``, ``plugins``, ...) or one of our distributions' (``serve``,
    ``embed-dataset``, ``export``) is not replaced by another distribution's unless the user
    chose it (config ``"commands"`` or ``EMBEDIFY_COMMANDS="serve=my-dist"``), and then with a
    warning; if the hook raises, none of its commands is added. Import the command module
    inside this hook and heavy libraries inside the command, since the hook runs for
    ``embedify --help``.
    """
