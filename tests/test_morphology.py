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
        n = attach_synapses(neuron, syn, clean=False)
        got = n.connectors.assign(sid=n.connectors["synapse_ids"].str[0]).set_index("sid")["node_id"]
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
    in_nm = neuron.copy()
    in_nm.nodes[["x", "y", "z"]] = in_nm.nodes[["x", "y", "z"]] * 8
    in_nm.units = "1 nm"
    in_voxels = attach_synapses(neuron, syn)
    in_nm = attach_synapses(in_nm, syn)
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
    cleaned = attach_synapses(neuron, table, max_distance=10_000, clean=True)
    assert len(cleaned.connectors) == len(syn)
    assert not cleaned.connectors["synapse_ids"].explode().isin(far["synapse_id"]).any()
    kept = attach_synapses(neuron, table, clean=False)
    assert len(kept.connectors) == len(table)
    assert list(kept.connectors.columns) == ["connector_id", "x", "y", "z", "type", "node_id", "roi", "score",
                                             "n_partners", "partner_ids", "synapse_ids", "distance"]


def test_mesh_neurons_get_vertex_ids():
    mesh = navis.example_neurons(1, kind="mesh")
    sk = navis.example_neurons(1)
    syn = synapses_from_navis_connectors(sk)
    mesh = attach_synapses(mesh, syn)
    assert "vertex_id" in mesh.connectors and mesh.connectors["vertex_id"].between(0, len(mesh.vertices) - 1).all()


def test_unitless_neurons_are_refused(da1):
    n = da1[0].copy()
    n.units = None
    with pytest.raises(errors.InvalidArgumentError, match="units"):
        attach_synapses(n, synapses_from_navis_connectors(da1[0]))


def _line_neuron(units="8 nm", nid=5):
    """Three nodes on the x axis at 0, 10, 20 units (0, 80, 160 nm with 8 nm units)."""
    nodes = pd.DataFrame({"node_id": [11, 12, 13], "parent_id": [-1, 11, 12],
                          "x": [0.0, 10.0, 20.0], "y": [0.0, 0.0, 0.0], "z": [0.0, 0.0, 0.0]})
    return navis.TreeNeuron(nodes, units=units, id=nid)


def _table(rows):
    """Synapse table rows: (synapse_id, pre, post, x_nm of the pre site, x_nm of the post site, score, roi)."""
    return pd.DataFrame({
        "synapse_id": [r[0] for r in rows], "pre": [r[1] for r in rows], "post": [r[2] for r in rows],
        "pre_x": [float(r[3]) for r in rows], "pre_y": 0.0, "pre_z": 0.0,
        "post_x": [float(r[4]) for r in rows], "post_y": 0.0, "post_z": 0.0,
        "score": [r[5] for r in rows], "roi": pd.array([r[6] for r in rows], dtype="string"),
    })


def test_hand_made_neuron_gets_exact_connectors():
    n = _line_neuron()
    syn = _table([
        (30, 5, 7, 85.0, 1e9, 0.9, "A"),  # 5 is pre: its site is at 85 nm -> node 12 (80 nm), 5 nm away
        (10, 8, 5, -1e9, 150.0, 0.4, None),  # 5 is post: site at 150 nm -> node 13 (160 nm), 10 nm away
        (20, 6, 9, 0.0, 0.0, 0.5, "B"),  # not neuron 5's: ignored
        (40, 4, 5, 0.0, 160.0 + 200.0, 0.7, "B"),  # 5 is post, 200 nm beyond node 13
    ])
    c = attach_synapses(n, syn, max_distance=200).connectors
    assert c["synapse_ids"].tolist() == [(30,), (10,), (40,)]  # presynaptic sites first
    assert c["connector_id"].tolist() == [0, 1, 2]
    assert c["type"].astype(str).tolist() == ["pre", "post", "post"]
    assert c["partner_ids"].tolist() == [(7,), (8,), (4,)] and c["n_partners"].tolist() == [1, 1, 1]
    assert c["node_id"].tolist() == [12, 13, 13]
    np.testing.assert_allclose(c["x"], [85 / 8, 150 / 8, 360 / 8])  # in the neuron's units
    np.testing.assert_allclose(c["distance"], [5.0, 10.0, 200.0])  # in nm; 200 <= max_distance is kept
    assert c["score"].tolist() == [0.9, 0.4, 0.7]
    assert c["roi"].tolist()[0] == "A" and pd.isna(c["roi"].tolist()[1])
    assert c["y"].tolist() == [0.0, 0.0, 0.0] and c["z"].tolist() == [0.0, 0.0, 0.0]
    # one nm further than max_distance is dropped when cleaning; kept (with its distance) otherwise
    assert attach_synapses(n, syn, max_distance=199.5).connectors["synapse_ids"].tolist() == [(30,), (10,)]
    assert attach_synapses(n, syn, max_distance=199.5, clean=False).connectors["synapse_ids"].tolist() == [
        (30,), (10,), (40,)]
    assert attach_synapses(n, syn, max_distance=None).connectors["synapse_ids"].tolist() == [(30,), (10,), (40,)]
    empty = attach_synapses(n, syn, max_distance=0).connectors
    assert empty.empty and list(empty.columns)[:3] == ["connector_id", "x", "y"]


