"""Finished tables kept in memory (``TableMemo``) are answers to the same question about the same data.

Faults that would not raise, each with a test that catches it:

* a memo key that leaves out an argument: two different queries share a table
  (every argument of ``get_connectivity`` that changes the answer, varied one at
  a time after a base query, against an uncached Dataset);
* a caller editing a returned table (values, nested ``attrs``, columns, rows in
  place) and so the next answer;
* ``identity_ttl``: a changed dataset answered from the old table after the
  identity was asked again (within the ttl the old table is the documented
  answer; after it, never);
* a table fetched while the data changed, kept under the identity remembered
  before the fetch: it would be served as the old data's answer if the data
  came back.
"""

import pandas as pd
import pytest

from connectomix import NC
from connectomix.cache import IdentityMemo, ResultCache
from connectomix.dataset import Dataset
from connectomix.testing import make_toy_release
from connectomix_release.backend import ReleaseBackend

from cache_support import drop_neuron

BASE = {"sources": [101, 102]}
#: One argument changed from BASE at a time (and a few other sides); each changes the answer.
VARIANTS = {
    "targets instead of sources": {"targets": [101, 102]},
    "other sources": {"sources": [101, 103]},
    "sources and targets": {"sources": [101, 102], "targets": [104, 105, 106]},
    "by_roi": {**BASE, "by_roi": True},
    "rois": {**BASE, "rois": "A"},
    "rois by_roi": {**BASE, "rois": ["A", "B"], "by_roi": True},
    "min_weight": {**BASE, "min_weight": 5},
    "include_autapses": {**BASE, "include_autapses": True},
    "partner_types": {**BASE, "partner_types": False},
    "by type": {**BASE, "by": "type"},
    "criteria": {"sources": NC(type="PN_a")},
    "criteria instance": {"sources": NC(instance="PN_a_L")},
    "to every neuron": {**BASE, "targets": NC()},
    "every neuron to targets": {"sources": NC(), "targets": [101, 102]},  # not segments: vs 'targets instead'
}


@pytest.fixture
def release(tmp_path):
    return make_toy_release(tmp_path / "rel")


def memoised(release, tmp_path, backend=None):
    """A Dataset with a result cache (so finished tables are kept in memory too)."""
    return Dataset(backend or ReleaseBackend(release), cache=ResultCache(tmp_path / "cache"))


def test_no_two_queries_share_a_kept_table(release, tmp_path):
    plain = Dataset(ReleaseBackend(release), cache=False)
    truth = {name: plain.get_connectivity(**kw) for name, kw in [("base", BASE), *VARIANTS.items()]}
    assert not truth["every neuron to targets"].equals(truth["targets instead of sources"])
    ds = memoised(release, tmp_path)
    ds.get_connectivity(**BASE)
    for name, kw in VARIANTS.items():
        assert not truth[name].equals(truth["base"]), name  # the test can tell a wrong table from the right one
        pd.testing.assert_frame_equal(ds.get_connectivity(**kw), truth[name], obj=name)
        pd.testing.assert_frame_equal(ds.get_connectivity(**kw), truth[name], obj=f"{name} (again)")
    pd.testing.assert_frame_equal(ds.get_connectivity(**BASE), truth["base"])
    assert len(ds._tables()._known) == len(VARIANTS) + 1  # each kept once, under its own key


def test_editing_a_returned_table_does_not_change_the_next_answer(release, tmp_path):
    ds = memoised(release, tmp_path)
    kw = {**BASE, "by_roi": True}
    expected = Dataset(ReleaseBackend(release), cache=False).get_connectivity(**kw)
    for _ in range(2):  # the table of the miss, then the table of a hit
        got = ds.get_connectivity(**kw)
        pd.testing.assert_frame_equal(got, expected)
        assert got.attrs == expected.attrs
        got.loc[0, "weight"] = -1
        got["pre_type"] = "edited"
        got.attrs["version"] = "edited"
        got.attrs.setdefault("synthetic", {})["edited"] = True
        got["extra"] = 1
        got.drop(index=[1, 2], inplace=True)
        got.sort_values("post", inplace=True)
    again = ds.get_connectivity(**kw)
    pd.testing.assert_frame_equal(again, expected)
    assert again.attrs == expected.attrs


class RemoteLike(ReleaseBackend):
    """The release backend with a remote backend's policy: its identity remembered for a minute."""

    identity_ttl = 60.0


def test_after_identity_ttl_a_changed_dataset_is_never_answered_from_the_old_table(release, tmp_path):
    now = [0.0]
    ds = memoised(release, tmp_path, RemoteLike(release))
    ds.__dict__["_identities"] = IdentityMemo(clock=lambda: now[0])
    old = ds.get_connectivity(**BASE)
    assert (old["post"] == 105).any()
    drop_neuron(release, 105)
    new = Dataset(ReleaseBackend(release), cache=False).get_connectivity(**BASE)
    assert not (new["post"] == 105).any()
    now[0] = 30.0
    pd.testing.assert_frame_equal(ds.get_connectivity(**BASE), old)  # within identity_ttl: as documented
    now[0] = 61.0
    pd.testing.assert_frame_equal(ds.get_connectivity(**BASE), new)  # asked again: the new data's table
    pd.testing.assert_frame_equal(ds.get_connectivity(**BASE), new)


class Switching(ReleaseBackend):
    """A 'server' whose data (and identity stamp) can be switched between two release folders."""

    identity_ttl = 3600.0
    stamp = 1
    folders: dict = {}

    def _now(self):
        return ReleaseBackend(type(self).folders[type(self).stamp])

    def cache_identity(self, version):
        return {"stamp": type(self).stamp}

    def missing_ids(self, ids, materialization=None):
        return self._now().missing_ids(ids, materialization)

    def get_connectivity(self, query):
        return self._now().get_connectivity(query)


def test_a_table_fetched_while_the_data_changed_is_not_kept_as_the_old_datas(tmp_path):
    one = make_toy_release(tmp_path / "one")
    two = make_toy_release(tmp_path / "two")
    drop_neuron(two, 105)
    Switching.folders, Switching.stamp = {1: one, 2: two}, 1
    now = [0.0]
    ds = memoised(one, tmp_path, Switching(one))
    ds.__dict__["_identities"] = IdentityMemo(clock=lambda: now[0])
    kw = {**BASE, "partner_types": False}
    ds.get_connectivity(sources=[103], partner_types=False)  # stamp 1 remembered for an hour
    Switching.stamp = 2  # re-deployed: another table, noticed by the check after the next miss
    answer_two = ds.get_connectivity(**kw)
    assert not (answer_two["post"] == 105).any()
    Switching.stamp = 1  # and back to the first data (a roll-back)
    now[0] = 3601.0
    expected = Dataset(ReleaseBackend(one), cache=False).get_connectivity(**kw)
    assert (expected["post"] == 105).any()
    pd.testing.assert_frame_equal(ds.get_connectivity(**kw), expected)
