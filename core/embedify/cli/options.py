"""What several commands read the same way: ``-m``, ``-o``, the model they name, the user
config. Plugins' commands (``register_commands``) use these too, through ``embedify.cli``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from embedify.cli.failures import UsageFailure, debugging, one_line

if TYPE_CHECKING:
    from embedify.config import UserConfig
    from embedify.model import EmbeddingModel

# embedify.model.ROLES, spelled out so that --help does not import numpy and pydantic.
ROLES = ("document", "query", "classification", "clustering")


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
        if debugging(click.get_current_context()):
            raise
        raise UsageFailure(one_line(str(error))) from error


def require_text(text: str, what: str) -> None:
    """An empty or blank text argument is a usage error naming it."""
    if not text.strip():
        raise UsageFailure(f"{what} is empty: give some text")


def user_config() -> UserConfig:
    """The user config; a broken file is the user's setting to fix, like a bad option."""
    from embedify.config import load_user_config
    from embedify.errors import ConfigurationError

    try:
        return load_user_config()
    except ConfigurationError as error:
        raise UsageFailure(one_line(str(error))) from error
