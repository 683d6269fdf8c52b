"""pytest fixtures for plugin test suites. Import the ones you want into your conftest.py::

from embedify.testing.fixtures import offline_session_cache  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def offline_session_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedify cache for the test session (models export once, never into the user's
    cache), and no downloads from the Hugging Face hub."""
    path = tmp_path_factory.mktemp("embedify-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDIFY_CACHE_DIR", str(path))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield path
