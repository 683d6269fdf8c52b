"""Secrets never leave their origin, and a base_url's login never shows.

Every remote provider is driven through its real client (httpx, the OpenAI and Cohere SDKs, the
core's stdlib client) against two loopback servers: ``origin`` answers every request with a
redirect, ``elsewhere`` records what reaches it. No redirect is followed, whatever its status or
target, so no key, header or body ever reaches another server; the error names the status and
the target, with its credentials removed. A base_url's user and password never show in
``info``, reprs, fingerprints, error messages or log records (the libraries' loggers included).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import embedify
from embedify import errors
from embedify.http import HTTPEmbeddingModel, redirect_refusal
from embedify.model import EmbeddingModel, public_url
from embedify.testing import LoopbackServer, Response
from embedify.testing.http_fake import HttpFakeModel

pytestmark = pytest.mark.faults

KEY = "sk-redirect-secret-0001"
HEADER_SECRET = "dh-redirect-secret-0002"
PASSWORD = "pa55word-secret-0003"
QUERY_SECRET = "qsecret-0004"
SECRETS = (KEY, HEADER_SECRET, PASSWORD, QUERY_SECRET)
SENT = (KEY, HEADER_SECRET, PASSWORD)  # what a provider sends, and must send nowhere else
LOCATION_SECRETS = ("loc-password-0005", "loc-token-0006")  # a hostile Location's own
REDIRECTS = (301, 302, 303, 307, 308)


class Demo(HTTPEmbeddingModel):
    """A provider on the core's own httpx client (``request_json``)."""

    provider = "demo"
    default_model_id = "demo-1"

    async def aembed_batch(self, texts: list[str], role: embedify.Role) -> Any:
        answer = await self.request_json("POST", "/v1/embed", {"inputs": texts})
        return np.asarray(answer["embeddings"], dtype=np.float32)


def _demo(url: str) -> EmbeddingModel:
    return Demo(
        api_key=KEY, base_url=url, default_headers={"x-proxy-token": HEADER_SECRET}, max_retries=0
    )


def _http_fake(url: str) -> EmbeddingModel:
    return HttpFakeModel(api_key=KEY, base_url=url, max_retries=0)


