"""``embedify models``: the installed providers, their models and aliases, the default model."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from embedify.cli.options import load_model, user_config

if TYPE_CHECKING:
    from embedify.model import EmbeddingModel


@click.command()
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

    user = user_config()
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
