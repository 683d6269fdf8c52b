"""``embedify embed-dataset IN OUT``: added to the embedify CLI by this plugin."""

from __future__ import annotations

import json
from pathlib import Path

import click


def _options(pairs: tuple[str, ...]) -> dict[str, object]:
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(raw)
        except json.JSONDecodeError:
            options[key] = raw
    return options


@click.command("embed-dataset")
@click.argument("input_path", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("output", metavar="OUT", type=click.Path(file_okay=False, path_type=Path))
@click.option("--column", default="text", show_default=True, help="The text column to embed.")
@click.option("--output-column", default="embedding", show_default=True)
@click.option("-m", "--model", "model_name", default=None, help="Model name (default: local).")
@click.option("-o", "--option", "pairs", multiple=True, metavar="KEY=VALUE", help="Model option.")
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
@click.option("--actors", type=click.IntRange(min=1), default=None, help="Ray actors to start.")
def embed_dataset_command(
    input_path: Path,
    output: Path,
    column: str,
    output_column: str,
    model_name: str | None,
    pairs: tuple[str, ...],
    role: str,
    part_rows: int,
    ray_address: str | None,
    actors: int | None,
) -> None:
    """Embed COLUMN of a Parquet or JSONL file IN into Parquet parts under the folder OUT.

    Streams the input part by part; a rerun skips the parts already written.
    """
    from embedify.errors import EmbedifyError
    from embedify_ray.files import embed_file

    try:
        report = embed_file(
            input_path,
            output,
            model_name,
            column=column,
            output_column=output_column,
            role=role,  # type: ignore[arg-type]
            part_rows=part_rows,
            ray_address=ray_address,
            actors=actors,
            show_progress=True,
            **_options(pairs),
        )
    except EmbedifyError as error:
        raise click.ClickException(str(error).splitlines()[0]) from None
    click.echo(report.summary())