def _plugin(module: str, name: str, **extra: Any) -> Callable[[str], EmbeddingModel]:
    def build(url: str) -> EmbeddingModel:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (CI's main suite installs every provider)")
        options: dict[str, Any] = {
            "api_key": KEY,
            "default_headers": {"x-proxy-token": HEADER_SECRET},
            "max_retries": 0,
            **extra,
        }
        if name.startswith("azure"):
            options["azure_endpoint"] = url
        elif name == "tei":
            return embedify.get_model(f"tei:{url}", **options)
        else:
            options["base_url"] = url
        return embedify.get_model(name, **options)

    return build


PROVIDERS: dict[str, Callable[[str], EmbeddingModel]] = {
    "core-httpx": _demo,
    "core-stdlib": _http_fake,
    "openai": _plugin("embedify_openai", "openai:text-embedding-3-small"),
    "azure-deployments": _plugin(
        "embedify_azure_openai", "azure:embeddings", api_version="2024-10-21"
    ),
    "azure-v1": _plugin("embedify_azure_openai", "azure:embeddings", route="v1"),
    "cohere": _plugin("embedify_cohere", "cohere:embed-english-v3.0"),
    "jina": _plugin("embedify_jina", "jina:jina-embeddings-v3"),
    "tei": _plugin("embedify_tei", "tei"),
}


@pytest.fixture
def elsewhere() -> Iterator[LoopbackServer]:
    """Another origin (another port): records every request, answers nothing useful."""
    with LoopbackServer(lambda request: Response(500, {"error": "not here"})) as server:
        yield server


def _leaks(server: LoopbackServer) -> list[str]:
    """Every sent secret that reached ``server``: in a header, the path, the query or the body."""
    seen = [
        " ".join([request.path, str(request.query), str(request.headers), repr(request.body)])
        for request in server.requests
    ]
    return [secret for secret in SENT for text in seen if secret in text]


def _failure(model: EmbeddingModel) -> BaseException:
    with pytest.raises(Exception) as raised:  # each test checks the type
        model.embed(["hello"])
    return raised.value


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redirect_to_another_origin_is_refused_and_no_secret_follows(
    provider: str, status: int, elsewhere: LoopbackServer
) -> None:
    port = elsewhere.url.rsplit(":", 1)[1]
    password, token = LOCATION_SECRETS
    location = f"http://mallory:{password}@127.0.0.1:{port}/steal?token={token}"
    redirect = Response(status, "", headers={"Location": location})
    with LoopbackServer(lambda request: redirect) as origin:
        error = _failure(PROVIDERS[provider](origin.url))
    assert _leaks(elsewhere) == []
    assert elsewhere.requests == []
    assert isinstance(error, errors.ConfigurationError), repr(error)
    message = str(error)
    assert f"redirects ({status})" in message
    assert f"http://***@127.0.0.1:{port}/steal?token=***" in message
    assert "set base_url to the final address" in message
    assert not [secret for secret in (*SECRETS, *LOCATION_SECRETS) if secret in message]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redirect_within_the_origin_is_refused_too(provider: str) -> None:
    """Not followed either: one request, and the fix (the final address) in the message."""
    redirect = Response(308, "", headers={"Location": "/moved/here/"})
    with LoopbackServer(lambda request: redirect) as origin:
        error = _failure(PROVIDERS[provider](origin.url))
        assert len(origin.requests) == 1
    assert isinstance(error, errors.ConfigurationError), repr(error)
    assert f"{origin.url}/moved/here/" in str(error)


def test_a_redirect_without_a_location_is_still_an_error() -> None:
    error = redirect_refusal(307, "http://127.0.0.1:9/v1/embed", None)
    assert isinstance(error, errors.ConfigurationError)
    assert "answered 307 without a Location" in str(error)


def test_the_refusal_resolves_a_relative_location_and_hides_its_credentials() -> None:
    relative = redirect_refusal(302, "http://h:1/v1/embed", "other?api_key=k3y-value")
    assert "http://h:1/v1/other?api_key=***" in str(relative)
    absolute = redirect_refusal(301, "http://h:1/v1/embed", "https://u:pw-value@x.example/v1")
    assert "https://***@x.example/v1" in str(absolute)
    assert "pw-value" not in str(absolute)


_parts = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1, max_size=12)


@given(user=_parts, password=_parts, name=_parts, value=_parts, path=_parts)
def test_public_url_never_shows_a_login_or_a_query_value(
    user: str, password: str, name: str, value: str, path: str
) -> None:
    url = f"https://U{user}:P{password}@api.example.com/{path}?{name}=V{value}"
    shown = public_url(url)
    assert f"U{user}" not in shown and f"P{password}" not in shown and f"V{value}" not in shown
    assert shown == f"https://***@api.example.com/{path}?{name}=***"


@pytest.mark.parametrize(
    "text",
    ["text-embedding-3-small", "org/model", "http://127.0.0.1:8080", "HTTPS://Host:443/v1#x?"],
)
def test_public_url_keeps_what_holds_no_credentials(text: str) -> None:
    """Character for character, so that no fingerprint (and no cache) changes."""
    assert public_url(text) == text


@pytest.fixture
def dead_url() -> str:
    """A loopback address where nothing listens (a server opened and closed)."""
    with LoopbackServer(lambda request: Response()) as server:
        url = server.url
    return url


