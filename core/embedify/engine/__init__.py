"""The engine every model runs through. Each decision has its own module:

- ``planning``: input checks, deduplication, token limits, forming requests;
- ``policy``: what to do after a failed request (retry, split, shorten, fail, stop), pure;
- ``pacing``: rate limits (token buckets learned from headers, client budgets, AIMD);
- ``sizing``: request sizes and deadlines learned from the server's latency;
- ``steps``: the executor's choices (what to send next, and when), pure;
- ``executor``: sends the requests and carries the decisions out;
- ``job``: one ``embed`` call from start to finish, with the cache;
- ``sync``: the bridge from synchronous calls to the engine's event loop.

The engine knows a model only as :class:`embedify.protocol.ProviderModel` (what a provider
declares and implements); ``embedify.model`` calls the engine, never the other way.
"""

from embedify.engine.job import embed_job
from embedify.engine.sync import run_sync
from embedify.report import EmbeddingResult, ItemReport, Report

__all__ = ["EmbeddingResult", "ItemReport", "Report", "embed_job", "run_sync"]
