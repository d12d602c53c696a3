"""The release writer: validation against FORMAT.md, atomic writes, streaming synapses, folder checks.

All tables here are small SYNTHETIC fixtures.
"""

import json

import navis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import connectomix
from connectomix.errors import DataFormatError, InvalidArgumentError
from connectomix_release import writer
from connectomix_release.plugin import SAMPLE_DIR
from connectomix_release.writer import (
    ReleaseValidationError,
    make_manifest,
    read_manifest,
    validate_release,
    write_release,
    write_synapses_streaming,
)

BIG = 720575940600000000  # FlyWire-sized ids (> 2**53: a float round trip would corrupt them)


def manifest(**kw):
    base = dict(name="toy", version="v1", primary_rois=["AL(R)", "LH(R)"], score_name="confidence",
                synthetic={"all": "every table of this fixture is synthetic"})
    return make_manifest(**{**base, **kw})


def tables(rng_seed=0, n_syn=400):
    rng = np.random.default_rng(rng_seed)
    ids = BIG + np.arange(1, 9)
    neurons = pd.DataFrame({"id": ids[::-1], "type": ["A", "B", None, "C", "D", None, "E", "F"],
                            "instance": None, "status": "Traced", "pre": 0, "post": 0, "is_neuron": True,
                            "side": list("LRLRLRLR")})
    syn = pd.DataFrame({
        "synapse_id": rng.permutation(n_syn) + 1, "pre": rng.choice(ids, n_syn), "post": rng.choice(ids, n_syn),
        **{f"{s}_{a}": rng.integers(0, 10**6, n_syn).astype("int32") for s in ("pre", "post") for a in "xyz"},
        "score": rng.random(n_syn), "roi": rng.choice(np.array(["AL(R)", "LH(R)", None], dtype=object), n_syn),
    })
    bucket = syn.assign(roi=syn["roi"].fillna("NotPrimary"))
    connections = bucket.groupby(["pre", "post", "roi"], as_index=False).size().rename(columns={"size": "weight"})
    connections = connections.sample(frac=1, random_state=1)  # unsorted on purpose
    roi_counts = pd.concat([bucket.groupby(["pre", "roi"]).size().rename("pre").rename_axis(["id", "roi"]),
                            bucket.groupby(["post", "roi"]).size().rename("post").rename_axis(["id", "roi"])],
                           axis=1).fillna(0).astype("int64").reset_index()
    totals = roi_counts.groupby("id")[["pre", "post"]].sum()
    neurons["pre"] = neurons["id"].map(totals["pre"]).fillna(0).astype("int64")
    neurons["post"] = neurons["id"].map(totals["post"]).fillna(0).astype("int64")
    return {"neurons": neurons, "connections": connections, "roi_counts": roi_counts, "synapses": syn}


# -- round trip -----------------------------------------------------------------------------------------


