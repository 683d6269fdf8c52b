"""One embedding job, start to finish: check, deduplicate, cut, look up the cache, send what is
left through the executor, store each finished request at once, assemble the vectors.

The engine's state for a model (its pacer and request sizer, shared by all its jobs) lives
here, keyed by the model object and dropped with it. The only thing written onto a model is
the dimension its first answer showed, when it could not say it before
(``ProviderModel.learn_dimension``).
"""

from __future__ import annotations

import threading
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedify.engine import planning, policy
from embedify.engine.executor import Executor, Work
from embedify.engine.pacing import ADAPTIVE_MAX_IN_FLIGHT, Pacer
from embedify.engine.sizing import RequestSizer
from embedify.engine.vectors import finished, output_dimensions
from embedify.errors import ConfigurationError, EmbeddingJobError, StorageError, StorageWarning
from embedify.quantize import (
    CALIBRATED,
    DTYPES,
    PACKED,
    builtin_calibration,
    calibrated_ranges,
    provider_codes,
    quantize,
    width,
)
from embedify.report import EmbeddingResult, ItemReport, Report

if TYPE_CHECKING:
    from embedify.cache import EmbeddingCache
    from embedify.protocol import ProviderModel, Role, Vectors

#: Jobs with fewer inputs to send than this never show a progress bar.
PROGRESS_MIN_ITEMS = 32


@dataclass
class ModelState:
    """What the engine learned about one model: rate limits, concurrency, request sizes."""

    pacer: Pacer
    sizer: RequestSizer
    ranges: Vectors | None = None  # int8/uint8 ranges from the calibration set, once measured


# Keyed by the model object, under a lock: two threads or event loops making a model's first
# call at the same moment must share one Pacer, or its rate budget would be spent twice.
_states: weakref.WeakKeyDictionary[ProviderModel, ModelState] = weakref.WeakKeyDictionary()
_states_lock = threading.Lock()
# Pacers handed in before a model's first job (pace_with), applied when its state is made.
_pacer_wraps: weakref.WeakKeyDictionary[ProviderModel, Callable[[Pacer], Pacer]] = (
    weakref.WeakKeyDictionary()
)


def pace_with(model: ProviderModel, wrap: Callable[[Pacer], Pacer]) -> None:
    """Before ``model``'s first job: its engine paces with ``wrap(pacer)``, ``pacer`` being the
    one the engine builds for it (e.g. one that also leases capacity from a rate budget shared
    by several processes: embedify-ray does)."""
    with _states_lock:
        if model in _states:
            raise RuntimeError(f"{model!r} has run a job already; call pace_with before it")
        _pacer_wraps[model] = wrap


def model_state(model: ProviderModel) -> ModelState | None:
    """The engine's state for ``model`` (``None`` before its first job)."""
    with _states_lock:
        return _states.get(model)


async def _state_for(model: ProviderModel) -> ModelState:
    state = model_state(model)
    if state is not None:
        return state
    await model.prepare()  # first job: the provider may learn its limits here (may run twice)
    with _states_lock:
        state = _states.get(model)
        if state is None:
            state = _states[model] = _new_state(model)
            wrap = _pacer_wraps.pop(model, None)
            if wrap is not None:
                state.pacer = wrap(state.pacer)
        return state


def _new_state(model: ProviderModel) -> ModelState:
    info, options = model.info, model.options
    if options.max_concurrency is not None:
        ceiling = options.max_concurrency
    else:
        ceiling = ADAPTIVE_MAX_IN_FLIGHT if info.native_async else info.max_concurrency
    return ModelState(
        Pacer(
            start_in_flight=info.max_concurrency,
            max_in_flight=ceiling,
            requests_per_minute=options.requests_per_minute,
            tokens_per_minute=options.tokens_per_minute,
            probe_first=info.native_async,
            now=time.monotonic(),
        ),
        RequestSizer(
            adaptive=info.native_async and options.batch_size is None,
            timeout=options.timeout,
        ),
    )


