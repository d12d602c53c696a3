"""Issue 11 (CAVE), sixth session: requests at the physical minimum, the root-id check beside the query.

* Batches planned from rows per id learnt earlier are sent at once, without a count query first.
* With both sides asked (synapses, counts), the post side asks only rows whose pre is not a query id
  (``filter_notin_dict``): every row crosses the wire once.
* A lookup with counts asks the annotations and the synapse rows at the same time.
* At a pinned version, the root-id check of new ids (``is_latest_roots``) is sent while the query runs;
  a failed check still raises (a pinned version that predates the ids is an error, never a table).

Requests and rows are observed on the emulator (``emu.stats``, and the rows its query function
answered); expected tables and rows come from plain caveclient reads of the whole views and from the
release, never from the backend under test. Concurrency is shown by holding one response back
(``stall_next(..., where="headers")``) and seeing the other request answered meanwhile.
"""

from __future__ import annotations

import math
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.testing import make_toy_release
from connectomix_cave import backend as cave_backend
from connectomix_cave.emulator import CaveEmulator, app as emulator_app, profile
from connectomix_cave.planning import FILL, SMALL_QUERY
from connectomix_cave.settings import settings_for

from test_planning import (CAP, N_BODIES, STACK, TOKEN, connectivity, counted, data_requests,  # noqa: F401
                           open_ds, truth, write_release)

IDS = np.arange(1001, 1001 + N_BODIES, dtype=np.int64)
STABLE = [102, 104, 107, 109]  # toy bodies no edit touches (test_cave_backend.py)
A = 110  # split before version 2


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    release = write_release(tmp_path_factory.mktemp("speed") / "release")
    with CaveEmulator(release, token=TOKEN, **profile(STACK).emulator_kwargs()) as emulator:
        yield emulator


@pytest.fixture
def answered(monkeypatch):
    """Every query the emulator answers: ``(table, rows sent, count query?)``."""
    seen: list[tuple[str, int, bool]] = []
    lock = threading.Lock()
    real = emulator_app.run_query

    def recording(frame, table, *args, **kwargs):
        result = real(frame, table, *args, **kwargs)
        with lock:
            seen.append((table.name, len(result.frame), bool(kwargs.get("count"))))
        return result

    monkeypatch.setattr(emulator_app, "run_query", recording)
    return seen


def lookup(ds, *args, **kwargs) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counts not computed (said once per dataset)
        return ds.fetch_neurons(*args, **kwargs).neurons


# -- planned batches: no count query where rows per id are known ------------------------------------------

def test_learnt_rows_plan_the_batches_without_a_count_query(counted, truth, answered):
    _, conn = truth
    warm, ids = IDS[1::12][:100], IDS[::2][:600]  # disjoint sets
    ds = open_ds(counted)
    connectivity(ds, sources=warm)  # learns rows per id of the connection view (100 ids >= SMALL_QUERY)
    assert len(warm) >= SMALL_QUERY
    rate = conn["pre_pt_root_id"].isin(warm).sum() / len(warm)
    rows = int(conn["pre_pt_root_id"].isin(ids).sum())
    planned = math.ceil(rate * len(ids) / (FILL * CAP))
    assert planned > 1 and rows < planned * CAP  # several batches, none of which needs splitting here
    counted.stats.reset()
    answered.clear()
    got = connectivity(ds, sources=ids)
    assert [count for _, _, count in answered] == [False] * planned  # the planned batches, no count query first
    assert data_requests(counted) == planned
    assert sum(n for _, n, _ in answered) == rows  # every row once
    want = conn[conn["pre_pt_root_id"].isin(ids) & (conn["pre_pt_root_id"] != conn["post_pt_root_id"])]
    want = want.groupby(["pre_pt_root_id", "post_pt_root_id"])["n_syn"].sum()
    assert dict(zip(zip(got["pre"], got["post"]), got["weight"])) == {(int(a), int(b)): int(w)
                                                                      for (a, b), w in want.items()}


def test_with_nothing_learnt_one_count_query_then_the_batches(counted, truth, answered):
    _, conn = truth
    ids = IDS[::2][:600]
    ds = open_ds(counted)
    answered.clear()
    connectivity(ds, sources=ids)
    total = int(conn["pre_pt_root_id"].isin(ids).sum())
    counts = [count for _, _, count in answered]
    assert counts.count(True) == 1 and counts.count(False) == math.ceil(total / (FILL * CAP))


