"""The base of providers served over HTTP, so that a remote provider is only its wire mapping.

:class:`HTTPEmbeddingModel` holds the plumbing every remote provider needs, once: one client per
event loop (an HTTP connection pool belongs to the loop that opened it) with :meth:`aclose`; the
API key from the ``api_key`` option, then environment variables; the base URL accepted with or
without the API's version path; transport failures mapped to ``TransientError`` (an unknown
host to ``ConnectionFailedError``, which names it); and error statuses
translated by a table that the provider refines from its error body. Every response's
rate-limit headers reach the engine, errors included, and secrets never reach a message.
No client follows a redirect (:func:`redirect_refusal`), so a key never reaches another
server; a login in base_url is sent as Basic auth and never shown.

An httpx-based provider calls :meth:`~HTTPEmbeddingModel.request_json`; one built on a vendor SDK
makes its client in :meth:`~HTTPEmbeddingModel.make_client` (SDK retries off) and hands the SDK's
responses and exceptions to :meth:`~HTTPEmbeddingModel.check_response`,
:meth:`~HTTPEmbeddingModel.response_error` and :meth:`~HTTPEmbeddingModel.transport_error`.
"""

from __future__ import annotations

import asyncio
import http
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from pydantic import Field, SecretStr

from embedify.engine.headers import retry_after_from_headers
from embedify.engine.pacing import observe_rate_limit_headers
from embedify.errors import (
    STATUS_ERRORS,
    AuthenticationError,
    BadResponseError,
    ConfigurationError,
    ConnectionFailedError,
    EmbedifyError,
    ProviderError,
    RequestTimeoutError,
    TransientError,
    error_class,
    exception_chain,
    untrusted,
)
from embedify.loop_clients import LoopClients
from embedify.model import EmbeddingModel, RemoteOptions, public_url

_REDACTED = "***"
_LOGIN_IN_URL = re.compile(r"(?<=://)[^/\s@]+@")


class HTTPOptions(RemoteOptions):
    """Options of every model served over HTTP."""

    default_headers: dict[str, SecretStr] | None = Field(
        None, description="Sent with every request; values are secret like api_key."
    )


@dataclass(frozen=True)
class ErrorResponse:
    """An error answer, as :meth:`HTTPEmbeddingModel.refine_error` sees it.

    ``message`` and ``code`` are read from the body (secrets removed); ``text`` is the line an
    error raised for it should carry; ``retry_after`` comes from the headers.
    """

    status: int
    url: str
    body: Any
    message: str
    code: str | None
    text: str
    retry_after: float | None


