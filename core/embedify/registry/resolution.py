"""From a name to a provider and a model id: aliases (the user's, then the plugins'), then
``provider:model``, a provider's default, or a model id one provider claims. Pure: it reads the
settled names it is given, and says what to install or type when a name is unknown."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from embedify.errors import ConfigurationError, UnknownModelError
from embedify.registry.first_party import FIRST_PARTY, install_hint, skeleton
from embedify.registry.registrations import Provider


def resolve_name(
    name: str,
    provider_names: Mapping[str, Provider],
    providers: Mapping[str, Provider],
    aliases: Mapping[str, tuple[str, str]],
    user_aliases: Mapping[str, str],
) -> tuple[Provider, str | None]:
    """The provider and model id ``name`` stands for. ``provider_names`` holds providers by
    name and provider alias, ``providers`` by name only, ``aliases`` the plugins' model aliases
    (alias -> (target, plugin)), ``user_aliases`` the user config's."""
    seen: list[str] = []
    while True:
        if name in seen:
            raise ConfigurationError(f"alias loop: {' -> '.join([*seen, name])}")
        seen.append(name)
        if name in user_aliases:
            name = user_aliases[name]
        elif name in aliases:
            name = aliases[name][0]
        else:
            provider_name, colon, model_id = name.partition(":")
            provider = provider_names.get(provider_name)
            if colon and provider is not None:
                return provider, model_id
            if not colon and provider is not None:
                default = provider.default_model
                full = f"{provider.name}:{default}" if default else None
                if full and (full in aliases or full in user_aliases):
                    name = full
                    continue
                return provider, default
            if colon or name in FIRST_PARTY:
                raise UnknownModelError(_unknown_provider(provider_name, provider_names, providers))
            return _claimed_by(name, provider_names, providers, aliases), name


def _claimed_by(
    model_id: str,
    provider_names: Mapping[str, Provider],
    providers: Mapping[str, Provider],
    aliases: Mapping[str, tuple[str, str]],
) -> Provider:
    claims = [p for p in providers.values() if model_id in p.models]
    if len(claims) == 1:
        return claims[0]
    if claims:
        options = ", ".join(f"{p.name}:{model_id}" for p in claims)
        raise UnknownModelError(f"{model_id!r} is served by several providers; pick one: {options}")
    known = [*provider_names, *FIRST_PARTY, *aliases]
    known += [m for p in providers.values() for m in p.models]
    hint = close_matches(model_id, known)
    install = ""
    if "/" in model_id and "local" not in providers:
        install = f" For local Hugging Face models, {install_hint(FIRST_PARTY['local'])}"
    elif "/" in model_id:
        hint += f" For a local Hugging Face model, use 'local:{model_id}'."
    raise UnknownModelError(
        f"No installed provider knows the model {model_id!r}.{hint} Names look like "
        f"'provider:model'; 'embedify models' lists what is installed.{install}"
    )


def _unknown_provider(
    name: str, provider_names: Mapping[str, Provider], providers: Mapping[str, Provider]
) -> str:
    """What is installed, and for one of ours (the name itself, else the closest name), how to
    install it, last, so that the line ends with the command."""
    installed = ", ".join(sorted(providers)) or "none"
    if name in FIRST_PARTY:
        return (
            f"Provider {name!r} is not installed. Installed providers: {installed}. "
            f"To use {name!r}, {install_hint(FIRST_PARTY[name])}"
        )
    known = sorted({*provider_names, *FIRST_PARTY})
    same = [known_name for known_name in known if skeleton(known_name) == skeleton(name)]
    close = list(dict.fromkeys([*same, *difflib.get_close_matches(name, known, n=3)]))[:3]
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    message = f"Unknown provider {name!r}.{hint} Installed providers: {installed}."
    if close and close[0] not in provider_names and close[0] in FIRST_PARTY:
        message += f" To use {close[0]!r}, {install_hint(FIRST_PARTY[close[0]])}"
    return message


def close_matches(name: str, candidates: Iterable[str]) -> str:
    """`` Did you mean 'x', 'y'?`` for the candidates close to ``name`` (never ``name``
    itself), or an empty string."""
    close = difflib.get_close_matches(name, sorted(set(candidates) - {name}), n=3)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""
