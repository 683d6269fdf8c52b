import os

# Haystack reads this once, on import: no telemetry, so the tests need no network.
os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"

from embedify.testing.fixtures import offline_session_cache  # noqa: F401
