"""The ``embedify`` command line. Plugins add subcommands through ``register_commands``."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from embedify.model import ROLES, Role


def _model_option(function: Any) -> Any:
    return click.option(
        "-m",
        "--model",
        "model_name",
        default=None,
        help="Model name, e.g. local or openai:text-embedding-3-small "
        "(default: EMBEDIFY_MODEL, else local).",
    )(function)


def _options_option(function: Any) -> Any:
    return click.option(
        "-o",
        "--option",
        "model_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A model option (repeatable), e.g. -o dimensions=256; values parse as JSON when "
        "they can.",
    )(function)


def _parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--option")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _load_model(name: str | None, pairs: tuple[str, ...], **extra: Any) -> Any:
    from embedify.errors import EmbedifyError
    from embedify.registry import get_model

    try:
        return get_model(name, **{**_parse_options(pairs), **extra})
    except EmbedifyError as error:
        raise click.ClickException(str(error)) from None


class _PluginGroup(click.Group):
    """Adds the plugins' subcommands (``register_commands``) the first time they are needed."""

    _plugins_added = False

    def _add_plugin_commands(self) -> None:
        if self._plugins_added:
            return
        self._plugins_added = True
        from embedify.registry import registry

        registry.load()
        for implementation in registry.plugin_manager.hook.register_commands.get_hookimpls():
            try:
                implementation.function(cli=self)
            except Exception as error:
                click.echo(
                    f"warning: plugin {implementation.plugin_name!r} failed to add commands: "
                    f"{error}",
                    err=True,
                )

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self._add_plugin_commands()
        return super().get_command(ctx, name)


@click.group(cls=_PluginGroup)
@click.version_option(package_name="embedify")
def cli() -> None:
    """Text embeddings from any provider, with one engine for limits, retries and caching."""


