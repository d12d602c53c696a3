"""Issue 15: whole-dataset aggregates on both engines equal a brute-force pandas computation.

Random small releases (hypothesis) are written as Parquet with row groups of
a few rows; the Dask engine runs on a 2-worker ``LocalCluster`` of worker
*processes* with one row group per partition, so a neuron's rows straddle
partitions (the carry of each partition's first and last neuron is
exercised), on connection files sorted by ``pre`` as FORMAT.md requires and on
unsorted ones (the shuffle path). Expected tables are computed here from the
files' rows with pandas group-bys and Python sorting, never with the code
under test.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix import schema
from connectomix.errors import DataFormatError, InvalidArgumentError, ResourceLimitError
from connectomix_release import dask_engine
from connectomix_release.writer import make_manifest

ROIS = ["AL(R)", "LH(R)"]
ALL_ROIS = ROIS + [schema.NOT_PRIMARY]
TYPES = ["A", "B", "b", "Ä", "A2", None]  # upper/lower case and non-ASCII names: Python's order decides ties


@pytest.fixture(scope="module", autouse=True)
def one_row_group_per_partition():
    """Partitions of one row group each (the partition size is decided in this process)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dask_engine, "PARTITION_ROWS", 1)
        yield


def write_release(folder: Path, neurons: pd.DataFrame, connections: pd.DataFrame, *, row_group: int,
                  sort: bool) -> Path:
    """A release folder from these rows (connections sorted by pre, post, roi unless ``sort`` is False)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = make_manifest(name="random", version="v1", primary_rois=ROIS,
                             synthetic={"*": "random rows made by a property test"})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    up = connections.groupby("post")["weight"].sum()
    down = connections.groupby("pre")["weight"].sum()
    neurons = neurons.assign(upstream=neurons["id"].map(up).fillna(0).astype("int64"),
                             downstream=neurons["id"].map(down).fillna(0).astype("int64"))
    pq.write_table(pa.Table.from_pandas(neurons, preserve_index=False), folder / "neurons.parquet")
    if sort:
        connections = connections.sort_values(["pre", "post", "roi"])
    table = pa.Table.from_pandas(connections.reset_index(drop=True), preserve_index=False,
                                 schema=pa.schema([("pre", pa.int64()), ("post", pa.int64()), ("roi", pa.string()),
                                                   ("weight", pa.int64())]))
    pq.write_table(table, folder / "connections.parquet", row_group_size=row_group)
    return folder


@st.composite
def random_releases(draw):
    n = draw(st.integers(2, 4))
    ids = sorted(draw(st.sets(st.integers(1, 2**53), min_size=n, max_size=n)))
    neurons = pd.DataFrame({
        "id": pd.array(ids, dtype="int64"),
        "type": pd.array(draw(st.lists(st.sampled_from(TYPES), min_size=n, max_size=n)), dtype="string"),
        "instance": pd.array([None] * n, dtype="string"),
        "is_neuron": draw(st.lists(st.sampled_from([True, True, True, False]), min_size=n, max_size=n)),
    })
    pool = ids + [max(ids) + 1]  # a body that is not in neurons.parquet (a fragment): never counted
    keys = [(a, b, roi) for a in pool for b in pool for roi in ALL_ROIS]  # weight 0: no such row
    weights = draw(st.lists(st.integers(0, 4), min_size=len(keys), max_size=len(keys)))
    rows = [(*key, w) for key, w in zip(keys, weights) if w > 0]
    connections = pd.DataFrame(rows, columns=["pre", "post", "roi", "weight"]).astype(
        {"pre": "int64", "post": "int64", "weight": "int64"})
    if not draw(st.booleans()):
        connections = connections.sample(frac=1, random_state=draw(st.integers(0, 1000)))
    return neurons, connections, draw(st.integers(1, 12)), draw(st.sampled_from([True, True, False]))


# -- brute force ------------------------------------------------------------------------------------------


def _pairs(neurons, connections, *, by_roi, rois, min_weight, autapses):
    listed = set(neurons.loc[neurons["is_neuron"], "id"])
    c = connections[connections["pre"].isin(listed) & connections["post"].isin(listed)]
    if not autapses:
        c = c[c["pre"] != c["post"]]
    if rois is not None:
        c = c[c["roi"].isin(rois)]
    c = c[c.groupby(["pre", "post"])["weight"].transform("sum") >= max(min_weight, 1)]
    return c if by_roi else c.groupby(["pre", "post"], as_index=False)["weight"].sum()


def _type_of(neurons) -> dict:
    return {i: (t if isinstance(t, str) else schema.UNTYPED) for i, t in zip(neurons["id"], neurons["type"].astype(object))}


def expected_types(neurons, connections, *, by_roi, rois, min_weight, autapses) -> pd.DataFrame:
    pairs = _pairs(neurons, connections, by_roi=by_roi, rois=rois, min_weight=min_weight, autapses=autapses)
    types = _type_of(neurons)
    groups: dict = {}
    for row in pairs.itertuples():
        key = (types[row.pre], types[row.post]) + ((row.roi,) if by_roi else ())
        groups.setdefault(key, []).append(row)
    rows = [(*key[:2], sum(r.weight for r in g), len({r.pre for r in g}), len({r.post for r in g}), len(g), *key[2:])
            for key, g in groups.items()]
    rows.sort(key=lambda r: (-r[2], r[0], r[1], *r[6:]))
    columns = ["pre_type", "post_type", "weight", "n_pre", "n_post", "n_pairs"] + (["roi"] if by_roi else [])
    return pd.DataFrame(rows, columns=columns).astype({c: "int64" for c in columns[2:6]})


def expected_profiles(neurons, connections, *, direction, min_weight, autapses) -> pd.DataFrame:
    pairs = _pairs(neurons, connections, by_roi=False, rois=None, min_weight=min_weight, autapses=autapses)
    types = _type_of(neurons)
    me, other = ("post", "pre") if direction == "input" else ("pre", "post")
    groups: dict = {}
    for row in pairs.itertuples():
        groups.setdefault((getattr(row, me), types[getattr(row, other)]), []).append(row.weight)
    totals: dict = {}
    for (i, _), weights in groups.items():
        totals[i] = totals.get(i, 0) + sum(weights)
    rows = sorted(((i, t, sum(w), len(w), sum(w) / totals[i]) for (i, t), w in groups.items()),
                  key=lambda r: (r[0], -r[2], r[1]))
    return pd.DataFrame(rows, columns=["id", "partner_type", "weight", "n_partners", "fraction"]).astype(
        {"id": "int64", "weight": "int64", "n_partners": "int64", "fraction": "float64"})


def expected_roi_totals(connections, *, autapses) -> pd.DataFrame:
    c = connections if autapses else connections[connections["pre"] != connections["post"]]
    rows = sorted((roi, int(g["weight"].sum()), len(g)) for roi, g in c.groupby("roi"))
    out = pd.DataFrame(rows, columns=["roi", "weight", "n_pairs"]).astype({"weight": "int64", "n_pairs": "int64"})
    return out.assign(pre=pd.array([pd.NA] * len(out), dtype="Int64"), post=pd.array([pd.NA] * len(out), dtype="Int64"))


# -- the properties ---------------------------------------------------------------------------------------


def _same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(release=random_releases(), by_roi=st.booleans(), rois=st.sampled_from([None, ["AL(R)"], ALL_ROIS]),
       min_weight=st.integers(0, 7), autapses=st.booleans(), direction=st.sampled_from(["input", "output"]))
def test_both_engines_equal_brute_force(dask_client, release, by_roi, rois, min_weight, autapses, direction):
    neurons, connections, row_group, sort = release
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_release(Path(tmp) / "r", neurons, connections, row_group=row_group, sort=sort)
        types = expected_types(neurons, connections, by_roi=by_roi, rois=rois, min_weight=min_weight,
                               autapses=autapses)
        profiles = expected_profiles(neurons, connections, direction=direction, min_weight=min_weight,
                                     autapses=autapses)
        rois_total = expected_roi_totals(connections, autapses=autapses)
        # (DuckDB plans differently under a memory_limit: the pairs are streamed, not materialised)
        for options in ({}, {"memory_limit": "1GB"}, {"engine": "dask", "scheduler": dask_client}):
            with connectomix.open(f"release://{folder}", cache=False, **options) as ds:
                _same(ds.get_connectivity(NC(), NC(), by="type", by_roi=by_roi, rois=rois, min_weight=min_weight,
                                          include_autapses=autapses), types)
                _same(ds.partner_profiles(direction, min_weight=min_weight, include_autapses=autapses), profiles)
                _same(ds.roi_totals(include_autapses=autapses), rois_total)


# -- the Dask plan: the columns it reads, no shuffle of a sorted file, carried neurons ------------------------


def _big_neuron_release(folder: Path, *, sort: bool) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """Neuron 1 has 9 partners: with 2-row row groups its rows fill five partitions (sorted by pre or reversed)."""
    neurons = pd.DataFrame({"id": pd.array(range(1, 12), dtype="int64"),
                            "type": pd.array(["A", "B", "A", "C", None, "B", "A", "C", "B", "A", "C"], dtype="string"),
                            "instance": pd.array([None] * 11, dtype="string"), "is_neuron": [True] * 11})
    connections = pd.DataFrame({"pre": [1] * 9 + [2, 2, 3], "post": list(range(2, 11)) + [1, 3, 1],
                                "roi": ["AL(R)"] * 12, "weight": [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8]})
    rows = connections if sort else connections.iloc[::-1]  # (reversed: pre decreases)
    return write_release(folder, neurons, rows, row_group=2, sort=sort), neurons, connections


@pytest.mark.parametrize("sort", [True, False])
def test_dask_reads_only_needed_columns_and_shuffles_only_unsorted_files(tmp_path, dask_client, monkeypatch, sort):
    import dask.dataframe as dd

    folder, neurons, connections = _big_neuron_release(tmp_path / "r", sort=sort)
    reads, shuffles = [], []
    read, shuffle = dask_engine.DaskEngine._read, dd.DataFrame.shuffle
    monkeypatch.setattr(dask_engine.DaskEngine, "_read",
                        lambda self, name, columns=None, *a, **k: reads.append((name, columns)) or read(
                            self, name, columns, *a, **k))
    monkeypatch.setattr(dd.DataFrame, "shuffle", lambda self, *a, **k: shuffles.append(a) or shuffle(self, *a, **k))
    with connectomix.open(f"release://{folder}", cache=False, engine="dask", scheduler=dask_client) as ds:
        assert ds.backend._dask._connection_layout() == (sort, 1)
        _same(ds.get_connectivity(NC(), NC(), by="type", min_weight=2),
              expected_types(neurons, connections, by_roi=False, rois=None, min_weight=2, autapses=False))
        _same(ds.partner_profiles("output"),
              expected_profiles(neurons, connections, direction="output", min_weight=1, autapses=False))
        _same(ds.get_connectivity(NC(), NC(), by="type", by_roi=True),
              expected_types(neurons, connections, by_roi=True, rois=None, min_weight=1, autapses=False))
    assert [r for r in reads if r[0] == "connections.parquet"] == [
        ("connections.parquet", ["pre", "post", "weight"])] * 2 + [("connections.parquet", ["pre", "post", "weight", "roi"])]
    assert len(shuffles) == (0 if sort else 3)


def test_duckdb_aggregates_within_a_small_memory_limit(tmp_path):
    """Under a memory limit DuckDB spills to temp_directory (or fails loudly); the answers are those of an
    unlimited run, and the spill folder is gone once the dataset is closed."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _synthetic import make_synthetic_release

    folder = make_synthetic_release(tmp_path / "syn", n_bodies=2000, synapses_per_body=40)
    spill = tmp_path / "spill"
    with connectomix.open(f"release://{folder}", cache=False) as free, \
            connectomix.open(f"release://{folder}", cache=False, memory_limit="60MB", threads=1,
                             temp_directory=str(spill)) as tight:
        for call in (lambda ds: ds.get_connectivity(NC(), NC(), by="type", by_roi=True),
                     lambda ds: ds.partner_profiles("input")):
            expected = call(free)
            assert len(expected) > 1000
            pd.testing.assert_frame_equal(call(tight), expected)
    assert not spill.exists()
    with pytest.raises(InvalidArgumentError, match="temp_directory"):
        connectomix.open(f"release://{folder}", temp_directory=3)


