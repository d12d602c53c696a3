"""Importers on the real layouts of the public release files, round-tripped through the release backend.

Every fixture file below is SYNTHETIC: tiny invented values, written in the
tests with the real file names, headers, dtypes, compression and layout of
the public downloads (sources cited in connectomix_release/importers.py next
to where the importer relies on them):

* MANC ``manc-traced-adjacencies-v1.0/`` (neuprint-python
  ``fetch_traced_adjacencies`` export, renamed by the publisher);
* male CNS ``flat-connectome/`` Feather files (complete and ``-traced-only``
  weights, ``syn-partners`` with voxel positions, ``body-neurotransmitters``);
* FlyWire Codex ``synapse_coordinates.csv.gz`` (blank cells repeat the value
  above), the Princeton synapse table (root ids without their leading
  ``720575940``), ``names.csv.gz``, ``classification.csv.gz``,
  ``consolidated_cell_types.csv.gz``, ``neurons.csv.gz``.

Expected values are written out by hand from the fixtures; the one property
test compares the converted synapses with the table it generated itself.
"""

import gzip

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectomix
from connectomix.cli import main
from connectomix_release.importers import SourceFormatError, import_flywire, import_neuprint_csv
from connectomix_release.writer import read_manifest, validate_release

A, B, C = 720575940600000001, 720575940600000002, 720575940600000003


def open_release(dest):
    return connectomix.open(f"release://{dest.resolve()}")


def rows(df, columns):
    """The rows of ``df`` as a set of tuples (missing values -> None)."""
    out = set()
    for rec in df[columns].itertuples(index=False):
        out.add(tuple(None if pd.isna(v) else v for v in rec))
    return out


def neuron_table(ds, ids):
    neurons, _ = ds.fetch_neurons(ids)
    return neurons.set_index("id")


def write_text(path, text, compress=False):
    if compress:
        with gzip.open(path, "wt", newline="") as fh:
            fh.write(text)
    else:
        path.write_text(text)


# -- MANC flat export ---------------------------------------------------------------------------------


def write_manc(folder):
    """manc-traced-adjacencies-v1.0: neuprint-python writes CSVs with a header, per-ROI rows sorted by
    pre, post, weight descending, only primary ROIs plus 'NotPrimary'."""
    folder.mkdir()
    (folder / "README").write_text("synthetic stand-in for the export README\n")
    write_text(folder / "traced-neurons.csv",
               "bodyId,type,instance\n10000,DNa01,DNa01_L\n10001,IN03A001,IN03A001_T1_R\n10002,,\n")
    totals = "bodyId_pre,bodyId_post,weight\n10000,10001,7\n10001,10002,3\n10002,10000,1\n"
    write_text(folder / "traced-connections.csv", totals)
    write_text(folder / "traced-connections2.csv", totals)  # the bucket's identical copy
    write_text(folder / "traced-connections-per-roi.csv",
               "bodyId_pre,bodyId_post,roi,weight\n"
               "10000,10001,LegNp(T1)(R),5\n10000,10001,IntTct,1\n10000,10001,NotPrimary,1\n"
               "10001,10002,IntTct,3\n"
               "10002,10000,NotPrimary,1\n")
    return folder


def test_manc_flat_export_converts_with_per_roi_weights(tmp_path):
    src = write_manc(tmp_path / "manc-traced-adjacencies-v1.0")
    dest = import_neuprint_csv(src, tmp_path / "manc")
    m = read_manifest(dest)
    assert m["version"] == "v1.0"
    assert m["primary_rois"] == ["IntTct", "LegNp(T1)(R)"]
    with open_release(dest) as ds:
        n = neuron_table(ds, [10000, 10001, 10002])
        assert n.loc[10000, "type"] == "DNa01" and n.loc[10001, "instance"] == "IN03A001_T1_R"
        assert n.loc[10002, "type"] is None or pd.isna(n.loc[10002, "type"])
        assert set(n["status"]) == {"Traced"}
        # the export has no site totals: connections only (pre/post <NA>)
        assert (n.loc[10000, "downstream"], n.loc[10000, "upstream"]) == (7, 1)
        assert (n.loc[10001, "downstream"], n.loc[10001, "upstream"]) == (3, 7)
        assert (n.loc[10002, "downstream"], n.loc[10002, "upstream"]) == (1, 3)
        assert n["pre"].isna().all() and n["post"].isna().all()
        by_roi = ds.get_connectivity([10000, 10001, 10002], None, by_roi=True)
        assert rows(by_roi, ["pre", "post", "roi", "weight"]) == {
            (10000, 10001, "LegNp(T1)(R)", 5), (10000, 10001, "IntTct", 1), (10000, 10001, "NotPrimary", 1),
            (10001, 10002, "IntTct", 3), (10002, 10000, "NotPrimary", 1)}
        total = ds.get_connectivity([10000], None)
        assert rows(total, ["pre", "post", "weight"]) == {(10000, 10001, 7)}


