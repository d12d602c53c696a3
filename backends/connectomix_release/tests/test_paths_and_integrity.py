"""Release folders: paths are paths (no DuckDB globbing), and corrupt folders are refused on open.

Every folder name below is a working DuckDB glob: before the paths were
escaped, ``rel[ab]`` read its neighbour ``rela``, ``rel*`` merged every
``rel...`` folder, and ``rel?`` read ``rela``/``relb``/``relX`` too.
Expected values come straight from the Parquet files with pandas.
"""

import json
import shutil
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.backend import Capability
from connectomix_release.importers import import_neuprint_csv
from connectomix_release.writer import (CHECKED_ROWS, make_manifest, validate_release, write_release,
                                        write_synapses_streaming)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
GLOB_NAMES = ["rel*", "rel?", "rel[ab]", "rel[!a]", "it's rel", "rel [a-z] two"]
NEIGHBOURS = ["rela", "relb", "relX", "rel", "it", "rel a two"]


@pytest.fixture(scope="module")
def crowded(tmp_path_factory, toy_release_module):
    """The toy release under every glob-looking name, next to folders holding the (different) sample."""
    base = tmp_path_factory.mktemp("crowded")
    for name in NEIGHBOURS:
        shutil.copytree(SAMPLE, base / name)
    for name in GLOB_NAMES:
        shutil.copytree(toy_release_module, base / name)
    return base


@pytest.fixture(scope="module")
def toy_release_module(tmp_path_factory):
    from connectomix.testing import make_toy_release

    return make_toy_release(tmp_path_factory.mktemp("toy"))


@pytest.mark.parametrize("name", GLOB_NAMES)
def test_release_folder_names_are_not_globs(crowded, toy_release_module, name):
    neurons = pd.read_parquet(toy_release_module / "neurons.parquet")
    conn = pd.read_parquet(toy_release_module / "connections.parquet")
    syn = pd.read_parquet(toy_release_module / "synapses.parquet")
    with connectomix.open(f"release://{quote(str(crowded / name))}", cache=False) as ds:
        got, roi_counts = ds.fetch_neurons()
        assert sorted(got["id"]) == sorted(neurons.loc[neurons.is_neuron & (neurons.id != 0), "id"])
        edges = ds.get_connectivity(sources=[101], include_autapses=True)
        c = conn[(conn.pre == 101) & (conn.post != 0)].groupby("post")["weight"].sum()
        assert edges.set_index("post")["weight"].sort_index().to_dict() == c.sort_index().to_dict()
        s = ds.get_synapses([101], post=False, include_autapses=True)
        assert sorted(s["synapse_id"]) == sorted(syn.loc[(syn.pre == 101) & (syn.post != 0), "synapse_id"])


def test_question_mark_in_a_release_uri_is_percent_encoded_or_refused(crowded):
    """'release:///.../rel?' once opened the neighbour 'rel' (the '?' began an empty option string)."""
    with pytest.raises(errors.InvalidURIError, match="%3F"):
        connectomix.open(f"release://{crowded / 'rel?'}", cache=False)
    with connectomix.open((crowded / "rel?").as_uri().replace("file://", "release://"), cache=False) as ds:
        assert ds.info.name == "toy"


def _export(folder: Path, bodies, weight: int) -> Path:
    folder.mkdir()
    pd.DataFrame({"bodyId": bodies, "type": "T", "instance": "T_R"}).to_csv(folder / "traced-neurons.csv",
                                                                             index=False)
    pd.DataFrame({"bodyId_pre": bodies[:-1], "bodyId_post": bodies[1:], "weight": weight}).to_csv(
        folder / "traced-total-connections.csv", index=False)
    return folder


@pytest.mark.parametrize("name", ["src[ab]", "src*", "src?", "it's src"])
def test_import_folders_are_not_globs(tmp_path, name):
    _export(tmp_path / "srca", [1, 2, 3], 7)  # what a glob would read
    _export(tmp_path / "srcb", [4, 5, 6], 8)
    src = _export(tmp_path / name, [11, 12, 13, 14], 3)
    dest = import_neuprint_csv(src, tmp_path / name.replace("src", "out"), version="v1")
    assert sorted(pd.read_parquet(dest / "neurons.parquet")["id"]) == [11, 12, 13, 14]
    conn = pd.read_parquet(dest / "connections.parquet")
    assert conn[["pre", "post", "weight"]].values.tolist() == [[11, 12, 3], [12, 13, 3], [13, 14, 3]]


def _tiny_release(folder: Path) -> Path:
    return write_release(
        folder, manifest=make_manifest(name="tiny", version="1", primary_rois=["A"], synthetic={"all": "test"}),
        neurons=pd.DataFrame({"id": [1, 2], "type": "T", "instance": None, "status": None,
                              "pre": [2, 2], "post": [2, 2], "is_neuron": True}),
        connections=pd.DataFrame({"pre": [1, 2], "post": [2, 1], "roi": ["A", "NotPrimary"], "weight": 2}))


