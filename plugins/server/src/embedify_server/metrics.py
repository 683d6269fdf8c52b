"""Prometheus metrics of one server, in their own registry (several apps may share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_BATCH_INPUTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
_BATCH_TOKENS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "embedify_requests",
            "HTTP requests answered, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.inputs = Counter(
            "embedify_inputs", "Inputs embedded, by route.", ["route"], registry=self.registry
        )
        self.tokens = Counter(
            "embedify_tokens",
            "Tokens embedded (the model's tokenizer), by route.",
            ["route"],
            registry=self.registry,
        )
        self.queue_inputs = Gauge(
            "embedify_queue_inputs", "Inputs waiting for a model batch.", registry=self.registry
        )
        self.permits_used = Gauge(
            "embedify_permits_used",
            "Inputs accepted and not yet answered (of max_concurrent_requests).",
            registry=self.registry,
        )
        self.batch_inputs = Histogram(
            "embedify_batch_inputs",
            "Inputs per model batch.",
            buckets=_BATCH_INPUTS,
            registry=self.registry,
        )
        self.batch_tokens = Histogram(
            "embedify_batch_tokens",
            "Tokens per model batch.",
            buckets=_BATCH_TOKENS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "embedify_batch_duration_seconds",
            "Time the model took per batch.",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "embedify_request_duration_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            buckets=_SECONDS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
