"""Fault matrix of the CAVE backend: every endpoint it uses x every fault kind of the emulator.

Each case opens the dataset afresh (so the connection endpoints and the version
list are requested again), queues one bounded fault on one endpoint, runs one
operation and requires the whole-table fault-free answer or a
:class:`~connectomix.errors.RemoteError`; never a partial table, never a raw
exception. The endpoints of each operation are the ones the emulator saw it use
fault-free, so a new endpoint the backend starts to use joins the matrix by
itself. Each case also checks that its fault really fired. Persistent faults
must raise.

The outcome counts are printed at the end of the module (``-s``) for the README.
"""

from __future__ import annotations

import collections

import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.http import RetryPolicy
from connectomix.testing import make_toy_release

TOKEN = "cave-matrix-token"
TIMEOUT = 0.25  # per request (connecting: 3 of them); the stalls below last longer
STALL = 1.0
#: Releases stable at every version (see test_cave_backend.py), and 110 (split) / 106 (merged) for update_ids.
STABLE = [102, 104, 107, 109]
FAST = RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05, total_timeout=30, request_timeout=TIMEOUT)

VIEWS = dict(filtered=True, synapse_view="valid_synapses_nt_np_v6", connection_view="valid_connection_v2")
#: name -> (dataset options, operation, endpoints to fault: None for every one it uses but the connection
#: endpoints, "connect" for those only). Operations that share a code path share the endpoints of that path
#: (each is faulted on the endpoints it adds or uses differently), which keeps the module within its time budget.
OPERATIONS = {
    "connect": ({}, lambda ds: ds.get_synapses([102], materialization=1), "connect"),
    "fetch_neurons": ({}, lambda ds: ds.fetch_neurons(STABLE), {"table_query"}),
    "connectivity": ({}, lambda ds: ds.get_connectivity(sources=STABLE), {"table_query"}),
    "connectivity_by_roi": ({}, lambda ds: ds.get_connectivity(sources=STABLE, by_roi=True), {"table_query"}),
    "connectivity_view": (VIEWS, lambda ds: ds.get_connectivity(sources=STABLE), {"view_query"}),
    "synapses_auto": ({}, lambda ds: ds.get_synapses(STABLE), None),
    "synapses_latest": ({}, lambda ds: ds.get_synapses(STABLE, materialization="latest"), {"versions_metadata"}),
    "synapses_v1": ({}, lambda ds: ds.get_synapses(STABLE + [106], materialization=1), {"is_latest_roots"}),
    "update_ids": ({}, lambda ds: ds.update_ids([110], materialization=2),
                   {"cg_info", "leaves", "lineage_graph", "root_timestamps", "roots_binary"}),
}
#: Requested while connecting, by every operation.
CONNECT = {"info_version", "datastack_info", "mat_api_versions", "mat_version", "cg_api_versions", "cg_version"}
ARROW = {"table_query", "view_query"}
BINARY = {"roots_binary"}


def _burst(faults, endpoint):
    for status in (429, 502, 503, 504):  # one burst of four responses, each retryable status once
        faults.fail_next(1, status=status, endpoint=endpoint)


