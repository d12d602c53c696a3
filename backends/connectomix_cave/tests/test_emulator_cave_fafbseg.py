"""Unmodified fafbseg 3.2.3 (``flywire.get_synapses``/``get_connectivity``) against the CAVE emulator.

fafbseg builds ``CAVEclient(datastack, auth_token=token)`` itself; the emulator
is reached through a temporary HOME holding caveclient's datastack->server map
and the cloud-volume token file (``CaveEmulator.write_client_home``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from cave_emulator_support import A1, A2, AD, BC, BC1, BC2, F1, FG, VERSION_TIMES, expected_view_ids, rerooted
from connectomix_cave.emulator import client_environment, use_client_home

flywire = pytest.importorskip("fafbseg.flywire")
from fafbseg.flywire.utils import MaterializationMatchError  # noqa: E402


@pytest.fixture(scope="module")
def fafbseg_home(emulator_server, tmp_path_factory):
    home = tmp_path_factory.mktemp("fafbseg-home")
    emulator_server.write_client_home(home)
    with use_client_home(home):
        yield home


def _expected(v1_rows, release_rows, ids, until, filtered=True) -> pd.DataFrame:
    """The rows fafbseg must return, with ``pre_x`` ... ``post_z`` in the unit of the source it reads.

    The filtered view answers nm (FlyWire's ``valid_synapses_nt_np_v6``, seung-lab/FlyConnectome
    ``CAVE tutorial.ipynb``@9b1790b cell 49): the release's nm. fafbseg asks ``synapses_nt_v1``
    (``filtered=False``) without ``desired_resolution`` too, so it gets that table's 4 x 4 x 40 voxels
    (natverse/fafbseg#254): the version-1 table's values.
    """
    table = rerooted(v1_rows, until)
    if filtered:
        table = table[table["id"].isin(expected_view_ids(v1_rows, release_rows))]
    table = table[table.pre_pt_root_id.isin(ids) | table.post_pt_root_id.isin(ids)]
    table = table[(table.pre_pt_root_id != table.post_pt_root_id)].copy()
    release = release_rows.set_index("synapse_id")
    for side in ("pre", "post"):
        for axis in "xyz":
            table[f"{side}_{axis}"] = (release.loc[table["id"], f"{side}_{axis}"].to_numpy(float) if filtered
                                       else table[f"{side}_pt_position_{axis}"].to_numpy(float))
    return table.set_index("id").sort_index()


POSITIONS = [f"{side}_{axis}" for side in ("pre", "post") for axis in "xyz"]


def _check(syn: pd.DataFrame, expected: pd.DataFrame) -> None:
    syn = syn.set_index("id").sort_index()
    assert syn.index.tolist() == expected.index.tolist()
    assert (syn["pre"] == expected["pre_pt_root_id"]).all() and (syn["post"] == expected["post_pt_root_id"]).all()
    # nm from the view (within half its 1 nm voxel), the raw table's own voxels unfiltered
    np.testing.assert_allclose(syn[POSITIONS].to_numpy(float), expected[POSITIONS].to_numpy(float), atol=0.5)
    assert (syn["cleft_score"] == expected["cleft_score"]).all()


@pytest.mark.parametrize("ids, version", [
    ([101], 1),            # split at 2024-01-10: only version 1
    ([A1], 2),             # created by that split, merged away before version 3
    ([A2, 104], 2),        # both current only between 2024-01-10 and 2024-02-10
    ([AD], 4),             # current since 2024-02-10 (the expired version 3 is never used)
    ([FG, AD, 107], 4),
])
def test_auto_picks_the_newest_version_where_all_ids_exist(fafbseg_home, v1_rows, release_rows, capsys,
                                                           ids, version):
    syn = flywire.get_synapses(ids, materialization="auto")
    assert f"Using materialization version {version}." in capsys.readouterr().out
    assert syn.attrs["materialization"] == version
    _check(syn, _expected(v1_rows, release_rows, ids, VERSION_TIMES[version]))


@pytest.mark.parametrize("ids", [[101, AD], [F1], [BC1, BC2], [999999]])
def test_ids_that_never_coexisted_in_a_valid_version_raise(fafbseg_home, ids):
    # [101, AD]: never at the same time; F1: only in the expired version 3; BC1/BC2: only in live
    with pytest.raises(MaterializationMatchError, match="do not \\(co-\\)exist"):
        flywire.get_synapses(ids, materialization="auto")


def test_integer_versions(fafbseg_home, v1_rows, release_rows, capsys):
    at1 = flywire.get_synapses([107], materialization=1)
    at4 = flywire.get_synapses([107], materialization=4)
    _check(at1, _expected(v1_rows, release_rows, [107], VERSION_TIMES[1]))
    _check(at4, _expected(v1_rows, release_rows, [107], VERSION_TIMES[4]))
    assert set(at1["id"]) == set(at4["id"])  # 107 was never edited ...
    partners1, partners4 = set(at1["pre"]) | set(at1["post"]), set(at4["pre"]) | set(at4["post"])
    assert {101, 102} <= partners1 and {AD, BC} <= partners4 and not {101, 102} & partners4  # ... its partners were
    capsys.readouterr()
    flywire.get_synapses([101], materialization=4)  # fafbseg only warns about outdated ids
    assert "already outdated" in capsys.readouterr().out


def test_unfiltered_and_connectivity(fafbseg_home, v1_rows, release_rows):
    syn = flywire.get_synapses([AD], materialization=4, filtered=False)
    _check(syn, _expected(v1_rows, release_rows, [AD], VERSION_TIMES[4], filtered=False))
    conn = flywire.get_connectivity([AD], materialization=4)  # uses the valid_connection_v2 view
    exp = _expected(v1_rows, release_rows, [AD], VERSION_TIMES[4])
    weights = exp.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    got = conn.set_index(["pre", "post"])["weight"]
    assert got.sort_index().to_dict() == weights.sort_index().to_dict()


def test_production_dataset_falls_back_to_live(fafbseg_home, v1_rows, release_rows, capsys):
    # BC1/BC2 exist only after the newest materialization: 'auto' -> 'live' on a non-public dataset
    syn = flywire.get_synapses([BC1], materialization="auto", filtered=False, dataset="production")
    assert "Using live materialization" in capsys.readouterr().out
    _check(syn, _expected(v1_rows, release_rows, [BC1], None, filtered=False))
    with pytest.raises(ValueError, match="not possible to fetch filtered synapses in live"):
        flywire.get_synapses([BC1], materialization="auto", dataset="production")


def test_fresh_process_with_only_home(emulator, tmp_path, v1_rows, release_rows):
    """No in-process patching at all: a new interpreter whose HOME points at the written files."""
    home = tmp_path / "home"
    emulator.write_client_home(home)
    code = ("import json; from fafbseg import flywire;"
            f"s = flywire.get_synapses([{AD}], materialization='auto', progress=False);"
            "print(json.dumps({'v': int(s.attrs['materialization']), 'ids': sorted(map(int, s['id']))}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180,
                         env=client_environment(home), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["v"] == 4
    assert result["ids"] == _expected(v1_rows, release_rows, [AD], VERSION_TIMES[4]).index.tolist()
    assert emulator.token not in out.stdout + out.stderr
