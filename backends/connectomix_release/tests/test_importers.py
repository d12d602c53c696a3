"""Importers from public release formats, checked number by number against pandas."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.cli import main
from connectomix.errors import DataFormatError, InvalidArgumentError
from connectomix_release.importers import import_flywire, import_neuprint_csv
from connectomix_release.writer import validate_release


@pytest.fixture
def neuprint_export(tmp_path):
    """A small neuPrint compact export with the real file names and headers (synthetic values)."""
    src = tmp_path / "exported-traced-adjacencies-v1.2"
    src.mkdir()
    pd.DataFrame({"bodyId": [1, 2, 3], "instance": ["A_R", "B_R", None], "type": ["A", "B", None]}).to_csv(
        src / "traced-neurons.csv", index=False)
    totals = pd.DataFrame({"bodyId_pre": [1, 1, 2, 3, 2], "bodyId_post": [2, 3, 1, 1, 9], "weight": [10, 4, 7, 1, 2]})
    totals.to_csv(src / "traced-total-connections.csv", index=False)
    # per-ROI rows for primary ROIs only; 1->2 has 3 outside them; 2->9 has no ROI rows
    pd.DataFrame({"bodyId_pre": [1, 1, 1, 2, 3], "bodyId_post": [2, 2, 3, 1, 1], "roi": ["AL(R)", "LH(R)", "LH(R)", "AL(R)", "AL(R)"],
                  "weight": [5, 2, 4, 7, 1]}).to_csv(src / "traced-roi-connections.csv", index=False)
    return src


def test_neuprint_csv(neuprint_export, tmp_path):
    dest = import_neuprint_csv(neuprint_export, tmp_path / "rel", name="mini", version="v1")
    c = pd.read_parquet(dest / "connections.parquet").set_index(["pre", "post", "roi"])["weight"]
    assert c[(1, 2, "AL(R)")] == 5 and c[(1, 2, "LH(R)")] == 2 and c[(1, 2, "NotPrimary")] == 3
    assert c[(2, 9, "NotPrimary")] == 2
    assert c.groupby(level=[0, 1]).sum().to_dict() == {(1, 2): 10, (1, 3): 4, (2, 1): 7, (2, 9): 2, (3, 1): 1}
    neurons = pd.read_parquet(dest / "neurons.parquet").set_index("id")
    assert neurons.loc[9, "is_neuron"] == False and neurons.loc[1, "is_neuron"] == True  # noqa: E712
    assert neurons.loc[1, "pre"] == 14 and neurons.loc[1, "post"] == 8
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["primary_rois"] == ["AL(R)", "LH(R)"] and manifest["version"] == "v1"
    ds = connectomix.open(f"release://{dest}")
    assert ds.get_connectivity(sources=[1], rois=["AL(R)"])["weight"].tolist() == [5]
    assert validate_release(dest)["rows"]["connections"] == len(c)


def test_overlapping_rois_need_primary_rois(neuprint_export, tmp_path):
    roi = pd.read_csv(neuprint_export / "traced-roi-connections.csv")
    nested = roi[roi.roi == "AL(R)"].assign(roi="AL-DA1(R)")  # a sub-ROI repeating AL(R)'s weights
    pd.concat([roi, nested]).to_csv(neuprint_export / "traced-roi-connections.csv", index=False)
    with pytest.raises(DataFormatError, match="--primary-rois"):
        import_neuprint_csv(neuprint_export, tmp_path / "rel")
    assert not (tmp_path / "rel").exists()  # nothing half-written
    dest = import_neuprint_csv(neuprint_export, tmp_path / "rel", primary_rois=["AL(R)", "LH(R)"])
    assert "AL-DA1(R)" not in set(pd.read_parquet(dest / "connections.parquet").roi)


def test_bad_ids_name_file_and_column(neuprint_export, tmp_path):
    pd.DataFrame({"bodyId_pre": [1, "x12"], "bodyId_post": [2, 3], "weight": [1, 1]}).to_csv(
        neuprint_export / "traced-total-connections.csv", index=False)
    with pytest.raises(DataFormatError, match=r"traced-total-connections.csv: column 'bodyId_pre'.*'x12'"):
        import_neuprint_csv(neuprint_export, tmp_path / "rel")


def test_missing_files_and_existing_dest(tmp_path, neuprint_export):
    with pytest.raises(DataFormatError, match="no neurons CSV"):
        import_neuprint_csv(tmp_path, tmp_path / "rel")
    (tmp_path / "exists").mkdir()
    with pytest.raises(InvalidArgumentError, match="already exists"):
        import_neuprint_csv(neuprint_export, tmp_path / "exists")


@pytest.fixture
def flywire_download(tmp_path):
    """FlyWire release tables with the real headers (synthetic values), gzipped like Codex's."""
    src = tmp_path / "flywire"
    src.mkdir()
    conns = pd.DataFrame({"pre_root_id": [720575940000000001, 720575940000000001, 720575940000000002, 720575940000000002],
                          "post_root_id": [720575940000000002, 720575940000000002, 720575940000000001, 720575940000000009],
                          "neuropil": ["AL_R", "UNASGD", "LH_R", "AL_R"], "syn_count": [6, 2, 5, 3],
                          "nt_type": ["ACH", "ACH", "GABA", "GABA"]})
    with gzip.open(src / "connections.csv.gz", "wt") as f:
        conns.to_csv(f, index=False)
    with gzip.open(src / "classification.csv.gz", "wt") as f:
        pd.DataFrame({"root_id": [720575940000000001, 720575940000000002], "flow": ["intrinsic"] * 2,
                      "super_class": ["central"] * 2, "class": ["ALPN", "LN"], "sub_class": [None, None],
                      "cell_type": [None, "lLN1"], "hemibrain_type": ["DA1_lPN", None], "hemilineage": [None, None],
                      "side": ["right", "right"], "nerve": [None, None]}).to_csv(f, index=False)
    with gzip.open(src / "consolidated_cell_types.csv.gz", "wt") as f:
        pd.DataFrame({"root_id": [720575940000000001], "primary_type": ["DA1_lPN"],
                      "additional_type(s)": [None]}).to_csv(f, index=False)
    syn = pd.DataFrame({"id": [11, 12, 13], "pre_pt_root_id": [720575940000000001] * 2 + [720575940000000002],
                        "post_pt_root_id": [720575940000000002] * 2 + [720575940000000001],
                        "pre_x": [100, 200, 300], "pre_y": [10, 20, 30], "pre_z": [1, 2, 3],
                        "post_x": [101, 201, 301], "post_y": [11, 21, 31], "post_z": [2, 3, 4],
                        "cleft_score": [55, 140, 30], "neuropil": ["AL_R", "UNASGD", "LH_R"]})
    syn.to_feather(src / "flywire_synapses_783.feather")
    return src


