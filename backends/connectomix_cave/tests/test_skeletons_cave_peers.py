"""Skeletons on CAVE datastacks, read by the unmodified peers (issue 14 items 1, 4): caveclient's skeleton client
and fafbseg's ``get_skeletons`` against the emulator, and connectomix from the published precomputed folder.

The sample is served with FlyWire-like root ids (caveclient refuses ids whose layer is not the root layer) and one
materialization, 783 (fafbseg publishes skeletons for 630 and 783 only).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.errors import IdsNotFoundError, IncompleteResponseError
from connectomix_cave.emulator import CaveEmulator
from connectomix_cave.emulator.testing import make_client, sample_release_path

SAMPLE = sample_release_path()
pytestmark = pytest.mark.skipif(SAMPLE is None, reason="the embedded sample release is not installed")
TOKEN = "0123456789abcdef0123456789abcdef"  # hexadecimal: cloud-volume's graphene client accepts no other
DA1 = [1734350788, 1734350908, 722817260, 754534424, 754538881]  # the five sample DA1 lPNs with skeletons
NO_SKELETON = [1765040289, 5813039315]  # sample DA1 lPNs without a skeleton (the sample's manifest says so)
FLYWIRE_BASE = 720_575_940_600_000_000  # FlyWire-like root ids: layer 10 in the top byte


def swc(root, body: int) -> pd.DataFrame:
    """A release skeleton file as written (read independently of the code under test)."""
    return pd.read_csv(root / "skeletons" / f"{body}.swc", sep=" ", comment="#", header=None,
                       names=["node_id", "label", "x", "y", "z", "radius", "parent_id"])


# -- unmodified peers -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def layered(tmp_path_factory):
    """The sample with FlyWire-like root ids, served with one materialization, 783."""
    folder = tmp_path_factory.mktemp("layered") / "sample"
    folder.mkdir()
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    for entry in (manifest.get("partial") or {}).values():
        entry["ids"] = [i + FLYWIRE_BASE for i in entry["ids"]]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    for name, cols in (("neurons.parquet", ["id"]), ("synapses.parquet", ["pre", "post"]),
                       ("connections.parquet", ["pre", "post"]), ("roi_counts.parquet", ["id"])):
        frame = pd.read_parquet(SAMPLE / name)
        for col in cols:
            frame[col] = np.where(frame[col] != 0, frame[col] + FLYWIRE_BASE, 0).astype("int64")
        frame.to_parquet(folder / name)
    (folder / "skeletons").mkdir()
    for body in DA1:
        shutil.copy(SAMPLE / "skeletons" / f"{body}.swc", folder / "skeletons" / f"{body + FLYWIRE_BASE}.swc")
    edits = {"synthetic": True, "versions": [{"version": 783, "time_stamp": "2024-01-01T00:00:00"}]}
    with CaveEmulator(folder, token=TOKEN, edits=edits) as emulator:
        yield emulator


def test_unmodified_caveclient_reads_the_skeletons(layered):
    client = make_client(layered)
    assert client.info.get_datastack_info()["skeleton_source"].startswith(f"precomputed://{layered.url}/skeletoncache")
    for body in DA1:
        theirs = swc(SAMPLE, body)
        sk = client.skeleton.get_skeleton(body + FLYWIRE_BASE)  # skeleton_version=4, output_format="dict"
        np.testing.assert_array_equal(sk["vertices"], theirs[["x", "y", "z"]].to_numpy())
        np.testing.assert_array_equal(sk["radius"], theirs["radius"].to_numpy())
        if body not in DA1[-2:]:
            continue  # SWC for two (each get_skeleton builds a CloudVolume first: about a second)
        table = client.skeleton.get_skeleton(body + FLYWIRE_BASE, output_format="swc")  # micrometres, 3 decimals
        np.testing.assert_allclose(table[["x", "y", "z"]].to_numpy() * 1000, theirs[["x", "y", "z"]].to_numpy(),
                                   atol=0.5)
        assert (table["parent"] == -1).sum() == (theirs["parent_id"] < 0).sum()
    bulk = client.skeleton.get_bulk_skeletons([b + FLYWIRE_BASE for b in DA1[:3]])
    assert sorted(map(int, bulk)) == sorted(b + FLYWIRE_BASE for b in DA1[:3])
    asked = [DA1[0] + FLYWIRE_BASE, NO_SKELETON[0] + FLYWIRE_BASE]
    cached = client.skeleton.fetch_skeletons(asked)  # only the roots that have one
    assert list(map(int, cached)) == asked[:1]
    np.testing.assert_array_equal(cached[str(asked[0])]["vertices"], swc(SAMPLE, DA1[0])[["x", "y", "z"]].to_numpy())
    assert client.skeleton.skeletons_exist(root_ids=asked) == {asked[0]: True, asked[1]: False}
    with pytest.raises(Exception, match="refusal list"):
        client.skeleton.get_skeleton(NO_SKELETON[0] + FLYWIRE_BASE)


def test_fafbseg_get_skeletons_reads_the_published_783_skeletons(layered, monkeypatch):
    flywire = pytest.importorskip("fafbseg.flywire")
    from fafbseg.flywire import skeletonize

    # configuration only: fafbseg keeps the bucket's address in a module constant (skeletonize.py:38-41)
    monkeypatch.setitem(skeletonize.SKELETON_BASE_URL, "783", f"{layered.url}/flyconnectome/flywire_skeletons_783")
    for body in DA1:
        n = flywire.get_skeletons(body + FLYWIRE_BASE, dataset=783)
        theirs = swc(SAMPLE, body)
        assert int(n.id) == body + FLYWIRE_BASE and n.n_nodes == len(theirs)
        np.testing.assert_allclose(np.sort(n.nodes[["x", "y", "z"]].to_numpy(), axis=0),
                                   np.sort(theirs[["x", "y", "z"]].to_numpy(), axis=0), rtol=1e-6)


def test_connectomix_reads_the_published_precomputed_skeletons(layered):
    template = f"{layered.url}/flyconnectome/flywire_skeletons_{{materialization}}"
    with connectomix.open(f"cave://{layered.datastack}", server=layered.url, token=TOKEN, materialization=783,
                          skeleton_source=template, cache=False) as ds:
        got = ds.get_skeletons([b + FLYWIRE_BASE for b in DA1])
        service = connectomix.open(f"cave://{layered.datastack}", server=layered.url, token=TOKEN,
                                   materialization=783, skeleton_source="service", cache=False)
        with service:
            same = service.get_skeletons([b + FLYWIRE_BASE for b in DA1])
    for a, b in zip(got, same):
        assert a.n_nodes == b.n_nodes and a.materialization == 783
        assert a.cable_length == pytest.approx(b.cable_length, rel=1e-6)  # float32 in the precomputed files


def test_a_cut_precomputed_file_raises(layered):
    template = f"{layered.url}/flyconnectome/flywire_skeletons_{{materialization}}"
    with connectomix.open(f"cave://{layered.datastack}", server=layered.url, token=TOKEN, materialization=783,
                          skeleton_source=template, cache=False) as ds:
        layered.app.skeletons.cut_next = 1
        try:
            with pytest.raises(IncompleteResponseError, match="cut or damaged"):
                ds.get_skeletons([DA1[0] + FLYWIRE_BASE])
        finally:
            layered.app.skeletons.cut_next = 0
        with pytest.raises(IdsNotFoundError):
            ds.get_skeletons([NO_SKELETON[0] + FLYWIRE_BASE])  # no file: 404
