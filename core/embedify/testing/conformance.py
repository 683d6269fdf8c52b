"""The conformance suite every provider's tests should pass.

Subclass it in your plugin's tests and provide a ``make_model`` fixture that builds a model of
your provider (pointed at a loopback server for remote ones)::

    from embedify.testing import ConformanceSuite

    class TestMyProvider(ConformanceSuite):
        @pytest.fixture
        def make_model(self, server):
            return lambda **options: get_model("myprovider:small", base_url=server.url, **options)

        @pytest.fixture
        def error_cases(self, server):  # optional: calls that must fail, and the expected error
            bad_key = get_model("myprovider:small", base_url=server.url, api_key="bad")
            return [(lambda: bad_key.embed(["text"]), AuthenticationError)]

A remote provider's fake served by :class:`~embedify.testing.LoopbackServer` also gets the
suite's wire faults, whatever ``error_cases`` says: a 429 with ``Retry-After``, a 503, a 413 and
a dropped connection are injected in front of its handler, and the job must come through them
(which it does only when the provider translates them into embedify's error types).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from embedify.errors import EmbeddingJobError, EmbedifyError
from embedify.model import EmbeddingModel, Role
from embedify.testing.loopback import LoopbackServer, Response

TEXTS = [
    "The cat sat on the mat.",
    "Quarterly revenue grew by twelve percent.",
    "Photosynthesis turns light into chemical energy.",
    "A recipe for sourdough bread needs patience.",
]
UNICODE = ["naïve café déjà vu", "日本語のテキストです", "emoji 🙂🚀 and Ελληνικά"]

MakeModel = Callable[..., EmbeddingModel]
_ERROR_BODY = {
    "error": {"message": "injected by the conformance suite", "type": "error", "code": None},
    "message": "injected by the conformance suite",
}


def _observed_batches(model: EmbeddingModel) -> list[int]:
    """Record the size of each batch the engine sends (wraps the instance, not the class)."""
    sizes: list[int] = []
    original = model.aembed_batch

    async def recording(texts: list[str], role: Role) -> Any:
        sizes.append(len(texts))
        return await original(texts, role)

    model.aembed_batch = recording  # type: ignore[method-assign]
    return sizes


class ConformanceSuite:
    """Behaviour every embedify model must have. Needs a ``make_model(**options)`` fixture."""

    @pytest.fixture
    def error_cases(self) -> list[tuple[Callable[[], object], type[Exception]]]:
        """Calls that must fail, each with the embedify error the provider must raise."""
        return []

    def test_shape_and_dtype(self, make_model: MakeModel) -> None:
        model = make_model()
        vectors = model.embed(TEXTS)
        assert vectors.dtype == np.float32
        assert vectors.shape[0] == len(TEXTS)
        expected = model.info.output_dimension
        assert expected is None or vectors.shape[1] == expected
        assert np.isfinite(vectors).all()

    def test_single_text_and_lists(self, make_model: MakeModel) -> None:
        model = make_model()
        vector = model.embed_query(TEXTS[0])
        assert vector.ndim == 1
        as_list = model.embed(TEXTS[:2], as_list=True)
        assert isinstance(as_list, list) and isinstance(as_list[0][0], float)

    def test_order_is_preserved(self, make_model: MakeModel) -> None:
        model = make_model()
        together = model.embed(TEXTS)
        for index, text in enumerate(TEXTS):
            alone = model.embed([text])[0]
            assert np.allclose(together[index], alone, atol=1e-4), f"row {index} moved"
        reversed_rows = model.embed(TEXTS[::-1])
        assert np.allclose(reversed_rows[::-1], together, atol=1e-4)

    def test_texts_are_distinguished(self, make_model: MakeModel) -> None:
        vectors = make_model().embed(TEXTS)
        for i in range(len(TEXTS)):
            for j in range(i + 1, len(TEXTS)):
                assert not np.allclose(vectors[i], vectors[j], atol=1e-4)

    def test_deterministic(self, make_model: MakeModel) -> None:
        model = make_model()
        assert np.allclose(model.embed(TEXTS), model.embed(TEXTS), atol=1e-5)

    def test_empty_input(self, make_model: MakeModel) -> None:
        model = make_model()
        vectors = model.embed([])
        assert vectors.shape[0] == 0 and vectors.dtype == np.float32
        if model.info.output_dimension is not None:
            assert vectors.shape == (0, model.info.output_dimension)

    def test_unicode(self, make_model: MakeModel) -> None:
        vectors = make_model().embed(UNICODE)
        assert vectors.shape[0] == len(UNICODE) and np.isfinite(vectors).all()

    def test_roles(self, make_model: MakeModel) -> None:
        model = make_model()
        mapping = model.info.roles
        assert {"document", "query"} <= set(mapping)
        results = {role: model.embed(TEXTS[:1], role)[0] for role in mapping}  # type: ignore[call-overload]
        if mapping["query"] != mapping["document"]:
            assert not np.allclose(results["query"], results["document"], atol=1e-5)
        with pytest.raises(EmbedifyError, match="role"):
            model.embed(TEXTS[:1], "no-such-role")  # type: ignore[call-overload]

    def test_dimensions(self, make_model: MakeModel) -> None:
        info = make_model().info
        if info.dimensions_mode == "fixed":
            with pytest.raises(EmbedifyError, match="dimension"):
                make_model(dimensions=8).embed(TEXTS[:1])
            return
        smaller = (info.allowed_dimensions or (max(1, (info.dimension or 64) // 2),))[0]
        vectors = make_model(dimensions=smaller).embed(TEXTS[:2])
        assert vectors.shape == (2, smaller)

    def test_batches_respect_limits(self, make_model: MakeModel) -> None:
        model = make_model(batch_size=3)
        sizes = _observed_batches(model)
        texts = [f"{text} (copy {i})" for i in range(3) for text in TEXTS]
        vectors = model.embed(texts)
        assert vectors.shape[0] == len(texts)
        assert sizes and max(sizes) <= 3 and sum(sizes) == len(texts)
        declared = model.info.limits.max_inputs_per_request
        assert declared is None or max(sizes) <= declared

    def test_error_translation(
        self, error_cases: list[tuple[Callable[[], object], type[Exception]]]
    ) -> None:
        if not error_cases:
            pytest.skip("this provider's tests give no error_cases fixture")
        for call, expected in error_cases:
            with pytest.raises((expected, EmbeddingJobError)) as caught:
                call()
            error = caught.value
            if isinstance(error, EmbeddingJobError):
                assert all(isinstance(e, expected) for e in error.failures.values()), error

    # -- wire faults, injected in front of the provider's loopback fake ------------------------

    def _serving(self, model: EmbeddingModel) -> list[LoopbackServer]:
        model.embed(["warm-up: the provider's first request (and prepare) go through"])
        servers = LoopbackServer.running()
        if not servers:
            pytest.skip("the model sends no requests to a LoopbackServer: no wire to fault")
        return servers

    def _inject(self, servers: list[LoopbackServer], response: Response) -> None:
        for server in servers:
            server.fail_next(response)

    def test_rate_limit_waits_out_retry_after(self, make_model: MakeModel) -> None:
        model = make_model()
        servers = self._serving(model)
        before = {id(s): len(s.requests) for s in servers}
        self._inject(servers, Response(429, _ERROR_BODY, headers={"Retry-After": "1"}))
        result = model.embed_with_report([f"{text} (after a 429)" for text in TEXTS])
        assert result.report.failed == 0
        assert result.report.rate_limited == 1, "a 429 must become embedify.RateLimitError"
        arrivals = [r.received for s in servers for r in s.requests[before[id(s)] :]]
        assert max(arrivals) - min(arrivals) >= 1.0, "Retry-After must reach the engine"

    def test_server_error_is_retried(self, make_model: MakeModel) -> None:
        model = make_model()
        self._inject(self._serving(model), Response(503, _ERROR_BODY))
        result = model.embed_with_report([f"{text} (after a 503)" for text in TEXTS])
        assert result.report.failed == 0 and result.report.retries == 1

    def test_too_large_request_is_split(self, make_model: MakeModel) -> None:
        model = make_model(batch_size=len(TEXTS), max_concurrency=1)
        self._inject(self._serving(model), Response(413, _ERROR_BODY))
        result = model.embed_with_report([f"{text} (after a 413)" for text in TEXTS])
        assert result.report.failed == 0, "a 413 must become embedify.BatchTooLargeError"
        assert result.report.splits >= 1

    def test_dropped_connection_is_retried(self, make_model: MakeModel) -> None:
        model = make_model()
        self._inject(self._serving(model), Response(drop=True))
        result = model.embed_with_report([f"{text} (after a drop)" for text in TEXTS])
        assert result.report.failed == 0 and result.report.retries >= 1
