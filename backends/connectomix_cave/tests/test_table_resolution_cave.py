"""Every CAVE table and view of the emulator has its own voxel resolution, as on MaterializationEngine.

FlyWire's raw synapse table ``synapses_nt_v1`` is in 4 x 4 x 40 nm voxels (natverse/fafbseg#254)
while its filtered view ``valid_synapses_nt_np_v6`` answers nm (seung-lab/FlyConnectome
``CAVE tutorial.ipynb``@9b1790b cell 49: ``[366592, 246144, 74360]`` without ``desired_resolution``).
The emulator used to serve every table of a datastack at one resolution, so the view came back in
voxels. Checked here over loopback HTTP with the unmodified caveclient (metadata, the
``dataframe_resolution`` header as caveclient reads it, ``desired_resolution``) and through
connectomix, whose nm must be the release's from the view, the raw table and live queries alike.
Expected positions come from the release's parquet file (nm).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.errors import DataFormatError
from connectomix.testing.toy import make_toy_release
from connectomix_cave.emulator import CaveEmulator, profile
from connectomix_cave.emulator.tables import TableOptions
from connectomix_cave.emulator.testing import make_client

TOKEN = "table-resolution-token"
PUBLIC, PRODUCTION = "flywire_fafb_public", "flywire_fafb_production"
TABLE, VIEW = "synapses_nt_v1", "valid_synapses_nt_np_v6"
FAFB = np.array([4.0, 4.0, 40.0])
SIDES = ("pre", "post")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("tableres") / "toy")  # 8 nm voxels: neither 4x4x40 nor nm


@pytest.fixture(scope="module")
def synapses(release) -> pd.DataFrame:
    return pd.read_parquet(release / "synapses.parquet").set_index("synapse_id")


@pytest.fixture(scope="module")
def emulators(release):
    started = {stack: CaveEmulator(release, token=TOKEN, **profile(stack).emulator_kwargs()).start()
               for stack in (PUBLIC, PRODUCTION)}
    yield started
    for emu in started.values():
        emu.stop()


def _positions(df: pd.DataFrame, side: str) -> np.ndarray:
    return df[[f"{side}_pt_position_{a}" for a in "xyz"]].to_numpy(float)


def _release_nm(synapses: pd.DataFrame, ids, side: str) -> np.ndarray:
    return synapses.loc[list(ids), [f"{side}_{a}" for a in "xyz"]].to_numpy(float)


def test_metadata_reports_each_sources_own_resolution(emulators):
    mat = make_client(emulators[PUBLIC], PUBLIC).materialize
    assert mat.get_table_metadata(TABLE, version=1)["voxel_resolution"] == [4.0, 4.0, 40.0]
    view = mat.get_view_metadata(VIEW, materialization_version=1)  # caveclient leaves a view's x, y, z apart
    assert [view[f"voxel_resolution_{a}"] for a in "xyz"] == [1.0, 1.0, 1.0]
    assert mat.get_table_metadata("proofread_neurons", version=1)["voxel_resolution"] == [4.0, 4.0, 40.0]
    listed = {m["table_name"]: m["voxel_resolution"] for m in mat.get_tables_metadata(version=1)}
    assert listed[TABLE] == [4.0, 4.0, 40.0] and VIEW not in listed


def test_answers_carry_their_sources_resolution_and_desired_resolution_converts_from_it(emulators, synapses):
    mat = make_client(emulators[PUBLIC], PUBLIC).materialize
    where = {"pre_pt_root_id": [101, 102]}
    raw = mat.query_table(TABLE, filter_in_dict=where, materialization_version=1, split_positions=True)
    view = mat.query_view(VIEW, filter_in_dict=where, materialization_version=1, split_positions=True)
    assert raw.attrs["dataframe_resolution"] == [4.0, 4.0, 40.0]
    assert view.attrs["dataframe_resolution"] == [1.0, 1.0, 1.0]
    assert len(view) > 10 and set(view["id"]) <= set(raw["id"])
    for side in SIDES:  # stored as round(nm / resolution)
        np.testing.assert_allclose(_positions(raw, side) * FAFB, _release_nm(synapses, raw["id"], side),
                                   atol=20.0 + 1e-9)
        assert (np.abs(_positions(raw, side) * FAFB - _release_nm(synapses, raw["id"], side)) <= FAFB / 2).all()
        np.testing.assert_allclose(_positions(view, side), _release_nm(synapses, view["id"], side), atol=0.5)
    raw_nm = mat.query_table(TABLE, filter_in_dict=where, materialization_version=1, split_positions=True,
                             desired_resolution=[1, 1, 1])
    view_vx = mat.query_view(VIEW, filter_in_dict=where, materialization_version=1, split_positions=True,
                             desired_resolution=[4, 4, 40])
    assert raw_nm.attrs["dataframe_resolution"] == [1.0, 1.0, 1.0]
    assert view_vx.attrs["dataframe_resolution"] == [4.0, 4.0, 40.0]
    np.testing.assert_allclose(_positions(raw_nm, "pre"), _positions(raw, "pre") * FAFB)
    np.testing.assert_allclose(_positions(view_vx, "pre"), _positions(view, "pre") / FAFB)


@pytest.mark.parametrize("stack, materialization, filtered", [
    (PUBLIC, 1, True), (PUBLIC, 1, False), (PRODUCTION, "live", False)],
    ids=["view", "raw-table", "live-raw-table"])
def test_connectomix_gives_the_releases_nm_from_every_source(emulators, synapses, stack, materialization, filtered):
    emu = emulators[stack]
    edited = {i for op in emu.dataset.script.operations for i in op.inputs if isinstance(i, int)}
    ids = [int(b) for b in synapses["pre"].value_counts().index if b not in edited and b != 0][:2]  # live too
    with connectomix.open(f"cave://{stack}", server=emu.url, token=TOKEN, cache=False,
                          materialization=materialization, filtered=filtered) as ds:
        got = ds.get_synapses(ids, post=False).set_index("synapse_id").sort_index()
    assert len(got) > 10
    tolerance = (np.ones(3) if filtered else FAFB) / 2 + 1e-9  # half a voxel of the source read
    for side in SIDES:
        diff = np.abs(got[[f"{side}_{a}" for a in "xyz"]].to_numpy(float) - _release_nm(synapses, got.index, side))
        assert (diff <= tolerance).all(), (side, diff.max(axis=0))


def test_other_profiles_keep_the_catalogue_resolutions(release):
    for stack, table, expected in (("minnie65_public", "synapses_pni_2", [4.0, 4.0, 40.0]),
                                   ("minnie65_public", "nucleus_detection_v0", [4.0, 4.0, 40.0]),
                                   ("brain_and_nerve_cord_public", "synapses_v2", [1.0, 1.0, 1.0])):
        with CaveEmulator(release, token=TOKEN, **profile(stack).emulator_kwargs()) as emu:
            meta = make_client(emu, stack).materialize.get_table_metadata(table, version=1)
        assert meta["voxel_resolution"] == expected, (stack, table)


def test_banc_representative_points_report_a_placeholder_resolution_over_voxels(release, synapses):
    """BANC's cell_representative_point: metadata 1, 1, 1, positions in 4 x 4 x 45 voxels (catalogue banc.toml)."""
    stack = "brain_and_nerve_cord_public"
    with CaveEmulator(release, token=TOKEN, **profile(stack).emulator_kwargs()) as emu:
        mat = make_client(emu, stack).materialize
        meta = mat.get_table_metadata("cell_representative_point", version=1)
        points = mat.query_table("cell_representative_point", materialization_version=1, split_positions=True)
    assert meta["voxel_resolution"] == [1.0, 1.0, 1.0] and points.attrs["dataframe_resolution"] == [1.0, 1.0, 1.0]
    banc = np.array([4.0, 4.0, 45.0])
    assert len(points) > 5
    for _, row in points.iterrows():  # each point is one of its neuron's synapse sites, in 4 x 4 x 45 voxels
        body = int(row["pt_root_id"])
        sites = np.concatenate([synapses.loc[synapses["pre"] == body, ["pre_x", "pre_y", "pre_z"]].to_numpy(float),
                                synapses.loc[synapses["post"] == body, ["post_x", "post_y", "post_z"]].to_numpy(float)])
        nm = np.array([row[f"pt_position_{a}"] for a in "xyz"], dtype=float) * banc
        assert (np.abs(sites - nm) <= banc / 2 + 1e-9).all(axis=1).any(), body


@pytest.mark.parametrize("options, match", [
    (TableOptions(table_resolutions=(("no_such_table", (4, 4, 40)),)), "no_such_table"),
    (TableOptions(view_resolution=(4, 0, 40)), "view_resolution"),
    (TableOptions(table_resolutions=((TABLE, (4, 4)),)), TABLE),
    (TableOptions(reported_resolutions=(("nope", (1, 1, 1)),)), "nope")])
def test_bad_resolution_options_are_refused(release, options, match):
    with pytest.raises(DataFormatError, match=match):
        CaveEmulator(release, token=TOKEN, options=options).start()