def _synapses(start: int, n: int) -> pd.DataFrame:
    return pd.DataFrame({"synapse_id": np.arange(start, start + n), "pre": 1, "post": 2, "pre_x": 0.0,
                         "pre_y": 0.0, "pre_z": 0.0, "post_x": 1.0, "post_y": 1.0, "post_z": 1.0, "score": 0.9,
                         "roi": "A"})


def test_streamed_synapses_into_a_glob_named_folder(tmp_path):
    _tiny_release(tmp_path / "xa")  # the folder 'x[ab]' would glob to
    folder = _tiny_release(tmp_path / "x[ab]")
    write_synapses_streaming(tmp_path / "xa", [_synapses(100, 5)], update_manifest={"score_name": "c"})
    write_synapses_streaming(folder, [_synapses(0, 3), _synapses(3, 4)], update_manifest={"score_name": "c"})
    assert sorted(pd.read_parquet(folder / "synapses.parquet")["synapse_id"]) == list(range(7))
    assert json.loads((folder / "manifest.json").read_text())[CHECKED_ROWS]["synapses"] == 7
    with connectomix.open(f"release://{folder}", cache=False) as ds:
        assert len(ds.get_synapses([1], include_autapses=True)) == 7


# -- integrity on open ------------------------------------------------------------------------------------


def _corrupt(src: Path, dest: Path, table: str, damage) -> Path:
    shutil.copytree(src, dest)
    df = pd.read_parquet(dest / f"{table}.parquet")
    damage(df).to_parquet(dest / f"{table}.parquet", index=False)
    return dest


def _repeat_row(df: pd.DataFrame, i: int = 3) -> pd.DataFrame:
    return pd.concat([df, df.iloc[[i]]], ignore_index=True)


@pytest.mark.parametrize("table, key", [("neurons", "id"), ("connections", "pre, post, roi"),
                                        ("synapses", "synapse_id"), ("roi_counts", "id, roi")])
def test_duplicated_rows_are_refused_on_open(tmp_path, toy_release_module, table, key):
    folder = _corrupt(toy_release_module, tmp_path / "bad", table, _repeat_row)
    with pytest.raises(errors.DataFormatError, match=rf"{table}\.parquet' is corrupt: each \({key}\)"):
        connectomix.open(f"release://{folder}", cache=False)


def test_same_key_with_other_values_is_refused(tmp_path, toy_release_module):
    """A synapse id used twice for different synapses would drop one in the core's de-duplication."""
    def reuse_id(df):
        df = df.copy()
        df.loc[5, "synapse_id"] = df.loc[6, "synapse_id"]
        return df

    folder = _corrupt(toy_release_module, tmp_path / "bad", "synapses", reuse_id)
    with pytest.raises(errors.DataFormatError, match=r"synapses\.parquet' is corrupt"):
        connectomix.open(f"release://{folder}", cache=False)


def test_writer_records_checked_rows_and_open_compares_them(tmp_path):
    folder = _tiny_release(tmp_path / "rel")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest[CHECKED_ROWS] == {"neurons": 2, "connections": 2}
    with connectomix.open(f"release://{folder}", cache=False) as ds:
        assert ds.get_connectivity(sources=[1])["weight"].tolist() == [2]
    conn = pd.read_parquet(folder / "connections.parquet")
    _repeat_row(conn, 0).to_parquet(folder / "connections.parquet", index=False)  # weight 1->2 would double
    with pytest.raises(errors.DataFormatError, match=r"connections\.parquet' has 3 rows but .* records 2"):
        connectomix.open(f"release://{folder}", cache=False)
    report = validate_release(folder)
    assert not report.ok and "has 3 rows but the manifest's checked_rows records 2" in str(report)


def test_release_without_roi_counts_does_not_claim_rois(tmp_path, toy_release_module):
    folder = tmp_path / "no_roi_counts"
    shutil.copytree(toy_release_module, folder)
    (folder / "roi_counts.parquet").unlink()
    with connectomix.open(f"release://{folder}", cache=False) as ds:
        assert Capability.ROIS not in ds.capabilities
        with pytest.warns(UserWarning, match="no per-ROI synapse counts"):
            neurons, roi_counts = ds.fetch_neurons(type="KC")
        assert len(neurons) == 3 and roi_counts.empty
        with pytest.raises(errors.UnsupportedOperation, match="ROI criteria"):
            ds.fetch_neurons(rois=["A"])
        # per-ROI connection weights come from connections.parquet and stay available
        assert not ds.get_connectivity(sources=[101], by_roi=True).empty
