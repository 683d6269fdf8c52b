"""Finding plugins: the ``embedify`` entry points to load, in a fixed order, and the core's own
providers, registered the way a plugin's are."""

from __future__ import annotations

import importlib.metadata
import os

from embedify import hookspecs
from embedify.registry.first_party import FIRST_PARTY_DISTRIBUTIONS, in_package

ENTRY_POINT_GROUP = "embedify"
BUILTIN_PLUGINS = ("embedify.fake",)  # the plugin name of BuiltinProviders
RUNTIME_PLUGIN = "__runtime__"


def plugin_entry_points() -> list[importlib.metadata.EntryPoint]:
    """The entry points to load: none with ``EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD``, only those
    ``EMBEDIFY_PLUGINS`` names (entry point or distribution) when it is set. By name; for one
    name, our own distribution first, then by distribution name, so which of two look-alikes
    loads never depends on the order of sys.path."""
    if os.environ.get("EMBEDIFY_DISABLE_PLUGIN_AUTOLOAD", "") not in ("", "0"):
        return []
    wanted = {
        name.strip() for name in os.environ.get("EMBEDIFY_PLUGINS", "").split(",") if name.strip()
    }
    entry_points = sorted(
        importlib.metadata.entry_points(group=ENTRY_POINT_GROUP),
        key=lambda ep: (ep.name, not _shipped_entry_point(ep), ep.dist.name if ep.dist else ""),
    )
    return [
        entry_point
        for entry_point in entry_points
        if not wanted
        or wanted & {entry_point.name, entry_point.dist.name if entry_point.dist else None}
    ]


def _shipped_entry_point(entry_point: importlib.metadata.EntryPoint) -> bool:
    distribution = entry_point.dist.name if entry_point.dist else None
    shipped = FIRST_PARTY_DISTRIBUTIONS.get(distribution or "")
    return shipped is not None and in_package(entry_point.module, shipped.package)


class BuiltinProviders:
    """The core's own providers, registered the way a plugin's are (and as lazily)."""

    @staticmethod
    @hookspecs.hookimpl
    def register_models(register: hookspecs.Register) -> None:
        register("fake", "embedify.fake:FakeEmbeddingModel", default_model="64")
