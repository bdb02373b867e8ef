"""The client is tested against the same real server as the service's own tests."""

from tests.app.conftest import base_url, settings  # noqa: F401  (fixtures)
