"""embedify plugin: embed Ray Data datasets and large files.

``embed_dataset`` adds an embedding column to a ``ray.data.Dataset``; the ``embedify
embed-dataset`` command embeds a Parquet or JSONL file into Parquet parts, in-process or on a Ray
cluster. This module stays light: pyarrow and ray load when they are used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from embedify import hookimpl

if TYPE_CHECKING:
    from embedify_ray.dataset import embed_dataset
    from embedify_ray.files import embed_file

__all__ = ["embed_dataset", "embed_file"]


def __getattr__(name: str) -> Any:
    if name == "embed_dataset":
        from embedify_ray.dataset import embed_dataset

        return embed_dataset
    if name == "embed_file":
        from embedify_ray.files import embed_file

        return embed_file
    raise AttributeError(f"module 'embedify_ray' has no attribute {name!r}")


@hookimpl
def register_commands(cli: Any) -> None:
    from embedify_ray.cli import batches_group, embed_dataset_command

    cli.add_command(embed_dataset_command)
    cli.add_command(batches_group)