class HTTPEmbeddingModel(EmbeddingModel, abstract=True):
    """Base class of remote providers: subclasses declare where and how, and map the wire.

    Class attributes say where the API is and how it authenticates; a subclass overrides
    :meth:`make_client` (an SDK client, or the default ``httpx.AsyncClient``) and
    :meth:`refine_error` (what its error bodies mean), and implements ``aembed_batch``.
    """

    options_class = HTTPOptions
    options: HTTPOptions

    default_base_url: ClassVar[str | None] = None
    base_url_variables: ClassVar[tuple[str, ...]] = ()
    version_paths: ClassVar[tuple[str, ...]] = ()  # accepted at the end of base_url, and dropped
    api_key_variables: ClassVar[tuple[str, ...]] = ()
    api_key_required: ClassVar[bool] = True
    # errors.STATUS_ERRORS, but a 404 whose body no refine_error claims is a missing route
    status_errors: ClassVar[Mapping[int, type[ProviderError]]] = STATUS_ERRORS

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        configured = self.configured_base_url()
        self.base_url: str | None = None  # where requests go, without the login
        self.base_url_login: tuple[str, str] | None = None  # (user, password), sent as Basic
        self._shown_base_url: str | None = None
        if configured:
            url = self.normalize_base_url(self._without_query(configured))
            self.base_url, self.base_url_login = _split_login(url)
            self._shown_base_url = public_url(url)
        self._clients = LoopClients(self)

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(abstract=True, **kwargs)
        if not abstract and cls.aembed_batch is EmbeddingModel.aembed_batch:
            raise TypeError(f"{cls.__name__} must implement aembed_batch (its wire mapping).")

    # -- where and who ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        """The server's identity in the cache fingerprint (the normalised base URL); never a key,
        and a login shows as ``***@`` (a password is not the server, so rotating it keeps the
        cache)."""
        return self._shown_base_url

    def configured_base_url(self) -> str | None:
        """The option, else the first environment variable set, else the default."""
        from os import environ

        found = (environ.get(name) for name in self.base_url_variables)
        return self.options.base_url or next((url for url in found if url), self.default_base_url)

    def _without_query(self, url: str) -> str:
        """A query in the base URL is refused: httpx and the SDKs merge request paths into it
        (``?key=k/embed``), and log it with every request."""
        if not urlsplit(url).query:
            return url
        raise ConfigurationError(
            f"{self.provider}: base_url {public_url(url)} holds a query string, which would be "
            "mixed into every request's path and written to logs; remove it, and pass a key as "
            "api_key=... or a header with default_headers={...}."
        )

    def normalize_base_url(self, url: str) -> str:
        """The URL requests are built on: the API's version path at the end is dropped, so
        ``https://api.example.com`` and ``https://api.example.com/v1`` are the same server."""
        url = url.rstrip("/")
        for suffix in self.version_paths:
            if url.endswith(suffix):
                return url[: -len(suffix)]
        return url

    def api_key(self) -> str | None:
        """The key from the ``api_key`` option, else from the first environment variable set."""
        from os import environ

        if self.options.api_key is not None:
            return self.options.api_key.get_secret_value()
        return next((environ[name] for name in self.api_key_variables if environ.get(name)), None)

    def default_headers(self) -> dict[str, str]:
        """The ``default_headers`` option, revealed for sending."""
        headers = self.options.default_headers or {}
        return {name: value.get_secret_value() for name, value in headers.items()}

    def secrets(self) -> list[str]:
        """Every value that must never appear in a message (subclasses add their tokens)."""
        password = self.base_url_login[1] if self.base_url_login else ""
        values = [self.api_key() or "", *self.default_headers().values(), password]
        return [value for value in values if len(value) >= 4]

    def redact(self, text: str) -> str:
        """``text`` without any secret, nor the login of any URL in it."""
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
        return _LOGIN_IN_URL.sub(f"{_REDACTED}@", text)

    async def prepare(self) -> None:
        """Fail at once, in one line, when a required key is missing."""
        if self.api_key_required and not self.api_key():
            where = " or ".join(self.api_key_variables)
            hint = f"pass api_key=... or set {where}" if where else "pass api_key=..."
            raise ConfigurationError(f"No API key for {self.provider}: {hint}.")

    # -- clients ------------------------------------------------------------------------------

    def make_client(self) -> Any:
        """A new client for the running event loop; the default is an :meth:`httpx_client`
        on ``base_url`` with a bearer key and ``default_headers``. SDK clients: retries off, and
        redirects not followed (an SDK on httpx takes :meth:`httpx_client`)."""
        headers = self.default_headers()
        key = self.api_key()
        if key:
            headers.setdefault("Authorization", f"Bearer {key}")
        return self.httpx_client(base_url=self.base_url or "", headers=headers)

    def httpx_client(self, **settings: Any) -> Any:
        """An ``httpx.AsyncClient`` as every transport must be: it follows no redirect (httpx
        keeps ``api-key`` and ``default_headers`` on the way to another origin; see
        :func:`redirect_refusal`), sends base_url's login as Basic auth rather than in URLs
        (which httpx logs), and leaves the number of connections to the engine."""
        import httpx

        return httpx.AsyncClient(
            timeout=self.options.timeout,
            follow_redirects=False,
            auth=httpx.BasicAuth(*self.base_url_login) if self.base_url_login else None,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
            **settings,
        )

    def client(self) -> Any:
        """This event loop's client, made on first use (pools cannot move between loops) and
        closed with the loop, or by :meth:`aclose`."""
        return self._clients.client(self.make_client)

    async def aclose(self) -> None:
        """Close this event loop's client; the next request opens a new one."""
        await self._clients.aclose()

    # -- requests (httpx providers) -----------------------------------------------------------

    async def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request with this loop's httpx client; the decoded JSON of a success.

        The ``timeout`` option bounds the whole exchange, not only each read: a server that
        trickles its answer a byte at a time never trips httpx's read timeout."""
        import httpx

        timeout = self.options.timeout
        try:
            response = await asyncio.wait_for(
                self.client().request(method, path, json=body), timeout
            )
        except httpx.TransportError as error:
            raise self.transport_error(error) from None
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"{self.provider} gave no whole answer to {method} {path} within {timeout:g} s "
                "(the timeout option)"
            ) from None
        url = str(response.request.url)
        failed = response.status_code >= 300  # only an error's body is read here: a success
        body = _body(response) if failed else None  # is parsed once, below
        self.check_response(response.status_code, response.headers, body, url)
        try:
            return response.json()
        except ValueError:
            raise BadResponseError(
                f"{url} answered {response.status_code} without JSON: is base_url a "
                f"{self.provider} server?",
                status=response.status_code,
            ) from None

    # -- errors -------------------------------------------------------------------------------

    def check_response(self, status: int, headers: Mapping[str, str], body: Any, url: str) -> None:
        """For every response: tell the engine its rate-limit headers; raise for an error or a
        redirect (never followed)."""
        if status >= 300:
            raise self.response_error(status, headers, body, url)
        observe_rate_limit_headers(headers)

    def response_error(
        self, status: int, headers: Mapping[str, str], body: Any, url: str
    ) -> EmbedifyError:
        """The embedify error for an error response (its rate-limit headers reach the engine
        first, so pacing learns from 429s too). A redirect is refused: see
        :func:`redirect_refusal`."""
        observe_rate_limit_headers(headers)
        if 300 <= status < 400:
            location = next((v for k, v in headers.items() if k.lower() == "location"), None)
            return redirect_refusal(
                status, self.redact(url), self.redact(location) if location else None
            )
        message, code = _describe(body)
        if code == str(status):  # Azure repeats the status as its code
            code = None
        if not message and status in _KNOWN:
            message = http.HTTPStatus(status).phrase
        message = untrusted(self.redact(message))
        code = None if code is None else untrusted(self.redact(code), 60)
        url = self.redact(url)
        text = f"{self.provider} {status}{f' {code}' if code else ''}: {message}"
        response = ErrorResponse(
            status, url, body, message, code, text, retry_after_from_headers(headers)
        )
        refined = self.refine_error(response)
        if refined is not None:
            if isinstance(refined, TransientError) and refined.retry_after is None:
                refined.retry_after = response.retry_after
            return refined
        if status == 404:
            return ConfigurationError(
                f"{url} answered 404 ({message}): that route is missing there, so it is not a "
                f"{self.provider} API; check base_url (now {self.base_url})."
            )
        kind = error_class(status, self.status_errors)
        if issubclass(kind, AuthenticationError):
            where = " or ".join(self.api_key_variables)
            text += f" (check api_key{f' / {where}' if where else ''} and its permissions)"
        if issubclass(kind, TransientError):
            return kind(text, status=status, retry_after=response.retry_after)
        return kind(text, status=status)

    def refine_error(self, response: ErrorResponse) -> EmbedifyError | None:
        """What this provider's error body means beyond its status: return the error, or None
        to use ``status_errors``. Recognise "model not found" here: a 404 left unclaimed is
        reported as a missing route."""
        return None

    def transport_error(self, error: BaseException) -> TransientError:
        """A failure below HTTP (httpx, or an SDK wrapping it) as a transient embedify error."""
        host = urlsplit(self.base_url or "").hostname
        chain = exception_chain(error)
        if any(isinstance(cause, socket.gaierror) for cause in chain):
            return ConnectionFailedError(
                f"cannot resolve host {host!r} (no network, or a typo in the URL {self.base_url})",
                host=host,
                name_resolution=True,
            )
        if any(_named(cause, "Timeout") for cause in chain):
            return RequestTimeoutError(f"{self.provider} request to {host} timed out")
        if any(isinstance(cause, ConnectionRefusedError) for cause in chain):
            return ConnectionFailedError(
                f"connection to {self.base_url} refused: is the server running?", host=host
            )
        if any(_named(cause, "ConnectError") for cause in chain):
            return ConnectionFailedError(
                self.redact(f"cannot connect to {self.base_url}: {chain[-1]}"), host=host
            )
        return TransientError(
            self.redact(f"{self.provider} connection to {host} failed: {chain[-1]!r}")
        )


