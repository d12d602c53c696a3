"""Property: a cache entry damaged anywhere (bit flips, truncation, overwritten or appended bytes) gives the
right answer -- fetched again, with one warning -- and never a wrong table, a raw exception or a crash."""

import json
import subprocess
import sys
import tempfile
import textwrap
import warnings

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectomix import errors
from connectomix.cache import ResultCache
from connectomix.dataset import Dataset
from connectomix_release.backend import ReleaseBackend

import cache_support


class CountingRelease(cache_support.CountingRelease):
    """Counts the per-ROI count fetches too (fetch_neurons' second cached table)."""

    def fetch_roi_counts(self, ids, materialization=None):
        type(self).calls += 1
        return super().fetch_roi_counts(ids, materialization)


QUERIES = {
    "synapses": lambda ds: [ds.get_synapses([101, 102, 103])],
    "connectivity": lambda ds: [ds.get_connectivity(sources=[101, 102], by_roi=True)],
    "neurons": lambda ds: list(ds.fetch_neurons(type="KC")),
}


@pytest.fixture(scope="module")
def expected(toy_release):
    ds = Dataset(ReleaseBackend(toy_release), cache=False)
    return {name: run(ds) for name, run in QUERIES.items()}


def damage(blob: bytes, how) -> bytes:
    kind, *args = how
    data = bytearray(blob)
    if kind == "flip":
        for where, bit in args[0]:
            data[int(where * len(data))] ^= 1 << bit
    elif kind == "truncate":
        del data[int(args[0] * len(data)):]
    elif kind == "overwrite":
        at = int(args[0] * len(data))
        data[at : at + len(args[1])] = args[1]
    else:  # append
        data += args[0]
    return bytes(data)


position = st.floats(0, 1, exclude_max=True)
DAMAGE = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(position, st.integers(0, 7)), min_size=1, max_size=6)),
    st.tuples(st.just("truncate"), position),
    st.tuples(st.just("overwrite"), position, st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=24)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.sampled_from(sorted(QUERIES)), which=st.integers(0, 1), how=DAMAGE)
def test_a_damaged_entry_gives_the_right_answer_or_is_refetched(toy_release, expected, query, which, how):
    with tempfile.TemporaryDirectory() as directory:
        cache = ResultCache(directory)
        CountingRelease.calls = 0
        ds = Dataset(CountingRelease(toy_release), cache=cache)
        QUERIES[query](ds)
        fetched = CountingRelease.calls
        keys = sorted(cache._store)
        key = keys[which % len(keys)]
        raw = cache._store.get(key)
        damaged = damage(raw, how)
        cache._store.set(key, damaged)
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            # a new Dataset: the first one keeps its finished tables in memory and would not read the disk
            got = QUERIES[query](Dataset(CountingRelease(toy_release), cache=cache))
        for g, e in zip(got, expected[query]):
            pd.testing.assert_frame_equal(g, e)
        warned = [w for w in record if issubclass(w.category, errors.CacheWarning)]
        if damaged != raw:
            assert len(warned) == 1 and "corrupt entry" in str(warned[0].message)
            assert CountingRelease.calls == fetched + 1  # exactly the damaged table was fetched again
            assert cache._store.get(key) == raw  # ... and stored again, intact
        else:
            assert warned == [] and CountingRelease.calls == fetched
        cache.close()


_SCRIPT = textwrap.dedent("""
    import json, random, sys
    import pandas as pd
    from connectomix.cache import ResultCache
    from connectomix.dataset import Dataset
    from connectomix_release.backend import ReleaseBackend

    release, directory, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    df = Dataset(ReleaseBackend(release), cache=False).get_synapses([101, 102, 103, 104])
    cache = ResultCache(directory)
    rng = random.Random(20261201)
    counts = {"runs": runs, "unchanged": 0, "refused": 0, "wrong": 0, "raised": []}
    for i in range(runs):
        cache.put("k", df)
        raw = cache._store.get("k")
        data = bytearray(raw)
        if i % 4 == 3:
            del data[rng.randrange(len(data)):]
        else:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        cache._store.set("k", bytes(data))
        try:
            got = cache.get("k")
        except Exception as exc:  # a raw error is a failure too
            counts["raised"].append(type(exc).__name__)
            continue
        if got is None:
            counts["refused"] += 1
        elif got.equals(df):
            counts["unchanged"] += 1
        else:
            counts["wrong"] += 1
    print(json.dumps(counts))
""")


def test_damaged_entries_never_crash_the_interpreter(toy_release, tmp_path):
    """Many random bit flips and cuts, read in a child process so that a segfault shows as a failure."""
    script = tmp_path / "corrupt.py"
    script.write_text(_SCRIPT)
    proc = subprocess.run([sys.executable, "-W", "ignore", str(script), str(toy_release), str(tmp_path / "c"), "300"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the child died (status {proc.returncode}): {proc.stderr[-2000:]}"
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert counts["wrong"] == 0 and counts["raised"] == [], counts
    assert counts["refused"] == counts["runs"], counts  # every damaged entry was caught