# -- male CNS flat connectome -------------------------------------------------------------------------

TAG = "male-cns-v0.9-minconf-0.5"


def write_male_cns(folder, *, complete_weights=True, synapses=True):
    """flat-connectome Feather files; positions in 8 nm voxels, int32 (flyem-snapshot decodes them with
    neuclease's decode_coords_from_uint64, which returns int32); the float32 of conf_* is unverified."""
    folder.mkdir()
    feather.write_feather(pa.table({
        "bodyId": pa.array([101, 102, 103], pa.int64()),
        "type": ["LC4", "DNp02", None], "instance": ["LC4_R", "DNp02_L", None],
        "status": ["Traced", "Traced", "Orphan"],
        "statusLabel": pa.array(["Roughly traced", "Roughly traced", "Orphan"]).dictionary_encode(),
        "superclass": ["visual_projection", "descending_neuron", None],
        "class": ["LC", None, None], "somaSide": ["R", "L", None],
        "somaLocation": pa.array([[1, 2, 3], [4, 5, 6], None], pa.list_(pa.int64())),
    }), folder / f"body-annotations-{TAG}.feather")
    feather.write_feather(pa.table({  # columns unverified (public notes on the v1.0 file)
        "body": pa.array([101, 102, 999], pa.int64()), "cell_type": ["LC4", "DNp02", None],
        "total_nt_predictions": pa.array([120, 80, 3], pa.int32()),
        "predicted_nt_confidence": [0.93, 0.71, 0.4], "predicted_nt": ["acetylcholine", "gaba", "unclear"],
        "ground_truth": [None, None, None], "celltype_total_nt_predictions": pa.array([240, 160, None], pa.int32()),
        "celltype_predicted_nt": ["acetylcholine", "gaba", None],
        "celltype_predicted_nt_confidence": [0.95, 0.7, None], "consensus_nt": ["acetylcholine", "gaba", None],
    }), folder / "body-neurotransmitters-male-cns-v0.9.feather")
    weights = pa.table({"body_pre": pa.array([101, 102, 103], pa.int64()),
                        "body_post": pa.array([102, 103, 101], pa.int64()),
                        "weight": pa.array([3, 1, 1], pa.int64())})
    if complete_weights:
        feather.write_feather(weights, folder / f"connectome-weights-{TAG}.feather")
    feather.write_feather(pa.table({  # both ends Traced: only 101 -> 102
        "body_pre": pa.array([101], pa.int64()), "body_post": pa.array([102], pa.int64()),
        "weight": pa.array([3], pa.int64()), "type_pre": ["LC4"], "type_post": ["DNp02"],
    }), folder / f"connectome-weights-{TAG}-traced-only.feather")
    if synapses:
        feather.write_feather(pa.table({
            "x_pre": pa.array([100, 110, 120, 130, 140], pa.int32()),
            "y_pre": pa.array([200, 210, 220, 230, 240], pa.int32()),
            "z_pre": pa.array([300, 310, 320, 330, 340], pa.int32()),
            "body_pre": pa.array([101, 101, 101, 102, 103], pa.int64()),
            "conf_pre": pa.array([0.9, 0.75, 0.6, 0.99, 0.5], pa.float32()),
            "x_post": pa.array([101, 111, 121, 131, 141], pa.int32()),
            "y_post": pa.array([201, 211, 221, 231, 241], pa.int32()),
            "z_post": pa.array([301, 311, 321, 331, 341], pa.int32()),
            "body_post": pa.array([102, 102, 102, 103, 101], pa.int64()),
            "conf_post": pa.array([0.8, 0.95, 0.55, 0.6, 0.5], pa.float32()),
            "primary_post": pa.array(["GNG", "GNG", "<unspecified>", "LO(R)", "GNG"]).dictionary_encode(),
        }), folder / f"syn-partners-{TAG}.feather")
    return folder


