"""Issue 15: the release backend's Dask engine and releases on object storage (moto's S3 server on 127.0.0.1).

One 2-worker ``LocalCluster`` of worker *processes* and one S3 server (moto in
server mode: the real S3 wire protocol over HTTP, read by the unmodified
s3fs/botocore) serve the whole module. The conformance suite runs on the Dask
engine and on a release opened by its ``s3://`` URL; the whole-dataset
aggregates are checked against pandas computations straight from the toy
release's files, on both engines.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix import schema
from connectomix.errors import DataFormatError, InvalidArgumentError, UnsupportedOperation
from connectomix.testing.conformance import ConformanceTests, ToyTruth
from connectomix.testing.toy import make_toy_release
from connectomix_release.writer import POST_COPY, validate_release, write_post_copy

SECRET = "s3cr3t-never-shown-7f2a"  # moto accepts any credentials; this one must never leak


@pytest.fixture(scope="module")
def toy_scaled(tmp_path_factory):
    """The toy release with the post-sorted synapse copy (the layout the writer now produces)."""
    folder = make_toy_release(tmp_path_factory.mktemp("toy-scaled") / "toy")
    write_post_copy(folder)
    return folder


@pytest.fixture(scope="module")
def s3(toy_scaled):
    """A moto S3 server on 127.0.0.1 (OS-chosen port) holding the toy release under s3://releases/toy."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": SECRET}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("releases")
    fs.put(str(toy_scaled), "releases/toy", recursive=True)
    yield fs, options
    server.stop()


class TestDaskConformance(ConformanceTests):
    @pytest.fixture(scope="class")
    @classmethod
    def toy_release(cls, toy_scaled):
        return toy_scaled

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, toy_scaled, dask_client):
        with connectomix.open(f"release://{toy_scaled}", engine="dask", scheduler=dask_client) as ds:
            assert ds.backend._dask is not None
            yield ds


class TestS3Conformance(ConformanceTests):
    @pytest.fixture(scope="class")
    @classmethod
    def toy_release(cls, toy_scaled):
        return toy_scaled

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, s3):
        with connectomix.open("release://s3://releases/toy", storage_options=s3[1]) as ds:
            assert ds.backend.path is None and ds.backend.location == "s3://releases/toy"
            yield ds


# -- whole-dataset aggregates: pandas from the files, on both engines ---------------------------------------


def _expected_pairs(truth: ToyTruth, *, by_roi=False, rois=None, min_weight=1) -> pd.DataFrame:
    n = truth.neurons
    neuron_ids = n.loc[n["is_neuron"], "id"]
    c = truth.connections
    c = c[c.pre.isin(neuron_ids) & c.post.isin(neuron_ids) & (c.pre != c.post)]
    if rois is not None:
        c = c[c.roi.isin(rois)]
    total = c.groupby(["pre", "post"])["weight"].transform("sum")
    c = c[total >= min_weight]
    return c if by_roi else c.groupby(["pre", "post"], as_index=False)["weight"].sum()


def _type_of(truth: ToyTruth) -> dict:
    return {int(i): (t if isinstance(t, str) else schema.UNTYPED) for i, t in zip(truth.neurons.id, truth.neurons.type)}


@pytest.fixture(scope="module", params=["duckdb", "dask"])
def engine_ds(request, toy_scaled, dask_client):
    options = {"engine": "dask", "scheduler": dask_client} if request.param == "dask" else {}
    with connectomix.open(f"release://{toy_scaled}", **options) as ds:
        yield ds


