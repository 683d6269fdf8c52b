"""``precision=``: quantized outputs made by the provider or here, scoring them, caching them,
and quantized collections that rescore with the float vectors on disk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedify.collection import Collection
from embedify.errors import ConfigurationError
from embedify.fake import FakeEmbeddingModel
from embedify.model import Role, Vectors
from embedify.quantize import (
    builtin_calibration,
    calibrated_ranges,
    quantize,
    unpacked_bits,
)
from embedify.scoring import similarity, top_k

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def corpus(count: int) -> list[str]:
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(WORDS, size=6)) for _ in range(count)]


class Counting(FakeEmbeddingModel):
    """The fake model, counting the texts it is sent."""

    def __init__(self, model_id: str | None = None, **options: Any) -> None:
        super().__init__(model_id, **options)
        self.sent: list[str] = []

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        self.sent.extend(texts)
        return super().embed_batch(texts, role)


class NativeCodes(FakeEmbeddingModel):
    """A provider that returns int8/binary codes itself; ``answer`` replaces its answer."""

    capabilities = replace(
        FakeEmbeddingModel.capabilities, precisions=("float32", "int8", "binary")
    )
    answer: Any = None

    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        if self.answer is not None:
            return np.asarray(self.answer, dtype=np.float32)
        floats = super().embed_batch(texts, role)
        return quantize(floats, "binary") if self.options.precision == "binary" else floats * 100


# -- the conventions ---------------------------------------------------------------------------


def test_bits_are_sentence_transformers_packing() -> None:
    vector = np.array([[0.5, -1, 2, 3, -0.1, -2, 0, 1, 9, -9]], dtype=np.float32)
    # bits 1011 0001 | 10 (padded with zeros): 0xB1 = 177, 0x80 = 128; binary is byte - 128
    assert quantize(vector, "ubinary").tolist() == [[177, 128]]
    assert quantize(vector, "binary").tolist() == [[49, 0]]
    assert quantize(vector, "binary").dtype == np.int8


def test_bits_match_sentence_transformers_quantize_embeddings() -> None:
    """The packing is sentence-transformers' own, compared with its function where installed."""
    st = pytest.importorskip("sentence_transformers")
    try:
        from sentence_transformers.util.quantization import quantize_embeddings
    except ImportError:  # sentence-transformers before 6: the older module
        quantize_embeddings = st.quantization.quantize_embeddings
    floats = np.random.default_rng(3).standard_normal((7, 389)).astype(np.float32)
    floats[0, :40] = 0.0  # zero is not positive: its bit is 0
    for precision in ("binary", "ubinary"):
        theirs = quantize_embeddings(floats, precision=precision)
        ours = quantize(floats, precision)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), precision


def test_int8_clips_outside_the_calibrated_range_instead_of_wrapping() -> None:
    ranges = np.array([[-1.0, -1.0], [1.0, 1.0]], dtype=np.float32)
    codes = quantize(np.array([[5.0, -5.0], [1.0, -1.0]]), "int8", ranges)
    assert codes.tolist() == [[127, -128], [127, -128]]
    assert quantize(np.array([[0.0, 1.0]]), "uint8", ranges).tolist() == [[128, 255]]


def test_calibrated_ranges_cover_more_than_the_calibration_set() -> None:
    vectors = np.random.default_rng(0).standard_normal((50, 4))
    low, high = calibrated_ranges(vectors)
    assert (low <= vectors.min(axis=0)).all() and (high >= vectors.max(axis=0)).all()
    assert (high - low > 7 * vectors.std(axis=0)).all()  # mean ± 4 std, not just min..max


def test_the_builtin_calibration_set_ships_with_the_package() -> None:
    texts = builtin_calibration()
    assert len(texts) >= 60 and len(set(texts)) == len(texts)


# -- scoring -----------------------------------------------------------------------------------


def test_int8_scores_do_not_overflow() -> None:
    codes = np.full((2, 384), 127, dtype=np.int8)
    assert similarity(codes[0], codes[1], "dot", precision="int8") == 127 * 127 * 384


