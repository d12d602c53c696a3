"""Every Examples section in the public modules runs (against the embedded sample and toy data)."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["connectomix", "connectomix_release", "connectomix_neuprint", "connectomix_cave"]


def _modules():
    """Every module of the packages, so a new module's examples run without being listed here."""
    names = []
    for package in PACKAGES:
        names.append(package)
        path = importlib.import_module(package).__path__
        names += [m.name for m in pkgutil.walk_packages(path, prefix=package + ".") if ".tests" not in m.name]
    return sorted(set(names) - {"connectomix_neuprint.emulator.__main__", "connectomix_cave.emulator.__main__"})


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    import matplotlib

    matplotlib.use("Agg")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} example(s) failed in {name}"
