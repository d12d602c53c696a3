"""The CAVE backend against the CAVE emulator: materialization modes, id updates, row caps, auth errors.

The emulator serves the toy release with its default SYNTHETIC edit script (see
``connectomix_cave/emulator/edits.py``): A=110 is split before v2 (A_kept, A_moved), B=106 and
C=108 merge into BC before v2, A_kept and D=103 merge into AD before v3, F=101 is split before v3,
F_kept and G=105 merge into FG before v4 (v3 is expired), and BC is split after v4 (live only).
102, 104, 107 and 109 never change.
"""

import logging

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.testing import make_toy_release
from connectomix.testing.conformance import ToyTruth, _keys

TOKEN = "cave-backend-token"
FORBIDDEN = "cave-forbidden-token"
A, B, C, D, F, G = 110, 106, 108, 103, 101, 105
STABLE = [102, 104, 107, 109]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def emu(toy):
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(toy, token=TOKEN, datastack="toy_stack", forbidden_tokens=[FORBIDDEN]) as emu:
        yield emu


def open_ds(emu, **options):
    settings = dict(server=emu.url, token=TOKEN, filtered=False, connection_view=None, score_column="cleft_score",
                    neuropil_column="neuropil", neuron_table="cell_types", type_column="cell_type",
                    primary_rois="A,B,C(R)", live=True, cache=False)
    settings.update(options)
    return connectomix.open(f"cave://{emu.datastack}", **settings)


@pytest.fixture(scope="module")
def ds(emu):
    with open_ds(emu) as ds:
        yield ds


def test_auto_picks_newest_version_where_all_ids_exist(ds, emu, capsys, caplog):
    with caplog.at_level(logging.INFO, logger="connectomix"):
        assert ds.get_connectivity(sources=STABLE).attrs["version"] == 4
        assert ds.get_synapses([A]).attrs["version"] == 1  # A exists only at v1
        assert ds.get_synapses([emu.labels["A_kept"]]).attrs["version"] == 2
        assert ds.get_synapses([emu.labels["AD"]]).attrs["version"] == 4
        assert ds.get_synapses([emu.labels["AD"]]).attrs["version"] == 4
    # logged at INFO on the 'connectomix' logger, once per version (fafbseg prints it on every query)
    said = [r.getMessage() for r in caplog.records if "Using materialization version" in r.getMessage()]
    assert sorted(m.rsplit(" ", 1)[1] for m in said) == ["1.", "2.", "4."]
    assert "Using materialization version" not in capsys.readouterr().err


def test_auto_falls_back_to_live_for_ids_newer_than_every_version(ds, emu):
    syn = ds.get_synapses([emu.labels["BC_kept"]])
    assert syn.attrs["version"] == "live" and len(syn) > 0
    assert ((syn.pre == emu.labels["BC_kept"]) | (syn.post == emu.labels["BC_kept"])).all()


def test_auto_without_live_names_the_ids_and_points_at_update_ids(emu):
    with open_ds(emu, live=False) as no_live:
        with pytest.raises(errors.MaterializationError, match="allows no live queries"):
            no_live.get_synapses([emu.labels["BC_kept"]])
    with open_ds(emu) as ds:
        with pytest.raises(errors.MaterializationError, match=r"update_ids") as err:
            ds.get_synapses([emu.labels["F_kept"], 102])  # F_kept existed only at the expired v3
        assert err.value.ids == [emu.labels["F_kept"]]


def test_ids_that_never_coexisted(ds, emu):
    with pytest.raises(errors.MaterializationError, match="do not \\(co-\\)exist"):
        ds.get_connectivity(sources=[A, emu.labels["AD"]])


def test_version_1_equals_the_release(ds, toy):
    truth = ToyTruth(toy)
    got = ds.get_synapses([A], materialization=1)
    assert _keys(got) == _keys(truth.synapse_rows([A]))


