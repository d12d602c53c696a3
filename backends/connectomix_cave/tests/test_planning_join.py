"""Issue 11 (CAVE): a neuron lookup through a reference table is one request -- the server's join.

FlyWire's annotation table (``hierarchical_neuron_annotations``) refers to ``proofread_neurons`` by
``target_id``; root ids live in the target. The lookup asks the join caveclient sends for
``merge_reference=True`` (``POST .../version/{v}/query`` with ``tables``), filtering the target's root
column, instead of two sequential queries. Completeness is kept: a join at the row cap is split, and a
server that refuses the join gets the two plain queries. Expected types come from the release the
emulator serves (SYNTHETIC, ``test_planning.write_release``), never from the backend under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix_cave.emulator import CaveEmulator, profile

from test_planning import N_BODIES, STACK, TOKEN, write_release

IDS = np.arange(1001, 1001 + N_BODIES, dtype=np.int64)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("join") / "release")


@pytest.fixture(scope="module")
def emu(release):
    with CaveEmulator(release, token=TOKEN, **profile(STACK).emulator_kwargs()) as emulator:
        yield emulator


@pytest.fixture
def counted(emu):
    emu.row_limit = 4000
    yield emu
    emu.row_limit = 4000


@pytest.fixture(scope="module")
def types(release):
    neurons = pd.read_parquet(release / "neurons.parquet")
    return neurons.set_index("id")["type"]


def open_ds(emu, **options):
    options.setdefault("cache", False)  # uncached: the lookup asks the server for these ids
    ds = connectomix.open(f"cave://{STACK}", server=emu.url, token=TOKEN, materialization=1, **options)
    ds.backend.client  # noqa: B018 - connect now: the tests count the lookup's own requests
    return ds


def lookup(ds, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counts not computed (said once per dataset)
        return ds.fetch_neurons(*args, **kwargs).neurons


def requests(emu) -> dict[str, int]:
    """Query requests by endpoint (version resolution is not the lookup's own)."""
    return {k: v["requests"] for k, v in emu.stats.snapshot().items() if k.endswith("_query")}


def check_types(neurons: pd.DataFrame, ids: np.ndarray, types: pd.Series) -> None:
    want = types.reindex(ids)
    got = neurons.set_index("id")["type"]
    assert set(got.index) <= set(ids.tolist()) and got.index.is_unique
    typed = want.notna().to_numpy()  # every 7th body has no type (it may have other annotations)
    assert got.reindex(ids[typed]).tolist() == want[typed].tolist()
    assert got.reindex(ids[~typed]).isna().all()


def test_a_lookup_by_ids_is_one_join_request(counted, types):
    ids = IDS[::12]  # 100 neurons
    ds = open_ds(counted)
    counted.stats.reset()
    neurons = lookup(ds, ids)
    assert requests(counted) == {"join_query": 1}  # was a query of proofread_neurons, then of the annotations
    check_types(neurons, ids, types)


def test_a_lookup_by_type_is_two_join_requests(counted, types):
    ds = open_ds(counted)
    counted.stats.reset()
    neurons = lookup(ds, type="T3")
    # a long table: the neurons with a matching (key, value) row, then every row of them (were 4 queries)
    assert requests(counted) == {"join_query": 2}
    want = types[types == "T3"].index.to_numpy(dtype="int64")
    assert sorted(neurons["id"].tolist()) == sorted(want.tolist()) and len(want) > 10


def test_a_join_over_the_row_cap_is_split_and_loses_nothing(counted, types):
    counted.row_limit = 300  # the FlyWire annotation rows of 1,200 neurons are many times this
    ds = open_ds(counted)
    counted.stats.reset()
    neurons = lookup(ds, IDS)
    sent = requests(counted)
    assert set(sent) == {"join_query"} and sent["join_query"] > 3
    check_types(neurons, IDS, types)


def test_a_server_that_refuses_the_join_gets_two_plain_queries(counted, types, monkeypatch):
    from connectomix_cave.backend import Join

    ids = IDS[::12]
    ds = open_ds(counted)
    # a join the emulator (like a server without it) answers with HTTP 400
    monkeypatch.setattr(Join, "tables", lambda self: [[self.table, "id"], [self.target, "id"]])
    counted.stats.reset()
    refused = lookup(ds, ids)
    assert requests(counted) == {"join_query": 1, "table_query": 2}
    check_types(refused, ids, types)
    counted.stats.reset()
    again = lookup(ds, IDS[1::12])
    assert requests(counted) == {"table_query": 2}  # the refusal is remembered
    check_types(again, IDS[1::12], types)