async def embed_job(
    model: ProviderModel, texts: Sequence[str], role: Role, *, floats: bool = False
) -> EmbeddingResult:
    """Run one embedding job for ``model``; see the module docstring. ``floats``: the float
    vectors a model quantized here starts from (its calibration set is embedded so)."""
    texts = planning.validated_texts(texts)
    if role not in model.capabilities.roles:
        raise ConfigurationError(
            f"{model!r} has no {role!r} role; it offers: {', '.join(model.capabilities.roles)}."
        )
    state = await _state_for(model)
    provider_dimension, output_dimension = output_dimensions(model)
    options = model.options
    precision = options.precision
    # A provider's own int8/binary codes travel as float32 (exactly) until the job's end.
    provider_codes_wanted = model.quantized_by == "provider"
    if provider_codes_wanted and output_dimension is not None:
        provider_dimension = output_dimension = width(output_dimension, precision)
    report = Report(
        items=[ItemReport() for _ in texts], exact_tokens=model.capabilities.exact_tokens
    )

    unique, repeats = planning.deduplicate(texts)
    for index, first in repeats.items():
        report.items[index].duplicate_of = first
    counts = model.count_tokens([texts[index] for index in unique]) if unique else []
    cuts = planning.over_long_inputs(
        unique,
        counts,
        limit=model.capabilities.limits.max_tokens_per_input,
        truncate=options.truncate,
        model_name=repr(model),
    )
    work = Work(texts={}, tokens={})
    for index, count in zip(unique, counts):
        cut = cuts.get(index)
        report.items[index].tokens = cut.tokens if cut else count
        report.items[index].truncated = cut is not None
        work.tokens[index] = report.items[index].tokens
        if cut is None or model.capabilities.truncates:
            work.texts[index] = texts[index]
        else:
            work.texts[index] = model.truncate_text(texts[index], cut.tokens, cut.side)

    rows = _Rows(len(texts), output_dimension)
    cache = _cache(model, unique, work, role, output_dimension, rows, report)
    if provider_dimension is None and output_dimension is None and rows.array is not None:
        provider_dimension = rows.array.shape[1]  # a width read from the cache: answers agree

    def store(batch: list[int], raw: Vectors) -> None:
        if provider_codes_wanted:
            vectors = provider_codes(raw, precision, repr(model)).astype(np.float32)
        else:
            vectors = finished(raw, model, output_dimension)
        packed = provider_codes_wanted and precision in PACKED
        model.learn_dimension(int(raw.shape[1]) * (8 if packed else 1))
        rows.put(batch, vectors)
        if cache is not None:
            cache.put(batch, vectors)
        if progress is not None:
            progress.update(len(batch))

    todo = [index for index in unique if index not in rows.filled]
    failures = {}
    progress: Any = None
    if todo:
        if options.show_progress and len(todo) >= PROGRESS_MIN_ITEMS:
            from tqdm.auto import tqdm

            progress = tqdm(total=len(todo), desc="embedding", unit="text")
        max_inputs = model.capabilities.limits.max_inputs_per_request
        if options.batch_size:
            max_inputs = min(max_inputs or options.batch_size, options.batch_size)
        executor = Executor(
            model,
            role,
            work,
            report,
            pacer=state.pacer,
            sizer=state.sizer,
            settings=policy.Settings(
                max_retries=options.max_retries,
                rate_limit_timeout=options.rate_limit_timeout,
                truncate=options.truncate,
                max_tokens_per_input=model.capabilities.limits.max_tokens_per_input,
            ),
            provider_dimension=provider_dimension,
            max_inputs=max_inputs,
            on_done=store,
        )
        try:
            failures = await executor.run(sorted(todo, key=lambda i: -work.tokens[i]))
        finally:
            if progress is not None:
                progress.close()

    vectors = rows.result(failed=list(failures))
    if repeats:
        vectors[list(repeats)] = vectors[list(repeats.values())]
    for index, first in repeats.items():
        report.items[index].failed = report.items[first].failed
        if first in failures:
            failures[index] = failures[first]
    if provider_codes_wanted:
        vectors = np.nan_to_num(vectors, nan=0.0).astype(DTYPES[precision])
    elif precision != "float32" and not floats:
        ranges = await _calibration_ranges(model, state) if precision in CALIBRATED else None
        vectors = quantize(vectors, precision, ranges)
    if failures:
        raise EmbeddingJobError(failures, vectors, report)
    return EmbeddingResult(vectors, report)


