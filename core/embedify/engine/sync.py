"""Running the engine's coroutines from synchronous code."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="embedify-engine", daemon=True).start()
            atexit.register(_shut_down, _loop)
        return _loop


def _shut_down(loop: asyncio.AbstractEventLoop) -> None:
    """At exit, what ``asyncio.run`` does for its loop: close the async generators, and with
    them the providers' HTTP clients (embedify.http), which otherwise warn when collected."""
    future = asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop)
    with contextlib.suppress(Exception):
        future.result(timeout=5)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous code.

    Every synchronous call goes through one background event loop, so it also works inside a
    running loop (Jupyter) and async clients made by a provider stay on the loop that made them.
    An interrupt (Ctrl-C) cancels the job, and with it every request still queued or in flight.
    """
    from embedify.engine.executor import ProviderInterrupted

    future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, _background_loop())
    try:
        return future.result()
    except ProviderInterrupted as interrupted:  # Ctrl-C in a model's thread: here, as it was
        raise interrupted.original from None
    except BaseException:
        future.cancel()
        raise
