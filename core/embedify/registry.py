"""Plugin loading and name resolution.

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
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar

import pluggy

from embedify import hookspecs
from embedify.config import default_model_name, load_user_config
from embedify.errors import ConfigurationError, UnknownModelError

if TYPE_CHECKING:  # imported when a model is built, so `embedify --help` skips numpy
    from embedify.model import EmbeddingModel

ENTRY_POINT_GROUP = "embedify"
BUILTIN_PLUGINS = ("embedify.fake",)  # the plugin name of _BuiltinProviders
RUNTIME_PLUGIN = "__runtime__"
CORE_DISTRIBUTION = "embedify"


@dataclass(frozen=True)
class Shipped:
    """A distribution this project publishes: the package its code lives in, and the names it
    owns (provider names and provider aliases, model aliases, CLI commands)."""

    package: str
    providers: tuple[str, ...] = ()
    model_aliases: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()


#: Every distribution we publish, and what it owns. Only these are first-party.
FIRST_PARTY_DISTRIBUTIONS: dict[str, Shipped] = {
    CORE_DISTRIBUTION: Shipped("embedify", providers=("fake",)),
    "embedify-openai": Shipped("embedify_openai", providers=("openai",)),
    "embedify-azure-openai": Shipped("embedify_azure_openai", providers=("azure", "azure-openai")),
    "embedify-cohere": Shipped("embedify_cohere", providers=("cohere",)),
    "embedify-jina": Shipped("embedify_jina", providers=("jina",)),
    "embedify-tei": Shipped("embedify_tei", providers=("tei",)),
    "embedify-huggingface": Shipped(
        "embedify_huggingface", providers=("local", "hf", "huggingface"), commands=("export",)
    ),
    "embedify-instructor": Shipped("embedify_instructor", providers=("instructor",)),
    "embedify-bedrock": Shipped("embedify_bedrock", providers=("bedrock",)),
    "embedify-gemini": Shipped("embedify_gemini", providers=("gemini",)),
    "embedify-mistral": Shipped("embedify_mistral", providers=("mistral",)),
    "embedify-ollama": Shipped("embedify_ollama", providers=("ollama",)),
    "embedify-voyage": Shipped("embedify_voyage", providers=("voyage",)),
    "embedify-llamaindex": Shipped("embedify_llamaindex", providers=("llamaindex",)),
    "embedify-langchain": Shipped("embedify_langchain", providers=("langchain",)),
    "embedify-pack-minilm": Shipped(
        "embedify_pack_minilm",
        model_aliases=(
            "local:sentence-transformers/all-MiniLM-L6-v2",
            "all-MiniLM-L6-v2",
            "all-minilm-l6-v2",
        ),
    ),
    "embedify-chroma": Shipped("embedify_chroma"),
    "embedify-haystack": Shipped("embedify_haystack"),
    "embedify-server": Shipped("embedify_server", commands=("serve",)),
    "embedify-ray": Shipped("embedify_ray", commands=("embed-dataset",)),
}


def _owners(kind: str) -> dict[str, str]:
    return {
        name: distribution
        for distribution, shipped in FIRST_PARTY_DISTRIBUTIONS.items()
        for name in getattr(shipped, kind)
    }


#: Which distribution owns each reserved provider name or alias, model alias and command.
PROVIDER_OWNERS = _owners("providers")
MODEL_ALIAS_OWNERS = _owners("model_aliases")
COMMAND_OWNERS = _owners("commands")
#: Providers we publish as their own distributions, so an unknown name can say what to install.
FIRST_PARTY = {n: d for n, d in PROVIDER_OWNERS.items() if d != CORE_DISTRIBUTION}

#: Where a registration comes from; the order is the rank (first wins) of a contested name.
RUNTIME = "registered at runtime"
BUILT_IN = "built in"
FIRST_PARTY_ORIGIN = "first-party"
THIRD_PARTY = "third party"
_ORIGIN_RANK = {RUNTIME: 1, BUILT_IN: 2, FIRST_PARTY_ORIGIN: 3, THIRD_PARTY: 4}
#: The variable that chooses the owner of a contested name, by kind of name.
CHOICE_VARIABLES = {
    "provider": "EMBEDIFY_PROVIDERS",
    "model alias": "EMBEDIFY_PROVIDERS",
    "command": "EMBEDIFY_COMMANDS",
}

# Provider names, provider aliases and commands: what a user types, so no spaces or colons.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Model aliases and their targets may hold a colon ("local:org/model"), never whitespace.
_MODEL_NAME = re.compile(r"[^\s:][^\s]*\Z")


def in_package(module: str | None, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it (``None``, not known, counts as inside:
    only registrations that did not come through an entry point lack one)."""
    return module is None or module == package or module.startswith(package + ".")


