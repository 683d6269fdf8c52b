from __future__ import annotations

import pytest

from embedify.testing.fixtures import offline_session_cache  # noqa: F401


@pytest.fixture(scope="session")
def minilm_folder() -> str:
    from embedify_pack_minilm import model_folder

    return str(model_folder())
