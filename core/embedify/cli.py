"""The ``embedify`` command line. Plugins add subcommands through ``register_commands``.

A user's mistake prints one ``Error: ...`` line that says how to fix it. Exit statuses, the same
for every command (docs/cli.md has the table; plugin commands follow it too): 0 done; 1 the work
failed (no API key, a server that does not answer, a damaged file, a port in use); 2 the command
line is wrong (a usage error, an unknown command, model or option, a broken config file, a
command whose plugin is not installed); 130 interrupted (Ctrl-C). ``--debug`` or
``EMBEDIFY_DEBUG=1`` shows the traceback instead. Imports stay inside the commands so that
``embedify --help`` is fast.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from embedify.config import UserConfig
    from embedify.model import EmbeddingModel

# embedify.model.ROLES, spelled out so that --help does not import numpy and pydantic.
ROLES = ("document", "query", "classification", "clustering")
PREVIEW_CHARS = 600


class UsageFailure(click.ClickException):
    """A wrong value on the command line: one ``Error:`` line, exit status 2, no usage text."""

    exit_code = 2


#: The exit status of a command stopped by Ctrl-C, as shells report a process killed by SIGINT.
INTERRUPTED = 130


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _explain(error: Exception) -> str | None:
    """The one line a user needs for an error they can fix, or None for a bug."""
    from embedify.errors import EmbeddingJobError, EmbedifyError

    if isinstance(error, EmbeddingJobError):
        reasons = list(dict.fromkeys(str(e) for e in error.failures.values()))
        more = f" (and {len(reasons) - 1} other errors; --debug shows all)" if reasons[1:] else ""
        return _one_line(
            f"{len(error.failures)} of {len(error.partial)} inputs failed: {reasons[0]}{more}"
        )
    if isinstance(error, EmbedifyError):
        return _one_line(str(error))
    if isinstance(error, OSError):
        return _one_line(str(error))
    return None


def _show_warning(message: Warning | str, *args: Any, **kwargs: Any) -> None:
    click.echo(f"warning: {message}", err=True)


def _debugging(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("debug")) or os.environ.get(
        "EMBEDIFY_DEBUG", ""
    ) not in ("", "0")


class _Group(click.Group):
    """Turns user errors into one line, and adds the plugins' subcommands
    (``register_commands``) the first time they are needed."""

    _plugins_added = False

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if os.environ.get("EMBEDIFY_DEBUG", "") in ("", "0"):
            warnings.showwarning = _show_warning
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            if _debugging(ctx):
                raise
            click.echo("\nInterrupted.", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None
        except BrokenPipeError:  # the reader went away (| head): stop quietly, like cat does
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps exit from failing to flush
            raise click.exceptions.Exit(1) from None
        except Exception as error:
            message = None if _debugging(ctx) else _explain(error)
            if message is None:
                raise
            raise click.ClickException(message) from error

    def _add_plugin_commands(self) -> None:
        """Each plugin adds its commands to a group of its own; the registry then decides which
        to keep, so that no plugin replaces a built-in or first-party command (``serve``
        receives the API key) unless the user chose it. A hook that raises adds nothing."""
        if self._plugins_added:
            return
        self._plugins_added = True
        from embedify.errors import EmbedifyError
        from embedify.registry import registry

        try:
            registry.load()
        except EmbedifyError as error:  # e.g. a broken config file: help still works
            click.echo(f"warning: {_one_line(str(error))}", err=True)
        claims: list[tuple[str, str, click.Command, str | None]] = []
        for implementation in registry.plugin_manager.hook.register_commands.get_hookimpls():
            own_group = click.Group(self.name)
            try:
                implementation.function(cli=own_group)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # SystemExit too: one plugin must not stop the CLI
                status = registry.plugins.get(implementation.plugin_name)
                source = f" ({status.distribution})" if status and status.distribution else ""
                click.echo(
                    f"warning: plugin {implementation.plugin_name!r}{source} failed to add "
                    f"commands: {type(error).__name__}: {error}",
                    err=True,
                )
                continue
            for name, command in own_group.commands.items():
                claims.append((name, implementation.plugin_name, command, _command_module(command)))
        try:
            chosen = registry.settle_commands(self.commands, claims)
        except EmbedifyError as error:
            click.echo(f"warning: {_one_line(str(error))}", err=True)
            return
        self.commands.update(chosen)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            self._add_plugin_commands()
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """A command that one of our distributions adds names it and how to install it; any
        other unknown name gets a did-you-mean over the plugins' commands and ours."""
        name = click.utils.make_str(args[0])
        if (
            not ctx.resilient_parsing
            and not name.startswith("-")
            and not self.get_command(ctx, name)
        ):
            from embedify.registry import COMMAND_OWNERS, close_matches, registry

            missing = registry.missing_command(name)
            if missing:
                raise UsageFailure(missing)
            hint = close_matches(name, [*self.commands, *COMMAND_OWNERS])
            raise click.UsageError(f"No such command {name!r}.{hint}", ctx)
        return super().resolve_command(ctx, args)