def test_uint8_and_int8_codes_of_one_vector_score_alike() -> None:
    floats = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    ranges = calibrated_ranges(floats)
    as_uint8 = similarity(
        quantize(floats, "uint8", ranges), quantize(floats, "uint8", ranges)[:2], precision="uint8"
    )
    as_int8 = similarity(
        quantize(floats, "int8", ranges), quantize(floats, "int8", ranges)[:2], precision="int8"
    )
    assert np.allclose(as_int8, as_uint8, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: st.lists(st.binary(min_size=n, max_size=n), min_size=2, max_size=12)
    ),
    st.sampled_from(["cosine", "dot", "euclidean"]),
)
def test_packed_bits_score_as_plus_minus_one_vectors(rows: list[bytes], metric: Any) -> None:
    packed = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1)
    signs = unpacked_bits(packed, "ubinary").astype(np.float32) * 2 - 1
    expected = similarity(signs, signs, metric)
    assert np.allclose(similarity(packed, packed, metric, precision="ubinary"), expected, atol=1e-4)
    as_binary = (packed.astype(np.int16) - 128).astype(np.int8)
    assert np.allclose(
        similarity(as_binary, as_binary, metric, precision="binary"), expected, atol=1e-4
    )
    indices, _ = top_k(packed[0], packed, k=len(rows), metric=metric, precision="ubinary")
    best = expected[0] if metric != "euclidean" else -expected[0]
    assert np.allclose(np.sort(best)[::-1], best[indices], atol=1e-4)


def test_packed_bits_read_as_floats_are_a_mistake_the_dtype_catches() -> None:
    with pytest.raises(ValueError, match="use 'binary'"):
        similarity(np.array([[-5, 3]]), np.array([[1, 2]]), precision="ubinary")


# -- the engine --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "dtype", "width"),
    [
        ("int8", np.int8, 64),
        ("uint8", np.uint8, 64),
        ("binary", np.int8, 8),
        ("ubinary", np.uint8, 8),
    ],
)
def test_precision_gives_codes_of_its_dtype_and_width(
    precision: Any, dtype: Any, width: int
) -> None:
    vectors = FakeEmbeddingModel(precision=precision).embed(corpus(3))
    assert vectors.dtype == dtype and vectors.shape == (3, width)


def test_local_codes_are_the_float_vectors_quantized() -> None:
    texts = corpus(5)
    floats = FakeEmbeddingModel().embed(texts)
    assert np.array_equal(
        FakeEmbeddingModel(precision="binary").embed(texts), quantize(floats, "binary")
    )
    ranges = calibrated_ranges(FakeEmbeddingModel().embed(builtin_calibration()))
    int8 = FakeEmbeddingModel(precision="int8").embed(texts)
    assert np.array_equal(int8, quantize(floats, "int8", ranges))


def test_each_precision_has_its_own_fingerprint() -> None:
    prints = {
        FakeEmbeddingModel(precision=precision).info.fingerprint()
        for precision in ("float32", "int8", "uint8", "binary", "ubinary")
    }
    assert len(prints) == 5
    mine = FakeEmbeddingModel(precision="int8", calibration=["one text", "another"])
    assert mine.info.fingerprint() != FakeEmbeddingModel(precision="int8").info.fingerprint()
    assert FakeEmbeddingModel().info.fingerprint() == FakeEmbeddingModel().info.fingerprint()


def test_calibration_is_embedded_once_per_model(tmp_path: Path) -> None:
    model = Counting(precision="int8", calibration=["a b", "c d e", "f"])
    model.embed(["first job"])
    model.embed(["second job"])
    assert model.sent.count("a b") == 1 and "second job" in model.sent


def test_calibration_where_it_does_nothing_is_refused_at_build() -> None:
    with pytest.raises(ConfigurationError, match="drop calibration="):
        FakeEmbeddingModel(precision="binary", calibration=["a", "b"])
    with pytest.raises(ConfigurationError, match="at least 2 texts"):
        FakeEmbeddingModel(precision="int8", calibration=["a"])


