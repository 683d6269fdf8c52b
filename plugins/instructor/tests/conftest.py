from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The tiny-model builders live with the local provider's tests; Instructor reuses them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "huggingface" / "tests"))


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("embedify-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDIFY_CACHE_DIR", str(path))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield path