def test_flywire(flywire_download, tmp_path):
    dest = import_flywire(flywire_download, tmp_path / "fw", version="783", coordinate_unit="voxel")
    c = pd.read_parquet(dest / "connections.parquet")
    assert set(c.roi) == {"AL_R", "LH_R", "NotPrimary"}
    assert c.weight.sum() == 16
    neurons = pd.read_parquet(dest / "neurons.parquet").set_index("id")
    assert neurons.loc[720575940000000001, "type"] == "DA1_lPN"
    assert neurons.loc[720575940000000002, "type"] == "lLN1"
    assert neurons.loc[720575940000000009, "is_neuron"] == False  # noqa: E712
    assert neurons.loc[720575940000000001, "class"] == "ALPN"
    syn = pd.read_parquet(dest / "synapses.parquet").set_index("synapse_id")
    assert syn.loc[11, "pre_x"] == 400.0 and syn.loc[11, "pre_z"] == 40.0  # 4x4x40 voxels -> nm
    assert pd.isna(syn.loc[12, "roi"]) and syn.loc[13, "score"] == 30
    ds = connectomix.open(f"release://{dest}")
    got = ds.get_synapses(720575940000000001, min_score=50)
    assert sorted(got.synapse_id) == [11, 12]  # 13 has cleft_score 30 < 50


def test_flywire_missing_column(flywire_download, tmp_path):
    conns = pd.read_csv(flywire_download / "connections.csv.gz").drop(columns=["syn_count"])
    conns.to_csv(flywire_download / "connections.csv.gz", index=False, compression="gzip")
    with pytest.raises(DataFormatError, match=r"connections.csv.gz: no column for 'syn_count'"):
        import_flywire(flywire_download, tmp_path / "fw")


def test_cli_convert(neuprint_export, tmp_path, capsys):
    assert main(["convert", "neuprint-csv", str(neuprint_export), str(tmp_path / "r"), "--release-version", "v9"]) == 0
    assert "connections: 7" in capsys.readouterr().out
    assert main(["convert", "nope", str(neuprint_export), str(tmp_path / "x")]) == 2
    assert main(["convert", "flywire", str(neuprint_export), str(tmp_path / "y"), "--primary-rois", "A"]) == 2
