"""Who keeps a name that several plugins claim: ranks by origin, reserved names, the user's
choice. ``decide_owner`` is pure; ``preferences`` reads what the user chose."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from embedify.config import load_user_config
from embedify.registry.first_party import PROVIDER_OWNERS, reserved_owner, shipped_for
from embedify.registry.registrations import ModelAlias, PluginStatus, Provider

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
            who = plugin_label(claim.plugin, claim.distribution)
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
    winner_who = plugin_label(winner.plugin, winner.distribution)
    for claim in allowed:
        if claim is not winner:
            loser = plugin_label(claim.plugin, claim.distribution)
            conflicts.append(Conflict(name, kind, winner_who, loser, reason, claim.plugin))
    override = None
    if reserved_for and winner.origin == THIRD_PARTY:
        override = Override(name, kind, winner_who, reserved_for, winner.plugin)
    return Ownership(winner, conflicts, override)


def plugin_label(plugin: str, distribution: str | None) -> str:
    return f"{plugin} ({distribution})" if distribution and distribution != plugin else plugin


def preferences(kind: str = "providers") -> dict[str, str]:
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


def origin_of(
    status: PluginStatus | None,
    name: str,
    owners: dict[str, str],
    modules: Iterable[str | None] = (),
) -> str:
    """Where a plugin's registration of ``name`` comes from (``status`` is the plugin's): the
    core's own plugin is built in, ``register_model`` is runtime; an entry point is first-party
    only for a name the table gives its distribution, with its entry point and ``modules`` in
    that package."""
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


def alias_refusal(
    alias: ModelAlias,
    origin: str,
    chosen: Mapping[str, str],
    provider_names: Mapping[str, Provider],
    module: str | None,
) -> Conflict | None:
    """A third party's alias under a provider name that is reserved or another
    distribution's (``"openai"``, ``"openai:..."``) may point only at that same provider,
    as a model pack does; it may not send the name elsewhere, unless the user chose it.
    ``module`` is the one the alias's entry point names."""
    if origin in (RUNTIME, BUILT_IN) or chosen.get(alias.alias) in (
        alias.plugin,
        alias.distribution,
    ):
        return None
    prefix = alias.alias.partition(":")[0]
    reserved = reserved_owner(prefix, PROVIDER_OWNERS)
    owner = provider_names.get(prefix)
    if reserved and not shipped_for(prefix, PROVIDER_OWNERS, alias.distribution, [module]):
        holder = reserved
    elif ":" in alias.alias and owner and owner.distribution != alias.distribution:
        holder = plugin_label(owner.plugin, owner.distribution)
    else:
        return None
    target = alias.target.partition(":")[0]
    if target == prefix or (owner is not None and provider_names.get(target) is owner):
        return None
    return Conflict(
        alias.alias,
        "model alias",
        holder,
        plugin_label(alias.plugin, alias.distribution),
        f"it would send {prefix!r} to {alias.target!r}",
        alias.plugin,
        refused=True,
    )


def conflict_warning(conflict: Conflict, owner: str) -> str:
    """The warning for a refused or lost name; ``owner`` is the loser's distribution (or
    plugin), which the user would name to choose it."""
    variable = CHOICE_VARIABLES[conflict.kind]
    if conflict.refused:
        return (
            f"embedify: refused the {conflict.kind} {conflict.name!r} of "
            f"{conflict.loser}: {conflict.reason}. To use it anyway, set "
            f"{variable}='{conflict.name}={owner}'."
        )
    return (
        f"embedify: {conflict.kind} {conflict.name!r} is registered by "
        f"{conflict.winner} and by {conflict.loser}; using {conflict.winner}'s "
        f"({conflict.reason}). To choose, set {variable}="
        f"'{conflict.name}=<distribution>'."
    )


def override_warning(override: Override) -> str:
    """The warning, every run, for a reserved name a third party holds by the user's choice."""
    return (
        f"embedify: the {override.kind} {override.name!r} is provided by "
        f"{override.holder}, a third party, instead of {override.owner}, because you "
        f"chose it ({CHOICE_VARIABLES[override.kind]} or the user config)."
    )
