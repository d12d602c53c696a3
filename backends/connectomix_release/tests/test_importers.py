"""Importers from public dumps, checked number by number against independent pandas computations.

The fixture files use the real file names and headers of the public downloads
(neuPrint's exported-traced-adjacencies, FlyWire's Codex/Zenodo tables); every
value in them is SYNTHETIC.
"""

import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest

import connectomix
from connectomix.cli import main
from connectomix.errors import DataFormatError, InvalidArgumentError
from connectomix_release.importers import IMPORTERS, SourceFormatError, import_flywire, import_neuprint_csv
from connectomix_release.writer import read_manifest, validate_release

PRIMARY = ["AL(R)", "CA(R)", "LH(R)"]
ROOT = 720575940600000000  # FlyWire-sized root ids (> 2**53)


def read(dest, table):
    return pd.read_parquet(dest / f"{table}.parquet")


def assert_release_ok(dest):
    report = validate_release(dest, deep=True)
    assert report.ok, str(report)


# -- neuPrint compact export -------------------------------------------------------------------------------


@pytest.fixture
def np_tables():
    """Per-ROI weights that partition each pair's total (primary ROIs + leftover), as neuprint-python exports."""
    rng = np.random.default_rng(11)
    bodies = np.arange(1001, 1031)
    pairs = pd.DataFrame({"bodyId_pre": rng.choice(bodies, 150), "bodyId_post": rng.choice(bodies, 150)})
    pairs = pairs.drop_duplicates().reset_index(drop=True)
    rows, totals = [], []
    for pre, post in pairs.itertuples(index=False):
        inside = {roi: int(rng.integers(0, 6)) for roi in PRIMARY}
        outside = int(rng.integers(0, 4))
        if sum(inside.values()) + outside == 0:
            outside = 1
        rows += [(pre, post, roi, w) for roi, w in inside.items() if w]
        if outside:
            rows.append((pre, post, "NotPrimary", outside))
        totals.append((pre, post, sum(inside.values()) + outside))
    roi = pd.DataFrame(rows, columns=["bodyId_pre", "bodyId_post", "roi", "weight"])
    total = pd.DataFrame(totals, columns=["bodyId_pre", "bodyId_post", "weight"])
    listed = bodies[:25]  # the other 5 bodies appear only as partners
    neurons = pd.DataFrame({"bodyId": listed, "type": [f"T{i % 4}" if i % 5 else None for i in range(25)],
                            "instance": [f"T{i % 4}_R" if i % 5 else None for i in range(25)]})
    return neurons, total, roi


def write_export(folder, neurons, total, roi, prefix="traced-"):
    folder.mkdir(exist_ok=True)
    neurons.to_csv(folder / f"{prefix}neurons.csv", index=False)
    total.to_csv(folder / f"{prefix}total-connections.csv", index=False)
    if roi is not None:
        roi.to_csv(folder / f"{prefix}roi-connections.csv", index=False)
    return folder


def expected_neuprint(neurons, total, roi, primary):
    """Independent pandas computation of the release tables."""
    inside = roi[roi["roi"].isin(primary)].rename(columns={"bodyId_pre": "pre", "bodyId_post": "post"})
    summed = inside.groupby(["pre", "post"])["weight"].sum()
    t = total.rename(columns={"bodyId_pre": "pre", "bodyId_post": "post"}).set_index(["pre", "post"])["weight"]
    rest = (t - summed.reindex(t.index).fillna(0)).astype("int64")
    rest = rest[rest > 0].rename("weight").reset_index().assign(roi="NotPrimary")
    conn = pd.concat([inside[["pre", "post", "roi", "weight"]], rest[["pre", "post", "roi", "weight"]]])
    conn = conn.sort_values(["pre", "post", "roi"], ignore_index=True)
    out = conn.groupby("pre")["weight"].sum()
    into = conn.groupby("post")["weight"].sum()
    ids = sorted(set(conn["pre"]) | set(conn["post"]) | set(neurons["bodyId"]))
    n = pd.DataFrame({"id": ids})
    n["pre"] = n["id"].map(out).fillna(0).astype("int64")
    n["post"] = n["id"].map(into).fillna(0).astype("int64")
    n["is_neuron"] = n["id"].isin(neurons["bodyId"])
    n["type"] = n["id"].map(neurons.set_index("bodyId")["type"])
    rc = pd.concat([conn.groupby(["pre", "roi"])["weight"].sum().rename("pre").rename_axis(["id", "roi"]),
                    conn.groupby(["post", "roi"])["weight"].sum().rename("post").rename_axis(["id", "roi"])],
                   axis=1).fillna(0).astype("int64").reset_index().sort_values(["id", "roi"], ignore_index=True)
    return conn, n, rc


