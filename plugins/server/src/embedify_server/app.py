"""The ASGI application: OpenAI- and TEI-compatible routes over one dynamic batcher.

Routes: ``POST /v1/embeddings`` (and ``/embeddings``) speak OpenAI's embeddings API;
``POST /embed``, ``GET /info`` and ``GET /health`` speak Text-Embeddings-Inference's;
``GET /metrics`` is Prometheus text. Errors use each protocol's own body, so the clients built
for those servers (the ``openai`` SDK, TEI clients, embedify's ``openai:`` and ``tei:``
providers) understand them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import embedify
from embedify import errors
from embedify.model import public_name
from embedify_server.batcher import Batcher, Overloaded, ShuttingDown
from embedify_server.metrics import Metrics
from embedify_server.scheduling import (
    DEFAULT_MAX_BATCH_TOKENS,
    batch_token_budget,
    client_retry_after,
)

Flavour = Literal["openai", "tei"]
JSON = "application/json"


class ServerSettings(BaseModel):
    """What the server accepts; the defaults are TEI's. Limits that contradict each other, and
    a key no client could send, are refused here, before the server starts."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    served_model_name: str | None = Field(
        None, description="Name in responses and /info (default: the model name served)."
    )
    api_key: SecretStr | None = Field(
        None, description="Clients must send 'Authorization: Bearer <key>'; never logged."
    )
    max_client_batch_size: int = Field(32, gt=0, description="Most inputs in one request.")
    max_batch_tokens: int | None = Field(
        None,
        gt=0,
        description="Token budget of one model batch (inputs x longest input); by default the "
        f"model's own budget per request, at most {DEFAULT_MAX_BATCH_TOKENS}.",
    )
    max_concurrent_requests: int = Field(
        512, gt=0, description="Inputs accepted and not yet answered; past it, 429."
    )
    auto_truncate: bool = Field(
        True, description="Cut over-long inputs when a request does not say 'truncate'."
    )
    payload_limit: int = Field(2_000_000, gt=0, description="Largest request body, in bytes.")
    drain_timeout: float = Field(
        25.0,
        gt=0,
        description="Seconds a shutdown waits for accepted requests before answering them 503 "
        "(under Kubernetes' default 30 s grace period).",
    )

    @field_validator("api_key")
    @classmethod
    def _sendable_key(cls, key: SecretStr | None) -> SecretStr | None:
        """An empty key (``--api-key "$UNSET"``) must not switch authentication off, and a key
        that no HTTP client can put in a header would lock every client out."""
        if key is None:
            return None
        value = key.get_secret_value()
        if not value.strip():
            raise ValueError(
                "the API key is empty or only whitespace (an unset variable in --api-key "
                '"$KEY"?): pass the key, or serve without authentication on purpose with '
                "--no-auth (api_key=None in Python)"
            )
        if not all("!" <= char <= "~" for char in value):
            raise ValueError(
                "the API key must be printable ASCII without spaces or control characters, "
                "which is what an HTTP header carries: choose such a key"
            )
        return key

    @model_validator(mode="after")
    def _consistent_limits(self) -> ServerSettings:
        """Each input takes one permit, so a full request must fit the permits, or it would get
        429 forever."""
        if self.max_concurrent_requests < self.max_client_batch_size:
            raise ValueError(
                f"max_concurrent_requests={self.max_concurrent_requests} is lower than "
                f"max_client_batch_size={self.max_client_batch_size}, so a full request could "
                "never be admitted: raise --max-concurrent-requests to at least "
                f"{self.max_client_batch_size}, or lower --max-client-batch-size"
            )
        return self


class OpenAIEmbeddingRequest(BaseModel):
    # Strict, as the real servers' JSON decoders are: `"dimensions": true` is not 1.
    model_config = ConfigDict(strict=True)

    input: str | list[str]
    model: str | None = None  # any name is accepted and answered by the served model, as TEI does
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class TEIEmbedRequest(BaseModel):
    model_config = ConfigDict(strict=True)  # TEI's serde refuses `"truncate": "yes"` too

    inputs: str | list[str]
    truncate: bool | None = None
    truncation_direction: Literal["Right", "Left", "right", "left"] = "Right"
    prompt_name: str | None = None
    normalize: bool = True
    dimensions: int | None = None


