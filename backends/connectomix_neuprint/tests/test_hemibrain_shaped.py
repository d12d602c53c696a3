"""Issue 10 "Done when": type search, type-level connectivity and compare() end to end on a hemibrain-shaped
neuPrint emulator (the embedded sample: real hemibrain DA1 lPNs and PNs, synthetic partners, served as
``hemibrain:v1.2.1`` so the catalogue's hemibrain entry applies: 8 nm voxels, confidence scores).

Expected values come from the release files with pandas, never from the code under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("kuzu")

import connectomix  # noqa: E402
from connectomix_neuprint.emulator.testing import running_emulator  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "connectomix_release" / "data" / "sample"
TOKEN = "hemibrain-shaped"


@pytest.fixture(scope="module")
def hemibrain():
    with running_emulator(SAMPLE, token=TOKEN, dataset="hemibrain:v1.2.1") as emu:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/hemibrain:v1.2.1", token=TOKEN, verify=str(emu.cert_path),
                              cache=False) as ds:
            yield ds


@pytest.fixture(scope="module")
def files():
    return {t: pd.read_parquet(SAMPLE / f"{t}.parquet") for t in ("neurons", "connections")}


def test_the_catalogue_entry_applies(hemibrain):
    assert hemibrain.info.voxel_size_nm == (8.0, 8.0, 8.0)
    assert hemibrain.info.score is not None and hemibrain.info.score.column == "confidence"


def test_type_search(hemibrain, files):
    n = files["neurons"]
    expected = sorted(n.loc[n["type"] == "DA1_lPN", "id"].astype("int64"))
    neurons, roi_counts = hemibrain.fetch_neurons(type="DA1_lPN")
    assert neurons["id"].tolist() == expected and len(expected) == 7
    assert set(neurons["type"]) == {"DA1_lPN"}


def test_type_level_connectivity(hemibrain, files):
    n, c = files["neurons"], files["connections"]
    da1 = n.loc[n["type"] == "DA1_lPN", "id"].astype("int64").tolist()
    types = n.set_index("id")["type"]
    # pairs of :Neuron partners with weight >= 5 (the sample's partners are all neurons), summed over types
    pairs = c[c["pre"].isin(da1) & (c["pre"] != c["post"])].groupby(["pre", "post"], as_index=False)["weight"].sum()
    pairs = pairs[pairs["weight"] >= 5]
    pairs = pairs.assign(pre_type=pairs["pre"].map(types).fillna("(untyped)"),
                         post_type=pairs["post"].map(types).fillna("(untyped)"))
    expected = pairs.groupby(["pre_type", "post_type"])["weight"].sum().sort_index()
    got = hemibrain.get_connectivity(da1, None, min_weight=5, by="type", progress=False)
    got = got.set_index(["pre_type", "post_type"])["weight"].sort_index()
    assert len(expected) > 3
    assert got.to_dict() == {k: int(v) for k, v in expected.to_dict().items()}


def test_compare_with_the_release(hemibrain):
    both = connectomix.compare({"release": "sample", "neuprint": hemibrain}, "get_connectivity",
                               sources=connectomix.NeuronCriteria(type="DA1_lPN"), min_weight=5, by="type",
                               progress=False)
    assert set(both["dataset"]) == {"release", "neuprint"}
    assert both["weight"].dtype == np.int64
    per = {name: g.drop(columns="dataset").sort_values(["pre_type", "post_type"]).reset_index(drop=True)
           for name, g in both.groupby("dataset", observed=True)}
    pd.testing.assert_frame_equal(per["release"], per["neuprint"])
