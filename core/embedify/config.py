"""Where embedify keeps its files, and the user's default model and aliases.

The user config is a small JSON file, ``$EMBEDIFY_CONFIG_DIR/config.json`` (default
``~/.config/embedify/config.json``)::

    {"default_model": "openai:text-embedding-3-small",
     "aliases": {"small": "openai:text-embedding-3-small"},
     "providers": {"openai": "my-openai-proxy"},
     "commands": {"serve": "my-serve"}}

``EMBEDIFY_MODEL`` overrides ``default_model``. ``providers`` says which plugin or distribution
owns a provider name or model alias that several installed plugins register, or that is
reserved for one of ours (first-party or built in) and that you give to a third party anyway;
``commands`` does the same for CLI commands. ``EMBEDIFY_PROVIDERS`` and ``EMBEDIFY_COMMANDS``
(``"name=distribution,..."``) override them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedify.errors import ConfigurationError

BUILTIN_DEFAULT_MODEL = "local"


@dataclass(frozen=True)
class UserConfig:
    default_model: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)  # contested name -> its owner
    commands: dict[str, str] = field(default_factory=dict)  # contested command -> its owner

    @classmethod
    def from_json(cls, data: Any) -> UserConfig:
        """Validated by hand: this runs on every command, and pydantic costs 100 ms to import."""
        if not isinstance(data, dict):
            raise ValueError("the file must hold a JSON object")
        unknown = set(data) - {"default_model", "aliases", "providers", "commands"}
        if unknown:
            raise ValueError(
                f"unknown keys {sorted(unknown)}; known: default_model, aliases, providers, "
                "commands"
            )
        default = data.get("default_model")
        if default is not None and not isinstance(default, str):
            raise ValueError("default_model must be a string")
        tables = {key: data.get(key, {}) for key in ("aliases", "providers", "commands")}
        for key, table in tables.items():
            if not isinstance(table, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in table.items()
            ):
                raise ValueError(f"{key} must map names to strings")
        return cls(
            default, dict(tables["aliases"]), dict(tables["providers"]), dict(tables["commands"])
        )


def config_dir() -> Path:
    if "EMBEDIFY_CONFIG_DIR" in os.environ:
        return Path(os.environ["EMBEDIFY_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "embedify"


def cache_dir() -> Path:
    if "EMBEDIFY_CACHE_DIR" in os.environ:
        return Path(os.environ["EMBEDIFY_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "embedify"


def load_user_config() -> UserConfig:
    path = config_dir() / "config.json"
    if not path.exists():
        return UserConfig()
    try:
        return UserConfig.from_json(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as error:  # JSONDecodeError included
        raise ConfigurationError(f"{path} is not a valid embedify config: {error}") from None


def default_model_name() -> str:
    return (
        os.environ.get("EMBEDIFY_MODEL")
        or load_user_config().default_model
        or BUILTIN_DEFAULT_MODEL
    )
