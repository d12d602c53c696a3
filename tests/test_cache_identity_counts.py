"""Per-ROI counts of a CAVE server re-deployed with other data are the new data's, once ``identity_ttl`` has passed.

The CAVE backend remembers the last per-ROI counts it computed at an integer
materialization (a lookup with ROI criteria or ``counts=True`` computes them, and
the core then asks for them again). Remembered by the materialization number
alone, a Dataset open across a re-deployment kept answering the old counts --
and stored them in the result cache under the new data's identity. The same
restart harness as ``test_cache_identity_remote``, with a release whose
synapses lie in other ROIs.
"""

import os
import shutil
import time

import pandas as pd
import pytest

import connectomix

from test_cache_identity_remote import TOKEN


@pytest.fixture(scope="module")
def moved_rois_release(toy_release, tmp_path_factory):
    """The toy release with every synapse of ROI 'A' in ROI 'B' (file times kept)."""
    folder = tmp_path_factory.mktemp("moved") / "toy"
    shutil.copytree(toy_release, folder)
    for name in ("synapses", "connections"):
        path = folder / f"{name}.parquet"
        stat = path.stat()
        table = pd.read_parquet(path)
        if "roi" in table:
            table["roi"] = table["roi"].where(table["roi"] != "A", "B")
            if name == "connections":
                table = table.groupby([c for c in table.columns if c != "weight"], as_index=False, dropna=False)[
                    "weight"].sum()
            table.to_parquet(path, index=False)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return folder


def test_cave_roi_counts_after_a_restart_with_other_data(toy_release, moved_rois_release, tmp_path):
    from connectomix_cave.emulator import CaveEmulator

    def open_ds(emu, **options):
        return connectomix.open(
            f"cave://{emu.datastack}", server=emu.url, token=TOKEN, materialization=1, filtered=False,
            connection_view=None, score_column="cleft_score", neuropil_column="neuropil",
            neuron_table="cell_types", type_column="cell_type", primary_rois="A,B,C(R)", **options)

    def query(ds):
        return ds.fetch_neurons([101, 102], counts=True).roi_counts

    emu = CaveEmulator(toy_release, token=TOKEN, datastack="toy_stack").start()
    port = int(emu.url.rsplit(":", 1)[1])
    ttl = 1.0
    try:
        # open across the restart, computing the counts themselves (nothing to read from a result cache)
        eager = open_ds(emu, cache=False, identity_ttl=0)
        survivor = open_ds(emu, cache=str(tmp_path / "cache"), identity_ttl=ttl)
        old = query(eager)
        pd.testing.assert_frame_equal(query(survivor), old)
        seen = time.monotonic()
    finally:
        emu.stop()
    emu = CaveEmulator(moved_rois_release, token=TOKEN, datastack="toy_stack", port=port).start()
    try:
        with open_ds(emu, cache=False) as ds:
            new = query(ds)
        assert not new.equals(old)  # the restarted server really counts otherwise
        pd.testing.assert_frame_equal(query(eager), new)  # identity_ttl=0: at once
        time.sleep(max(0.0, ttl - (time.monotonic() - seen)) + 0.05)
        pd.testing.assert_frame_equal(query(survivor), new)  # once identity_ttl has passed
        with open_ds(emu, cache=str(tmp_path / "cache")) as ds:  # and what the survivor cached is the new data
            pd.testing.assert_frame_equal(query(ds), new)
        eager.close()
        survivor.close()
    finally:
        emu.stop()