def test_codes_made_here_reuse_the_cached_float_vectors(tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"
    texts = corpus(20)
    Counting(cache=cache).embed(texts)
    binary = Counting(cache=cache, precision="binary")
    result = binary.embed_with_report(texts)
    assert binary.sent == [] and result.report.cached == len(set(texts))


def test_provider_codes_are_kept_as_sent_and_cached_by_precision(tmp_path: Path) -> None:
    cache = tmp_path / "cache.db"
    texts = corpus(4)
    native = NativeCodes(precision="binary", cache=cache)
    codes = native.embed(texts)
    assert native.info.quantized_by == "provider"
    assert np.array_equal(codes, quantize(FakeEmbeddingModel().embed(texts), "binary"))
    floats = NativeCodes(cache=cache).embed_with_report(texts)  # not the cached codes
    assert floats.report.cached == 0 and floats.vectors.dtype == np.float32


# -- collections -------------------------------------------------------------------------------


def test_a_binary_collection_holds_bits_and_rescoring_restores_the_float_ranking(
    tmp_path: Path,
) -> None:
    texts = corpus(300)
    exact = Collection(tmp_path / "float.db", FakeEmbeddingModel())
    exact.upsert(ids=[str(i) for i in range(len(texts))], texts=texts)
    bits = Collection(tmp_path / "bits.db", FakeEmbeddingModel(), precision="binary")
    bits.upsert(ids=[str(i) for i in range(len(texts))], texts=texts)
    only_bits = Collection(
        tmp_path / "bits.db", FakeEmbeddingModel(), precision="binary", rescore_multiplier=1
    )
    recall, recall_without = [], []
    for query in [f"{a} {b}" for a, b in zip(WORDS, WORDS[3:])]:
        want = {hit.id for hit in exact.query(query, k=10)}
        got = bits.query(query, k=10)
        recall.append(len(want & {hit.id for hit in got}) / 10)
        recall_without.append(len(want & {hit.id for hit in only_bits.query(query, k=10)}) / 10)
        exact_scores = {hit.id: hit.score for hit in exact.query(query, k=300)}
        assert all(abs(hit.score - exact_scores[hit.id]) < 1e-5 for hit in got)  # float scores
    assert np.mean(recall) >= 0.95 > np.mean(recall_without)
    assert (
        bits.index_bytes == 300 * 64 // 8 and exact.index_bytes == 300 * 64 * 4 + 300 * 4
    )  # unit rows and their norms


def test_an_int8_collection_fixes_its_ranges_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "int8.db"
    first = Counting()
    calibrated = Collection(path, first, precision="int8", calibration=["a b", "c d", "e f g"])
    calibrated.upsert(ids=["1", "2"], texts=["alpha", "beta"])
    assert "a b" in first.sent
    again = Counting()  # the built-in calibration set now: the file's ranges still rule
    reopened = Collection(path, again, precision="int8")
    reopened.upsert(ids=["3"], texts=["gamma"])
    assert again.sent == ["gamma"]
    assert [hit.id for hit in reopened.query("beta", k=1)] == ["2"]


def test_a_collection_opens_only_with_the_precision_it_was_built_with(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    Collection(path, FakeEmbeddingModel(), precision="binary").upsert(ids=["1"], texts=["x"])
    with pytest.raises(ConfigurationError, match="precision='binary'"):
        Collection(path, FakeEmbeddingModel())
    with pytest.raises(ConfigurationError, match="float32 model"):
        Collection(tmp_path / "d.db", FakeEmbeddingModel(precision="int8"), precision="int8")
    with pytest.raises(ConfigurationError, match="drop calibration="):
        Collection(tmp_path / "f.db", FakeEmbeddingModel(), calibration=["a", "b"])
    with pytest.raises(ConfigurationError, match="'float32', 'int8', 'binary'"):
        Collection(tmp_path / "e.db", FakeEmbeddingModel(), precision="ubinary")


def test_deleting_an_item_removes_its_code(tmp_path: Path) -> None:
    collection = Collection(tmp_path / "c.db", FakeEmbeddingModel(), precision="binary")
    collection.upsert(ids=["1", "2"], texts=["alpha beta", "gamma delta"])
    collection.delete(["1"])
    assert [hit.id for hit in collection.query("alpha beta", k=5)] == ["2"]