def check_neuprint_release(dest, neurons, total, roi, primary):
    conn, n, rc = expected_neuprint(neurons, total, roi, primary)
    got = read(dest, "connections")
    pd.testing.assert_frame_equal(got, conn, check_dtype=False)
    got_n = read(dest, "neurons")
    assert got_n["id"].tolist() == n["id"].tolist()
    # summed connections are connections (upstream/downstream), not synaptic sites: pre/post stay null
    assert got_n["downstream"].tolist() == n["pre"].tolist() and got_n["upstream"].tolist() == n["post"].tolist()
    assert got_n["pre"].isna().all() and got_n["post"].isna().all()
    assert got_n["is_neuron"].tolist() == n["is_neuron"].tolist()
    assert got_n["type"].fillna("-").tolist() == n["type"].fillna("-").tolist()
    pd.testing.assert_frame_equal(read(dest, "roi_counts"), rc, check_dtype=False)
    # per pair the rows partition the total weight of the export
    pair = got.groupby(["pre", "post"])["weight"].sum().sort_index()
    assert pair.tolist() == total.set_index(["bodyId_pre", "bodyId_post"])["weight"].sort_index().tolist()
    assert_release_ok(dest)


def test_neuprint_partitioned_export(tmp_path, np_tables):
    src = write_export(tmp_path / "exported-traced-adjacencies-v1.2", *np_tables)
    dest = import_neuprint_csv(src, tmp_path / "rel")
    check_neuprint_release(dest, *np_tables, PRIMARY)
    m = read_manifest(dest)
    assert m["version"] == "v1.2" and m["primary_rois"] == PRIMARY and m["synthetic"] == {}
    n = read(dest, "neurons").set_index("id")
    assert n.loc[1001, "status"] == "Traced" and pd.isna(n.loc[1030, "status"])  # only listed bodies are Traced
    with connectomix.open(f"release://{dest}", cache=False) as ds:
        edges = ds.get_connectivity(sources=[1001], rois="CA(R)", progress=False, include_autapses=True)
        roi = np_tables[2]
        expected = roi[(roi.bodyId_pre == 1001) & (roi.roi == "CA(R)")]
        assert edges["weight"].sum() == expected["weight"].sum()


