"""Another framework's embedding object as an embedify model.

LangChain, LlamaIndex, Haystack or Sentence-Transformers objects each embed text their own way.
Wrapped, they get the engine's cache, report, roles and batching. A subclass of
:class:`WrappedEmbeddingModel` says which class it wraps and which of its methods embeds
documents and queries; the base does the rest the same way for every framework:

- by name, ``get_model("<provider>:<module>.<Class>", **kwargs)`` imports the class and builds
  it with the keywords that are not embedify options (those configure the engine);
- ``wrapping(obj, **options)`` adopts an object the user built;
- the object's plain settings, without secret-looking fields, become the model's ``revision``,
  so two configurations never share cache entries and a key never reaches a fingerprint;
- the dimension is learned from the first answer;
- errors that carry an HTTP status, timeouts and connection failures become
  :mod:`embedify.errors` types, so the engine retries, waits or stops.

A wrapper for, say, Sentence-Transformers::

    class SentenceTransformerModel(WrappedEmbeddingModel[SentenceTransformer]):
        provider = "sentence-transformers"
        wrapped_class = SentenceTransformer
        wrapped_class_name = "sentence_transformers.SentenceTransformer"
        wrapped_kind = "Sentence-Transformers"
        example_class = "sentence_transformers.SentenceTransformer"
        example_package = "sentence-transformers"
        capabilities = Capabilities(
            roles={"document": "encode_document", "query": "encode_query"}, max_concurrency=1
        )

        def embed_wrapped(self, texts, role):
            if role == "query":
                return self.wrapped.encode_query(texts)
            return self.wrapped.encode_document(texts)
"""

from __future__ import annotations

import hashlib
import importlib
import json
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

import embedify
from embedify.capabilities import Capabilities
from embedify.errors import ConfigurationError, TransientError, error_for_status
from embedify.model import EmbeddingModel, Role, Vectors

Wrapped = TypeVar("Wrapped")
ThisModel = TypeVar("ThisModel", bound="WrappedEmbeddingModel[Any]")

# Setting names holding any of these are left out of the fingerprint.
_SECRET_WORDS = ("key", "token", "secret", "password")
# Text embedded once before the first cached job, to learn the dimension (see ``prepare``).


