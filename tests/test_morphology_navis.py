"""Issue 12 item 3: attaching follows navis's and fafbseg's conventions and leaves the user's neurons alone.

Reference neurons are made by navis's own loader: ``navis.example_neurons()`` are five real hemibrain v1.2.1
DA1 lPNs whose ``.connectors`` came from neuPrint (``navis.interfaces.neuprint.fetch_skeletons(
with_synapses=True)``: one row per T-bar/PSD, ``type`` 'pre'/'post', positions in 8 nm voxels, ``node_id``
the nearest node). The sample holds the same real sites, so attaching the sample's synapse table to the same
neurons must give the same sites. fafbseg's ``flywire.get_synapses(attach=True)`` runs unmodified against the
CAVE emulator serving the same sample.
"""

from __future__ import annotations

import navis
import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.morphology import attach_synapses
from connectomix_release.plugin import SAMPLE_DIR

#: Real totals of the five DA1 lPNs (S5_hemibrain_ALPN_meta.csv of flyconnectome/hemibrain_olf_data):
#: id -> (pre T-bars, post PSDs, downstream connections).
PN_TABLE = {722817260: (701, 2435, 5635), 754534424: (646, 2364, 5309), 754538881: (623, 2320, 4867),
            1734350788: (621, 2084, 4903), 1734350908: (725, 2317, 5846)}


@pytest.fixture(scope="module")
def ds():
    with connectomix.open("sample") as ds:
        yield ds


@pytest.fixture(scope="module")
def attached(ds):
    neurons = navis.example_neurons()
    before = [(n, n.connectors.copy(), n.nodes.copy()) for n in neurons]
    syn, new = ds.get_synapses(neurons, attach=True, progress=False)
    return neurons, before, syn, new


def _site_key(c: pd.DataFrame) -> pd.Series:
    """type and position (rounded to the voxel) of each connector, as one string."""
    xyz = c[["x", "y", "z"]].to_numpy(dtype="float64").round().astype("int64")
    return pd.Series([f"{t}:{x}:{y}:{z}" for t, (x, y, z) in zip(c["type"].astype(str), xyz)], index=c.index)


def test_attaching_returns_new_neurons_and_leaves_the_users_untouched(attached):
    neurons, before, syn, new = attached
    assert isinstance(syn, pd.DataFrame) and isinstance(new, navis.NeuronList) and len(new) == len(neurons)
    for (original, connectors, nodes), n in zip(before, new):
        assert n is not original and n.connectors is not original.connectors
        assert int(n.id) == int(original.id)
        pd.testing.assert_frame_equal(original.connectors, connectors)  # still navis's own neuPrint connectors
        pd.testing.assert_frame_equal(original.nodes, nodes)
        assert "partner_ids" not in original.connectors.columns and "partner_ids" in n.connectors.columns
    # one neuron in, one neuron out; and the plain function too
    one = navis.example_neurons(1)
    kept = one.connectors.copy()
    single = attach_synapses(one, syn)
    assert isinstance(single, navis.TreeNeuron) and single is not one
    pd.testing.assert_frame_equal(one.connectors, kept)


def test_attach_synapses_does_not_modify_its_argument(ds):
    """Independent of what is returned: the neuron passed in keeps navis's own connectors, unchanged."""
    neuron = navis.example_neurons(1)
    kept = neuron.connectors.copy()
    attach_synapses(neuron, ds.get_synapses(neuron, progress=False))
    pd.testing.assert_frame_equal(neuron.connectors, kept)


def test_one_connector_per_tbar_and_psd_like_navis(attached):
    neurons, _, syn, new = attached
    for theirs, ours in zip(neurons, new):
        pre, post, downstream = PN_TABLE[int(theirs.id)]
        assert len(ours.presynapses) == len(theirs.presynapses) == pre  # T-bars, not connections
        assert len(ours.postsynapses) == len(theirs.postsynapses) == post
        assert ours.connectors["type"].astype(str).isin(["pre", "post"]).all()
        # the same sites at the same positions (neuron units: 8 nm voxels)
        t = theirs.connectors.set_index(_site_key(theirs.connectors))
        o = ours.connectors.set_index(_site_key(ours.connectors))
        assert o.index.is_unique and t.index.is_unique and set(o.index) == set(t.index)
        t = t.loc[o.index]
        agree = float((o["node_id"].to_numpy() == t["node_id"].to_numpy()).mean())
        assert agree >= 0.99, f"{theirs.id}: nearest node agrees for {agree:.2%}"
        np.testing.assert_allclose(o["score"], t["confidence"])  # each site's own confidence
        psd = (o["type"] == "post").to_numpy()
        outside = {"NotPrimary": "-"}  # navis (neuPrint) has no ROI outside the primary ones; connectomix may name it
        assert (o["roi"][psd].fillna("-").replace(outside).to_numpy() == t["roi"][psd].fillna("-").to_numpy()).all()
        # partners: every connection of every site, once; a PSD has one presynaptic partner
        assert int(ours.presynapses["n_partners"].sum()) == downstream == int((syn["pre"] == theirs.id).sum())
        assert (ours.postsynapses["n_partners"] == 1).all()
        assert (ours.connectors["partner_ids"].map(len) == ours.connectors["n_partners"]).all()
        exploded = ours.connectors.explode(["partner_ids", "synapse_ids"])
        assert sorted(exploded["synapse_ids"]) == sorted(syn.loc[(syn["pre"] == theirs.id) | (syn["post"] == theirs.id),
                                                                 "synapse_id"])