def test_neuprint_nested_rois_need_primary_rois(tmp_path, np_tables):
    neurons, total, roi = np_tables
    # a super-ROI repeating the weights of two primary ROIs, as neuPrint's nested ROIs do
    sup = roi[roi.roi.isin(["CA(R)", "LH(R)"])].groupby(["bodyId_pre", "bodyId_post"], as_index=False)["weight"].sum()
    nested = pd.concat([roi, sup.assign(roi="SNP(R)")], ignore_index=True)
    src = write_export(tmp_path / "export-v1.2", neurons, total, nested)
    with pytest.raises(SourceFormatError, match="overlap.*primary_rois") as info:
        import_neuprint_csv(src, tmp_path / "rel")
    assert isinstance(info.value, DataFormatError) and isinstance(info.value, InvalidArgumentError)
    assert not (tmp_path / "rel").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["export-v1.2"]
    dest = import_neuprint_csv(src, tmp_path / "rel", primary_rois=PRIMARY)
    check_neuprint_release(dest, neurons, total, nested, PRIMARY)
    assert read_manifest(dest)["rois"] == sorted(PRIMARY + ["SNP(R)"])
    # a file with one ROI per line works too; overlapping "primary" ROIs are refused
    listing = tmp_path / "primary.txt"
    listing.write_text("# hemibrain-like\n" + "\n".join(PRIMARY) + "\n")
    import_neuprint_csv(src, tmp_path / "rel2", primary_rois=listing)
    check_neuprint_release(tmp_path / "rel2", neurons, total, nested, PRIMARY)
    with pytest.raises(InvalidArgumentError, match="given primary_rois overlap"):
        import_neuprint_csv(src, tmp_path / "rel3", primary_rois=["CA(R)", "SNP(R)"])
    with pytest.raises(InvalidArgumentError, match="did you mean 'CA\\(R\\)'"):
        import_neuprint_csv(src, tmp_path / "rel3", primary_rois=["CA(r)", "AL(R)"])


def test_neuprint_subset_of_primary_rois_folds_the_rest_into_notprimary(tmp_path, np_tables):
    src = write_export(tmp_path / "x-v3", *np_tables, prefix="")  # neuprint-python's un-prefixed names
    dest = import_neuprint_csv(src, tmp_path / "rel", primary_rois="AL(R), LH(R)")
    check_neuprint_release(dest, *np_tables, ["AL(R)", "LH(R)"])
    assert read(dest, "neurons")["status"].isna().all()  # no 'traced-' prefix: status unknown


def test_neuprint_without_roi_file(tmp_path, np_tables):
    neurons, total, _ = np_tables
    src = write_export(tmp_path / "e-v1", neurons, total, None)
    dest = import_neuprint_csv(src, tmp_path / "rel", synthetic={"all": "test fixture"})
    assert read_manifest(dest)["synthetic"] == {"all": "test fixture"}
    c = read(dest, "connections")
    assert set(c["roi"]) == {"NotPrimary"} and c["weight"].sum() == total["weight"].sum()
    assert read_manifest(dest)["primary_rois"] == []


def test_neuprint_neurons_with_totals_and_extra_columns(tmp_path, np_tables):
    neurons, total, roi = np_tables
    neurons = neurons.assign(pre=np.arange(25) + 100, post=np.arange(25) + 200, status="Traced",
                             cellBodyFiber="PDM19")
    src = write_export(tmp_path / "e-v1", neurons, total, roi, prefix="")
    dest = import_neuprint_csv(src, tmp_path / "rel")
    n = read(dest, "neurons").set_index("id")
    assert n.loc[1001, "pre"] == 100 and n.loc[1025, "post"] == 224 and n.loc[1001, "cellBodyFiber"] == "PDM19"
    assert not n.loc[1030, "is_neuron"]


def test_neuprint_flat_connectome_feather(tmp_path):
    """neuPrint's flat-connectome Feather dumps (male CNS): body_pre, body_post, weight."""
    src = tmp_path / "male-cns-v0.9"
    src.mkdir()
    feather.write_feather(pd.DataFrame({"bodyId": [5, 6], "type": ["a", "b"], "instance": None, "status": "Traced"}),
                          src / "body-annotations-male-cns-v0.9-minconf-0.5.feather")
    feather.write_feather(pd.DataFrame({"body_pre": [5, 6, 5], "body_post": [6, 5, 7], "weight": [3, 2, 9]}),
                          src / "connectome-weights-male-cns-v0.9-minconf-0.5.feather")
    dest = import_neuprint_csv(src, tmp_path / "rel")
    assert read_manifest(dest)["version"] == "v0.9"
    n = read(dest, "neurons").set_index("id")
    assert n["downstream"].to_dict() == {5: 12, 6: 2, 7: 0} and n["pre"].isna().all()
    assert n["is_neuron"].to_dict() == {5: True, 6: True, 7: False}
    assert list(n.columns) == ["type", "instance", "status", "pre", "post", "upstream", "downstream", "is_neuron"]


