"""connectomix and the unmodified neuprint-python give the same answers on the same emulator.

The emulator serves the embedded sample (real DA1 lPN synapse sites, synthetic partners) under the
dataset name "hemibrain:v1.2.1". Mapping (connectomix.schema): bodyId -> id, x_pre * voxel -> pre_x (nm),
roi_post -> roi, neuprint-python's `confidence > t` vs connectomix `score >= t` (thresholds below are
chosen between data values so both agree).
"""

import numpy as np
import pandas as pd
import pytest

neuprint = pytest.importorskip("neuprint")
from neuprint import Client, NeuronCriteria as NC, SynapseCriteria as SC  # noqa: E402
from neuprint import fetch_adjacencies, fetch_neurons, fetch_simple_connections, fetch_synapse_connections  # noqa: E402

import connectomix  # noqa: E402
from connectomix_release.plugin import SAMPLE_DIR  # noqa: E402

TOKEN = "parity-token"
DATASET = "hemibrain:v1.2.1"
DA1 = [722817260, 754534424, 754538881, 1734350788, 1734350908]


@pytest.fixture(scope="module")
def emulator():
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(SAMPLE_DIR, token=TOKEN, dataset=DATASET) as emu:
        yield emu


@pytest.fixture(scope="module")
def client(emulator):
    Client.DATASETS_CACHE.clear()
    return Client(emulator.url, dataset=DATASET, token=TOKEN, verify=False)


@pytest.fixture(scope="module")
def ds(emulator):
    host = emulator.url.split("://", 1)[1]
    with connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emulator.cert_path),
                          cache=False) as ds:
        yield ds


def test_fetch_neurons(client, ds):
    theirs, their_rois = fetch_neurons(NC(type="DA1_lPN"), client=client)
    ours, our_rois = ds.fetch_neurons(type="DA1_lPN")
    assert ours["id"].tolist() == theirs["bodyId"].tolist()
    assert ours["pre"].tolist() == theirs["pre"].tolist() and ours["post"].tolist() == theirs["post"].tolist()
    assert ours["instance"].tolist() == theirs["instance"].tolist()
    their_rois = their_rois[their_rois["bodyId"].isin(DA1)]
    merged = our_rois.merge(their_rois.rename(columns={"bodyId": "id"}), on=["id", "roi"], suffixes=("", "_np"))
    assert len(merged) == len(our_rois[our_rois["id"].isin(DA1)])
    assert (merged["pre"] == merged["pre_np"]).all() and (merged["post"] == merged["post_np"]).all()


def test_fetch_adjacencies_total_and_per_roi(client, ds):
    _, theirs = fetch_adjacencies(NC(bodyId=DA1), None, client=client)
    # neuprint-python's unspecified side is NeuronCriteria(), i.e. :Neuron only; connectomix's None is every
    # segment, so the equivalent connectomix query names the neuron-only side explicitly.
    ours = ds.get_connectivity(sources=DA1, targets=connectomix.NC(), by_roi=True)
    a = theirs.rename(columns={"bodyId_pre": "pre", "bodyId_post": "post"})[["pre", "post", "roi", "weight"]]
    pd.testing.assert_frame_equal(
        ours.sort_values(["pre", "post", "roi"]).reset_index(drop=True)[["pre", "post", "roi", "weight"]],
        a.sort_values(["pre", "post", "roi"]).reset_index(drop=True), check_dtype=False)
    totals = ds.get_connectivity(sources=DA1, targets=connectomix.NC())
    assert totals["weight"].sum() == theirs["weight"].sum()
    everything = ds.get_connectivity(sources=DA1)
    assert everything["weight"].sum() > totals["weight"].sum()  # plus the partners that are mere segments


def test_fetch_simple_connections(client, ds):
    theirs = fetch_simple_connections(NC(bodyId=[1734350788]), None, min_weight=3, client=client)
    # neuprint-python's downstream side is :Neuron only; connectomix says so explicitly with a criteria
    ours = ds.get_connectivity(sources=[1734350788], targets=connectomix.NC(), min_weight=3)
    assert sorted(zip(ours.post, ours.weight)) == sorted(zip(theirs.bodyId_post, theirs.weight))


@pytest.mark.parametrize("threshold", [0.0, 0.8501])
def test_fetch_synapse_connections(client, ds, threshold):
    theirs = fetch_synapse_connections(NC(bodyId=[1734350788]), None, SC(confidence=threshold), client=client)
    ours = ds.get_synapses([1734350788], post=False, min_score=threshold or None)
    neurons = set(ds.fetch_neurons(connectomix.NC(), omit_rois=True).neurons["id"])
    ours = ours[ours["post"].isin(neurons)]  # neuprint-python's default target side is :Neuron only
    voxel = 8.0
    their_sites = sorted(map(tuple, (theirs[["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]].to_numpy()
                                     * voxel).tolist()))
    our_sites = sorted(map(tuple, ours[["pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]].to_numpy().tolist()))
    assert our_sites == their_sites
    assert sorted(ours["post"]) == sorted(theirs["bodyId_post"])
