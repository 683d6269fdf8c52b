"""What a model can do, as one frozen value: :class:`Capabilities` (and the request
:class:`Limits` in it), plus the pre-Capabilities attribute names kept for one release."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class _Declaring(Protocol):
    """A model, as the old attribute names see it (``ProviderModel``, without importing it)."""

    capabilities: Capabilities


class Limits(BaseModel):
    """What one request may hold. ``None`` means the provider sets no limit."""

    model_config = ConfigDict(frozen=True)

    max_inputs_per_request: int | None = None
    max_tokens_per_request: int | None = None
    max_tokens_per_input: int | None = None


DimensionsMode = Literal["native", "matryoshka", "fixed"]


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a model can do, known before its first call: the one value the engine reads.

    A provider declares it on the class (``capabilities = Capabilities(...)``) or, when it
    depends on the model id, returns it from :meth:`ProviderModel.configure`. It is never
    changed in place: learning a dimension or a server's limits replaces it.
    """

    # Native output size; ``None`` learns it from the first answer.
    dimension: int | None = None
    # The only values ``dimensions=`` may take, e.g. ``(256, 512, 1024)`` (None: any up to
    # ``dimension``).
    allowed_dimensions: tuple[int, ...] | None = None
    # How ``dimensions=`` is served: "native" sends it to the provider, "matryoshka" cuts the
    # vectors here (their prefixes are valid embeddings), "fixed" refuses it.
    dimensions_mode: DimensionsMode = "fixed"
    normalized: bool = False  # outputs are unit length without our help
    limits: Limits = Limits()  # noqa: RUF009 (frozen, so one shared default is safe)
    # Role name -> how the provider is told (shown in ``info``); the engine refuses other roles.
    roles: Mapping[str, str] = dataclasses.field(
        default_factory=lambda: {"document": "plain text", "query": "plain text"}
    )
    precisions: tuple[str, ...] = ("float32",)  # output precisions the provider returns itself
    truncates: bool = False  # the provider cuts over-long inputs itself
    exact_tokens: bool = False  # count_tokens uses the model's own tokenizer
    max_concurrency: int = 8  # requests in flight when the user sets no max_concurrency


# The attributes providers declared before :class:`Capabilities`, and the field each became.
# They still read (``model.dimension``), and a plugin that assigns them keeps working for one
# release, with a DeprecationWarning.
_LEGACY_FIELDS = {
    "dimension": "dimension",
    "allowed_dimensions": "allowed_dimensions",
    "normalized": "normalized",
    "limits": "limits",
    "role_mapping": "roles",
    "output_dtypes": "precisions",
    "truncates_natively": "truncates",
    "exact_token_count": "exact_tokens",
    "default_max_concurrency": "max_concurrency",
}


def _with_legacy(capabilities: Capabilities, name: str, value: Any) -> Capabilities:
    """``capabilities`` with the pre-Capabilities attribute ``name`` set to ``value``."""
    mode = capabilities.dimensions_mode
    if name == "supports_dimensions":
        mode = "native" if value else ("fixed" if mode == "native" else mode)
        return dataclasses.replace(capabilities, dimensions_mode=mode)
    if name == "matryoshka":
        if mode != "native":
            mode = "matryoshka" if value else "fixed"
        return dataclasses.replace(capabilities, dimensions_mode=mode)
    return dataclasses.replace(capabilities, **{_LEGACY_FIELDS[name]: value})


def _legacy_warning(owner: str, name: str, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{owner} sets {name!r}: declare capabilities = Capabilities(...) on the class or "
        "return them from configure() instead; the attribute goes in the next release.",
        DeprecationWarning,
        stacklevel=stacklevel,  # the plugin's line that assigns it
    )


class LegacyCapability(Generic[T]):
    """A pre-Capabilities attribute: reads the capability, and an assignment replaces it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, model: _Declaring | None, owner: type[_Declaring]) -> T:
        capabilities = (model or owner).capabilities
        if self.name == "supports_dimensions":
            return capabilities.dimensions_mode == "native"  # type: ignore[return-value]
        if self.name == "matryoshka":
            return capabilities.dimensions_mode == "matryoshka"  # type: ignore[return-value]
        return getattr(capabilities, _LEGACY_FIELDS[self.name])  # type: ignore[no-any-return]

    def __set__(self, model: _Declaring, value: T) -> None:
        _legacy_warning(type(model).__name__, self.name)
        model.capabilities = _with_legacy(model.capabilities, self.name, value)


def fold_legacy_attributes(cls: type[_Declaring]) -> None:
    """Turn old attribute names a subclass body assigns into its ``capabilities``, with a
    warning (the names then read from the value again)."""
    for name in ("supports_dimensions", *_LEGACY_FIELDS, "matryoshka"):
        declared = cls.__dict__.get(name, LegacyCapability())
        if not isinstance(declared, LegacyCapability):
            _legacy_warning(cls.__name__, name, stacklevel=4)
            delattr(cls, name)
            cls.capabilities = _with_legacy(cls.capabilities, name, declared)
