"""``embedify serve [MODEL]``: added to the embedify command line by this plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from embedify.cli import load_model, options_option

if TYPE_CHECKING:
    from embedify_server.app import ServerSettings


def serve(
    model: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    settings: ServerSettings | None = None,
    access_log: bool = True,
) -> None:
    """Serve ``model`` (a model or a name) with uvicorn until SIGINT or SIGTERM.

    On either signal the server stops accepting connections and answers every request it has
    accepted before it exits.
    """
    import uvicorn

    from embedify_server.app import create_app

    config = uvicorn.Config(
        create_app(model, settings), host=host, port=port, access_log=access_log, lifespan="on"
    )
    uvicorn.Server(config).run()


@click.command("serve")
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--api-key",
    envvar="EMBEDIFY_SERVER_API_KEY",
    default=None,
    help="Require 'Authorization: Bearer <key>' (or set EMBEDIFY_SERVER_API_KEY).",
)
@options_option
@click.option(
    "--served-model-name", default=None, help="Name in responses and /info (default: MODEL)."
)
@click.option("--max-client-batch-size", default=32, show_default=True, type=int)
@click.option("--max-batch-tokens", default=16_384, show_default=True, type=int)
@click.option(
    "--max-concurrent-requests",
    default=512,
    show_default=True,
    type=int,
    help="Inputs accepted and not yet answered; past it, 429 with Retry-After.",
)
@click.option(
    "--auto-truncate/--no-auto-truncate",
    default=True,
    show_default=True,
    help="Cut over-long inputs when a request does not say (TEI's 'truncate').",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve_command(
    model: str | None,
    host: str,
    port: int,
    api_key: str | None,
    model_options: tuple[str, ...],
    served_model_name: str | None,
    max_client_batch_size: int,
    max_batch_tokens: int,
    max_concurrent_requests: int,
    auto_truncate: bool,
    access_log: bool,
) -> None:
    """Serve MODEL (default: EMBEDIFY_MODEL, else local) over HTTP.

    Routes: POST /v1/embeddings (OpenAI), POST /embed, GET /info, GET /health (TEI),
    GET /metrics (Prometheus). Concurrent requests share model batches.
    """
    from pydantic import ValidationError

    from embedify.config import default_model_name
    from embedify_server.app import ServerSettings

    name = model or default_model_name()
    try:
        settings = ServerSettings(
            served_model_name=served_model_name or name,
            api_key=api_key,
            max_client_batch_size=max_client_batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrent_requests=max_concurrent_requests,
            auto_truncate=auto_truncate,
        )
    except ValidationError as error:
        raise click.ClickException(str(error)) from None
    serve(
        load_model(name, model_options),
        host=host,
        port=port,
        settings=settings,
        access_log=access_log,
    )
