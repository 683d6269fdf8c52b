"""The engine every model runs through: plan, send, retry, throttle, cache, report.

A job deduplicates its texts, takes what it can from the cache, checks each input against the
model's token limit, packs the rest into requests that respect the model's declared limits and
keep every concurrency slot busy, and sends them through the model's ``aembed_batch``.
Transient failures are retried with exponential backoff and jitter (or the provider's
``Retry-After``), rejected batches are split, over-long inputs are cut as the ``truncate``
option says, and every finished request is written to the cache at once, so an interrupted job
resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from embedify.errors import (
    BadResponseError,
    BatchTooLargeError,
    ConfigurationError,
    EmbeddingJobError,
    InputTooLongError,
    PermanentError,
    ProviderError,
    RateLimitError,
    TransientError,
)
from embedify.throttle import Throttle, _current

if TYPE_CHECKING:
    from embedify.cache import EmbeddingCache
    from embedify.model import EmbeddingModel, Role, Vectors

T = TypeVar("T")

#: A provider asking for a longer pause than this is treated as a permanent refusal.
MAX_RETRY_AFTER = 300.0
MAX_BACKOFF = 30.0
MAX_SHRINKS = 8
PROGRESS_MIN_ITEMS = 32


@dataclass
class ItemReport:
    """What happened to one input."""

    cached: bool = False
    truncated: bool = False
    tokens: int = 0
    duplicate_of: int | None = None
    failed: bool = False


@dataclass
class Report:
    """What a job did: per item, and in requests, retries and tokens."""

    items: list[ItemReport]
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    splits: int = 0
    exact_tokens: bool = False

    @property
    def cached(self) -> int:
        return sum(item.cached for item in self.items)

    @property
    def embedded(self) -> int:
        return sum(
            not (item.cached or item.failed or item.duplicate_of is not None) for item in self.items
        )

    @property
    def deduplicated(self) -> int:
        return sum(item.duplicate_of is not None for item in self.items)

    @property
    def truncated(self) -> list[int]:
        return [index for index, item in enumerate(self.items) if item.truncated]

    @property
    def failed(self) -> int:
        return sum(item.failed for item in self.items)

    @property
    def tokens(self) -> int:
        """Tokens sent to the provider (exact when ``exact_tokens``, else an estimate)."""
        return sum(
            item.tokens
            for item in self.items
            if not (item.cached or item.failed or item.duplicate_of is not None)
        )

    def summary(self) -> str:
        return (
            f"{len(self.items)} inputs: {self.embedded} embedded, {self.cached} from cache, "
            f"{self.deduplicated} duplicates, {len(self.truncated)} truncated, "
            f"{self.failed} failed; "
            f"{self.requests} requests, {self.retries} retries ({self.rate_limited} rate-limited), "
            f"{'' if self.exact_tokens else '~'}{self.tokens} tokens"
        )


@dataclass
class EmbeddingResult:
    """Vectors in input order, and the report of the job that made them."""

    vectors: Vectors
    report: Report


@dataclass
class _ModelState:
    throttle: Throttle
    learned_max_inputs: int | None = None


def _state(model: EmbeddingModel) -> _ModelState:
    if model._engine_state is None:
        options = model.options
        model._engine_state = _ModelState(
            Throttle(
                model.info.max_concurrency,
                options.requests_per_minute,
                options.tokens_per_minute,
            )
        )
    state: _ModelState = model._engine_state
    return state


def plan_batches(
    tokens: Sequence[int],
    *,
    max_inputs: int | None,
    max_tokens: int | None,
    concurrency: int,
) -> list[list[int]]:
    """Group positions ``0..len(tokens)-1`` into requests.

    Longest inputs first (less padding for local models, the slowest requests start early),
    at most ``max_inputs`` inputs and ``max_tokens`` tokens per request, and small enough that
    ``concurrency`` requests share the work evenly.
    """
    if not tokens:
        return []
    order = sorted(range(len(tokens)), key=lambda i: -tokens[i])
    per_request = math.ceil(len(tokens) / concurrency)
    if max_inputs:
        per_request = min(per_request, max_inputs)
    if max_tokens:
        # Spread the tokens evenly too, so one request does not hold all the long inputs.
        token_share = math.ceil(sum(tokens) / concurrency)
        max_tokens = max(min(max_tokens, token_share), max(tokens))
    batches: list[list[int]] = []
    current: list[int] = []
    current_tokens = 0
    for index in order:
        over_tokens = max_tokens is not None and current_tokens + tokens[index] > max_tokens
        if current and (len(current) >= per_request or over_tokens):
            batches.append(current)
            current, current_tokens = [], 0
        current.append(index)
        current_tokens += tokens[index]
    batches.append(current)
    return batches


class _Gate:
    """Admits requests while the throttle allows more in flight; waits out pauses and budgets."""

    def __init__(self, throttle: Throttle) -> None:
        self.throttle = throttle
        self.in_flight = 0
        self.condition = asyncio.Condition()

    async def acquire(self, tokens: int) -> None:
        async with self.condition:
            await self.condition.wait_for(
                lambda: self.in_flight < self.throttle.allowed_in_flight()
            )
            self.in_flight += 1
        while (delay := self.throttle.delay_before(tokens)) > 0:
            await asyncio.sleep(delay)
        self.throttle.spend(tokens)

    async def release(self) -> None:
        async with self.condition:
            self.in_flight -= 1
            self.condition.notify_all()


def backoff_delay(attempt: int, retry_after: float | None) -> float:
    """Seconds before retry number ``attempt`` (1-based): the provider's word, else exponential
    backoff with jitter so that many clients do not retry in step."""
    if retry_after is not None:
        return float(retry_after * random.uniform(1.0, 1.1))
    return float(min(MAX_BACKOFF, 0.5 * 2.0 ** (attempt - 1)) * random.uniform(0.5, 1.0))


def _checked(vectors: Any, count: int, dimension: int | None, model: EmbeddingModel) -> Vectors:
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise BadResponseError(
            f"{model!r} returned something that is not numbers: {error}"
        ) from None
    if array.ndim != 2 or array.shape[0] != count:
        raise BadResponseError(
            f"{model!r} returned shape {array.shape} for {count} inputs; expected ({count}, d)."
        )
    if dimension is not None and array.shape[1] != dimension:
        raise BadResponseError(
            f"{model!r} returned {array.shape[1]}-dimensional vectors; expected {dimension}."
        )
    if not np.isfinite(array).all():
        raise BadResponseError(f"{model!r} returned NaN or infinite values.")
    return array


def _l2_normalize(array: Vectors) -> Vectors:
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: Vectors = (array / norms).astype(np.float32, copy=False)
    return result


def _validated_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    checked = list(texts)
    for index, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(
                f"input {index} is a {type(text).__name__}, not a str; embed strings only."
            )
        if not text.strip():
            raise ConfigurationError(
                f"input {index} is empty or only whitespace; providers reject such inputs. "
                "Drop it, or replace it with a placeholder text."
            )
    return checked


def _output_dimension(model: EmbeddingModel) -> tuple[int | None, int | None]:
    """(dimension the provider returns, dimension the caller gets)."""
    requested = model.options.dimensions
    info = model.info
    if requested is None:
        return model.dimension, model.dimension
    if info.allowed_dimensions is not None and requested not in info.allowed_dimensions:
        raise ConfigurationError(
            f"{model!r} does not offer dimensions={requested}; "
            f"allowed: {', '.join(map(str, info.allowed_dimensions))}."
        )
    if model.dimension is not None and requested > model.dimension:
        raise ConfigurationError(
            f"dimensions={requested} is more than {model!r}'s native {model.dimension}."
        )
    if info.dimensions_mode == "native":
        return requested, requested
    if info.dimensions_mode == "matryoshka":
        return model.dimension, requested
    raise ConfigurationError(
        f"{model!r} has a fixed output dimension ({model.dimension}) and is not a Matryoshka "
        "model, so cutting its vectors would make them meaningless; drop the dimensions option."
    )


async def embed_job(model: EmbeddingModel, texts: Sequence[str], role: Role) -> EmbeddingResult:
    """Run one embedding job for ``model``; see the module docstring."""
    texts = _validated_texts(texts)
    if role not in model.role_mapping:
        raise ConfigurationError(
            f"{model!r} has no {role!r} role; it offers: {', '.join(model.role_mapping)}."
        )
    if model._engine_state is None:  # first job: the provider may learn its limits here
        await model.prepare()
    state = _state(model)
    provider_dimension, output_dimension = _output_dimension(model)
    options = model.options
    report = Report(items=[ItemReport() for _ in texts], exact_tokens=model.exact_token_count)

    unique: list[int] = []
    first_seen: dict[str, int] = {}
    for index, text in enumerate(texts):
        first = first_seen.setdefault(text, index)
        if first == index:
            unique.append(index)
        else:
            report.items[index].duplicate_of = first

    done: dict[int, Vectors] = {}
    cache: EmbeddingCache | None = None
    keys: dict[int, bytes] = {}
    if options.cache and unique:
        from embedify.cache import EmbeddingCache

        cache = EmbeddingCache.open(options.cache)
        fingerprint = model.info.fingerprint()
        keys = {index: cache.key(fingerprint, role, texts[index]) for index in unique}
        for index, vector in zip(unique, cache.get_many([keys[i] for i in unique])):
            if vector is not None:
                done[index] = vector
                report.items[index].cached = True

    todo = [index for index in unique if index not in done]
    failures: dict[int, ProviderError] = {}
    if todo:
        job = _Job(model, role, texts, report, state, provider_dimension, output_dimension)
        job.cache, job.keys = cache, keys
        await job.run(todo)
        done.update(job.done)
        failures = job.failures

    width = output_dimension or next((len(v) for v in done.values()), 0)
    vectors = np.full((len(texts), width), np.nan, dtype=np.float32)
    for index, vector in done.items():
        vectors[index] = vector
    for index, item in enumerate(report.items):
        if item.duplicate_of is not None:
            vectors[index] = vectors[item.duplicate_of]
            item.failed = report.items[item.duplicate_of].failed
            if item.duplicate_of in failures:
                failures[index] = failures[item.duplicate_of]
    if failures:
        raise EmbeddingJobError(failures, vectors, report)
    return EmbeddingResult(vectors, report)


class _Job:
    """The requests of one ``embed_job`` call that could not be served from the cache."""

    def __init__(
        self,
        model: EmbeddingModel,
        role: Role,
        texts: list[str],
        report: Report,
        state: _ModelState,
        provider_dimension: int | None,
        output_dimension: int | None,
    ) -> None:
        self.model = model
        self.role = role
        self.texts = texts
        self.work_texts: dict[int, str] = {}
        self.report = report
        self.state = state
        self.provider_dimension = provider_dimension
        self.output_dimension = output_dimension
        self.done: dict[int, Vectors] = {}
        self.failures: dict[int, ProviderError] = {}
        self.stopped_by: PermanentError | None = None
        self.shrinks: dict[int, int] = {}
        self.cache: EmbeddingCache | None = None
        self.keys: dict[int, bytes] = {}
        self.progress: Any = None

    async def run(self, todo: list[int]) -> None:
        model, options, limits = self.model, self.model.options, self.model.limits
        token_counts = model.count_tokens([self.texts[index] for index in todo])
        for index, count in zip(todo, token_counts):
            self.report.items[index].tokens = count
            self.work_texts[index] = self.texts[index]
            limit = limits.max_tokens_per_input
            if limit is None or count <= limit:
                continue
            if options.truncate == "error":
                raise InputTooLongError(
                    f"input {index} has {count} tokens; {model!r} accepts at most {limit}. "
                    "Shorten or split it, or pass truncate='end' (or 'start') to cut it.",
                    index=index,
                    tokens=count,
                )
            self.report.items[index].truncated = True
            self.report.items[index].tokens = limit
            if not model.truncates_natively:
                self.work_texts[index] = model.truncate_text(
                    self.texts[index], limit, options.truncate
                )
        max_inputs = limits.max_inputs_per_request
        if options.batch_size:
            max_inputs = min(max_inputs or options.batch_size, options.batch_size)
        plan = plan_batches(
            [self.report.items[index].tokens for index in todo],
            max_inputs=max_inputs,
            max_tokens=limits.max_tokens_per_request,
            concurrency=model.info.max_concurrency,
        )
        self.gate = _Gate(self.state.throttle)
        if options.show_progress and len(todo) >= PROGRESS_MIN_ITEMS:
            from tqdm.auto import tqdm

            self.progress = tqdm(total=len(todo), desc="embedding", unit="text")
        try:
            await asyncio.gather(*(self.handle([todo[i] for i in batch]) for batch in plan))
        finally:
            if self.progress is not None:
                self.progress.close()

    def fail(self, batch: list[int], error: ProviderError) -> None:
        for index in batch:
            self.failures[index] = error
            self.report.items[index].failed = True

    async def handle(self, batch: list[int]) -> None:
        attempt = 0
        while batch:
            if self.stopped_by is not None:
                self.fail(batch, self.stopped_by)
                return
            cap = self.state.learned_max_inputs
            if cap is not None and len(batch) > cap:
                await self.split(batch, cap)
                return
            try:
                vectors = await self.send(batch)
            except TransientError as error:
                attempt += 1
                self.report.retries += 1
                if isinstance(error, RateLimitError):
                    self.report.rate_limited += 1
                if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
                    self.fail(batch, error)
                    return
                if attempt > self.model.options.max_retries:
                    self.report.retries -= 1
                    self.fail(batch, error)
                    return
                delay = backoff_delay(attempt, error.retry_after)
                if isinstance(error, RateLimitError):
                    self.state.throttle.on_rate_limited(delay)
                await asyncio.sleep(delay)
                continue
            except BatchTooLargeError as error:
                if len(batch) == 1:
                    self.fail(batch, error)
                    return
                half = math.ceil(len(batch) / 2)
                cap = self.state.learned_max_inputs
                self.state.learned_max_inputs = min(cap or half, half)
                await self.split(batch, half)
                return
            except InputTooLongError as error:
                batch = await self.shorten(batch, error)
                continue
            except PermanentError as error:
                self.fail(batch, error)
                if error.stops_job:
                    self.stopped_by = error
                return
            self.store(batch, vectors)
            return

    async def send(self, batch: list[int]) -> Vectors:
        texts = [self.work_texts[index] for index in batch]
        tokens = sum(self.report.items[index].tokens for index in batch)
        await self.gate.acquire(tokens)
        if self.stopped_by is not None:  # stopped while this request waited for a slot
            await self.gate.release()
            raise self.stopped_by
        self.report.requests += 1
        context_token = _current.set(self.state.throttle)
        try:
            raw = await self.model.aembed_batch(texts, self.role)
            vectors = _checked(raw, len(batch), self.provider_dimension, self.model)
        except (ProviderError, ConfigurationError):
            raise
        except Exception as error:  # a provider bug must not hang or lose the job
            raise PermanentError(
                f"{self.model!r} raised {type(error).__name__}: {error}"
            ) from error
        finally:
            _current.reset(context_token)
            await self.gate.release()
        self.state.throttle.on_success()
        return vectors

    async def split(self, batch: list[int], size: int) -> None:
        self.report.splits += 1
        parts = [batch[start : start + size] for start in range(0, len(batch), size)]
        await asyncio.gather(*(self.handle(part) for part in parts))

    async def shorten(self, batch: list[int], error: InputTooLongError) -> list[int]:
        """Deal with a request rejected for an over-long input; return what to send next."""
        if error.index is not None and 0 <= error.index < len(batch):
            culprit = batch[error.index]
        elif len(batch) == 1:
            culprit = batch[0]
        else:  # the provider did not say which input: halve until it is alone
            await self.split(batch, math.ceil(len(batch) / 2))
            return []
        options = self.model.options
        shrinks = self.shrinks.get(culprit, 0)
        if options.truncate == "error" or shrinks >= MAX_SHRINKS:
            located = InputTooLongError(
                f"input {culprit} is too long for {self.model!r}: {error}. Shorten it, or pass "
                "truncate='end' (or 'start') to cut it.",
                status=error.status,
                index=culprit,
                tokens=error.tokens,
            )
            self.fail([culprit], located)
            return [index for index in batch if index != culprit]
        self.shrinks[culprit] = shrinks + 1
        current = self.report.items[culprit].tokens
        limit = self.model.limits.max_tokens_per_input
        if error.tokens and limit and error.tokens > limit:
            target = math.floor(current * limit / error.tokens * 0.95)
        else:
            target = math.floor(current * 0.75)
        target = max(1, target)
        side: Literal["end", "start"] = "start" if options.truncate == "start" else "end"
        self.work_texts[culprit] = self.model.truncate_text(self.work_texts[culprit], target, side)
        self.report.items[culprit].truncated = True
        self.report.items[culprit].tokens = target
        return batch

    def store(self, batch: list[int], vectors: Vectors) -> None:
        options = self.model.options
        if self.output_dimension is not None and vectors.shape[1] > self.output_dimension:
            vectors = _l2_normalize(vectors[:, : self.output_dimension])
        elif options.normalize:
            vectors = _l2_normalize(vectors)
        if self.model.dimension is None:
            self.model.dimension = int(vectors.shape[1])
            self.provider_dimension = self.output_dimension = self.model.dimension
        for index, vector in zip(batch, vectors):
            self.done[index] = vector
        if self.cache is not None:
            self.cache.put_many([self.keys[index] for index in batch], vectors)
        if self.progress is not None:
            self.progress.update(len(batch))


# -- running coroutines from synchronous code ----------------------------------------------------

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="embedify-engine", daemon=True).start()
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from synchronous code.

    Every synchronous call goes through one background event loop, so it also works inside a
    running loop (Jupyter) and async clients made by a provider stay on the loop that made them.
    """
    future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, _background_loop())
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise
