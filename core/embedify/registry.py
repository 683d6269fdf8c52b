"""Plugin loading and name resolution.

Plugins are found through the ``embedify`` entry-point group and registered with one pluggy
``PluginManager``; the built-in fake provider is registered the same way. A plugin that fails
to import or register (any exception, ``SystemExit`` included) is recorded and reported
(``embedify plugins``), never fatal.

Names are owned: when several registrations claim one provider name, provider alias or model
alias, the user's choice wins (``"providers"`` in the user config, or ``EMBEDIFY_PROVIDERS``),
then a name registered at runtime with :func:`register_model`, then the built-in provider, then
the distributions we publish, then the first registration. Every losing registration is kept in
``Registry.conflicts`` and shown by ``embedify plugins``.
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
from typing import TYPE_CHECKING, Any, TypeAlias

import pluggy

from embedify import hookspecs
from embedify.config import default_model_name, load_user_config
from embedify.errors import ConfigurationError, UnknownModelError

if TYPE_CHECKING:  # imported when a model is built, so `embedify --help` skips numpy
    from embedify.model import EmbeddingModel

ENTRY_POINT_GROUP = "embedify"
BUILTIN_PLUGINS = ("embedify.fake",)  # the plugin name of _BuiltinProviders
RUNTIME_PLUGIN = "__runtime__"

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
    "llamaindex": "embedify-llamaindex",
    "langchain": "embedify-langchain",
}
#: Distributions whose names win over a third party's registration of the same name.
FIRST_PARTY_DISTRIBUTIONS = frozenset(
    {
        "embedify",
        *FIRST_PARTY.values(),
        "embedify-pack-minilm",
        "embedify-chroma",
        "embedify-haystack",
        "embedify-server",
        "embedify-ray",
    }
)

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
                raise ConfigurationError(
                    f"provider {self.name!r} (plugin {self.plugin!r}) could not load "
                    f"{self.factory}: {type(error).__name__}: {error}. Reinstall "
                    f"{self.distribution or 'the plugin'} with its dependencies."
                ) from error
            if not (isinstance(loaded, type) and issubclass(loaded, EmbeddingModel)):
                raise TypeError(f"{self.factory} is not an EmbeddingModel subclass")
            self.factory = loaded
        return self.factory


@dataclass(frozen=True)
class ModelAlias:
    alias: str
    target: str
    plugin: str
    distribution: str | None = None


@dataclass(frozen=True)
class Conflict:
    """A name that several registrations claimed, and which one kept it."""

    name: str
    kind: str  # "provider" (names and provider aliases) or "model alias"
    winner: str  # "plugin (distribution)"
    loser: str
    reason: str
    loser_plugin: str


@dataclass
class PluginStatus:
    name: str
    version: str | None
    error: str | None = None
    providers: list[str] = field(default_factory=list)
    distribution: str | None = None


class Register:
    """The callback passed to ``register_models`` (see :mod:`embedify.hookspecs`)."""

    def __init__(self, registry: Registry, plugin: str, distribution: str | None = None) -> None:
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
        provider = Provider(
            name,
            factory,
            self._plugin,
            default_model,
            tuple(models),
            tuple(aliases),
            self._distribution,
        )
        self._registry._add_provider(provider)

    def alias(self, alias: str, target: str) -> None:
        self._registry._add_alias(ModelAlias(alias, target, self._plugin, self._distribution))


def _who(plugin: str, distribution: str | None) -> str:
    return f"{plugin} ({distribution})" if distribution and distribution != plugin else plugin


def _preferences() -> dict[str, str]:
    """Which plugin or distribution the user chose for contested names: the config's
    ``"providers"``, overridden by ``EMBEDIFY_PROVIDERS="name=distribution,..."``."""
    chosen = dict(load_user_config().providers)
    for pair in os.environ.get("EMBEDIFY_PROVIDERS", "").split(","):
        name, equals, owner = pair.partition("=")
        if equals and name.strip() and owner.strip():
            chosen[name.strip()] = owner.strip()
    return chosen


class Registry:
    """Providers, model aliases and the plugins they came from."""

    def __init__(self) -> None:
        self.plugin_manager = pluggy.PluginManager("embedify")
        self.plugin_manager.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginStatus] = {}
        # Every registration, in order; the winners below are settled from them.
        self._registered_providers: list[Provider] = []
        self._registered_aliases: list[ModelAlias] = []
        self.providers: dict[str, Provider] = {}
        self.provider_aliases: dict[str, str] = {}
        self.aliases: dict[str, tuple[str, str]] = {}  # alias -> (target, plugin)
        self.conflicts: list[Conflict] = []
        self.provider_names: dict[str, Provider] = {}  # names and provider aliases
        self._settled = False
        self._warned: set[Conflict] = set()
        self._loaded = False
        self._lock = threading.RLock()

    # -- loading ----------------------------------------------------------------------------

    def load(self) -> None:
        """Import the plugins, run their ``register_models`` hooks (once) and settle which
        registration owns each name."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                self._load_plugins()
            if not self._settled:
                self._settle()

    def _load_plugins(self) -> None:
        self._register_plugin(BUILTIN_PLUGINS[0], _BuiltinProviders, distribution="embedify")
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
            self._register_plugin(entry_point.name, entry_point.load, version, distribution)

    def _register_plugin(
        self, name: str, load: Any, version: str | None = None, distribution: str | None = None
    ) -> None:
        status = PluginStatus(name, version, distribution=distribution)
        self.plugins[name] = status
        try:
            module = load()
            self.plugin_manager.register(module, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit too: one plugin must not stop embedify
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
                implementation.function(register=Register(self, name, status.distribution))
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                self._record_failure(status, "register models", error)

    def _record_failure(self, status: PluginStatus, stage: str, error: BaseException) -> None:
        status.error = f"{stage} failed: {type(error).__name__}: {error}"
        warnings.warn(
            f"embedify plugin {status.name!r} was not loaded ({status.error}); "
            "run 'embedify plugins' for details.",
            RuntimeWarning,
            stacklevel=3,
        )

    def _add_provider(self, provider: Provider) -> None:
        # A plugin registering a name again replaces its own earlier registration.
        self._registered_providers = [
            p
            for p in self._registered_providers
            if not (p.name == provider.name and p.plugin == provider.plugin)
        ]
        self._registered_providers.append(provider)
        self.plugins.setdefault(
            provider.plugin, PluginStatus(provider.plugin, None, distribution=provider.distribution)
        )
        if provider.name not in self.plugins[provider.plugin].providers:
            self.plugins[provider.plugin].providers.append(provider.name)
        self._settled = False

    def _add_alias(self, alias: ModelAlias) -> None:
        self._registered_aliases = [
            a
            for a in self._registered_aliases
            if not (a.alias == alias.alias and a.plugin == alias.plugin)
        ]
        self._registered_aliases.append(alias)
        self._settled = False

    # -- who owns a name ----------------------------------------------------------------------

    def _rank(
        self, name: str, plugin: str, distribution: str | None, chosen: dict[str, str]
    ) -> int:
        """Lower wins: the user's choice, runtime code, built-in, first-party, the rest."""
        if name in chosen and chosen[name] in (plugin, distribution):
            return 0
        if plugin == RUNTIME_PLUGIN:
            return 1
        if plugin in BUILTIN_PLUGINS:
            return 2
        if distribution in FIRST_PARTY_DISTRIBUTIONS:
            return 3
        return 4

    def _settle(self) -> None:
        chosen = _preferences()
        conflicts: list[Conflict] = []
        reasons = {
            0: "chosen by the user",
            1: "registered at runtime",
            2: "built in",
            3: "first-party",
            4: "registered first",
        }

        def pick(name: str, kind: str, claims: list[tuple[str, str | None, Any]]) -> Any:
            ranked = sorted(
                enumerate(claims), key=lambda c: (self._rank(name, c[1][0], c[1][1], chosen), c[0])
            )
            (_, (plugin, distribution, winner)), losers = ranked[0], ranked[1:]
            rank = self._rank(name, plugin, distribution, chosen)
            for _, (other_plugin, other_distribution, _) in losers:
                conflicts.append(
                    Conflict(
                        name,
                        kind,
                        _who(plugin, distribution),
                        _who(other_plugin, other_distribution),
                        reasons[rank],
                        other_plugin,
                    )
                )
            return winner

        provider_claims: dict[str, list[tuple[str, str | None, Provider]]] = {}
        for provider in self._registered_providers:
            for name in (provider.name, *provider.aliases):
                provider_claims.setdefault(name, []).append(
                    (provider.plugin, provider.distribution, provider)
                )
        names = {name: pick(name, "provider", c) for name, c in provider_claims.items()}
        self.provider_names = names
        self.providers = {n: p for n, p in names.items() if p.name == n}
        self.provider_aliases = {n: p.name for n, p in names.items() if p.name != n}

        alias_claims: dict[str, list[tuple[str, str | None, ModelAlias]]] = {}
        for alias in self._registered_aliases:
            refusal = self._alias_refusal(alias, chosen)
            if refusal:
                conflicts.append(refusal)
                continue
            alias_claims.setdefault(alias.alias, []).append(
                (alias.plugin, alias.distribution, alias)
            )
        self.aliases = {
            name: ((winner := pick(name, "model alias", c)).target, winner.plugin)
            for name, c in alias_claims.items()
        }
        self.conflicts = conflicts
        self._settled = True
        for conflict in conflicts:
            if conflict in self._warned or conflict.reason == "chosen by the user":
                continue
            self._warned.add(conflict)
            warnings.warn(
                f"embedify: {conflict.kind} {conflict.name!r} is registered by "
                f"{conflict.winner} and by {conflict.loser}; using {conflict.winner}'s "
                f"({conflict.reason}). To choose, set EMBEDIFY_PROVIDERS="
                f"'{conflict.name}=<distribution>'.",
                RuntimeWarning,
                stacklevel=2,
            )

    def _alias_refusal(self, alias: ModelAlias, chosen: dict[str, str]) -> Conflict | None:
        """An alias under another distribution's provider (``"openai:..."``) may point only at
        that same provider, as a model pack does; it may not send the name elsewhere."""
        prefix, colon, _ = alias.alias.partition(":")
        owner = self.provider_names.get(prefix) if colon else None
        if owner is None or owner.distribution == alias.distribution:
            return None
        if self._rank(alias.alias, alias.plugin, alias.distribution, chosen) <= 1:
            return None
        target = self.provider_names.get(alias.target.partition(":")[0])
        if target is owner:
            return None
        return Conflict(
            alias.alias,
            "model alias",
            _who(owner.plugin, owner.distribution),
            _who(alias.plugin, alias.distribution),
            f"it would send {owner.name!r}'s name to {alias.target!r}",
            alias.plugin,
        )

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
                if colon or name in FIRST_PARTY:
                    raise UnknownModelError(self._unknown_provider(provider_name))
                return self._claimed_by(name), name

    def _provider(self, name: str) -> Provider | None:
        return self.provider_names.get(name)

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
        close = [c for c in difflib.get_close_matches(model_id, known, n=3) if c != model_id]
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
        candidates = {*self.provider_names, *FIRST_PARTY} - {name}
        close = difflib.get_close_matches(name, sorted(candidates), n=3)
        if close:
            message += f" Did you mean {', '.join(map(repr, close))}?"
        installed = ", ".join(sorted(self.providers)) or "none"
        return f"{message} Installed providers: {installed}."


class _BuiltinProviders:
    """The core's own providers, registered the way a plugin's are (and as lazily)."""

    @staticmethod
    @hookspecs.hookimpl
    def register_models(register: Register) -> None:
        register("fake", "embedify.fake:FakeEmbeddingModel", default_model="64")


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
    Register(registry, RUNTIME_PLUGIN)(
        name, model_class, default_model=default_model, models=models, aliases=aliases
    )
