"""``embedify embed`` (vectors for texts, files or stdin) and ``embedify similarity``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from embedify.cli.failures import UsageFailure
from embedify.cli.options import (
    ROLES,
    load_model,
    model_option,
    options_option,
    require_text,
)


@click.command()
@click.argument("texts", nargs=-1)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Embed each non-blank line of this UTF-8 file (repeatable).",
)
@click.option("--role", type=click.Choice(ROLES), default="document", show_default=True)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "npy", "csv"]),
    default="json",
    show_default=True,
)
@click.option("--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@click.option("--cache/--no-cache", default=False, help="Use the persistent cache.")
@click.option("--report", is_flag=True, help="Print the job report to stderr.")
@model_option
@options_option
def embed(
    texts: tuple[str, ...],
    files: tuple[str, ...],
    role: str,
    output_format: str,
    output: str | None,
    cache: bool,
    report: bool,
    model_name: str | None,
    model_options: tuple[str, ...],
) -> None:
    """Embed TEXTS, the lines of files, or the lines of stdin."""
    for number, text in enumerate(texts, start=1):
        require_text(text, f"text {number}")
    items = list(texts)
    for name in files:
        items += read_lines(name)
    if not texts and not files:
        if sys.stdin.isatty():  # nothing piped in: reading would wait for typing, silently
            raise click.UsageError("give TEXTS, --file FILE, or pipe lines on stdin")
        items = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not items:
        raise UsageFailure("nothing to embed: give texts, --file, or lines on stdin")
    model = load_model(model_name, model_options, cache=cache or None, show_progress=True)
    result = model.embed_with_report(items, role)  # type: ignore[arg-type]
    if report:
        click.echo(result.report.summary(), err=True)
    if output_format == "npy":
        import numpy as np

        np.save(Path(output) if output else sys.stdout.buffer, result.vectors)
        return
    if output_format == "json":
        text = json.dumps(
            [{"text": t, "embedding": v} for t, v in zip(items, result.vectors.tolist())]
        )
    else:
        text = "\n".join(",".join(f"{x:.8g}" for x in row) for row in result.vectors.tolist())
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
    else:
        click.echo(text)


@click.command()
@click.argument("a")
@click.argument("b")
@click.option(
    "--metric",
    type=click.Choice(["cosine", "dot", "euclidean"]),
    default="cosine",
    show_default=True,
    help="cosine and dot print a similarity (higher is closer); euclidean prints a distance "
    "(lower is closer).",
)
@model_option
@options_option
def similarity(
    a: str, b: str, metric: str, model_name: str | None, model_options: tuple[str, ...]
) -> None:
    """Print how similar two texts are (with --metric euclidean: how far apart)."""
    from embedify.scoring import similarity as score

    require_text(a, "text A")
    require_text(b, "text B")
    model = load_model(model_name, model_options)
    vectors = model.embed([a, b])
    if metric == "euclidean":
        click.echo("euclidean distance (lower is closer):", err=True)
    click.echo(f"{float(score(vectors[0], vectors[1], metric)):.6f}")  # type: ignore[arg-type]


def read_lines(name: str) -> list[str]:
    """The non-blank lines of a UTF-8 file; other bytes are a usage error saying how to convert."""
    data = Path(name).read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a leading BOM is not part of the first line
    except UnicodeDecodeError as error:
        raise UsageFailure(
            f"{name} is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); "
            f"convert it first, e.g. iconv -f latin1 -t utf-8 {name}"
        ) from None
    return [line for line in text.splitlines() if line.strip()]