def test_write_release_round_trip(tmp_path):
    t = tables()
    dest = write_release(tmp_path / "rel", manifest=manifest(), readme="# toy\n", **t)
    assert sorted(p.name for p in dest.iterdir()) == [
        "README.md", "connections.parquet", "manifest.json", "neurons.parquet", "roi_counts.parquet",
        "synapses.parquet", "synapses_by_post.parquet"]
    n = pd.read_parquet(dest / "neurons.parquet")
    assert n["id"].tolist() == sorted(t["neurons"]["id"])  # sorted, ids exact (no float round trip)
    assert n["side"].tolist() == t["neurons"].sort_values("id")["side"].tolist()  # extra column kept
    c = pd.read_parquet(dest / "connections.parquet")
    expected = t["connections"].sort_values(["pre", "post", "roi"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(c, expected, check_dtype=False)
    s = pd.read_parquet(dest / "synapses.parquet")
    assert s["pre"].is_monotonic_increasing
    assert sorted(s["synapse_id"]) == sorted(t["synapses"]["synapse_id"])
    schema = pq.read_schema(dest / "synapses.parquet")
    assert schema.field("pre_x").type == pa.float64() and schema.field("pre").type == pa.int64()
    assert s.set_index("synapse_id").loc[t["synapses"]["synapse_id"], "post_z"].tolist() == \
        t["synapses"]["post_z"].astype(float).tolist()
    m = read_manifest(dest)
    assert m["format"] == "connectomix-release" and m["format_version"] == 1 and m["rois"] == ["AL(R)", "LH(R)"]
    assert validate_release(dest).ok and validate_release(dest, deep=True).ok


def test_written_release_answers_queries(tmp_path):
    t = tables()
    dest = write_release(tmp_path / "rel", manifest=manifest(), **t)
    with connectomix.open(f"release://{dest}", cache=False) as ds:
        some = int(t["neurons"]["id"].iloc[0])
        syn = ds.get_synapses(some, progress=False)
        raw = t["synapses"]
        expected = raw[((raw.pre == some) | (raw.post == some)) & (raw.pre != raw.post)]
        assert sorted(syn["synapse_id"]) == sorted(expected["synapse_id"])
        edges = ds.get_connectivity(sources=some, by_roi=True, include_autapses=True)
        c = t["connections"]
        assert edges["weight"].sum() == c[c.pre == some]["weight"].sum()


def test_synapses_are_sorted_in_exact_row_groups(tmp_path):
    con = writer.connect()
    con.execute("CREATE TABLE s AS SELECT (random() * 100)::BIGINT AS pre, range AS synapse_id FROM range(2500)")
    n = writer.write_sorted(con, "s", tmp_path / "s.parquet", order_by=["pre", "synapse_id"], row_group_size=1000,
                            batch_rows=300)
    f = pq.ParquetFile(tmp_path / "s.parquet")
    assert n == 2500 and [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)] == [1000, 1000, 500]
    df = f.read().to_pandas()
    assert df.equals(df.sort_values(["pre", "synapse_id"], ignore_index=True))


# -- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table, change, message", [
    ("neurons", lambda d: d.drop(columns="is_neuron"), "missing required column"),
    ("neurons", lambda d: d.assign(id=d["id"].astype(float)), "floating-point ids lose precision"),
    ("neurons", lambda d: d.assign(id=d["id"].astype(str)), "must hold integers"),
    ("neurons", lambda d: pd.concat([d, d.iloc[:1]]), "must be unique"),
    ("neurons", lambda d: d.assign(id=np.r_[0, d["id"].iloc[1:]]), "id 0 is the background"),
    ("neurons", lambda d: d.assign(pre=-1), "counts must be >= 0"),
    ("connections", lambda d: d.assign(weight=0), "weights must be > 0"),
    ("connections", lambda d: d.assign(roi="al(r)"), "unknown ROI"),
    ("connections", lambda d: d.assign(post=BIG + 999), "ids missing from neurons"),
    ("connections", lambda d: d.assign(pre=np.where(np.arange(len(d)) == 0, np.nan, d["pre"])), "integers"),
    ("roi_counts", lambda d: pd.concat([d, d.iloc[:1]]), "must be unique"),
    ("synapses", lambda d: d.assign(roi="NotPrimary"), "null outside all primary ROIs"),
    ("synapses", lambda d: d.assign(pre_x=np.nan), "must not contain missing values"),
    ("synapses", lambda d: d.assign(post_z=np.inf), "finite numbers"),
    ("synapses", lambda d: pd.concat([d, d.iloc[:2]]), "must be unique"),
    ("synapses", lambda d: d.assign(pre_x="12"), "must hold numbers"),
])
def test_invalid_tables_are_rejected_with_table_and_column(tmp_path, table, change, message):
    t = tables()
    t[table] = change(t[table])
    with pytest.raises(ReleaseValidationError, match=message) as info:
        write_release(tmp_path / "rel", manifest=manifest(), **t)
    assert isinstance(info.value, InvalidArgumentError)
    assert info.value.table == table
    assert not (tmp_path / "rel").exists()
    assert list(tmp_path.iterdir()) == []  # no staging leftovers either


def test_unsigned_ids_beyond_int64_are_rejected(tmp_path):
    t = tables()
    t["neurons"]["id"] = t["neurons"]["id"].astype("uint64")
    t["neurons"].loc[0, "id"] = np.uint64(2**63 + 5)
    with pytest.raises(ReleaseValidationError, match="exceed the int64 range"):
        write_release(tmp_path / "rel", manifest=manifest(), **t)