@pytest.mark.parametrize("query", ["synapses", "counts"])
def test_both_sides_move_every_row_once(counted, truth, answered, query):
    syn, _ = truth
    ids = IDS[::3][:300]
    ds = open_ds(counted, row_limit=10_000_000)
    counted.row_limit = 10_000_000  # one request per side: the rows each side asks for are all answered
    answered.clear()
    if query == "synapses":
        got = ds.get_synapses(ids, progress=False)
        assert len(got) == int((syn["pre_pt_root_id"].isin(ids) | syn["post_pt_root_id"].isin(ids)).sum())
    else:
        got = lookup(ds, ids, counts=True)
        assert got["id"].tolist() == ids.tolist()  # ids are segments: every one, annotated or not
        down = syn[syn["pre_pt_root_id"].isin(ids)].groupby("pre_pt_root_id").size()
        up = syn[syn["post_pt_root_id"].isin(ids)].groupby("post_pt_root_id").size()
        assert got["downstream"].tolist() == down.reindex(ids, fill_value=0).tolist()
        assert got["upstream"].tolist() == up.reindex(ids, fill_value=0).tolist()
    out = syn["pre_pt_root_id"].isin(ids)
    into_only = syn["post_pt_root_id"].isin(ids) & ~out
    view = settings_for(STACK, {}).synapse_view
    synapse_rows = sorted(n for table, n, count in answered if table == view and not count)
    assert synapse_rows == sorted([int(out.sum()), int(into_only.sum())])


def test_a_lookup_with_counts_asks_annotations_and_synapses_at_once(counted):
    ids = IDS[::4][:200]
    ds = open_ds(counted, row_limit=10_000_000)
    counted.row_limit = 10_000_000
    counted.faults.stall_next(1, seconds=3.0, endpoint="join_query", where="headers")
    answered_during_stall = []

    def watch():
        deadline = time.monotonic() + 10
        while counted.stats.requests("join_query") == 0 and time.monotonic() < deadline:
            time.sleep(0.002)
        held = time.monotonic()  # the annotation answer is held back for 3 s from here
        while time.monotonic() < held + 2.5:
            answered_during_stall.append(counted.stats.requests("view_query"))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    got = lookup(ds, ids, counts=True)
    watcher.join()
    assert len(got) == len(ids)
    assert max(answered_during_stall) >= 2  # both sides' synapse rows came while the annotations were held


# -- the root-id check runs beside the query -------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_emu(tmp_path_factory):
    toy = make_toy_release(tmp_path_factory.mktemp("toy"))
    with CaveEmulator(toy, token=TOKEN, datastack="toy_stack") as emulator:
        yield emulator


@pytest.fixture
def toy(toy_emu):
    toy_emu.stats.reset()
    yield toy_emu
    toy_emu.faults.clear()
    toy_emu.stats.reset()


def open_toy(emu, **options):
    settings = dict(server=emu.url, token=TOKEN, filtered=False, connection_view=None, score_column="cleft_score",
                    neuropil_column="neuropil", neuron_table="cell_types", type_column="cell_type",
                    primary_rois="A,B,C(R)", live=True, cache=False)
    settings.update(options)
    ds = connectomix.open(f"cave://{emu.datastack}", **settings)
    ds.backend.resolver.versions()  # connect and read the version list now: the tests time the query's requests
    return ds


