"""Warm cache hits send nothing (issue 11 item 3), and stay right.

An open Dataset remembers the identity of an immutable version (a CAVE integer
materialization; a neuPrint dataset's ``last-mod``/``uuid`` stamps) for the
backend's ``identity_ttl`` seconds, and the outcome of each id-existence check
for that identity, so repeating a query sends no HTTP request at all. Every
request the emulators answer is counted. What must still hold: ids the dataset
lacks raise on every path (first query, repeated query, a query whose table is
cached), live data is never cached, and data that changed is never answered
from the old data once it is noticed (see also ``test_cache_identity_remote``
for re-deployed servers).
"""

import threading

import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.backend import Backend
from connectomix.cache import ResultCache

from cache_support import CountingRelease, cave_emu, drop_neuron, make, open_cave, uncached  # noqa: F401 - a fixture

TOKEN = "warm-cache-token"


@pytest.fixture(scope="module")
def neuprint_emu(toy_release):
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(toy_release, token=TOKEN, dataset="toy:v1") as emu:
        yield emu


def open_neuprint(emu, cache, **options):
    host = emu.url.split("://", 1)[1]
    return connectomix.open(f"neuprint://{host}/toy:v1", token=TOKEN, verify=str(emu.cert_path), cache=cache,
                            **options)


def sent(emu, call):
    """``(call(), requests the emulator answered while it ran)``."""
    if hasattr(emu, "wait_idle"):
        emu.wait_idle()  # the neuPrint emulator counts a request after its answer is sent
    emu.stats.reset()
    out = call()
    if hasattr(emu, "wait_idle"):
        emu.wait_idle()
    return out, emu.stats.requests()


QUERIES = {
    "connectivity": lambda ds: ds.get_connectivity(sources=[101, 102, 103]),
    "connectivity by ROI to neurons": lambda ds: ds.get_connectivity(sources=[101, 102], targets=connectomix.NC(),
                                                                    by_roi=True),
    "connectivity of a type": lambda ds: ds.get_connectivity(sources=connectomix.NC(type="KC"), targets=[101, 109]),
    "synapses": lambda ds: ds.get_synapses([101, 104]),
    "neurons by id": lambda ds: ds.fetch_neurons([101, 102, 901]),
    "neurons by type": lambda ds: ds.fetch_neurons(type="KC"),
}


def _equal(a, b):
    if isinstance(a, tuple):
        for x, y in zip(a, b):
            pd.testing.assert_frame_equal(x, y)
    else:
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_neuprint_warm_hits_send_no_request(neuprint_emu, tmp_path, query):
    with open_neuprint(neuprint_emu, str(tmp_path / "cache")) as ds:
        cold, cold_requests = sent(neuprint_emu, lambda: QUERIES[query](ds))
        assert cold_requests > 0  # the first one asks the server (the counter works)
        warm, warm_requests = sent(neuprint_emu, lambda: QUERIES[query](ds))
        assert warm_requests == 0
        _equal(warm, cold)
    with open_neuprint(neuprint_emu, False) as ds:
        _equal(QUERIES[query](ds), cold)  # and it is the server's answer


CAVE_QUERIES = ["connectivity", "connectivity by ROI to neurons", "synapses", "neurons by id"]


@pytest.mark.parametrize("query", CAVE_QUERIES)
def test_cave_warm_hits_send_no_request_at_an_integer_materialization(cave_emu, tmp_path, query):
    with open_cave(cave_emu, str(tmp_path / "cache")) as ds:
        cold, cold_requests = sent(cave_emu, lambda: QUERIES[query](ds))
        assert cold_requests > 0
        warm, warm_requests = sent(cave_emu, lambda: QUERIES[query](ds))
        assert warm_requests == 0
        _equal(warm, cold)


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_cave_cached_and_uncached_tables_are_the_same_frames(cave_emu, tmp_path, query):
    """Every path a table can take gives the same frame, dtypes included: no cache, the answer that fills
    the cache, the in-session memo, and the disk cache read by a new Dataset. (A native annotation column,
    ``cell_type``, was ``object`` with NaN uncached but ``string`` with <NA> from the cache.)"""
    with open_cave(cave_emu, False) as ds:
        plain = QUERIES[query](ds)
    with open_cave(cave_emu, str(tmp_path / "cache")) as ds:
        cold = QUERIES[query](ds)
        memo = QUERIES[query](ds)
    with open_cave(cave_emu, str(tmp_path / "cache")) as ds:
        disk = QUERIES[query](ds)
    for name, got in (("cold", cold), ("memo", memo), ("disk", disk)):
        for a, b in zip(plain if isinstance(plain, tuple) else (plain,), got if isinstance(got, tuple) else (got,)):
            pd.testing.assert_frame_equal(b, a, check_exact=True, obj=f"{query} ({name})")
            assert b.attrs == a.attrs, name
    native = plain[0] if isinstance(plain, tuple) else None
    if native is not None and "cell_type" in native:  # the native annotation column: pandas strings, as elsewhere
        assert native["cell_type"].dtype == "string" and native["type"].dtype == native["cell_type"].dtype