_KNOWN = {status.value for status in http.HTTPStatus}


def redirect_refusal(status: int, url: str, location: str | None) -> ConfigurationError:
    """The error for a redirect answer to ``url``. No embedify client follows one: the request
    carries the key, which another origin must never receive (httpx drops ``Authorization``
    but keeps ``api-key`` and custom headers), and a 301/302/303 would turn the POST into a GET
    without its body. Fixing base_url once costs the user less than a leaked key."""
    if not location:
        return ConfigurationError(
            f"{public_url(url)} answered {status} without a Location (a redirect, which "
            "embedify does not follow): check base_url."
        )
    target = public_url(urljoin(url, location))
    return ConfigurationError(
        f"base_url redirects ({status}) to {target} (from {public_url(url)}); embedify follows "
        "no redirect, which would carry the API key along: set base_url to the final address."
    )


def _split_login(url: str) -> tuple[str, tuple[str, str] | None]:
    """``url`` without its ``user:password@``, and that login (sent as Basic auth)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username or ""), unquote(parts.password or ""))


#: How much of an error body is read for its message: bounded for cost, far above what shows.
_DESCRIBED_CHARS = 65_536


def _describe(body: Any) -> tuple[str, str | None]:
    """The message and code in an error body of any common shape (OpenAI's ``error`` object,
    TEI's ``error``/``error_type``, Cohere's ``message``, FastAPI's ``detail``), or its text.

    Not cut for display here: secrets are removed first, and a secret cut in two would no
    longer be found (``untrusted`` shortens the text afterwards). Only a huge body is bounded."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            code = inner.get("code") or inner.get("type")
            return str(inner.get("message") or ""), None if code is None else str(code)
        if isinstance(inner, str):
            kind = body.get("error_type")
            return inner, None if kind is None else str(kind)
        for key in ("message", "detail"):
            if key in body:
                value = body[key]
                text = value if isinstance(value, str) else json.dumps(value)
                kind = body.get("type") or body.get("code")
                return text, None if kind is None or isinstance(kind, int) else str(kind)
        return json.dumps(body)[:_DESCRIBED_CHARS], None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return ("" if body is None else str(body).strip())[:_DESCRIBED_CHARS], None


def _body(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _named(error: BaseException, part: str) -> bool:
    return any(part in cls.__name__ for cls in type(error).__mro__)