@dataclass
class Problem(Exception):
    """A refused request, written in the body format of the route that refused it.

    ``status`` is TEI's status, ``openai_status`` OpenAI's where it differs; ``error_type`` is
    TEI's PascalCase type, ``openai_type``/``code`` the OpenAI error's fields.
    """

    status: int
    message: str
    error_type: str = "Validation"
    openai_status: int | None = None
    openai_type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    openai_message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, flavour: Flavour) -> Response:
        if flavour == "tei":
            body: dict[str, Any] = {"error": self.message, "error_type": self.error_type}
            status = self.status
        else:
            error = {
                "message": self.openai_message or self.message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.code,
            }
            body, status = {"error": error}, self.openai_status or self.status
        return Response(orjson.dumps(body), status, self.headers, media_type=JSON)


@dataclass
class Prepared:
    """A request parsed, validated and tokenized, ready for the batcher."""

    texts: list[str]
    tokens: list[int]
    dimensions: int | None
    role: str


def _invalid(message: str, param: str | None = None) -> Problem:
    """Input TEI answers with 422 Validation and OpenAI with 400 invalid_request_error."""
    return Problem(422, f"Input validation error: {message}", openai_status=400, param=param)


class EmbeddingServer:
    """One model behind the routes; :func:`create_app` wraps it in a Starlette application."""

    def __init__(self, model: embedify.EmbeddingModel, settings: ServerSettings, name: str):
        self.model = model
        self.settings = settings
        self.name = settings.served_model_name or name
        self.metrics = Metrics()
        info = model.info
        max_batch_tokens = batch_token_budget(
            settings.max_batch_tokens, info.limits.max_tokens_per_request
        )
        self.max_input_length = info.limits.max_tokens_per_input
        if self.max_input_length is not None:
            self.max_input_length = min(self.max_input_length, max_batch_tokens)
        self.batcher = Batcher(
            model,
            max_batch_inputs=batch_input_cap(model),
            max_batch_tokens=max_batch_tokens,
            max_queued_inputs=settings.max_concurrent_requests,
            batches_in_flight=info.max_concurrency,
            metrics=self.metrics,
        )
        self._key_digest = (
            _digest(settings.api_key.get_secret_value()) if settings.api_key is not None else None
        )

    async def start(self) -> None:
        """Load the model (one warm-up input) before the first request is accepted."""
        await self.batcher.upstream.warm_up()
        await self.batcher.start()

    async def stop(self) -> None:
        """Answer the accepted requests, for at most ``drain_timeout`` seconds."""
        await self.batcher.close(self.settings.drain_timeout)

    # -- shared request handling -----------------------------------------------------------------

    def _authorised(self, request: Request) -> bool:
        """``Bearer <key>``, the scheme in any case (RFC 7235) and spaces around the key
        tolerated. Any header bytes are refused, never an error: Starlette decodes headers as
        latin-1, which every byte is."""
        if self._key_digest is None:
            return True
        header = request.headers.get("authorization", "").strip()
        scheme, _, token = header.partition(" ")
        sent = _digest(token.strip(), "latin-1")
        return hmac.compare_digest(sent, self._key_digest) and scheme.lower() == "bearer"

    async def _read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it passes ``payload_limit``: a chunked upload
        is never held past the limit plus one chunk."""
        limit = self.settings.payload_limit
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(declared, limit)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _too_large(f"at least {len(body)}", limit)
        return bytes(body)

    def _parse(self, raw: bytes, schema: type[BaseModel]) -> Any:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise Problem(400, f"Json syntax error: {error}", openai_status=400) from None
        try:
            return schema.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            field_name = str(first["loc"][0]) if first["loc"] else ""
            if field_name in ("input", "inputs") and first["type"] != "missing":
                raise _invalid(
                    f"`{field_name}` must be a string or a list of strings "
                    "(token ids are not supported: send the text)",
                    param=field_name,
                ) from None
            where = "; ".join(
                f"`{'.'.join(str(part) for part in problem['loc'])}`: {problem['msg']}"
                for problem in error.errors()[:3]
            )
            raise _invalid(where) from None

    def _texts(self, inputs: str | list[str]) -> list[str]:
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not texts:
            raise Problem(400, "`inputs` cannot be empty", "Empty", param="input")
        limit = self.settings.max_client_batch_size
        if len(texts) > limit:
            message = f"batch size {len(texts)} > maximum allowed batch size {limit}"
            raise Problem(
                422,
                message,
                openai_status=400,
                # How OpenAI-compatible clients recognise a request to split.
                openai_message=f"Too many inputs: {message}",
                param="input",
            )
        for index, text in enumerate(texts):
            if not text.strip():
                raise Problem(
                    400,
                    f"Input validation error: `inputs` cannot be empty (input {index} is empty "
                    "or only whitespace)",
                    "Empty",
                    param="input",
                )
        return texts

    def _fit(self, texts: list[str], truncate: bool, side: Literal["end", "start"]) -> list[int]:
        """Token counts of ``texts`` after cutting over-long ones in place (or refusing them)."""
        counts = self.model.count_tokens(texts)
        limit = self.max_input_length
        if limit is None:
            return list(counts)
        for index, count in enumerate(counts):
            if count <= limit:
                continue
            if not truncate:
                raise Problem(
                    422,
                    f"Input validation error: `inputs` must have less than {limit} tokens. "
                    f"Given: {count}",
                    openai_status=400,
                    openai_message=f"This model's maximum context length is {limit} tokens, "
                    f"however you requested {count} tokens ({count} in your prompt; 0 for the "
                    f"completion). Input {index} is too long: shorten it, or start the server "
                    "with --auto-truncate.",
                )
            texts[index] = self.model.truncate_text(texts[index], limit, side)
            counts[index] = limit
        return list(counts)

    def _dimensions(self, dimensions: int | None) -> int | None:
        if dimensions is None:
            return None
        if dimensions <= 0:
            raise _invalid("`dimensions` should be positive", param="dimensions")
        info = self.model.info
        if info.dimensions_mode == "fixed":
            raise Problem(
                422,
                "This model does not support specifying dimensions.",
                openai_status=400,
                param="dimensions",
            )
        width = info.output_dimension
        if width is not None and dimensions > width:
            raise _invalid(
                "`dimensions` should be smaller than the maximum embedding dimension.",
                param="dimensions",
            )
        return dimensions

    async def _embed(self, prepared: Prepared, route: str) -> np.ndarray:
        texts, tokens = prepared.texts, prepared.tokens
        try:
            vectors = await self.batcher.embed(texts, tokens, prepared.role)
        except Overloaded as error:
            raise Problem(
                429,
                f"Model is overloaded: retry after {error.retry_after} seconds",
                "Overloaded",
                openai_type="requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(error.retry_after)},
            ) from None
        except ShuttingDown:
            raise Problem(503, "unhealthy: the server is shutting down", "Unhealthy") from None
        except errors.RateLimitError as error:
            raise Problem(
                429,
                f"Backend error: {error}",
                "Overloaded",
                code="rate_limit_exceeded",
                headers=_retry_after(error),
            ) from None
        except errors.TransientError as error:
            raise Problem(
                503,
                f"Backend error: {error}",
                "Backend",
                openai_type="server_error",
                headers=_retry_after(error),
            ) from None
        except (errors.EmbedifyError, ValueError) as error:
            raise Problem(
                424,
                f"Backend error: {error}",
                "Backend",
                openai_status=500,
                openai_type="server_error",
            ) from None
        self.metrics.inputs.labels(route).inc(len(texts))
        self.metrics.tokens.labels(route).inc(sum(tokens))
        return vectors

    # -- routes --------------------------------------------------------------------------------

    async def openai_embeddings(self, request: Request) -> Response:
        raw = await self._read_body(request)
        body, prepared = await run_in_threadpool(self._prepare_openai, raw)
        vectors = await self._embed(prepared, "openai")
        vectors = shape_vectors(vectors, dimensions=prepared.dimensions, normalize=True)
        if body.encoding_format == "base64":
            data: list[dict[str, Any]] = [
                {"object": "embedding", "index": index, "embedding": _base64(vector)}
                for index, vector in enumerate(vectors)
            ]
        else:
            data = [
                {"object": "embedding", "index": index, "embedding": vector}
                for index, vector in enumerate(vectors)
            ]
        used = sum(prepared.tokens)
        payload = {
            "object": "list",
            "data": data,
            "model": self.name,
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
        return _json(payload)

    def _prepare_openai(self, raw: bytes) -> tuple[OpenAIEmbeddingRequest, Prepared]:
        """Parse, validate and tokenize: CPU work, run in a worker thread off the event loop."""
        body: OpenAIEmbeddingRequest = self._parse(raw, OpenAIEmbeddingRequest)
        dimensions = self._dimensions(body.dimensions)
        texts = self._texts(body.input)
        tokens = self._fit(texts, self.settings.auto_truncate, "end")
        return body, Prepared(texts, tokens, dimensions, "document")

    async def tei_embed(self, request: Request) -> Response:
        raw = await self._read_body(request)
        body, prepared = await run_in_threadpool(self._prepare_tei, raw)
        vectors = await self._embed(prepared, "embed")
        return _json(
            shape_vectors(vectors, dimensions=prepared.dimensions, normalize=body.normalize)
        )

    def _prepare_tei(self, raw: bytes) -> tuple[TEIEmbedRequest, Prepared]:
        """Parse, validate and tokenize: CPU work, run in a worker thread off the event loop."""
        body: TEIEmbedRequest = self._parse(raw, TEIEmbedRequest)
        dimensions = self._dimensions(body.dimensions)
        roles = list(self.model.info.roles)
        role = body.prompt_name or "document"
        if role not in roles:
            raise _invalid(
                f"`prompt_name` {body.prompt_name!r} is not a prompt of this model; "
                f"choose one of: {', '.join(roles)}",
                param="prompt_name",
            )
        texts = self._texts(body.inputs)
        truncate = self.settings.auto_truncate if body.truncate is None else body.truncate
        side: Literal["end", "start"] = (
            "start" if body.truncation_direction.lower() == "left" else "end"
        )
        tokens = self._fit(texts, truncate, side)
        return body, Prepared(texts, tokens, dimensions, role)

    async def info(self, request: Request) -> Response:
        model_info = self.model.info
        return _json(
            {
                "model_id": self.name,
                "model_sha": model_info.revision,
                "model_dtype": model_info.compute or "float32",
                "model_type": {"embedding": {"pooling": "model"}},
                "provider": model_info.provider,
                "dimension": model_info.output_dimension,
                "max_concurrent_requests": self.settings.max_concurrent_requests,
                "max_input_length": self.max_input_length,
                "max_batch_tokens": self.batcher.max_batch_tokens,
                "max_batch_requests": self.batcher.max_batch_inputs,
                "max_client_batch_size": self.settings.max_client_batch_size,
                "auto_truncate": self.settings.auto_truncate,
                "payload_limit": self.settings.payload_limit,
                "auth": self._key_digest is not None,
                "tokenization_workers": None,
                "version": version("embedify-server"),
                "sha": None,
                "docker_label": None,
            }
        )

    async def health(self, request: Request) -> Response:
        if self.batcher.accepting:
            return Response(b"", 200)
        return Problem(503, "unhealthy", "Unhealthy").response("tei")

    async def prometheus(self, request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(self.metrics.render(), 200, media_type=CONTENT_TYPE_LATEST)

    # -- plumbing -------------------------------------------------------------------------------

    def route(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        method: str,
        *,
        flavour: Flavour,
        label: str,
        public: bool = False,
    ) -> Route:
        """``endpoint`` behind the bearer check, with errors in ``flavour`` and metrics."""

        async def handle(request: Request) -> Response:
            started = time.perf_counter()
            if not public and not self._authorised(request):
                response = _unauthorised(flavour)
            else:
                try:
                    response = await endpoint(request)
                except Problem as problem:
                    response = problem.response(flavour)
            self.metrics.requests.labels(label, str(response.status_code)).inc()
            self.metrics.request_seconds.labels(label).observe(time.perf_counter() - started)
            return response

        return Route(path, handle, methods=[method])


def batch_input_cap(model: embedify.EmbeddingModel) -> int:
    """Most inputs in one model batch: the model's limit and its ``batch_size`` option (256
    when neither says). The batcher forms the model's requests, so it keeps to both."""
    caps = [cap for cap in (model.limits.max_inputs_per_request, model.options.batch_size) if cap]
    return min(caps, default=256)


