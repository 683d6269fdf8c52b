"""What this project publishes: each distribution, the package its code is in, the names it
owns, and how to install it. Only these are first-party."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
    "embedify-ray": Shipped("embedify_ray", commands=("embed-dataset", "batches")),
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


#: Separators, and the characters that pass for one another in a name (0/o, 1/l/i, rn/m).
_LOOK_ALIKE = str.maketrans({"0": "o", "1": "i", "l": "i", "-": None, "_": None, ".": None})


def skeleton(name: str) -> str:
    """How ``name`` reads to a person: ``OpenAI``, ``open-ai`` and ``0penai`` all read as
    ``openai``, so a plugin cannot take a reserved name by spelling it another way."""
    return name.casefold().translate(_LOOK_ALIKE).replace("rn", "m")


def reserved_owner(name: str, owners: dict[str, str]) -> str | None:
    """Who ``name``, or a name it looks like, is reserved for, as shown to users; None when
    anyone may take it."""
    owner = owners.get(name)
    if owner is None:
        look_alikes = (n for n in owners if skeleton(n) == skeleton(name))
        copied = next(look_alikes, None)
        if copied is None:
            return None
        owner = f"{owners[copied]}, whose {copied!r} it looks like"
    return f"{owner} (built in)" if owner == CORE_DISTRIBUTION else owner