def _with_login(url: str, path: str = "/v1") -> str:
    return url.replace("http://", f"http://usr:{PASSWORD}@") + path


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_base_url_login_never_shows(
    provider: str, dead_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """In info, the fingerprint, repr/str, the error of a refused connection and every log
    record (httpx logs each request's URL at INFO)."""
    caplog.set_level(logging.DEBUG)
    model = PROVIDERS[provider](_with_login(dead_url))
    shown = [
        model.info.model_dump_json(),
        model.info.fingerprint(),
        repr(model),
        str(model),
        str(_failure(model)),
        caplog.text,
        *(record.getMessage() for record in caplog.records),
    ]
    assert not [(secret, text) for text in shown for secret in SECRETS if secret in text]
    assert "***@" in str(model.info.endpoint)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_base_url_login_never_shows_in_an_error_answer(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with LoopbackServer(lambda request: Response(404, "404 page not found")) as server:
        error = _failure(PROVIDERS[provider](_with_login(server.url)))
    texts = [str(error), caplog.text]
    assert not [(secret, text) for text in texts for secret in SECRETS if secret in text]


@pytest.mark.parametrize("shape", ["text", "json"])
@pytest.mark.parametrize("offset", [280, 292])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_key_echoed_in_an_error_body_never_shows_even_in_part(
    provider: str, offset: int, shape: str
) -> None:
    """A proxy that echoes the request into its error page puts the key anywhere, also where
    the message is cut for display: no part of it may show (secrets go before the cut)."""

    def echo(request: Any) -> Response:
        sent = KEY if KEY in str(request.headers) else "no key"
        text = "y" * offset + sent + " (echoed by the proxy)"
        return Response(500, text if shape == "text" else {"echo": text})

    with LoopbackServer(echo) as server:
        error = _failure(PROVIDERS[provider](server.url))
    assert "yyyy" in str(error)  # the body is shown, cut
    assert KEY[:6] not in str(error)


@pytest.mark.parametrize("provider", [name for name in PROVIDERS if name != "core-stdlib"])
def test_a_base_url_query_is_refused_without_showing_it(provider: str, dead_url: str) -> None:
    """``?api_key=...`` in base_url would be merged into request paths and logged by httpx."""
    with pytest.raises(errors.ConfigurationError) as raised:
        PROVIDERS[provider](f"{dead_url}/v1?api_key={QUERY_SECRET}")
    assert "base_url" in str(raised.value) and "query" in str(raised.value)
    assert QUERY_SECRET not in str(raised.value)


def test_the_stdlib_provider_shows_no_query_value(dead_url: str) -> None:
    model = HttpFakeModel(api_key=KEY, base_url=f"{dead_url}/v1?api_key={QUERY_SECRET}")
    assert QUERY_SECRET not in model.info.model_dump_json() + model.info.fingerprint()


def test_a_login_is_a_secret_that_redact_removes_from_any_text() -> None:
    model = Demo(api_key=KEY, base_url=f"https://usr:{PASSWORD}@h.example/v1")
    assert PASSWORD in model.secrets()
    text = model.redact(f"failed: https://usr:{PASSWORD}@h.example/v1 and ftp://a:b@c/d")
    assert text == "failed: https://***@h.example/v1 and ftp://***@c/d"


def test_a_password_is_not_the_servers_identity() -> None:
    """Rotating a proxy's password keeps the fingerprint, so the cache still serves."""
    first = Demo(api_key=KEY, base_url="https://usr:old-password@h.example/v1")
    second = Demo(api_key=KEY, base_url="https://usr:new-password@h.example/v1")
    assert first.info.fingerprint() == second.info.fingerprint()
    assert first.info.endpoint == "https://***@h.example/v1"


@pytest.mark.parametrize("as_json", [False, True])
def test_embedify_models_shows_no_login_of_the_default_model_or_an_alias(
    monkeypatch: pytest.MonkeyPatch, isolated_home: Any, as_json: bool
) -> None:
    from click.testing import CliRunner

    from embedify.cli import cli

    config = isolated_home / "config"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(
        '{"aliases": {"mine": "tei:https://me:alias-pass@tei.example/?token=alias-token"}}'
    )
    monkeypatch.setenv("EMBEDIFY_MODEL", "tei:https://me:env-pass@tei.example")
    result = CliRunner().invoke(cli, ["models", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    for secret in ("env-pass", "alias-pass", "alias-token"):
        assert secret not in result.output
    assert "tei:https://***@tei.example" in result.output
