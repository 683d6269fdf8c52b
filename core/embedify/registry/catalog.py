"""The :class:`Registry`, the registry's one stateful object: the plugins it loaded, every
registration, and the names settled from them (the decisions are in ``ownership`` and
``resolution``)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterable
from typing import Any, TypeVar

import pluggy

from embedify import hookspecs
from embedify.config import load_user_config
from embedify.errors import ConfigurationError
from embedify.registry.discovery import (
    BUILTIN_PLUGINS,
    RUNTIME_PLUGIN,
    BuiltinProviders,
    plugin_entry_points,
)
from embedify.registry.first_party import (
    COMMAND_OWNERS,
    CORE_DISTRIBUTION,
    MODEL_ALIAS_OWNERS,
    PROVIDER_OWNERS,
    install_hint,
    reserved_owner,
)
from embedify.registry.ownership import (
    BUILT_IN,
    Claim,
    Conflict,
    Override,
    alias_refusal,
    conflict_warning,
    decide_owner,
    origin_of,
    override_warning,
    plugin_label,
    preferences,
)
from embedify.registry.registrations import (
    ModelAlias,
    PluginStatus,
    Provider,
    Registrar,
    factory_module,
    name_problem,
)
from embedify.registry.resolution import resolve_name

T = TypeVar("T")


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
            BUILTIN_PLUGINS[0], BuiltinProviders, distribution=CORE_DISTRIBUTION, source="core"
        )
        for entry_point in plugin_entry_points():
            distribution = entry_point.dist.name if entry_point.dist else None
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
            taken = plugin_label(name, holder.distribution) if holder else "embedify (runtime)"
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
            f"embedify plugin {plugin_label(status.name, status.distribution)!r} was not loaded "
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
            f"embedify: refused the {problem} "
            f"(plugin {plugin_label(plugin, status.distribution)}).",
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

    def _settle(self) -> None:
        chosen = preferences()
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
            owners[(kind, name)] = (plugin_label(winner.plugin, winner.distribution), winner.origin)
            return winner.value

        provider_claims: dict[str, list[Claim[Provider]]] = {}
        for provider in self._registered_providers:
            for name in (provider.name, *provider.aliases):
                origin = origin_of(
                    self.plugins.get(provider.plugin),
                    name,
                    PROVIDER_OWNERS,
                    [factory_module(provider.factory)],
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
            status = self.plugins.get(alias.plugin)
            origin = origin_of(status, alias.alias, MODEL_ALIAS_OWNERS)
            module = status.module if status else None
            refusal = alias_refusal(alias, origin, chosen, self.provider_names, module)
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
            status = self.plugins.get(conflict.loser_plugin)
            owner = (status and status.distribution) or conflict.loser_plugin
            message = conflict_warning(conflict, owner)
            warnings.warn(message, RuntimeWarning, stacklevel=3)
        for override in overrides:
            if override in self._warned:
                continue
            self._warned.add(override)
            warnings.warn(override_warning(override), RuntimeWarning, stacklevel=3)

    def settle_commands(
        self, built_in: Iterable[str], claims: Iterable[tuple[str, str, Any, str | None]]
    ) -> dict[str, Any]:
        """Decide which plugin command (``(name, plugin, command, module)``, in hook order)
        gets each name: built-in commands are reserved for the core, first-party ones (the
        table's ``commands``) for their distribution. Returns the commands to add."""
        self.load()
        chosen = preferences("commands")
        built_in = set(built_in)
        by_name: dict[str, list[Claim[Any]]] = {}
        for name, plugin, command, module in claims:
            problem = name_problem(name, "the command name")
            if problem:
                self._refuse(plugin, f"command {name!r}: {problem}")
                continue
            status = self.plugins.get(plugin)
            origin = origin_of(status, name, COMMAND_OWNERS, [module])
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
                who = plugin_label(winner.plugin, winner.distribution)
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
        return resolve_name(
            name, self.provider_names, self.providers, self.aliases, load_user_config().aliases
        )
