"""A server whose model takes half a second per batch of two, for the shutdown test.

python slow_server.py PORT
"""

from __future__ import annotations

import sys
import time

import numpy as np
from embedify_server.cli import serve

import embedify


class SlowModel(embedify.EmbeddingModel):
    """``"t 7"`` -> [7, 1, 0, 0] (other texts -> [0, 1, 0, 0]), half a second per batch."""

    provider = "slow"
    default_model_id = "slow"
    capabilities = embedify.Capabilities(
        dimension=4, limits=embedify.Limits(max_inputs_per_request=2)
    )

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        time.sleep(0.5)
        numbers = [text.split()[-1] for text in texts]
        return np.array([[float(n) if n.isdigit() else 0, 1, 0, 0] for n in numbers], np.float32)


if __name__ == "__main__":
    serve(SlowModel(), port=int(sys.argv[1]))
