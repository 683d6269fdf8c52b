"""``embedify search``: semantic search over a folder of text files, kept in a collection."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import click

from embedify.cli.failures import UsageFailure, one_line
from embedify.cli.options import load_model, model_option, options_option, require_text

PREVIEW_CHARS = 600
#: Skipped files named one warning line each, at most; the summary line counts them all.
NAMED_SKIPS = 20


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as one printable line that is only its name: bytes that are not UTF-8 as
    ``\\xff``, and characters that do not print (a newline that would forge a result line, an
    escape sequence that would rewrite the terminal, a bidi override) as ``\\n``, ``\\x1b``,
    ``\\u202e``. A folder someone else wrote names its files as it likes."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def printable_text(text: str) -> str:
    """A file's text as the terminal may show it: lines kept, tabs as spaces, and every other
    control character (escape sequences, carriage returns, bidi overrides) as ``?``; the
    zero-width joiner that builds emoji stays."""
    return "".join(
        c if c == "\n" or c.isprintable() or c == "\u200d" else " " if c == "\t" else "?"
        for c in text
    )


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


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
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


@click.command()
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

    require_text(query, "QUERY")
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
        raise UsageFailure(f"--index {one_line(str(error))}") from error
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
                f"{hit.score:.3f}  {shown_path(meta['file'])}:"
                f"{meta['start_line']}-{meta['end_line']}",
                bold=True,
            )
        )
        click.echo("    " + preview(printable_text(hit.text)).replace("\n", "\n    "))
