"""Plugin loading and name resolution.

Plugins are found through the ``embedify`` entry-point group and registered with one pluggy
``PluginManager``; the built-in fake provider is registered the same way. A plugin that fails
to import or register is recorded and reported (``embedify plugins``), never fatal.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from embedify import hookspecs
from embedify.config import default_model_name, load_user_config
from embedify.errors import ConfigurationError, UnknownModelError
from embedify.model import EmbeddingModel

ENTRY_POINT_GROUP = "embedify"
BUILTIN_PLUGINS = ("embedify.fake",)

#: Providers we publish, so an unknown name can say what to install.
FIRST_PARTY = {
    "openai": "embedify-openai",
    "azure": "embedify-azure-openai",
    "cohere": "embedify-cohere",
    "jina": "embedify-jina",
    "tei": "embedify-tei",
    "local": "embedify-huggingface",
    "hf": "embedify-huggingface",
    "huggingface": "embedify-huggingface",
    "instructor": "embedify-instructor",
}

Factory = type[EmbeddingModel] | str


@dataclass
class Provider:
    name: str
    factory: Factory
    plugin: str
    default_model: str | None = None
    models: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def model_class(self) -> type[EmbeddingModel]:
        if isinstance(self.factory, str):
            module_name, _, attribute = self.factory.partition(":")
            loaded = getattr(importlib.import_module(module_name), attribute)
            if not (isinstance(loaded, type) and issubclass(loaded, EmbeddingModel)):
                raise TypeError(f"{self.factory} is not an EmbeddingModel subclass")
            self.factory = loaded
        return self.factory


@dataclass
class PluginStatus:
    name: str
    version: str | None
    error: str | None = None
    providers: list[str] = field(default_factory=list)


class Register:
    """The callback passed to ``register_models`` (see :mod:`embedify.hookspecs`)."""

    def __init__(self, registry: Registry, plugin: str) -> None:
        self._registry = registry
        self._plugin = plugin

    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        default_model: str | None = None,
        models: Iterable[str] = (),
        aliases: Iterable[str] = (),
    ) -> None:
        provider = Provider(
            name, factory, self._plugin, default_model, tuple(models), tuple(aliases)
        )
        self._registry._add_provider(provider)

    def alias(self, alias: str, target: str) -> None:
        self._registry._add_alias(alias, target, self._plugin)


class Registry:
    """Providers, model aliases and the plugins they came from."""

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager("embedify")
        self.plugin_manager.add_hookspecs(hookspecs)
        self.providers: dict[str, Provider] = {}
        self.provider_aliases: dict[str, str] = {}
        self.aliases: dict[str, tuple[str, str]] = {}  # alias -> (target, plugin)
        self.plugins: dict[str, PluginStatus] = {}
        self._loaded = False
        self._lock = threading.RLock()

    # -- loading ----------------------------------------------------------------------------

    def load(self) -> None:
        """Import the plugins and run their ``register_models`` hooks (once)."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module_name in BUILTIN_PLUGINS:
                self._register_plugin(module_name, lambda m=module_name: importlib.import_module(m))
            if os.environ.get("EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
                return
            wanted = {
                name.strip()
                for name in os.environ.get("EMBEDIFY_PLUGINS", "").split(",")
                if name.strip()
            }
            entry_points = sorted(
                importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name
            )
            for entry_point in entry_points:
                distribution = entry_point.dist.name if entry_point.dist else None
                if wanted and not wanted & {entry_point.name, distribution}:
                    continue
                version = entry_point.dist.version if entry_point.dist else None
                self._register_plugin(entry_point.name, entry_point.load, version)

    def _register_plugin(self, name: str, load: Any, version: str | None = None) -> None:
        status = PluginStatus(name, version)
        self.plugins[name] = status
        try:
            module = load()
            self.plugin_manager.register(module, name=name)
        except Exception as error:
            self._record_failure(status, "import", error)
            return
        self._register_models_of(module, name)

    def _register_models_of(self, plugin: object, name: str) -> None:
        """Run one plugin object's ``register_models`` hook, recording any failure."""
        status = self.plugins.setdefault(name, PluginStatus(name, None))
        for implementation in self.plugin_manager.hook.register_models.get_hookimpls():
            if implementation.plugin is not plugin:
                continue
            try:
                implementation.function(register=Register(self, name))
            except Exception as error:
                self._record_failure(status, "register models", error)

    def _record_failure(self, status: PluginStatus, stage: str, error: Exception) -> None:
        status.error = f"{stage} failed: {type(error).__name__}: {error}"
        warnings.warn(
            f"embedify plugin {status.name!r} was not loaded ({status.error}); "
            "run 'embedify plugins' for details.",
            RuntimeWarning,
            stacklevel=3,
        )

    def _add_provider(self, provider: Provider) -> None:
        existing = self.providers.get(provider.name)
        if existing is not None and existing.plugin != provider.plugin:
            warnings.warn(
                f"provider {provider.name!r} is registered by both plugin {existing.plugin!r} "
                f"and plugin {provider.plugin!r}; using {provider.plugin!r}'s.",
                RuntimeWarning,
                stacklevel=4,
            )
        self.providers[provider.name] = provider
        self.plugins.setdefault(provider.plugin, PluginStatus(provider.plugin, None))
        self.plugins[provider.plugin].providers.append(provider.name)
        for alias in provider.aliases:
            self.provider_aliases[alias] = provider.name

    def _add_alias(self, alias: str, target: str, plugin: str) -> None:
        if alias in self.aliases and self.aliases[alias][1] != plugin:
            warnings.warn(
                f"alias {alias!r} is registered by both plugin {self.aliases[alias][1]!r} and "
                f"plugin {plugin!r}; using {plugin!r}'s.",
                RuntimeWarning,
                stacklevel=4,
            )
        self.aliases[alias] = (target, plugin)

    # -- resolution ---------------------------------------------------------------------------

    def resolve(self, name: str) -> tuple[Provider, str | None]:
        """The provider and model id a name stands for (see the name grammar in the docs)."""
        self.load()
        user_aliases = load_user_config().aliases
        seen: list[str] = []
        while True:
            if name in seen:
                raise ConfigurationError(f"alias loop: {' -> '.join([*seen, name])}")
            seen.append(name)
            if name in user_aliases:
                name = user_aliases[name]
            elif name in self.aliases:
                name = self.aliases[name][0]
            else:
                provider_name, colon, model_id = name.partition(":")
                provider = self._provider(provider_name)
                if colon and provider is not None:
                    return provider, model_id
                if not colon and provider is not None:
                    default = provider.default_model
                    full = f"{provider.name}:{default}" if default else None
                    if full and (full in self.aliases or full in user_aliases):
                        name = full
                        continue
                    return provider, default
                if colon:
                    raise UnknownModelError(self._unknown_provider(provider_name))
                return self._claimed_by(name), name

    def _provider(self, name: str) -> Provider | None:
        return self.providers.get(self.provider_aliases.get(name, name))

    def _claimed_by(self, model_id: str) -> Provider:
        claims = [p for p in self.providers.values() if model_id in p.models]
        if len(claims) == 1:
            return claims[0]
        if claims:
            options = ", ".join(f"{p.name}:{model_id}" for p in claims)
            raise UnknownModelError(
                f"{model_id!r} is served by several providers; pick one: {options}"
            )
        known = [*self.providers, *self.provider_aliases, *self.aliases]
        known += [m for p in self.providers.values() for m in p.models]
        close = difflib.get_close_matches(model_id, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        if "/" in model_id and "local" not in self.providers:
            hint += " Local Hugging Face models need: pip install embedify-huggingface"
        elif "/" in model_id:
            hint += f" For a local Hugging Face model, use 'local:{model_id}'."
        raise UnknownModelError(
            f"No installed provider knows the model {model_id!r}.{hint} "
            "Names look like 'provider:model'; 'embedify models' lists what is installed."
        )

    def _unknown_provider(self, name: str) -> str:
        message = f"Unknown provider {name!r}."
        if name in FIRST_PARTY:
            message += f" Install it with: pip install {FIRST_PARTY[name]}"
        close = difflib.get_close_matches(name, [*self.providers, *FIRST_PARTY], n=3)
        if close:
            message += f" Did you mean {', '.join(map(repr, close))}?"
        installed = ", ".join(sorted(self.providers)) or "none"
        return f"{message} Installed providers: {installed}."


registry = Registry()


def get_model(name: str | None = None, **options: Any) -> EmbeddingModel:
    """Build the model a name stands for, e.g. ``get_model("openai:text-embedding-3-small",
    dimensions=256)``. ``None`` uses ``EMBEDIFY_MODEL``, the user config, then ``"local"``.
    Keyword arguments are the model's options."""
    provider, model_id = registry.resolve(name or default_model_name())
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
    Register(registry, "__runtime__")(
        name, model_class, default_model=default_model, models=models, aliases=aliases
    )
