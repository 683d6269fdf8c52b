"""``embedify embed-dataset IN OUT``: added to the embedify CLI by this plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from embedify.cli import (
    UsageFailure,
    load_model,
    model_option,
    options_option,
    parse_options,
)


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
) -> None:
    """Embed COLUMN of a Parquet or JSONL file IN into Parquet parts under the folder OUT.

    Streams the input part by part; a rerun skips the parts already written. On one machine
    this needs pyarrow only; --ray needs embedify-ray's cluster extra (Ray).
    """
    from embedify_ray.files import embed_file

    if actors is not None and ray_address is None:
        raise UsageFailure(
            f"--actors {actors} sizes the actor pool on Ray: add --ray (a local Ray cluster) "
            "or --ray ADDRESS, or leave --actors out"
        )

    model = load_model(model_name, model_options)  # a wrong name or option: exit 2
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
