from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from embedify.testing import LoopbackServer


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own cache and config folders and no default-model override."""
    monkeypatch.setenv("EMBEDIFY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("EMBEDIFY_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("EMBEDIFY_MODEL", raising=False)
    return tmp_path


@pytest.fixture
def acme() -> Iterator[tuple[LoopbackServer, object]]:
    """A loopback Acme server and its settings (see embedify_acme.testing)."""
    from embedify_acme.testing import FakeAcme

    behaviour = FakeAcme()
    with LoopbackServer(behaviour) as server:
        yield server, behaviour