def test_pinned_version_that_predates_the_ids_is_an_error_not_an_empty_table(ds, emu):
    with pytest.raises(errors.MaterializationError, match="created after materialization 1") as err:
        ds.get_synapses([emu.labels["AD"]], materialization=1)
    assert err.value.ids == [emu.labels["AD"]]
    with pytest.raises(errors.MaterializationError, match="already been replaced.*update_ids"):
        ds.get_synapses([A], materialization=4)
    with pytest.raises(errors.InvalidArgumentError, match="not available.*available versions: \\[1, 2, 4\\]"):
        ds.get_synapses([102], materialization=3)  # expired
    with pytest.raises(errors.InvalidArgumentError, match="materialization must be"):
        ds.get_synapses([102], materialization="newest")


def test_latest_and_live_modes(ds, emu):
    assert ds.get_synapses([102], materialization="latest").attrs["version"] == 4
    live = ds.get_synapses([102], materialization="live")
    v4 = ds.get_synapses([102], materialization=4)
    assert live.attrs["version"] == "live" and _keys(live) != [] and len(live) == len(v4)
    with pytest.raises(errors.MaterializationError, match="outdated"):
        ds.get_synapses([A], materialization="live")


def test_update_ids_maps_outdated_roots_forward(ds, emu):
    table = ds.update_ids([A, 102, B])
    row = table.set_index("old_id")
    assert not row.loc[102, "changed"] and row.loc[102, "new_id"] == 102
    assert row.loc[A, "changed"] and row.loc[A, "new_id"] in (emu.labels["AD"], emu.labels["A_moved"])
    assert row.loc[B, "new_id"] in (emu.labels["BC_kept"], emu.labels["BC_moved"])
    at_v2 = ds.update_ids([A], materialization=2).set_index("old_id")
    assert at_v2.loc[A, "new_id"] in (emu.labels["A_kept"], emu.labels["A_moved"])


def test_row_cap_is_detected_and_split_until_complete(emu, toy):
    everything = ToyTruth(toy).synapse_rows(STABLE + [A])
    emu.row_limit = 7
    try:
        with open_ds(emu, row_limit=7) as capped:
            got = capped.get_synapses(STABLE + [A], materialization=1, batch_size=5)
            edges = capped.get_connectivity(sources=STABLE, materialization=1)
    finally:
        emu.row_limit = 200_000
    assert len(everything) > 7 * 5
    assert _keys(got) == _keys(everything)
    truth = ToyTruth(toy).edges(STABLE)
    assert sorted(zip(edges.pre, edges.post, edges.weight)) == sorted(zip(truth.pre, truth.post, truth.weight))


def test_server_cap_below_ours_is_detected_from_the_warning_header(emu, toy):
    everything = ToyTruth(toy).synapse_rows([102])
    emu.row_limit = 5
    try:
        with open_ds(emu) as ds:  # our row_limit stays 200,000: only the Warning header tells
            got = ds.get_synapses([102], materialization=1)
    finally:
        emu.row_limit = 200_000
    assert _keys(got) == _keys(everything)


def test_auth_and_lookup_errors(emu):
    with pytest.raises(errors.AuthenticationError, match="401.*invalid or expired"):
        connectomix.open(f"cave://{emu.datastack}", server=emu.url, token="wrong-token")
    with pytest.raises(errors.AuthorizationError, match="403.*a new token will not help"):
        connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=FORBIDDEN)
    with pytest.raises(errors.DatasetNotFoundError):
        connectomix.open("cave://no_such_stack", server=emu.url, token=TOKEN)
    with open_ds(emu, synapse_table="no_such_table") as ds:
        with pytest.raises(errors.ConnectomixError, match="no_such_table"):
            ds.get_synapses([102], materialization=1)
    with pytest.raises(errors.InvalidArgumentError, match="unknown option"):
        connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, synapse_tabel="x")


def test_token_never_leaks(emu, capsys):
    with open_ds(emu) as ds:
        texts = [repr(ds), repr(ds.backend), str(ds.info)]
    with pytest.raises(errors.AuthenticationError) as exc:
        connectomix.open(f"cave://{emu.datastack}", server=emu.url, token="wrong-" + TOKEN)
    texts += [str(exc.value), repr(exc.value)]
    out = capsys.readouterr()
    assert not any(TOKEN in t for t in texts + [out.out, out.err])
