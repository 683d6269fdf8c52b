"""Properties of the response validators every provider's answer passes through: for any order
the rows come back in index order; any index set that is not ``0..n-1`` once each, and any
vector that is not finite numbers of one width, is refused; nothing else ever escapes them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from embedify.errors import BadResponseError
from embedify.responses import ordered_embeddings, vector_matrix

pytestmark = pytest.mark.faults

SOURCE = "acme:m1"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@given(st.integers(1, 30).flatmap(lambda n: st.permutations(range(n))))
def test_any_order_of_valid_indices_gives_the_rows_in_index_order(order: list[int]) -> None:
    items = [{"index": index, "embedding": [float(index)]} for index in order]
    assert ordered_embeddings(items, len(order), source=SOURCE) == [
        [float(index)] for index in range(len(order))
    ]


@st.composite
def invalid_indices(draw: st.DrawFn) -> tuple[int, list[Any]]:
    count = draw(st.integers(1, 8))
    indices = draw(
        st.lists(
            st.integers(-2, count + 2)
            | st.booleans()
            | st.floats(allow_nan=True)
            | st.text(max_size=2)
            | st.none(),
            min_size=count - 1 if count > 1 else 0,
            max_size=count + 1,
        )
    )
    valid = all(type(i) is int for i in indices) and sorted(indices) == list(range(count))
    if valid:  # make it invalid in one of the ways a server can
        broken = draw(st.sampled_from([True, 1.0, str(count - 1), -1, count, None]))
        indices[draw(st.integers(0, count - 1))] = broken
    return count, indices


@given(invalid_indices())
def test_any_invalid_index_set_is_refused(case: tuple[int, list[Any]]) -> None:
    count, indices = case
    items = [{"index": index, "embedding": [0.5]} for index in indices]
    with pytest.raises(BadResponseError, match=SOURCE):
        ordered_embeddings(items, count, source=SOURCE)


FINITE = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 6), st.integers(1, 6)),
    elements=st.floats(-1e6, 1e6, width=32),
)


@given(FINITE, st.booleans())
def test_finite_vectors_pass_unchanged(array: np.ndarray, as_lists: bool) -> None:
    rows = array.tolist() if as_lists else array
    matrix = vector_matrix(rows, len(array), source=SOURCE, width=array.shape[1])
    assert matrix.dtype == np.float32 and np.array_equal(matrix, array)


@given(FINITE, st.data(), st.sampled_from([math.nan, math.inf, -math.inf]), st.booleans())
def test_any_non_finite_value_is_refused_naming_its_input(
    array: np.ndarray, data: st.DataObject, bad: float, as_lists: bool
) -> None:
    row = data.draw(st.integers(0, array.shape[0] - 1))
    column = data.draw(st.integers(0, array.shape[1] - 1))
    array[row, column] = bad
    rows = array.tolist() if as_lists else array
    with pytest.raises(BadResponseError, match=f"{SOURCE}.* input {row} .*NaN or infinite"):
        vector_matrix(rows, len(array), source=SOURCE)


@given(FINITE, st.data(), st.sampled_from([True, False, "0.5", None, [0.5], {"x": 1}]))
def test_any_value_that_is_not_a_number_is_refused_naming_its_input(
    array: np.ndarray, data: st.DataObject, bad: Any
) -> None:
    rows = array.tolist()
    row = data.draw(st.integers(0, len(rows) - 1))
    rows[row][data.draw(st.integers(0, len(rows[row]) - 1))] = bad
    with pytest.raises(BadResponseError, match=f"{SOURCE}.* input {row} "):
        vector_matrix(rows, len(rows), source=SOURCE)


@given(JSON, st.integers(0, 4))
def test_any_json_is_a_list_of_embeddings_or_a_bad_response(answer: Any, count: int) -> None:
    try:
        ordered = ordered_embeddings(answer, count, source=SOURCE)
    except BadResponseError:
        return
    assert len(ordered) == count


@given(JSON, st.integers(1, 4))
def test_any_json_is_a_finite_matrix_or_a_bad_response(answer: Any, count: int) -> None:
    try:
        matrix = vector_matrix(answer, count, source=SOURCE)
    except BadResponseError:
        return
    assert matrix.shape[0] == count and matrix.shape[1] > 0 and np.isfinite(matrix).all()