def shape_vectors(vectors: np.ndarray, *, dimensions: int | None, normalize: bool) -> np.ndarray:
    """Cut to ``dimensions`` (Matryoshka) and L2-normalise when asked, as TEI does."""
    if dimensions is not None:
        vectors = vectors[:, :dimensions]
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        vectors = vectors / norms
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _base64(vector: np.ndarray) -> str:
    """Little-endian float32 bytes, standard base64: what the openai SDK decodes."""
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _json(payload: Any) -> Response:
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type=JSON)


def _too_large(size: str, limit: int) -> Problem:
    return Problem(
        413, f"Payload too large: {size} bytes > payload limit {limit}", openai_status=413
    )


def _retry_after(error: errors.TransientError) -> dict[str, str]:
    """The upstream's wait passed on to the client, within a minute whatever it asked for."""
    return {"Retry-After": str(client_retry_after(error.retry_after))}


def _digest(key: str, encoding: str = "ascii") -> bytes:
    """Keys are compared as fixed-length digests, so the comparison time does not even reveal
    the key's length."""
    return hashlib.sha256(key.encode(encoding)).digest()


def _unauthorised(flavour: Flavour) -> Response:
    if flavour == "tei":
        return Response(b"", 401)  # TEI answers a wrong or missing key with an empty 401
    return Problem(
        401,
        "Missing or incorrect API key: send the server's key as 'Authorization: Bearer <key>'.",
        code="invalid_api_key",
    ).response("openai")


