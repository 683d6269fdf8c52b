"""The engine's per-model state: one Pacer per model, however many threads make its first call
at once, dropped with the model."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref

import pytest

from embedify.engine import job
from embedify.engine.job import model_state
from embedify.fake import FakeEmbeddingModel
from embedify.model import Role, Vectors


class SlowToPrepare(FakeEmbeddingModel):
    """Holds every first call in ``prepare`` until ``callers`` of them are there."""

    def __init__(self, callers: int) -> None:
        super().__init__()
        self.gate = threading.Barrier(callers, timeout=30)

    async def prepare(self) -> None:
        await asyncio.to_thread(self.gate.wait)


def test_first_calls_racing_in_threads_share_one_pacer(monkeypatch: pytest.MonkeyPatch) -> None:
    model = SlowToPrepare(callers=4)
    made = []
    new_state = job._new_state
    monkeypatch.setattr(job, "_new_state", lambda m: made.append(new_state(m)) or made[-1])
    threads = [threading.Thread(target=model.embed, args=([f"text {i}"],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(made) == 1  # four first calls, every one past the "no state yet" check
    state = model_state(model)
    assert state is not None and state.pacer is made[0].pacer


def test_the_state_goes_with_its_model() -> None:
    model = FakeEmbeddingModel()
    model.embed(["x"])
    state = model_state(model)
    assert state is not None
    state_gone, model_gone = weakref.ref(state), weakref.ref(model)
    del model, state
    gc.collect()
    assert model_gone() is None and state_gone() is None


class CtrlCInside(FakeEmbeddingModel):
    def embed_batch(self, texts: list[str], role: Role) -> Vectors:
        raise KeyboardInterrupt


def test_ctrl_c_inside_a_model_reaches_the_caller_and_the_engine_lives_on() -> None:
    caught: list[BaseException] = []

    def call() -> None:
        try:
            CtrlCInside().embed(["a"])
        except BaseException as error:
            caught.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the caller hangs: the engine's loop died"
    assert [type(error) for error in caught] == [KeyboardInterrupt]
    assert FakeEmbeddingModel().embed(["still serving"]).shape == (1, 64)


def test_pace_with_hands_the_engine_a_pacer_before_the_first_job() -> None:
    from embedify.engine.job import pace_with
    from embedify.engine.pacing import Pacer, Ticket

    class Watched(Pacer):
        starts = 0

        def start(self, tokens: int, now: float) -> Ticket:
            Watched.starts += 1
            return super().start(tokens, now)

    def watched(pacer: Pacer) -> Pacer:
        pacer.__class__ = Watched
        return pacer

    model = FakeEmbeddingModel()
    pace_with(model, watched)
    model.embed(["one", "two"])
    state = model_state(model)
    assert state is not None and isinstance(state.pacer, Watched) and Watched.starts >= 1
    with pytest.raises(RuntimeError, match="before it"):
        pace_with(model, watched)
