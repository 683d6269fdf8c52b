"""Tools for testing embedify providers: the conformance suite and a loopback HTTP server."""

from embedify.testing.conformance import TEXTS, ConformanceSuite
from embedify.testing.http_fake import EmbeddingServer, HttpFakeModel
from embedify.testing.loopback import (
    FakeService,
    LoopbackServer,
    Request,
    Response,
    embedding_items,
)

__all__ = [
    "TEXTS",
    "ConformanceSuite",
    "EmbeddingServer",
    "FakeService",
    "HttpFakeModel",
    "LoopbackServer",
    "Request",
    "Response",
    "embedding_items",
]
