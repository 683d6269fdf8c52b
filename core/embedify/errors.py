"""Error types shared by the engine and every provider.

Providers translate their SDK's exceptions into these, so the engine can decide, in one place,
what to retry (``TransientError``), what to split (``BatchTooLargeError``, a timed-out
request), what to truncate (``InputTooLongError``) and what to give up on (``PermanentError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from embedify.report import Report


class EmbedifyError(Exception):
    """Base class of every error embedify raises on purpose."""


def untrusted(text: object, limit: int = 300) -> str:
    """Text a server wrote, as a message may carry it: at most ``limit`` characters, and no
    character that is not printable (an escape sequence in an error body could rewrite the
    user's terminal; a megabyte-long one would flood every log line)."""
    value = "".join(c if c.isprintable() else "?" for c in str(text).strip())
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value) - limit} more)"


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and what caused it, outermost first: an SDK wraps the socket error that says
    what really went wrong (a name that does not resolve) several causes deep."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


class ConfigurationError(EmbedifyError, ValueError):
    """A model name, option or environment setting is wrong; the message says how to fix it."""


class StorageError(ConfigurationError):
    """A cache or collection file cannot be used (damaged, another program's database, a
    folder, no space left); the message names the file and what to do. ``path`` is the file."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class StorageWarning(UserWarning):
    """The cache could not store this job's vectors; the job went on without it."""


class UnknownModelError(ConfigurationError, LookupError):
    """A model name did not resolve to a registered provider or model."""


class InvalidInputError(ConfigurationError, TypeError):
    """An input text cannot be embedded (wrong type, empty, lone surrogate); the message names
    its index and the fix. A ``TypeError`` too, for callers that catch that."""


class ProviderError(EmbedifyError):
    """A provider request failed. ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(ProviderError):
    """Worth retrying after a delay: timeouts, dropped connections, 5xx, overload."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RateLimitError(TransientError):
    """The provider asked us to slow down (429). The engine waits and paces; a job fails on
    rate limits only after ``rate_limit_timeout`` seconds without a successful request."""


class RequestTimeoutError(TransientError):
    """The request got no answer in time. The engine splits the batch instead of sending the
    same work again to a server that may still be computing it."""


class ConnectionFailedError(TransientError):
    """No connection to the server: refused, reset, dropped, or its name did not resolve.

    ``host`` names the server when known. ``name_resolution`` marks a failed DNS lookup (no
    network, a typo in the host): the engine retries it once, then stops the job.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        name_resolution: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, retry_after=retry_after)
        self.host = host
        self.name_resolution = name_resolution


class PermanentError(ProviderError):
    """Retrying the same request cannot succeed.

    ``stops_job`` marks errors that every other request would hit too (bad key, unknown model,
    exhausted quota): the engine then stops sending requests instead of failing each one.
    """

    stops_job = False


class InvalidRequestError(PermanentError):
    """The provider rejected this request's content (400/422 that is not about size)."""


class AuthenticationError(PermanentError):
    """Missing or rejected credentials (401/403)."""

    stops_job = True


class ModelNotFoundError(PermanentError):
    """The provider does not serve this model or deployment (404)."""

    stops_job = True


class QuotaExceededError(PermanentError):
    """The account's quota or credit is exhausted: waiting will not help."""

    stops_job = True


class BatchTooLargeError(ProviderError):
    """The provider rejected the request as too large; the engine splits it and retries."""


class InputTooLongError(ProviderError):
    """An input exceeds the model's token limit.

    ``index`` is the position in the caller's input when known, ``tokens`` the count when known.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        index: int | None = None,
        tokens: int | None = None,
    ) -> None:
        super().__init__(message, status=status)
        self.index = index
        self.tokens = tokens


class BadResponseError(PermanentError):
    """The provider answered with something that is not a valid embedding batch."""


#: What an HTTP status means when the body says nothing more: the one table, which
#: ``error_for_status`` and every HTTP provider (``HTTPEmbeddingModel.status_errors``, which a
#: provider may extend) read. 504 is a request that timed out, which the engine splits rather
#: than resends. Any other 5xx is transient, any other 4xx an invalid request (``error_class``).
STATUS_ERRORS: Mapping[int, type[ProviderError]] = {
    401: AuthenticationError,
    402: QuotaExceededError,
    403: AuthenticationError,
    404: ModelNotFoundError,
    408: TransientError,
    409: TransientError,
    413: BatchTooLargeError,
    429: RateLimitError,
    504: RequestTimeoutError,
}


def error_class(
    status: int, table: Mapping[int, type[ProviderError]] = STATUS_ERRORS
) -> type[ProviderError]:
    """The error type of ``status`` by ``table``: else transient for 5xx, invalid for 4xx."""
    return table.get(status) or (TransientError if status >= 500 else InvalidRequestError)


def error_for_status(
    status: int, message: str, *, retry_after: float | None = None
) -> ProviderError:
    """The usual meaning of an HTTP status (``STATUS_ERRORS``), for providers to refine by the
    error body."""
    kind = error_class(status)
    if issubclass(kind, TransientError):
        return kind(message, status=status, retry_after=retry_after)
    return kind(message, status=status)


class EmbeddingJobError(EmbedifyError):
    """Some items could not be embedded even after retries.

    Nothing that succeeded is lost: ``partial`` holds every finished vector (rows of failed
    items are NaN, or all-zero codes for a quantized ``precision``), it was written to the
    cache when one is enabled, and ``failures`` maps each failed input index to its error.
    """

    def __init__(
        self,
        failures: Mapping[int, ProviderError],
        partial: np.ndarray[Any, Any],
        report: Report,
    ) -> None:
        self.failures = dict(failures)
        self.partial = partial
        self.report = report
        reasons: dict[str, list[int]] = {}
        for index, error in sorted(self.failures.items()):
            reasons.setdefault(f"{type(error).__name__}: {error}", []).append(index)
        lines = [
            f"{len(self.failures)} of {len(partial)} inputs failed "
            f"({len(partial) - len(self.failures)} succeeded and are kept in .partial):"
        ]
        for reason, indices in reasons.items():
            shown = ", ".join(map(str, indices[:10])) + (" ..." if len(indices) > 10 else "")
            lines.append(f"  inputs [{shown}]: {reason}")
        super().__init__("\n".join(lines))
