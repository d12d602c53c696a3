"""CAVE skeletons through the skeleton service's bulk route (issue 14 leftover): a tenth of the requests or fewer.

The service's cached bulk route (``POST .../bulk/get_cached_skeletons/4/flatdict``, SkeletonService 0.23.11,
what caveclient 8.2.1's ``fetch_skeletons`` asks) answers the skeletons it has cached, at most 500 roots per
request (a read is spread over up to 8 concurrent requests of at least 10 roots: ``bulk_size``); roots it leaves out are asked alone (the one-root route skeletonizes them or refuses them). Counted by
the emulator over loopback; the skeletons equal the release's files node for node, and every error rule of
``get_skeletons`` holds (missing roots named, never a partial list). Before, every root was one request.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import requests

import connectomix
from connectomix.errors import IdsNotFoundError
from connectomix_cave import morphology
from connectomix_cave.emulator import CaveEmulator
from connectomix_cave.emulator.testing import sample_release_path

navis = pytest.importorskip("navis")

SAMPLE = sample_release_path()
pytestmark = pytest.mark.skipif(SAMPLE is None, reason="the embedded sample release is not installed")
TOKEN = "0123456789abcdef0123456789abcdef"
DA1 = [1734350788, 1734350908, 722817260, 754534424, 754538881]  # the five sample DA1 lPNs with skeletons
NO_SKELETON = [1765040289, 5813039315]  # sample DA1 lPNs without a skeleton (the sample's manifest says so)


@pytest.fixture(scope="module")
def emu():
    with CaveEmulator(SAMPLE, token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
def ds(emu):
    with connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, materialization=1,
                          skeleton_source="service", cache=False) as dataset:
        dataset.get_skeletons(DA1[:1])  # the handshake and the datastack's metadata, not counted below
        emu.stats.reset()
        yield dataset
    emu.faults.clear()
    emu.stats.reset()
    emu.app.skeletons.uncached = set()


def counts(emu) -> tuple[int, int]:
    """(bulk requests, one-root requests) the emulator saw."""
    return emu.stats.requests("skeletons_bulk"), emu.stats.requests("skeleton")


def assert_release_skeletons(neurons, ids) -> None:
    """Node for node the release's SWC files (read here with pandas, not with the code under test)."""
    assert sorted(int(n.id) for n in neurons) == sorted(ids)
    for n in neurons:
        swc = pd.read_csv(SAMPLE / "skeletons" / f"{int(n.id)}.swc", sep=" ", comment="#", header=None,
                          names=["node_id", "label", "x", "y", "z", "radius", "parent_id"])
        row = pd.Series(np.arange(len(swc)), index=swc["node_id"])
        nodes = n.nodes.sort_values("node_id")
        assert nodes["node_id"].tolist() == list(range(len(swc)))
        np.testing.assert_array_equal(nodes[["x", "y", "z", "radius"]].to_numpy(),
                                      swc[["x", "y", "z", "radius"]].to_numpy())
        assert nodes["parent_id"].tolist() == swc["parent_id"].map(lambda p: -1 if p < 0 else int(row[p])).tolist()


def test_bulk_size_spreads_a_read_over_the_workers_within_the_services_limit():
    assert morphology.BULK_LIMIT == 500 and morphology.MAX_WORKERS == 8
    assert [morphology.bulk_size(n) for n in (1, 5, 80, 81, 100, 4000, 4001, 10**6)] == \
        [10, 10, 10, 11, 13, 500, 500, 500]


def test_one_bulk_request_for_a_few_roots(emu, ds, monkeypatch):
    got = ds.get_skeletons(DA1)
    assert counts(emu) == (1, 0)
    assert_release_skeletons(got, DA1)
    emu.stats.reset()
    monkeypatch.setattr(morphology, "BULK_LIMIT", 2)  # the same rule at a smaller limit: ceil(5 / 2) requests
    assert_release_skeletons(ds.get_skeletons(DA1[::-1]), DA1[::-1])
    assert counts(emu) == (3, 0)


def test_roots_the_bulk_answer_leaves_out_are_asked_alone(emu, ds):
    emu.app.skeletons.uncached = {DA1[1], DA1[3]}  # not in the service's cache yet: it skeletonizes them alone
    got = ds.get_skeletons(DA1)
    assert counts(emu) == (1, 2)
    assert_release_skeletons(got, DA1)


def test_refused_roots_are_missing_never_a_partial_list(emu, ds):
    with pytest.raises(IdsNotFoundError) as info:
        ds.get_skeletons(DA1 + NO_SKELETON)
    assert sorted(info.value.ids) == sorted(NO_SKELETON)
    assert counts(emu) == (1, len(NO_SKELETON))  # left out of the bulk answer, then refused one by one
    got = ds.get_skeletons(DA1 + NO_SKELETON, missing="skip")
    assert_release_skeletons(got, DA1)


def test_a_server_without_the_bulk_route_is_asked_one_root_at_a_time(emu, ds):
    emu.faults.fail_next(1, status=404, endpoint="skeletons_bulk")  # as a service older than the route answers
    assert_release_skeletons(ds.get_skeletons(DA1), DA1)
    assert counts(emu) == (1, len(DA1))
    emu.stats.reset()
    ds.get_skeletons(DA1)
    assert counts(emu) == (0, len(DA1))  # remembered: the route is not asked again


def test_the_emulator_enforces_the_services_bulk_limit(emu):
    """SkeletonService@0b3d901 api.py: more than MAX_BULK_CACHED_SKELETONS (500) roots is a 400."""
    url = f"{emu.url}/skeletoncache/api/v1/{emu.datastack}/bulk/get_cached_skeletons/4/flatdict"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    too_many = requests.post(url, json={"root_ids": DA1 * 101, "generate_missing": False}, headers=headers,
                             timeout=30)
    assert too_many.status_code == 400
    assert too_many.json() == {"Error": "Too many root IDs requested: 505. Maximum allowed is 500."}
    at_limit = requests.post(url, json={"root_ids": NO_SKELETON * 248 + DA1[:4], "generate_missing": False},
                             headers=headers, timeout=30)
    assert at_limit.status_code == 200 and sorted(at_limit.json()) == sorted(str(i) for i in DA1[:4])


def test_unmodified_caveclient_fetch_skeletons_reads_the_same_route(emu, ds):
    client = ds.backend.client
    theirs = client.skeleton.fetch_skeletons(DA1, skeleton_version=4)
    assert sorted(int(k) for k in theirs) == sorted(DA1)
    ours = {int(n.id): n for n in ds.get_skeletons(DA1)}
    for rid, sk in theirs.items():
        xyz = np.asarray(sk["vertices"], dtype="float64")
        np.testing.assert_array_equal(xyz, ours[int(rid)].nodes.sort_values("node_id")[["x", "y", "z"]].to_numpy())
