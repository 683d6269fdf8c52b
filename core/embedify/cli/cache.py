"""``embedify cache info`` and ``embedify cache clear``: what embedify keeps in its cache
folder."""

from __future__ import annotations

from pathlib import Path

import click

from embedify.cli.failures import explain


@click.group()
def cache() -> None:
    """Inspect or clear what embedify keeps in its cache folder."""


@cache.command("info")
@click.option(
    "--path", type=click.Path(dir_okay=False), help="Cache file (default: the user cache)."
)
def cache_info(path: str | None) -> None:
    """Print the embedding cache, the ONNX graph cache and the search collections (reading
    only: a cache that does not exist yet is not created)."""
    from embedify.cache import default_cache_path, read_cache_stats
    from embedify.collection import read_collection_info
    from embedify.config import cache_dir

    store = Path(path).expanduser().resolve() if path else default_cache_path()
    stats = read_cache_stats(store)
    if stats is None:
        click.echo(f"embeddings: {store}: none yet")
    else:
        click.echo(f"embeddings: {store}: {stats['entries']} entries, {_megabytes(stats['bytes'])}")
    if path:
        return
    onnx = cache_dir() / "onnx"
    graphs = sorted(p for p in onnx.iterdir() if p.is_dir()) if onnx.is_dir() else []
    size = sum(f.stat().st_size for g in graphs for f in g.rglob("*") if f.is_file())
    click.echo(f"onnx graphs: {onnx}: {len(graphs)} models, {_megabytes(size)}")
    folder = cache_dir() / "collections"
    files = sorted(folder.glob("*.sqlite3")) if folder.is_dir() else []
    click.echo(f"collections: {folder}: {len(files)}")
    for file in files:
        try:
            info = read_collection_info(file)
        except Exception as error:  # one damaged file must not hide the others
            click.echo(f"    {file.name}: {explain(error) or error}")
            continue
        click.echo(
            f"    {file.name}: {info.items} items, {info.fingerprint}, {_megabytes(info.bytes)}"
        )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@cache.command("clear")
@click.option(
    "--path", type=click.Path(dir_okay=False), help="Cache file (default: the user cache)."
)
def cache_clear(path: str | None) -> None:
    """Delete every cached embedding (the ONNX graphs and collections stay)."""
    from embedify.cache import EmbeddingCache

    store = EmbeddingCache.open(Path(path) if path else True)
    click.echo(f"removed {store.clear()} entries from {store.path}")
