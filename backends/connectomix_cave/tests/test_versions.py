"""VersionResolver on a scripted chunkedgraph (no server): which version each mode picks, and why it refuses.

The fake client knows, for each root id, when it was created and when (if ever) an edit replaced
it; ``is_latest_roots(ids, timestamp=t)`` is then ``created <= t < replaced``, as on a real
chunkedgraph. Every expectation below is worked out by hand from that table.
"""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import requests

from connectomix import errors
from connectomix_cave import versions as vmod
from connectomix_cave.versions import LIVE, Version, VersionResolver

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


# root id -> (created, replaced or None)
ROOTS = {
    1: (at(0), None),  # exists from the start, never edited
    2: (at(0), at(15)),  # replaced between v2 (day 10) and v3 (day 20)
    3: (at(12), None),  # created between v2 and v3
    4: (at(25), None),  # newer than every version: live only
    5: (at(0), at(5)),  # replaced before v2
}
VERSIONS = [  # as get_versions_metadata returns them: unordered, one invalid, strings or datetimes
    {"version": 2, "time_stamp": "2026-01-11T00:00:00", "expires_on": None, "valid": True},
    {"version": 1, "time_stamp": at(1).replace(tzinfo=None), "valid": True},
    {"version": 3, "time_stamp": at(20), "expires_on": at(400)},
    {"version": 9, "time_stamp": at(21), "valid": False},
]


class FakeChunkedgraph:
    def __init__(self):
        self.calls = 0
        self.timestamp_calls = []

    def is_latest_roots(self, ids, timestamp=None):
        self.calls += 1
        t = timestamp or at(30)
        out = []
        for i in np.asarray(ids).tolist():
            created, replaced = ROOTS.get(i, (None, None))
            out.append(created is not None and created <= t and (replaced is None or t < replaced))
        return np.array(out)

    def get_root_timestamps(self, ids):
        self.timestamp_calls.append(list(map(int, ids)))
        if any(int(i) not in ROOTS for i in ids):
            response = requests.Response()
            response.status_code = 400
            raise requests.HTTPError("400 unknown root", response=response)
        return [ROOTS[int(i)][0] for i in ids]


class FakeMaterialize:
    def __init__(self, meta):
        self.meta = meta
        self.calls = 0

    def get_versions_metadata(self, expired=False):
        self.calls += 1
        assert expired is False
        return self.meta


class FakeClient:
    def __init__(self, meta=VERSIONS):
        self.materialize = FakeMaterialize(meta)
        self.chunkedgraph = FakeChunkedgraph()


def resolver(live=True, meta=VERSIONS):
    said = []
    r = VersionResolver(FakeClient(meta), live_allowed=live, announce=said.append, datastack="stack")
    return r, said


def ids(*values):
    return np.array(values, dtype="int64")


