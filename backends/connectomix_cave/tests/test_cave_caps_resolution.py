"""CAVE backend: row caps found from row counts alone, timeouts, and anisotropic voxel resolution.

Expected tables are the same query answered by the emulator with no row cap
(and, for positions, the release's nm positions rounded to the table's voxels
here, axis by axis), never values computed by the code under test.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.http import RetryPolicy
from connectomix.testing import make_toy_release

TOKEN = "cave-caps-token"
STABLE = [102, 104, 107, 109]
A, B, C = 110, 106, 108  # B and C merge into BC before version 2 (default edit script, see test_cave_backend.py)
VIEWS = dict(filtered=True, synapse_view="valid_synapses_nt_np_v6", connection_view="valid_connection_v2")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def emu(toy):
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(toy, token=TOKEN, datastack="toy_stack") as emu:
        yield emu


@pytest.fixture(autouse=True)
def uncapped(emu):
    yield
    emu.row_limit = 200_000
    emu.app.announce_caps = True
    emu.app.table_row_limits.clear()
    emu.faults.clear()


def open_ds(emu, **options):
    settings = dict(server=emu.url, token=TOKEN, filtered=False, connection_view=None, score_column="cleft_score",
                    neuropil_column="neuropil", neuron_table="cell_types", type_column="cell_type", live=True, cache=False)
    settings.update(options)
    return connectomix.open(f"cave://{emu.datastack}", **settings)


def answer(emu, query, *, server_cap=200_000, announce=True, **options):
    """``query(ds)`` against the emulator capping at ``server_cap`` rows (announced or silently)."""
    emu.row_limit, emu.app.announce_caps = server_cap, announce
    try:
        with open_ds(emu, **options) as ds:
            return query(ds)
    finally:
        emu.row_limit, emu.app.announce_caps = 200_000, True


def synapses(ds):
    return ds.get_synapses([102, 104, A], materialization=1, batch_size=2)


def test_a_silent_cap_equal_to_our_row_limit_is_split(emu):
    want = answer(emu, synapses)
    assert len(want) > 3 * 30
    got = answer(emu, synapses, server_cap=30, announce=False, row_limit=30)
    pd.testing.assert_frame_equal(got, want)


def test_our_row_limit_below_the_servers_cap_is_split(emu):
    want = answer(emu, synapses)
    got = answer(emu, synapses, server_cap=1000, announce=False, row_limit=25)  # the server never caps here
    pd.testing.assert_frame_equal(got, want)


def test_a_cap_announced_once_is_remembered_when_the_server_stops_announcing_it(emu):
    want = answer(emu, synapses)
    emu.row_limit = 30
    try:
        with open_ds(emu) as ds:  # our row_limit stays 200,000
            first = ds.get_synapses([107], materialization=1)  # more than 30 rows: announced and split
            emu.app.announce_caps = False
            got = synapses(ds)
    finally:
        emu.row_limit, emu.app.announce_caps = 200_000, True
    assert len(first) > 30
    pd.testing.assert_frame_equal(got, want)


def test_a_single_id_above_the_cap_on_the_connection_view_is_split_by_partner(emu):
    def edges(ds):
        return ds.get_connectivity(sources=[102], materialization=1)

    want = answer(emu, edges, **VIEWS)
    assert len(want) > 4
    for announce in (True, False):
        got = answer(emu, edges, server_cap=4, announce=announce, row_limit=4 if not announce else 200_000,
                     **VIEWS)
        pd.testing.assert_frame_equal(got, want)


def test_a_single_id_above_the_cap_on_the_synapse_view_is_split_by_synapse_id(emu):
    def rows(ds):
        return ds.get_synapses([102], materialization=1)

    want = answer(emu, rows, **VIEWS)
    got = answer(emu, rows, server_cap=3, announce=False, row_limit=3, **VIEWS)
    pd.testing.assert_frame_equal(got, want)


def test_a_single_id_above_the_cap_on_an_annotation_table_even_at_a_cap_of_one_row(emu):
    bc = emu.labels.get("BC")

    def neurons(ds):  # at version 2, B and C are one neuron BC with both annotation rows
        return ds.fetch_neurons([bc], materialization=2)

    def kcs(ds):
        return ds.fetch_neurons(type="KC", materialization=1)

    want, want_kcs = answer(emu, neurons), answer(emu, kcs)
    emu.app.table_row_limits["cell_types"] = 1  # the synapse table stays uncapped (counting is not the point)
    got, got_kcs = answer(emu, neurons), answer(emu, kcs)
    for a, b in [*zip(got, want), *zip(got_kcs, want_kcs)]:
        pd.testing.assert_frame_equal(a, b)
    assert len(want_kcs[0]) == 3


def test_a_stalled_response_is_abandoned_after_the_timeout(emu):
    want = answer(emu, synapses)
    with open_ds(emu) as ds:  # the policy is read at every request, so it can change after connecting
        ds.backend.retry = RetryPolicy(base_delay=0.01, max_delay=0.05, total_timeout=20, request_timeout=0.5)
        emu.faults.stall_next(1, seconds=30, endpoint="table_query", where="headers")
        started = time.monotonic()
        got = synapses(ds)
        took = time.monotonic() - started
    pd.testing.assert_frame_equal(got, want)
    assert took < 10, f"waited {took:.1f}s for a response stalled for 30s (timeout 0.5s)"


def test_connecting_to_a_stalled_server_times_out(emu):
    emu.faults.stall_next(1, seconds=30, endpoint="datastack_info", where="body")
    started = time.monotonic()
    with open_ds(emu, timeout=0.5) as ds:
        got = ds.get_synapses([102], materialization=1)
    assert len(got) > 0 and time.monotonic() - started < 10


@pytest.mark.parametrize("bad", [0, -1, "soon", float("nan"), True])
def test_timeout_option_is_checked(emu, bad):
    with pytest.raises(connectomix.errors.InvalidArgumentError, match="timeout"):
        open_ds(emu, timeout=bad)


# --- anisotropic voxels -----------------------------------------------------------------------------

RESOLUTION = (4.0, 8.0, 40.0)  # every axis different: a swapped axis or one resolution for all shows


@pytest.fixture(scope="module")
def aniso(toy):
    from connectomix_cave.emulator import CaveEmulator
    from connectomix_cave.emulator.tables import TableOptions

    with CaveEmulator(toy, token=TOKEN, datastack="toy_stack", options=TableOptions(voxel_resolution=RESOLUTION)) as emu:
        yield emu


def test_positions_come_back_in_nm_axis_by_axis_at_an_anisotropic_resolution(aniso, toy):
    release = pd.read_parquet(toy / "synapses.parquet").set_index("synapse_id")
    with open_ds(aniso) as ds:
        got = ds.get_synapses(STABLE, materialization=1).set_index("synapse_id")
    assert len(got) > 10
    res = np.array(RESOLUTION)
    for side in ("pre", "post"):
        nm = release.loc[got.index, [f"{side}_x", f"{side}_y", f"{side}_z"]].to_numpy(float)
        # the table stores whole voxels: the nearest voxel, back in nm (no position lies half-way here)
        assert not np.any(np.isclose(np.abs(nm / res - np.trunc(nm / res)), 0.5))
        expected = np.floor(nm / res + 0.5) * res
        for i, axis in enumerate("xyz"):
            np.testing.assert_array_equal(got[f"{side}_{axis}"].to_numpy(float), expected[:, i],
                                          err_msg=f"{side}_{axis}")
    # the voxels really differ per axis in this data (so the check above can see a mix-up)
    assert not np.array_equal(np.floor(nm / res[0] + 0.5) * res[0], expected)


@pytest.mark.parametrize("rows", [2, 3])
def test_a_single_key_value_with_several_rows_is_an_error_not_a_result(rows):
    # split down to one value of a key that should be unique among the rows: more than one row means the
    # key is not unique after all, so the rows cannot be told complete; the range branch never needs the
    # backend object itself (no request is made)
    from connectomix.errors import TruncatedResultError
    from connectomix_cave.backend import CaveBackend

    capped = pd.DataFrame({"id": [7] * rows, "pre_pt_root_id": np.arange(rows, dtype="int64")})
    with pytest.raises(TruncatedResultError, match=f"{rows} rows"):
        CaveBackend._split_by_range(None, "synapses", False, 1, {}, ["id"], "testing", "id", 7, 8, capped)
    one = capped.iloc[:1]
    assert CaveBackend._split_by_range(None, "synapses", False, 1, {}, ["id"], "testing", "id", 7, 8, one) is one