def test_running_out_of_memory_is_a_resource_limit_error_naming_the_limit(tmp_path):
    """A real DuckDB out-of-memory failure (a limit far too small for the query) is a
    ResourceLimitError (also a MemoryError) naming memory_limit and what to change, not a DataFormatError."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _synthetic import make_synthetic_release

    folder = make_synthetic_release(tmp_path / "syn", n_bodies=2000, synapses_per_body=40)
    with connectomix.open(f"release://{folder}", cache=False, memory_limit="12MB", threads=1,
                          temp_directory=str(tmp_path / "spill")) as ds:
        with pytest.raises(ResourceLimitError, match=r"memory_limit=.12MB.*temp_directory=.*threads=.*dask") as err:
            ds.get_connectivity(NC(), NC(), by="type")
    assert isinstance(err.value, MemoryError) and not isinstance(err.value, DataFormatError)
    assert isinstance(err.value.__cause__, duckdb.OutOfMemoryException)


def test_partner_profiles_from_coded_arrays_release_them_and_keep_the_schema():
    """The coded columns may come as a dict of arrays (both engines give one): it is emptied as the answer is
    built, so no copy outlives its use; the answer has the documented columns and dtypes (expected by hand)."""
    import numpy as np

    from connectomix_release import aggregates

    rng = np.random.default_rng(5)
    n = 2_000
    names = np.array(["b", "A", schema.UNTYPED, "Ä", "A2"], dtype=object)
    coded = {"id": rng.integers(1, 60, n).astype("int64") * 10**15, "pc": rng.integers(0, 5, n).astype("int32"),
             "weight": rng.integers(1, 9, n).astype("int64"), "n_partners": rng.integers(1, 4, n).astype("int64")}
    keys = pd.DataFrame({"id": coded["id"], "pc": coded["pc"]})
    keep = ~keys.duplicated().to_numpy()  # (one row per neuron and partner type, as the engines give)
    coded = {k: v[keep] for k, v in coded.items()}
    rows = sorted(zip(coded["id"].tolist(), names[coded["pc"]].tolist(), coded["weight"].tolist(),
                      coded["n_partners"].tolist()), key=lambda r: (r[0], -r[2], r[1]))
    totals: dict[int, int] = {}
    for i, _, w, _ in rows:
        totals[i] = totals.get(i, 0) + w
    expected = pd.DataFrame(rows, columns=["id", "partner_type", "weight", "n_partners"])
    expected["fraction"] = [w / totals[i] for i, _, w, _ in rows]
    as_frame = aggregates.finish_partner_profiles(pd.DataFrame(coded), names)
    got = aggregates.finish_partner_profiles(coded, names)
    assert coded == {}  # every coded array released to the answer
    for frame in (got, as_frame):
        assert frame.dtypes.astype(str).tolist() == ["int64", "object", "int64", "int64", "float64"]
        pd.testing.assert_frame_equal(frame, expected, check_exact=False, rtol=1e-12)