def _command_module(command: object) -> str | None:
    """The module a plugin's command comes from: its callback's, else its class's."""
    callback = getattr(command, "callback", None)
    module = getattr(callback if callback is not None else type(command), "__module__", None)
    return module if isinstance(module, str) else None


# Helpers for plugins' commands (``register_commands``), so `-m` and `-o` read the same everywhere.


def model_option(function: Any) -> Any:
    """``-m/--model NAME``, passed to the command as ``model_name``."""
    return click.option(
        "-m",
        "--model",
        "model_name",
        default=None,
        help="Model name, e.g. local or openai:text-embedding-3-small "
        "(default: EMBEDIFY_MODEL, then the user config, then local).",
    )(function)


def options_option(function: Any) -> Any:
    """``-o/--option KEY=VALUE`` (repeatable), passed as ``model_options`` (``parse_options``)."""
    return click.option(
        "-o",
        "--option",
        "model_options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A model option (repeatable), e.g. -o dimensions=256; values parse as JSON when "
        "they can.",
    )(function)


def parse_options(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as model options; values parse as JSON when they can."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise UsageFailure(f"-o {pair!r} is not KEY=VALUE, e.g. -o dimensions=256")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def load_model(name: str | None, pairs: tuple[str, ...], **extra: Any) -> EmbeddingModel:
    """The model the command line names; a wrong name or option is a usage error."""
    from embedify.errors import EmbedifyError
    from embedify.registry import get_model

    options = parse_options(pairs)
    try:
        return get_model(name, **{**extra, **options})  # -o wins over the command's defaults
    except (EmbedifyError, ValueError) as error:
        if _debugging(click.get_current_context()):
            raise
        raise UsageFailure(_one_line(str(error))) from error


def _require_text(text: str, what: str) -> None:
    if not text.strip():
        raise UsageFailure(f"{what} is empty: give some text")


def _read_lines(name: str) -> list[str]:
    data = Path(name).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageFailure(
            f"{name} is not UTF-8 text (byte {data[error.start]:#04x} at offset {error.start}); "
            f"convert it first, e.g. iconv -f latin1 -t utf-8 {name}"
        ) from None
    return [line for line in text.splitlines() if line.strip()]


def _preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """``text`` cut to ``limit`` characters at the last line or sentence end that leaves at
    least half of it, else at a word boundary, with an ellipsis when anything was cut."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [head.rfind("\n")] + [head.rfind(mark) + 1 for mark in (". ", "! ", "? ")]
    cut = max(ends)
    if cut < limit // 2:
        cut = head.rfind(" ")
    if cut < limit // 2:
        cut = limit
    return head[:cut].rstrip() + " …"


@click.group(cls=_Group)
@click.version_option(package_name="embedify")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also: EMBEDIFY_DEBUG=1).")
def cli(debug: bool) -> None:
    """Text embeddings from any provider, with one engine for limits, retries and caching."""


@cli.command()
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
        _require_text(text, f"text {number}")
    items = list(texts)
    for name in files:
        items += _read_lines(name)
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


@cli.command()
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

    _require_text(a, "text A")
    _require_text(b, "text B")
    model = load_model(model_name, model_options)
    vectors = model.embed([a, b])
    if metric == "euclidean":
        click.echo("euclidean distance (lower is closer):", err=True)
    click.echo(f"{float(score(vectors[0], vectors[1], metric)):.6f}")  # type: ignore[arg-type]


def _user_config() -> UserConfig:
    """The user config; a broken file is the user's setting to fix, like a bad option."""
    from embedify.config import load_user_config
    from embedify.errors import ConfigurationError

    try:
        return load_user_config()
    except ConfigurationError as error:
        raise UsageFailure(_one_line(str(error))) from error


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the capabilities as JSON.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Also build the default model and show what it runs: weights, runtime, precision.",
)
def models(as_json: bool, verbose: bool) -> None:
    """List installed providers, their known models, aliases and the default model."""
    from embedify.config import BUILTIN_DEFAULT_MODEL, config_dir
    from embedify.model import public_name
    from embedify.registry import registry

    user = _user_config()
    registry.load()
    if os.environ.get("EMBEDIFY_MODEL"):
        default = {"model": public_name(os.environ["EMBEDIFY_MODEL"]), "from": "EMBEDIFY_MODEL"}
    elif user.default_model:
        default = {
            "model": public_name(user.default_model),
            "from": str(config_dir() / "config.json"),
        }
    else:
        default = {"model": BUILTIN_DEFAULT_MODEL, "from": "built in"}
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
                {
                    "default": default,
                    "providers": rows,
                    "aliases": {a: t for a, (t, _) in registry.aliases.items()},
                    "user_aliases": {a: public_name(t) for a, t in user.aliases.items()},
                },
                indent=2,
            )
        )
        return
    click.echo(f"default model: {default['model']} (from {default['from']})")
    for row in rows:
        extra = f" (aliases: {', '.join(row['aliases'])})" if row["aliases"] else ""
        click.echo(
            f"{row['provider']}{extra}  [plugin {row['plugin']}]  default: {row['default_model']}"
        )
        for model_id in row["models"] or ():
            click.echo(f"    {row['provider']}:{model_id}")
    for alias, (target, plugin) in sorted(registry.aliases.items()):
        click.echo(f"alias {alias} -> {target}  [plugin {plugin}]")
    for alias, target in sorted(user.aliases.items()):
        click.echo(f"alias {alias} -> {public_name(target)}  [user config]")
    if verbose:
        _describe_model(load_model(None, ()))