@pytest.mark.parametrize("file, frame, message", [
    ("traced-total-connections.csv", pd.DataFrame({"bodyId_pre": [1001, "x12"], "bodyId_post": [1002, 1003],
                                                    "weight": [1, 1]}),
     r"traced-total-connections.csv \(total connections\), column 'bodyId_pre' must hold integer ids.*'x12'"),
    ("traced-total-connections.csv", pd.DataFrame({"bodyId_pre": [1001], "bodyId_post": [1002], "w": [1]}),
     r"traced-total-connections.csv \(total connections\) has no 'weight' column"),
    ("traced-total-connections.csv", pd.DataFrame({"bodyId_pre": [1001], "bodyId_post": [1002], "weight": [1.5]}),
     r"column 'weight' must hold integer weights.*'1.5'"),
    ("traced-total-connections.csv", pd.DataFrame({"bodyId_pre": ["9223372036854775808"], "bodyId_post": [1002],
                                                    "weight": [1]}),
     r"column 'bodyId_pre' must hold integer ids; 1 row\(s\) have values beyond the int64 range"),
    ("traced-neurons.csv", pd.DataFrame({"bodyId": [1001, 1001], "type": ["a", "b"]}),
     r"traced-neurons.csv \(neurons\), column 'bodyId' must list each id once; repeated: 1001"),
    ("traced-roi-connections.csv", pd.DataFrame({"bodyId_pre": [4], "bodyId_post": [5], "roi": ["AL(R)"],
                                                  "weight": [1]}),
     r"traced-roi-connections.csv has pair\(s\) \[\(4, 5\)\] that are missing from traced-total-connections.csv"),
])
def test_neuprint_bad_input_names_file_and_column(tmp_path, np_tables, file, frame, message):
    src = write_export(tmp_path / "e-v1", *np_tables)
    frame.to_csv(src / file, index=False)
    with pytest.raises(SourceFormatError, match=message):
        import_neuprint_csv(src, tmp_path / "rel")
    assert not (tmp_path / "rel").exists()


def test_neuprint_missing_files_and_versions(tmp_path, np_tables):
    src = write_export(tmp_path / "export", *np_tables)
    with pytest.raises(InvalidArgumentError, match="release version"):
        import_neuprint_csv(src, tmp_path / "rel")
    assert import_neuprint_csv(src, tmp_path / "rel", name="hb", version="v1.2.1").name == "rel"
    (src / "traced-total-connections.csv").unlink()
    with pytest.raises(SourceFormatError, match="has no total connections file"):
        import_neuprint_csv(src, tmp_path / "rel2", version="v1")
    (src / "totals.xlsx").write_bytes(b"PK")
    with pytest.raises(SourceFormatError, match="totals.xlsx .*unsupported file type"):
        import_neuprint_csv(src, tmp_path / "rel2", version="v1", connections="totals.xlsx")
    with pytest.raises(InvalidArgumentError, match="extract it first"):
        tarball = tmp_path / "exported-traced-adjacencies-v1.2.tar.gz"
        tarball.write_bytes(b"")
        import_neuprint_csv(tarball, tmp_path / "rel2")


def test_cli_convert_neuprint(tmp_path, np_tables, capsys):
    src = write_export(tmp_path / "exported-traced-adjacencies-v1.2", *np_tables)
    listing = tmp_path / "primary.txt"
    listing.write_text("\n".join(PRIMARY))
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "rel"), "--primary-rois", str(listing)]) == 0
    assert "wrote release folder" in capsys.readouterr().out
    check_neuprint_release(tmp_path / "rel", *np_tables, PRIMARY)
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "rel")]) == 2  # exists, no --overwrite
    assert "already exists" in capsys.readouterr().err