def test_cave_auto_resolves_then_hits(cave_emu, tmp_path):
    with open_cave(cave_emu, str(tmp_path / "cache"), materialization="auto") as ds:
        first = ds.get_synapses([101, 104])
        again, requests = sent(cave_emu, lambda: ds.get_synapses([101, 104]))
        pd.testing.assert_frame_equal(again, first)
        assert requests == 0  # 'auto' was resolved to a number (remembered for these ids), then a normal hit
        version = first.attrs["version"]
        assert isinstance(version, int)
        pd.testing.assert_frame_equal(ds.get_synapses([101, 104], materialization=version), first)  # one entry
        pinned, requests = sent(cave_emu, lambda: ds.get_synapses([101, 104], materialization=version))
        pd.testing.assert_frame_equal(pinned, first)
        assert requests == 0  # the ids' check at that number was remembered too


def test_cave_live_data_is_never_cached(cave_emu, tmp_path):
    with open_cave(cave_emu, str(tmp_path / "cache"), materialization="live", live=True) as ds:
        current = ds.update_ids([101, 104])["new_id"].tolist()  # root ids current now
        first = ds.get_synapses(current)
        again, requests = sent(cave_emu, lambda: ds.get_synapses(current))
        assert requests > 0  # live data changes: asked every time
        pd.testing.assert_frame_equal(again, first)
        # no table was kept; only the backend's records of the server (DiskRecords: the datastack's info)
        tables = [ds.cache.get(key) for key in ds.cache._store]
        assert [list(t.columns) for t in tables if list(t.columns) != ["written", "value"]] == []


def test_neuprint_missing_ids_raise_on_every_warm_path(neuprint_emu, tmp_path):
    emu = neuprint_emu
    bad = {
        "sources": lambda ds: ds.get_connectivity(sources=[101, 102, 777777]),
        "targets": lambda ds: ds.get_connectivity(sources=[101], targets=[102, 777777]),
        "x": lambda ds: ds.get_synapses([101, 777777]),
        "ids": lambda ds: ds.fetch_neurons([101, 777777]),
    }
    with open_neuprint(emu, str(tmp_path / "cache")) as ds:
        good = ds.get_connectivity(sources=[101, 102])  # these ids' table is cached ...
        ds.get_synapses([101])
        ds.fetch_neurons([101])
        for what, query in bad.items():
            for attempt in ("first", "again"):  # ... their neighbours with a missing id still raise
                with pytest.raises(errors.IdsNotFoundError) as info:
                    _, requests = sent(emu, lambda: query(ds))
                assert list(info.value.ids) == [777777] and what in str(info.value), attempt
        emu.wait_idle()
        emu.stats.reset()
        for query in bad.values():
            with pytest.raises(errors.IdsNotFoundError):
                query(ds)
        emu.wait_idle()
        assert emu.stats.requests() == 0  # raised again from the remembered outcome
        again, requests = sent(emu, lambda: ds.get_connectivity(sources=[101, 102]))
        assert requests == 0
        pd.testing.assert_frame_equal(again, good)


def test_cave_missing_ids_raise_on_warm_paths(cave_emu, tmp_path):
    with open_cave(cave_emu, str(tmp_path / "cache")) as ds:
        ds.get_synapses([101])
        for _ in range(2):
            with pytest.raises(errors.MaterializationError):
                ds.get_synapses([101, 777777])
            with pytest.raises(errors.MaterializationError):
                ds.get_connectivity(sources=[101], targets=[777777])


def test_concurrent_warm_hits_send_nothing_and_agree(neuprint_emu, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with open_neuprint(neuprint_emu, str(tmp_path / "cache")) as ds:
        expected = ds.get_connectivity(sources=[101, 102, 103], by_roi=True)
        neuprint_emu.wait_idle()
        neuprint_emu.stats.reset()
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda _: ds.get_connectivity(sources=[101, 102, 103], by_roi=True), range(16)))
        neuprint_emu.wait_idle()
        assert neuprint_emu.stats.requests() == 0
        for df in got:
            pd.testing.assert_frame_equal(df, expected)