def _describe_model(model: EmbeddingModel) -> None:
    """The default model as built: its identity, what its vectors are, and its own details."""
    info = model.info
    click.echo(f"\n{info.provider}:{info.model_id}")
    facts = {
        "dimension": str(info.output_dimension or "learned from the first answer"),
        "compute": info.compute or "float32 (exact)",
        "precision": info.precision
        + (f" (quantized by {info.quantized_by})" if info.quantized_by else ""),
        "fingerprint": info.fingerprint(),
        **model.details(),
    }
    for name, value in facts.items():
        click.echo(f"    {name}: {value}")


@cli.command()
def plugins() -> None:
    """Show each plugin (its distribution, version, the names it provides, names it lost or was
    refused, and any load error), then who provides each name and whether it is ours."""
    from embedify.registry import CHOICE_VARIABLES, registry

    _user_config()
    registry.load()
    cli._add_plugin_commands()
    conflicts = [*registry.conflicts, *registry.command_conflicts]
    overrides = [*registry.overrides, *registry.command_overrides]
    for status in sorted(registry.plugins.values(), key=lambda s: s.name):
        state = f"ERROR: {status.error}" if status.error else "ok"
        source = " ".join(filter(None, [status.distribution, status.version]))
        provided = [
            n for n, p in sorted(registry.provider_names.items()) if p.plugin == status.name
        ]
        provided += [
            a for a, (_, plugin) in sorted(registry.aliases.items()) if plugin == status.name
        ]
        click.echo(f"{status.name}{f' ({source})' if source else ''}: {state}")
        if provided:
            click.echo(f"    provides: {', '.join(provided)}")
        owner = status.distribution or status.name
        for conflict in conflicts:
            if conflict.loser_plugin != status.name:
                continue
            choose = f"{CHOICE_VARIABLES[conflict.kind]}='{conflict.name}={owner}'"
            if conflict.refused:
                click.echo(
                    f"    refused {conflict.kind} {conflict.name!r}: {conflict.reason}; "
                    f"allow with {choose}"
                )
            else:
                click.echo(
                    f"    lost {conflict.kind} {conflict.name!r} to {conflict.winner} "
                    f"({conflict.reason}); choose with {choose}"
                )
        for override in overrides:
            if override.plugin == status.name:
                click.echo(
                    f"    holds {override.kind} {override.name!r} instead of {override.owner} "
                    "(your choice)"
                )
        for problem in status.problems:
            click.echo(f"    refused {problem}")
    click.echo("names:")
    for (kind, name), (who, origin) in sorted(registry.owners.items()):
        click.echo(f"    {kind} {name}: {who}, {origin}")


