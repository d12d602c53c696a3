"""Every Examples section in the public modules runs (against the embedded sample and toy data)."""

import doctest
import importlib

import pytest

MODULES = [
    "connectomix",
    "connectomix.errors",
    "connectomix.schema",
    "connectomix.criteria",
    "connectomix.config",
    "connectomix.parallel",
    "connectomix.dataset",
    "connectomix.compare",
    "connectomix.morphology",
    "connectomix.plot",
    "connectomix.cli",
    "connectomix.testing.toy",
    "connectomix_release.backend",
    "connectomix_release.writer",
    "connectomix.cache",
    "connectomix_neuprint.cypher",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    import matplotlib

    matplotlib.use("Agg")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) failed in {name}"
