"""Any embedify model as a Chroma embedding function.

Chroma stores an embedding function's ``name()`` and ``get_config()`` with each collection and
rebuilds it with ``build_from_config`` when the collection is opened without one, so a
collection reopened in another process embeds its queries with the model that embedded its
documents, once that process imported this module (``import embedify_chroma``). Documents
(``add``, ``upsert``, ``update``) are embedded with the ``document`` role,
``query(query_texts=...)`` with the ``query`` role, each call as one engine job.
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function
from pydantic import SecretStr

import embedify
from embedify import EmbeddingModel, Role

__all__ = ["EmbedifyEmbeddingFunction"]

_CONFIG_KEYS: dict[str, type | tuple[type, ...]] = {
    "model": str,
    "options": dict,
    "dimension": (int, type(None)),
    "fingerprint": str,
}


@register_embedding_function
class EmbedifyEmbeddingFunction(EmbeddingFunction[Documents]):
    """``EmbedifyEmbeddingFunction("local")``, ``EmbedifyEmbeddingFunction("openai",
    dimensions=256)`` or ``EmbedifyEmbeddingFunction(embedify.get_model(...))``.

    Options are the model's (``get_model(model, **options)``). They are persisted with the
    collection, except secrets: a rebuilt model reads its key from the provider's environment
    variable.
    """

    def __init__(self, model: str | EmbeddingModel = "local", **options: Any) -> None:
        if isinstance(model, EmbeddingModel):
            if options:
                raise TypeError(
                    "EmbedifyEmbeddingFunction takes a model name with options, or a model "
                    "built with get_model(name, **options), not both."
                )
            self.model = model
            self.model_name = f"{model.provider}:{model.model_id}"
        else:
            self.model = embedify.get_model(model, **options)
            self.model_name = model

    def __call__(self, input: Documents) -> Embeddings:
        return self._embed(input, "document")

    def embed_query(self, input: Documents) -> Embeddings:
        return self._embed(input, "query")

    def _embed(self, input: Documents, role: Role) -> Embeddings:
        return list(self.model.embed(_texts(input), role))

    # -- what Chroma persists with a collection ------------------------------------------------

    @staticmethod
    def name() -> str:
        """Chroma stores this name with the collection and, on opening it, looks it up among
        the embedding functions imported so far. When this module was not imported, Chroma's
        error only repeats the name, so the name is the module that fixes it."""
        return "embedify_chroma"

    def default_space(self) -> Space:
        return "cosine"

    def get_config(self) -> dict[str, Any]:
        info = self.model.info
        return {
            "model": self.model_name,
            "options": _persistable_options(self.model),
            "dimension": info.output_dimension,
            "fingerprint": info.fingerprint(),
        }

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> EmbedifyEmbeddingFunction:
        EmbedifyEmbeddingFunction.validate_config(config)
        function = _rebuild(config["model"], json.dumps(config["options"], sort_keys=True))
        function._check_same_vectors(config)
        return function

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        for key, kind in _CONFIG_KEYS.items():
            if not isinstance(config.get(key), kind):
                raise ValueError(
                    f"Not an embedify embedding-function config: {key!r} is missing or has the "
                    f"wrong type in {config!r}. Chroma persists what get_config() returned; "
                    "recreate the collection with EmbedifyEmbeddingFunction."
                )

    def validate_config_update(
        self, old_config: dict[str, Any], new_config: dict[str, Any]
    ) -> None:
        """Chroma keeps a collection's vectors when its embedding function changes, so only
        options that leave the vectors alone (batch size, cache, timeouts...) may change."""
        if old_config.get("fingerprint") != new_config.get("fingerprint"):
            raise ValueError(
                f"This Chroma collection holds vectors of {old_config.get('fingerprint')} "
                f"({old_config.get('dimension')} dimensions); its embedding function cannot "
                f"change to {new_config.get('fingerprint')} ({new_config.get('dimension')} "
                "dimensions). Create a new collection for the new model."
            )

    def is_legacy(self) -> bool:
        return False

    def _check_same_vectors(self, config: dict[str, Any]) -> None:
        info = self.model.info
        if info.output_dimension != config["dimension"]:
            raise ValueError(
                f"This Chroma collection expects {config['dimension']}-dimensional vectors from "
                f"{config['fingerprint']}, but {config['model']!r} with options "
                f"{config['options']} now gives {info.output_dimension}. Install the same model "
                "(or pass the same `dimensions`), or create a new collection."
            )
        if info.fingerprint() != config["fingerprint"]:
            warnings.warn(
                f"This Chroma collection was embedded with {config['fingerprint']}; "
                f"{config['model']!r} now resolves to {info.fingerprint()}. Queries may not match "
                "the stored vectors unless the two are the same weights.",
                UserWarning,
                stacklevel=3,
            )


@functools.lru_cache(maxsize=16)
def _rebuild(model_name: str, options_json: str) -> EmbedifyEmbeddingFunction:
    """Chroma rebuilds the function from its config on every call of a collection opened
    without one; loading the model once per config keeps that cheap."""
    return EmbedifyEmbeddingFunction(model_name, **json.loads(options_json))


def _persistable_options(model: EmbeddingModel) -> dict[str, Any]:
    options = model.options
    chosen = {
        name
        for name in options.model_fields_set
        if not isinstance(getattr(options, name), SecretStr)
    }
    persisted: dict[str, Any] = options.model_dump(mode="json", include=chosen)
    return persisted


def _texts(input: Documents) -> list[str]:
    if isinstance(input, str):
        raise TypeError(
            "A Chroma embedding function takes Documents, a list of str; wrap the one text in a "
            "list: ef([text])."
        )
    texts = list(input)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f"Chroma passed a {type(text).__name__} at index {index}: "
                "EmbedifyEmbeddingFunction embeds text Documents (list[str]), not images or "
                "other embeddables."
            )
    return texts