def test_version_list_is_valid_only_newest_first_in_utc():
    r, _ = resolver()
    vs = r.versions()
    assert [v.version for v in vs] == [3, 2, 1]
    assert vs[1].timestamp == at(10) and vs[2].timestamp == at(1)
    assert all(v.timestamp.tzinfo is not None for v in vs)
    assert vs[0].expires_on == at(400) and vs[1].expires_on is None
    assert r.timestamp(2) == at(10) and r.timestamp("1") == at(1)
    assert abs(r.timestamp(LIVE) - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_version_list_is_fetched_once_and_again_after_an_expiry_or_an_hour(monkeypatch):
    r, _ = resolver()
    r.versions()
    r.versions()
    assert r.client.materialize.calls == 1
    monkeypatch.setattr(vmod.time, "monotonic", lambda: r._fetched_at + vmod._REFRESH_SECONDS + 1)
    r.versions()
    assert r.client.materialize.calls == 2
    expiring = [dict(VERSIONS[0], expires_on=datetime.now(timezone.utc) - timedelta(seconds=1))]
    r2, _ = resolver(meta=expiring)
    r2.versions()
    r2.versions()
    assert r2.client.materialize.calls == 2  # an expired version makes the list stale
    soon = [dict(VERSIONS[0], expires_on=datetime.now(timezone.utc) + timedelta(hours=1))]
    r3, _ = resolver(meta=soon)
    r3.versions()
    r3.versions()
    assert r3.client.materialize.calls == 1


def test_auto_takes_the_newest_version_where_all_ids_are_roots():
    r, said = resolver()
    assert r.resolve(ids(1), "auto") == 3
    assert r.resolve(ids(1, 2), "auto") == 2  # 2 is replaced at v3
    assert r.resolve(ids(1, 5), "auto") == 1
    assert r.resolve(ids(1, 3), "auto") == 3
    assert r.resolve(None, "auto") == 3 and r.resolve(ids(), "auto") == 3
    assert said == ["Using materialization version 3.", "Using materialization version 2.",
                    "Using materialization version 1."]  # each version announced once


def test_auto_is_memoised_per_id_set():
    r, _ = resolver()
    r.resolve(ids(1, 2), "auto")
    calls = r.client.chunkedgraph.calls
    assert r.resolve(ids(1, 2), "auto") == 2
    assert r.client.chunkedgraph.calls == calls
    assert r.resolve(ids(1, 5), "auto") == 1 and r.client.chunkedgraph.calls > calls


def test_auto_falls_back_to_live_only_when_allowed_and_all_current():
    r, said = resolver()
    assert r.resolve(ids(1, 4), "auto") == LIVE
    assert said == ["Using live (un-materialized) data."]
    no_live, _ = resolver(live=False)
    with pytest.raises(errors.MaterializationError, match="allows no live queries") as err:
        no_live.resolve(ids(1, 4), "auto")
    assert list(err.value.ids) == [1, 4]
    with pytest.raises(errors.MaterializationError, match=r"1 id\(s\) are outdated.*: 5; .*update_ids") as err:
        r.resolve(ids(4, 5), "auto")  # 5 is gone now, 4 exists only now: no version has both
    assert list(err.value.ids) == [5]


def test_pinned_versions_check_the_ids_and_say_why():
    r, _ = resolver()
    assert r.resolve(ids(1, 2), 2) == 2 and r.resolve(ids(1, 2), "2") == 2 and r.resolve(ids(1), np.int64(1)) == 1
    assert r.resolve(None, 1) == 1 and r.resolve(ids(1, 3), "latest") == 3
    with pytest.raises(errors.MaterializationError, match="created after materialization 2") as err:
        r.resolve(ids(1, 3), 2)
    assert list(err.value.ids) == [3]
    with pytest.raises(errors.MaterializationError, match="already been replaced by edits at materialization 3") as err:
        r.resolve(ids(2), "latest")
    assert list(err.value.ids) == [2]
    with pytest.raises(errors.MaterializationError) as err:
        r.resolve(ids(3, 5), 2)  # one too new, one outdated: both named
    assert "1 id(s) were created after" in str(err.value) and "1 id(s) had already been replaced" in str(err.value)
    assert list(err.value.ids) == [3, 5]


def test_an_id_created_exactly_at_the_version_time_is_not_too_new(monkeypatch):
    r, _ = resolver()
    # 3 is created at day 12; a chunkedgraph that (wrongly) calls it no root at day 12 must give "outdated"
    monkeypatch.setitem(ROOTS, 3, (at(10), at(10)))
    with pytest.raises(errors.MaterializationError, match="already been replaced") as err:
        r.resolve(ids(3), 2)
    assert "created after" not in str(err.value)


def test_unknown_ids_are_named_as_never_existing():
    r, _ = resolver()
    with pytest.raises(errors.MaterializationError, match=r"1 id\(s\) are not root ids .* at all.*: 77$") as err:
        r.resolve(ids(1, 77), 2)
    assert list(err.value.ids) == [77]
    # the batch call failed with 400, then each id was asked alone
    assert r.client.chunkedgraph.timestamp_calls == [[77], [77]]


def test_pinned_check_is_memoised_only_when_it_passes():
    r, _ = resolver()
    r.resolve(ids(1, 2), 2)
    calls = r.client.chunkedgraph.calls
    r.resolve(ids(1, 2), 2)
    assert r.client.chunkedgraph.calls == calls
    for _ in range(2):
        with pytest.raises(errors.MaterializationError):
            r.resolve(ids(3), 2)
    assert r.client.chunkedgraph.calls == calls + 2


def test_memo_is_bounded():
    r, _ = resolver()
    for k in range(1030):
        r._remember(("k", k), k)
    assert len(r._known) == 1024
    assert r._recall(("k", 0)) is None and r._recall(("k", 1029)) == 1029 and r._recall(("k", 6)) == 6


def test_live_mode():
    r, said = resolver()
    assert r.resolve(ids(1, 4), LIVE) == LIVE and r.resolve(None, LIVE) == LIVE
    with pytest.raises(errors.MaterializationError, match=r"1 id\(s\) are outdated.*: 2;") as err:
        r.resolve(ids(1, 2), "live")
    assert list(err.value.ids) == [2]
    no_live, _ = resolver(live=False)
    with pytest.raises(errors.UnsupportedOperation, match="does not allow live"):
        no_live.resolve(ids(1), LIVE)


@pytest.mark.parametrize("bad", [True, 2.0, "newest", None, "2.0"])
def test_bad_requests(bad):
    r, _ = resolver()
    with pytest.raises(errors.InvalidArgumentError, match="materialization must be"):
        r.resolve(ids(1), bad)


def test_unavailable_version_lists_the_valid_ones():
    r, _ = resolver()
    with pytest.raises(errors.InvalidArgumentError, match=r"materialization 9 is not available.*\[1, 2, 3\]"):
        r.resolve(ids(1), 9)
    with pytest.raises(errors.InvalidArgumentError, match="materialization 7 is not available"):
        r.resolve(None, 7)


def test_show_truncates_long_id_lists():
    assert vmod._show(np.arange(3)) == "0, 1, 2"
    assert vmod._show(np.arange(12)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 2 more"
    assert vmod._show(np.arange(10)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"


def test_timestamps_of_every_form_become_utc():
    naive = datetime(2026, 2, 3, 4, 5)
    assert vmod._utc(naive) == naive.replace(tzinfo=timezone.utc)
    aware = datetime(2026, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert vmod._utc(aware) is aware
    assert vmod._utc("2026-02-03T04:05:00") == naive.replace(tzinfo=timezone.utc)
    assert vmod._utc(None) is None
    assert vmod._as_datetimes([0, "2026-02-03T04:05:00"]) == [datetime(1970, 1, 1, tzinfo=timezone.utc),
                                                              naive.replace(tzinfo=timezone.utc)]
    assert Version(1, naive, None).version == 1
