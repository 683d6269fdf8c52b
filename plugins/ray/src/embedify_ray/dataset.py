"""Ray Data: one model per actor, loaded once; a key's rate limits shared by the actors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedify.errors import ConfigurationError
from embedify.options import RemoteOptions
from embedify_ray.arrow import add_embeddings

if TYPE_CHECKING:
    import pyarrow as pa
    import ray.data

    from embedify import EmbeddingModel
    from embedify.protocol import Role

#: Rate budgets that belong to the API key, so the actors share them: each option and the kind
#: of capacity the shared budget keeps for it.
SHARED_BUDGETS = {"requests_per_minute": "requests", "tokens_per_minute": "tokens"}
#: Remote models wait on the network; the engine in each actor already keeps many requests in
#: flight, so a few light actors are enough.
REMOTE_ACTORS = 4
REMOTE_CPUS_PER_ACTOR = 0.5
#: What a Ray Data read task (and most other tasks) asks for. Ray never oversubscribes CPUs, so
#: a pool that reserves every CPU starves the reads that feed it and the job hangs forever.
READ_TASK_CPUS = 1.0
RAY_CPU_UNITS = 10_000


@dataclass(frozen=True)
class ActorPlan:
    """How many embedding actors to start, what each reserves, and the options each gets."""

    actors: int
    num_cpus: float
    num_gpus: float
    options: dict[str, Any] = field(default_factory=dict)
    #: Remote models on several actors: the budget they lease from (per minute, by kind; the
    #: server's limits join it once announced). ``None``: each actor paces on its own.
    shared_budget: dict[str, float] | None = None


def plan_actors(
    *,
    remote: bool,
    uses_gpu: bool,
    cluster: Mapping[str, float],
    options: Mapping[str, Any],
    actors: int | None = None,
    reserved_cpus: float = READ_TASK_CPUS,
) -> ActorPlan:
    """Size the actor pool from the cluster's resources.

    Local models get one actor per GPU when they run on CUDA, else one per CPU. Remote models
    get a few light actors which, when there are several, lease their capacity from one shared
    budget: the key's ``requests_per_minute``/``tokens_per_minute`` and the limits its server
    announces, so N actors together stay under the key's limit instead of each spending all of
    it (see :mod:`embedify_ray.budget`). The pool reserves at most the cluster's CPUs less
    ``reserved_cpus``, left to the dataset's other operators (a read task needs one): with
    fewer CPUs than that the actors reserve none and share the CPUs with those tasks instead
    of starving them.
    """
    if actors is not None and actors < 1:
        raise ConfigurationError(f"actors={actors}: start at least one actor.")
    cpus, gpus = float(cluster.get("CPU", 1.0)), float(cluster.get("GPU", 0.0))
    if uses_gpu:
        if gpus < 1:
            raise ConfigurationError(
                "the model runs on CUDA but the Ray cluster has no GPU; add a GPU node or pass "
                "device='cpu'."
            )
        count, num_cpus, num_gpus = actors or int(gpus), 1.0, 1.0
    elif remote:
        count = actors or max(1, min(REMOTE_ACTORS, int(cpus)))
        num_cpus, num_gpus = REMOTE_CPUS_PER_ACTOR, 0.0
    else:
        count = actors or max(1, int(cpus - reserved_cpus))
        num_cpus, num_gpus = cpus, 0.0  # the actors share what the cap below leaves
    free_per_actor = max(0.0, cpus - reserved_cpus) / count
    # Rounded down to Ray's precision (0.0001 CPU), so the pool never takes more than is free.
    num_cpus = math.floor(min(num_cpus, free_per_actor) * RAY_CPU_UNITS) / RAY_CPU_UNITS
    if not remote or count == 1:
        return ActorPlan(count, num_cpus, num_gpus, dict(options))
    own = {name: value for name, value in options.items() if name not in SHARED_BUDGETS}
    shared = {
        kind: float(options[name])
        for name, kind in SHARED_BUDGETS.items()
        if options.get(name) is not None
    }
    return ActorPlan(count, num_cpus, num_gpus, own, shared)


def runs_remotely(model: EmbeddingModel) -> bool:
    return isinstance(model.options, RemoteOptions)


def wants_gpu(model: EmbeddingModel, cluster: Mapping[str, float]) -> bool:
    device = str(getattr(model.options, "device", "cpu"))
    if device.startswith("cuda"):
        return True
    return device == "auto" and cluster.get("GPU", 0.0) >= 1 and not runs_remotely(model)


def plan_for(
    model: str | None,
    options: Mapping[str, Any],
    cluster: Mapping[str, float],
    actors: int | None,
    reserved_cpus: float = READ_TASK_CPUS,
) -> tuple[ActorPlan, EmbeddingModel]:
    """Build the model once in the driver (errors surface here, not in an actor; a local
    model's ONNX graph is built once) and plan its actors. Returns the plan and the driver's
    model, whose info (fingerprint, limits) the actors' models share."""
    from embedify import get_model

    probe = get_model(model, **options)
    plan = plan_actors(
        remote=runs_remotely(probe),
        uses_gpu=wants_gpu(probe, cluster),
        cluster=cluster,
        options=options,
        actors=actors,
        reserved_cpus=reserved_cpus,
    )
    return plan, probe


class BatchEmbedder:
    """One model per actor, built once: Ray Data's class-based UDF (``__call__``), and the
    actor behind ``embed-dataset --ray`` (``embed``, which knows where its part starts)."""

    def __init__(
        self,
        model: str | None,
        column: str,
        output_column: str,
        role: Role,
        options: dict[str, Any],
        budget: Any = None,
    ) -> None:
        """``budget``: the handle of the job's :class:`~embedify_ray.leasing.BudgetKeeper`,
        when the actors share one."""
        from embedify import get_model

        self.model = get_model(model, **options)
        self.column, self.output_column, self.role = column, output_column, role
        if budget is not None:
            from embedify_ray.leasing import RayBudgetLink, share_budget

            share_budget(self.model, RayBudgetLink(budget))

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.embed(batch)

    def embed(self, table: pa.Table, first_row: int | None = None) -> pa.Table:
        """``table`` with its embeddings; errors name rows counted from ``first_row`` (when
        known)."""
        return add_embeddings(
            table, self.model, self.column, self.output_column, self.role, first_row=first_row
        )


def embed_dataset(
    ds: ray.data.Dataset,
    model: str = "local",
    column: str = "text",
    output_column: str = "embedding",
    *,
    role: Role = "document",
    actors: int | None = None,
    rows_per_call: int = 1024,
    **options: Any,
) -> ray.data.Dataset:
    """``ds`` with ``output_column`` holding each row's embedding (``fixed_size_list<float32>``).

    Runs ``map_batches`` over an actor pool sized from the cluster (see :func:`plan_actors`);
    each actor loads the model once and sends ``rows_per_call`` rows at a time through
    embedify's engine, which plans the requests. Options are the model's options
    (``dimensions``, ``batch_size`` per request, ``requests_per_minute``, ...).
    """
    from embedify_ray.cluster import connect

    ray = connect(None)
    plan, _ = plan_for(model, options, ray.cluster_resources(), actors)
    return ds.map_batches(
        BatchEmbedder,
        fn_constructor_kwargs={
            "model": model,
            "column": column,
            "output_column": output_column,
            "role": role,
            "options": plan.options,
            "budget": keeper_for(plan),
        },
        batch_format="pyarrow",
        batch_size=rows_per_call,
        compute=ray.data.ActorPoolStrategy(size=plan.actors),
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus or None,
        udf_modifying_row_count=False,
    )


def keeper_for(plan: ActorPlan) -> Any:
    """The handle of a new budget actor when ``plan``'s actors share a budget, else ``None``."""
    if plan.shared_budget is None:
        return None
    from embedify_ray.leasing import start_keeper

    return start_keeper(plan.shared_budget)
