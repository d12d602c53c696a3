"""FlyWire's filtered synapse view answers in nm; its raw table in 4 x 4 x 40 nm voxels.

seung-lab/FlyConnectome ``CAVE tutorial.ipynb`` (9b1790b, cell 49) shows
``query_view('valid_synapses_nt_np_v6')`` answering positions such as ``[366592, 246144, 74360]``
without ``desired_resolution``: every z a multiple of 40 and x beyond FAFB's extent in 4 nm voxels,
so nm (fafbseg's ``get_synapses`` docstring shows the same scale). The raw table ``synapses_nt_v1``
is in 4 x 4 x 40 voxels (natverse/fafbseg#254). The catalogue used to give one unit, ``voxel``, for
both, so connectomix refused a view whose metadata says 1, 1, 1. Now each source is converted with
its own metadata, whichever it is; the expected positions are the release's nm, read here from its
parquet file.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix.testing.toy import make_toy_release
from connectomix_cave.emulator import CaveEmulator, profile
from connectomix_cave.emulator.tables import TableOptions
from connectomix_cave.settings import settings_for

TOKEN = "flywire-view-units-token"
STACK = "flywire_fafb_public"
COLS = ["synapse_id", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("fwunits") / "toy")


def test_flywire_settings_do_not_force_one_unit_on_table_and_view():
    assert settings_for(STACK, {}).synapse_unit is None
    from connectomix import catalogue

    sources = " ".join(catalogue.get("flywire").sources_of("synapses.unit"))
    assert "FlyConnectome:CAVE tutorial.ipynb" in sources and "fafbseg/pull/254" in sources


def _release_rows(release, synapse_ids) -> pd.DataFrame:
    syn = pd.read_parquet(release / "synapses.parquet")
    return syn[syn["synapse_id"].isin(synapse_ids)][COLS].sort_values("synapse_id").reset_index(drop=True)


@pytest.mark.parametrize("resolution", [(1.0, 1.0, 1.0), None], ids=["view-in-nm", "voxels"])
def test_flywire_view_positions_are_nm_whatever_its_metadata_says(release, resolution):
    """The FlyWire-shaped emulator serving its tables in nm (as the real view answers) or in voxels."""
    kwargs = profile(STACK).emulator_kwargs()
    kwargs["options"] = TableOptions(voxel_resolution=resolution, view_resolution=resolution)  # None: voxels
    with CaveEmulator(release, token=TOKEN, **kwargs) as emu:
        with connectomix.open(f"cave://{STACK}", server=emu.url, token=TOKEN, materialization=1,
                              cache=False) as ds:  # the filtered view, FlyWire's default source
            got = ds.get_synapses([101, 102], post=False)
    got = got[COLS].astype({"synapse_id": "int64"}).sort_values("synapse_id").reset_index(drop=True)
    want = _release_rows(release, got["synapse_id"])
    assert len(got) > 10 and got["synapse_id"].tolist() == want["synapse_id"].tolist()
    # the emulator stores round(nm / voxel size): positions come back within half a voxel
    tolerance = np.array(resolution or (4.0, 4.0, 40.0)) / 2 + 1e-9
    for side in ("pre", "post"):
        diff = np.abs(got[[f"{side}_x", f"{side}_y", f"{side}_z"]].to_numpy(float)
                      - want[[f"{side}_x", f"{side}_y", f"{side}_z"]].to_numpy(float))
        assert (diff <= tolerance).all(), side