# -- FlyWire ------------------------------------------------------------------------------------------------

NEUROPILS = ["AL_R", "LH_R", "MB_CA_R", "UNASGD"]


def write_gz(path, frame):
    with gzip.open(path, "wt") as fh:
        frame.to_csv(fh, index=False)


@pytest.fixture
def fw_source(tmp_path):
    """FlyWire Codex/Zenodo files with their real headers; values synthetic, positions in nm."""
    rng = np.random.default_rng(5)
    src = tmp_path / "flywire"
    src.mkdir()
    ids = ROOT + np.arange(1, 21)
    n = 600
    pre = rng.choice(np.r_[ids, [ROOT + 90, 0]], n)
    post = rng.choice(np.r_[ids, [ROOT + 91]], n)
    syn = pd.DataFrame({
        "id": rng.permutation(n) + 5000, "pre_pt_root_id": pre, "post_pt_root_id": post,
        "connection_score": rng.random(n) * 300, "cleft_score": rng.integers(0, 200, n),
        **{nt: rng.random(n).astype("float32") for nt in ("gaba", "ach", "glut", "oct", "ser", "da")},
        **{f"{s}_pt_position_{a}": rng.integers(lo, hi, n) for s in ("pre", "post")
           for a, lo, hi in (("x", 300_000, 800_000), ("y", 100_000, 400_000), ("z", 20_000, 270_000))},
        "neuropil": rng.choice(NEUROPILS, n),
    })
    feather.write_feather(syn, src / "flywire_synapses_783.feather")
    valid = syn[(syn.pre_pt_root_id != 0)]
    conn = (valid.groupby(["pre_pt_root_id", "post_pt_root_id", "neuropil"], as_index=False).size()
            .rename(columns={"pre_pt_root_id": "pre_root_id", "post_pt_root_id": "post_root_id", "size": "syn_count"})
            .assign(nt_type="ACH"))
    write_gz(src / "connections_no_threshold.csv.gz", conn)
    write_gz(src / "neurons.csv.gz", pd.DataFrame({
        "root_id": ids[:16], "group": "AL_R.LH_R", "nt_type": "ACH", "nt_type_score": 0.61,
        **{f"{nt}_avg": 0.1 for nt in ("da", "ser", "gaba", "glut", "ach", "oct")}}))
    write_gz(src / "classification.csv.gz", pd.DataFrame({
        "root_id": ids[:18], "flow": "intrinsic", "super_class": "central", "class": "ALPN", "sub_class": None,
        "hemilineage": None, "side": "left", "nerve": None}))
    write_gz(src / "consolidated_cell_types.csv.gz", pd.DataFrame({
        "root_id": ids[:6], "primary_type": [f"DA{i}_lPN" for i in range(6)], "additional_type(s)": None}))
    return src, syn, conn, ids


