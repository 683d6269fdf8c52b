"""``embedify embed-dataset IN OUT`` and ``embedify batches``: added to the embedify CLI by this
plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from embedify.bulk import BatchAPI, Price
from embedify.bulk.manifest import Manifest
from embedify.cli import (
    UsageFailure,
    load_model,
    model_option,
    options_option,
    parse_options,
)
from embedify.errors import ConfigurationError


@click.command("embed-dataset")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--column", default="text", show_default=True, help="The text column to embed.")
@click.option("--output-column", default="embedding", show_default=True)
@model_option
@options_option
@click.option(
    "--role",
    type=click.Choice(["document", "query", "classification", "clustering"]),
    default="document",
    show_default=True,
)
@click.option("--part-rows", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Embed on Ray: alone, a local cluster; with ADDRESS, a running one (ray://... or "
    "host:port).",
)
@click.option(
    "--actors", type=click.IntRange(min=1), default=None, help="Ray actors to start (with --ray)."
)
@click.option(
    "--via",
    type=click.Choice(["online", "batch"]),
    default="online",
    show_default=True,
    help="online: the embeddings endpoint; batch: the provider's batch API (OpenAI: half the "
    "price, within 24 hours), writing the same parts.",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    metavar="S",
    help="Seconds between two looks at the batches (with --via batch).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the batch plan and its price online and in batches; send nothing.",
)
@click.option(
    "--price",
    type=(click.FloatRange(min=0), click.FloatRange(min=0)),
    default=None,
    metavar="ONLINE BATCH",
    help="US dollars per million tokens, online and in batches, instead of the plugin's table.",
)
def embed_dataset_command(
    input_path: Path,
    output: Path,
    column: str,
    output_column: str,
    model_name: str | None,
    model_options: tuple[str, ...],
    role: str,
    part_rows: int,
    ray_address: str | None,
    actors: int | None,
    via: str,
    poll_interval: float,
    dry_run: bool,
    price: tuple[float, float] | None,
) -> None:
    """Embed COLUMN of a Parquet or JSONL file IN into Parquet parts under the folder OUT.

    Streams the input part by part; a rerun skips the parts already written. On one machine
    this needs pyarrow only; --ray needs embedify-ray's cluster extra (Ray).
    """
    from embedify_ray.batching import batch_api_for, dry_run_plan
    from embedify_ray.files import embed_file

    if actors is not None and ray_address is None:
        raise UsageFailure(
            f"--actors {actors} sizes the actor pool on Ray: add --ray (a local Ray cluster) "
            "or --ray ADDRESS, or leave --actors out"
        )

    batch = via == "batch" or dry_run
    if batch and (ray_address is not None or actors is not None):
        raise UsageFailure(
            "a batch job runs at the provider: leave out --ray and --actors with --via batch "
            "or --dry-run"
        )
    model = load_model(model_name, model_options)  # a wrong name or option: exit 2
    prices = None if price is None else Price(online=price[0], batch=price[1])
    if batch:
        try:
            api = batch_api_for(model, prices)
        except ConfigurationError as error:
            raise UsageFailure(str(error)) from None
    if dry_run:
        click.echo(dry_run_plan(input_path, model, api, column, output_column, part_rows).summary())
        return
    if batch:
        report = embed_file(
            input_path,
            output,
            model,
            column=column,
            output_column=output_column,
            role=role,  # type: ignore[arg-type]
            part_rows=part_rows,
            via="batch",
            poll_interval=poll_interval,
            price=prices,
        )
        click.echo(report.summary())
        return
    layout: dict[str, Any] = {
        "column": column,
        "output_column": output_column,
        "role": role,
        "part_rows": part_rows,
        "show_progress": True,
    }
    if ray_address is None:
        report = embed_file(input_path, output, model, **layout)
    else:  # each actor builds its own model, from the name and options
        options = parse_options(model_options)
        report = embed_file(
            input_path,
            output,
            model_name,
            ray_address=ray_address,
            actors=actors,
            **layout,
            **options,
        )
    click.echo(report.summary())


@click.group("batches")
def batches_group() -> None:
    """Inspect or cancel the batches of an `embed-dataset --via batch` job in OUT.

    Give the job's -m and -o options again: they say which account the batches belong to.
    """


def _job_batches(output: Path) -> Manifest:
    from embedify.bulk.manifest import BATCH_MANIFEST

    if not (output / BATCH_MANIFEST).exists():
        raise UsageFailure(
            f"{output} holds no batch job (no {BATCH_MANIFEST}); give the OUT of "
            "an `embed-dataset --via batch` run"
        )
    return Manifest.open(output)


def _api(model_name: str | None, model_options: tuple[str, ...]) -> BatchAPI:
    from embedify_ray.batching import batch_api_for

    try:
        return batch_api_for(load_model(model_name, model_options))
    except ConfigurationError as error:
        raise UsageFailure(str(error)) from None


_output_argument = click.argument(
    "output", metavar="OUT", type=click.Path(file_okay=False, exists=True, path_type=Path)
)


@batches_group.command("list")
@_output_argument
@model_option
@options_option
def batches_list(output: Path, model_name: str | None, model_options: tuple[str, ...]) -> None:
    """One line per batch: its id, state at the provider, and requests done and failed."""
    manifest = _job_batches(output)
    api = _api(model_name, model_options)
    for record in manifest.batches:
        if record.batch_id is None:
            click.echo(
                f"{record.index:4d}  (not created: {record.stage})  {len(record.requests)} requests"
            )
            continue
        batch = api.retrieve(record.batch_id)
        click.echo(
            f"{record.index:4d}  {batch.id}  {batch.status:<11} {batch.completed}/{batch.total} "
            f"done, {batch.failed} failed"
        )


@batches_group.command("status")
@_output_argument
@model_option
@options_option
def batches_status(output: Path, model_name: str | None, model_options: tuple[str, ...]) -> None:
    """The job in one line: batches by state, requests sent and failed, parts written."""
    manifest = _job_batches(output)
    api = _api(model_name, model_options)
    states: dict[str, int] = {}
    for record in manifest.batches:
        status = api.retrieve(record.batch_id).status if record.batch_id else record.stage
        states[status] = states.get(status, 0) + 1
    parts = len(list(output.glob("part-*.parquet")))
    shown = ", ".join(f"{count} {state}" for state, count in sorted(states.items())) or "none"
    sent = sum(len(record.requests) for record in manifest.batches)
    failed = sum(record.failed for record in manifest.batches)
    click.echo(
        f"{len(manifest.batches)} batches ({shown}); {sent} requests sent in batches, {failed} "
        f"failed, {len(manifest.online)} embedded online; {parts} parts written"
    )


@batches_group.command("cancel")
@_output_argument
@model_option
@options_option
def batches_cancel(output: Path, model_name: str | None, model_options: tuple[str, ...]) -> None:
    """Cancel the job's unfinished batches; the same embed-dataset command resumes later."""
    from embedify.bulk.runner import cancel_batches

    _job_batches(output)
    for batch in cancel_batches(_api(model_name, model_options), output):
        click.echo(f"{batch.id}: {batch.status}")
