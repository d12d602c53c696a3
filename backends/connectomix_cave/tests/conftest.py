"""Fixtures for the CAVE emulator tests: a tiny SYNTHETIC release, an explicit edit script, a running emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from cave_emulator_support import EDITS
from connectomix_cave.emulator import CaveEmulator
from connectomix_cave.emulator.testing import make_client, write_tiny_release


@pytest.fixture(scope="session")
def emulator_release(tmp_path_factory) -> Path:
    """A small SYNTHETIC release folder (``write_tiny_release``)."""
    return write_tiny_release(tmp_path_factory.mktemp("cave-emulator") / "tiny")


@pytest.fixture(scope="session")
def emulator_edits_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cave-edits") / "edits.json"
    path.write_text(json.dumps(EDITS), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def release_rows(emulator_release) -> pd.DataFrame:
    return pd.read_parquet(emulator_release / "synapses.parquet")


@pytest.fixture(scope="module")
def emulator_server(emulator_release, emulator_edits_file):
    """One emulator per test module (also serving 'flywire_fafb_production'; 'forbidden_stack' answers 403)."""
    with CaveEmulator(emulator_release, edits=emulator_edits_file, token="tok-good", forbidden_tokens=["tok-forbidden"],
                      aliases=["flywire_fafb_production"], forbidden_datastacks=["forbidden_stack"],
                      row_limit=100_000) as emulator:
        yield emulator


@pytest.fixture
def emulator(emulator_server):
    """The module's emulator with faults, counters and row limit reset after each test."""
    yield emulator_server
    emulator_server.faults.clear()
    emulator_server.stats.reset()
    emulator_server.row_limit = 100_000


@pytest.fixture(scope="module")
def cave_client(emulator_server):
    return make_client(emulator_server)


@pytest.fixture(scope="module")
def v1_rows(cave_client) -> pd.DataFrame:
    """The full synapse table at version 1 (supervoxel columns are the emulator's SYNTHETIC ones)."""
    return cave_client.materialize.query_table("synapses_nt_v1", materialization_version=1, split_positions=True)


#: The five DA1 lPNs navis ships as meshes (navis.example_neurons(kind="mesh")), also in the sample.
FIVE_MESHES = [722817260, 754534424, 754538881, 1734350788, 1734350908]


@pytest.fixture(scope="module")
def navis_meshes() -> dict:
    """navis's five real meshes in nm (its units are 8 nm voxels), as float32 as the format stores them."""
    import navis
    import numpy as np

    out = {}
    for m in navis.example_neurons(kind="mesh"):
        assert str(m.units) == "8 nanometer"
        out[int(m.id)] = ((np.asarray(m.vertices, dtype="float64") * 8).astype("float32"), np.asarray(m.faces))
    assert sorted(out) == sorted(FIVE_MESHES)
    return out