def test_narrow_integer_and_categorical_columns_are_widened(tmp_path):
    t = tables()
    t["connections"] = t["connections"].assign(weight=t["connections"]["weight"].astype("int8"),
                                               roi=t["connections"]["roi"].astype("category"))
    dest = write_release(tmp_path / "rel", manifest=manifest(), **t)
    schema = pq.read_schema(dest / "connections.parquet")
    assert schema.field("weight").type == pa.int64() and schema.field("roi").type == pa.string()


def test_scores_need_a_score_name(tmp_path):
    with pytest.raises(ReleaseValidationError, match="score_name is null"):
        write_release(tmp_path / "rel", manifest=manifest(score_name=None), **tables())
    t = tables()
    t["synapses"] = t["synapses"].drop(columns="score")  # no scores at all: fine without score_name
    dest = write_release(tmp_path / "rel", manifest=manifest(score_name=None), **t)
    assert pd.read_parquet(dest / "synapses.parquet")["score"].isna().all()


def test_score_metadata_is_checked_and_read_as_score_info(tmp_path):
    good = {"column": "cleft_score", "scale": "integer", "recommended": 51, "op": ">", "source": "FlyWire > 50"}
    with pytest.raises(ReleaseValidationError, match="op '>' or '>='"):
        write_release(tmp_path / "a", manifest=manifest(score={**good, "op": "=>"}), **tables())
    with pytest.raises(ReleaseValidationError, match="exactly the keys"):
        write_release(tmp_path / "b", manifest=manifest(score={"column": "c"}), **tables())
    dest = write_release(tmp_path / "c", manifest=manifest(score=good), **tables())
    import connectomix

    with connectomix.open(f"release://{dest}", cache=False) as ds:
        assert ds.info.score.recommended == 51 and ds.info.score.op == ">"


@pytest.mark.parametrize("change, message", [
    (dict(version=""), "version"),
    (dict(primary_rois=["AL(R)", "NotPrimary"]), "must not contain 'NotPrimary'"),
    (dict(voxel_size_nm=[8, 8]), "voxel_size_nm"),
    (dict(synthetic="yes"), "synthetic"),
])
def test_bad_manifests_are_rejected(change, message):
    with pytest.raises(ReleaseValidationError, match=message):
        manifest(**change)


def test_manifest_rois_must_include_primary(tmp_path):
    m = {**manifest(), "rois": ["AL(R)"]}
    with pytest.raises(ReleaseValidationError, match="must include every primary ROI"):
        write_release(tmp_path / "rel", manifest=m, **tables())


# -- atomicity and overwrite ----------------------------------------------------------------------------


def test_existing_folder_needs_overwrite(tmp_path):
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    with pytest.raises(InvalidArgumentError, match="already exists"):
        write_release(dest, manifest=manifest(), **tables())
    new = write_release(dest, manifest=manifest(version="v2"), overwrite=True, **tables(rng_seed=5))
    assert read_manifest(new)["version"] == "v2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]


def test_failed_overwrite_keeps_the_old_release(tmp_path):
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    bad = tables()
    bad["synapses"] = bad["synapses"].assign(score=np.inf)
    with pytest.raises(ReleaseValidationError):
        write_release(dest, manifest=manifest(version="v2"), overwrite=True, **bad)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rel"]


def test_refuses_to_overwrite_a_folder_that_is_not_a_release(tmp_path):
    other = tmp_path / "thesis"
    other.mkdir()
    (other / "chapter1.tex").write_text("precious")
    with pytest.raises(InvalidArgumentError, match="not a connectomix release folder"):
        write_release(other, manifest=manifest(), overwrite=True, **tables())
    assert (other / "chapter1.tex").read_text() == "precious"


# -- streaming synapses -----------------------------------------------------------------------------------


