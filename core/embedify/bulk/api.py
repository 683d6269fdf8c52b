"""What a provider's batch API offers the bulk runner: the protocol, its limits and prices."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from embedify.errors import ConfigurationError

if TYPE_CHECKING:
    import numpy as np

    from embedify.protocol import ProviderModel

#: Batch states after which nothing changes (OpenAI's words, which other providers map to).
TERMINAL_STATES = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass(frozen=True)
class BatchLimits:
    """A provider's documented limits on one batch and its input file."""

    requests_per_file: int
    bytes_per_file: int
    inputs_per_request: int
    #: Inputs across all the requests of one batch (``None``: no such limit).
    inputs_per_batch: int | None = None
    #: Tokens in one request, all its inputs together (``None``: no such limit).
    tokens_per_request: int | None = None


@dataclass(frozen=True)
class Price:
    """US dollars per million input tokens, online and through the batch API."""

    online: float
    batch: float


@dataclass(frozen=True)
class BatchInfo:
    """A batch as the provider last described it."""

    id: str
    status: str
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    #: Problems the provider found in the batch itself, as ``(line or None, message)``; a line
    #: is 1-based in the input file.
    errors: tuple[tuple[int | None, str], ...] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATES


@dataclass(frozen=True)
class BatchResult:
    """One line of an output or error file: the vectors of a request, or why it failed."""

    custom_id: str
    vectors: np.ndarray[Any, Any] | None
    error: str | None = None
    tokens: int = 0


class BatchAPI(Protocol):
    """A provider's batch API, bound to one model (its id and options go in every line)."""

    limits: BatchLimits
    #: The model's prices (``None``: not known; the dry run then shows no cost).
    price: Price | None

    @property
    def dimension(self) -> int | None:
        """The width of the vectors its requests ask for (``None``: not known before an answer).
        An answer of another width is a failed request."""

    def request_line(self, custom_id: str, texts: list[str]) -> bytes:
        """One line of the input file, ending with a newline, embedding ``texts``."""

    def upload(self, name: str, content: bytes) -> str:
        """Upload an input file; its id."""

    def create(self, input_file_id: str) -> BatchInfo:
        """Start a batch on an uploaded file."""

    def retrieve(self, batch_id: str) -> BatchInfo: ...

    def find(self, input_file_id: str) -> BatchInfo | None:
        """The batch created from ``input_file_id``, if any: a crash after creating a batch and
        before recording its id must not lead to a second batch."""

    def download(self, file_id: str) -> bytes: ...

    def cancel(self, batch_id: str) -> BatchInfo: ...

    def parse_results(self, content: bytes) -> Iterator[BatchResult]:
        """The lines of a downloaded output or error file."""


@runtime_checkable
class SupportsBatchAPI(Protocol):
    """A model whose provider has a batch API (see the package docstring)."""

    def batch_api(self) -> BatchAPI: ...


def batch_api_of(model: ProviderModel, providers: list[str] | None = None) -> BatchAPI:
    """``model``'s batch API, or an error naming the providers that have one, or the option
    that the batch path cannot honour."""
    if not isinstance(model, SupportsBatchAPI):
        named = ", ".join(providers) if providers else "none installed"
        raise ConfigurationError(
            f"{model!r} has no batch API; embed it online (--via online), or use a model of a "
            f"provider that has one ({named})."
        )
    problem = _engine_shaped_option(model)
    if problem:
        raise ConfigurationError(
            f"{model!r}: the batch API writes the provider's own vectors, so {problem} would "
            "not be applied; drop that option (and convert the output afterwards), or embed "
            "online (--via online)."
        )
    return model.batch_api()


def _engine_shaped_option(model: ProviderModel) -> str | None:
    """The option that online jobs apply here after the provider answered, if one is set."""
    options, capabilities = model.options, model.capabilities
    if options.precision != "float32":
        return f"precision={options.precision!r}"
    if options.normalize and not capabilities.normalized:
        return "normalize=True"
    if options.dimensions is not None and capabilities.dimensions_mode != "native":
        return f"dimensions={options.dimensions} (cut here, not by the provider)"
    return None
