"""The provider protocol: what a model declares, and the one batch call it implements.

It knows nothing of the engine. The engine types against :class:`ProviderModel` and uses only
what this module defines; :class:`embedify.model.EmbeddingModel` adds the calls users make
(``embed`` and its twins), which hand the job to the engine. Providers subclass
``EmbeddingModel`` and fill in what is here: capabilities as data, and ``embed_batch`` (or
``aembed_batch`` for a native async client).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import math
import os
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from embedify.capabilities import Capabilities as Capabilities
from embedify.capabilities import DimensionsMode as DimensionsMode
from embedify.capabilities import LegacyCapability, fold_legacy_attributes
from embedify.capabilities import Limits as Limits
from embedify.errors import ConfigurationError
from embedify.options import ModelOptions, explain_options
from embedify.quantize import CALIBRATED, Precision, calibration_identity
from embedify.report import Vectors as Vectors

# Each model's worker threads, kept off the model (which stays picklable) and made once: two
# first calls on two event loops must not make two pools.
_WORKERS: weakref.WeakKeyDictionary[ProviderModel, ThreadPoolExecutor] = weakref.WeakKeyDictionary()
_WORKERS_LOCK = threading.Lock()
Role = Literal["document", "query", "classification", "clustering"]
ROLES: tuple[Role, ...] = ("document", "query", "classification", "clustering")


class ModelInfo(BaseModel):
    """Everything known about a model before the first call (see ``EmbeddingModel.info``)."""

    model_config = ConfigDict(frozen=True)

    provider: str
    model_id: str
    revision: str | None
    dimension: int | None
    output_dimension: int | None
    allowed_dimensions: tuple[int, ...] | None
    dimensions_mode: Literal["native", "matryoshka", "fixed"]
    limits: Limits
    roles: Mapping[str, str]
    native_async: bool
    normalized: bool
    output_dtypes: tuple[str, ...]
    exact_token_count: bool
    max_concurrency: int
    endpoint: str | None = None
    learned_dimension: bool = False
    compute: str | None = None
    precision: Precision = "float32"
    # Who turns floats into ``precision`` codes (None for float32), and for int8/uint8 made
    # here, which calibration set gave the ranges.
    quantized_by: Literal["provider", "embedify"] | None = None
    calibration: str | None = None

    def fingerprint(self) -> str:
        """Stable identity of the vectors this model produces (keys the cache and collections).

        It holds the endpoint (a base URL or deployment, never a key): two servers may serve
        different weights under one model name. A dimension learned from the first answer is
        left out, so the same model object keeps one fingerprint before and after its first
        call; the cache checks vector lengths instead.
        """
        import hashlib
        import json

        identity: dict[str, Any] = {
            "provider": self.provider,
            "model_id": self.model_id,
            "revision": self.revision,
            "dimension": None if self.learned_dimension else self.output_dimension,
            "normalized": self.normalized,
            "roles": dict(sorted(self.roles.items())),
        }
        if self.endpoint is not None:
            identity["endpoint"] = self.endpoint
        if self.compute is not None:
            identity["compute"] = self.compute
        if self.precision != "float32":
            identity["precision"] = self.precision
            if self.calibration is not None:
                identity["calibration"] = self.calibration
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        return f"{self.provider}:{self.model_id}@{digest[:16]}"


def public_url(text: str) -> str:
    """``text`` as it may be shown: in an absolute URL, a user and password become ``***`` and
    every query value ``***`` (``https://***@host/v1?key=***``). Anything else is returned as
    it is, so model ids pass through unchanged."""
    try:
        parts = urlsplit(text)
    except ValueError:  # not a URL after all (an unclosed "[" in the host): show no login
        return re.sub(r"//[^/]*@", "//***@", text).partition("?")[0]
    if not (parts.scheme and parts.netloc) or ("@" not in parts.netloc and not parts.query):
        return text  # as it was, character for character: fingerprints hold it
    netloc = f"***@{parts.netloc.rpartition('@')[2]}" if "@" in parts.netloc else parts.netloc
    fields = (field.partition("=") for field in parts.query.split("&")) if parts.query else ()
    query = "&".join(f"{name}=***" if equals else name for name, equals, _ in fields)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def public_name(name: str) -> str:
    """A model name (``tei:http://user:pw@host``) as it may be shown: :func:`public_url` of
    the part after the provider."""
    provider, colon, model_id = name.partition(":")
    return f"{provider}{colon}{public_url(model_id)}"


def estimate_tokens(text: str) -> int:
    """A conservative token count for providers without a local tokenizer.

    BPE tokenizers average about four bytes of English per token; three bytes over-counts
    English and stays near one token per character for CJK text, so limits are kept.
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


class ProviderModel:
    """A model as its provider defines it, and as the engine sees it.

    Subclasses declare ``capabilities`` (or return them from ``configure`` when they depend on
    the model id) and implement exactly one of ``embed_batch`` and ``aembed_batch``. Providers
    subclass :class:`embedify.model.EmbeddingModel`, which adds the calls users make; this base
    exists so that the engine need not import them.
    """

    provider: ClassVar[str] = "custom"
    default_model_id: ClassVar[str | None] = None
    options_class: ClassVar[type[ModelOptions]] = ModelOptions

    capabilities: Capabilities = Capabilities()
    revision: str | None = None
    # The arithmetic behind the vectors when it is not exact float32 ("bfloat16", "int8"):
    # part of the fingerprint, so vectors of two computations never share a cache or collection.
    compute: str | None = None

    # ``capabilities`` under the names its fields had before it (assigning one is deprecated).
    dimension: LegacyCapability[int | None] = LegacyCapability()
    allowed_dimensions: LegacyCapability[tuple[int, ...] | None] = LegacyCapability()
    supports_dimensions: LegacyCapability[bool] = LegacyCapability()
    matryoshka: LegacyCapability[bool] = LegacyCapability()
    normalized: LegacyCapability[bool] = LegacyCapability()
    limits: LegacyCapability[Limits] = LegacyCapability()
    role_mapping: LegacyCapability[Mapping[str, str]] = LegacyCapability()
    output_dtypes: LegacyCapability[tuple[str, ...]] = LegacyCapability()
    truncates_natively: LegacyCapability[bool] = LegacyCapability()
    exact_token_count: LegacyCapability[bool] = LegacyCapability()
    default_max_concurrency: LegacyCapability[int] = LegacyCapability()

    _init_depth = 0  # constructors running on this instance (the options are checked after)
    _declared_dimension: int | None = None

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        resolved = model_id or self.default_model_id
        if not resolved:
            raise ConfigurationError(f"{type(self).__name__} needs a model id.")
        self.model_id: str = resolved
        try:
            self.options = self.options_class(**options)
        except ValidationError as error:
            raise ConfigurationError(
                explain_options(type(self).__name__, error, list(self.options_class.model_fields))
            ) from None
        if self._init_depth == 0:  # a subclass without its own __init__
            self._built()

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        """A provider must implement a batch method; a base for providers (``abstract=True``
        in its class statement, like :class:`embedify.http.HTTPEmbeddingModel`) need not."""
        super().__init_subclass__(**kwargs)
        if (
            not abstract
            and cls.embed_batch is ProviderModel.embed_batch
            and cls.aembed_batch is ProviderModel.aembed_batch
        ):
            raise TypeError(f"{cls.__name__} must implement embed_batch or aembed_batch.")
        if "__init__" in cls.__dict__:
            cls.__init__ = _checked_after(cls.__dict__["__init__"])  # type: ignore[method-assign]
        fold_legacy_attributes(cls)

    def configure(self) -> Capabilities:
        """This model's capabilities, called once when the outermost constructor is done.

        The default is the class's ``capabilities``. Override it where they depend on the model
        id or the options (a table of known models), and raise ``ConfigurationError`` here for a
        combination the provider cannot serve, so a mistake is found when the model is built.
        """
        return self.capabilities

    def _built(self) -> None:
        """Fix the capabilities, then check the options against them: a mistake is an error
        when the model is built rather than at its first call."""
        self.capabilities = self.configure()
        self._declared_dimension = self.capabilities.dimension
        problem = self.dimensions_problem()
        if problem:
            raise ConfigurationError(problem)
        _check_cache_option(self.options.cache)
        if self.options.calibration is not None and self.info.calibration is None:
            raise ConfigurationError(
                f"calibration= sets the ranges of int8/uint8 vectors quantized here; {self!r} "
                f"has precision={self.options.precision!r}"
                + (" from the provider" if self.quantized_by == "provider" else "")
                + ", which needs none: drop calibration=."
            )
        if self.options.calibration is not None and len(self.options.calibration) < 2:
            raise ConfigurationError(
                "calibration= needs at least 2 texts (a few hundred like your data are best)."
            )

    def details(self) -> dict[str, str]:
        """What ``embedify models --verbose`` shows beyond ``info``: where the weights come
        from, which runtime runs them and why. None by default; providers add their own."""
        return {}

    def learn_dimension(self, width: int) -> None:
        """Record the dimension the first answer showed, for a model that could not say it
        before (an unknown model, a compatible server); the engine's one write to a model."""
        if self.capabilities.dimension is None:
            self.capabilities = dataclasses.replace(self.capabilities, dimension=width)

    def dimensions_problem(self) -> str | None:
        """Why the ``dimensions`` option cannot be served (``None``: it can, or is unset)."""
        requested = self.options.dimensions
        if requested is None:
            return None
        capabilities = self.capabilities
        allowed, native = capabilities.allowed_dimensions, capabilities.dimension
        if allowed is not None and requested not in allowed:
            return (
                f"{self!r} does not offer dimensions={requested}; "
                f"allowed: {', '.join(map(str, allowed))}."
            )
        if native is not None and requested > native:
            return f"dimensions={requested} is more than {self!r}'s native {native}."
        if capabilities.dimensions_mode == "fixed":
            return (
                f"{self!r} has a fixed output dimension ({native}) and is not a "
                "Matryoshka model, so cutting its vectors would make them meaningless; drop the "
                "dimensions option."
            )
        return None

    @property
    def endpoint(self) -> str | None:
        """Where the model is served (base URL, deployment), for the fingerprint and ``info``:
        never a key, nor a login or query value in the URL (a password is not the server)."""
        base_url = getattr(self.options, "base_url", None)
        return public_url(str(base_url)) if base_url else None

    # -- what a provider implements ------------------------------------------------------------

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        """Embed one request's worth of texts for ``role``; return float32 ``(len(texts), d)``.

        The engine guarantees the batch respects ``capabilities.limits`` and that ``role`` is one
        of ``capabilities.roles``. Raise the errors of :mod:`embedify.errors` on failure.
        """
        return asyncio.run(self.aembed_batch(texts, role))

    async def aembed_batch(self, texts: list[str], role: Role) -> Vectors:
        """Native async variant of ``embed_batch``; the default runs it on this model's own
        worker threads, as many as requests it may have in flight (asyncio's shared pool
        would cap a blocking SDK client at a few threads, whatever ``max_concurrency`` says)."""
        call = functools.partial(contextvars.copy_context().run, self.embed_batch, texts, role)
        return await asyncio.get_running_loop().run_in_executor(self._worker_threads(), call)

    def _worker_threads(self) -> ThreadPoolExecutor:
        with _WORKERS_LOCK:
            workers = _WORKERS.get(self)
            if workers is None:
                size = self.options.max_concurrency or self.capabilities.max_concurrency
                workers = ThreadPoolExecutor(size, thread_name_prefix=f"embedify-{self.provider}")
                weakref.finalize(self, workers.shutdown, wait=False)
                _WORKERS[self] = workers
            return workers

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text; override with the model's tokenizer for exact counts."""
        return [estimate_tokens(text) for text in texts]

    def truncate_text(self, text: str, max_tokens: int, side: Literal["end", "start"]) -> str:
        """Cut ``text`` to at most ``max_tokens`` tokens, removing from ``side``.

        The default keeps a proportional share of the characters, which errs short like
        ``estimate_tokens``; tokenizer-backed providers override it to cut exactly.
        """
        (tokens,) = self.count_tokens([text])
        keep = max(1, math.floor(len(text) * max_tokens / max(tokens, 1)))
        while keep > 1 and self.count_tokens([_cut(text, keep, side)])[0] > max_tokens:
            keep = math.floor(keep * 0.9)
        return _cut(text, keep, side)

    async def prepare(self) -> None:
        """Called once before the first request; servers that publish limits fill them here."""

    # -- introspection -------------------------------------------------------------------------

    @property
    def info(self) -> ModelInfo:
        """Capabilities and limits, known before the first call."""
        capabilities = self.capabilities
        return ModelInfo(
            provider=self.provider,
            model_id=public_url(self.model_id),  # a URL for some providers (tei:<url>)
            revision=self.revision,
            dimension=capabilities.dimension,
            output_dimension=self.options.dimensions or capabilities.dimension,
            allowed_dimensions=capabilities.allowed_dimensions,
            dimensions_mode=capabilities.dimensions_mode,
            limits=capabilities.limits,
            roles=dict(capabilities.roles),
            native_async=type(self).aembed_batch is not ProviderModel.aembed_batch,
            normalized=bool(self.options.normalize)
            or capabilities.normalized
            or (self.options.dimensions is not None and self.options.normalize is not False),
            output_dtypes=capabilities.precisions,
            exact_token_count=capabilities.exact_tokens,
            max_concurrency=self.options.max_concurrency or capabilities.max_concurrency,
            endpoint=self.endpoint,
            learned_dimension=self._declared_dimension is None
            and capabilities.dimension is not None
            and self.options.dimensions is None,
            compute=self.compute,
            precision=self.options.precision,
            quantized_by=self.quantized_by,
            calibration=calibration_identity(self.options.calibration)
            if self.quantized_by == "embedify" and self.options.precision in CALIBRATED
            else None,
        )

    @property
    def quantized_by(self) -> Literal["provider", "embedify"] | None:
        """Who makes the ``precision`` codes: the provider when it offers that output
        (``capabilities.precisions``), else the engine, from the float vectors."""
        if self.options.precision == "float32":
            return None
        if self.options.precision in self.capabilities.precisions:
            return "provider"
        return "embedify"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.provider}:{public_url(self.model_id)}>"


def _cut(text: str, keep: int, side: Literal["end", "start"]) -> str:
    return text[:keep] if side == "end" else text[len(text) - keep :]


def _checked_after(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a subclass constructor so the options are checked when the outermost one returns."""

    @functools.wraps(init)
    def checked_init(self: ProviderModel, *args: Any, **kwargs: Any) -> None:
        depth = self._init_depth
        self._init_depth = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            self._init_depth = depth
        if depth == 0:
            self._built()

    return checked_init


def _check_cache_option(where: bool | Path | None) -> None:
    """A ``cache=`` path that cannot hold a cache is a configuration error, found at once."""
    if not where:
        return
    from embedify.cache import default_cache_path

    path = default_cache_path() if where is True else Path(str(where)).expanduser()
    problem = None
    if path.is_dir():
        problem = "is a folder; give a file path, e.g. cache='embeddings.sqlite3'"
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            problem = f"cannot create the folder {path.parent} ({error.strerror or error})"
        else:
            if not os.access(path.parent, os.W_OK) or (
                path.exists() and not os.access(path, os.R_OK | os.W_OK)
            ):
                problem = "is not writable"
    if problem:
        raise ConfigurationError(f"cache={str(where)!r}: {path} {problem}.")
