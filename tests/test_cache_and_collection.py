from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import embedify
from embedify.cache import EmbeddingCache
from embedify.collection import Collection
from embedify.errors import ConfigurationError, InputTooLongError
from embedify.fake import FakeEmbeddingModel
from embedify.testing import EmbeddingServer, HttpFakeModel, LoopbackServer


def test_cache_hits_are_exact_and_keyed_by_fingerprint(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    first = embedify.get_model("fake:32", cache=path).embed_with_report(["a", "b"])
    again = embedify.get_model("fake:32", cache=path).embed_with_report(["b", "a", "c"])
    assert again.report.cached == 2 and again.report.embedded == 1
    assert np.array_equal(again.vectors[:2], first.vectors[::-1])
    shorter = embedify.get_model("fake:32", cache=path, dimensions=8).embed_with_report(["a"])
    assert shorter.report.cached == 0 and shorter.vectors.shape == (1, 8)
    query = embedify.get_model("fake:32", cache=path).embed_with_report(["a"], "query")
    assert query.report.cached == 0  # roles are part of the key


def _writer(path: str, worker: int) -> None:
    model = embedify.get_model("fake:16", cache=Path(path), batch_size=5)
    model.embed([f"text {worker}-{i}" for i in range(200)] + ["shared text"])


def test_cache_is_safe_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
    assert [p.exitcode for p in workers] == [0, 0, 0]
    assert EmbeddingCache.open(path).stats()["entries"] == 3 * 200 + 1


def test_collection_reembeds_only_changes(tmp_path: Path) -> None:
    model = embedify.get_model("fake:32")
    collection = Collection(tmp_path / "col.sqlite3", model)
    items = [("a", "the cat sat", {"n": 1}), ("b", "dogs bark loudly", {"n": 2})]
    assert collection.upsert(items).written == 2
    assert collection.upsert(items).written == 0
    changed = collection.upsert([("a", "the cat sat", {"n": 9}), ("b", "dogs bark at night", {})])
    assert changed.written == 1
    hits = collection.query("the cat", k=1)
    assert hits[0].id == "a" and hits[0].metadata == {"n": 9}
    collection.delete(["a"])
    assert collection.ids() == {"b"} and len(collection) == 1


def test_collection_refuses_another_model(tmp_path: Path) -> None:
    Collection(tmp_path / "col.sqlite3", embedify.get_model("fake:32")).upsert([("a", "x", {})])
    with pytest.raises(ConfigurationError, match="not comparable"):
        Collection(tmp_path / "col.sqlite3", embedify.get_model("fake:16"))


# -- the cache never returns a wrong vector ---------------------------------------------------

LONG = " ".join(f"w{i}" for i in range(3000))  # over fake's 512-token limit, distinct words


class NativelyTruncating(FakeEmbeddingModel):
    # the provider is sent the whole text and the policy
    capabilities = replace(FakeEmbeddingModel.capabilities, truncates=True)

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        side = self.options.truncate
        cut = [" ".join(t.split()[:100] if side == "end" else t.split()[-100:]) for t in texts]
        return super().embed_batch(cut, role)


@pytest.mark.parametrize("model_class", [FakeEmbeddingModel, NativelyTruncating])
def test_cache_keys_hold_what_was_sent(
    tmp_path: Path, model_class: type[FakeEmbeddingModel]
) -> None:
    path = tmp_path / "c.sqlite3"
    end = model_class("32", cache=path, truncate="end").embed_with_report([LONG])
    start = model_class("32", cache=path, truncate="start").embed_with_report([LONG])
    assert start.report.cached == 0
    assert not np.allclose(end.vectors, start.vectors)
    with pytest.raises(InputTooLongError):
        model_class("32", cache=path, truncate="error").embed([LONG])
    again = model_class("32", cache=path, truncate="end").embed_with_report([LONG])
    assert again.report.cached == 1 and np.array_equal(again.vectors, end.vectors)


def test_cache_keys_hold_the_endpoint_not_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    with LoopbackServer(EmbeddingServer()) as one, LoopbackServer(EmbeddingServer()) as two:
        HttpFakeModel(base_url=one.url, cache=path).embed(["hello"])
        other_server = HttpFakeModel(base_url=two.url, cache=path).embed_with_report(["hello"])
        other_key = HttpFakeModel(base_url=one.url, cache=path, api_key="sk-other")
        assert HttpFakeModel(base_url=one.url).info.fingerprint() == other_key.info.fingerprint()
    assert other_server.report.cached == 0


class LearnsItsDimension(HttpFakeModel):
    # like openai:<model> behind a base_url: known from the first answer
    capabilities = replace(HttpFakeModel.capabilities, dimension=None)


def test_a_learned_dimension_keeps_one_fingerprint(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(20)]
    with LoopbackServer(EmbeddingServer()) as server:
        model = LearnsItsDimension(base_url=server.url, cache=tmp_path / "c.sqlite3")
        before = model.info.fingerprint()
        collection = Collection(tmp_path / "col.sqlite3", model)
        collection.upsert([(f"id{i}", text, {}) for i, text in enumerate(texts)])
        assert model.dimension == 32 and model.info.fingerprint() == before
        assert model.embed_with_report(texts).report.cached == len(texts)
        Collection(tmp_path / "col.sqlite3", model)  # reopened by the same model: accepted
        assert len(server.requests) == 1


class CompatibleServer(embedify.EmbeddingModel):
    """Sends ``dimensions`` natively, and returns vectors that are not unit-length."""

    capabilities = embedify.Capabilities(dimension=8, dimensions_mode="native")

    def embed_batch(self, texts: list[str], role: embedify.Role) -> np.ndarray:
        size = self.options.dimensions or 8
        return np.full((len(texts), size), 3.0, dtype=np.float32)


def test_dimensions_sent_to_a_server_are_renormalised_unless_asked_not_to() -> None:
    vectors = CompatibleServer("m", dimensions=4).embed(["x"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    raw = CompatibleServer("m", dimensions=4, normalize=False).embed(["x"])
    assert np.allclose(raw, 3.0)
