from embedify.testing.fixtures import offline_session_cache  # noqa: F401
