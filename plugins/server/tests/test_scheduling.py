"""The batching and back-pressure decisions, without a clock or a model."""

from __future__ import annotations

from embedify_server.scheduling import (
    QueuedInput,
    admits,
    retry_after_seconds,
    select_batch,
    updated_rate,
)


def request(number: int, *tokens: int, role: str = "document") -> list[QueuedInput]:
    return [QueuedInput(number, position, count, role) for position, count in enumerate(tokens)]


def select(queue: list[QueuedInput], **limits: int) -> list[QueuedInput]:
    settings = {"max_inputs": 8, "max_tokens": 10_000, "window": 32, **limits}
    return [queue[i] for i in select_batch(queue, **settings)]


def test_an_empty_queue_gives_no_batch() -> None:
    assert select_batch([], max_inputs=8, max_tokens=100, window=8) == []


def test_a_batch_holds_at_most_max_inputs() -> None:
    queue = request(0, *[10] * 20)
    assert len(select(queue, max_inputs=8)) == 8


def test_the_padded_batch_stays_within_the_token_budget() -> None:
    # 10 inputs of 10 tokens and one of 60: padding everything to 60 would cost 660 tokens.
    queue = request(0, 60, *[10] * 10)
    batch = select(queue, max_tokens=200, max_inputs=100)
    assert len(batch) * max(item.tokens for item in batch) <= 200
    assert batch[0].tokens == 60  # the head goes in, with as many inputs as still fit


def test_an_input_over_the_budget_still_goes_alone() -> None:
    queue = request(0, 500, 10)
    assert select(queue, max_tokens=100) == [queue[0]]


def test_a_shorter_input_further_on_fills_the_gap_a_longer_one_left() -> None:
    queue = request(0, 40, 90, 40)
    batch = select(queue, max_tokens=100)
    assert [item.position for item in batch] == [0, 2]


def test_inputs_near_the_head_in_length_are_preferred_to_older_ones() -> None:
    queue = request(0, 100) + request(1, 5) + request(2, 98) + request(3, 6) + request(4, 101)
    batch = select(queue, max_inputs=3)
    assert sorted(item.tokens for item in batch) == [98, 100, 101]


def test_the_best_ranked_input_is_always_in_the_batch() -> None:
    queue = request(3, 7) + request(0, 300) + request(1, 7, 7, 7)
    assert queue[1] in select(queue, max_inputs=2, max_tokens=400)


def test_a_batch_has_one_role_the_head_s() -> None:
    queue = request(0, 10, role="query") + request(1, 10, 10) + request(2, 10, role="query")
    batch = select(queue)
    assert {item.role for item in batch} == {"query"}
    assert {item.request for item in batch} == {0, 2}


def test_a_small_request_behind_a_big_one_is_served_in_the_first_batch() -> None:
    queue = request(0, *[20] * 32) + request(1, 20)
    first = select(queue, max_inputs=4)
    assert any(item.request == 1 for item in first)


def test_a_big_request_keeps_advancing_while_new_requests_arrive() -> None:
    """Two new one-input requests arrive per batch of four: the big one still gets half of
    every batch, so it finishes in bounded time instead of waiting for the queue to empty."""
    queue = request(0, *[20] * 16)
    served_big: list[int] = []
    next_number = 1
    for _ in range(8):
        queue += request(next_number, 20) + request(next_number + 1, 20)
        next_number += 2
        batch = select(queue, max_inputs=4)
        served_big.append(sum(item.request == 0 for item in batch))
        queue = [item for item in queue if item not in batch]
    assert sum(served_big) == 16
    assert all(count >= 1 for count in served_big)


def test_no_input_waits_longer_than_the_inputs_ranked_before_it() -> None:
    """A long input among a stream of short ones, which the length preference skips over,
    becomes the head and is served once the inputs ranked before it are gone."""
    queue = request(0, 5) + request(1, 400) + request(2, 5, 5, 5)
    batches = 0
    next_number = 3
    while any(item.tokens == 400 for item in queue):
        queue += request(next_number, 5, 5, 5, 5)  # short inputs keep arriving
        next_number += 1
        batch = select(queue, max_inputs=2)
        queue = [item for item in queue if item not in batch]
        batches += 1
        assert batches <= 2  # ranked second: served in the first or the second batch


def test_the_window_bounds_how_far_the_selection_looks_ahead() -> None:
    queue = request(0, 100) + [QueuedInput(n, 0, 5, "document") for n in range(1, 10)]
    queue += request(10, 100)
    near = select(queue, max_inputs=2, window=4)
    assert [item.request for item in near] == [0, 1]  # request 10 is outside the window
    far = select(queue, max_inputs=2, window=11)
    assert [item.request for item in far] == [0, 10]


def test_admission_counts_every_input_of_a_request() -> None:
    assert admits(queued_inputs=500, incoming_inputs=12, max_queued_inputs=512)
    assert not admits(queued_inputs=500, incoming_inputs=13, max_queued_inputs=512)
    assert not admits(queued_inputs=0, incoming_inputs=513, max_queued_inputs=512)


def test_retry_after_is_the_time_to_work_off_the_queue_at_least_one_second() -> None:
    assert retry_after_seconds(1000, 250.0) == 4
    assert retry_after_seconds(1001, 250.0) == 5
    assert retry_after_seconds(10, 250.0) == 1
    assert retry_after_seconds(10, None) == 1


def test_the_rate_is_a_moving_average_of_finished_batches() -> None:
    rate = updated_rate(None, 100, 1.0)
    assert rate == 100
    rate = updated_rate(rate, 200, 1.0, weight=0.5)
    assert rate == 150


def test_lengths_within_a_quarter_octave_are_taken_in_rank_order() -> None:
    queue = request(0, 40) + request(1, 100) + request(2, 44) + request(3, 42)
    assert [item.request for item in select(queue, max_inputs=2)] == [0, 2]
    assert [item.request for item in select(queue, max_inputs=3)] == [0, 2, 3]


def test_a_nearer_length_beats_an_older_input_of_the_same_octave() -> None:
    """130 and 250 tokens are one octave; batching them pads the 130 by 1.9x."""
    queue = request(0, 130) + request(1, 250) + request(2, 135)
    assert [item.request for item in select(queue, max_inputs=2)] == [0, 2]


def test_one_long_input_does_not_pad_a_batch_of_short_ones() -> None:
    queue = request(0, 250) + [QueuedInput(n, 0, 10, "document") for n in range(1, 40)]
    batch = select(queue, max_inputs=64, max_tokens=16_384)
    assert len(batch) * 250 <= 2 * sum(max(item.tokens, 32) for item in batch)
    short_first = [QueuedInput(0, 0, 10, "document"), *request(1, 250), *request(2, *[10] * 30)]
    batch = select(short_first, max_inputs=64, max_tokens=16_384)
    assert [item.tokens for item in batch] == [10] * 31  # the long input waits for its own batch
