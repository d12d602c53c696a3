"""Issue 15, the synapse filter from object storage: the selected byte ranges, fetched concurrently.

The SYNTHETIC release of ``test_scale_filter.py`` (256-row groups) is served
over HTTP on 127.0.0.1 by ``connectomix.testing.range_server`` (byte ranges,
ETag/Last-Modified, a latency per request, a log of every request and the
bytes it sent) and opened as ``release://http://127.0.0.1:<port>/``. Checked
here: the answer equals a brute-force pandas filter; the bytes fetched are
exactly the compressed column chunks of the row groups whose footer ranges
hold an id (computed by hand from pyarrow statistics); the ranges are in
flight at the same time (one after another before); a range answered short
is asked again, and raises naming the file when it stays short; a file
replaced on the server changes the identity (the footer is read again) and
is refused when it changes under a read; the Dask workers read it; and the
worker-side reader imports neither connectomix nor pandas.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from test_scale_filter import _brute_force, _groups_holding, _query, _same
from test_scale_filter import release as release  # noqa: F401 - the module's SYNTHETIC release fixture
from test_scale_filter import truth as truth  # noqa: F401

import connectomix
from connectomix.errors import DataFormatError, IncompleteResponseError
from connectomix.testing.range_server import RangeServer
from connectomix_release import reads
from connectomix_release.writer import POST_COPY

IDS = [1001, 1120, 1250, 1300, 90_010]
SIDES = (("synapses.parquet", "pre"), (POST_COPY, "post"))


@pytest.fixture(scope="module")
def served(release):  # noqa: F811
    with RangeServer(release) as server:
        yield server


@pytest.fixture
def server(served):
    served.clear()
    served.faults.latency_ms = 0
    yield served
    served.clear()
    served.faults.latency_ms = 0


def _ranges_of(server: RangeServer, name: str) -> list:
    return [r for r in server.requests if r.start is not None and r.path == f"/{name}"]


def test_exactly_the_selected_column_chunks_are_fetched_concurrently(server, release, truth):  # noqa: F811
    with connectomix.open(f"release://{server.url}") as ds:
        assert ds.backend.path is None and ds.backend.location == server.url.rstrip("/")
        ds.backend.get_synapses(_query(IDS))  # footers read (once per file identity)
        server.clear()
        server.faults.latency_ms = 30  # requests overlap only when they are sent at the same time
        got = ds.backend.get_synapses(_query(IDS))
    _same(got, _brute_force(truth, IDS))
    assert server.max_in_flight > 1
    for name, column in SIDES:
        meta = pq.ParquetFile(release / name).metadata
        ranged, _ = _groups_holding(release / name, column, IDS)
        selected = sum(meta.row_group(g).column(c).total_compressed_size for g in ranged
                       for c in range(meta.num_columns))
        ranges = _ranges_of(server, name)
        assert sum(r.sent for r in ranges) == selected  # every byte of those chunks, nothing else
        spans = sorted((r.start, r.end) for r in ranges)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no byte fetched twice
        assert len(ranges) <= len(ranged) < meta.num_row_groups / 4


def test_sequential_fetch_gives_the_same_rows(server, truth, monkeypatch):  # noqa: F811
    monkeypatch.setattr(reads, "FETCH_CONCURRENCY", 0)  # pyarrow through the fsspec file, as before
    with connectomix.open(f"release://{server.url}") as ds:
        ds.backend.get_synapses(_query(IDS))
        server.clear()
        server.faults.latency_ms = 5
        _same(ds.backend.get_synapses(_query(IDS)), _brute_force(truth, IDS))
    assert server.max_in_flight == 1


def test_a_short_range_is_asked_again_and_raises_when_it_stays_short(server, truth):  # noqa: F811
    with connectomix.open(f"release://{server.url}") as ds:
        ds.backend.get_synapses(_query(IDS))
        server.clear()
        server.short_next(100)  # one range answered 100 bytes short: asked again, the answer is complete
        _same(ds.backend.get_synapses(_query(IDS)), _brute_force(truth, IDS))
        short = [r for r in server.requests if r.start is not None and r.sent < r.end - r.start]
        assert short == [] and len(server.requests) > 1  # (the log records what was sent: the cut answer's end)
        server.short_next(100, times=10_000)  # every range short: never a shorter table
        with pytest.raises(IncompleteResponseError, match=r"synapses(_by_post)?\.parquet' came back with") as info:
            ds.backend.get_synapses(_query(IDS))
        assert info.value.url.startswith(server.url) and f"{reads.RANGE_ATTEMPTS} attempts" in str(info.value)


def test_a_failing_range_request_names_the_file(server, truth):  # noqa: F811
    with connectomix.open(f"release://{server.url}") as ds:
        ds.backend.get_synapses(_query(IDS))
        server.fail_next(1, status=503)
        with pytest.raises(DataFormatError, match=r"cannot read bytes \d+-\d+ of 'http://127\.0\.0\.1:\d+/synapses"
                                                  r"(_by_post)?\.parquet': .*503"):
            ds.backend.get_synapses(_query(IDS))
        _same(ds.backend.get_synapses(_query(IDS)), _brute_force(truth, IDS))  # the next query is whole again


def test_http_identity_follows_the_files_and_a_file_changed_under_a_read_is_refused(release, truth, tmp_path):  # noqa: F811
    folder = shutil.copytree(release, tmp_path / "rel")
    with RangeServer(folder) as server, connectomix.open(f"release://{server.url}") as ds:
        reader = ds.backend._rows
        first = ds.backend.cache_identity(None)
        ds.backend.get_synapses(_query(IDS))
        before = reader.footers_read
        _same(ds.backend.get_synapses(_query(IDS)), _brute_force(truth, IDS))
        assert reader.footers_read == before  # the same files: no footer read again
        name = "synapses.parquet"
        table = pq.read_table(folder / name)
        pq.write_table(table, folder / name, row_group_size=1000)  # same rows, other row groups
        _same(ds.backend.get_synapses(_query(IDS)), _brute_force(truth, IDS))
        assert reader.footers_read == before + 1
        assert ds.backend.cache_identity(None)["files"][name] != first["files"][name]
        metadata, key = reader.metadata(name)
        fs, url = ds.backend._loc.fs, ds.backend._loc.url(name)
        pq.write_table(table, folder / name, row_group_size=700)  # changed after its footer was read
        with reads.open_checked(fs, url, key[1]) as source:  # (size and ETag from this query's HEAD: same)
            groups = np.arange(metadata.num_row_groups)
            with pytest.raises(DataFormatError, match=rf"cannot read bytes \d+-\d+ of '{url}': .*412"):
                list(reads.read_groups(source, metadata, groups, "pre", np.array(IDS), url=url))
    local = folder / name
    with pytest.raises(DataFormatError, match="changed while it was being read"):  # a local file: at open
        reads.open_checked(None, str(local), [local.stat().st_size + 1, local.stat().st_mtime_ns])


def test_dask_workers_read_the_http_release(served, truth, dask_client):  # noqa: F811
    served.clear()
    with connectomix.open(f"release://{served.url}", engine="dask", scheduler=dask_client) as ds:
        _same(ds.backend.get_synapses(_query(IDS)), _brute_force(truth, IDS))
        _same(ds.backend.get_synapses(_query(IDS[:2], pre=False)), _brute_force(truth, IDS[:2], pre=False))
    assert _ranges_of(served, "synapses.parquet") and _ranges_of(served, POST_COPY)


def test_worker_reader_imports_neither_connectomix_nor_pandas(release, truth):  # noqa: F811
    """What a Dask worker imports to run a filter task: numpy and pyarrow (connectomix took 0.6 CPU s, pandas 1.5)."""
    path = release / "synapses.parquet"
    stat = path.stat()
    ids = [1001, 1300]
    code = (
        "import sys, numpy as np, pyarrow.parquet as pq\n"
        "from connectomix_release.reads import read_task\n"
        f"path, ids = {str(path)!r}, np.array({ids})\n"
        "meta = pq.read_metadata(path)\n"
        "groups = np.arange(meta.num_row_groups)\n"
        f"table = read_task(None, path, [{stat.st_size}, {stat.st_mtime_ns}], groups, 'pre', ids)\n"
        "print(table.num_rows, sorted(m for m in ('connectomix', 'pandas', 'duckdb') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    expected = int(np.isin(truth["pre"], ids).sum())
    assert out.stdout.split(None, 1) == [str(expected), "[]\n"]


def test_at_most_two_windows_of_ranges_are_held(server, release, truth, monkeypatch):  # noqa: F811
    """Memory stays bounded for any number of ids: window k+2's ranges are asked only after window k is decoded."""
    monkeypatch.setattr(reads, "GROUPS_PER_READ", 2)
    ids = list(range(1001, 1401, 9))  # many row groups: many windows
    events: list[tuple[str, int]] = []
    fetch_exact, parts_init = reads._fetch_exact, reads._Parts.__init__

    def fetching(fetch, url, start, end):
        events.append(("fetch", start))
        return fetch_exact(fetch, url, start, end)

    def decoding(self, size, parts, fetch):
        if parts:
            events.append(("window", min(parts)))
        parts_init(self, size, parts, fetch)

    monkeypatch.setattr(reads, "_fetch_exact", fetching)
    monkeypatch.setattr(reads._Parts, "__init__", decoding)
    monkeypatch.setattr(reads, "FETCH_CONCURRENCY", 4)
    with connectomix.open(f"release://{server.url}") as ds:
        ds.backend.get_synapses(_query(ids, post=False))  # footers read
        events.clear()
        _same(ds.backend.get_synapses(_query(ids, post=False)), _brute_force(truth, ids, post=False))
    meta = pq.ParquetFile(release / "synapses.parquet").metadata
    groups = ds.backend._rows.select("synapses.parquet", "pre", ids)
    windows = [[int(g) for g in groups[i:i + 2]] for i in range(0, len(groups), 2)]
    window_of = {start: k for k, chunk in enumerate(windows) for start, _ in reads.byte_ranges(meta, chunk)}
    assert len(windows) > 5 and sorted(s for e, s in events if e == "fetch") == sorted(window_of)
    decoded = -1
    for kind, start in events:
        if kind == "window":
            decoded = window_of[start]
        else:
            assert window_of[start] <= decoded + 2, (window_of[start], decoded)  # this window or the next
