"""Checking what a provider returned, and shaping it into what the caller asked for."""

from __future__ import annotations

from typing import Any

import numpy as np

from embedify.errors import ConfigurationError
from embedify.protocol import ProviderModel, Vectors
from embedify.responses import vector_matrix


def checked(vectors: Any, count: int, dimension: int | None, model: ProviderModel) -> Vectors:
    """``vectors`` as float32 ``(count, dimension)`` (one finite vector per input, ``dimension``
    wide when known), or a ``BadResponseError`` naming the model and the input."""
    return vector_matrix(vectors, count, source=repr(model), width=dimension)


def l2_normalize(array: Vectors) -> Vectors:
    """Unit-length rows; norms in float64, as float32 squares of large values overflow."""
    norms = np.linalg.norm(array.astype(np.float64), axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = (array / norms).astype(np.float32, copy=False)
    return result


def output_dimensions(model: ProviderModel) -> tuple[int | None, int | None]:
    """(dimension the provider returns, dimension the caller gets). The model checked the
    ``dimensions`` option when it was built; this is the backstop for limits learned later."""
    requested = model.options.dimensions
    if requested is None:
        return model.capabilities.dimension, model.capabilities.dimension
    problem = model.dimensions_problem()
    if problem:
        raise ConfigurationError(problem)
    if model.info.dimensions_mode == "matryoshka":
        return model.capabilities.dimension, requested
    return requested, requested


def finished(vectors: Vectors, model: ProviderModel, output_dimension: int | None) -> Vectors:
    """Cut Matryoshka vectors to the requested size, and normalise where the caller expects it:
    ``normalize=True``, a cut, or ``dimensions`` sent to a server (OpenAI's own vectors are
    unit-length at any size; compatible servers may not be), unless ``normalize=False``."""
    normalize = model.options.normalize
    if output_dimension is not None and vectors.shape[1] > output_dimension:
        return l2_normalize(vectors[:, :output_dimension])
    if normalize or (normalize is None and model.options.dimensions is not None):
        return l2_normalize(vectors)
    return vectors
