"""``embedify serve [MODEL]``: added to the embedify command line by this plugin."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import click

from embedify.cli import UsageFailure, load_model, options_option
from embedify_server.scheduling import DEFAULT_MAX_BATCH_TOKENS

if TYPE_CHECKING:
    from pydantic import ValidationError
    from starlette.applications import Starlette

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
    accepted, for at most ``settings.drain_timeout`` seconds (then 503), before it exits. A
    port already taken raises :class:`~embedify_server.listening.PortInUseError`.
    """
    from embedify_server.app import create_app
    from embedify_server.listening import listen

    with listen(host, port) as listener:
        serve_on(listener, create_app(model, settings), access_log=access_log)


def serve_on(listener: socket.socket, app: Starlette, *, access_log: bool = True) -> None:
    """Run ``app`` (of :func:`~embedify_server.app.create_app`) on a bound ``listener``."""
    from embedify_server.serving import DrainingServer, log_auth_banner

    server = DrainingServer(app, access_log=access_log)
    host, port = listener.getsockname()[:2]
    log_auth_banner(server.embedding_server, f"http://{host}:{port}")
    server.run(sockets=[listener])


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
@click.option(
    "--no-auth",
    is_flag=True,
    help="Serve without authentication: anyone who reaches the port can use the model. "
    "Either this or a key is required.",
)
@options_option
@click.option(
    "--served-model-name", default=None, help="Name in responses and /info (default: MODEL)."
)
@click.option(
    "--max-client-batch-size",
    default=32,
    show_default=True,
    type=int,
    help="Most inputs in one request; at most --max-concurrent-requests.",
)
@click.option(
    "--max-batch-tokens",
    default=None,
    type=int,
    help="Token budget of one model batch (inputs x longest input). Default: the model's own "
    f"budget per request, at most {DEFAULT_MAX_BATCH_TOKENS}; /info shows the one in force.",
)
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
@click.option(
    "--payload-limit", default=2_000_000, show_default=True, type=int, help="Largest body, bytes."
)
@click.option(
    "--drain-timeout",
    default=25.0,
    show_default=True,
    type=float,
    help="On SIGTERM, seconds to answer accepted requests before answering them 503.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
def serve_command(
    model: str | None,
    host: str,
    port: int,
    api_key: str | None,
    no_auth: bool,
    model_options: tuple[str, ...],
    served_model_name: str | None,
    max_client_batch_size: int,
    max_batch_tokens: int | None,
    max_concurrent_requests: int,
    auto_truncate: bool,
    payload_limit: int,
    drain_timeout: float,
    access_log: bool,
) -> None:
    """Serve MODEL (default: EMBEDIFY_MODEL, else local) over HTTP.

    Routes: POST /v1/embeddings (OpenAI), POST /embed, GET /info, GET /health (TEI),
    GET /metrics (Prometheus). Concurrent requests share model batches. Clients need
    --api-key (or EMBEDIFY_SERVER_API_KEY) unless --no-auth says otherwise.
    """
    from pydantic import ValidationError

    from embedify.config import default_model_name
    from embedify.errors import ConfigurationError
    from embedify_server.app import ServerSettings, create_app
    from embedify_server.listening import listen

    name = model or default_model_name()
    if api_key is not None and no_auth:
        raise click.UsageError("--api-key and --no-auth contradict each other: pass one of them")
    if api_key is None and not no_auth:
        raise click.UsageError(
            "no API key: pass --api-key KEY (or set EMBEDIFY_SERVER_API_KEY), or --no-auth to "
            "serve without authentication"
        )
    try:
        settings = ServerSettings(
            served_model_name=served_model_name or name,
            api_key=api_key,
            max_client_batch_size=max_client_batch_size,
            max_batch_tokens=max_batch_tokens,
            max_concurrent_requests=max_concurrent_requests,
            auto_truncate=auto_truncate,
            payload_limit=payload_limit,
            drain_timeout=drain_timeout,
        )
    except ValidationError as error:
        raise click.UsageError(_one_line(error)) from None
    with listen(host, port) as listener:  # before the model loads: a taken port fails at once
        model_to_serve = load_model(name, model_options)
        try:
            app = create_app(model_to_serve, settings)
        except ConfigurationError as error:  # a limit the model cannot honour
            raise UsageFailure(str(error)) from None
        serve_on(listener, app, access_log=access_log)


def _one_line(error: ValidationError) -> str:
    """The first problem, named by its flag (``max_batch_tokens`` -> ``--max-batch-tokens``)."""
    problem = error.errors()[0]
    message = str(problem["msg"]).removeprefix("Value error, ")
    if not problem["loc"]:
        return message  # a rule across several settings names its flags itself
    return f"--{str(problem['loc'][0]).replace('_', '-')}: {message}"
