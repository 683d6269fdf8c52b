"""``embedify export onnx MODEL OUT``: added to the embedify CLI by this plugin."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def export() -> None:
    """Export models to other runtimes."""


def local_model_id(name: str) -> str:
    """The model id ``get_model`` would give the local provider for ``name``: pack aliases,
    ``local``, ``local:<id>``, hub ids and folders (a name another provider claims is refused)."""
    from embedify.errors import UnknownModelError
    from embedify.registry import registry

    try:
        provider, model_id = registry.resolve(name)
    except UnknownModelError:  # a bare hub id or folder: what "local:<name>" means
        provider, model_id = registry.resolve(f"local:{name}")
    if provider.name != "local" or model_id is None:
        raise click.BadParameter(
            f"{name!r} is a {provider.name!r} model; only local models export to ONNX",
            param_hint="MODEL",
        )
    return model_id


@export.command("onnx")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--quantize",
    type=click.Choice(["int8"]),
    default=None,
    help="Also write model_int8.onnx (int8 weights, calibrated, per channel); "
    "local:OUT then runs it.",
)
def onnx(model: str, out: Path, quantize: str | None) -> None:
    """Write an ONNX model folder for MODEL into OUT.

    MODEL is any name get_model("local:...") accepts: local, a pack alias such as
    all-MiniLM-L6-v2, a Hugging Face id in the cache, or a folder. Use the result with
    get_model("local:OUT"): it runs on onnxruntime without torch.
    """
    from embedify_huggingface.export import export_onnx
    from embedify_huggingface.folder import locate

    written = export_onnx(locate(local_model_id(model)).path, out, quantize=quantize)
    if quantize == "int8":
        click.echo(
            f"wrote {written} (model.onnx, model_int8.onnx): local:{written} runs "
            "model_int8.onnx; with dtype='float32' it runs model.onnx"
        )
    else:
        click.echo(f"wrote {written}")
