"""The on-disk result cache: hits at immutable versions only, keys without fetch knobs, clearing."""

import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.cache import ResultCache
from connectomix.dataset import Dataset
from connectomix_release.backend import ReleaseBackend


class CountingRelease(ReleaseBackend):
    """The real release backend, reporting a pinned version as cacheable and counting backend calls."""

    calls = 0
    immutable = True

    def cache_identity(self, version):
        return {"path": str(self.path), "version": version} if self.immutable else None

    def get_connectivity(self, query):
        type(self).calls += 1
        return super().get_connectivity(query)

    def get_synapses(self, query):
        type(self).calls += 1
        return super().get_synapses(query)


@pytest.fixture
def cache(tmp_path):
    return ResultCache(tmp_path / "cache", size_limit=50 * 1024**2)


def make(toy_release, cache, immutable=True):
    CountingRelease.calls = 0
    CountingRelease.immutable = immutable
    return Dataset(CountingRelease(toy_release), cache=cache)


def test_repeated_queries_are_served_from_disk(toy_release, cache):
    ds = make(toy_release, cache)
    first = ds.get_connectivity(sources=[101, 102], by_roi=True)
    again = ds.get_connectivity(sources=[101, 102], by_roi=True, progress=False, batch_size=1)
    assert CountingRelease.calls == 1
    pd.testing.assert_frame_equal(first, again)
    assert again.attrs["version"] == first.attrs["version"]
    ds.get_connectivity(sources=[101, 103], by_roi=True)
    assert CountingRelease.calls == 2  # other ids: a miss
    syn1 = ds.get_synapses([101])
    syn2 = ds.get_synapses([101])
    assert CountingRelease.calls == 3 and syn1.equals(syn2)
    assert len(cache) >= 3 and cache.volume() > 0


def test_cache_survives_a_new_process_worth_of_objects(toy_release, tmp_path):
    make(toy_release, ResultCache(tmp_path / "c")).get_synapses([102])
    ds = make(toy_release, ResultCache(tmp_path / "c"))
    ds.get_synapses([102])
    assert CountingRelease.calls == 0


def test_mutable_versions_are_never_cached(toy_release, cache):
    ds = make(toy_release, cache, immutable=False)
    ds.get_synapses([101])
    ds.get_synapses([101])
    assert CountingRelease.calls == 2 and len(cache) == 0


def test_cache_can_be_disabled_and_cleared(toy_release, cache):
    ds = make(toy_release, cache=False)
    ds.get_synapses([101])
    ds.get_synapses([101])
    assert CountingRelease.calls == 2
    ds = make(toy_release, cache)
    ds.get_synapses([101])
    assert cache.clear() >= 1 and len(cache) == 0
    ds.get_synapses([101])
    assert CountingRelease.calls == 2


def test_size_limit_evicts(toy_release, tmp_path):
    small = ResultCache(tmp_path / "small", size_limit=20_000)
    ds = make(toy_release, small)
    for body in (101, 102, 103, 104, 105, 106, 107, 108):
        ds.get_synapses([body])
    # the 8 entries take ~140 kB without a limit: some must have been evicted
    assert len(small) < 8
    assert small.volume() <= 100_000  # diskcache culls to the limit (plus its own overhead)


def test_bad_cache_option(toy_release):
    with pytest.raises(errors.InvalidArgumentError, match="cache must be"):
        connectomix.open(f"release://{toy_release}", cache=3.5)
    with pytest.raises(errors.InvalidArgumentError, match="max_workers"):
        connectomix.open(f"release://{toy_release}", max_workers=0)
