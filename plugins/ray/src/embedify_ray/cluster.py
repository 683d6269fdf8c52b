"""Ray, for the cluster path only: the install command when it is missing, and a start whose
log shows what a user needs rather than Ray's internals.

Ray is the ``cluster`` extra of embedify-ray; embedding a file on one machine needs only
pyarrow, so nothing outside this path imports Ray.
"""

from __future__ import annotations

from types import ModuleType

from embedify.errors import ConfigurationError

INSTALL_RAY = "pip install './plugins/ray[cluster]'"


def import_ray() -> ModuleType:
    """The ``ray`` module, or an error that says the one command that installs it."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError(
            "embedding on Ray (--ray, --actors, embed_dataset) needs Ray, which embedify-ray "
            f"installs only with its cluster extra: from a checkout of embedify, run "
            f"{INSTALL_RAY} (embedify-ray[cluster] once published), or embed on this machine "
            "without --ray."
        ) from None
    return ray


def connect(address: str | None) -> ModuleType:
    """Join the Ray cluster at ``address`` (``None`` or ``"local"``: start one here, unless
    this process already joined one) and return the ``ray`` module."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=None if address in (None, "local") else address)
    return ray
