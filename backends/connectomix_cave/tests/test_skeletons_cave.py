"""Skeletons on CAVE datastacks (issue 14 items 1, 4, 5): the emulated skeleton service serves the release's own
skeletons in the real wire shape; connectomix, unmodified caveclient and fafbseg read them; attaching synapses to
them gives the release's nodes; faults raise, never a partial list; a warm cache sends nothing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.errors import ConnectomixError, IdsNotFoundError, IncompleteResponseError, ServerError
from connectomix.http import RetryPolicy
from connectomix_cave.emulator import CaveEmulator
from connectomix_cave.emulator.testing import sample_release_path

navis = pytest.importorskip("navis")

SAMPLE = sample_release_path()
pytestmark = pytest.mark.skipif(SAMPLE is None, reason="the embedded sample release is not installed")
TOKEN = "0123456789abcdef0123456789abcdef"  # hexadecimal: cloud-volume's graphene client accepts no other
DA1 = [1734350788, 1734350908, 722817260, 754534424, 754538881]  # the five sample DA1 lPNs with skeletons
NO_SKELETON = [1765040289, 5813039315]  # sample DA1 lPNs without a skeleton (the sample's manifest says so)


def swc(root: Path, body: int) -> pd.DataFrame:
    """A release skeleton file as written (read independently of the code under test)."""
    return pd.read_csv(root / "skeletons" / f"{body}.swc", sep=" ", comment="#", header=None,
                       names=["node_id", "label", "x", "y", "z", "radius", "parent_id"])


@pytest.fixture(scope="module")
def emu():
    with CaveEmulator(SAMPLE, token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def clean(emu):
    yield emu
    emu.faults.clear()
    emu.stats.reset()
    emu.app.skeletons.cut_next = 0
    emu.app.skeletons.uncached = set()


#: The service's routes a read of DA1 uses: the cached bulk route, or one request per root when the service
#: has none of them cached yet (``uncached``: left out of the bulk answer, then asked alone).
ROUTES = ["skeletons_bulk", "skeleton"]


def through(emu, route: str) -> None:
    if route == "skeleton":
        emu.app.skeletons.uncached = set(DA1)


def open_cave(emu, **options):
    options.setdefault("cache", False)
    return connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, materialization=1,
                            skeleton_source="service", **options)


@pytest.fixture(scope="module")
def cave(emu):
    with open_cave(emu) as ds:
        yield ds


@pytest.fixture(scope="module")
def release():
    with connectomix.open("sample") as ds:
        yield ds


# -- the same skeletons, node for node ------------------------------------------------------------------------

def test_cave_skeletons_equal_the_release_files_node_for_node(cave):
    skeletons = cave.get_skeletons(DA1)
    assert sorted(int(n.id) for n in skeletons) == sorted(DA1)
    assert skeletons.attrs["version"] == 1 and skeletons.attrs["units"] == "nm"
    assert "skeleton service" in skeletons.attrs["source"]
    for n in skeletons:
        theirs = swc(SAMPLE, int(n.id))
        row = pd.Series(np.arange(len(theirs)), index=theirs["node_id"])
        nodes = n.nodes.sort_values("node_id")
        assert str(n.units) == "1 nanometer" and n.materialization == n.version == 1 and n.dataset == cave.name
        assert nodes["node_id"].tolist() == list(range(len(theirs)))  # vertex index = file row
        np.testing.assert_array_equal(nodes[["x", "y", "z"]].to_numpy(), theirs[["x", "y", "z"]].to_numpy())
        np.testing.assert_array_equal(nodes["radius"].to_numpy(), theirs["radius"].to_numpy())
        assert nodes["label"].tolist() == theirs["label"].tolist()
        parents = theirs["parent_id"].map(lambda p: -1 if p < 0 else int(row[p]))
        assert nodes["parent_id"].tolist() == parents.tolist()


def test_cave_skeletons_equal_the_release_backends_skeletons(cave, release):
    ours, theirs = cave.get_skeletons(DA1), release.get_skeletons(DA1)
    assert [int(n.id) for n in ours] == [int(n.id) for n in theirs]
    for a, b in zip(ours, theirs):
        assert a.id == b.id and a.n_nodes == b.n_nodes and a.n_branches == b.n_branches
        assert a.cable_length == pytest.approx(b.cable_length, rel=1e-6)  # navis keeps float32 coordinates
        # navis reads SWC coordinates as float32; the service sends the file's numbers
        np.testing.assert_array_equal(a.nodes[["x", "y", "z"]].to_numpy().astype("float32"),
                                      b.nodes[["x", "y", "z"]].to_numpy())


def test_missing_skeletons_follow_missing_and_unknown_ids_raise(cave):
    with pytest.raises(IdsNotFoundError) as info:
        cave.get_skeletons(DA1[:2] + NO_SKELETON)
    assert sorted(info.value.ids) == sorted(NO_SKELETON)
    got = cave.get_skeletons(DA1[:2] + NO_SKELETON, missing="skip")
    assert sorted(int(n.id) for n in got) == sorted(DA1[:2])
    with pytest.warns(connectomix.errors.MissingDataWarning, match=str(NO_SKELETON[0])):
        cave.get_skeletons(DA1[:1] + NO_SKELETON[:1], missing="warn")
    with pytest.raises(IdsNotFoundError, match="not root ids"):
        cave.get_skeletons([DA1[0], 99])  # 99 is no root of the datastack at all


# -- attaching synapses: the release's nodes ------------------------------------------------------------------

def _node_of_synapse(neurons, node_ids) -> pd.Series:
    """(neuron, pre/post, synapse id) -> release node id of the node it was attached to (``node_ids(neuron, node)``
    maps a neuron's node ids to the release's)."""
    rows = {}
    for n in neurons:
        exploded = n.connectors.explode("synapse_ids")
        for kind, sid, node in zip(exploded["type"], exploded["synapse_ids"], exploded["node_id"]):
            rows[(int(n.id), str(kind), int(sid))] = node_ids(int(n.id), int(node))
    return pd.Series(rows)


def test_attach_on_cave_skeletons_gives_the_release_node_ids(cave, release):
    _, ours = cave.get_synapses(cave.get_skeletons(DA1), attach=True, progress=False)
    _, theirs = release.get_synapses(release.get_skeletons(DA1), attach=True, progress=False)
    files = {body: swc(SAMPLE, body)["node_id"].to_numpy() for body in DA1}  # CAVE node i = file row i
    a = _node_of_synapse(ours, lambda body, node: int(files[body][node]))
    b = _node_of_synapse(theirs, lambda body, node: node)
    common = a.index.intersection(b.index)
    assert len(common) > 0.5 * len(b)  # the CAVE view keeps most synapses (cleft score and de-duplication)
    agree = float((a[common] == b[common]).mean())
    assert agree >= 0.99, f"nearest node agrees for {agree:.2%}"


# -- faults: an error, never a partial list ----------------------------------------------------------------------

@pytest.mark.parametrize("route", ROUTES)
def test_a_persistent_5xx_is_a_server_error(emu, clean, route):
    through(emu, route)
    with open_cave(emu) as ds:
        ds.backend.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
        emu.faults.fail_next(50, status=503, endpoint=route)
        with pytest.raises(ServerError, match="503"):
            ds.get_skeletons(DA1)


@pytest.mark.parametrize("route", ROUTES)
def test_a_transient_5xx_is_retried(emu, clean, route):
    through(emu, route)
    with open_cave(emu) as ds:
        ds.backend.retry = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02)
        emu.faults.fail_next(2, status=502, endpoint=route)
        assert sorted(int(n.id) for n in ds.get_skeletons(DA1)) == sorted(DA1)


@pytest.mark.parametrize("route", ROUTES)
def test_a_cut_gzip_body_in_a_valid_http_message_raises(emu, clean, route):
    through(emu, route)
    with open_cave(emu) as ds:
        emu.app.skeletons.cut_next = 1
        with pytest.raises(IncompleteResponseError, match="not whole gzip"):
            ds.get_skeletons(DA1)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fault", ["reset", "short_length"])
def test_a_broken_connection_after_the_retries_raises(emu, clean, fault, route):
    through(emu, route)
    with open_cave(emu) as ds:
        ds.backend.retry = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
        if fault == "reset":
            emu.faults.reset_next(50, endpoint=route)
        else:
            emu.faults.lie_length_next(50, delta=-16, endpoint=route)
        with pytest.raises(ConnectomixError):
            ds.get_skeletons(DA1)


# -- the cache ----------------------------------------------------------------------------------------------------

def test_a_cache_hit_sends_no_request(emu, clean, tmp_path):
    with open_cave(emu, cache=str(tmp_path / "cache")) as ds:
        first = ds.get_skeletons(DA1)
        assert emu.stats.requests("skeletons_bulk") == 1 and emu.stats.requests("skeleton") == 0
        emu.stats.reset()
        again = ds.get_skeletons(DA1)
        assert emu.stats.snapshot() == {}
    with open_cave(emu, cache=str(tmp_path / "cache")) as fresh:  # a new Dataset (and client) on the same cache
        later = fresh.get_skeletons(DA1)
        assert emu.stats.snapshot() == {}  # not even connecting: versions, ids and identity are in the cache
    for a, b, c in zip(first, again, later):
        pd.testing.assert_frame_equal(a.nodes.reset_index(drop=True), b.nodes.reset_index(drop=True))
        pd.testing.assert_frame_equal(a.nodes.reset_index(drop=True), c.nodes.reset_index(drop=True))
        assert b.materialization == c.materialization == 1


def test_a_damaged_cache_entry_is_fetched_again(emu, clean, tmp_path):
    with open_cave(emu, cache=str(tmp_path / "cache")) as ds:
        first = ds.get_skeletons(DA1[:2])
        reader = ds.backend._skeleton_reader
        cache, identity = reader._cache(1)
        key = reader._key(identity, 1, DA1[0])
        raw = cache._store.get(key)
        cache._store.set(key, raw[: len(raw) // 2])
        emu.stats.reset()
        with pytest.warns(connectomix.errors.CacheWarning, match="corrupt entry"):
            again = ds.get_skeletons(DA1[:2])
        assert emu.stats.requests("skeleton") == 1  # only the damaged one
        assert cache._store.get(key) == raw  # stored again, intact
    for a, b in zip(first, again):
        pd.testing.assert_frame_equal(a.nodes.reset_index(drop=True), b.nodes.reset_index(drop=True))


# -- decoding: a damaged answer is an error naming the root ---------------------------------------------------------

def _flat(**fields):
    from connectomix_cave.emulator.skeletons import compress_json

    body = {"vertices": [[0, 0, 0], [1, 0, 0], [2, 0, 0]], "edges": [[1, 0], [2, 1]], "root": 0,
            "radius": [1, 1, 1], "compartment": [1, 3, 3]}
    body.update(fields)
    return compress_json(body)


def test_decode_flatdict_builds_the_tree_from_the_root():
    from connectomix_cave.morphology import decode_flatdict

    nodes = decode_flatdict(_flat(edges=[[0, 1], [2, 1]], root=2), 7, "u")  # edge orientation does not matter
    assert nodes["parent_id"].tolist() == [1, 2, -1] and nodes["label"].tolist() == [1, 3, 3]


@pytest.mark.parametrize("body, error, match", [
    (_flat()[:-9], IncompleteResponseError, "not whole gzip"),
    (b"{}", IncompleteResponseError, "not whole gzip"),
    (_flat(edges=[[0, 1], [1, 2], [2, 0]]), connectomix.errors.DataFormatError, "edges"),
    (_flat(radius=[1, 1]), connectomix.errors.DataFormatError, "2 radii"),
    (_flat(vertices=[[0, 0], [1, 0]]), connectomix.errors.DataFormatError, "malformed|shape"),
    (_flat(root=5), connectomix.errors.DataFormatError, "root 5"),
])
def test_decode_flatdict_refuses_damaged_skeletons(body, error, match):
    from connectomix_cave.morphology import decode_flatdict

    with pytest.raises(error, match=match):
        decode_flatdict(body, 7, "u")


def test_the_service_precomputed_answer_is_read_by_cloud_volume(emu, clean):
    import requests
    from cloudvolume import Skeleton

    base = f"{emu.url}/skeletoncache/api/v1/{emu.datastack}/precomputed/skeleton"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    info = requests.get(f"{base}/info", headers=auth, timeout=30).json()
    assert [a["id"] for a in info["vertex_attributes"]] == ["radius", "compartment"]  # Neuroglancer version 2
    data = requests.get(f"{base}/{DA1[0]}", headers=auth, timeout=30).content
    sk = Skeleton.from_precomputed(data, segid=DA1[0], vertex_attributes=info["vertex_attributes"])
    theirs = swc(SAMPLE, DA1[0])
    np.testing.assert_allclose(sk.vertices, theirs[["x", "y", "z"]].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(sk.radius, theirs["radius"].to_numpy(), rtol=1e-6)


# -- the catalogue's source and its version gate ---------------------------------------------------------------------

def test_flywire_public_defaults_to_the_published_skeletons_at_630_and_783_only(emu):
    with connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, materialization=1,
                          cache=False) as ds:  # flywire_fafb_public: the catalogue's source
        with pytest.raises(connectomix.errors.UnsupportedOperation, match=r"\[630, 783\]"):
            ds.get_skeletons(DA1[:1])
        assert "flyem.mrc-lmb.cam.ac.uk" in ds.backend._skeleton_reader.source
    assert emu.stats.requests("flywire_skeleton") == 0