class WrappedEmbeddingModel(EmbeddingModel, Generic[Wrapped], metaclass=ABCMeta):
    """An embedding object of another framework behind the embedify engine.

    Subclasses declare the class they wrap and the words their messages use, map the roles to
    the framework's method names in ``capabilities``, and implement ``embed_wrapped``;
    ``configure`` is where they read what ``self.wrapped`` tells about the model (limits).

    Requests run in worker threads, one at a time unless ``max_concurrency`` says more: a
    framework's object need not be thread-safe. By name, keywords that are embedify options
    (``batch_size``, ``cache``, ``max_concurrency``...) configure the engine and the rest build
    the class; to give the class an argument with one of those names, build it and wrap it.
    """

    # What a subclass declares; all but ``wrapped_class`` only word its error messages.
    wrapped_class: ClassVar[type[Any]]  # wrapped objects are instances of it
    wrapped_class_name: ClassVar[str]  # as users import it: "langchain_core.embeddings.Embeddings"
    wrapped_kind: ClassVar[str]  # what one is called: "LangChain embeddings"
    example_class: ClassVar[str]  # a "<module>.<Class>" users may name
    example_package: ClassVar[str]  # the distribution that provides ``example_class``

    capabilities = Capabilities(max_concurrency=1)
    wrapped: Wrapped

    def __init__(
        self, model_id: str | None = None, *, _wrapped: Wrapped | None = None, **kwargs: Any
    ) -> None:
        if _wrapped is not None:  # from ``wrapping``: every keyword is an embedify option
            super().__init__(model_id, **kwargs)
            self.adopt(_wrapped)
            return
        options = {
            key: kwargs.pop(key) for key in list(kwargs) if key in self.options_class.model_fields
        }
        if not model_id:
            raise ConfigurationError(
                f"Name a {self.wrapped_kind} class: '{self.provider}:<module>.<Class>', e.g. "
                f"'{self.provider}:{self.example_class}'."
            )
        super().__init__(model_id, **options)
        self.adopt(self._build(model_id, kwargs))

    @classmethod
    def wrapping(cls: type[ThisModel], wrapped: Any, **options: Any) -> ThisModel:
        """The model for an object the user built; keywords are embedify options."""
        if not isinstance(wrapped, cls.wrapped_class):
            raise TypeError(
                f"Expected a {cls.wrapped_kind} object, an instance of {cls.wrapped_class_name} "
                f"(e.g. {cls.example_class}(...)); got {type(wrapped).__name__}."
            )
        return cls(_class_path(type(wrapped)), _wrapped=wrapped, **options)

    def adopt(self, wrapped: Wrapped) -> None:
        """Keep ``wrapped`` and fingerprint its settings (before ``configure``, which may read
        the object)."""
        self.wrapped = wrapped
        settings = json.dumps(_plain(self.wrapped_settings()), sort_keys=True)
        self.revision = hashlib.sha256(settings.encode()).hexdigest()[:16]

    def wrapped_settings(self) -> Mapping[str, Any]:
        """What configures the object: pydantic's ``model_dump()``, else its attributes. Only
        plain values count and secret-looking names are dropped, so subclasses may return
        everything."""
        dump = getattr(self.wrapped, "model_dump", None)
        settings: Mapping[str, Any] = dump() if callable(dump) else vars(self.wrapped)
        return settings

    @abstractmethod
    def embed_wrapped(self, texts: list[str], role: Role) -> Any:
        """Embed ``texts`` for ``role`` through the framework: one vector per text, in any
        array-like form (a list of lists of floats, an array)."""

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        try:
            rows = self.embed_wrapped(texts, role)
        except Exception as error:
            translated = self.translated_error(error)
            if translated is error:
                raise
            raise translated from error
        return np.asarray(rows, dtype=np.float32)

    def translated_error(self, error: Exception) -> Exception:
        """The framework's error as an embedify error when it carries an HTTP status
        (``status_code`` on it or on its ``response``: openai, httpx, requests...) or is a
        timeout or connection failure, so the engine can retry, wait or stop; anything else is
        returned as it is and raised unchanged."""
        response = getattr(error, "response", None)
        status = getattr(error, "status_code", None) or getattr(response, "status_code", None)
        what = f"{type(error).__name__} from {self!r}"
        if isinstance(status, int):
            headers = getattr(response, "headers", None) or {}
            return error_for_status(
                status,
                f"{what} (HTTP {status})",
                retry_after=embedify.retry_after_from_headers(headers),
            )
        name = type(error).__name__  # httpx, openai, requests... all name their network errors so
        if (
            isinstance(error, TimeoutError | ConnectionError)
            or "Timeout" in name
            or "Connect" in name
        ):
            return TransientError(what)
        return error

    def _build(self, path: str, kwargs: dict[str, Any]) -> Wrapped:
        """An instance of the class ``path`` names, built with ``kwargs``."""
        module_name, _, class_name = path.rpartition(".")
        try:
            found = (
                getattr(importlib.import_module(module_name), class_name) if module_name else None
            )
        except ImportError as error:
            raise ConfigurationError(
                f"{self.provider}:{path}: cannot import {module_name!r} ({error}); install the "
                f"package that provides it, e.g. for {self.example_class}: "
                f"pip install {self.example_package}"
            ) from None
        except AttributeError:
            found = None
        if not (isinstance(found, type) and issubclass(found, self.wrapped_class)):
            raise ConfigurationError(
                f"{self.provider}:{path} does not name a {self.wrapped_kind} class; expected "
                f"'<module>.<Class>' of a {self.wrapped_class_name} subclass, e.g. "
                f"'{self.example_class}'."
            )
        built: Wrapped = found(**kwargs)
        return built


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_DROPPED = object()


def _plain(value: Any) -> Any:
    """JSON-ready settings: plain values kept, secret-looking keys and live objects (clients,
    loaded models, ``SecretStr``) dropped."""
    if isinstance(value, Mapping):
        kept = {}
        for key, item in value.items():
            plain = _plain(item)
            if plain is not _DROPPED and not any(w in str(key).lower() for w in _SECRET_WORDS):
                kept[str(key)] = plain
        return kept
    if isinstance(value, list | tuple):
        return [plain for plain in map(_plain, value) if plain is not _DROPPED]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return _DROPPED