#: kind -> (applies to an endpoint?, queue the fault).
KINDS = {
    "status_burst": (lambda e: True, _burst),
    "reset": (lambda e: True, lambda f, e: f.reset_next(2, endpoint=e)),
    "stall_headers": (lambda e: True, lambda f, e: f.stall_next(1, seconds=STALL, endpoint=e, where="headers")),
    "stall_body": (lambda e: True, lambda f, e: f.stall_next(1, seconds=STALL, endpoint=e, where="body")),
    "length_short": (lambda e: True, lambda f, e: f.lie_length_next(2, delta=-1, endpoint=e)),
    "length_long": (lambda e: True, lambda f, e: f.lie_length_next(2, delta=16, endpoint=e)),
    "json_cut": (lambda e: e not in ARROW | BINARY, lambda f, e: f.cut_json_next(2, endpoint=e)),
    "arrow_cut_after_schema": (lambda e: e in ARROW, lambda f, e: f.truncate_next(2, endpoint=e, boundary=0)),
    "arrow_cut_after_batch_1": (lambda e: e in ARROW, lambda f, e: f.truncate_next(2, endpoint=e, boundary=1)),
    "arrow_cut_before_eos": (lambda e: e in ARROW, lambda f, e: f.truncate_next(2, endpoint=e, boundary=-1)),
    "arrow_cut_inside": (lambda e: e in ARROW, lambda f, e: f.truncate_next(2, endpoint=e, fraction=0.6)),
}
OUTCOMES: collections.Counter = collections.Counter()


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(make_toy_release(tmp_path_factory.mktemp("toy")), token=TOKEN, datastack="toy_stack") as emu:
        emu.app.arrow_batch_rows = 16  # several record batches per query: several boundaries to cut at
        yield emu
    total = sum(OUTCOMES.values())
    print(f"\nCAVE fault matrix: {total} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(OUTCOMES.items())))


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    from connectomix_cave.backend import CaveBackend

    monkeypatch.setattr(CaveBackend, "default_retry", FAST)


def run(emu, name):
    options, operation, _ = OPERATIONS[name]
    settings = dict(server=emu.url, token=TOKEN, filtered=False, connection_view=None, score_column="cleft_score",
                    neuropil_column="neuropil", neuron_table="cell_types", type_column="cell_type", cache=False)
    settings.update(options)
    with connectomix.open(f"cave://{emu.datastack}", **settings) as ds:
        return operation(ds)


@pytest.fixture(scope="module")
def baselines(emu):
    """Fault-free answer and the endpoints used, per operation."""
    out = {}
    for name in OPERATIONS:
        emu.faults.clear()
        emu.stats.reset()
        answer = run(emu, name)
        assert len(answer) > 0, name
        out[name] = (answer, set(emu.stats.snapshot()))
    return out


def _equal(got, want) -> None:
    """Whole-table equality (``fetch_neurons`` answers a tuple of tables), version included."""
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            _equal(a, b)
        return
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs.get("version") == want.attrs.get("version")


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_every_endpoint_and_fault_kind(emu, baselines, name):
    want, used = baselines[name]
    only = OPERATIONS[name][2]
    endpoints = sorted(used & CONNECT if only == "connect" else used - CONNECT if only is None else used & only)
    assert endpoints, f"{name} uses no endpoint to fault"
    failures = []
    for endpoint in endpoints:
        for kind, (applies, queue) in KINDS.items():
            if not applies(endpoint):
                continue
            emu.faults.clear()
            queue(emu.faults, endpoint)
            case = f"{name} / {endpoint} / {kind}"
            try:
                got = run(emu, name)
            except errors.RemoteError as exc:  # a clean error is allowed; a partial table is not
                OUTCOMES["clean error"] += 1
                print(f"{case}: {type(exc).__name__}: {exc}")
                continue
            try:
                _equal(got, want)
            except AssertionError as exc:
                failures.append(f"{case}: wrong answer: {exc}")
                continue
            OUTCOMES["equal"] += 1
            pending = emu.faults.pending()
            if pending:  # the operation did not make the faulted request: the case proved nothing
                failures.append(f"{case}: the fault never fired ({pending})")
    emu.faults.clear()
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("endpoint,kind", [
    ("datastack_info", "reset"), ("mat_version", "status"), ("versions_metadata", "json_cut"),
    ("table_query", "arrow_cut_after_schema"), ("table_query", "stall_body"), ("is_latest_roots", "length_short"),
])
def test_a_fault_that_outlasts_the_retry_budget_raises(emu, monkeypatch, endpoint, kind):
    from connectomix_cave.backend import CaveBackend

    monkeypatch.setattr(CaveBackend, "default_retry", RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02,
                                                                  total_timeout=30, request_timeout=TIMEOUT))
    emu.faults.clear()
    queue = {
        "reset": lambda: emu.faults.reset_next(1000, endpoint=endpoint),
        "status": lambda: emu.faults.fail_next(1000, status=503, endpoint=endpoint),
        "json_cut": lambda: emu.faults.cut_json_next(1000, endpoint=endpoint),
        "arrow_cut_after_schema": lambda: emu.faults.truncate_next(1000, endpoint=endpoint, boundary=0),
        "stall_body": lambda: emu.faults.stall_next(1000, seconds=STALL, endpoint=endpoint),
        "length_short": lambda: emu.faults.lie_length_next(1000, delta=-1, endpoint=endpoint),
    }
    queue[kind]()
    try:
        with pytest.raises(errors.RemoteError):
            run(emu, "synapses_auto")
    finally:
        emu.faults.clear()
