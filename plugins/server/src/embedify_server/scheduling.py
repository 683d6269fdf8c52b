"""The server's batching and back-pressure decisions, as pure functions.

The queue holds single inputs, not requests. Which inputs form the next model batch is decided
here from their order, length and role alone; the batcher only carries the decision out, so
every rule below is tested without a clock or a model.

Order: the ``k``-th input of a request ranks as if it had arrived ``k`` requests later
(``request + position``). Under load the queue therefore interleaves requests instead of
serving one big request to the end while small ones wait, and a big request still advances as
new requests keep arriving, because its rank is fixed when it arrives.

Selection: the best-ranked input always goes into the next batch, so no input waits longer than
the number of inputs ranked before it. The rest of the batch comes from the next ``window``
inputs of the same role, nearest in length first (lengths within a quarter octave, a factor
of 1.19, count as equal, and then rank decides), while the padded batch (inputs x longest
input, what a padded forward pass computes) stays within the token budget and at most doubles
the real work: one long input does not turn a batch of short ones into a batch of long ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from embedify.errors import ConfigurationError


@dataclass(frozen=True)
class QueuedInput:
    """One input waiting for a model batch."""

    request: int  # arrival number of its request
    position: int  # index within its request
    tokens: int
    role: str

    @property
    def rank(self) -> tuple[int, int]:
        return (self.request + self.position, self.request)


def select_batch(
    queue: Sequence[QueuedInput], *, max_inputs: int, max_tokens: int, window: int
) -> list[int]:
    """Positions in ``queue`` of the inputs that form the next model batch (empty if none).

    At most ``max_inputs`` inputs, ``inputs x longest <= max_tokens`` (a single input longer
    than the budget still goes alone), one role, chosen among the ``window`` best-ranked inputs.
    """
    if not queue:
        return []
    ranked = sorted(range(len(queue)), key=lambda i: queue[i].rank)
    head = queue[ranked[0]]
    candidates = [i for i in ranked[1:window] if queue[i].role == head.role]
    home = length_class(head.tokens)
    candidates.sort(key=lambda i: (abs(length_class(queue[i].tokens) - home), queue[i].rank))
    chosen = [ranked[0]]
    longest, work = head.tokens, _work(head.tokens)
    for index in candidates:
        if len(chosen) >= max_inputs:
            break
        padded = (len(chosen) + 1) * max(longest, queue[index].tokens)
        if padded > max_tokens or padded > MAX_PADDING_FACTOR * (work + _work(queue[index].tokens)):
            continue  # a shorter input further on may still fit
        chosen.append(index)
        longest, work = max(longest, queue[index].tokens), work + _work(queue[index].tokens)
    return chosen


#: A batch may compute at most this many times the tokens its inputs hold.
MAX_PADDING_FACTOR = 2
#: Inputs shorter than this cost about the same in a forward pass (fixed per-sequence costs).
MIN_COST_TOKENS = 32


def _work(tokens: int) -> int:
    return max(tokens, MIN_COST_TOKENS)


#: Length classes per octave. Simulated on the server bench's requests with a full queue, the
#: batches padded the real tokens by 12% with one class per octave, 8% with two, 5% with four
#: and 3.6% with eight; four keeps rank order (fairness) among inputs that cost about the same.
CLASSES_PER_OCTAVE = 4


def length_class(tokens: int) -> int:
    """Inputs of one class pad each other by at most 2 ** (1/4) = 1.19x; below 32 tokens all
    are one class."""
    return int(CLASSES_PER_OCTAVE * math.log2(_work(tokens)))


def admits(queued_inputs: int, incoming_inputs: int, max_queued_inputs: int) -> bool:
    """Whether a request fits the bounded queue: each input takes one permit, as in TEI."""
    return queued_inputs + incoming_inputs <= max_queued_inputs


def retry_after_seconds(queued_inputs: int, inputs_per_second: float | None) -> int:
    """Whole seconds a refused client should wait: the time to work off the queue, in
    ``[1, MAX_CLIENT_RETRY_AFTER]``."""
    if not inputs_per_second or inputs_per_second <= 0:
        return 1
    return client_retry_after(queued_inputs / inputs_per_second)


#: The longest wait the server asks a client for. A queue that slow, or an upstream asking for
#: more (a broken or hostile ``Retry-After``), is better answered by retrying within a minute
#: than by a client parked for hours.
MAX_CLIENT_RETRY_AFTER = 60


def client_retry_after(seconds: float | None) -> int:
    """``Retry-After`` for a client from a wait in seconds (the upstream's, or the queue's):
    whole seconds in ``[1, MAX_CLIENT_RETRY_AFTER]``; unknown or NaN gives 1."""
    if seconds is None or math.isnan(seconds):
        return 1
    return math.ceil(min(max(seconds, 1), MAX_CLIENT_RETRY_AFTER))


def updated_rate(previous: float | None, inputs: int, seconds: float, weight: float = 0.2) -> float:
    """Moving average of inputs per second, updated with one finished batch."""
    current = inputs / max(seconds, 1e-6)
    return current if previous is None else (1 - weight) * previous + weight * current


#: TEI's token budget of one batch; a model that takes fewer tokens per request sets its own.
DEFAULT_MAX_BATCH_TOKENS = 16_384


def batch_token_budget(requested: int | None, model_limit: int | None) -> int:
    """The token budget of one model batch: ``requested`` (``--max-batch-tokens``), else the
    model's own limit per request capped at TEI's default. A request past the model's limit is
    refused, as the engine would split such batches anyway and /info would promise what the
    server cannot do."""
    if requested is None:
        return min(model_limit or DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_BATCH_TOKENS)
    if model_limit is not None and requested > model_limit:
        raise ConfigurationError(
            f"--max-batch-tokens {requested} is more than the model takes in one request "
            f"({model_limit} tokens): pass at most {model_limit}, or leave it out to use the "
            "model's own budget"
        )
    return requested
