"""A loopback HTTP server for testing providers against their real wire protocol.

Write the provider's behaviour as a function from :class:`Request` to :class:`Response` and
point the real client library at ``server.url``::

    def handler(request: Request) -> Response:
        if request.path != "/v1/embeddings":
            return Response(404, {"error": "not found"})
        return Response(200, {...}, headers={"x-request-id": "1"})

    with LoopbackServer(handler) as server:
        model = get_model("myprovider:small", base_url=server.url)

A response can be delayed (``delay``) or the connection dropped without an answer (``drop``).
``server.fail_next(response, times)`` answers the next requests with ``response`` instead of
the handler's (the conformance suite injects 429s, 413s and dropped connections this way into
any provider's fake). Only 127.0.0.1 is ever bound.
"""

from __future__ import annotations

import abc
import base64
import json
import random
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    received: float = field(default_factory=time.monotonic)  # when the server read it

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes/str sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering


Handler = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default (5) makes many concurrent clients wait on SYN retries

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a cancelled or timed-out request) is not a server error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 that answers with ``handler``; records requests."""

    _running: weakref.WeakSet[LoopbackServer] = weakref.WeakSet()

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._injected: list[Response] = []
        self._server = _Server(("127.0.0.1", 0), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        LoopbackServer._running.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        LoopbackServer._running.discard(self)
        self._server.shutdown()
        self._server.server_close()

    @classmethod
    def running(cls) -> list[LoopbackServer]:
        """The servers of this process that are serving now."""
        return list(cls._running)

    def fail_next(self, response: Response, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``response``, whatever the handler says."""
        with self._lock:
            self._injected.extend([response] * times)

    def _respond(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            injected = self._injected.pop(0) if self._injected else None
        return injected if injected is not None else self.handler(request)

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                response = server._respond(request)
                if response.delay:
                    time.sleep(response.delay)
                if response.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(response.body, bytes):
                    payload, content_type = response.body, "application/octet-stream"
                elif isinstance(response.body, str):
                    payload, content_type = response.body.encode(), "text/plain"
                elif response.body is None:
                    payload, content_type = b"", "text/plain"
                else:
                    payload, content_type = json.dumps(response.body).encode(), "application/json"
                self.send_response(response.status)
                headers = {"content-type": content_type, **response.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return RequestHandler


@dataclass
class FakeService(abc.ABC):
    """Base for a provider fake: numbers each request, draws a reproducible random number for
    fault injection, and logs every exchange (``log``: status, path, headers, query, body).

    Subclasses implement ``answer(request, count, roll)``; pass the instance to
    ``LoopbackServer``.
    """

    seed: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(self.seed)
        self._count = 0

    def __call__(self, request: Request) -> Response:
        with self._lock:
            self._count += 1
            count, roll = self._count, self._random.random()
        response = self.answer(request, count, roll)
        self.record(request, response, request.json() if request.body else None)
        return response

    def record(self, request: Request, response: Response, body: Any) -> None:
        """Add one exchange to ``log`` (``body``: the request's, decoded, or ``None``)."""
        entry = {
            "status": response.status,
            "path": request.path,
            "headers": request.headers,
            "query": request.query,
            "body": body,
        }
        with self._lock:
            self.log.append(entry)

    @abc.abstractmethod
    def answer(self, request: Request, count: int, roll: float) -> Response:
        """The response to the ``count``-th request; ``roll`` is uniform in [0, 1)."""

    @property
    def statuses(self) -> list[int]:
        with self._lock:
            return [entry["status"] for entry in self.log]


def embedding_items(vectors: list[Any], *, as_base64: bool) -> list[dict[str, Any]]:
    """OpenAI-shaped ``data`` items (also Jina's and TEI's ``/v1/embeddings``): float lists, or
    little-endian float32 bytes in base64."""
    return [
        {
            "object": "embedding",
            "index": index,
            "embedding": base64.b64encode(vector.astype("<f4").tobytes()).decode()
            if as_base64
            else vector.tolist(),
        }
        for index, vector in enumerate(vectors)
    ]
