"""neuprint-python against the emulator serving connectomix's embedded sample release."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

neuprint = pytest.importorskip("neuprint")
from neuprint import NeuronCriteria as NC  # noqa: E402
from neuprint import SynapseCriteria as SC  # noqa: E402

from connectomix_neuprint.emulator.testing import emulator_fixture, neuprint_client  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "connectomix_release" / "data" / "sample"
pytestmark = pytest.mark.skipif(not (SAMPLE / "manifest.json").is_file(), reason="embedded sample not built")

emu = emulator_fixture(SAMPLE, scope="module", dataset="hemibrain:v1.2.1")


@pytest.fixture(scope="module")
def client(emu):
    return neuprint_client(emu, progress=False)


@pytest.fixture(scope="module")
def tables():
    return {t: pd.read_parquet(SAMPLE / f"{t}.parquet") for t in ("neurons", "connections", "synapses")}


@pytest.fixture(scope="module")
def da1(tables):
    n = tables["neurons"]
    return sorted(n.loc[n["type"] == "DA1_lPN", "id"])


def test_neurons_match_the_release(client, tables, da1):
    neurons, roi_counts = neuprint.fetch_neurons(NC(type="DA1_lPN"), client=client)
    assert list(neurons["bodyId"]) == da1
    n = tables["neurons"].set_index("id").loc[da1]
    assert list(neurons["pre"]) == list(n["pre"]) and list(neurons["post"]) == list(n["post"])
    assert set(roi_counts["roi"]) <= set(client.primary_rois) | {"NotPrimary"}


def test_adjacencies_match_connections(client, tables, da1):
    c = tables["connections"]
    is_neuron = tables["neurons"].set_index("id")["is_neuron"]
    _, conn = neuprint.fetch_adjacencies(da1, None, client=client)
    exp = c[c["pre"].isin(da1) & c["post"].map(is_neuron)]
    got = conn.groupby(["bodyId_pre", "bodyId_post"])["weight"].sum().sort_index()
    expected = exp.groupby(["pre", "post"])["weight"].sum().sort_index()
    assert got.to_dict() == expected.to_dict() and len(expected) > 50


def test_synapses_of_one_neuron(client, tables, da1):
    body = da1[0]
    s = tables["synapses"]
    got = neuprint.fetch_synapses(NC(bodyId=body), SC(confidence=0.0, client=client), client=client)
    pre_sites = s.loc[s["pre"] == body, ["pre_x", "pre_y", "pre_z"]].drop_duplicates()
    post_sites = s.loc[s["post"] == body]
    assert (got["type"] == "pre").sum() == len(pre_sites)
    assert (got["type"] == "post").sum() == len(post_sites)
    xyz = np.sort(got.loc[got["type"] == "post", ["x", "y", "z"]].to_numpy(dtype=float), axis=0)
    ref = np.sort(post_sites[["post_x", "post_y", "post_z"]].to_numpy() / 8, axis=0)
    np.testing.assert_allclose(xyz, np.trunc(ref))  # neuprint-python casts to int32


def test_skeleton_of_the_sample(client, da1):
    swc = (SAMPLE / "skeletons" / f"{da1[0]}.swc")
    if not swc.exists():
        pytest.skip("no skeleton for this body")
    df = neuprint.fetch_skeleton(da1[0], client=client)
    nm = pd.read_csv(swc, sep=r"\s+", comment="#", header=None)
    assert len(df) == len(nm)
    np.testing.assert_allclose(df[["x", "y", "z"]].to_numpy() * 8, nm[[2, 3, 4]].to_numpy(), rtol=1e-5)
