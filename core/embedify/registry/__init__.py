"""Plugin loading and name resolution: ``get_model``, ``register_model`` and the one
:class:`Registry`.

Plugins are found through the ``embedify`` entry-point group and registered with one pluggy
``PluginManager``; the built-in fake provider is registered the same way. A plugin that fails
to import or register (any exception, ``SystemExit`` included) is recorded and reported
(``embedify plugins``), never fatal; so is each registration that is not well formed (a name
that is empty or holds spaces or ``:``, a factory that is not a class or ``"module:Class"``),
which is refused alone, with a warning naming its distribution.

First-party means shipped by this project: :data:`FIRST_PARTY_DISTRIBUTIONS` lists each
distribution we publish, the package its code lives in and the names it owns. A registration is
first-party for a name only when its distribution is the one that table names for that name
*and* its entry point and provider class live in that distribution's package; a name prefix
(``embedify-*``) or a copied distribution name is not enough. A third party that claims a
reserved name (a first-party or built-in provider, provider alias or model alias, or a prefix
``"openai:..."`` pointing elsewhere) is refused with a warning naming its distribution, unless
the user chose it (``"providers"`` in the user config, or ``EMBEDIFY_PROVIDERS``); a chosen
third party still gets a warning every run. Commands follow the same rules (see
:meth:`Registry.settle_commands`; ``"commands"`` / ``EMBEDIFY_COMMANDS``).

Other contested names stay with, in order: the user's choice, a name registered at runtime with
:func:`register_model`, the built-in provider, first-party, then the first registration (entry
points load in name order, then distribution order). Every losing or refused registration is
kept in ``Registry.conflicts`` and shown by ``embedify plugins``.

Where each part lives: ``discovery`` (which entry points load, in which order), ``first_party``
(what this project publishes and how to install it), ``registrations`` (what a plugin registers
and the checks on it), ``ownership`` (who keeps a contested name, pure), ``resolution`` (a name
to a provider and model id, pure) and ``catalog`` (the :class:`Registry` that ties them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from embedify.config import default_model_name
from embedify.errors import ConfigurationError
from embedify.registry.catalog import Registry
from embedify.registry.discovery import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, RUNTIME_PLUGIN
from embedify.registry.first_party import (
    COMMAND_OWNERS,
    CORE_DISTRIBUTION,
    FIRST_PARTY,
    FIRST_PARTY_DISTRIBUTIONS,
    MODEL_ALIAS_OWNERS,
    PROVIDER_OWNERS,
    Shipped,
    in_package,
    install_hint,
    reserved_owner,
    shipped_for,
)
from embedify.registry.ownership import (
    BUILT_IN,
    CHOICE_VARIABLES,
    FIRST_PARTY_ORIGIN,
    RUNTIME,
    THIRD_PARTY,
    Claim,
    Conflict,
    Override,
    Ownership,
    decide_owner,
)
from embedify.registry.registrations import Factory, ModelAlias, PluginStatus, Provider, Registrar
from embedify.registry.resolution import close_matches

if TYPE_CHECKING:  # imported when a model is built, so `embedify --help` skips numpy
    from embedify.model import EmbeddingModel

__all__ = [
    "BUILTIN_PLUGINS",
    "BUILT_IN",
    "CHOICE_VARIABLES",
    "COMMAND_OWNERS",
    "CORE_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "FIRST_PARTY",
    "FIRST_PARTY_DISTRIBUTIONS",
    "FIRST_PARTY_ORIGIN",
    "MODEL_ALIAS_OWNERS",
    "PROVIDER_OWNERS",
    "RUNTIME",
    "RUNTIME_PLUGIN",
    "THIRD_PARTY",
    "Claim",
    "Conflict",
    "Factory",
    "ModelAlias",
    "Override",
    "Ownership",
    "PluginStatus",
    "Provider",
    "Registrar",
    "Registry",
    "Shipped",
    "close_matches",
    "decide_owner",
    "get_model",
    "in_package",
    "install_hint",
    "register_model",
    "registry",
    "reserved_owner",
    "shipped_for",
]

registry = Registry()


def get_model(name: str | None = None, **options: Any) -> EmbeddingModel:
    """Build the model a name stands for, e.g. ``get_model("openai:text-embedding-3-small",
    dimensions=256)``. ``None`` uses ``EMBEDIFY_MODEL``, the user config, then ``"local"``.
    Keyword arguments are the model's options."""
    if name is None:
        name = default_model_name()
    elif not isinstance(name, str) or not name.strip():
        raise ConfigurationError(
            f"{name!r} is not a model name: give one such as 'local' or "
            "'openai:text-embedding-3-small', or leave it out for the default "
            "(EMBEDIFY_MODEL, the user config, then 'local')."
        )
    provider, model_id = registry.resolve(name)
    return provider.model_class()(model_id, **options)


def register_model(
    name: str,
    model_class: type[EmbeddingModel],
    *,
    default_model: str | None = None,
    models: Iterable[str] = (),
    aliases: Iterable[str] = (),
) -> None:
    """Register a provider at runtime, without packaging it as a plugin."""
    registry.load()
    registry.plugins.setdefault(
        RUNTIME_PLUGIN, PluginStatus(RUNTIME_PLUGIN, None, source="runtime")
    )
    Registrar(registry, RUNTIME_PLUGIN)(
        name, model_class, default_model=default_model, models=models, aliases=aliases
    )
