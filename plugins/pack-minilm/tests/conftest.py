from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exports go to a session cache, not the user's, and nothing is fetched from the hub."""
    path = tmp_path_factory.mktemp("embedify-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDIFY_CACHE_DIR", str(path))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield path