def test_flywire_full_conversion(tmp_path, fw_source):
    src, syn, conn, ids = fw_source
    dest = import_flywire(src, tmp_path / "rel")
    m = read_manifest(dest)
    assert m["version"] == "783" and m["score_name"] == "cleft_score" and m["voxel_size_nm"] == [4, 4, 40]
    # FlyWire's published cut (cleft_score > 50, integers) as the >= threshold min_score="recommended" applies
    assert (m["score"]["column"], m["score"]["recommended"], m["score"]["op"]) == ("cleft_score", 51, ">")
    assert m["primary_rois"] == ["AL_R", "LH_R", "MB_CA_R"]
    assert any("read as nm" in note for note in m["notes"])
    keep = syn[(syn.pre_pt_root_id != 0) & (syn.post_pt_root_id != 0)]
    # synapses: every row, positions unchanged (nm), UNASGD -> null, ids exact
    s = read(dest, "synapses")
    assert s["pre"].is_monotonic_increasing and len(s) == len(keep)
    e = keep.set_index("id").loc[s["synapse_id"]]
    assert (s["pre"].to_numpy() == e["pre_pt_root_id"].to_numpy()).all()
    assert (s["post_z"].to_numpy() == e["post_pt_position_z"].to_numpy()).all()
    assert (s["score"].to_numpy() == e["cleft_score"].to_numpy()).all()
    assert s["roi"].fillna("UNASGD").tolist() == e["neuropil"].tolist()
    assert np.allclose(s["gaba"], e["gaba"])  # per-synapse transmitter predictions kept
    # connections: the connections file, UNASGD -> NotPrimary
    c = read(dest, "connections")
    exp = conn.assign(roi=conn["neuropil"].replace("UNASGD", "NotPrimary"))
    exp = exp[(exp.post_root_id != 0)].groupby(["pre_root_id", "post_root_id", "roi"])["syn_count"].sum()
    assert c.set_index(["pre", "post", "roi"])["weight"].sort_index().tolist() == exp.sort_index().tolist()
    # neurons: totals from the synapse rows; listed ids are neurons; partners are segments
    n = read(dest, "neurons").set_index("id")
    # FlyWire synapse rows are connections: no T-bar counts (pre null), one PSD per row (post)
    assert n["pre"].isna().all()
    assert n["post"].to_dict() == {i: int((keep.post_pt_root_id == i).sum()) for i in n.index}
    out = exp.groupby(level="pre_root_id").sum()
    assert n["downstream"].to_dict() == {i: int(out.get(i, 0)) for i in n.index}
    assert n.loc[ids[:18], "is_neuron"].all() and not n.loc[[ids[19], ROOT + 90, ROOT + 91], "is_neuron"].any()
    assert n.loc[ids[2], "type"] == "DA2_lPN" and pd.isna(n.loc[ids[10], "type"])
    assert n.loc[ids[0], "super_class"] == "central" and n.loc[ids[0], "nt_type"] == "ACH"
    # roi_counts: synapse rows per body and neuropil
    rc = read(dest, "roi_counts").set_index(["id", "roi"])
    bucket = keep.assign(roi=keep["neuropil"].replace("UNASGD", "NotPrimary"))
    exp_pre = bucket.groupby(["pre_pt_root_id", "roi"]).size()
    assert all(rc.loc[k, "pre"] == v for k, v in exp_pre.items())
    sums = rc.groupby(level=0)[["pre", "post"]].sum().reindex(n.index, fill_value=0)
    # roi_counts sum to the totals: post (PSDs); pre counts connections made, as the synapse rows are
    assert (sums["post"] == n["post"]).all()
    assert (sums["pre"] == n.index.map(bucket.groupby("pre_pt_root_id").size()).fillna(0)).all()
    assert_release_ok(dest)
    with connectomix.open(f"release://{dest}", cache=False) as ds:
        got = ds.get_synapses(int(ids[3]), min_score=100, progress=False)
        exp = keep[((keep.pre_pt_root_id == ids[3]) | (keep.post_pt_root_id == ids[3]))
                   & (keep.pre_pt_root_id != keep.post_pt_root_id) & (keep.cleft_score >= 100)]
        assert sorted(got["synapse_id"]) == sorted(exp["id"])


def test_flywire_voxel_positions_are_detected_and_scaled(tmp_path, fw_source):
    src, syn, _, _ = fw_source
    vox = syn.copy()
    for s in ("pre", "post"):
        vox[f"{s}_pt_position_x"] //= 4
        vox[f"{s}_pt_position_y"] //= 4
        vox[f"{s}_pt_position_z"] //= 40
    feather.write_feather(vox, src / "flywire_synapses_783.feather")
    dest = import_flywire(src, tmp_path / "rel")
    s = read(dest, "synapses").set_index("synapse_id")
    v = vox.set_index("id").loc[s.index]
    assert (s["post_z"] == v["post_pt_position_z"] * 40).all() and (s["pre_x"] == v["pre_pt_position_x"] * 4).all()
    assert any("read as voxel" in note for note in read_manifest(dest)["notes"])
    dest = import_flywire(src, tmp_path / "rel2", coordinate_unit="nm")  # explicit override wins
    assert (read(dest, "synapses").set_index("synapse_id")["post_z"] == v["post_pt_position_z"]).all()


