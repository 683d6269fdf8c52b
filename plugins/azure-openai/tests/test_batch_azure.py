"""Azure OpenAI inherits OpenAI's model but not its batch API: asking for it says so."""

from __future__ import annotations

import pytest

import embedify
from embedify.bulk import batch_api_of
from embedify.errors import ConfigurationError


def test_azure_has_no_batch_api_yet() -> None:
    model = embedify.get_model(
        "azure:small",
        base_url="https://example.openai.azure.com",
        api_key="k" * 8,
        api_version="2024-10-21",
    )
    with pytest.raises(ConfigurationError, match="batch deployments serve no embedding model"):
        batch_api_of(model)
