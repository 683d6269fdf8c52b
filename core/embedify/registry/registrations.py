"""What a plugin registers (providers, model aliases, its status), the checks each registration
passes, and the ``register`` callback (:class:`Registrar`) that runs them."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias

from embedify.errors import ConfigurationError
from embedify.registry.first_party import FIRST_PARTY_DISTRIBUTIONS, install_hint

if TYPE_CHECKING:  # imported when a model is built, so `embedify --help` skips numpy
    from embedify.model import EmbeddingModel

# Provider names, provider aliases and commands: what a user types, so no spaces or colons.
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Model aliases and their targets may hold a colon ("local:org/model"), never whitespace.
MODEL_NAME = re.compile(r"[^\s:][^\s]*\Z")


Factory: TypeAlias = "type[EmbeddingModel] | str"


@dataclass
class Provider:
    name: str
    factory: Factory
    plugin: str
    default_model: str | None = None
    models: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    distribution: str | None = None

    def model_class(self) -> type[EmbeddingModel]:
        from embedify.model import EmbeddingModel

        if isinstance(self.factory, str):
            module_name, _, attribute = self.factory.partition(":")
            try:
                loaded = getattr(importlib.import_module(module_name), attribute)
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                reinstall = f"Reinstall {self.distribution or 'the plugin'} with its dependencies"
                if self.distribution in FIRST_PARTY_DISTRIBUTIONS:
                    reinstall += f"; {install_hint(self.distribution)}"
                raise ConfigurationError(
                    f"provider {self.name!r} (plugin {self.plugin!r}) could not load "
                    f"{self.factory}: {type(error).__name__}: {error}. {reinstall}"
                ) from error
            if not (isinstance(loaded, type) and issubclass(loaded, EmbeddingModel)):
                raise ConfigurationError(
                    f"provider {self.name!r} (plugin {self.plugin!r}): {self.factory} is not an "
                    f"EmbeddingModel subclass; report it to {self.distribution or 'its author'}."
                )
            self.factory = loaded
        return self.factory


@dataclass(frozen=True)
class ModelAlias:
    alias: str
    target: str
    plugin: str
    distribution: str | None = None


@dataclass
class PluginStatus:
    name: str
    version: str | None
    error: str | None = None
    providers: list[str] = field(default_factory=list)
    distribution: str | None = None
    #: "entry point", "core" (the built-in providers) or "runtime" (``register_model``).
    source: str = "entry point"
    #: The module its entry point names, so a look-alike's code is told from ours.
    module: str | None = None
    #: Registrations refused because they were not well formed, each as a sentence.
    problems: list[str] = field(default_factory=list)


def factory_problem(factory: object) -> str | None:
    """Why ``factory`` cannot build models, or None. A class is checked only when
    ``embedify.model`` is loaded: before that no class can be an ``EmbeddingModel``."""
    if isinstance(factory, str):
        module, colon, attribute = factory.partition(":")
        if colon and attribute.isidentifier() and all(p.isidentifier() for p in module.split(".")):
            return None
        return f"the factory {factory!r} is not 'module:Class'"
    model = sys.modules.get("embedify.model")
    if isinstance(factory, type) and model and issubclass(factory, model.EmbeddingModel):
        return None
    return f"the factory {factory!r} is not an EmbeddingModel subclass nor 'module:Class'"


def name_problem(name: object, what: str, pattern: re.Pattern[str] = PLAIN_NAME) -> str | None:
    if isinstance(name, str) and pattern.match(name):
        return None
    if pattern is PLAIN_NAME:
        rule = "letters, digits, '.', '_' and '-', starting with a letter or digit"
    else:
        rule = "no spaces, not starting with ':'"
    return f"{what} {name!r} is not a usable name ({rule})"


def name_list(values: object, what: str, each: str) -> tuple[tuple[str, ...], str | None]:
    """``values`` as a tuple of names, or why it is not a list of them."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        return (), f"{what} must be a list of names, not {values!r}"
    items = tuple(values)
    for item in items:
        problem = name_problem(item, each, MODEL_NAME)
        if problem:
            return (), problem
    return items, None


def factory_module(factory: Factory) -> str:
    if isinstance(factory, str):
        return factory.partition(":")[0]
    return str(getattr(factory, "__module__", ""))


class RegistrationBook(Protocol):
    """Where the :class:`Registrar` hands each registration (the registry implements it)."""

    def _refuse(self, plugin: str, problem: str) -> None: ...

    def _add_provider(self, provider: Provider) -> None: ...

    def _add_alias(self, alias: ModelAlias) -> None: ...


class Registrar:
    """The callback passed to ``register_models`` (:class:`embedify.hookspecs.Register`). A
    registration that is not well formed is refused alone, with a warning naming the plugin's
    distribution; the plugin's other registrations go on."""

    def __init__(
        self, registry: RegistrationBook, plugin: str, distribution: str | None = None
    ) -> None:
        self._registry = registry
        self._plugin = plugin
        self._distribution = distribution

    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        default_model: str | None = None,
        models: Iterable[str] = (),
        aliases: Iterable[str] = (),
    ) -> None:
        model_ids, models_problem = name_list(models, "models", "the model id")
        alias_names, aliases_problem = name_list(aliases, "aliases", "the alias")
        problem = (
            name_problem(name, "the provider name")
            or factory_problem(factory)
            or models_problem
            or aliases_problem
            or next(filter(None, (name_problem(a, "the alias") for a in alias_names)), None)
        )
        if default_model is not None and not isinstance(default_model, str):
            problem = problem or f"default_model {default_model!r} is not a string"
        if problem:
            self._registry._refuse(self._plugin, f"provider {name!r}: {problem}")
            return
        provider = Provider(
            name,
            factory,
            self._plugin,
            default_model,
            model_ids,
            alias_names,
            self._distribution,
        )
        self._registry._add_provider(provider)

    def alias(self, alias: str, target: str) -> None:
        problem = name_problem(alias, "the alias", MODEL_NAME) or name_problem(
            target, "its target", MODEL_NAME
        )
        if problem:
            self._registry._refuse(self._plugin, f"model alias {alias!r}: {problem}")
            return
        self._registry._add_alias(ModelAlias(alias, target, self._plugin, self._distribution))
