"""One client per event loop for each model, closed with its loop, by ``aclose`` or when the
model is dropped: an HTTP connection pool belongs to the loop that opened it, and a pool
collected open warns."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any


class LoopClients:
    """The clients of one model (``owner``), by event loop."""

    def __init__(self, owner: object) -> None:
        self._owner = weakref.ref(owner)
        self._by_loop: dict[int, _LoopClient] = {}

    def __len__(self) -> int:
        return len(self._by_loop)

    def client(self, make: Callable[[], Any]) -> Any:
        """The running loop's client, made by ``make`` on first use."""
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(id(loop))
        if entry is None or entry.loop() is not loop:
            self._forget_dead_loops()
            owner = self._owner()
            assert owner is not None  # the owner is calling
            entry = self._by_loop[id(loop)] = _LoopClient.open(owner, loop, make())
        return entry.client

    async def aclose(self) -> None:
        """Close the running loop's client; the next request opens a new one."""
        self._forget_dead_loops()
        entry = self._by_loop.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            await entry.aclose()

    def _forget_dead_loops(self) -> None:
        for key, entry in list(self._by_loop.items()):
            loop = entry.loop()
            if loop is None or loop.is_closed():
                entry.on_drop.detach()
                del self._by_loop[key]


@dataclass
class _LoopClient:
    """A client, and what closes it when its event loop shuts down or its model is dropped."""

    loop: weakref.ref[asyncio.AbstractEventLoop]
    client: Any
    closer: _Closer
    on_loop_shutdown: AsyncGenerator[None, None]
    on_drop: weakref.finalize[Any, Any]

    @classmethod
    def open(cls, owner: object, loop: asyncio.AbstractEventLoop, client: Any) -> _LoopClient:
        """Pools warn when they are collected open, and a loop has no close callbacks, but
        ``loop.shutdown_asyncgens()`` (called by ``asyncio.run``, and by the sync bridge at
        exit) closes every started async generator: ``on_loop_shutdown`` is one, started here
        up to its ``yield``. Both it and the closer are held by a finalizer of ``owner``, not
        only by ``owner``: when the model is dropped (often in a reference cycle, with a
        traceback) the client is not garbage with it, and the finalizer closes it on its loop.
        """
        closer = _Closer(client)
        on_loop_shutdown = _closes_on_loop_shutdown(closer)
        with contextlib.suppress(StopIteration):  # it stopped at its yield
            on_loop_shutdown.asend(None).send(None)
        loop_ref = weakref.ref(loop)
        on_drop = weakref.finalize(owner, _close_soon, loop_ref, closer, on_loop_shutdown)
        return cls(loop_ref, client, closer, on_loop_shutdown, on_drop)

    async def aclose(self) -> None:
        self.on_drop.detach()
        await self.closer.close()


class _Closer:
    """Closes one client once, however many paths ask."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.closing: asyncio.Future[None] | None = None

    async def close(self) -> None:
        if self.closing is None:
            self.closing = asyncio.ensure_future(_close(self.client))
        await self.closing


async def _closes_on_loop_shutdown(closer: _Closer) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await closer.close()


def _close_soon(
    loop_ref: weakref.ref[asyncio.AbstractEventLoop], closer: _Closer, *_: object
) -> None:
    loop = loop_ref()
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(lambda: loop.create_task(closer.close()))


async def _close(client: Any) -> None:
    """Close an httpx client, an SDK client (``close``), or one that only closes on exit."""
    for name in ("aclose", "close"):
        close = getattr(client, name, None)
        if close is not None:
            result = close()
            if asyncio.iscoroutine(result):
                await result
            return
    if hasattr(client, "__aexit__"):
        await client.__aexit__(None, None, None)
