"""Helpers shared by the cache tests: the real release backend, counting the calls that reach it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.dataset import Dataset
from connectomix_release.backend import ReleaseBackend


class CountingRelease(ReleaseBackend):
    """The real release backend (with its real cache identity), counting the calls that reach it."""

    calls = 0

    def fetch_neurons(self, criteria, materialization=None):
        type(self).calls += 1
        return super().fetch_neurons(criteria, materialization)

    def get_connectivity(self, query):
        type(self).calls += 1
        return super().get_connectivity(query)

    def get_synapses(self, query):
        type(self).calls += 1
        return super().get_synapses(query)


def make(release, cache, cls=CountingRelease):
    """A Dataset on ``cls(release)`` with ``cache``, its call counter reset."""
    cls.calls = 0
    return Dataset(cls(release), cache=cache)


def uncached(release):
    return Dataset(ReleaseBackend(release), cache=False)


def recorded_cache_warnings(record):
    return [w for w in record if issubclass(w.category, errors.CacheWarning)]


CAVE_TOKEN = "warm-cache-token"


@pytest.fixture(scope="module")
def cave_emu(toy_release):
    """The CAVE emulator serving the toy release as datastack ``toy_stack`` (import it into a test module)."""
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(toy_release, token=CAVE_TOKEN, datastack="toy_stack") as emu:
        yield emu


def open_cave(emu, cache, **options):
    """A Dataset on the emulator's toy datastack at materialization 1 (unless ``options`` say otherwise)."""
    options = {"materialization": 1, **options}
    return connectomix.open(
        f"cave://{emu.datastack}", server=emu.url, token=CAVE_TOKEN, filtered=False, connection_view=None,
        score_column="cleft_score", neuropil_column="neuropil", neuron_table="cell_types", type_column="cell_type",
        primary_rois="A,B,C(R)", cache=cache, **options)


def drop_neuron(folder, body):
    """Remove ``body`` from every table of a release folder (a re-deployment without it)."""
    for name, columns in (("neurons", ["id"]), ("synapses", ["pre", "post"]), ("connections", ["pre", "post"]),
                          ("roi_counts", ["id"])):
        path = folder / f"{name}.parquet"
        df = pd.read_parquet(path)
        keep = np.ones(len(df), dtype=bool)
        for column in columns:
            keep &= (df[column] != body).to_numpy()
        df[keep].to_parquet(path, index=False)


def shifted_copy(release, folder):
    """A copy of ``release`` in ``folder`` with every presynaptic x moved by 8 nm and the synapse file's
    times kept (as ``cp -p`` would): other data behind the same file stamps."""
    import os
    import shutil

    shutil.copytree(release, folder)  # copy2: the copies keep the originals' mtimes
    path = folder / "synapses.parquet"
    stat = path.stat()
    syn = pd.read_parquet(path)
    syn["pre_x"] = syn["pre_x"] + 8.0
    syn.to_parquet(path, index=False)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return folder