CALLS = {
    "connectivity": lambda ds, ids, v: connectivity(ds, sources=ids, materialization=v),
    "synapses": lambda ds, ids, v: ds.get_synapses(ids, materialization=v, progress=False),
    "neurons": lambda ds, ids, v: lookup(ds, ids, materialization=v),
    "counts": lambda ds, ids, v: lookup(ds, ids, materialization=v, counts=True),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_the_check_of_new_ids_is_sent_while_the_query_runs(toy, call):
    ds = open_toy(toy)
    toy.faults.stall_next(1, seconds=2.0, endpoint="is_latest_roots", where="headers")
    seen = {}

    def watch():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ("query" not in seen or "check" not in seen):
            now = time.monotonic()
            if toy.stats.requests("is_latest_roots"):
                seen.setdefault("check", now)  # recorded when the check arrives; answered 2 s later
            if toy.stats.requests("query") or toy.stats.requests("join_query"):
                seen.setdefault("query", now)
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    got = CALLS[call](ds, STABLE, 4)
    watcher.join()
    assert len(got) > 0
    assert seen["query"] - seen["check"] < 1.5, seen  # a query was answered while the check was held back


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_pinned_version_that_predates_the_ids_raises_though_the_query_was_answered(toy, tmp_path, call):
    ds = open_toy(toy, cache=str(tmp_path / "cache"))
    new = toy.labels["AD"]  # created after version 1
    for attempt in range(2):  # and no table was kept in the cache for the next call
        toy.faults.stall_next(1, seconds=0.5, endpoint="is_latest_roots", where="headers")
        toy.stats.reset()
        with pytest.raises(errors.MaterializationError, match="created after materialization 1") as err:
            CALLS[call](ds, [102, new], 1)
        assert err.value.ids == [new]
        assert toy.stats.requests("is_latest_roots") == 1
        if attempt == 0:  # (the second may answer its rows from what the first kept: the annotation table)
            assert toy.stats.requests("query") + toy.stats.requests("join_query") >= 1  # sent beside the check
    with pytest.raises(errors.MaterializationError, match="already been replaced.*update_ids"):
        CALLS[call](ds, [A], "latest")


def test_an_unavailable_version_raises_before_any_query(toy):
    ds = open_toy(toy)
    with pytest.raises(errors.InvalidArgumentError, match="not available.*available versions: \\[1, 2, 4\\]"):
        ds.get_synapses([102], materialization=3)  # expired
    assert toy.stats.requests("query") == 0 and toy.stats.requests("is_latest_roots") == 0


def test_checked_ids_are_not_checked_again(toy):
    ds = open_toy(toy)
    first = ds.get_synapses(STABLE, materialization=4, progress=False)
    toy.stats.reset()
    again = connectivity(ds, sources=STABLE, materialization=4)
    assert toy.stats.requests("is_latest_roots") == 0 and len(first) and len(again)


# -- the annotation pivot (vectorised): the documented rules, on a hand-written long table ------------------

def test_pivot_keeps_every_value_one_row_per_neuron_and_string_dtypes():
    long = pd.DataFrame({
        "id": [7, 7, 7, 7, 3, 3, 3, 5, 9],
        "key": ["cell_type", "cell_type", "side", "extra", "cell_type", "cell_type", "nt", None, "side"],
        "value": ["B", "A", "L", "x", "C", "C", "glut", None, "sideways"],
    })
    mapping = [("type", "cell_type"), ("side", "side"), ("nt", "nt"), ("class", "cell_class")]
    got = cave_backend._pivot(long.sample(frac=1.0, random_state=4), mapping)  # row order must not matter
    # mapped columns, then each key under its own name (but not a key named like a connectomix column)
    assert got.columns.tolist() == ["id", "type", "side", "nt", "class", "cell_type", "extra"]
    assert got["cell_type"].equals(got["type"])
    assert got["id"].tolist() == [3, 5, 7, 9] and got["id"].dtype == np.int64
    assert all(str(got[c].dtype) == "string" for c in got.columns if c != "id")
    assert got["type"].tolist() == ["C", pd.NA, "A;B", pd.NA]  # several values: sorted, unique, joined
    assert got["side"].tolist() == [pd.NA, pd.NA, "left", pd.NA]  # unknown spelling -> <NA>
    assert got["nt"].tolist() == ["glutamate", pd.NA, pd.NA, pd.NA]
    assert got["class"].isna().all() and got["extra"].tolist() == [pd.NA, pd.NA, "x", pd.NA]
    empty = cave_backend._pivot(pd.DataFrame({"id": [4], "key": [None], "value": [None]}), mapping)
    assert empty["id"].tolist() == [4] and empty[["type", "side", "nt", "class"]].isna().all().all()


@pytest.mark.parametrize("stack", ["flywire_fafb_public", "minnie65_public"])
def test_lookups_on_reference_tables_give_the_release_types(tmp_path_factory, stack):
    release = write_release(tmp_path_factory.mktemp(stack) / "release")
    types = pd.read_parquet(release / "neurons.parquet").set_index("id")["type"]
    with CaveEmulator(release, token=TOKEN, **profile(stack).emulator_kwargs()) as emulator:
        ds = connectomix.open(f"cave://{stack}", server=emulator.url, token=TOKEN, materialization=1, cache=False)
        ids = IDS[::5]
        got = lookup(ds, ids).set_index("id")
        assert got.index.is_unique and set(got.index) <= set(ids.tolist())
        typed = types.reindex(ids).notna().to_numpy()
        assert got["type"].reindex(ids[typed]).tolist() == types.reindex(ids[typed]).tolist()
        assert got["type"].reindex(ids[~typed]).isna().all() and str(got["type"].dtype) == "string"
        assert got["upstream"].isna().all() and str(got["upstream"].dtype) == "Int64"


def test_connectivity_by_roi_without_a_neuropil_column_is_unsupported(tmp_path):
    release = write_release(tmp_path / "release")
    with CaveEmulator(release, token=TOKEN, **profile("minnie65_public").emulator_kwargs()) as emulator:
        ds = connectomix.open("cave://minnie65_public", server=emulator.url, token=TOKEN, materialization=1,
                              cache=False)
        with pytest.raises(errors.UnsupportedOperation, match="no neuropil column"):
            connectivity(ds, sources=IDS[:5], by_roi=True)  # was a KeyError(None)


def test_a_check_no_query_waited_for_never_fails_a_later_call(toy):
    ds = open_toy(toy)
    new = toy.labels["AD"]  # created after version 1
    # no query (no source given: the core answers without the backend); the core waits for the check
    with pytest.raises(errors.MaterializationError):
        connectivity(ds, sources=[], targets=[new], materialization=1)
    assert len(ds.get_synapses([102], materialization=1, progress=False)) > 0  # not the earlier call's error


def test_an_empty_side_with_ids_that_predate_the_version_raises(toy):
    ds = open_toy(toy)
    with pytest.raises(errors.MaterializationError):
        connectivity(ds, sources=[], targets=[toy.labels["AD"]], materialization=1)
