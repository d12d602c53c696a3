"""The release -> neuPrint graph mapping, checked through Cypher against pandas."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import DataFormatError, InvalidArgumentError
from connectomix_neuprint.emulator.engine import EngineError, KuzuEngine, WriteQueryError
from connectomix_neuprint.emulator.model import build_model, skeleton_swc
from connectomix_neuprint.emulator.synthetic import write_synthetic_release


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_synthetic_release(tmp_path_factory.mktemp("eng") / "release")


@pytest.fixture(scope="module")
def tables(folder):
    return {t: pd.read_parquet(folder / f"{t}.parquet") for t in ("neurons", "connections", "roi_counts",
                                                                 "synapses")}


@pytest.fixture(scope="module")
def engine(folder):
    with KuzuEngine(build_model(folder), pool_size=2) as e:
        yield e


def scalar(engine, q):
    (row,) = engine.run(q).rows
    return row[0]


def test_node_and_relationship_counts(engine, tables):
    n, c, s = tables["neurons"], tables["connections"], tables["synapses"]
    assert scalar(engine, "MATCH (n:Segment) RETURN count(n)") == len(n)
    assert scalar(engine, "MATCH (n:Neuron) RETURN count(n)") == int(n["is_neuron"].sum())
    assert scalar(engine, "MATCH (:Segment)-[e:ConnectsTo]->(:Segment) RETURN count(e)") == \
        len(c[["pre", "post"]].drop_duplicates())
    tbars = s[["pre", "pre_x", "pre_y", "pre_z"]].drop_duplicates()
    assert scalar(engine, "MATCH (s:Synapse {type: 'pre'}) RETURN count(s)") == len(tbars) < len(s)
    assert scalar(engine, "MATCH (s:Synapse {type: 'post'}) RETURN count(s)") == len(s)
    assert scalar(engine, "MATCH (:Synapse)-[r:SynapsesTo]->(:Synapse) RETURN count(r)") == len(s)
    pairs = s[["pre", "post"]].drop_duplicates()
    assert scalar(engine, "MATCH (ss:SynapseSet) RETURN count(ss)") == 2 * len(pairs)
    assert scalar(engine, "MATCH (m:Meta) RETURN count(m)") == 1


def test_segment_properties(engine, tables):
    n = tables["neurons"].set_index("id")
    c = tables["connections"]
    rows = engine.run("MATCH (n:Segment) RETURN n.bodyId, n.type, n.instance, n.status, n.statusLabel, n.pre, "
                      "n.post, n.upstream, n.downstream, n.cellBodyFiber, n.synthetic, n.size ORDER BY n.bodyId")
    for body, typ, inst, status, label, pre, post, up, down, cbf, synthetic, size in rows.rows:
        ref = n.loc[body]
        assert (typ, inst, status) == tuple(None if pd.isna(v) else v for v in ref[["type", "instance", "status"]])
        assert label == status and (pre, post) == (ref["pre"], ref["post"])
        assert up == c.loc[c["post"] == body, "weight"].sum() and down == c.loc[c["pre"] == body, "weight"].sum()
        assert cbf == (None if pd.isna(ref["cellBodyFiber"]) else ref["cellBodyFiber"])
        assert synthetic is True and size is None


def test_roi_info_and_roi_flags(engine, tables):
    rc = tables["roi_counts"]
    rows = engine.run("MATCH (n:Segment) RETURN n.bodyId, n.roiInfo, n.`AL(R)`, n.`LH(R)`, n.`MB(+ACA)(R)`, "
                      "n.`MB(R)`").rows
    for body, info, al, lh, mb, mb_nonprimary in rows:
        info = json.loads(info)
        expected = rc[(rc["id"] == body) & (rc["roi"] != "NotPrimary") & (rc["pre"] + rc["post"] > 0)]
        assert info == {r: {"pre": p, "post": q} for r, p, q in expected[["roi", "pre", "post"]].values}
        assert (al, lh, mb) == tuple(True if r in info else None for r in ("AL(R)", "LH(R)", "MB(+ACA)(R)"))
        assert mb_nonprimary is None  # a non-primary ROI without data: absent, never false


def test_connects_to_weights_and_roi_info(engine, tables):
    c = tables["connections"]
    totals = c.groupby(["pre", "post"])["weight"].sum()
    rows = engine.run("MATCH (a:Segment)-[e:ConnectsTo]->(b:Segment) RETURN a.bodyId, b.bodyId, e.weight, "
                      "e.roiInfo").rows
    assert len(rows) == len(totals)
    for a, b, w, info in rows:
        assert w == totals.loc[(a, b)]
        per_roi = c[(c["pre"] == a) & (c["post"] == b) & (c["roi"] != "NotPrimary")]
        assert {r: v["post"] for r, v in json.loads(info).items()} == dict(per_roi[["roi", "weight"]].values)


def test_synapse_properties_in_voxels(engine, tables):
    s = tables["synapses"]
    rows = engine.run("MATCH (a:Synapse)-[:SynapsesTo]->(b:Synapse) RETURN a.location.x, a.location.y, "
                      "a.location.z, b.location.x, b.location.y, b.location.z, b.confidence, "
                      "b.`LH(R)`, b.`AL(R)`").rows
    got = sorted(tuple(r[:7]) for r in rows)
    exp = sorted(zip(s["pre_x"] / 8, s["pre_y"] / 8, s["pre_z"] / 8, s["post_x"] / 8, s["post_y"] / 8,
                     s["post_z"] / 8, s["post_score"]))
    np.testing.assert_allclose(np.array(got, dtype=float), np.array(exp, dtype=float))
    lh = sum(1 for r in rows if r[7])
    assert lh == int((s["roi"] == "LH(R)").sum())
    # the merged T-bar keeps the best presynaptic score of its rows
    best = s.groupby(["pre", "pre_x", "pre_y", "pre_z"])["pre_score"].max()
    got_pre = engine.run("MATCH (n:Segment)-[:Contains]->(:SynapseSet)-[:Contains]->(t:Synapse {type: 'pre'}) "
                         "RETURN DISTINCT n.bodyId, t.location.x * 8, t.location.y * 8, t.location.z * 8, "
                         "t.confidence").rows
    assert len(got_pre) == len(best)
    for body, x, y, z, conf in got_pre:
        assert conf == pytest.approx(best.loc[(body, x, y, z)])


def test_synapse_sets_partition_by_partner(engine, tables):
    s = tables["synapses"]
    rows = engine.run("MATCH (a:Segment)-[:Contains]->(sa:SynapseSet)-[:ConnectsTo]->(sb:SynapseSet)"
                      "<-[:Contains]-(b:Segment) "
                      "MATCH (sb)-[:Contains]->(p:Synapse) RETURN a.bodyId, b.bodyId, count(p)").rows
    expected = s.groupby(["pre", "post"]).size()
    assert {(a, b): n for a, b, n in rows} == expected.to_dict()


def test_node_and_relationship_values(engine):
    (meta,), = engine.run("MATCH (m:Meta) RETURN m").rows
    props = meta.properties
    assert props["primaryRois"] == ["AL(R)", "LH(R)", "MB(+ACA)(R)"] and isinstance(props["roiInfo"], str)
    assert "ntSynapseProperties" not in props and not any(k.startswith("_") for k in props)
    assert json.loads(props["synthetic"])["neurons"] == "all rows"
    (node,), = engine.run("MATCH (n:Neuron {bodyId: 101}) RETURN n").rows
    assert node.labels == ("Segment", "Neuron") and "mito" not in node.properties


def test_read_only_database(engine):
    with pytest.raises(WriteQueryError):
        engine.run("CREATE (n:Segment {bodyId: 77})")
    # even a write that bypassed the rewriter fails: the database is opened read-only
    conn = engine._connections[0]
    with pytest.raises(RuntimeError, match="read-only"):
        conn.execute("CREATE (n:Segment {bodyId: 77})")


def test_dataset_name_voxel_size_and_thresholds(folder):
    m = build_model(folder, name="hemibrain:v1.2.1", voxel_size=[4, 4, 40], post_high_accuracy_threshold=0.7)
    assert (m.name, m.dataset, m.tag) == ("hemibrain:v1.2.1", "hemibrain", "v1.2.1")
    with KuzuEngine(m, pool_size=1) as e:
        x, z, thr = e.run("MATCH (s:Synapse), (m:Meta) WITH s, m ORDER BY s.location.x LIMIT 1 "
                          "RETURN s.location.x, s.location.z, m.postHighAccuracyThreshold").rows[0]
        s = pd.read_parquet(folder / "synapses.parquet")
        assert x == pytest.approx(min(s["pre_x"].min(), s["post_x"].min()) / 4) and thr == 0.7
    with pytest.raises(InvalidArgumentError):
        build_model(folder, voxel_size=[0, 1, 1])
    with pytest.raises(InvalidArgumentError):
        build_model(folder, name=":v1")


def test_release_without_synapses_or_roi_counts(folder, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "synapses.parquet").unlink()
    (bare / "roi_counts.parquet").unlink()
    shutil.rmtree(bare / "skeletons")
    m = build_model(bare)
    assert m.skeleton_dir is None and skeleton_swc(m, 101) is None
    with KuzuEngine(m, pool_size=1) as e:
        assert scalar(e, "MATCH (s:Synapse) RETURN count(s)") == 0
        assert scalar(e, "MATCH (n:Segment {bodyId: 101}) RETURN n.roiInfo") == "{}"
        # without synapses, ConnectsTo.roiInfo 'pre' falls back to the weight
        info = json.loads(scalar(e, "MATCH (a:Segment {bodyId: 101})-[e:ConnectsTo]->(b:Segment {bodyId: 401}) "
                                    "RETURN e.roiInfo"))
        assert info["LH(R)"] == {"pre": 9, "post": 9}


def test_roi_info_from_synapses_when_roi_counts_missing(folder, tmp_path, tables):
    part = tmp_path / "no_roi_counts"
    shutil.copytree(folder, part)
    (part / "roi_counts.parquet").unlink()
    with KuzuEngine(build_model(part), pool_size=1) as e:
        info = json.loads(scalar(e, "MATCH (n:Segment {bodyId: 101}) RETURN n.roiInfo"))
    rc = tables["roi_counts"]
    expected = rc[(rc["id"] == 101) & (rc["roi"] != "NotPrimary")]
    assert info == {r: {"pre": p, "post": q} for r, p, q in expected[["roi", "pre", "post"]].values}


def test_bad_release_folders(tmp_path, folder):
    with pytest.raises(DataFormatError):
        build_model(tmp_path)  # no manifest
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "neurons.parquet").unlink()
    with pytest.raises(DataFormatError, match="neurons.parquet"):
        build_model(broken)


def test_skeleton_swc_in_voxels(folder):
    m = build_model(folder)
    text = skeleton_swc(m, 301)
    nodes = [line.split() for line in text.splitlines() if not line.startswith("#")]
    raw = [line.split() for line in (folder / "skeletons" / "301.swc").read_text().splitlines()
           if not line.startswith("#")]
    assert len(nodes) == len(raw)
    for a, b in zip(nodes, raw):
        assert float(a[2]) * 8 == pytest.approx(float(b[2])) and float(a[5]) * 8 == pytest.approx(float(b[5]))
        assert a[6] == b[6]


def test_engine_rejects_bad_queries_cleanly(engine):
    with pytest.raises(EngineError):
        engine.run("MATCH (n:Nonexistent) RETURN n")
    assert scalar(engine, "MATCH (n:Segment) RETURN count(n)") == 13  # still usable