def shipped_for(
    name: str, owners: dict[str, str], distribution: str | None, modules: Iterable[str | None]
) -> bool:
    """Whether a registration of ``name`` is first-party: its distribution is the one
    ``owners`` names for ``name``, and every module it comes from is in that one's package."""
    owner = owners.get(name)
    if owner is None or owner != distribution:
        return False
    package = FIRST_PARTY_DISTRIBUTIONS[owner].package
    return all(in_package(module, package) for module in modules)


def install_hint(distribution: str) -> str:
    """How to install one of our distributions today: they are not on PyPI yet, so from a
    checkout of the repository, where each lives in ``plugins/<name without embedify->``."""
    folder = distribution.removeprefix("embedify-")
    return (
        f"install {distribution} (not on PyPI yet) from a checkout of the embedify repository: "
        f"pip install ./plugins/{folder}"
    )


def close_matches(name: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x', 'y'?`` for the candidates close to ``name`` (never ``name``
    itself), or an empty string."""
    close = difflib.get_close_matches(name, sorted(set(candidates) - {name}), n=3)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def reserved_owner(name: str, owners: dict[str, str]) -> str | None:
    """Who ``name`` is reserved for, as shown to users, or None when anyone may take it."""
    owner = owners.get(name)
    if owner is None:
        return None
    return f"{owner} (built in)" if owner == CORE_DISTRIBUTION else owner


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


@dataclass(frozen=True)
class Conflict:
    """A name that several registrations claimed, and which one kept it; or, with
    ``refused``, a third party's claim on a reserved name (``winner`` is then its owner)."""

    name: str
    kind: str  # "provider" (names and provider aliases), "model alias" or "command"
    winner: str  # "plugin (distribution)"
    loser: str
    reason: str
    loser_plugin: str
    refused: bool = False


@dataclass(frozen=True)
class Override:
    """A reserved name held by a third party because the user chose it."""

    name: str
    kind: str
    holder: str  # "plugin (distribution)"
    owner: str  # who the name is reserved for
    plugin: str


T = TypeVar("T")


@dataclass(frozen=True)
class Claim(Generic[T]):
    """One registration of a name: who made it, where it comes from, and what it registers."""

    name: str
    plugin: str
    distribution: str | None
    origin: str  # RUNTIME, BUILT_IN, FIRST_PARTY_ORIGIN or THIRD_PARTY
    value: T


@dataclass(frozen=True)
class Ownership(Generic[T]):
    winner: Claim[T] | None
    conflicts: list[Conflict]
    override: Override | None


def decide_owner(
    name: str, kind: str, claims: Sequence[Claim[T]], reserved_for: str | None, chosen: str | None
) -> Ownership[T]:
    """Who keeps ``name`` among ``claims`` (in registration order). A third-party claim on a
    name ``reserved_for`` someone is refused unless it is the user's ``chosen`` plugin or
    distribution; of the rest, the chosen one wins, then by origin (runtime, built in,
    first-party, third party), then the first registered. A third party keeping a reserved
    name is an ``override``, which the caller warns about."""

    def is_chosen(claim: Claim[T]) -> bool:
        return chosen is not None and chosen in (claim.plugin, claim.distribution)

    conflicts: list[Conflict] = []
    allowed: list[Claim[T]] = []
    for claim in claims:
        if reserved_for and claim.origin == THIRD_PARTY and not is_chosen(claim):
            who = _who(claim.plugin, claim.distribution)
            reason = f"reserved for {reserved_for}"
            conflicts.append(Conflict(name, kind, reserved_for, who, reason, claim.plugin, True))
        else:
            allowed.append(claim)
    if not allowed:
        return Ownership(None, conflicts, None)
    winner = min(allowed, key=lambda c: 0 if is_chosen(c) else _ORIGIN_RANK[c.origin])
    reason = "chosen by the user" if is_chosen(winner) else winner.origin
    if reason == THIRD_PARTY:
        reason = "registered first"
    winner_who = _who(winner.plugin, winner.distribution)
    for claim in allowed:
        if claim is not winner:
            loser = _who(claim.plugin, claim.distribution)
            conflicts.append(Conflict(name, kind, winner_who, loser, reason, claim.plugin))
    override = None
    if reserved_for and winner.origin == THIRD_PARTY:
        override = Override(name, kind, winner_who, reserved_for, winner.plugin)
    return Ownership(winner, conflicts, override)


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