def test_male_cns_uses_the_complete_weights_and_imports_synapses(tmp_path):
    src = write_male_cns(tmp_path / "male-cns-v0.9")
    dest = import_neuprint_csv(src, tmp_path / "mcns")
    m = read_manifest(dest)
    assert m["version"] == "v0.9" and m["score_name"] == "confidence" and m["voxel_size_nm"] == [8, 8, 8]
    assert m["score"]["column"] == "confidence" and m["score"]["recommended"] is None  # not guessed
    assert m["primary_rois"] == ["GNG", "LO(R)"]
    with open_release(dest) as ds:
        with pytest.raises(connectomix.errors.UnsupportedOperation, match="recommended"):
            ds.get_synapses([101], min_score="recommended")
        by_roi = ds.get_connectivity([101, 102, 103], None, by_roi=True)
        assert rows(by_roi, ["pre", "post", "roi", "weight"]) == {
            (101, 102, "GNG", 2), (101, 102, "NotPrimary", 1), (102, 103, "LO(R)", 1), (103, 101, "GNG", 1)}
        n = neuron_table(ds, [101, 102, 103])
        assert {i: (n.loc[i, "downstream"], n.loc[i, "post"]) for i in n.index} == {101: (3, 1), 102: (1, 3),
                                                                                     103: (1, 1)}
        assert n["pre"].isna().all() and (n["post"] == n["upstream"]).all()  # rows are connections, one PSD each
        assert n.loc[101, "superclass"] == "visual_projection" and n.loc[103, "status"] == "Orphan"
        assert n.loc[101, "nt"] == "acetylcholine" and n.loc[102, "nt"] == "gaba" and pd.isna(n.loc[103, "nt"])
        assert n.loc[102, "predicted_nt_confidence"] == pytest.approx(0.71)
        syn = ds.get_synapses([101], post=False).sort_values("synapse_id")
        assert list(syn["synapse_id"]) == [0, 1, 2]
        first = syn.iloc[0]
        assert (first.pre_x, first.pre_y, first.pre_z) == (800.0, 1600.0, 2400.0)  # 8 nm voxels
        assert (first.post_x, first.post_y, first.post_z) == (808.0, 1608.0, 2408.0)
        assert first.score == pytest.approx(0.8) and first.pre_score == pytest.approx(0.9)
        assert first.post_score == pytest.approx(0.8)
        assert list(syn["roi"]) == ["GNG", "GNG", "NotPrimary"]  # <unspecified>: outside every primary ROI
        assert list(ds.get_synapses([101], post=False, min_score=0.7)["synapse_id"].sort_values()) == [0, 1]


def test_male_cns_never_picks_a_restricted_weights_file_on_its_own(tmp_path):
    src = write_male_cns(tmp_path / "male-cns-v0.9", complete_weights=False, synapses=False)
    with pytest.raises(SourceFormatError, match=r"only restricted weights file\(s\) .*-traced-only.feather"):
        import_neuprint_csv(src, tmp_path / "mcns")
    dest = import_neuprint_csv(src, tmp_path / "mcns",
                               connections=f"connectome-weights-{TAG}-traced-only.feather")
    with open_release(dest) as ds:
        assert rows(ds.get_connectivity([101, 102, 103], None), ["pre", "post", "weight"]) == {(101, 102, 3)}


def test_male_cns_weights_and_synapses_must_agree(tmp_path):
    src = write_male_cns(tmp_path / "male-cns-v0.9")
    feather.write_feather(pa.table({"body_pre": pa.array([101, 102], pa.int64()),
                                    "body_post": pa.array([102, 103], pa.int64()),
                                    "weight": pa.array([3, 1], pa.int64())}),
                          src / f"connectome-weights-{TAG}.feather")
    with pytest.raises(SourceFormatError, match=r"disagree \(103 -> 101: weight absent in connectome-weights"):
        import_neuprint_csv(src, tmp_path / "mcns")
    assert not (tmp_path / "mcns").exists()


# -- FlyWire Codex ------------------------------------------------------------------------------------


