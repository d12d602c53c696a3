"""Attaching synapses to navis neurons, verified on the real hemibrain DA1 lPNs shipped with navis."""

import navis
import numpy as np
import pandas as pd
import pytest

from connectomix import errors
from connectomix.morphology import attach_synapses, nm_per_unit


def synapses_from_navis_connectors(n) -> pd.DataFrame:
    """A connectomix synapse table (nm) holding the neuron's real connectors on its own side."""
    c = n.connectors
    xyz = c[["x", "y", "z"]].to_numpy(dtype="float64") * nm_per_unit(n)
    is_pre = (c["type"] == "pre").to_numpy()
    partner = 1_000_000 + np.arange(len(c))
    return pd.DataFrame({
        "synapse_id": c["connector_id"].to_numpy(dtype="int64"),
        "pre": np.where(is_pre, int(n.id), partner), "post": np.where(is_pre, partner, int(n.id)),
        "pre_x": xyz[:, 0], "pre_y": xyz[:, 1], "pre_z": xyz[:, 2],
        "post_x": xyz[:, 0], "post_y": xyz[:, 1], "post_z": xyz[:, 2],
        "score": c["confidence"].to_numpy(), "roi": c["roi"].astype("string").to_numpy(),
    })


@pytest.fixture(scope="module")
def da1():
    return navis.example_neurons()


def test_each_synapse_lands_on_the_node_the_real_data_says(da1):
    agree = total = 0
    for neuron in da1:
        expected = neuron.connectors.set_index("connector_id")["node_id"]
        syn = synapses_from_navis_connectors(neuron)
        n = neuron.copy()
        attach_synapses(n, syn, clean=False)
        got = n.connectors.set_index("synapse_id")["node_id"]
        agree += int((got.loc[expected.index] == expected).sum())
        total += len(expected)
    rate = agree / total
    print(f"node agreement on {total} real DA1 synapses: {rate:.2%}")
    assert total == 14_836
    assert rate >= 0.99


def test_units_are_respected(da1):
    """The same synapses (nm) attach identically to a voxel-unit and a nm-unit copy."""
    neuron = da1[0]
    syn = synapses_from_navis_connectors(neuron)
    in_voxels = neuron.copy()
    in_nm = neuron.copy()
    in_nm.nodes[["x", "y", "z"]] = in_nm.nodes[["x", "y", "z"]] * 8
    in_nm.units = "1 nm"
    attach_synapses(in_voxels, syn)
    attach_synapses(in_nm, syn)
    assert (in_voxels.connectors["node_id"].to_numpy() == in_nm.connectors["node_id"].to_numpy()).all()
    np.testing.assert_allclose(in_voxels.connectors["x"] * 8, in_nm.connectors["x"])
    assert in_voxels.connectors["distance"].max() < 10_000


def test_clean_drops_distant_synapses_only_from_connectors(da1):
    neuron = da1[0].copy()
    syn = synapses_from_navis_connectors(neuron)
    far = syn.iloc[:3].copy()
    far[["pre_x", "post_x"]] += 50_000  # 50 um away
    far["synapse_id"] += 10**9
    table = pd.concat([syn, far], ignore_index=True)
    attach_synapses(neuron, table, max_distance=10_000, clean=True)
    assert len(neuron.connectors) == len(syn)
    assert not neuron.connectors["synapse_id"].isin(far["synapse_id"]).any()
    kept = neuron.copy()
    attach_synapses(kept, table, clean=False)
    assert len(kept.connectors) == len(table)
    assert list(kept.connectors.columns[:8]) == ["connector_id", "x", "y", "z", "score", "partner_id", "type", "node_id"]


def test_mesh_neurons_get_vertex_ids():
    mesh = navis.example_neurons(1, kind="mesh")
    sk = navis.example_neurons(1)
    syn = synapses_from_navis_connectors(sk)
    attach_synapses(mesh, syn)
    assert "vertex_id" in mesh.connectors and mesh.connectors["vertex_id"].between(0, len(mesh.vertices) - 1).all()


def test_unitless_neurons_are_refused(da1):
    n = da1[0].copy()
    n.units = None
    with pytest.raises(errors.InvalidArgumentError, match="units"):
        attach_synapses(n, synapses_from_navis_connectors(da1[0]))