def test_tbar_partners_are_the_connections_of_that_tbar(attached):
    _, _, syn, new = attached
    n = new[0]
    tbar = n.presynapses.sort_values("n_partners").iloc[-1]
    assert tbar["n_partners"] > 1
    rows = syn[syn["synapse_id"].isin(tbar["synapse_ids"])]
    assert (rows["pre"] == n.id).all()
    np.testing.assert_allclose(rows[["pre_x", "pre_y", "pre_z"]].to_numpy() / 8,
                               np.repeat([[tbar["x"], tbar["y"], tbar["z"]]], len(rows), axis=0))
    assert sorted(rows["post"]) == sorted(tbar["partner_ids"])


def test_pre_or_post_only(ds):
    neuron = navis.example_neurons(1)
    _, only_pre = ds.get_synapses(neuron, post=False, attach=True, progress=False)
    assert isinstance(only_pre, navis.TreeNeuron)
    assert set(only_pre.connectors["type"].astype(str)) == {"pre"}
    assert len(only_pre.connectors) == PN_TABLE[int(neuron.id)][0]


def test_neuprint_backend_gives_the_same_sites():
    """The neuPrint emulator serving the sample: the same T-bars/PSDs as navis's own connectors."""
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(SAMPLE_DIR, token="attach-np", dataset="hemibrain:v1.2.1") as emu:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/hemibrain:v1.2.1", token="attach-np", verify=str(emu.cert_path),
                              cache=False) as np_ds:
            neurons = navis.example_neurons(2)
            _, new = np_ds.get_synapses(neurons, attach=True, progress=False)
    for theirs, ours in zip(neurons, new):
        assert len(ours.presynapses) == len(theirs.presynapses) == PN_TABLE[int(theirs.id)][0]
        assert len(ours.postsynapses) == len(theirs.postsynapses) == PN_TABLE[int(theirs.id)][1]
        assert set(_site_key(ours.connectors)) == set(_site_key(theirs.connectors))


# -- fafbseg, unmodified, against the CAVE emulator serving the same sample ----------------------------------

flywire = pytest.importorskip("fafbseg.flywire")
TOKEN = "attach-token"


@pytest.fixture(scope="module")
def emu():
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(SAMPLE_DIR, token=TOKEN) as emu:  # datastack flywire_fafb_public, 8 nm voxels
        yield emu


@pytest.fixture(scope="module")
def fafbseg_home(emu, tmp_path_factory):
    from connectomix_cave.emulator import use_client_home

    home = tmp_path_factory.mktemp("home")
    emu.write_client_home(home)
    with use_client_home(home):
        yield home


def test_same_connections_as_fafbseg_grouped_by_site(fafbseg_home, emu):
    # the filtered view answers in nm, as FlyWire's does, and fafbseg attaches its positions unconverted
    # (a 10,000 nm cut-off): both clients get the neurons in nm
    def neurons_nm():
        return navis.example_neurons(2).convert_units("nm")

    theirs = neurons_nm()
    flywire.get_synapses(theirs, attach=True, materialization=1, progress=False)  # fafbseg writes in place
    with connectomix.open("cave://flywire_fafb_public", server=emu.url, token=TOKEN, cache=False) as cave:
        _, ours = cave.get_synapses(neurons_nm(), attach=True, materialization=1, progress=False)
    for t, o in zip(theirs, ours):
        tc, oc = t.connectors, o.connectors
        assert len(tc) > 1000 and "partner_id" in tc.columns
        # fafbseg: one row per connection; ours: one row per site, its connections in partner_ids
        exploded = oc.explode("partner_ids")
        key = ["type", "x", "y", "z", "partner"]
        dtypes = {"type": str, "x": "float64", "y": "float64", "z": "float64", "partner": "int64"}
        theirs_rows = tc.assign(partner=tc["partner_id"])[key].astype(dtypes)
        ours_rows = exploded.assign(partner=exploded["partner_ids"])[key].astype(dtypes)
        pd.testing.assert_frame_equal(theirs_rows.sort_values(key).reset_index(drop=True),
                                      ours_rows.sort_values(key).reset_index(drop=True))
        # a site is a distinct position: fafbseg's rows at one T-bar position are our one T-bar
        pre = tc[tc["type"].astype(str) == "pre"]
        assert len(o.presynapses) == len(pre[["x", "y", "z"]].drop_duplicates()) < len(pre)
        assert len(o.postsynapses) == int((tc["type"].astype(str) == "post").sum())
        # nearest nodes: both query the same nodes in the same units
        node = tc.assign(type=tc["type"].astype(str)).drop_duplicates(["type", "x", "y", "z"]).set_index(
            ["type", "x", "y", "z"])["node_id"]
        ours_node = oc.assign(type=oc["type"].astype(str)).set_index(["type", "x", "y", "z"])["node_id"]
        assert (node.loc[ours_node.index].to_numpy() == ours_node.to_numpy()).mean() >= 0.999
