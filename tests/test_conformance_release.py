"""The release backend against the shared conformance suite."""

import pytest

import connectomix
from connectomix.testing.conformance import ConformanceTests


class TestReleaseConformance(ConformanceTests):
    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, toy_release):
        with connectomix.open(f"release://{toy_release}") as ds:
            yield ds