def test_neighbouring_ids_are_not_mixed_up():
    a, b = _line_neuron(nid=5), _line_neuron(nid=6)
    syn = _table([(1, 5, 6, 0.0, 160.0, 1.0, "A"), (2, 6, 5, 80.0, 80.0, 1.0, "A"), (3, 4, 6, 0.0, 0.0, 1.0, "A")])
    a, b = attach_synapses(navis.NeuronList([a, b]), syn, clean=False)
    assert a.connectors["synapse_ids"].tolist() == [(1,), (2,)] and a.connectors["node_id"].tolist() == [11, 12]
    assert b.connectors["synapse_ids"].tolist() == [(2,), (1,), (3,)]
    assert b.connectors["node_id"].tolist() == [12, 13, 11]
    assert attach_synapses(_line_neuron(nid=99), syn).connectors.empty


def test_units_of_nm_and_microns():
    syn = _table([(1, 5, 7, 80.0, 0.0, 1.0, "A")])
    in_nm = attach_synapses(_line_neuron(units="1 nm"), syn)  # nodes at 0, 10, 20 nm: the site is 60 nm from 13
    assert in_nm.connectors["node_id"].tolist() == [13] and in_nm.connectors["distance"].tolist() == [60.0]
    assert nm_per_unit(_line_neuron(units="1 micrometer")) == pytest.approx(1000.0, rel=1e-12)
    assert nm_per_unit(_line_neuron(units="8 nm")) == 8.0


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf")])
def test_bad_max_distance(bad):
    with pytest.raises(errors.InvalidArgumentError, match="max_distance"):
        attach_synapses(_line_neuron(), _table([(1, 5, 7, 0.0, 0.0, 1.0, "A")]), max_distance=bad)


def test_non_length_units_are_refused():
    n = _line_neuron()
    n.units = "1 second"
    with pytest.raises(errors.InvalidArgumentError, match="not a length"):
        nm_per_unit(n)


def test_all_three_axes_are_kept_apart():
    n = _line_neuron()
    syn = _table([(1, 5, 7, 80.0, 0.0, 1.0, "A")])
    syn[["pre_y", "pre_z"]] = [[3.0, 4.0]]
    c = attach_synapses(n, syn).connectors
    np.testing.assert_allclose(c[["x", "y", "z"]].to_numpy(), [[10.0, 3 / 8, 4 / 8]])
    np.testing.assert_allclose(c["distance"], [5.0])  # sqrt(3^2 + 4^2) nm from node 12


def test_defaults_drop_synapses_beyond_10_um():
    n = _line_neuron()
    syn = _table([(1, 5, 7, 160.0 + 10_000.0, 0.0, 1.0, "A"), (2, 5, 7, 160.0 + 10_000.5, 0.0, 1.0, "A")])
    assert attach_synapses(n, syn).connectors["synapse_ids"].tolist() == [(1,)]