@pytest.mark.parametrize("by_roi, rois, min_weight", [(False, None, 3), (True, None, 2), (True, ["A", "C(R)"], 2)])
def test_type_connectivity_of_every_neuron(engine_ds, toy_scaled, by_roi, rois, min_weight):
    truth = ToyTruth(toy_scaled)
    pairs = _expected_pairs(truth, by_roi=by_roi, rois=rois, min_weight=min_weight)
    types = _type_of(truth)
    pairs = pairs.assign(pre_type=pairs.pre.map(types), post_type=pairs.post.map(types))
    keys = ["pre_type", "post_type"] + (["roi"] if by_roi else [])
    expected = {}
    for key, g in pairs.groupby(keys):
        expected[key] = (int(g.weight.sum()), g.pre.nunique(), g.post.nunique(), len(g))
    got = engine_ds.get_connectivity(NC(), NC(), by="type", by_roi=by_roi, rois=rois, min_weight=min_weight)
    assert got.attrs["table"] == "type_connectivity"
    assert {tuple(getattr(r, k) for k in keys): (r.weight, r.n_pre, r.n_post, r.n_pairs) for r in got.itertuples()} == expected
    assert len(got) == len(expected) and got["weight"].is_monotonic_decreasing
    # the neuron-level path (explicit ids on both sides) gives the same table
    ids = truth.neurons.loc[truth.neurons.is_neuron, "id"].tolist()
    slow = engine_ds.get_connectivity(ids, ids, by="type", by_roi=by_roi, rois=rois, min_weight=min_weight)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), slow.reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize("direction", ["input", "output"])
def test_partner_profiles(engine_ds, toy_scaled, direction):
    truth = ToyTruth(toy_scaled)
    pairs = _expected_pairs(truth, min_weight=2)
    types = _type_of(truth)
    me, other = ("post", "pre") if direction == "input" else ("pre", "post")
    expected = {}
    for (i, t), g in pairs.assign(t=pairs[other].map(types)).groupby([me, "t"]):
        expected[(i, t)] = (int(g.weight.sum()), len(g))
    got = engine_ds.partner_profiles(direction, min_weight=2)
    assert {(r.id, r.partner_type): (r.weight, r.n_partners) for r in got.itertuples()} == expected
    totals = pairs.groupby(me)["weight"].sum()
    np.testing.assert_allclose(got["fraction"], got["weight"] / got["id"].map(totals))
    assert got["id"].is_monotonic_increasing


def test_roi_totals(engine_ds, toy_scaled):
    truth = ToyTruth(toy_scaled)
    c = truth.connections
    c = c[(c.pre != 0) & (c.post != 0) & (c.pre != c.post)]
    rc = truth.roi_counts[truth.roi_counts.id != 0]
    got = engine_ds.roi_totals().set_index("roi")
    assert sorted(got.index) == sorted(c.roi.unique())
    for roi, g in c.groupby("roi"):
        assert (got.at[roi, "weight"], got.at[roi, "n_pairs"]) == (g.weight.sum(), len(g))
        sites = rc[rc.roi == roi]
        assert (got.at[roi, "pre"], got.at[roi, "post"]) == (sites.pre.sum(), sites.post.sum())


def test_engines_agree_on_everything_whole(toy_scaled, dask_client):
    with connectomix.open(f"release://{toy_scaled}") as duck, \
            connectomix.open(f"release://{toy_scaled}", engine="dask", scheduler=dask_client) as dask:
        pd.testing.assert_frame_equal(duck.get_connectivity(NC(), NC(), by="type", by_roi=True),
                                      dask.get_connectivity(NC(), NC(), by="type", by_roi=True), check_dtype=False)
        pd.testing.assert_frame_equal(duck.partner_profiles("output"), dask.partner_profiles("output"),
                                      check_dtype=False)
        pd.testing.assert_frame_equal(duck.roi_totals(), dask.roi_totals(), check_dtype=False)


def test_whole_dataset_ops_elsewhere_are_refused_not_guessed(toy_scaled, monkeypatch):
    from connectomix_release.backend import ReleaseBackend

    monkeypatch.delattr(ReleaseBackend, "roi_totals")  # a backend without the aggregate
    with connectomix.open(f"release://{toy_scaled}") as ds, pytest.raises(UnsupportedOperation, match="roi_totals"):
        ds.roi_totals()


# -- layout: the post-sorted copy ----------------------------------------------------------------------------


