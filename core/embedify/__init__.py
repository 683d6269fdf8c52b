"""embedify: text embeddings from any provider through one engine.

>>> import embedify
>>> model = embedify.get_model("fake")
>>> model.embed(["hello", "world"]).shape
(2, 64)
"""

from typing import TYPE_CHECKING

from embedify.lazy import lazy_attributes

if TYPE_CHECKING:
    from embedify.capabilities import Capabilities, Limits
    from embedify.engine.headers import retry_after_from_headers
    from embedify.engine.pacing import observe_rate_limit_headers, observe_usage
    from embedify.errors import (
        AuthenticationError,
        BadResponseError,
        BatchTooLargeError,
        ConfigurationError,
        ConnectionFailedError,
        EmbeddingJobError,
        EmbedifyError,
        InputTooLongError,
        InvalidInputError,
        InvalidRequestError,
        ModelNotFoundError,
        PermanentError,
        ProviderError,
        QuotaExceededError,
        RateLimitError,
        RequestTimeoutError,
        TransientError,
        UnknownModelError,
        error_for_status,
    )
    from embedify.hookspecs import hookimpl
    from embedify.http import HTTPEmbeddingModel, HTTPOptions
    from embedify.model import EmbeddingModel
    from embedify.options import ModelOptions, RemoteOptions
    from embedify.protocol import ROLES, ModelInfo, Role, estimate_tokens
    from embedify.registry import get_model, register_model
    from embedify.report import EmbeddingResult, ItemReport, Report
    from embedify.scoring import cosine_similarity, similarity, top_k

# Attributes load on first use, so ``import embedify`` stays fast and imports no numpy,
# pydantic or provider SDK until something needs them.
_LAZY = {
    "AuthenticationError": "embedify.errors",
    "BadResponseError": "embedify.errors",
    "BatchTooLargeError": "embedify.errors",
    "Capabilities": "embedify.capabilities",
    "ConfigurationError": "embedify.errors",
    "ConnectionFailedError": "embedify.errors",
    "EmbeddingJobError": "embedify.errors",
    "EmbeddingModel": "embedify.model",
    "EmbeddingResult": "embedify.report",
    "EmbedifyError": "embedify.errors",
    "HTTPEmbeddingModel": "embedify.http",
    "HTTPOptions": "embedify.http",
    "InputTooLongError": "embedify.errors",
    "InvalidInputError": "embedify.errors",
    "InvalidRequestError": "embedify.errors",
    "ItemReport": "embedify.report",
    "Limits": "embedify.capabilities",
    "ModelInfo": "embedify.protocol",
    "ModelNotFoundError": "embedify.errors",
    "ModelOptions": "embedify.options",
    "PermanentError": "embedify.errors",
    "ProviderError": "embedify.errors",
    "QuotaExceededError": "embedify.errors",
    "ROLES": "embedify.protocol",
    "RateLimitError": "embedify.errors",
    "RequestTimeoutError": "embedify.errors",
    "RemoteOptions": "embedify.options",
    "Report": "embedify.report",
    "Role": "embedify.protocol",
    "TransientError": "embedify.errors",
    "UnknownModelError": "embedify.errors",
    "error_for_status": "embedify.errors",
    "cosine_similarity": "embedify.scoring",
    "estimate_tokens": "embedify.protocol",
    "get_model": "embedify.registry",
    "hookimpl": "embedify.hookspecs",
    "observe_rate_limit_headers": "embedify.engine.pacing",
    "observe_usage": "embedify.engine.pacing",
    "register_model": "embedify.registry",
    "retry_after_from_headers": "embedify.engine.headers",
    "similarity": "embedify.scoring",
    "top_k": "embedify.scoring",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ROLES",
    "AuthenticationError",
    "BadResponseError",
    "BatchTooLargeError",
    "Capabilities",
    "ConfigurationError",
    "ConnectionFailedError",
    "EmbeddingJobError",
    "EmbeddingModel",
    "EmbeddingResult",
    "EmbedifyError",
    "HTTPEmbeddingModel",
    "HTTPOptions",
    "InputTooLongError",
    "InvalidInputError",
    "InvalidRequestError",
    "ItemReport",
    "Limits",
    "ModelInfo",
    "ModelNotFoundError",
    "ModelOptions",
    "PermanentError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "RemoteOptions",
    "Report",
    "RequestTimeoutError",
    "Role",
    "TransientError",
    "UnknownModelError",
    "cosine_similarity",
    "error_for_status",
    "estimate_tokens",
    "get_model",
    "hookimpl",
    "observe_rate_limit_headers",
    "observe_usage",
    "register_model",
    "retry_after_from_headers",
    "similarity",
    "top_k",
]
