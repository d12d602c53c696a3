"""The CAVE backend under injected faults: nothing partial or duplicated is ever returned."""

import pytest

import connectomix
from connectomix import errors
from connectomix.http import RetryPolicy
from connectomix.testing import make_toy_release

TOKEN = "cave-fault-token"
IDS = [101, 102, 103, 104, 107]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(make_toy_release(tmp_path_factory.mktemp("toy")), token=TOKEN, datastack="toy_stack") as emu:
        yield emu


@pytest.fixture
def ds(emu):
    emu.faults.clear()
    with connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, filtered=False,
                          connection_view=None, score_column="cleft_score", neuropil_column="neuropil",
                          materialization=1, cache=False) as ds:
        ds.backend.retry = RetryPolicy(base_delay=0.01, max_delay=0.05, total_timeout=20)
        yield ds
    emu.faults.clear()


@pytest.fixture
def baseline(ds):
    return ds.get_synapses(IDS, batch_size=2, progress=False)


def same(a, b):
    return a["synapse_id"].tolist() == b["synapse_id"].tolist() and a.equals(b)


def test_burst_of_503_longer_than_caveclients_own_retries(ds, emu, baseline):
    emu.faults.fail_next(6, status=503, endpoint="query")
    got = ds.get_synapses(IDS, batch_size=2, progress=False)
    assert same(got, baseline)


@pytest.mark.parametrize("status", [429, 502, 504])
def test_other_retryable_statuses(ds, emu, baseline, status):
    emu.faults.fail_next(2, status=status, endpoint="query")
    assert same(ds.get_synapses(IDS, batch_size=2, progress=False), baseline)


def test_connection_reset_mid_response(ds, emu, baseline):
    emu.faults.reset_next(3, endpoint="query")
    assert same(ds.get_synapses(IDS, batch_size=2, progress=False), baseline)


def test_truncated_arrow_stream(ds, emu, baseline):
    emu.faults.truncate_next(3, endpoint="query")
    assert same(ds.get_synapses(IDS, batch_size=2, progress=False), baseline)


def test_slow_response(ds, emu, baseline):
    emu.faults.slow_next(1, seconds=0.5, endpoint="query")
    assert same(ds.get_synapses(IDS, batch_size=2, progress=False), baseline)


def test_budget_runs_out_with_a_clear_error_and_no_partial_table(ds, emu):
    ds.backend.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    emu.faults.fail_next(1000, status=503, endpoint="query")
    with pytest.raises(errors.ServerError, match="gave up after 3 attempt"):
        ds.get_synapses(IDS, batch_size=2, progress=False)


def test_non_retryable_errors_are_not_retried(ds, emu):
    emu.stats.reset()
    emu.faults.fail_next(1, status=400, endpoint="query")
    with pytest.raises(errors.QueryError, match="HTTP 400"):
        ds.get_synapses([101], pre=False, progress=False)  # one query
    assert emu.stats.requests("table_query") == 1
