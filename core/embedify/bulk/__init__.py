"""Bulk jobs through a provider's batch API: files of requests, embedded within hours at a
lower price than the online endpoint.

The plugin contract. A model whose provider has a batch API offers it by implementing
:class:`SupportsBatchAPI`: a ``batch_api()`` method returning a :class:`BatchAPI`, an object that
uploads a JSONL file of requests, creates a batch from it, retrieves the batch's state, finds
the batch made from a file (after a crash), downloads the output and error files, cancels, and
declares as data the provider's documented limits (:class:`BatchLimits`), its prices
(:class:`Price`) and the width of the vectors it asks for. Nothing else is needed: no hook, no
registration; ``isinstance(model, SupportsBatchAPI)`` is the test. The core never imports a
provider: everything here is about the job.

- :mod:`embedify.bulk.planning`: rows to requests (each ``custom_id`` names its part and rows)
  to files within the limits, and the price estimate; pure functions.
- :mod:`embedify.bulk.manifest`: the job's state in its output folder, each stage recorded
  before the next begins (a rerun resumes and never submits a batch twice).
- :mod:`embedify.bulk.runner`: submits, polls, downloads, matches results by ``custom_id`` and
  resubmits what failed or expired: in a new batch, or online when few remain.
"""

from __future__ import annotations

from embedify.bulk.api import (
    TERMINAL_STATES,
    BatchAPI,
    BatchInfo,
    BatchLimits,
    BatchResult,
    Price,
    SupportsBatchAPI,
    batch_api_of,
)

__all__ = [
    "TERMINAL_STATES",
    "BatchAPI",
    "BatchInfo",
    "BatchLimits",
    "BatchResult",
    "Price",
    "SupportsBatchAPI",
    "batch_api_of",
]