def test_neuprint_identity_ttl_zero_asks_the_stamps_on_every_query(neuprint_emu, tmp_path):
    with open_neuprint(neuprint_emu, str(tmp_path / "cache"), identity_ttl=0) as ds:
        ds.get_synapses([101])
        neuprint_emu.wait_idle()
        neuprint_emu.stats.reset()
        ds.get_synapses([101])
        neuprint_emu.wait_idle()
        stamps = neuprint_emu.stats.requests("GET /api/dbmeta/datasets")
        assert stamps >= 1 and neuprint_emu.stats.requests() == stamps  # the stamps only: no query, no id check


def test_identity_ttl_is_an_option_of_both_remote_backends(neuprint_emu, cave_emu):
    for value, seconds in (("0", 0.0), ("2.5", 2.5), (60, 60.0)):
        with open_neuprint(neuprint_emu, False, identity_ttl=value) as ds:
            assert ds.backend.identity_ttl == seconds
        with open_cave(cave_emu, False, identity_ttl=value) as ds:
            assert ds.backend.identity_ttl == seconds


@pytest.mark.parametrize("value", [-1, "-1", "soon", float("nan"), float("inf"), True, "١٠"])
def test_identity_ttl_must_be_seconds(neuprint_emu, cave_emu, value):
    with pytest.raises(errors.InvalidArgumentError, match="identity_ttl"):
        open_neuprint(neuprint_emu, False, identity_ttl=value)
    with pytest.raises(errors.InvalidArgumentError, match="identity_ttl"):
        open_cave(cave_emu, False, identity_ttl=value)


# --- the core, on a release folder whose identity is remembered like a remote one's ----------------------


class RememberingRelease(CountingRelease):
    """The release backend with a remote backend's policy: identity remembered for an hour."""

    identity_ttl = 3600.0
    checks = 0

    def missing_ids(self, ids, materialization=None):
        type(self).checks += 1
        return super().missing_ids(ids, materialization)


def test_a_check_remembered_for_old_data_is_redone_when_a_miss_finds_new_data(tmp_path):
    from connectomix.testing import make_toy_release

    folder = make_toy_release(tmp_path / "rel")
    RememberingRelease.checks = 0
    ds = make(folder, ResultCache(tmp_path / "cache"), RememberingRelease)
    ds.get_synapses([101, 105])
    ds.get_synapses([101, 105], pre=False)  # another query, the same ids: their check is remembered
    assert RememberingRelease.checks == 1
    drop_neuron(folder, 105)  # the data changes; the Dataset still trusts the old identity (an hour)
    # a query the cache does not hold is fetched from the new data; the identity asked after it differs,
    # so the ids are checked again there: 105 is gone, so it raises instead of giving a shorter table
    with pytest.raises(errors.IdsNotFoundError) as info:
        ds.get_synapses([101, 105], post=False)
    assert list(info.value.ids) == [105]
    with pytest.raises(errors.IdsNotFoundError):  # and from now on for every query of 105
        ds.get_synapses([101, 105])
    pd.testing.assert_frame_equal(ds.get_synapses([101]), uncached(folder).get_synapses([101]))


def test_release_folders_are_looked_at_on_every_query(tmp_path):
    assert Backend.identity_ttl == 0 and CountingRelease.identity_ttl == 0
    from connectomix.testing import make_toy_release

    folder = make_toy_release(tmp_path / "rel")
    ds = make(folder, ResultCache(tmp_path / "cache"))
    ds.get_synapses([101, 105])
    drop_neuron(folder, 105)
    with pytest.raises(errors.IdsNotFoundError):  # the changed files are seen at once: no remembered check
        ds.get_synapses([101, 105])


def test_identity_memo_is_shared_safely_by_threads():
    from connectomix.cache import IdentityMemo

    asked = []
    lock = threading.Lock()

    def identity(version):
        with lock:
            asked.append(version)
        return {"version": version}

    memo = IdentityMemo()
    barrier = threading.Barrier(8)

    def work(_):
        barrier.wait()
        return [memo.get(v, identity, ttl=60) for v in (1, 2, 1, 2)]

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    assert all(r == [{"version": 1}, {"version": 2}, {"version": 1}, {"version": 2}] for r in results)
    assert set(asked) == {1, 2} and len(asked) <= 16  # each thread asks each version at most once
    before = len(asked)
    memo.get(1, identity, ttl=60)
    assert len(asked) == before  # remembered now
