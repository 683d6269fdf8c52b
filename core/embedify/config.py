"""Where embedify keeps its files, and the user's default model and aliases.

The user config is a small JSON file, ``$EMBEDIFY_CONFIG_DIR/config.json`` (default
``~/.config/embedify/config.json``)::

    {"default_model": "openai:text-embedding-3-small",
     "aliases": {"small": "openai:text-embedding-3-small"},
     "providers": {"openai": "my-openai-proxy"}}

``EMBEDIFY_MODEL`` overrides ``default_model``. ``providers`` says which plugin or distribution
owns a name that several installed plugins register (``EMBEDIFY_PROVIDERS`` overrides it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from embedify.errors import ConfigurationError

BUILTIN_DEFAULT_MODEL = "local"


class UserConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_model: str | None = None
    aliases: dict[str, str] = {}
    providers: dict[str, str] = {}  # contested name -> the plugin or distribution that owns it


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
        return UserConfig.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError) as error:
        raise ConfigurationError(f"{path} is not a valid embedify config: {error}") from None


def default_model_name() -> str:
    return (
        os.environ.get("EMBEDIFY_MODEL")
        or load_user_config().default_model
        or BUILTIN_DEFAULT_MODEL
    )
