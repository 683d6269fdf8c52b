"""Run a real server in this process, for tests and notebooks::

    with running_server("fake") as url:
        model = embedify.get_model(f"tei:{url}")

uvicorn serves on 127.0.0.1 at a free port in a background thread, with the full lifespan
(model warm-up, batcher, graceful drain on exit).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def running_server(model: Any = "fake", settings: Any = None) -> Iterator[str]:
    """Serve ``model`` (a model or a name) and yield its base URL, ``http://127.0.0.1:PORT``."""
    from embedify_server.app import create_app
    from embedify_server.listening import listen
    from embedify_server.serving import DrainingServer

    listener = listen("127.0.0.1", 0)
    port = listener.getsockname()[1]
    server = DrainingServer(create_app(model, settings), log_level="warning", access_log=False)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name="embedify-server", daemon=True
    )
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server failed to start; see the log above")
            thread.join(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
        listener.close()
