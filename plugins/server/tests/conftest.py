from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from embedify_server.app import ServerSettings, create_app
from starlette.testclient import TestClient

from embedify.testing.fixtures import offline_session_cache  # noqa: F401


@pytest.fixture
def serve() -> Iterator[Callable[..., TestClient]]:
    """``serve(model="fake:16", **settings)``: a started app behind Starlette's test client."""
    with ExitStack() as stack:

        def start(model: Any = "fake:16", **settings: Any) -> TestClient:
            client = TestClient(create_app(model, ServerSettings(**settings)))
            return stack.enter_context(client)

        yield start