@cli.command()
@click.argument("texts", nargs=-1)
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Embed each line of this file (repeatable).",
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
@_model_option
@_options_option
def embed(
    texts: tuple[str, ...],
    files: tuple[str, ...],
    role: Role,
    output_format: str,
    output: str | None,
    cache: bool,
    report: bool,
    model_name: str | None,
    model_options: tuple[str, ...],
) -> None:
    """Embed TEXTS, the lines of files, or the lines of stdin."""
    items = list(texts)
    for name in files:
        items += [
            line for line in Path(name).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    if not texts and not files:
        items = [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not items:
        raise click.UsageError("nothing to embed: give texts, --file, or lines on stdin")
    model = _load_model(model_name, model_options, cache=cache or None, show_progress=True)
    result = model.embed_with_report(items, role)
    if report:
        click.echo(result.report.summary(), err=True)
    if output_format == "npy":
        target = Path(output) if output else None
        if target is None:
            np.save(sys.stdout.buffer, result.vectors)
        else:
            np.save(target, result.vectors)
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


@cli.command()
@click.argument("a")
@click.argument("b")
@click.option(
    "--metric",
    type=click.Choice(["cosine", "dot", "euclidean"]),
    default="cosine",
    show_default=True,
)
@_model_option
@_options_option
def similarity(
    a: str, b: str, metric: str, model_name: str | None, model_options: tuple[str, ...]
) -> None:
    """Print the similarity of two texts."""
    from embedify.similarity import similarity as score

    model = _load_model(model_name, model_options)
    vectors = model.embed([a, b])
    click.echo(f"{float(score(vectors[0], vectors[1], metric)):.6f}")  # type: ignore[arg-type]


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the capabilities as JSON.")
def models(as_json: bool) -> None:
    """List installed providers, their known models and aliases."""
    from embedify.registry import registry

    registry.load()
    rows = []
    for name, provider in sorted(registry.providers.items()):
        aliases = [a for a, target in registry.provider_aliases.items() if target == name]
        rows.append(
            {
                "provider": name,
                "plugin": provider.plugin,
                "default_model": provider.default_model,
                "models": list(provider.models),
                "aliases": aliases,
            }
        )
    if as_json:
        click.echo(
            json.dumps(
                {"providers": rows, "aliases": {a: t for a, (t, _) in registry.aliases.items()}},
                indent=2,
            )
        )
        return
    for row in rows:
        extra = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        click.echo(
            f"{row['provider']}{extra}  [plugin {row['plugin']}]  default: {row['default_model']}"
        )
        for model_id in row["models"] or ():
            click.echo(f"    {row['provider']}:{model_id}")
    for alias, (target, _) in sorted(registry.aliases.items()):
        click.echo(f"alias {alias} -> {target}")


@cli.command()
def plugins() -> None:
    """Show loaded plugins, their versions, providers, and any load error."""
    from embedify.registry import registry

    registry.load()
    for status in sorted(registry.plugins.values(), key=lambda s: s.name):
        state = f"ERROR: {status.error}" if status.error else "ok"
        version = f" {status.version}" if status.version else ""
        providers = ", ".join(status.providers) or "-"
        click.echo(f"{status.name}{version}: {state}; providers: {providers}")


@cli.group()
def cache() -> None:
    """Inspect or clear the persistent embedding cache."""


@cache.command("info")
@click.option(
    "--path", type=click.Path(dir_okay=False), help="Cache file (default: the user cache)."
)
def cache_info(path: str | None) -> None:
    """Print the cache's location, entries and size."""
    from embedify.cache import EmbeddingCache

    store = EmbeddingCache.open(Path(path) if path else True)
    stats = store.stats()
    click.echo(f"{store.path}: {stats['entries']} entries, {stats['bytes'] / 1e6:.1f} MB")


@cache.command("clear")
@click.option(
    "--path", type=click.Path(dir_okay=False), help="Cache file (default: the user cache)."
)
def cache_clear(path: str | None) -> None:
    """Delete every cached embedding."""
    from embedify.cache import EmbeddingCache

    store = EmbeddingCache.open(Path(path) if path else True)
    click.echo(f"removed {store.clear()} entries from {store.path}")


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("query")
@click.option("-k", "--top", "k", default=5, show_default=True, help="How many passages to print.")
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Collection file (default: one per folder and model in the user cache).",
)
@click.option("--max-words", default=120, show_default=True, help="Passage size.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@_model_option
@_options_option
def search(
    path: Path,
    query: str,
    k: int,
    index_path: Path | None,
    max_words: int,
    as_json: bool,
    model_name: str | None,
    model_options: tuple[str, ...],
) -> None:
    """Semantic search over the text files under PATH.

    Files are cut into passages and embedded into a collection; the next run re-embeds only
    passages that changed.
    """
    from embedify.chunking import chunk_text, read_text, text_files
    from embedify.collection import Collection, Item, content_hash
    from embedify.config import cache_dir

    started = time.perf_counter()
    model = _load_model(model_name, model_options, cache=True, show_progress=True)
    root = path.resolve()
    if index_path is None:
        key = hashlib.sha256(f"{root}\0{model.info.fingerprint()}".encode()).hexdigest()[:20]
        index_path = cache_dir() / "collections" / f"{key}.sqlite3"
    collection = Collection(index_path, model)
    items: list[Item] = []
    for file in text_files(root):
        text = read_text(file)
        if text is None:
            continue
        relative = str(file.relative_to(root)) if file != root else file.name
        for passage in chunk_text(text, max_words):
            items.append(
                Item(
                    f"{relative}#{content_hash(passage.text)[:16]}",
                    passage.text,
                    {
                        "file": relative,
                        "start_line": passage.start_line,
                        "end_line": passage.end_line,
                    },
                )
            )
    unique = list({item.id: item for item in items}.values())
    embedded = collection.upsert(unique)
    collection.delete(collection.ids() - {item.id for item in unique})
    hits = collection.query(query, k)
    click.echo(
        f"{len(unique)} passages ({embedded} embedded now) in {time.perf_counter() - started:.2f}s",
        err=True,
    )
    if as_json:
        click.echo(
            json.dumps(
                [{"score": h.score, "id": h.id, "text": h.text, **h.metadata} for h in hits],
                indent=2,
            )
        )
        return
    for hit in hits:
        meta = hit.metadata
        click.echo(
            click.style(
                f"{hit.score:.3f}  {meta['file']}:{meta['start_line']}-{meta['end_line']}",
                bold=True,
            )
        )
        click.echo("    " + hit.text.replace("\n", "\n    ")[:600])


__all__ = ["cli"]
