"""The registry's pure parts, without plugins: name resolution and the entry points' order."""

from __future__ import annotations

import importlib.metadata

import pytest

from embedify.errors import ConfigurationError
from embedify.fake import FakeEmbeddingModel
from embedify.registry import discovery
from embedify.registry.registrations import Provider
from embedify.registry.resolution import resolve_name

FAKE = Provider("fake", FakeEmbeddingModel, "embedify.fake", default_model="64")
NAMES = {"fake": FAKE}


def test_a_user_alias_wins_over_a_plugins_alias_of_the_same_name() -> None:
    plugin_aliases = {"small": ("fake:8", "pack")}
    assert resolve_name("small", NAMES, NAMES, plugin_aliases, {"small": "fake:16"}) == (FAKE, "16")
    assert resolve_name("small", NAMES, NAMES, plugin_aliases, {}) == (FAKE, "8")


def test_an_alias_loop_is_a_configuration_error_naming_the_loop() -> None:
    with pytest.raises(ConfigurationError, match="alias loop: a -> b -> a"):
        resolve_name("a", NAMES, NAMES, {"a": ("b", "p")}, {"b": "a"})


def test_our_own_distribution_loads_first_among_look_alikes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def entry_point(distribution: str, module: str) -> importlib.metadata.EntryPoint:
        point = importlib.metadata.EntryPoint("openai", module, "embedify")
        return point._for(FakeDistribution(distribution))  # type: ignore[attr-defined,no-any-return]

    class FakeDistribution:
        def __init__(self, name: str) -> None:
            self.name = name
            self.version = "1"

    found = [
        entry_point("aaa-lookalike", "aaa_lookalike"),
        entry_point("embedify-openai", "embedify_openai"),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: found)
    monkeypatch.delenv("EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("EMBEDIFY_PLUGINS", raising=False)
    order = [point.dist.name for point in discovery.plugin_entry_points()]
    assert order == ["embedify-openai", "aaa-lookalike"]
