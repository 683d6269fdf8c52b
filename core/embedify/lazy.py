"""Package attributes imported on first use.

``embedify`` and every plugin package are imported early and often (the registry imports each
plugin to learn its provider names), so their ``__init__`` must not import numpy, an SDK or a
framework. They name what they export and where it lives instead::

    __getattr__ = lazy_attributes(__name__, {"Thing": "my_plugin.things"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``sources[name]`` when first read,
    then keeps it on the package, so later reads cost nothing."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(sources[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
