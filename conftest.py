"""Test-run settings shared by tests/ and backends/*/tests/."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep the on-disk result cache of the test run out of the user's cache directory."""
    os.environ["CONNECTOMIX_CACHE_DIR"] = str(tmp_path_factory.mktemp("connectomix-cache"))
    yield