def write_codex_annotations(folder):
    """Codex per-neuron tables (gzip CSV, headers of the 783 downloads)."""
    write_text(folder / "neurons.csv.gz",
               "root_id,group,nt_type,nt_type_score,da_avg,ser_avg,gaba_avg,glut_avg,ach_avg,oct_avg\n"
               f"{A},AL_L.LH_L,ACH,0.81,0.01,0.0,0.05,0.02,0.9,0.02\n"
               f"{B},ME_R.LO_R,GABA,0.62,0.0,0.01,0.7,0.1,0.15,0.04\n"
               f"{C},AL_L,,,,,,,,\n", compress=True)
    write_text(folder / "classification.csv.gz",
               "root_id,flow,super_class,class,sub_class,hemilineage,side,nerve\n"
               f"{A},intrinsic,central,ALPN,,ALad1,left,\n"
               f"{B},intrinsic,optic,,,,right,\n"
               f"{C},afferent,sensory,olfactory,,,left,AN\n", compress=True)
    write_text(folder / "consolidated_cell_types.csv.gz",
               f"root_id,primary_type,additional_type(s)\n{A},DA1_lPN,\n{B},Mi1,Mi1_a\n", compress=True)
    write_text(folder / "names.csv.gz",
               f"root_id,name,group\n{A},AL.LH.1,AL.LH\n{B},ME.LO.2,ME.LO\n{C},AL.3,AL\n", compress=True)


def test_codex_synapse_coordinates_fill_down_and_annotations(tmp_path):
    src = tmp_path / "flywire_783"
    src.mkdir()
    write_codex_annotations(src)
    # blank id cells repeat the last value above, each column on its own (row 4: post stays C)
    write_text(src / "synapse_coordinates.csv.gz",
               "pre_root_id,post_root_id,x,y,z\n"
               f"{A},{B},400000,200000,100000\n"
               ",,400040,200040,100040\n"
               f",{C},500000,210000,120000\n"
               f"{B},,450000,190000,150000\n"
               f",{A},450080,190080,150040\n"
               ",,450120,190100,150080\n", compress=True)
    dest = import_flywire(src, tmp_path / "fw")
    notes = read_manifest(dest)["notes"]
    assert any("read as nm" in n and "documented as nm" in n for n in notes)
    with open_release(dest) as ds:
        syn = ds.get_synapses([A, B, C]).sort_values("synapse_id")
        assert rows(syn, ["synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_z"]) == {
            (0, A, B, 400000.0, 200000.0, 100000.0, 400000.0, 100000.0),
            (1, A, B, 400040.0, 200040.0, 100040.0, 400040.0, 100040.0),
            (2, A, C, 500000.0, 210000.0, 120000.0, 500000.0, 120000.0),
            (3, B, C, 450000.0, 190000.0, 150000.0, 450000.0, 150000.0),
            (4, B, A, 450080.0, 190080.0, 150040.0, 450080.0, 150040.0),
            (5, B, A, 450120.0, 190100.0, 150080.0, 450120.0, 150080.0)}
        assert (syn["roi"] == "NotPrimary").all()  # no neuropil given: outside every primary ROI
        conn = ds.get_connectivity([A, B, C], None)
        assert rows(conn, ["pre", "post", "weight"]) == {(A, B, 2), (A, C, 1), (B, C, 1), (B, A, 2)}
        n = neuron_table(ds, [A, B, C])
        assert {i: (n.loc[i, "downstream"], n.loc[i, "post"]) for i in n.index} == {A: (3, 2), B: (3, 2), C: (0, 2)}
        assert n["pre"].isna().all()
        assert n.loc[A, "type"] == "DA1_lPN" and n.loc[B, "type"] == "Mi1" and pd.isna(n.loc[C, "type"])
        assert list(n.loc[[A, B, C], "superclass"]) == ["central", "optic", "sensory"]
        assert list(n.loc[[A, B, C], "side"]) == ["left", "right", "left"]
        assert n.loc[A, "class"] == "ALPN" and n.loc[C, "class"] == "olfactory" and pd.isna(n.loc[B, "class"])
        assert n.loc[A, "nt"] == "acetylcholine" and n.loc[B, "nt"] == "gaba" and pd.isna(n.loc[C, "nt"])
        assert n.loc[A, "nt_type"] == "ACH"  # the native column keeps Codex's spelling
        assert list(n.loc[[A, B, C], "name"]) == ["AL.LH.1", "ME.LO.2", "AL.3"]
        assert list(n.loc[[A, B, C], "group_names"]) == ["AL.LH", "ME.LO", "AL"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([A, B, C]), st.sampled_from([A, B, C]),
                          st.integers(300_000, 800_000), st.integers(100_000, 400_000),
                          st.integers(20_000, 270_000)), min_size=1, max_size=40))