async def _calibration_ranges(model: ProviderModel, state: ModelState) -> Vectors:
    """The int8/uint8 ranges of a model quantized here, measured once per model object from
    the float vectors of its calibration texts (cached like any other job's)."""
    if state.ranges is None:
        texts = model.options.calibration or builtin_calibration()
        result = await embed_job(model, texts, "document", floats=True)
        state.ranges = calibrated_ranges(result.vectors)
    return state.ranges


class _Rows:
    """The job's output matrix, written a request at a time as answers arrive (a big job holds
    its vectors once, not once per answer and again in the result)."""

    def __init__(self, count: int, width: int | None) -> None:
        self.count = count
        self.array: Vectors | None = None if width is None else self._allocate(width)
        self.filled: set[int] = set()

    def _allocate(self, width: int) -> Vectors:
        return np.empty((self.count, width), dtype=np.float32)

    def put(self, indices: list[int], vectors: Vectors) -> None:
        if self.array is None:
            self.array = self._allocate(vectors.shape[1])
        self.array[indices] = vectors
        self.filled.update(indices)

    def result(self, failed: list[int]) -> Vectors:
        """The matrix, NaN in the rows of failed inputs."""
        array = self.array if self.array is not None else self._allocate(0)
        array[failed] = np.nan
        return array


class _JobCache:
    """The cache, as one job uses it: keys on the text actually sent (cut or not), the role,
    and the model's fingerprint (provider, model, revision, endpoint, dimension, roles)."""

    def __init__(self, cache: EmbeddingCache, model: ProviderModel, role: str, work: Work):
        self.cache = cache
        info = model.info
        if info.quantized_by == "embedify":  # the float vectors, whatever codes come of them
            info = info.model_copy(
                update={"precision": "float32", "quantized_by": None, "calibration": None}
            )
        self.fingerprint = info.fingerprint()
        # A provider that cuts inputs itself is sent the full text and the truncate policy.
        self.policy = f"truncate={model.options.truncate}" if model.capabilities.truncates else ""
        self.role = role
        self.work = work
        self.write_failed = False

    def key(self, index: int) -> bytes:
        return self.cache.key(self.fingerprint, self.role, self.work.texts[index], self.policy)

    def put(self, batch: list[int], vectors: Vectors) -> None:
        """Store a finished request. A write that fails (disk full, read-only file) must not
        cost the vectors already paid for: it warns once, and the rest of this job goes on
        without the cache; the next job tries the cache again."""
        if self.write_failed:
            return
        try:
            self.cache.put_many([self.key(index) for index in batch], vectors)
        except StorageError as error:
            self.write_failed = True
            warnings.warn(
                f"{error} This job goes on without storing its vectors in the cache.",
                StorageWarning,
                stacklevel=2,
            )


def _cache(
    model: ProviderModel,
    unique: list[int],
    work: Work,
    role: str,
    output_dimension: int | None,
    rows: _Rows,
    report: Report,
) -> _JobCache | None:
    """Open the cache when the model has one, and take what it holds into ``rows``."""
    if not model.options.cache or not unique:
        return None
    from embedify.cache import EmbeddingCache

    cache = _JobCache(EmbeddingCache.open(model.options.cache), model, role, work)
    found = cache.cache.get_many([cache.key(index) for index in unique])
    # An entry that is empty, not finite or of another width (an older version, a broken
    # write) is a miss: the text is embedded again and its entry replaced.
    usable = {
        index: vector
        for index, vector in zip(unique, found)
        if vector is not None and len(vector) and np.isfinite(vector).all()
    }
    widths = Counter(len(vector) for vector in usable.values())
    width = output_dimension or (widths.most_common(1)[0][0] if widths else 0)
    hits = [(index, vector) for index, vector in usable.items() if len(vector) == width]
    if hits:
        rows.put([index for index, _ in hits], np.stack([vector for _, vector in hits]))
    for index, _ in hits:
        report.items[index].cached = True
    return cache