def test_flywire_connections_from_synapses_and_primary_subset(tmp_path, fw_source):
    src, syn, _, _ = fw_source
    (src / "connections_no_threshold.csv.gz").unlink()
    dest = import_flywire(src, tmp_path / "rel", primary_rois=["AL_R"], min_score=50)
    keep = syn[(syn.pre_pt_root_id != 0) & (syn.post_pt_root_id != 0) & (syn.cleft_score >= 50)]
    roi = np.where(keep["neuropil"] == "AL_R", "AL_R", "NotPrimary")
    exp = keep.assign(roi=roi).groupby(["pre_pt_root_id", "post_pt_root_id", "roi"]).size()
    c = read(dest, "connections").set_index(["pre", "post", "roi"])["weight"]
    assert c.to_dict() == exp.to_dict()
    assert set(read(dest, "synapses")["roi"].dropna()) == {"AL_R"}
    m = read_manifest(dest)
    assert m["primary_rois"] == ["AL_R"] and m["rois"] == ["AL_R", "LH_R", "MB_CA_R"]
    assert_release_ok(dest)


def test_flywire_parquet_synapses_without_ids_use_row_numbers(tmp_path, fw_source):
    src, syn, _, _ = fw_source
    (src / "flywire_synapses_783.feather").unlink()
    syn.drop(columns="id").to_parquet(src / "synapses.parquet", index=False)
    dest = import_flywire(src, tmp_path / "rel", version="783")
    s = read(dest, "synapses").set_index("synapse_id")
    rows = syn.reset_index(drop=True).loc[s.index]  # synapse_id = row number in the file
    assert (s["pre"] == rows["pre_pt_root_id"].to_numpy()).all() and (s["post_x"] == rows["post_pt_position_x"]).all()
    assert any("row number" in note for note in read_manifest(dest)["notes"])
    syn.drop(columns="id").to_csv(src / "synapses.csv", index=False)
    (src / "synapses.parquet").unlink()
    with pytest.raises(SourceFormatError, match="has no 'id' column"):
        import_flywire(src, tmp_path / "rel2", version="783")


def test_flywire_without_synapses(tmp_path, fw_source):
    src, _, conn, ids = fw_source
    (src / "flywire_synapses_783.feather").unlink()
    dest = import_flywire(src, tmp_path / "rel", version="783")
    n = read(dest, "neurons").set_index("id")
    out = conn[conn.post_root_id != 0].groupby("pre_root_id")["syn_count"].sum()
    assert all(n.loc[i, "downstream"] == v for i, v in out.items()) and n["pre"].isna().all()
    assert read_manifest(dest)["score_name"] is None and not (dest / "synapses.parquet").exists()
    assert_release_ok(dest)


