"""Rows to requests to files, within a provider's limits; and what the job will cost.

Pure functions. A request holds consecutive rows of one part, so a part's vectors are the
concatenation of its requests' results; its ``custom_id`` (``part-000003-rows-30000-32048``)
says which, so output lines, which come in any order, find their rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from embedify.bulk.api import BatchLimits, Price
from embedify.errors import ConfigurationError

_CUSTOM_ID = re.compile(r"part-(\d+)-rows-(\d+)-(\d+)")


@dataclass(frozen=True)
class PlannedRequest:
    """Rows ``[start, stop)`` of the whole input, all in part ``part``."""

    part: int
    start: int
    stop: int
    tokens: int

    @property
    def custom_id(self) -> str:
        return f"part-{self.part:06d}-rows-{self.start}-{self.stop}"

    @property
    def rows(self) -> int:
        return self.stop - self.start


def rows_of(custom_id: str) -> tuple[int, int, int]:
    """``(part, start, stop)`` from a ``custom_id``; a line that is not ours is refused."""
    found = _CUSTOM_ID.fullmatch(custom_id)
    if found is None:
        raise ConfigurationError(
            f"custom_id {custom_id!r} was not written by embedify; the batch holds requests of "
            "another job."
        )
    part, start, stop = (int(group) for group in found.groups())
    return part, start, stop


def plan_requests(
    token_counts: Sequence[int], part_rows: int, limits: BatchLimits
) -> list[PlannedRequest]:
    """Consecutive rows into requests of at most ``inputs_per_request`` inputs and
    ``tokens_per_request`` tokens, never crossing a part (an input over the token limit goes
    alone, and the provider's answer decides)."""
    if part_rows < 1:
        raise ConfigurationError(f"part_rows={part_rows}: a part holds at least one row.")
    most = min(limits.inputs_per_request, limits.inputs_per_batch or limits.inputs_per_request)
    requests: list[PlannedRequest] = []
    start, tokens = 0, 0
    for row, count in enumerate(token_counts):
        full = row - start >= most or (
            limits.tokens_per_request is not None and tokens + count > limits.tokens_per_request
        )
        if row > start and (full or row % part_rows == 0):
            requests.append(PlannedRequest(start // part_rows, start, row, tokens))
            start, tokens = row, 0
        tokens += count
    if len(token_counts) > start:
        requests.append(PlannedRequest(start // part_rows, start, len(token_counts), tokens))
    return requests


class FilePacker:
    """Requests, in order, into input files (one batch each) within the requests, bytes and
    inputs per batch limits. The runner writes each line as it places it, so a line is encoded
    once; :func:`plan_files` only counts."""

    def __init__(self, limits: BatchLimits) -> None:
        self.limits = limits
        self.files = 0
        self.requests = self.bytes = self.inputs = 0  # in the current file

    def place(self, request: PlannedRequest, length: int) -> int:
        """The number (from 0) of the file ``request``, a line of ``length`` bytes, goes in."""
        limits = self.limits
        if length > limits.bytes_per_file:
            raise ConfigurationError(
                f"request {request.custom_id} takes {length:,} bytes, more than a batch file may "
                f"hold ({limits.bytes_per_file:,}); lower --part-rows or shorten the texts."
            )
        over = (
            self.requests >= limits.requests_per_file
            or self.bytes + length > limits.bytes_per_file
            or (
                limits.inputs_per_batch is not None
                and self.inputs + request.rows > limits.inputs_per_batch
            )
        )
        if self.files == 0 or (self.requests and over):
            self.files += 1
            self.requests = self.bytes = self.inputs = 0
        self.requests += 1
        self.bytes += length
        self.inputs += request.rows
        return self.files - 1


def plan_files(
    requests: Sequence[PlannedRequest],
    line_bytes: Callable[[PlannedRequest], int],
    limits: BatchLimits,
) -> list[list[PlannedRequest]]:
    """Requests into input files, as :class:`FilePacker` places them."""
    packer = FilePacker(limits)
    files: list[list[PlannedRequest]] = []
    for request in requests:
        if packer.place(request, line_bytes(request)) == len(files):
            files.append([])
        files[-1].append(request)
    return files


@dataclass(frozen=True)
class Cost:
    """Estimated US dollars for ``tokens`` input tokens, online and in batches."""

    tokens: int
    online: float
    batch: float

    @property
    def saving(self) -> float:
        return self.online - self.batch


def estimate_cost(tokens: int, price: Price) -> Cost:
    return Cost(tokens, tokens * price.online / 1e6, tokens * price.batch / 1e6)


def dollars(amount: float) -> str:
    """``$1,234.50``; an amount under a dollar keeps four decimals (``$0.0034``)."""
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.4f}"


@dataclass(frozen=True)
class BulkPlan:
    """What a dry run prints: the job's size and its price both ways."""

    rows: int
    tokens: int
    exact_tokens: bool
    requests: int
    files: int
    cost: Cost | None

    def summary(self) -> str:
        counted = "counted with the model's tokenizer" if self.exact_tokens else "estimated"
        lines = [
            f"rows:        {self.rows:,}",
            f"tokens:      {self.tokens:,} ({counted})",
            f"requests:    {self.requests:,}",
            f"batch files: {self.files:,} (one batch each)",
        ]
        if self.cost is None:
            lines.append("price:       unknown for this model (give one with --price)")
        else:
            lines += [
                f"online:      {dollars(self.cost.online)}",
                f"batch:       {dollars(self.cost.batch)} (saves {dollars(self.cost.saving)})",
            ]
        return "\n".join(lines)
