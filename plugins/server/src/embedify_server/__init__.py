"""embedify plugin: ``embedify serve``, any model behind OpenAI- and TEI-compatible routes.

This module stays light (embedify imports it to learn the plugin's commands); Starlette,
uvicorn and the model load when the server is built. ``create_app`` and ``ServerSettings``
live in :mod:`embedify_server.app`, ``serve`` in :mod:`embedify_server.cli`.
"""

from __future__ import annotations

from typing import Any

from embedify import hookimpl


@hookimpl
def register_commands(cli: Any) -> None:
    from embedify_server.cli import serve_command

    cli.add_command(serve_command)
