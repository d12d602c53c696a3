"""Pytest helpers: run a neuPrint emulator for a test session, module or function.

Two plain functions that conftests wrap (pytest is only imported when a
fixture is made):

:func:`running_emulator`
    A context manager: starts an emulator, yields it, stops it and forgets
    neuprint-python's cached dataset list for its URL (ports get reused) and
    its now unusable clients.
:func:`emulator_fixture`
    Makes a pytest fixture from it::

        # conftest.py
        from connectomix_neuprint.emulator.testing import emulator_fixture
        neuprint_emu = emulator_fixture("tests/data/my_release", scope="session", dataset="hemibrain:v1.2.1")

    ``release`` may also be a callable taking pytest's ``tmp_path_factory``
    and returning a folder, e.g. ``synthetic_release`` below.

:func:`neuprint_client` builds a neuprint-python ``Client`` for an emulator.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .server import NeuprintEmulator
from .synthetic import write_synthetic_release

__all__ = ["running_emulator", "emulator_fixture", "neuprint_client", "synthetic_release",
           "forget_neuprint_cache"]


def forget_neuprint_cache(url: str) -> None:
    """Make neuprint-python forget an emulator that is gone.

    Drops the class-level cache of ``/api/dbmeta/datasets`` for ``url`` (a new
    emulator may get the same port), and clears the ``lru_cache`` of
    ``Client.meta``, ``primary_rois``, ``all_rois``, ``fetch_neuron_keys`` and
    ``fetch_synapse_nt_keys``: those caches hold every Client that used them
    forever, and while several Clients are alive neuprint-python has no
    default client, so later code that omits ``client=`` would fail.
    """
    try:
        from neuprint import Client
    except ImportError:  # neuprint-python is optional
        return
    Client.DATASETS_CACHE.pop(url, None)
    for name in ("meta", "primary_rois", "all_rois", "fetch_neuron_keys", "fetch_synapse_nt_keys"):
        attr = getattr(Client, name, None)
        func = attr.fget if isinstance(attr, property) else attr
        if hasattr(func, "cache_clear"):
            func.cache_clear()


@contextmanager
def running_emulator(release: str | os.PathLike | dict, **options: Any) -> Iterator[NeuprintEmulator]:
    """Start a :class:`NeuprintEmulator` (options as its constructor), yield it, stop it."""
    emu = NeuprintEmulator(release, **options).start()
    url = emu.url
    try:
        yield emu
    finally:
        emu.stop()
        forget_neuprint_cache(url)
        # neuprint-python tracks Clients with weak references and has no default client while
        # several exist; clients of this emulator often sit in reference cycles (requests
        # sessions), so collect them now rather than confuse later tests that rely on the default.
        gc.collect()


def synthetic_release(tmp_path_factory: Any) -> Path:
    """A fresh SYNTHETIC release folder (see :mod:`.synthetic`) in a pytest temp dir."""
    return write_synthetic_release(Path(tmp_path_factory.mktemp("neuprint-emulator")) / "synthetic")


def emulator_fixture(release: str | os.PathLike | dict | Callable[[Any], Any], *, scope: str = "module",
                     name: str | None = None, **options: Any):
    """A pytest fixture yielding a running :class:`NeuprintEmulator`.

    Parameters
    ----------
    release
        Folder, ``{name: folder}``, or a callable ``f(tmp_path_factory)`` returning either.
    scope
        pytest fixture scope.
    name
        Fixture name (default: the variable you assign it to).
    **options
        Passed to :class:`NeuprintEmulator`.
    """
    import pytest

    def _fixture(tmp_path_factory):
        source = release(tmp_path_factory) if callable(release) else release
        with running_emulator(source, **options) as emu:
            yield emu

    return pytest.fixture(scope=scope, name=name)(_fixture) if name else pytest.fixture(scope=scope)(_fixture)


def neuprint_client(emu: NeuprintEmulator, dataset: str | None = None, *, token: str | None = None, **kw: Any):
    """A neuprint-python ``Client`` for ``emu`` that verifies the emulator's certificate."""
    from neuprint import Client

    return Client(emu.url, dataset=dataset or emu.datasets[0],
                  token=token if token is not None else emu.token.reveal(), verify=str(emu.cert_path), **kw)