def test_flywire_proofread_connections_feather_and_root_id_list(tmp_path):
    src = tmp_path / "zenodo"
    src.mkdir()
    feather.write_feather(pd.DataFrame({
        "pre_pt_root_id": [ROOT + 1, ROOT + 1, ROOT + 2], "post_pt_root_id": [ROOT + 2, ROOT + 2, ROOT + 3],
        "neuropil": ["AL_L", "UNASGD", "AL_L"], "syn_count": [4, 1, 7], "gaba_avg": 0.1}),
        src / "proofread_connections_783.feather")
    np.save(src / "proofread_root_ids_783.npy", np.array([ROOT + 1, ROOT + 2], dtype="int64"))
    dest = import_flywire(src, tmp_path / "rel")
    c = read(dest, "connections")
    expected = [[ROOT + 1, ROOT + 2, "AL_L", 4], [ROOT + 1, ROOT + 2, "NotPrimary", 1], [ROOT + 2, ROOT + 3, "AL_L", 7]]
    assert c.values.tolist() == expected
    # the same table as an Arrow IPC *stream* (.arrow) reads the same
    table = feather.read_table(src / "proofread_connections_783.feather")
    (src / "proofread_connections_783.feather").unlink()
    with pa.OSFile(str(src / "connections.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    assert read(import_flywire(src, tmp_path / "rel2"), "connections").values.tolist() == expected
    n = read(dest, "neurons").set_index("id")
    assert n["is_neuron"].to_dict() == {ROOT + 1: True, ROOT + 2: True, ROOT + 3: False}


@pytest.mark.parametrize("damage, message", [
    (lambda src: feather.write_feather(
        pd.read_feather(src / "flywire_synapses_783.feather").astype({"pre_pt_root_id": "float64"}),
        src / "flywire_synapses_783.feather"),
     r"flywire_synapses_783.feather \(synapses\), column 'pre_pt_root_id' must hold integer ids; it has type "
     r"DOUBLE \(floating-point ids lose precision"),
    (lambda src: feather.write_feather(
        pd.read_feather(src / "flywire_synapses_783.feather").drop(columns="post_pt_position_y"),
        src / "flywire_synapses_783.feather"),
     r"flywire_synapses_783.feather \(synapses\) has no 'post_y' column"),
    (lambda src: write_gz(src / "connections_no_threshold.csv.gz", pd.DataFrame(
        {"pre_root_id": [ROOT + 1], "post_root_id": ["7205759406000000x2"], "neuropil": ["AL_R"], "syn_count": [3]})),
     r"connections_no_threshold.csv.gz \(connections\), column 'post_root_id' must hold integer ids"),
    (lambda src: write_gz(src / "neurons.csv.gz", pd.DataFrame({"root_id": [ROOT + 1, ROOT + 1], "group": "x"})),
     r"neurons.csv.gz \(neurons\), column 'root_id' must list each id once"),
    (lambda src: write_gz(src / "consolidated_cell_types.csv.gz", pd.DataFrame({"rootid": [ROOT + 1]})),
     r"consolidated_cell_types.csv.gz \(cell types\) has no 'root_id' column"),
])
def test_flywire_bad_input_names_file_and_column(tmp_path, fw_source, damage, message):
    src = fw_source[0]
    damage(src)
    with pytest.raises(SourceFormatError, match=message):
        import_flywire(src, tmp_path / "rel")
    assert not (tmp_path / "rel").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["flywire"]


def test_flywire_needs_neuron_and_connectivity_tables(tmp_path, fw_source):
    src = fw_source[0]
    for f in ("neurons.csv.gz", "classification.csv.gz", "consolidated_cell_types.csv.gz"):
        (src / f).unlink()
    with pytest.raises(SourceFormatError, match="no neuron table"):
        import_flywire(src, tmp_path / "rel")
    with pytest.raises(InvalidArgumentError, match="coordinate_unit"):
        import_flywire(src, tmp_path / "rel", coordinate_unit="um")


def test_importers_registry():
    assert sorted(IMPORTERS) == ["flywire", "neuprint-csv"]
    for func in IMPORTERS.values():
        assert func.__doc__ and "Parameters" in func.__doc__


def test_cli_convert_flywire(tmp_path, fw_source, capsys):
    src = fw_source[0]
    assert main(["convert", "flywire", str(src), str(tmp_path / "rel"), "--coordinate-unit", "nm"]) == 0
    out = capsys.readouterr().out
    assert "synapses: 5" in out.replace(",", "")  # row counts are printed (hundreds of synapses)
    assert json.loads((tmp_path / "rel" / "manifest.json").read_text())["name"] == "flywire"