def test_codex_fill_down_round_trips_across_csv_blocks(tmp_path_factory, monkeypatch, table):
    """Blank out every id equal to the one above (as Codex does), convert, get every synapse back.

    Tiny CSV blocks make the blanks cross block boundaries, where the last value must carry over.
    """
    import connectomix_release.importers as importers

    monkeypatch.setattr(importers, "_CSV_BLOCK_BYTES", 96)
    tmp = tmp_path_factory.mktemp("fill")
    src = tmp / "flywire_783"
    src.mkdir()
    write_codex_annotations(src)
    lines, above = ["pre_root_id,post_root_id,x,y,z"], (None, None)
    for pre, post, x, y, z in table:
        cells = ["" if pre == above[0] else str(pre), "" if post == above[1] else str(post)]
        lines.append(",".join(cells + [str(x), str(y), str(z)]))
        above = (pre, post)
    write_text(src / "synapse_coordinates.csv.gz", "\n".join(lines) + "\n", compress=True)
    dest = import_flywire(src, tmp / "fw", coordinate_unit="nm")
    got = pd.read_parquet(dest / "synapses.parquet").sort_values("synapse_id")
    expected = {(i, pre, post, float(x), float(y), float(z)) for i, (pre, post, x, y, z) in enumerate(table)}
    assert rows(got, ["synapse_id", "pre", "post", "post_x", "post_y", "post_z"]) == expected


def test_codex_synapse_coordinates_blank_first_row_is_an_error(tmp_path):
    src = tmp_path / "flywire_783"
    src.mkdir()
    write_codex_annotations(src)
    write_text(src / "synapse_coordinates.csv.gz",
               f"pre_root_id,post_root_id,x,y,z\n,{B},400000,200000,100000\n", compress=True)
    with pytest.raises(SourceFormatError, match=r"column 'pre_root_id': data row 1 is empty and no row above"):
        import_flywire(src, tmp_path / "fw")


def test_codex_princeton_synapse_table(tmp_path):
    src = tmp_path / "flywire_783"
    src.mkdir()
    write_codex_annotations(src)
    # root ids without the leading 720575940 named in the header; positions here in 4x4x40 nm voxels
    write_text(src / "fafb_v783_princeton_synapse_table.csv.gz",
               "pre_x,pre_y,pre_z,ctr_x,ctr_y,ctr_z,post_x,post_y,post_z,size,"
               "pre_root_id_720575940,post_root_id_720575940,neuropil\n"
               "100000,50000,3000,100005,50005,3000,100010,50010,3001,120,600000001,600000002,AL_R\n"
               "100100,50100,3002,100105,50105,3002,100110,50110,3003,80,600000001,600000002,UNASGD\n"
               "120000,60000,3500,120005,60005,3500,120010,60010,3501,95,600000002,600000003,LH_R\n",
               compress=True)
    dest = import_flywire(src, tmp_path / "fw")
    m = read_manifest(dest)
    assert m["primary_rois"] == ["AL_R", "LH_R"]
    assert any("read as voxel" in n for n in m["notes"])
    with open_release(dest) as ds:
        syn = ds.get_synapses([A, B, C])
        assert rows(syn, ["synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z",
                          "roi"]) == {
            (0, A, B, 400000.0, 200000.0, 120000.0, 400040.0, 200040.0, 120040.0, "AL_R"),
            (1, A, B, 400400.0, 200400.0, 120080.0, 400440.0, 200440.0, 120120.0, "NotPrimary"),
            (2, B, C, 480000.0, 240000.0, 140000.0, 480040.0, 240040.0, 140040.0, "LH_R")}
        by_roi = ds.get_connectivity([A, B, C], None, by_roi=True)
        assert rows(by_roi, ["pre", "post", "roi", "weight"]) == {
            (A, B, "AL_R", 1), (A, B, "NotPrimary", 1), (B, C, "LH_R", 1)}