def test_write_synapses_streaming_matches_pandas(tmp_path):
    t = tables(n_syn=900)
    syn = t.pop("synapses")
    dest = write_release(tmp_path / "rel", manifest=manifest(score_name=None), **t)

    def batches():
        for i, start in enumerate(range(0, len(syn), 250)):
            chunk = syn.iloc[start:start + 250]
            if i % 2:  # mixed inputs: narrow ints in a pyarrow batch
                yield pa.RecordBatch.from_pandas(chunk.astype({"synapse_id": "int32"}), preserve_index=False)
            else:
                yield chunk
        yield syn.iloc[:0]  # an empty batch is fine

    out = write_synapses_streaming(dest, batches(), update_manifest={"score_name": "confidence"})
    got = pd.read_parquet(out)
    expected = syn.sort_values(["pre", "synapse_id"], ignore_index=True)
    pd.testing.assert_frame_equal(got, expected.astype({c: float for c in got.columns if c[-2:] in ("_x", "_y", "_z")}),
                                  check_dtype=False)
    assert read_manifest(dest)["score_name"] == "confidence"
    assert validate_release(dest, deep=True).ok
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_failed_streaming_keeps_previous_synapses(tmp_path):
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    before = (dest / "synapses.parquet").read_bytes()
    bad = tables()["synapses"].assign(pre=BIG + 12345)  # not in neurons
    with pytest.raises(ReleaseValidationError, match="ids missing from neurons"):
        write_synapses_streaming(dest, [bad])
    assert (dest / "synapses.parquet").read_bytes() == before
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


def test_streaming_rejects_unknown_batch_types(tmp_path):
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    with pytest.raises(ReleaseValidationError, match="batch 0 is a list"):
        write_synapses_streaming(dest, [[1, 2, 3]])


# -- skeletons -----------------------------------------------------------------------------------------


def test_skeletons_are_written_in_nm(tmp_path):
    t = tables()
    sid = int(t["neurons"]["id"].iloc[0])
    nodes = pd.DataFrame({"node_id": [1, 2, 3], "parent_id": [-1, 1, 2], "x": [0.0, 10.0, 20.0], "y": 0.0,
                          "z": 0.0, "radius": 1.0})
    sk = navis.TreeNeuron(nodes, units="8 nm", id=sid)
    dest = write_release(tmp_path / "rel", manifest=manifest(), skeletons={sid: sk}, **t)
    back = navis.read_swc(dest / "skeletons" / f"{sid}.swc")
    assert back.nodes["x"].tolist() == [0.0, 80.0, 160.0]
    with connectomix.open(f"release://{dest}", cache=False) as ds:
        assert ds.get_skeletons(sid)[0].nodes["x"].max() == 160.0
    swc = tmp_path / "copy.swc"
    swc.write_bytes((dest / "skeletons" / f"{sid}.swc").read_bytes())
    with pytest.raises(ReleaseValidationError, match="not in the neurons table"):
        write_release(tmp_path / "rel2", manifest=manifest(), skeletons={12: swc}, **t)


# -- validate_release --------------------------------------------------------------------------------------


def test_embedded_sample_passes_quick_and_deep_checks():
    quick, deep = validate_release(SAMPLE_DIR), validate_release(SAMPLE_DIR, deep=True)
    assert quick.ok and deep.ok, (str(quick), str(deep))
    assert quick["rows"]["neurons"] == 554 and quick["name"] == "hemibrain-olfactory-sample"


def test_validate_finds_problems_in_files(tmp_path):
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    c = pd.read_parquet(dest / "connections.parquet")
    c.iloc[::-1].to_parquet(dest / "connections.parquet", index=False)  # unsorted
    s = pd.read_parquet(dest / "synapses.parquet")
    s.loc[0, "roi"] = "ME(R)"
    s.to_parquet(dest / "synapses.parquet", index=False)
    assert validate_release(dest).ok  # the quick check reads only statistics of these tables
    report = validate_release(dest, deep=True)
    text = str(report)
    assert not report.ok and "sorted by pre, post, roi" in text and "'ME(R)'" in text
    with pytest.raises(DataFormatError, match="problem"):
        report.raise_for_problems()


def test_quick_check_uses_statistics(tmp_path):
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    c = pd.read_parquet(dest / "connections.parquet")
    c.loc[3, "weight"] = 0
    c.to_parquet(dest / "connections.parquet", index=False)
    (dest / "roi_counts.parquet").unlink()
    report = validate_release(dest)
    assert [(p.table, p.column) for p in report.problems] == [("connections", "weight")]


def test_validate_reports_missing_pieces(tmp_path):
    assert "does not exist" in str(validate_release(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    assert "no manifest.json" in str(validate_release(tmp_path / "empty"))
    dest = write_release(tmp_path / "rel", manifest=manifest(), **tables())
    (dest / "neurons.parquet").unlink()
    (dest / "manifest.json").write_text(json.dumps({**read_manifest(dest), "format_version": 7}))
    assert "format_version" in str(validate_release(dest))
