"""neuPrint voxels -> nm with an anisotropic ``:Meta.voxelSize``, axis by axis.

The release below stores nm positions that are whole voxels of 4 x 8 x 40 nm
(a FAFB-like anisotropic grid; SYNTHETIC values). The emulator serves them in
voxels with ``:Meta.voxelSize = [4, 8, 40]``; the backend must give back the
release's nm, read here straight from the release files. Swapping two axes,
or using the x size for all three, changes every expected value.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.testing import make_toy_release

TOKEN = "np-voxel-token"
DATASET = "toy:v1"
VOXEL = np.array([4.0, 8.0, 40.0])  # nm per voxel along x, y, z
COLUMNS = ["pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]


def _anisotropic_release(folder: Path) -> Path:
    """The toy release with every position moved onto a 4 x 8 x 40 nm grid (distinct values per axis)."""
    make_toy_release(folder)
    syn = pd.read_parquet(folder / "synapses.parquet")
    i = np.arange(len(syn))
    steps = {"pre_x": 1000 + i, "pre_y": 3000 + 2 * i, "pre_z": 100 + i,
             "post_x": 1001 + i, "post_y": 3002 + 2 * i, "post_z": 103 + i}
    for column, voxels in steps.items():
        syn[column] = (voxels * VOXEL["xyz".index(column[-1])]).astype("float64")
    syn.to_parquet(folder / "synapses.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["voxel_size_nm"] = VOXEL.tolist()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    for body in (101, 102):
        lines = ["# SYNTHETIC skeleton on a 4 x 8 x 40 nm grid; units: nm"]
        for k in range(1, 11):
            x, y, z = 4 * (50 + 3 * k), 8 * (70 + 5 * k + body), 40 * (20 + k)
            lines.append(f"{k} 0 {x} {y} {z} 16 {-1 if k == 1 else k - 1}")
        (folder / "skeletons" / f"{body}.swc").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return _anisotropic_release(tmp_path_factory.mktemp("anisotropic") / "toy")


@pytest.fixture(scope="module")
def ds(release):
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(release, token=TOKEN, dataset=DATASET) as emu:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emu.cert_path),
                              cache=False) as ds:
            yield ds


def test_the_dataset_reports_the_anisotropic_voxel(ds):
    assert ds.info.voxel_size_nm == (4.0, 8.0, 40.0)


def test_synapse_positions_come_back_in_nm_axis_by_axis(ds, release):
    ids = [101, 104, 105]
    got = ds.get_synapses(ids, include_autapses=True)
    truth = pd.read_parquet(release / "synapses.parquet")
    truth = truth[(truth["pre"].isin(ids) | truth["post"].isin(ids)) & (truth["pre"] != 0) & (truth["post"] != 0)]
    want = truth[COLUMNS].sort_values(COLUMNS).to_numpy(dtype="float64")
    have = got[COLUMNS].sort_values(COLUMNS).to_numpy(dtype="float64")
    assert len(want) > 50
    np.testing.assert_array_equal(have, want)
    # the data can tell the axes apart: a conversion with x and y swapped, or x for all, would differ everywhere
    voxels = want[:, 2:] / np.tile(VOXEL, 2)
    for wrong in ([8.0, 4.0, 40.0], [4.0, 4.0, 4.0], [40.0, 8.0, 4.0]):
        assert (voxels * np.tile(wrong, 2) != want[:, 2:]).any(axis=0).sum() >= 4


def test_skeleton_nodes_come_back_in_nm_axis_by_axis(ds, release):
    skeletons = ds.get_skeletons([101, 102])
    for neuron in skeletons:
        rows = [line.split() for line in (release / "skeletons" / f"{int(neuron.id)}.swc").read_text().splitlines()
                if line and not line.startswith("#")]
        want = np.array([[float(r[2]), float(r[3]), float(r[4])] for r in rows])
        have = neuron.nodes.sort_values("node_id")[["x", "y", "z"]].to_numpy(dtype="float64")
        np.testing.assert_allclose(have, want, rtol=0, atol=1e-6)
        assert neuron.nodes.sort_values("node_id")["parent_id"].tolist() == [int(r[6]) for r in rows]


def _splitmix_ids(rows):
    """The documented synapse id, in plain Python integers: start from splitmix64's golden gamma; per
    coordinate, xor it in (two's complement), add the gamma and apply splitmix64's finaliser (Steele,
    Lea & Flood 2014; constants from Vigna's reference splitmix64.c); keep the top 63 bits."""
    gamma, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1
    out = []
    for row in rows:
        h = gamma
        for c in row:
            h = ((h ^ (c & mask)) + gamma) & mask
            h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & mask
            h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & mask
            h ^= h >> 31
        out.append(h >> 1)
    return out


def test_synapse_ids_are_the_documented_splitmix_hash_and_stay_put():
    # The ids must not change between releases of connectomix (cached and fresh tables are joined on them).
    from connectomix_neuprint.backend import synapse_ids

    rows = [[0, 0, 0, 0, 0, 0], [1000, 3000, 100, 1001, 3002, 103], [1001, 3000, 100, 1000, 3002, 103],
            [2**31, 5, 2**40, 7, 0, 1], [-1, 0, 3, 0, 0, 0]]
    got = synapse_ids(np.array(rows, dtype="int64"))
    assert got.dtype == np.int64
    assert got.tolist() == _splitmix_ids(rows)
    assert all(0 <= v < 2**63 for v in got.tolist())


def test_synapse_ids_of_distinct_sites_are_distinct():
    # every pair of sites on a small grid (4**6 = 4096 connections): one id each, so de-duplicating by
    # synapse id never merges two synapses
    grid = np.array(np.meshgrid(*[np.arange(4)] * 6, indexing="ij")).reshape(6, -1).T
    from connectomix_neuprint.backend import synapse_ids

    assert len(np.unique(synapse_ids(grid.astype("int64")))) == len(grid) == 4096


def test_skeleton_radii_come_back_in_nm(ds, release):
    # the release's SWC radii are 16 nm; the server keeps them in x voxels (4 nm), so 16 nm again, not 4 or 32
    for neuron in ds.get_skeletons([101, 102]):
        assert neuron.nodes["radius"].tolist() == [16.0] * 10


def test_synapse_table_rows_scores_and_roi_from_one_server_answer(ds):
    # one hand-written answer of the synapse query (voxels; primary ROIs A, B, C(R); AB is not primary)
    backend = ds._backend
    raw = pd.DataFrame({
        "pre": [101, 102], "post": [102, 103],
        "ux": [10, 11], "uy": [20, 21], "uz": [3, 4], "dx": [12, 13], "dy": [22, 23], "dz": [5, 6],
        "pre_score": [0.9, 0.4], "post_score": [0.6, 0.8],
        "post_info": [{"AB": True, "B": True}, {"A": False, "C(R)": True}],
    })
    got = backend._synapse_table(raw)
    assert got["pre"].tolist() == [101, 102] and got["post"].tolist() == [102, 103]
    assert got[["pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]].to_numpy().tolist() == [
        [40.0, 160.0, 120.0, 48.0, 176.0, 200.0], [44.0, 168.0, 160.0, 52.0, 184.0, 240.0]]
    assert got["score"].tolist() == [0.6, 0.4]  # the smaller of the two sides
    assert got["pre_score"].tolist() == [0.9, 0.4] and got["post_score"].tolist() == [0.6, 0.8]
    assert got["roi"].tolist() == ["B", "C(R)"]  # the non-primary AB and the false A are not the ROI
    empty = backend._synapse_table(raw.iloc[:0])
    assert len(empty) == 0
    assert str(empty["pre_score"].dtype) == "float64" and str(empty["post_score"].dtype) == "float64"
