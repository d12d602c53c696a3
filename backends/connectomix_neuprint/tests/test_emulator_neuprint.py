"""The unmodified neuprint-python 0.6.4 client against the emulator, checked with pandas.

Every expectation is computed independently from the release's parquet files
(FORMAT.md semantics), never from the emulator's graph model.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

neuprint = pytest.importorskip("neuprint")
from neuprint import (  # noqa: E402
    NeuronCriteria as NC,
    SynapseCriteria as SC,
    fetch_adjacencies,
    fetch_custom,
    fetch_meta,
    fetch_neurons,
    fetch_simple_connections,
    fetch_synapse_connections,
    fetch_synapses,
)

from connectomix_neuprint.emulator.testing import emulator_fixture, neuprint_client, synthetic_release  # noqa: E402

DATASET = "hemibrain:v1.2.1"
VOXEL = 8.0

emu = emulator_fixture(synthetic_release, scope="module", dataset=DATASET)


@pytest.fixture(scope="module")
def client(emu):
    return neuprint_client(emu, progress=False)


@pytest.fixture(scope="module")
def release(emu):
    folder = emu.model().release_path
    tables = {t: pd.read_parquet(folder / f"{t}.parquet") for t in ("neurons", "connections", "roi_counts",
                                                                    "synapses")}
    tables["manifest"] = json.loads((folder / "manifest.json").read_text())
    return tables


# ---------------------------------------------------------------------------------------------
# independent expectations
# ---------------------------------------------------------------------------------------------


def _pair_weights(connections: pd.DataFrame) -> pd.DataFrame:
    return connections.groupby(["pre", "post"], as_index=False)["weight"].sum()


def _pre_sites(syn: pd.DataFrame) -> pd.DataFrame:
    """One row per T-bar: (body, x, y, z), largest pre score, ROI of its first row."""
    syn = syn.sort_values("synapse_id")
    g = syn.groupby(["pre", "pre_x", "pre_y", "pre_z"], sort=False)
    out = g.agg(confidence=("pre_score", "max"), roi=("roi", "first")).reset_index()
    return out.rename(columns={"pre": "bodyId", "pre_x": "x", "pre_y": "y", "pre_z": "z"}).assign(type="pre")


def _post_sites(syn: pd.DataFrame) -> pd.DataFrame:
    out = syn[["post", "post_x", "post_y", "post_z", "post_score", "roi"]]
    return out.rename(columns={"post": "bodyId", "post_x": "x", "post_y": "y", "post_z": "z",
                               "post_score": "confidence"}).assign(type="post")


def _voxels(df: pd.DataFrame, cols=("x", "y", "z")) -> pd.DataFrame:
    df = df.copy()
    for c in cols:
        df[c] = (df[c] / VOXEL).round().astype("int64")
    return df


# ---------------------------------------------------------------------------------------------
# metadata
# ---------------------------------------------------------------------------------------------


def test_client_connects_and_reads_meta(client, release):
    meta = fetch_meta(client=client)
    assert meta["dataset"] == "hemibrain" and meta["tag"] == "v1.2.1"
    assert client.primary_rois == sorted(release["manifest"]["primary_rois"])
    # (for a dataset called 'hemibrain' neuprint-python adds a few hemibrain-only ROI names itself)
    assert set(release["manifest"]["rois"]) <= set(client.all_rois)
    assert meta["voxelSize"] == [8, 8, 8]
    # fetch_meta parses the JSON properties into Python objects
    assert isinstance(meta["roiInfo"], dict) and isinstance(meta["roiHierarchy"], dict)
    post_totals = release["roi_counts"].query("roi != 'NotPrimary'").groupby("roi")["post"].sum()
    for roi, post in post_totals.items():
        assert meta["roiInfo"][roi]["post"] == post
    keys = client.fetch_neuron_keys()
    assert {"bodyId", "type", "instance", "status", "pre", "post", "cellBodyFiber"} <= set(keys)
    assert not set(keys) & set(client.all_rois)


# ---------------------------------------------------------------------------------------------
# fetch_neurons
# ---------------------------------------------------------------------------------------------


def test_fetch_neurons_by_ids_includes_segments(client, release):
    ids = [101, 301, 9001, 9003, 123456]  # 9001/9003 are :Segment-only, 123456 does not exist
    neurons, roi_counts = fetch_neurons(NC(bodyId=ids), client=client)
    n = release["neurons"].set_index("id")
    assert sorted(neurons["bodyId"]) == [101, 301, 9001, 9003]
    for row in neurons.itertuples():
        assert row.pre == n.loc[row.bodyId, "pre"] and row.post == n.loc[row.bodyId, "post"]
        expected_type = n.loc[row.bodyId, "type"]
        assert (row.type == expected_type) or (pd.isna(row.type) and pd.isna(expected_type))
    # per-ROI counts come from roi_counts.parquet; NotPrimary = total minus the primary ROIs
    rc = release["roi_counts"]
    got = roi_counts.set_index(["bodyId", "roi"])
    for (body, roi), row in rc[rc["id"].isin(ids)].set_index(["id", "roi"]).iterrows():
        if roi == "NotPrimary":
            continue
        assert got.loc[(body, roi), "pre"] == row["pre"] and got.loc[(body, roi), "post"] == row["post"]
    for body in [101, 301]:
        primary = rc[(rc["id"] == body) & (rc["roi"] != "NotPrimary")]
        assert got.loc[(body, "NotPrimary"), "post"] == n.loc[body, "post"] - primary["post"].sum()


def test_fetch_neurons_type_regex_only_neurons(client, release):
    neurons, _ = fetch_neurons(NC(type="DA1.*", regex=True), client=client)
    n = release["neurons"]
    expected = n[n["is_neuron"] & n["type"].fillna("").str.fullmatch("DA1.*")]["id"]
    assert sorted(neurons["bodyId"]) == sorted(expected)
    assert list(neurons["bodyId"]) == sorted(neurons["bodyId"])  # ORDER BY n.bodyId
    # regex is a full match, like neo4j's =~
    neurons, _ = fetch_neurons(NC(type="DA1", regex=True), client=client)
    assert neurons.empty


def test_fetch_neurons_by_status_and_min_pre(client, release):
    neurons, _ = fetch_neurons(NC(status=["Traced", "Anchor"], min_pre=4), client=client)
    n = release["neurons"]
    expected = n[n["is_neuron"] & n["status"].isin(["Traced", "Anchor"]) & (n["pre"] >= 4)]["id"]
    assert sorted(neurons["bodyId"]) == sorted(expected) and len(expected) > 2
    # instance matching works alongside
    neurons, _ = fetch_neurons(NC(instance="DA1_lPN_R"), client=client)
    assert sorted(neurons["bodyId"]) == sorted(n.loc[n["instance"] == "DA1_lPN_R", "id"])


def test_fetch_neurons_rois_and_directed_rois(client, release):
    rc = release["roi_counts"]
    n = release["neurons"]
    neuron_ids = set(n.loc[n["is_neuron"], "id"])

    def bodies(mask):
        return set(rc.loc[mask, "id"]) & neuron_ids

    # rois=: any synapse in the ROI (boolean ROI properties)
    neurons, _ = fetch_neurons(NC(rois=["LH(R)", "AL(R)"], roi_req="all"), client=client)
    in_lh = bodies((rc["roi"] == "LH(R)") & (rc["pre"] + rc["post"] > 0))
    in_al = bodies((rc["roi"] == "AL(R)") & (rc["pre"] + rc["post"] > 0))
    assert set(neurons["bodyId"]) == in_lh & in_al

    # inputRois with a threshold (roiInfo[roi]['post'] >= min_roi_inputs) and outputRois (pre >= 1)
    neurons, _ = fetch_neurons(NC(inputRois=["MB(+ACA)(R)"], outputRois=["LH(R)"], min_roi_inputs=5),
                               client=client)
    inputs = bodies((rc["roi"] == "MB(+ACA)(R)") & (rc["post"] >= 5))
    outputs = bodies((rc["roi"] == "LH(R)") & (rc["pre"] >= 1))
    assert set(neurons["bodyId"]) == inputs & outputs and len(inputs & outputs) >= 1
    assert all("LH(R)" in r for r in neurons["outputRois"])

    # roi names with brackets and '+' survive the round trip
    neurons, _ = fetch_neurons(NC(inputRois=["MB(+ACA)(R)"], roi_req="any"), client=client)
    assert set(neurons["bodyId"]) == bodies((rc["roi"] == "MB(+ACA)(R)") & (rc["post"] >= 1))


def test_fetch_neurons_many_types_uses_global_with(client, release):
    # more than 3 values become a WITH [...] AS n_search_type list before MATCH
    types = ["KCg-m", "KCab-s", "MBON01", "MBON02", "nonexistent"]
    neurons, _ = fetch_neurons(NC(type=types), client=client)
    n = release["neurons"]
    assert sorted(neurons["bodyId"]) == sorted(n.loc[n["type"].isin(types) & n["is_neuron"], "id"])


# ---------------------------------------------------------------------------------------------
# connectivity
# ---------------------------------------------------------------------------------------------


def test_fetch_adjacencies_total_and_per_roi(client, release):
    conn = release["connections"]
    sources = [101, 102, 202, 401]
    neurons, roi_conn = fetch_adjacencies(sources, None, client=client)
    # targets=None means NC(): label :Neuron, so the :Segment-only body 9001 is not a target
    is_neuron = release["neurons"].set_index("id")["is_neuron"]
    exp = conn[conn["pre"].isin(sources) & conn["post"].map(is_neuron)]
    assert (conn["pre"].isin(sources) & (conn["post"] == 9001)).any()
    got = roi_conn.groupby(["bodyId_pre", "bodyId_post", "roi"])["weight"].sum()
    expected = exp.astype({"roi": object}).groupby(["pre", "post", "roi"])["weight"].sum()
    expected.index.names = got.index.names
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_dtype=False,
                                   check_index_type=False)
    # the autapse 401 -> 401 is a connection like any other
    assert got.loc[(401, 401, "LH(R)")] == 2
    assert set(neurons["bodyId"]) == set(exp["pre"]) | set(exp["post"])


def test_fetch_adjacencies_with_rois_and_min_weight(client, release):
    conn = release["connections"]
    neurons, roi_conn = fetch_adjacencies(None, [401, 301], rois=["LH(R)"], min_roi_weight=2, client=client)
    exp = conn[conn["post"].isin([401, 301]) & (conn["roi"] == "LH(R)") & (conn["weight"] >= 2)]
    got = roi_conn.set_index(["bodyId_pre", "bodyId_post"])["weight"].sort_index()
    expected = exp.set_index(["pre", "post"])["weight"].sort_index()
    expected.index.names = got.index.names
    pd.testing.assert_series_equal(got, expected, check_dtype=False)
    assert set(roi_conn["roi"]) == {"LH(R)"}


def test_fetch_adjacencies_connection_without_synapses(client, release):
    # 301 -> 302 exists in connections.parquet only; its per-ROI weight is still served
    _, roi_conn = fetch_adjacencies([301], [302], client=client)
    assert roi_conn[["roi", "weight"]].values.tolist() == [["MB(+ACA)(R)", 4]]


def test_fetch_simple_connections(client, release):
    conn = _pair_weights(release["connections"])
    n = release["neurons"].set_index("id")
    df = fetch_simple_connections(101, None, min_weight=3, client=client)
    # the downstream side is NC() -> label :Neuron, so :Segment-only partners are excluded
    exp = conn[(conn["pre"] == 101) & (conn["weight"] >= 3) & conn["post"].map(n["is_neuron"])]
    assert sorted(zip(df["bodyId_post"], df["weight"])) == sorted(zip(exp["post"], exp["weight"]))
    assert list(df["weight"]) == sorted(df["weight"], reverse=True)  # ORDER BY e.weight DESC
    assert (df["type_pre"] == "DA1_lPN").all()
    roi_info = df.set_index("bodyId_post").loc[401, "conn_roiInfo"]
    assert roi_info == {"AL(R)": {"pre": roi_info["AL(R)"]["pre"], "post": 2},
                        "LH(R)": {"pre": roi_info["LH(R)"]["pre"], "post": 9}}
    # upstream of a body that only :Segment bodies feed: none with min_weight 1 among neurons
    up = fetch_simple_connections(None, 9002, min_weight=1, client=client)
    assert up.empty  # 9003 -> 9002 exists, but 9003 is not a :Neuron


def test_conn_roi_info_pre_counts_tbars(client, release):
    """ConnectsTo.roiInfo[roi]['pre'] counts distinct T-bars (polyadic synapses merged)."""
    syn = release["synapses"]
    df = fetch_custom("MATCH (n:Segment)-[e:ConnectsTo]->(m:Segment) "
                      "RETURN n.bodyId AS a, m.bodyId AS b, e.roiInfo AS info", client=client)
    for row in df.itertuples():
        info = json.loads(row.info)
        pair = syn[(syn["pre"] == row.a) & (syn["post"] == row.b)]
        for roi, counts in info.items():
            in_roi = pair[pair["roi"] == roi]
            if len(pair):
                assert counts["pre"] == len(in_roi.drop_duplicates(["pre_x", "pre_y", "pre_z"]))
                assert counts["post"] == len(in_roi)


# ---------------------------------------------------------------------------------------------
# synapses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("syn_type", [None, "pre", "post"])
def test_fetch_synapses_positions_and_confidence(client, release, syn_type):
    syn = release["synapses"]
    bodies = [101, 202, 401]
    crit = SC(type=syn_type, confidence=0.5, client=client)
    got = fetch_synapses(NC(bodyId=bodies), crit, client=client)
    sites = pd.concat([_pre_sites(syn), _post_sites(syn)], ignore_index=True)
    exp = sites[sites["bodyId"].isin(bodies) & (sites["confidence"] > 0.5)]  # neuprint-python uses '>'
    if syn_type:
        exp = exp[exp["type"] == syn_type]
    exp = _voxels(exp)
    cols = ["bodyId", "type", "x", "y", "z"]
    got_rows = sorted(map(tuple, got[cols].astype({"type": str}).values.tolist()))
    exp_rows = sorted(map(tuple, exp[cols].values.tolist()))
    assert got_rows == exp_rows and len(exp_rows) > 10
    # 0.5 itself is excluded by '>' (the synthetic release has confidences of exactly 0.5)
    assert (sites.loc[sites["bodyId"].isin(bodies), "confidence"] == 0.5).any()
    assert (got["confidence"] > 0.5).all()
    # the roi column is the synapse's primary ROI (None outside all of them)
    merged = got.astype({"type": str}).merge(exp, on=cols, suffixes=("", "_exp"))
    assert (merged["roi"].fillna("-") == merged["roi_exp"].fillna("-")).all()


def test_fetch_synapses_roi_filter(client, release):
    syn = release["synapses"]
    got = fetch_synapses(NC(bodyId=[101, 102]), SC(rois=["LH(R)"], confidence=0.0, client=client),
                         client=client)
    sites = pd.concat([_pre_sites(syn), _post_sites(syn)], ignore_index=True)
    exp = sites[sites["bodyId"].isin([101, 102]) & (sites["roi"] == "LH(R)")]
    assert len(got) == len(exp) > 0 and set(got["roi"]) == {"LH(R)"}


def test_fetch_synapse_connections(client, release):
    syn = release["synapses"]
    n = release["neurons"].set_index("id")
    got = fetch_synapse_connections([101, 102], None, SC(confidence=0.5, client=client), client=client)
    exp = syn[syn["pre"].isin([101, 102]) & syn["post"].map(n["is_neuron"])
              & (syn["pre_score"] > 0.5) & (syn["post_score"] > 0.5)]
    exp = _voxels(exp, cols=("pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"))
    cols = ["bodyId_pre", "bodyId_post", "x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]
    got_rows = sorted(map(tuple, got[cols].values.tolist()))
    exp_rows = sorted(map(tuple, exp[["pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y",
                                      "post_z"]].values.tolist()))
    assert got_rows == exp_rows and len(exp_rows) > 5
    assert (got["roi_post"].fillna("-").values == got["roi_pre"].fillna("-").values).all()
    np.testing.assert_allclose(sorted(got["confidence_post"]), sorted(exp["post_score"]), rtol=1e-6)


def test_fetch_synapse_connections_roi_filter_on_post_side(client, release):
    syn = release["synapses"]
    got = fetch_synapse_connections(None, [401], SC(rois=["AL(R)"], confidence=0.0, client=client),
                                    client=client)
    exp = syn[(syn["post"] == 401) & (syn["roi"] == "AL(R)")]
    assert len(got) == len(exp) > 0
    assert set(got["roi_post"]) == {"AL(R)"}


def test_arrow_transport_gives_the_same_frames(client):
    """With use_arrow=None the client fetches DataFrames over /api/custom/arrow (server >= 1.7.3)."""
    q = ("MATCH (n:Segment) RETURN n.bodyId AS bodyId, n.type AS type, n.pre AS pre, n.post AS post, "
         "n.`LH(R)` AS lh, n.roiInfo AS roiInfo ORDER BY n.bodyId")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        via_json = client.fetch_custom(q)
        via_arrow = client.fetch_custom(q, use_arrow=None)
    assert list(via_json.columns) == list(via_arrow.columns)
    pd.testing.assert_frame_equal(via_json.astype(object).where(via_json.notna(), None),
                                  via_arrow.astype(object).where(via_arrow.notna(), None), check_dtype=False)
