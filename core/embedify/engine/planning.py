"""From the caller's texts to requests: input checks, deduplication, token limits, batches.

Pure functions of texts, token counts and limits; the executor asks :func:`take_batch` for the
next request as it goes, because the size it may have (latency, rate-limit budget, inputs
learned from a 413) changes during the job.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from embedify.errors import InputTooLongError, InvalidInputError


def validated_texts(texts: object) -> list[str]:
    """The caller's texts as a list, each checked; errors name the input's index and the fix."""
    if isinstance(texts, str):
        return validated_texts([texts])
    if isinstance(texts, bytes | bytearray):
        raise InvalidInputError("texts is bytes; decode it first, e.g. data.decode('utf-8').")
    if isinstance(texts, set | frozenset | Mapping):
        kind = type(texts).__name__
        raise InvalidInputError(
            f"texts is a {kind}, which has no defined order, so vectors could not be matched "
            "to their texts; pass a list (e.g. sorted(texts) or list(texts.values()))."
        )
    if not isinstance(texts, Iterable):
        raise InvalidInputError(
            f"texts is a {type(texts).__name__}; pass a string or a list of strings."
        )
    checked = list(texts)
    for index, text in enumerate(checked):
        if isinstance(text, bytes | bytearray):
            raise InvalidInputError(
                f"input {index} is bytes; decode it first, e.g. text.decode('utf-8')."
            )
        if not isinstance(text, str):
            raise InvalidInputError(
                f"input {index} is a {type(text).__name__}, not a str; embed strings only."
            )
        if not text.strip():
            raise InvalidInputError(
                f"input {index} is empty or only whitespace; providers reject such inputs. "
                "Drop it, or replace it with a placeholder text."
            )
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidInputError(
                f"input {index} holds a lone surrogate at character {error.start}, which is "
                "not valid Unicode (often a file decoded with errors='surrogateescape'); "
                "decode it with errors='replace'."
            ) from None
    return checked


def deduplicate(texts: Sequence[str]) -> tuple[list[int], dict[int, int]]:
    """(indices of first occurrences, {index of a repeat: index of its first occurrence})."""
    first_seen: dict[str, int] = {}
    unique: list[int] = []
    repeats: dict[int, int] = {}
    for index, text in enumerate(texts):
        first = first_seen.setdefault(text, index)
        if first == index:
            unique.append(index)
        else:
            repeats[index] = first
    return unique, repeats


@dataclass(frozen=True)
class Cut:
    """An input over the model's token limit, cut to ``tokens`` from one ``side``."""

    tokens: int
    side: Literal["end", "start"]


def over_long_inputs(
    indices: Sequence[int],
    counts: Sequence[int],
    *,
    limit: int | None,
    truncate: Literal["error", "end", "start"],
    model_name: str,
) -> dict[int, Cut]:
    """Inputs to cut, by index; raises ``InputTooLongError`` for the first over-long input when
    ``truncate='error'``, before anything is sent."""
    cuts: dict[int, Cut] = {}
    if limit is None:
        return cuts
    for index, count in zip(indices, counts):
        if count <= limit:
            continue
        if truncate == "error":
            raise InputTooLongError(
                f"input {index} has {count} tokens; {model_name} accepts at most {limit}. "
                "Shorten or split it, or pass truncate='end' (or 'start') to cut it.",
                index=index,
                tokens=count,
            )
        cuts[index] = Cut(limit, truncate)
    return cuts


def take_batch(
    queue: deque[int],
    tokens: Mapping[int, int] | Sequence[int],
    *,
    max_inputs: int | None,
    max_tokens: int | None,
) -> list[int]:
    """Pop the next request from ``queue`` (longest inputs first): at most ``max_inputs``
    inputs and ``max_tokens`` tokens; an input over ``max_tokens`` alone goes by itself."""
    batch: list[int] = []
    total = 0
    while queue:
        count = tokens[queue[0]]
        if batch and (
            (max_inputs is not None and len(batch) >= max_inputs)
            or (max_tokens is not None and total + count > max_tokens)
        ):
            break
        batch.append(queue.popleft())
        total += count
    return batch
