"""Issue 15, the synapse filter at scale: only the row groups that can hold the ids are read (rowgroups.py).

The release here is written by connectomix's own writer with small row groups
(256 rows instead of 16,384, so a few thousand synapses make ~100 row groups
per file). Every answer is compared with a brute-force pandas filter of the
whole ``synapses.parquet``; the row groups read are compared with the groups
whose footer ranges hold an id (pyarrow statistics, computed here); the same
filter runs on the Dask engine (a LocalCluster of worker processes) and from
moto's S3 server on 127.0.0.1, where the bytes fetched are counted.
"""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectomix
from connectomix.backend import SynapseQuery
from connectomix_release import writer
from connectomix_release.rowgroups import RowGroupIndex, RowGroupReader
from connectomix_release.storage import Location
from connectomix_release.writer import POST_COPY, make_manifest, write_release

ROIS = ["AL(R)", "LH(R)", "CA(R)"]
GROUP = 256


def _tables(seed: int = 7) -> dict[str, pd.DataFrame]:
    """A small SYNTHETIC connectome: 400 neurons with heavy-tailed synapse counts, 100 fragments, 30,000 synapses."""
    rng = np.random.default_rng(seed)
    neuron_ids = np.arange(1001, 1401, dtype="int64")
    fragment_ids = np.arange(90_001, 90_101, dtype="int64")
    weight = rng.lognormal(0, 1.2, neuron_ids.size)
    p = weight / weight.sum()
    n = 30_000
    pre = neuron_ids[rng.choice(neuron_ids.size, n, p=p)]
    post = np.where(rng.random(n) < 0.05, fragment_ids[rng.integers(0, fragment_ids.size, n)],
                    neuron_ids[rng.choice(neuron_ids.size, n, p=p)])
    autapse = rng.random(n) < 0.01
    post[autapse] = pre[autapse]
    xyz = rng.integers(1000, 30000, size=(n, 3)).astype("float64")
    score = np.round(rng.uniform(0, 1, n), 3)
    score[rng.random(n) < 0.05] = np.nan
    roi = pd.Series(rng.choice(np.array(ROIS + [None], dtype=object), n), dtype="string")
    syn = pd.DataFrame({"synapse_id": rng.permutation(np.arange(1, n + 1, dtype="int64")) * 3, "pre": pre,
                        "post": post, "pre_x": xyz[:, 0], "pre_y": xyz[:, 1], "pre_z": xyz[:, 2],
                        "post_x": xyz[:, 0] + 8, "post_y": xyz[:, 1] + 8, "post_z": xyz[:, 2] + 8,
                        "score": score, "roi": roi})
    bucket = syn["roi"].fillna("NotPrimary")
    connections = (syn.assign(roi=bucket).groupby(["pre", "post", "roi"], as_index=False).size()
                   .rename(columns={"size": "weight"}))
    ids = np.concatenate([neuron_ids, fragment_ids])
    neurons = pd.DataFrame({"id": ids, "type": pd.Series([f"T{i % 9}" for i in range(ids.size)], dtype="string"),
                            "instance": pd.Series([None] * ids.size, dtype="string"),
                            "status": pd.Series(["Traced"] * ids.size, dtype="string"),
                            "pre": syn.groupby("pre").size().reindex(ids).fillna(0).astype("int64").to_numpy(),
                            "post": syn.groupby("post").size().reindex(ids).fillna(0).astype("int64").to_numpy(),
                            "is_neuron": np.isin(ids, neuron_ids)})
    return {"neurons": neurons, "connections": connections, "synapses": syn}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """The SYNTHETIC release, written by the writer with 256-row synapse groups (both files)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(writer, "SYNAPSE_SCAN_ROW_GROUP_SIZE", GROUP)
    try:
        folder = write_release(
            tmp_path_factory.mktemp("scale-filter") / "rel",
            manifest=make_manifest(name="filter-test", version="v1", primary_rois=ROIS, score_name="confidence",
                                   synthetic={"*": "every table is SYNTHETIC (tests/test_scale_filter.py)"}),
            **_tables())
    finally:
        mp.undo()
    assert pq.ParquetFile(folder / "synapses.parquet").metadata.num_row_groups > 100
    return folder


@pytest.fixture(scope="module")
def truth(release) -> pd.DataFrame:
    return pd.read_parquet(release / "synapses.parquet")


@pytest.fixture(scope="module")
def legacy(release, tmp_path_factory):
    """The same release as written before the post-sorted copy existed."""
    old = shutil.copytree(release, tmp_path_factory.mktemp("legacy") / "rel")
    (old / POST_COPY).unlink()
    return old


def _brute_force(df: pd.DataFrame, ids, *, pre=True, post=True, min_score=None, rois=None,
                 include_autapses=False) -> pd.DataFrame:
    side = np.zeros(len(df), bool)
    if pre:
        side |= df["pre"].isin(ids).to_numpy()
    if post:
        side |= df["post"].isin(ids).to_numpy()
    keep = side & (df["pre"] != 0).to_numpy() & (df["post"] != 0).to_numpy()
    if not include_autapses:
        keep &= (df["pre"] != df["post"]).to_numpy()
    if min_score is not None:
        keep &= (df["score"] >= min_score).fillna(False).to_numpy(bool)
    if rois is not None:
        keep &= df["roi"].isin(rois).fillna(False).to_numpy(bool)
    return df[keep].sort_values("synapse_id").reset_index(drop=True)


def _query(ids, **kwargs) -> SynapseQuery:
    options = {"pre": True, "post": True, "min_score": None, "rois": None, "include_autapses": False}
    options.update(kwargs)
    return SynapseQuery(ids=np.asarray(ids, dtype="int64"), materialization=None, batch_size=None, max_workers=1,
                        progress=False, **options)


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    pd.testing.assert_frame_equal(got.reset_index(drop=True).astype(object).where(got.notna(), None),
                                  expected.reset_index(drop=True).astype(object).where(expected.notna(), None),
                                  check_dtype=False)


@pytest.fixture(scope="module")
def opened(release, legacy):
    with connectomix.open(f"release://{release}") as new, connectomix.open(f"release://{legacy}") as old:
        yield new, old


ID_POOL = list(range(1001, 1401)) + list(range(90_001, 90_101)) + [5, 1000, 1401, 2**62]  # a few without rows


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=60),
       sides=st.sampled_from([(True, True), (True, False), (False, True)]),
       min_score=st.sampled_from([None, 0.5]), rois=st.sampled_from([None, ["AL(R)"], ["LH(R)", "CA(R)"]]),
       autapses=st.booleans())
def test_filter_equals_brute_force_on_random_ids(opened, truth, ids, sides, min_score, rois, autapses):
    pre, post = sides
    expected = _brute_force(truth, ids, pre=pre, post=post, min_score=min_score, rois=rois, include_autapses=autapses)
    query = _query(ids, pre=pre, post=post, min_score=min_score, rois=rois, include_autapses=autapses)
    for ds in opened:  # with the post-sorted copy, and a release written before it
        _same(ds.backend.get_synapses(query), expected)


def test_filter_through_the_dataset_api(opened, truth):
    ids = [1001, 1002, 1203, 90_050]
    expected = _brute_force(truth, ids)
    got = opened[0].get_synapses(ids, partner_types=False)
    assert sorted(got["synapse_id"]) == sorted(expected["synapse_id"])
    assert len(got) > 100


def _groups_holding(path, column: str, ids) -> tuple[set[int], set[int]]:
    """(groups whose footer [min, max] of ``column`` holds an id, groups that have a row of an id): by hand."""
    f = pq.ParquetFile(path)
    ranged, holding = set(), set()
    where = f.schema_arrow.get_field_index(column)
    for g in range(f.metadata.num_row_groups):
        stats = f.metadata.row_group(g).column(where).statistics
        if any(stats.min <= i <= stats.max for i in ids):
            ranged.add(g)
        if np.isin(f.read_row_group(g, columns=[column])[column].to_numpy(), ids).any():
            holding.add(g)
    return ranged, holding


@pytest.mark.parametrize("ids", [[1001], [1100, 1101, 1300], list(range(1001, 1401, 37)), [90_007, 1250]])
def test_only_row_groups_that_can_hold_the_ids_are_read(release, monkeypatch, ids):
    read: dict[str, list[int]] = {}
    original_init, original_read = pq.ParquetFile.__init__, pq.ParquetFile.read_row_groups

    def remember(self, source, *args, **kwargs):  # which file each ParquetFile reads
        original_init(self, source, *args, **kwargs)
        self._spied_name = getattr(source, "name", str(source))

    def spy(self, row_groups, *args, **kwargs):
        read.setdefault(self._spied_name, []).extend(row_groups)
        return original_read(self, row_groups, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "__init__", remember)
    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", spy)
    with connectomix.open(f"release://{release}") as ds:
        ds.backend.get_synapses(_query(ids))
    for name, column in (("synapses.parquet", "pre"), (POST_COPY, "post")):
        ranged, holding = _groups_holding(release / name, column, ids)
        got = set(read[str(release / name)])
        assert holding <= got <= ranged  # never a row missed, never a group whose range excludes every id
        assert len(got) == len(read[str(release / name)])  # each group read once
        total = pq.ParquetFile(release / name).metadata.num_row_groups
        assert len(got) <= 2 * len(ids) + 2 < total  # about one group per id, whatever the table's size


def test_footer_is_parsed_once_per_file_identity(release, tmp_path, truth):
    folder = shutil.copytree(release, tmp_path / "rel")
    ids = [1001, 1150, 90_003]
    with connectomix.open(f"release://{folder}") as ds:
        reader = ds.backend._rows
        ds.backend.get_synapses(_query(ids))
        before = reader.footers_read
        _same(ds.backend.get_synapses(_query(ids)), _brute_force(truth, ids))
        assert reader.footers_read == before  # the same files: no footer read again
        # the copy rewritten in place with other row groups (same rows): a stale footer would read wrong bytes
        table = pq.read_table(folder / POST_COPY)
        pq.write_table(table, folder / POST_COPY, row_group_size=1000)
        _same(ds.backend.get_synapses(_query(ids)), _brute_force(truth, ids))
        assert reader.footers_read == before + 1


def test_row_groups_without_statistics_are_always_read(tmp_path):
    table = pa.table({"pre": np.repeat(np.arange(50, dtype="int64"), 4), "x": np.arange(200.0)})
    pq.write_table(table, tmp_path / "plain.parquet", row_group_size=16, write_statistics=False)
    pq.write_table(table, tmp_path / "stats.parquet", row_group_size=16)
    reader = RowGroupReader(Location(tmp_path))
    assert reader.select("plain.parquet", "pre", [7]).tolist() == list(range(13))
    assert reader.select("stats.parquet", "pre", [7]).tolist() == [1]
    for name in ("plain.parquet", "stats.parquet"):
        assert reader.read(name, "pre", [7, 49, 99])["x"].to_pylist() == [28.0, 29.0, 30.0, 31.0, 196.0, 197.0,
                                                                          198.0, 199.0]
    assert reader.read("stats.parquet", "pre", [99]).num_rows == 0


@given(low=st.lists(st.integers(-50, 50), min_size=0, max_size=12), ids=st.lists(st.integers(-60, 60), max_size=12))
@settings(max_examples=60, deadline=None)
def test_selection_is_exactly_the_ranges_holding_an_id(low, ids):
    low = np.sort(np.asarray(low, dtype="int64"))
    high = low + np.arange(low.size) % 5
    got = RowGroupIndex(low, high).select(ids).tolist()
    assert got == [g for g in range(low.size) if any(low[g] <= i <= high[g] for i in ids)]


# -- Dask workers and object storage ------------------------------------------------------------------------


def test_dask_workers_give_the_same_rows(release, legacy, truth, dask_client):
    rng = np.random.default_rng(11)
    cases = [(release, 1, {}), (release, 60, {}), (release, 7, {"pre": False}),
             (release, 7, {"post": False, "min_score": 0.5, "include_autapses": True}),
             (legacy, 20, {"rois": ["AL(R)"]})]
    for folder, n, kwargs in cases:
        ids = rng.choice(ID_POOL, n, replace=False).tolist()
        with connectomix.open(f"release://{folder}", engine="dask", scheduler=dask_client) as ds:
            _same(ds.backend.get_synapses(_query(ids, **kwargs)), _brute_force(truth, ids, **kwargs))


@pytest.fixture(scope="module")
def s3(release):
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options)
    # a bucket of this file's own: moto keeps buckets for the whole process, and test_scale.py makes "releases"
    fs.mkdir("scale-filter")
    fs.put(str(release), "scale-filter/rel", recursive=True)
    yield options
    fs.rm("scale-filter", recursive=True)
    server.stop()


def test_from_s3_only_the_selected_row_groups_are_fetched(s3, release, truth, monkeypatch):
    import s3fs.core

    fetched: list[tuple[str, int, int]] = []
    original = s3fs.core.S3File._fetch_range

    def counting(self, start, end):
        data = original(self, start, end)
        fetched.append((self.path.rsplit("/", 1)[-1], start, len(data)))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    ids = [1001, 1120, 1300, 90_010]
    with connectomix.open("release://s3://scale-filter/rel", storage_options=s3) as ds:
        ds.backend.get_synapses(_query(ids))  # footers read (once per file identity)
        fetched.clear()
        got = ds.backend.get_synapses(_query(ids))
    _same(got, _brute_force(truth, ids))
    for name, column in (("synapses.parquet", "pre"), (POST_COPY, "post")):
        meta = pq.ParquetFile(release / name).metadata
        ranged, _ = _groups_holding(release / name, column, ids)
        selected = sum(meta.row_group(g).column(c).total_compressed_size
                       for g in ranged for c in range(meta.num_columns))
        got_bytes = sum(n for f, _, n in fetched if f == name)
        size = (release / name).stat().st_size
        assert got_bytes == selected, (name, got_bytes, selected)  # the selected column chunks, each byte once
        assert got_bytes < size / 5
        assert len([f for f, _, _ in fetched if f == name]) <= len(ranged)  # one range per run of adjacent groups
