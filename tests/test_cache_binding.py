"""A backend keeps the result cache of the Dataset made on it: bound once, never switched by a call.

Backends keep their own tables in the Dataset's result cache (CAVE: whole
annotation tables per materialization; meshes, skeletons; what a warm hit needs
from the server). That cache used to be handed over by setting
``backend.result_cache`` before each neuron lookup, so a backend object shared
by two Datasets wrote into whichever cache the last lookup had set -- also into
one Dataset's cache for the other, opened with ``cache=False``. Now the Dataset
binds it once, and a second Dataset with a cache elsewhere is refused.
"""

import os

import pytest

import connectomix
from connectomix import errors
from connectomix.cache import ResultCache
from connectomix.dataset import Dataset
from connectomix_release.backend import ReleaseBackend

from cache_support import cave_emu, open_cave  # noqa: F401 - a fixture


def test_a_backend_shared_with_another_cache_is_refused(cave_emu, tmp_path):
    with open_cave(cave_emu, str(tmp_path / "a")) as first:
        first.fetch_neurons([101, 102], counts=False)
        entries = len(first.cache)
        assert entries > 0 and first.backend.result_cache is first.cache
        for other, named in ((str(tmp_path / "b"), "b"), (False, "no result cache")):
            with pytest.raises(errors.InvalidArgumentError, match="already serves a Dataset") as info:
                Dataset(first.backend, cache=other)
            assert str(tmp_path / "a") in str(info.value) and named in str(info.value)
        assert not (tmp_path / "b").exists()  # the refused Dataset opened nothing
        assert first.backend.result_cache is first.cache  # and changed nothing
        same = Dataset(first.backend, cache=ResultCache(tmp_path / "a" / ".." / "a"))  # the same directory
        neurons, _ = same.fetch_neurons([101, 102, 103], counts=False)
        assert first.backend.result_cache is first.cache
        assert len(first.cache) > entries  # the shared backend's and the new Dataset's entries, in one place


def test_a_dataset_without_cache_binds_none(cave_emu, tmp_path):
    with open_cave(cave_emu, False) as plain:
        plain.fetch_neurons([101, 102], counts=False)
        assert plain.backend.result_cache is None
        with pytest.raises(errors.InvalidArgumentError, match="no result cache"):
            Dataset(plain.backend, cache=str(tmp_path / "c"))
        assert not (tmp_path / "c").exists()


def test_the_cache_is_opened_only_when_first_used(toy_release, tmp_path):
    ds = Dataset(ReleaseBackend(toy_release), cache=str(tmp_path / "lazy"))
    assert not (tmp_path / "lazy").exists()  # binding does not open it (an unusable one warns at first use)
    ds.get_synapses([101])
    assert (tmp_path / "lazy").exists() and ds.backend.result_cache is ds.cache


def test_places_are_compared_as_directories(toy_release, tmp_path, monkeypatch):
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(tmp_path / "default"))
    backend = ReleaseBackend(toy_release)
    Dataset(backend, cache=True)
    Dataset(backend, cache=str(tmp_path / "default"))  # the default directory, spelt out
    Dataset(backend, cache=os.path.join(str(tmp_path), "x", "..", "default"))
    with pytest.raises(errors.InvalidArgumentError):
        Dataset(backend, cache=str(tmp_path / "elsewhere"))
