"""``embedify export onnx MODEL OUT``: added to the embedify CLI by this plugin."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def export() -> None:
    """Export models to other runtimes."""


@export.command("onnx")
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--quantize",
    type=click.Choice(["int8"]),
    default=None,
    help="Also write model_int8.onnx (dynamic int8, per channel).",
)
def onnx(model: str, out: Path, quantize: str | None) -> None:
    """Write an ONNX model folder for MODEL (a folder or Hugging Face id) into OUT.

    Use it with get_model("local:OUT"): it runs on onnxruntime without importing torch.
    """
    from embedify_huggingface.export import export_onnx
    from embedify_huggingface.folder import locate

    written = export_onnx(locate(model.removeprefix("local:")), out, quantize=quantize)
    click.echo(f"wrote {written}")