def create_app(
    model: embedify.EmbeddingModel | str = "local", settings: ServerSettings | None = None
) -> Starlette:
    """A Starlette application serving ``model`` (a model or a name for ``get_model``).

    The model loads and the batcher starts in the application's lifespan: run it under an ASGI
    server (uvicorn), or use ``starlette.testclient.TestClient`` as a context manager.
    """
    if isinstance(model, str):
        name, model = model, embedify.get_model(model)
    else:
        name = f"{model.provider}:{model.model_id}"
    name = public_name(name)  # it goes to every client (/info, each answer): a login must not
    server = EmbeddingServer(model, settings or ServerSettings(), name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    routes = [
        server.route(
            "/v1/embeddings", server.openai_embeddings, "POST", flavour="openai", label="openai"
        ),
        server.route(
            "/embeddings", server.openai_embeddings, "POST", flavour="openai", label="openai"
        ),
        server.route("/embed", server.tei_embed, "POST", flavour="tei", label="embed"),
        server.route("/info", server.info, "GET", flavour="tei", label="info"),
        server.route("/health", server.health, "GET", flavour="tei", label="health", public=True),
        server.route(
            "/metrics", server.prometheus, "GET", flavour="tei", label="metrics", public=True
        ),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.embedding_server = server
    return app
