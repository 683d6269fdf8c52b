import pytest

import embedify
from embedify.testing import ConformanceSuite


class TestFakeProvider(ConformanceSuite):
    @pytest.fixture
    def make_model(self):  # type: ignore[no-untyped-def]
        return lambda **options: embedify.get_model("fake:48", **options)

    @pytest.fixture
    def error_cases(self):  # type: ignore[no-untyped-def]
        return [(lambda: embedify.get_model("fake:8", dimensions=16), embedify.ConfigurationError)]