def test_post_copy_prunes_row_groups_and_old_releases_still_answer(tmp_path, toy_scaled):
    old = shutil.copytree(toy_scaled, tmp_path / "old")
    (old / POST_COPY).unlink()
    syn = pd.read_parquet(toy_scaled / "synapses.parquet")
    ids = [101] + [int(i) for i in syn.loc[~syn.pre.isin([101]), "post"].unique()[:2]]
    with connectomix.open(f"release://{toy_scaled}") as new, connectomix.open(f"release://{old}") as legacy:
        for kwargs in ({}, {"pre": False}, {"post": False}, {"min_score": 0.5, "include_autapses": True}):
            pd.testing.assert_frame_equal(new.get_synapses(ids, **kwargs), legacy.get_synapses(ids, **kwargs))
    copy = pd.read_parquet(toy_scaled / POST_COPY)
    assert copy["post"].is_monotonic_increasing
    assert sorted(copy["synapse_id"]) == sorted(pd.read_parquet(toy_scaled / "synapses.parquet")["synapse_id"])


def test_a_post_copy_that_disagrees_is_refused(tmp_path, toy_scaled):
    bad = shutil.copytree(toy_scaled, tmp_path / "bad")
    copy = pd.read_parquet(bad / POST_COPY)
    copy.iloc[:-1].to_parquet(bad / POST_COPY, index=False)
    with pytest.raises(DataFormatError, match="write_post_copy"):
        connectomix.open(f"release://{bad}")
    assert any("write_post_copy" in str(p) for p in validate_release(bad).problems)


def test_release_writer_writes_the_post_copy(tmp_path, toy_scaled):
    from connectomix_release.writer import read_manifest, write_release

    tables = {t: pd.read_parquet(toy_scaled / f"{t}.parquet") for t in ("neurons", "connections", "roi_counts",
                                                                         "synapses")}
    tables = {t: df[~df.filter(["id", "pre", "post"]).eq(0).any(axis=1)] for t, df in tables.items()}  # no id 0
    manifest = {k: v for k, v in read_manifest(toy_scaled).items() if k != "meshes"}  # no meshes written here
    dest = write_release(tmp_path / "rel", manifest=manifest, **tables)
    copy = pd.read_parquet(dest / POST_COPY)
    assert copy["post"].is_monotonic_increasing and len(copy) == len(tables["synapses"])
    assert validate_release(dest, deep=True).ok


# -- object storage -----------------------------------------------------------------------------------------


def test_s3_release_through_dask_workers(s3, toy_scaled, dask_client):
    ids = [101, 102]
    with connectomix.open("release://s3://releases/toy", storage_options=s3[1], engine="dask",
                          scheduler=dask_client) as remote, connectomix.open(f"release://{toy_scaled}") as local:
        pd.testing.assert_frame_equal(remote.get_synapses(ids), local.get_synapses(ids))
        pd.testing.assert_frame_equal(remote.get_connectivity(NC(), NC(), by="type"),
                                      local.get_connectivity(NC(), NC(), by="type"), check_dtype=False)


def test_s3_cache_identity_follows_the_objects_and_never_holds_credentials(s3):
    fs, options = s3
    fs.copy("releases/toy", "releases/ident", recursive=True)
    with connectomix.open("release://s3://releases/ident", storage_options=options) as ds:
        before = ds.backend.cache_identity(None)
        text = json.dumps(before) + repr(ds.backend._loc) + repr(ds)
        assert SECRET not in text and "testing" not in text
        fs.pipe("releases/ident/neurons.parquet", fs.cat("releases/toy/neurons.parquet") + b"")  # same bytes, new object
        fs.pipe("releases/ident/connections.parquet", fs.cat("releases/toy/roi_counts.parquet"))
        after = ds.backend.cache_identity(None)
    assert before["files"]["connections.parquet"] != after["files"]["connections.parquet"]
    assert before["path"] == after["path"] and before["path"].startswith("s3://releases/ident @ ")


def test_s3_missing_release_and_bad_options(s3):
    with pytest.raises(DataFormatError, match="no manifest.json"):
        connectomix.open("release://s3://releases/nothing-here", storage_options=s3[1])
    with pytest.raises(InvalidArgumentError, match="anon"):
        connectomix.open("release:///tmp", anon=True)
    with pytest.raises(InvalidArgumentError, match="engine"):
        connectomix.open("release://s3://releases/toy", storage_options=s3[1], engine="spark")
    with pytest.raises(InvalidArgumentError, match="scheduler"):
        connectomix.open("release://s3://releases/toy", storage_options=s3[1], scheduler="tcp://127.0.0.1:1")