def test_a_neuron_without_nodes_gets_no_node_and_infinite_distance():
    empty = pd.DataFrame({c: pd.Series([], dtype="float64") for c in ("x", "y", "z")})
    empty.insert(0, "node_id", pd.Series([], dtype="int64"))
    empty.insert(1, "parent_id", pd.Series([], dtype="int64"))
    n = navis.TreeNeuron(empty, units="8 nm", id=5)
    syn = _table([(1, 5, 7, 80.0, 0.0, 1.0, "A"), (2, 7, 5, 0.0, 8.0, 1.0, "A")])
    kept = attach_synapses(n, syn, clean=False)
    assert kept.connectors["node_id"].tolist() == [-1, -1]
    assert np.isinf(kept.connectors["distance"]).all()
    assert attach_synapses(n, syn).connectors.empty


def test_connectors_keep_the_table_order_of_many_sites():
    n = _line_neuron()
    rng = np.random.default_rng(3)
    posts = np.where(rng.random(600) < 0.5, 5, rng.integers(6, 60, 600))  # neuron 5 among many others
    rows = [(int(i), 6, int(post), 0.0, float(x), 1.0, "A")
            for i, post, x in zip(rng.permutation(600) + 1000, posts, rng.uniform(0, 160, 600))]
    syn = _table(rows)
    got = attach_synapses(n, syn).connectors["synapse_ids"].str[0].tolist()
    assert sorted(got) == sorted(r[0] for r in rows if r[2] == 5)  # every connection once
    assert got == [sid for sid in syn["synapse_id"] if sid in set(got)]  # in table order


def test_zero_or_missing_units_are_refused():
    n = _line_neuron()
    n.units = "0 nm"
    with pytest.raises(errors.InvalidArgumentError, match="invalid units"):
        nm_per_unit(n)
    with pytest.raises(errors.InvalidArgumentError, match="not a length"):
        nm_per_unit(object())


def test_a_polyadic_tbar_is_one_connector_with_every_partner():
    """Rows sharing the neuron's side position are one site; the site's columns sum up its connections."""
    n = _line_neuron()
    syn = _table([
        (50, 5, 7, 80.0, 1.0, 0.2, "A"),  # T-bar at 80 nm, PSDs in A, B, B -> ROI B
        (51, 5, 8, 80.0, 2.0, float("nan"), "B"),
        (52, 5, 9, 80.0, 3.0, 0.9, "B"),
        (53, 5, 7, 0.0, 4.0, 0.3, "A"),  # another T-bar: tie A/B -> the first, A
        (54, 5, 8, 0.0, 5.0, 0.4, "B"),
        (55, 5, 9, 160.0, 6.0, 0.5, None),  # a T-bar outside every ROI but one PSD -> that ROI
        (56, 5, 6, 160.0, 7.0, 0.6, "C"),
        (57, 6, 5, 0.0, 80.0, 0.7, "A"),  # a PSD at 80 nm: a site of its own side
    ])
    c = attach_synapses(n, syn).connectors
    assert c["type"].astype(str).tolist() == ["pre", "pre", "pre", "post"]
    assert c["partner_ids"].tolist() == [(7, 8, 9), (7, 8), (9, 6), (6,)]
    assert c["synapse_ids"].tolist() == [(50, 51, 52), (53, 54), (55, 56), (57,)]
    assert c["n_partners"].tolist() == [3, 2, 2, 1]
    assert c["roi"].tolist() == ["B", "A", "C", "A"]
    assert c["score"].tolist() == [0.9, 0.4, 0.6, 0.7]  # no per-side scores: the best connection's
    assert c["node_id"].tolist() == [12, 11, 13, 12]
    with_sides = syn.assign(pre_score=[0.95, 0.95, 0.95, 0.5, 0.5, float("nan"), float("nan"), 0.1],
                            post_score=0.8)
    c = attach_synapses(n, with_sides).connectors
    assert c["score"].tolist()[:2] == [0.95, 0.5] and np.isnan(c["score"].tolist()[2])  # the T-bar's own
    assert c["score"].tolist()[3] == 0.8  # the PSD's own
    with pytest.raises(errors.InvalidArgumentError, match="pre and post"):
        attach_synapses(n, syn, pre=False, post=False)
    only_post = attach_synapses(n, syn, pre=False).connectors
    assert only_post["synapse_ids"].tolist() == [(57,)]
