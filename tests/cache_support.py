"""Helpers shared by the cache tests: the real release backend, counting the calls that reach it."""

from __future__ import annotations

from connectomix import errors
from connectomix.dataset import Dataset
from connectomix_release.backend import ReleaseBackend


class CountingRelease(ReleaseBackend):
    """The real release backend (with its real cache identity), counting the calls that reach it."""

    calls = 0

    def fetch_neurons(self, criteria, materialization=None):
        type(self).calls += 1
        return super().fetch_neurons(criteria, materialization)

    def get_connectivity(self, query):
        type(self).calls += 1
        return super().get_connectivity(query)

    def get_synapses(self, query):
        type(self).calls += 1
        return super().get_synapses(query)


def make(release, cache, cls=CountingRelease):
    """A Dataset on ``cls(release)`` with ``cache``, its call counter reset."""
    cls.calls = 0
    return Dataset(cls(release), cache=cache)


def uncached(release):
    return Dataset(ReleaseBackend(release), cache=False)


def recorded_cache_warnings(record):
    return [w for w in record if issubclass(w.category, errors.CacheWarning)]
