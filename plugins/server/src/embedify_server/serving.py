"""uvicorn for one embedding server: a drain that starts with the shutdown, and an auth banner.

uvicorn only runs the application's shutdown after every open request has finished. A request
waiting on an upstream that asked for an hours-long pause never finishes, so the batcher's drain
(answer what was accepted, for at most ``drain_timeout`` seconds, then 503) starts as soon as
uvicorn begins to shut down, not after.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from typing import Any

import uvicorn
from starlette.applications import Starlette

from embedify_server.app import EmbeddingServer

#: Seconds uvicorn gives the handlers, after the drain gave up, to write their 503s before it
#: cancels what is still open (a client still uploading its body).
ANSWER_GRACE_SECONDS = 1


class DrainingServer(uvicorn.Server):
    """``uvicorn.Server`` for an app of :func:`~embedify_server.app.create_app`."""

    def __init__(self, app: Starlette, **config: Any) -> None:
        self.embedding_server: EmbeddingServer = app.state.embedding_server
        drain = self.embedding_server.settings.drain_timeout
        super().__init__(
            uvicorn.Config(
                app,
                lifespan="on",
                timeout_graceful_shutdown=math.ceil(drain + ANSWER_GRACE_SECONDS),
                **config,
            )
        )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await asyncio.gather(super().shutdown(sockets), self.embedding_server.stop())


def log_auth_banner(server: EmbeddingServer, url: str) -> None:
    """The first line the server logs says whether clients need the key."""
    logger = logging.getLogger("uvicorn.error")  # set up by uvicorn.Config, like uvicorn's lines
    if server.settings.api_key is None:
        logger.warning(
            "authentication is OFF (--no-auth): any client that can reach %s can use the model",
            url,
        )
    else:
        logger.info("authentication is on: clients send 'Authorization: Bearer <key>'")