def test_princeton_synapses_pick_princeton_connections(tmp_path):
    src = tmp_path / "flywire_783"
    src.mkdir()
    write_codex_annotations(src)
    write_text(src / "fafb_v783_princeton_synapse_table.csv.gz",
               "pre_x,pre_y,pre_z,ctr_x,ctr_y,ctr_z,post_x,post_y,post_z,size,"
               "pre_root_id_720575940,post_root_id_720575940,neuropil\n"
               "100000,50000,3000,100005,50005,3000,100010,50010,3001,120,600000001,600000002,AL_R\n",
               compress=True)
    header = "pre_root_id,post_root_id,neuropil,syn_count,nt_type\n"
    write_text(src / "connections_no_threshold.csv.gz", header + f"{A},{B},AL_R,9,ACH\n", compress=True)
    write_text(src / "connections_princeton_no_threshold.csv.gz", header + f"{A},{B},AL_R,1,ACH\n", compress=True)
    dest = import_flywire(src, tmp_path / "fw")
    assert "connections from connections_princeton_no_threshold.csv.gz" in read_manifest(dest)["notes"]
    with open_release(dest) as ds:
        assert rows(ds.get_connectivity([A], None), ["pre", "post", "weight"]) == {(A, B, 1)}


def test_princeton_ids_must_be_the_suffix_digits(tmp_path):
    src = tmp_path / "flywire_783"
    src.mkdir()
    write_codex_annotations(src)
    write_text(src / "fafb_v783_princeton_synapse_table.csv.gz",
               "pre_x,pre_y,pre_z,ctr_x,ctr_y,ctr_z,post_x,post_y,post_z,size,"
               "pre_root_id_720575940,post_root_id_720575940,neuropil\n"
               f"100000,50000,3000,100005,50005,3000,100010,50010,3001,120,{A},600000002,AL_R\n", compress=True)
    with pytest.raises(SourceFormatError, match=r"'pre_root_id_720575940' must hold the last 9 digits"):
        import_flywire(src, tmp_path / "fw")


# -- CLI ----------------------------------------------------------------------------------------------


def test_cli_names_input_files_and_reports_missing_ones(tmp_path, capsys):
    src = write_manc(tmp_path / "export-v1.0")
    (src / "traced-neurons.csv").rename(src / "bodies.csv")
    (src / "traced-connections.csv").rename(src / "edges.csv")
    (src / "traced-connections2.csv").unlink()
    (src / "traced-connections-per-roi.csv").rename(src / "edges-by-roi.csv")
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "has no neurons file; expected one of traced-neurons.csv" in err
    assert "the folder has: README, bodies.csv, edges-by-roi.csv, edges.csv" in err
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "a"), "--neurons", "bodies.csv"]) == 2
    assert "has no total connections file" in capsys.readouterr().err
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "a"), "--neurons", "bodies.csv",
                 "--connections", "edges.csv", "--roi-connections", "nope.csv"]) == 2
    assert "the ROI connections file 'nope.csv' (option --roi-connections) does not exist" in capsys.readouterr().err
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "a"), "--names", "bodies.csv"]) == 2
    assert "--names does not apply to the neuprint-csv format" in capsys.readouterr().err
    assert main(["convert", "neuprint-csv", str(src), str(tmp_path / "a"), "--neurons", "bodies.csv",
                 "--connections", str(src / "edges.csv"), "--roi-connections", "edges-by-roi.csv"]) == 0
    assert "wrote release folder" in capsys.readouterr().out
    with open_release(tmp_path / "a") as ds:
        assert rows(ds.get_connectivity([10001], None, by_roi=True), ["pre", "post", "roi", "weight"]) == {
            (10001, 10002, "IntTct", 3)}


def test_cli_names_flywire_files(tmp_path, capsys):
    src = tmp_path / "codex-783"
    src.mkdir()
    write_codex_annotations(src)
    (src / "names.csv.gz").rename(src / "fw_names.csv.gz")
    write_text(src / "syn.csv.gz", f"pre_root_id,post_root_id,x,y,z\n{A},{B},400000,200000,100000\n",
               compress=True)
    assert main(["convert", "flywire", str(src), str(tmp_path / "fw"), "--synapses", "syn.csv.gz",
                 "--names", "fw_names.csv.gz"]) == 0
    capsys.readouterr()
    assert validate_release(tmp_path / "fw", deep=True).ok
    with open_release(tmp_path / "fw") as ds:
        assert neuron_table(ds, [A]).loc[A, "name"] == "AL.LH.1"
        assert rows(ds.get_connectivity([A], None), ["pre", "post", "weight"]) == {(A, B, 1)}
