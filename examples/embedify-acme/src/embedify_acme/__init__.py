"""Entry-point module: light on purpose. The model class (and httpx) load on first use."""

from embedify import hookimpl


@hookimpl
def register_models(register):  # type: ignore[no-untyped-def]
    register(
        "acme",
        "embedify_acme.model:AcmeEmbeddingModel",
        default_model="acme-embed-1",
        models=["acme-embed-1", "acme-embed-mini"],
    )