@cli.group()
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
            click.echo(f"    {file.name}: {_explain(error) or error}")
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


#: Skipped files named one warning line each, at most; the summary line counts them all.
NAMED_SKIPS = 20


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as it can always be printed: bytes that are not UTF-8 as ``\\xff`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _warn_skipped(root: Path, skips: list[tuple[Path, str]]) -> None:
    """One warning line per skipped file (its path relative to ``root``), the first
    ``NAMED_SKIPS`` of them, then one line saying the rest go unnamed."""
    for path, reason in skips[:NAMED_SKIPS]:
        relative = path.relative_to(root) if path.is_relative_to(root) else path
        click.echo(f"warning: skipped {shown_path(relative)}: {reason}", err=True)
    if len(skips) > NAMED_SKIPS:
        click.echo(f"warning: {len(skips) - NAMED_SKIPS} more files skipped", err=True)


def _skipped_summary(skipped: Counter[str]) -> str:
    if not skipped:
        return ""
    reasons = ", ".join(f"{count} {reason}" for reason, count in skipped.most_common())
    return f"skipped {sum(skipped.values())} files ({reasons})"


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("query")
@click.option(
    "-k",
    "--top",
    "k",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many passages to print.",
)
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Collection file (default: one per folder and model in the user cache).",
)
@click.option(
    "--max-words", default=120, show_default=True, type=click.IntRange(min=1), help="Passage size."
)
@click.option("--follow-links", is_flag=True, help="Follow symbolic links that lead out of PATH.")
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@model_option
@options_option
def search(
    path: Path,
    query: str,
    k: int,
    index_path: Path | None,
    max_words: int,
    follow_links: bool,
    as_json: bool,
    model_name: str | None,
    model_options: tuple[str, ...],
) -> None:
    """Semantic search over the text files under PATH.

    Files are cut into passages and embedded into a collection; the next run re-embeds only
    passages that changed. Hidden files and folders are ignored.
    """
    import hashlib

    from embedify.chunking import chunk_text, read_text_files
    from embedify.collection import Collection, Item, ModelMismatchError, content_hash
    from embedify.config import cache_dir

    _require_text(query, "QUERY")
    started = time.perf_counter()
    root = path.resolve()
    skipped: Counter[str] = Counter()
    items: dict[str, Item] = {}
    files = 0
    skips: list[tuple[Path, str]] = []  # named after the model loads: usage errors first
    files_and_texts = read_text_files(
        root,
        follow_links=follow_links,
        skipped=skipped,
        on_skip=lambda file, reason: skips.append((file, reason)),
    )
    for file, text in files_and_texts:
        files += 1
        relative = str(file.relative_to(root)) if file != root else file.name
        for passage in chunk_text(text, max_words):
            item_id = f"{relative}#{content_hash(passage.text)[:16]}"
            items[item_id] = Item(
                item_id,
                passage.text,
                {"file": relative, "start_line": passage.start_line, "end_line": passage.end_line},
            )
    if not items:
        why = _skipped_summary(skipped) or "hidden files and folders are ignored"
        found = f"{files} text files hold no text" if files else "no text files"
        _warn_skipped(root, skips)
        raise click.ClickException(f"nothing to search in {shown_path(path)}: {found}; {why}")
    model = load_model(model_name, model_options, cache=True, show_progress=True)
    if index_path is None:
        identity = os.fsencode(root) + b"\0" + model.info.fingerprint().encode()
        key = hashlib.sha256(identity).hexdigest()[:20]
        index_path = cache_dir() / "collections" / f"{key}.sqlite3"
    try:
        collection = Collection(index_path, model)
    except ModelMismatchError as error:
        raise UsageFailure(f"--index {_one_line(str(error))}") from error
    _warn_skipped(root, skips)
    stale = collection.ids() - items.keys()
    collection.delete(stale)
    result = collection.upsert(items.values())
    hits = collection.query(query, k)
    summary = (
        f"{files} files, {len(items)} passages ({result.written} new or changed: "
        f"{result.embedded} embedded now, {result.cached} from the cache; {len(stale)} removed) "
        f"in {time.perf_counter() - started:.2f}s"
    )
    click.echo("; ".join(filter(None, [summary, _skipped_summary(skipped)])), err=True)
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
        click.echo("    " + _preview(hit.text).replace("\n", "\n    "))


__all__ = ["cli"]
