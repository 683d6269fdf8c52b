"""How a command fails: one ``Error:`` line a user can act on, and the exit status for it."""

from __future__ import annotations

import os

import click


class UsageFailure(click.ClickException):
    """A wrong value on the command line: one ``Error:`` line, exit status 2, no usage text."""

    exit_code = 2


#: The exit status of a command stopped by Ctrl-C, as shells report a process killed by SIGINT.
INTERRUPTED = 130


def one_line(text: str) -> str:
    """``text`` on one line, as an ``Error:`` or ``warning:`` line shows it."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def explain(error: Exception) -> str | None:
    """The one line a user needs for an error they can fix, or None for a bug."""
    from embedify.errors import EmbeddingJobError, EmbedifyError

    if isinstance(error, EmbeddingJobError):
        reasons = list(dict.fromkeys(str(e) for e in error.failures.values()))
        more = f" (and {len(reasons) - 1} other errors; --debug shows all)" if reasons[1:] else ""
        return one_line(
            f"{len(error.failures)} of {len(error.partial)} inputs failed: {reasons[0]}{more}"
        )
    if isinstance(error, EmbedifyError):
        return one_line(str(error))
    if isinstance(error, OSError):
        return one_line(str(error))
    return None


def debugging(ctx: click.Context) -> bool:
    """Whether the user asked for tracebacks (``--debug`` or ``EMBEDIFY_DEBUG``)."""
    return bool(ctx.find_root().params.get("debug")) or os.environ.get(
        "EMBEDIFY_DEBUG", ""
    ) not in ("", "0")
