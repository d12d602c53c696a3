"""Unmodified caveclient 8.2.1 against the CAVE emulator, checked against the release files and the edit script."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest
import requests

from cave_emulator_support import (A1, A2, AD, BC, BC1, BC2, EDITS, F1, F2, FG, VERSION_TIMES, VOXEL,
                                   expected_roots, expected_view_ids, rerooted)
from connectomix_cave.emulator.testing import make_client

UTC = dt.timezone.utc


def _ts(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)


def _op_ts(i: int) -> dt.datetime:
    return dt.datetime.fromisoformat(EDITS["operations"][i]["timestamp"]).replace(tzinfo=UTC)


# --- construction, versions ----------------------------------------------------------------------------------


def test_construction_and_server_versions(emulator, cave_client):
    assert cave_client.info.get_datastack_info()["synapse_table"] == "synapses_nt_v1"
    assert cave_client.info.segmentation_source().endswith("/segmentation/table/connectomix_emulator_v1")
    assert str(cave_client.materialize.server_version) == "5.26.4"
    assert str(cave_client.chunkedgraph.server_version) == "2.20.0"
    assert cave_client.chunkedgraph.table_name == "connectomix_emulator_v1"
    tables = cave_client.materialize.get_tables(version=1)
    assert set(tables) == {"synapses_nt_v1", "cell_types", "neuron_information_v2", "proofread_neurons",
                           "hierarchical_neuron_annotations"}  # the FlyWire annotation profile
    assert set(cave_client.materialize.get_views(1)) == {"valid_synapses_nt_np_v6", "valid_connection_v2"}
    assert cave_client.info.get_datastacks() == ["flywire_fafb_public", "flywire_fafb_production", "forbidden_stack"]


def test_versions_timestamps_and_expired_version(cave_client):
    assert cave_client.materialize.get_versions() == [1, 2, 4]
    assert cave_client.materialize.get_versions(expired=True) == [1, 2, 3, 4]
    assert cave_client.materialize.most_recent_version() == 4
    for v, text in VERSION_TIMES.items():
        assert cave_client.materialize.get_timestamp(v) == _ts(text)  # microseconds survive
    meta = {m["version"]: m for m in cave_client.materialize.get_versions_metadata(expired=True)}
    assert meta[3]["valid"] is False and meta[3]["expires_on"] == _ts("2024-04-01T00:00:00.000000")
    assert [m["version"] for m in cave_client.materialize.get_versions_metadata()] == [1, 2, 4]
    with pytest.raises(requests.HTTPError, match="410") as err:
        cave_client.materialize.query_table("synapses_nt_v1", materialization_version=3)
    assert "not available" in err.value.response.json()["message"]
    with pytest.raises(requests.HTTPError, match="404"):
        cave_client.materialize.query_table("synapses_nt_v1", materialization_version=9)
    md = cave_client.materialize.get_table_metadata("synapses_nt_v1", version=1)
    assert md["voxel_resolution"] == [4.0, 4.0, 40.0] and md["reference_table"] is None
    assert "SYNTHETIC" in md["description"]


# --- frozen queries --------------------------------------------------------------------------------------------


def test_version1_is_the_release(cave_client, release_rows):
    ids = [107, 108]
    df = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": ids},
                                        split_positions=True, materialization_version=1)
    rel = release_rows[release_rows["pre"].isin(ids)].set_index("synapse_id").sort_index()
    df = df.set_index("id").sort_index()
    assert df.index.tolist() == rel.index.tolist()
    assert (df["pre_pt_root_id"] == rel["pre"]).all() and (df["post_pt_root_id"] == rel["post"]).all()
    for side in ("pre", "post"):
        got = df[[f"{side}_pt_position_{a}" for a in "xyz"]].to_numpy(float) * VOXEL
        assert np.array_equal(got, rel[[f"{side}_{a}" for a in "xyz"]].to_numpy(float))  # nm / voxel, exact
    assert (df["cleft_score"] == np.round(rel["score"] * 100)).all()
    assert df["neuropil"].fillna("<NA>").tolist() == rel["roi"].fillna("<NA>").tolist()
    nt = df[["gaba", "ach", "glut", "oct", "ser", "da"]].sum(axis=1)
    assert np.allclose(nt, 1.0, atol=1e-3)
    assert df.attrs["dataframe_resolution"] == [4.0, 4.0, 40.0]
    merged = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": ids},
                                            materialization_version=1, select_columns=["id", "pre_pt_position"])
    assert list(merged.columns) == ["id", "pre_pt_position"] and len(merged["pre_pt_position"].iloc[0]) == 3


@pytest.mark.parametrize("version", [2, 4])
def test_later_versions_are_rerooted_by_the_edits(cave_client, v1_rows, version):
    until = VERSION_TIMES[version]
    expected = rerooted(v1_rows, until).set_index("id").sort_index()
    got = cave_client.materialize.query_table("synapses_nt_v1", materialization_version=version,
                                         split_positions=True).set_index("id").sort_index()
    assert got.index.equals(expected.index)
    assert (got["pre_pt_root_id"] == expected["pre_pt_root_id"]).all()
    assert (got["post_pt_root_id"] == expected["post_pt_root_id"]).all()
    roots = set(got["pre_pt_root_id"]) | set(got["post_pt_root_id"])
    if version == 2:
        assert {A1, A2, BC} <= roots and not {101, 102, 103, AD} & roots
    else:
        assert {AD, A2, BC, FG, F2} <= roots and not {101, A1, 104, 105, F1, 106, BC1} & roots
    # a filter on a new root finds exactly the synapses of the merged bodies' supervoxels
    target = BC
    sub = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"post_pt_root_id": [target]},
                                         materialization_version=version)
    assert set(sub["id"]) == set(expected.index[expected["post_pt_root_id"] == target])
    assert set(sub["id"]) == set(v1_rows.loc[v1_rows["post_pt_root_id"].isin([102, 103]), "id"])


def test_split_divides_the_synapses(cave_client, v1_rows):
    v2 = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": [A1, A2]},
                                        materialization_version=2)
    v1 = v1_rows[v1_rows["pre_pt_root_id"] == 101]
    assert set(v2["id"]) == set(v1["id"])
    kept, moved = set(v2.loc[v2.pre_pt_root_id == A1, "id"]), set(v2.loc[v2.pre_pt_root_id == A2, "id"])
    assert kept and moved and not kept & moved
    svs = sorted(set(v1_rows.loc[v1_rows.pre_pt_root_id == 101, "pre_pt_supervoxel_id"])
                 | set(v1_rows.loc[v1_rows.post_pt_root_id == 101, "post_pt_supervoxel_id"]))
    moved_svs = set(svs[len(svs) - len(svs) // 2:])
    assert moved == set(v1.loc[v1["pre_pt_supervoxel_id"].isin(moved_svs), "id"])


def test_filters(cave_client, v1_rows):
    t = v1_rows
    q = cave_client.materialize.query_table
    df = q("synapses_nt_v1", filter_out_dict={"pre_pt_root_id": [101, 102]}, filter_greater_dict={"cleft_score": 60},
           filter_less_equal_dict={"cleft_score": 90}, materialization_version=1)
    exp = t[~t.pre_pt_root_id.isin([101, 102]) & (t.cleft_score > 60) & (t.cleft_score <= 90)]
    assert set(df["id"]) == set(exp["id"])
    df = q("synapses_nt_v1", filter_equal_dict={"post_pt_root_id": 110}, filter_less_dict={"cleft_score": 50},
           filter_greater_equal_dict={"cleft_score": 40}, materialization_version=1)
    exp = t[(t.post_pt_root_id == 110) & (t.cleft_score < 50) & (t.cleft_score >= 40)]
    assert set(df["id"]) == set(exp["id"]) and len(exp)
    x0, x1 = np.percentile(t.post_pt_position_x, [20, 60])
    box = [[int(x0), 0, 0], [int(x1), 10**9, 10**9]]
    df = q("synapses_nt_v1", filter_spatial_dict={"post_pt_position": box}, materialization_version=1,
           split_positions=True)
    exp = t[(t.post_pt_position_x >= int(x0)) & (t.post_pt_position_x <= int(x1))]
    assert set(df["id"]) == set(exp["id"]) and len(exp)
    df = q("synapses_nt_v1", filter_regex_dict={"neuropil": "^(AL|LH)_"}, materialization_version=1)
    assert set(df["id"]) == set(t.loc[t.neuropil.fillna("").str.match(r"^(AL|LH)_"), "id"])
    df = q("cell_types", filter_regex_dict={"cell_type": "KC"}, materialization_version=1)
    assert sorted(df["pt_root_id"]) == [105, 106, 107]
    with pytest.raises(requests.HTTPError, match="400") as err:
        q("synapses_nt_v1", filter_in_dict={"no_such_column": [1]}, materialization_version=1)
    assert "no_such_column" in err.value.response.json()["message"]


def test_counts_samples_and_resolution(cave_client, v1_rows):
    q = cave_client.materialize.query_table
    count = q("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": [101]}, materialization_version=1,
              get_counts=True)
    assert count["count"].tolist() == [int((v1_rows.pre_pt_root_id == 101).sum())]
    view_count = cave_client.materialize.query_view("valid_synapses_nt_np_v6", materialization_version=1,
                                                    get_counts=True)
    assert view_count["count"].tolist() == [len(cave_client.materialize.query_view("valid_synapses_nt_np_v6",
                                                                                   materialization_version=1))]
    sample = q("synapses_nt_v1", random_sample=17, materialization_version=1)
    assert len(sample) == 17 and set(sample["id"]) <= set(v1_rows["id"])
    nm = q("synapses_nt_v1", filter_in_dict={"id": v1_rows["id"][:5].tolist()}, desired_resolution=[1, 1, 1],
           split_positions=True, materialization_version=1).set_index("id").sort_index()
    vx = v1_rows.set_index("id").loc[nm.index]
    assert np.allclose(nm["pre_pt_position_z"], vx["pre_pt_position_z"] * 40.0)
    assert nm.attrs["dataframe_resolution"] == [1.0, 1.0, 1.0]


def test_views(cave_client, v1_rows, release_rows):
    view = cave_client.materialize.query_view("valid_synapses_nt_np_v6", materialization_version=1,
                                              split_positions=True)
    assert set(view["id"]) == expected_view_ids(v1_rows, release_rows)
    assert (view["cleft_score"] > 50).all() and len(view) < len(v1_rows)
    assert "neuropil" in view.columns and "valid" not in view.columns
    # the planted near-duplicates (post site 4 nm away, lower score) that share a supervoxel pair are gone
    ids = set(release_rows["synapse_id"])
    dups = [i for i in ids if i % 10 == 1 and i - 1 in ids]
    t = v1_rows.set_index("id")
    same_pair = [d for d in dups if (t.loc[d, ["pre_pt_supervoxel_id", "post_pt_supervoxel_id"]]
                                     == t.loc[d - 1, ["pre_pt_supervoxel_id", "post_pt_supervoxel_id"]]).all()
                 and t.loc[d - 1, "cleft_score"] > 50]
    assert same_pair and not set(same_pair) & set(view["id"])
    # filtered view at version 4, filtered by a merged root
    v4 = cave_client.materialize.query_view("valid_synapses_nt_np_v6", filter_in_dict={"pre_pt_root_id": [AD]},
                                       materialization_version=4)
    exp = rerooted(v1_rows, VERSION_TIMES[4])
    exp = exp[exp["id"].isin(expected_view_ids(v1_rows, release_rows)) & (exp.pre_pt_root_id == AD)]
    assert set(v4["id"]) == set(exp["id"]) and len(exp)
    # connection view = the filtered view grouped by root pair
    conn = cave_client.materialize.query_view("valid_connection_v2", filter_in_dict={"pre_pt_root_id": [AD]},
                                         materialization_version=4)
    n = exp.groupby("post_pt_root_id").size()
    assert dict(zip(conn["post_pt_root_id"], conn["n_syn"])) == n.to_dict()


def test_cell_type_tables_follow_the_supervoxels(cave_client, emulator_release):
    neurons = pd.read_parquet(emulator_release / "neurons.parquet")
    typed = neurons[neurons["type"].notna()]
    v1 = cave_client.materialize.query_table("cell_types", materialization_version=1)
    assert dict(zip(v1["pt_root_id"], v1["cell_type"])) == dict(zip(typed["id"], typed["type"]))
    v4 = cave_client.materialize.query_table("neuron_information_v2", materialization_version=4)
    assert len(v4) == 2 * len(typed) and "tag" in v4.columns  # two free-text tags per typed neuron (long)
    v1_roots = dict(zip(v1["pt_supervoxel_id"], v1["pt_root_id"]))
    moved_to = dict(zip(v4["pt_supervoxel_id"], v4["pt_root_id"]))
    assert moved_to[next(sv for sv, r in v1_roots.items() if r == 104)] == AD  # 104 merged into AD
    assert moved_to[next(sv for sv, r in v1_roots.items() if r == 102)] == BC


def test_live_live_query_and_live_query(emulator, cave_client, v1_rows):
    now = dt.datetime.now(UTC)
    live = cave_client.materialize.live_live_query("synapses_nt_v1", now,
                                              filter_in_dict={"synapses_nt_v1": {"post_pt_root_id": [BC1, BC2]}})
    exp = rerooted(v1_rows, None)
    assert set(live["id"]) == set(exp.loc[exp.post_pt_root_id.isin([BC1, BC2]), "id"])
    assert set(live["post_pt_root_id"]) == {BC1, BC2}
    # a root that is not current at the timestamp is refused, like the real server
    with pytest.raises(requests.HTTPError, match="400"):
        cave_client.materialize.live_live_query("synapses_nt_v1", now,
                                           filter_in_dict={"synapses_nt_v1": {"post_pt_root_id": [BC]}})
    # between two versions: the state at that time (after operation 2, before operation 3)
    mid = dt.datetime(2024, 1, 25, tzinfo=UTC)
    df = cave_client.materialize.live_live_query("synapses_nt_v1", mid,
                                            filter_in_dict={"synapses_nt_v1": {"pre_pt_root_id": [BC, A1]}})
    exp = rerooted(v1_rows, "2024-01-25T00:00:00")
    assert set(df["id"]) == set(exp.loc[exp.pre_pt_root_id.isin([BC, A1]), "id"])
    # caveclient's client-side live_query (frozen query + past_id_mapping + roots_binary)
    lq = cave_client.materialize.live_query("synapses_nt_v1", now, filter_in_dict={"pre_pt_root_id": [BC2]})
    assert set(lq["id"]) == set(exp.loc[exp.pre_pt_supervoxel_id.isin(
        [sv for sv, r in expected_roots(v1_rows, None).items() if r == BC2]), "id"])
    assert set(lq["pre_pt_root_id"]) == {BC2}
    assert emulator.stats.requests("past_id_mapping") >= 1 and emulator.stats.requests("roots_binary") >= 1


def test_row_cap_truncates_with_a_warning(emulator, cave_client, v1_rows, caplog):
    emulator.row_limit = 25
    full = set(v1_rows.loc[v1_rows.pre_pt_root_id.isin([101, 102, 103]), "id"])
    assert len(full) > 60
    with caplog.at_level(logging.WARNING, logger="caveclient"):
        df = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": [101, 102, 103]},
                                            materialization_version=1)
    assert len(df) == 25 and set(df["id"]) <= full
    assert '201 - "Limited query to 25 rows' in caplog.text
    assert not df["id"].is_monotonic_increasing  # unordered, like the real server
    # paging with offset partitions the result (the order is deterministic)
    pages = []
    for offset in range(0, len(full) + 25, 25):
        page = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": [101, 102, 103]},
                                              materialization_version=1, offset=offset, limit=25)
        pages.append(set(page["id"]))
    assert set().union(*pages) == full and sum(map(len, pages)) == len(full)
    # a smaller client limit is honoured; the warning fires when exactly `limit` rows come back
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="caveclient"):
        small = cave_client.materialize.query_view("valid_synapses_nt_np_v6", materialization_version=1, limit=7)
    assert len(small) == 7 and "Limited query to 7 rows" in caplog.text


# --- chunkedgraph -------------------------------------------------------------------------------------------------


def test_is_latest_roots_at_version_timestamps(cave_client):
    cg = cave_client.chunkedgraph
    ids = [101, A1, A2, AD, 104, F1, FG, BC, BC1, 107]
    expected = {
        1: [True, False, False, False, True, False, False, False, False, True],
        2: [False, True, True, False, True, False, False, True, False, True],
        3: [False, False, True, True, False, True, False, True, False, True],
        4: [False, False, True, True, False, False, True, True, False, True],
    }
    for v, exp in expected.items():
        assert cg.is_latest_roots(ids, timestamp=cave_client.materialize.get_timestamp(v)).tolist() == exp
    assert cg.is_latest_roots(ids).tolist() == [False, False, True, True, False, False, True, False, True, True]
    # boundary: a root is latest from its creation time on
    assert cg.is_latest_roots([A1, 101], timestamp=_op_ts(0)).tolist() == [True, False]


def test_root_timestamps_and_roots(cave_client, v1_rows):
    cg = cave_client.chunkedgraph
    ts = cg.get_root_timestamps([101, A1, AD])
    assert ts.tolist() == [dt.datetime(2023, 12, 1, tzinfo=UTC), _op_ts(0), _op_ts(2)]
    latest = cg.get_root_timestamps([101, AD], latest=True, timestamp=cave_client.materialize.get_timestamp(4))
    assert latest.tolist() == [_op_ts(0) - dt.timedelta(milliseconds=1),
                               cave_client.materialize.get_timestamp(4) - dt.timedelta(milliseconds=1)]
    svs = np.array(sorted(v1_rows.loc[v1_rows.pre_pt_root_id.isin([101, 105]), "pre_pt_supervoxel_id"].unique()))
    for when in (VERSION_TIMES[1], VERSION_TIMES[2], VERSION_TIMES[4], None):
        exp = expected_roots(v1_rows, when)
        stamp = _ts(when) if when else None
        got = cg.get_roots(svs, timestamp=stamp)
        assert got.dtype == np.uint64 and got.tolist() == [exp[int(s)] for s in svs]
    assert cg.get_roots([12345]).tolist() == [0]  # not a supervoxel: 0, as PyChunkedGraph's fail_to_zero
    first = int(svs[0])
    assert cg.get_root_id(first, timestamp=_ts(VERSION_TIMES[1])) == expected_roots(v1_rows, VERSION_TIMES[1])[first]
    leaves = cg.get_leaves(BC)
    assert set(leaves) == {sv for sv, r in expected_roots(v1_rows, VERSION_TIMES[2]).items() if r == BC}


def test_past_ids_lineage_and_delta_roots(cave_client):
    cg = cave_client.chunkedgraph
    t1 = cave_client.materialize.get_timestamp(1)
    past = cg.get_past_ids([AD, FG, 107], timestamp_past=t1)
    assert {k: sorted(v) for k, v in past["past_id_map"].items()} == {AD: [101, 104], FG: [105, 106], 107: [107]}
    assert past["future_id_map"] == {104: AD, 106: FG, 107: 107}  # 101 and 105 were split
    graph = cg.get_lineage_graph(AD, timestamp_past=t1, as_nx_graph=True)
    assert set(graph.edges) == {(101, A1), (A1, AD), (104, AD)}
    assert graph.nodes[101]["operation_id"] == 1 and "operation_id" not in graph.nodes[AD]
    assert set(cg.get_latest_roots(101)) == {AD, A2}
    assert set(cg.get_latest_roots(102)) == {BC1, BC2}
    assert set(cg.get_latest_roots(102, timestamp=cave_client.materialize.get_timestamp(4))) == {BC}
    assert cg.suggest_latest_roots(104) == AD
    stamp = cave_client.materialize.get_timestamp
    old, new = cg.get_delta_roots(stamp(2), stamp(4))
    assert sorted(old) == sorted([A1, 104, 105, F1, 106]) and sorted(new) == sorted([AD, F1, F2, FG])


# --- errors ------------------------------------------------------------------------------------------------------


def test_authentication_and_permissions(emulator):
    url = emulator.url
    r = requests.get(f"{url}/info/api/v2/datastack/full/{emulator.datastack}")
    assert r.status_code == 401 and set(r.json()) == {"error", "message"}
    r = requests.get(f"{url}/info/api/v2/datastack/full/{emulator.datastack}", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "nope" not in r.text
    r = requests.get(f"{url}/info/api/v2/datastack/full/{emulator.datastack}",
                     cookies={"middle_auth_token": "tok-good"})
    assert r.status_code == 200
    r = requests.post(f"{url}/segmentation/api/v1/table/connectomix_emulator_v1/is_latest_roots",
                      data='{"node_ids": [101]}', headers={"Authorization": "Bearer tok-forbidden"})
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    from caveclient import CAVEclient

    with pytest.raises(requests.HTTPError, match="401"):
        CAVEclient(emulator.datastack, server_address=url, auth_token="wrong", write_server_cache=False)
    with pytest.raises(requests.HTTPError, match="403"):
        make_client(emulator, "forbidden_stack")
    with pytest.raises(requests.HTTPError, match="404"):
        make_client(emulator, "no_such_stack")
    assert requests.get(f"{url}/materialize/version").json() == "5.26.4"  # version probes are public


def test_unknown_names_give_404_with_a_message(emulator, cave_client):
    with pytest.raises(requests.HTTPError, match="404") as err:
        cave_client.materialize.query_table("no_such_table", materialization_version=1)
    assert "no_such_table" in str(err.value)
    with pytest.raises(requests.HTTPError, match="404"):
        cave_client.materialize.query_view("no_such_view", materialization_version=1)
    r = requests.post(f"{emulator.url}/segmentation/api/v1/table/wrong_table/is_latest_roots", data="{}",
                      headers={"Authorization": "Bearer tok-good"})
    assert r.status_code == 404 and "wrong_table" in r.json()["message"]
    r = requests.get(f"{emulator.url}/materialize/api/v3/datastack/{emulator.datastack}/version/77",
                     headers={"Authorization": "Bearer tok-good"})
    assert r.status_code == 404 and r.json() == "No version found"


def test_other_served_names_share_the_data(emulator, cave_client):
    prod = make_client(emulator, "flywire_fafb_production")
    assert prod.materialize.get_versions() == cave_client.materialize.get_versions()
    assert "tok-good" not in repr(emulator) and emulator.token == "tok-good"