def _factory_problem(factory: object) -> str | None:
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


def _name_problem(name: object, what: str, pattern: re.Pattern[str] = _NAME) -> str | None:
    if isinstance(name, str) and pattern.match(name):
        return None
    if pattern is _NAME:
        rule = "letters, digits, '.', '_' and '-', starting with a letter or digit"
    else:
        rule = "no spaces, not starting with ':'"
    return f"{what} {name!r} is not a usable name ({rule})"


def _strings(values: object, what: str, each: str) -> tuple[tuple[str, ...], str | None]:
    """``values`` as a tuple of names, or why it is not a list of them."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        return (), f"{what} must be a list of names, not {values!r}"
    items = tuple(values)
    for item in items:
        problem = _name_problem(item, each, _MODEL_NAME)
        if problem:
            return (), problem
    return items, None


def _factory_module(factory: Factory) -> str:
    if isinstance(factory, str):
        return factory.partition(":")[0]
    return str(getattr(factory, "__module__", ""))


class Registrar:
    """The callback passed to ``register_models`` (:class:`embedify.hookspecs.Register`). A
    registration that is not well formed is refused alone, with a warning naming the plugin's
    distribution; the plugin's other registrations go on."""

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
        model_ids, models_problem = _strings(models, "models", "the model id")
        alias_names, aliases_problem = _strings(aliases, "aliases", "the alias")
        problem = (
            _name_problem(name, "the provider name")
            or _factory_problem(factory)
            or models_problem
            or aliases_problem
            or next(filter(None, (_name_problem(a, "the alias") for a in alias_names)), None)
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
        problem = _name_problem(alias, "the alias", _MODEL_NAME) or _name_problem(
            target, "its target", _MODEL_NAME
        )
        if problem:
            self._registry._refuse(self._plugin, f"model alias {alias!r}: {problem}")
            return
        self._registry._add_alias(ModelAlias(alias, target, self._plugin, self._distribution))


def _who(plugin: str, distribution: str | None) -> str:
    return f"{plugin} ({distribution})" if distribution and distribution != plugin else plugin


def _preferences(kind: str = "providers") -> dict[str, str]:
    """Which plugin or distribution the user chose for contested names of a kind
    (``"providers"``, which covers model aliases too, or ``"commands"``): the config's table of
    that name, overridden by ``EMBEDIFY_PROVIDERS`` / ``EMBEDIFY_COMMANDS="name=owner,..."``."""
    config = load_user_config()
    chosen = dict(config.commands if kind == "commands" else config.providers)
    for pair in os.environ.get(f"EMBEDIFY_{kind.upper()}", "").split(","):
        name, equals, owner = pair.partition("=")
        if equals and name.strip() and owner.strip():
            chosen[name.strip()] = owner.strip()
    return chosen


def _shipped_entry_point(entry_point: importlib.metadata.EntryPoint) -> bool:
    distribution = entry_point.dist.name if entry_point.dist else None
    shipped = FIRST_PARTY_DISTRIBUTIONS.get(distribution or "")
    return shipped is not None and in_package(entry_point.module, shipped.package)


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
        self.overrides: list[Override] = []
        self.provider_names: dict[str, Provider] = {}  # names and provider aliases
        #: Who holds each name, for ``embedify plugins``: (kind, name) -> (who, origin).
        self.owners: dict[tuple[str, str], tuple[str, str]] = {}
        self.command_conflicts: list[Conflict] = []
        self.command_overrides: list[Override] = []
        self._settled = False
        self._warned: set[Conflict | Override] = set()
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
        self._register_plugin(
            BUILTIN_PLUGINS[0], _BuiltinProviders, distribution=CORE_DISTRIBUTION, source="core"
        )
        if os.environ.get("EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
            return
        wanted = {
            name.strip()
            for name in os.environ.get("EMBEDIFY_PLUGINS", "").split(",")
            if name.strip()
        }
        # By name; for one name, our own distribution first, then by distribution name, so
        # which of two look-alikes loads never depends on the order of sys.path.
        entry_points = sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
            key=lambda ep: (
                ep.name,
                not _shipped_entry_point(ep),
                ep.dist.name if ep.dist else "",
            ),
        )
        for entry_point in entry_points:
            distribution = entry_point.dist.name if entry_point.dist else None
            if wanted and not wanted & {entry_point.name, distribution}:
                continue
            version = entry_point.dist.version if entry_point.dist else None
            self._register_plugin(
                entry_point.name, entry_point.load, version, distribution, module=entry_point.module
            )

    def _register_plugin(
        self,
        name: str,
        load: Any,
        version: str | None = None,
        distribution: str | None = None,
        *,
        source: str = "entry point",
        module: str | None = None,
    ) -> None:
        if name in self.plugins or name == RUNTIME_PLUGIN:
            holder = self.plugins.get(name)
            taken = _who(name, holder.distribution) if holder else "embedify (runtime)"
            warnings.warn(
                f"embedify: the plugin {name!r} of {distribution or 'an unknown distribution'} "
                f"was not loaded: that plugin name is already taken by {taken}.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        status = PluginStatus(name, version, distribution=distribution, source=source)
        status.module = module
        self.plugins[name] = status
        try:
            loaded = load()
            self.plugin_manager.register(loaded, name=name)
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # SystemExit too: one plugin must not stop embedify
            self._record_failure(status, "import", error)
            return
        self._register_models_of(loaded, name)

    def _register_models_of(self, plugin: object, name: str) -> None:
        """Run one plugin object's ``register_models`` hook, recording any failure."""
        status = self.plugins.setdefault(name, PluginStatus(name, None))
        for implementation in self.plugin_manager.hook.register_models.get_hookimpls():
            if implementation.plugin is not plugin:
                continue
            try:
                implementation.function(register=Registrar(self, name, status.distribution))
            except KeyboardInterrupt:
                raise
            except BaseException as error:
                self._record_failure(status, "register models", error)

    def _record_failure(self, status: PluginStatus, stage: str, error: BaseException) -> None:
        status.error = f"{stage} failed: {type(error).__name__}: {error}"
        warnings.warn(
            f"embedify plugin {_who(status.name, status.distribution)!r} was not loaded "
            f"({status.error}); run 'embedify plugins' for details.",
            RuntimeWarning,
            stacklevel=3,
        )

    def _refuse(self, plugin: str, problem: str) -> None:
        """One registration that is not well formed: kept out, recorded and warned about; at
        runtime (``register_model``), the caller's own mistake, an error."""
        status = self.plugins.setdefault(plugin, PluginStatus(plugin, None))
        if status.source == "runtime":
            raise ConfigurationError(f"register_model refused the {problem}.")
        status.problems.append(problem)
        warnings.warn(
            f"embedify: refused the {problem} (plugin {_who(plugin, status.distribution)}).",
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

    def origin(
        self, plugin: str, name: str, owners: dict[str, str], modules: Iterable[str | None] = ()
    ) -> str:
        """Where a plugin's registration of ``name`` comes from: the core's own plugin is built
        in, ``register_model`` is runtime; an entry point is first-party only for a name the
        table gives its distribution, with its entry point and ``modules`` in that package."""
        status = self.plugins.get(plugin)
        if status is None:
            return THIRD_PARTY
        if status.source == "runtime":
            return RUNTIME
        if status.source == "core":
            return BUILT_IN
        modules = (status.module, *modules)
        return (
            FIRST_PARTY_ORIGIN
            if shipped_for(name, owners, status.distribution, modules)
            else THIRD_PARTY
        )

    def _settle(self) -> None:
        chosen = _preferences()
        conflicts: list[Conflict] = []
        overrides: list[Override] = []
        owners: dict[tuple[str, str], tuple[str, str]] = {
            k: v for k, v in self.owners.items() if k[0] == "command"
        }

        def pick(name: str, kind: str, claims: list[Claim[T]], reserved: str | None) -> T | None:
            decided = decide_owner(name, kind, claims, reserved, chosen.get(name))
            conflicts.extend(decided.conflicts)
            if decided.override:
                overrides.append(decided.override)
            if decided.winner is None:
                return None
            winner = decided.winner
            owners[(kind, name)] = (_who(winner.plugin, winner.distribution), winner.origin)
            return winner.value

        provider_claims: dict[str, list[Claim[Provider]]] = {}
        for provider in self._registered_providers:
            for name in (provider.name, *provider.aliases):
                origin = self.origin(
                    provider.plugin, name, PROVIDER_OWNERS, [_factory_module(provider.factory)]
                )
                provider_claims.setdefault(name, []).append(
                    Claim(name, provider.plugin, provider.distribution, origin, provider)
                )
        names = {
            name: winner
            for name, claims in provider_claims.items()
            if (winner := pick(name, "provider", claims, reserved_owner(name, PROVIDER_OWNERS)))
        }
        self.provider_names = names
        self.providers = {n: p for n, p in names.items() if p.name == n}
        self.provider_aliases = {n: p.name for n, p in names.items() if p.name != n}

        alias_claims: dict[str, list[Claim[ModelAlias]]] = {}
        for alias in self._registered_aliases:
            origin = self.origin(alias.plugin, alias.alias, MODEL_ALIAS_OWNERS)
            refusal = self._alias_refusal(alias, origin, chosen)
            if refusal:
                conflicts.append(refusal)
                continue
            alias_claims.setdefault(alias.alias, []).append(
                Claim(alias.alias, alias.plugin, alias.distribution, origin, alias)
            )
        self.aliases = {
            name: (kept.target, kept.plugin)
            for name, claims in alias_claims.items()
            if (kept := pick(name, "model alias", claims, reserved_owner(name, MODEL_ALIAS_OWNERS)))
        }
        self.conflicts = conflicts
        self.overrides = overrides
        self.owners = owners
        self._settled = True
        self._warn(conflicts, overrides)

    def _warn(self, conflicts: list[Conflict], overrides: list[Override]) -> None:
        """Each refusal, lost name and override once (a user's choice between third parties
        is not warned about; a third party holding a reserved name always is)."""
        for conflict in conflicts:
            if conflict in self._warned or conflict.reason == "chosen by the user":
                continue
            self._warned.add(conflict)
            variable = CHOICE_VARIABLES[conflict.kind]
            if conflict.refused:
                distribution = self.plugins.get(conflict.loser_plugin)
                owner = (distribution and distribution.distribution) or conflict.loser_plugin
                message = (
                    f"embedify: refused the {conflict.kind} {conflict.name!r} of "
                    f"{conflict.loser}: {conflict.reason}. To use it anyway, set "
                    f"{variable}='{conflict.name}={owner}'."
                )
            else:
                message = (
                    f"embedify: {conflict.kind} {conflict.name!r} is registered by "
                    f"{conflict.winner} and by {conflict.loser}; using {conflict.winner}'s "
                    f"({conflict.reason}). To choose, set {variable}="
                    f"'{conflict.name}=<distribution>'."
                )
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        for override in overrides:
            if override in self._warned:
                continue
            self._warned.add(override)
            warnings.warn(
                f"embedify: the {override.kind} {override.name!r} is provided by "
                f"{override.holder}, a third party, instead of {override.owner}, because you "
                f"chose it ({CHOICE_VARIABLES[override.kind]} or the user config).",
                RuntimeWarning,
                stacklevel=3,
            )

    def _alias_refusal(
        self, alias: ModelAlias, origin: str, chosen: dict[str, str]
    ) -> Conflict | None:
        """A third party's alias under a provider name that is reserved or another
        distribution's (``"openai"``, ``"openai:..."``) may point only at that same provider,
        as a model pack does; it may not send the name elsewhere, unless the user chose it."""
        if origin in (RUNTIME, BUILT_IN) or chosen.get(alias.alias) in (
            alias.plugin,
            alias.distribution,
        ):
            return None
        prefix = alias.alias.partition(":")[0]
        reserved = reserved_owner(prefix, PROVIDER_OWNERS)
        owner = self.provider_names.get(prefix)
        status = self.plugins.get(alias.plugin)
        module = status.module if status else None
        if reserved and not shipped_for(prefix, PROVIDER_OWNERS, alias.distribution, [module]):
            holder = reserved
        elif ":" in alias.alias and owner and owner.distribution != alias.distribution:
            holder = _who(owner.plugin, owner.distribution)
        else:
            return None
        target = alias.target.partition(":")[0]
        if target == prefix or (owner is not None and self.provider_names.get(target) is owner):
            return None
        return Conflict(
            alias.alias,
            "model alias",
            holder,
            _who(alias.plugin, alias.distribution),
            f"it would send {prefix!r} to {alias.target!r}",
            alias.plugin,
            refused=True,
        )

    def settle_commands(
        self, built_in: Iterable[str], claims: Iterable[tuple[str, str, Any, str | None]]
    ) -> dict[str, Any]:
        """Decide which plugin command (``(name, plugin, command, module)``, in hook order)
        gets each name: built-in commands are reserved for the core, first-party ones (the
        table's ``commands``) for their distribution. Returns the commands to add."""
        self.load()
        chosen = _preferences("commands")
        built_in = set(built_in)
        by_name: dict[str, list[Claim[Any]]] = {}
        for name, plugin, command, module in claims:
            problem = _name_problem(name, "the command name")
            if problem:
                self._refuse(plugin, f"command {name!r}: {problem}")
                continue
            status = self.plugins.get(plugin)
            origin = self.origin(plugin, name, COMMAND_OWNERS, [module])
            distribution = status.distribution if status else None
            by_name.setdefault(name, []).append(Claim(name, plugin, distribution, origin, command))
        for name in sorted(built_in):
            self.owners[("command", name)] = (CORE_DISTRIBUTION, BUILT_IN)
        winners: dict[str, Any] = {}
        conflicts: list[Conflict] = []
        overrides: list[Override] = []
        for name, named in by_name.items():
            reserved = f"{CORE_DISTRIBUTION} (built in)" if name in built_in else None
            decided = decide_owner(
                name,
                "command",
                named,
                reserved or reserved_owner(name, COMMAND_OWNERS),
                chosen.get(name),
            )
            conflicts += decided.conflicts
            if decided.override:
                overrides.append(decided.override)
            if decided.winner:
                winner = decided.winner
                winners[name] = winner.value
                who = _who(winner.plugin, winner.distribution)
                self.owners[("command", name)] = (who, winner.origin)
        self.command_conflicts = conflicts
        self.command_overrides = overrides
        self._warn(conflicts, overrides)
        return winners

    def missing_command(self, name: str) -> str | None:
        """What to say about the command ``name`` that no loaded plugin adds, when one of our
        distributions would add it; None when none of ours does."""
        distribution = COMMAND_OWNERS.get(name)
        if distribution is None:
            return None
        what = f"'embedify {name}' comes with {distribution}"
        if any(status.distribution == distribution for status in self.plugins.values()):
            return f"{what}, which is installed but did not add it; 'embedify plugins' says why."
        return f"{what}, which is not installed; {install_hint(distribution)}"

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
        known = [*self.provider_names, *FIRST_PARTY, *self.aliases]
        known += [m for p in self.providers.values() for m in p.models]
        hint = close_matches(model_id, known)
        install = ""
        if "/" in model_id and "local" not in self.providers:
            install = f" For local Hugging Face models, {install_hint(FIRST_PARTY['local'])}"
        elif "/" in model_id:
            hint += f" For a local Hugging Face model, use 'local:{model_id}'."
        raise UnknownModelError(
            f"No installed provider knows the model {model_id!r}.{hint} Names look like "
            f"'provider:model'; 'embedify models' lists what is installed.{install}"
        )

    def _unknown_provider(self, name: str) -> str:
        """Close matches and what is installed; for one of ours, how to install it, last, so
        that the line ends with the command."""
        hint = close_matches(name, [*self.provider_names, *FIRST_PARTY])
        installed = ", ".join(sorted(self.providers)) or "none"
        message = f"Unknown provider {name!r}.{hint} Installed providers: {installed}."
        if name in FIRST_PARTY:
            message += f" To use {name!r}, {install_hint(FIRST_PARTY[name])}"
        return message


class _BuiltinProviders:
    """The core's own providers, registered the way a plugin's are (and as lazily)."""

    @staticmethod
    @hookspecs.hookimpl
    def register_models(register: hookspecs.Register) -> None:
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
    registry.plugins.setdefault(
        RUNTIME_PLUGIN, PluginStatus(RUNTIME_PLUGIN, None, source="runtime")
    )
    Registrar(registry, RUNTIME_PLUGIN)(
        name, model_class, default_model=default_model, models=models, aliases=aliases
    )
