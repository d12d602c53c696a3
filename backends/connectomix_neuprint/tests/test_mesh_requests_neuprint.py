"""neuPrint get_meshes sends the physical minimum of requests to the mesh layer (issue 14 leftover).

The layer's four description files (``info``, ``provenance``, ``mesh/info``, ``skeletons/info``) are read
once per backend (one shared :class:`~connectomix.precomputed.PrecomputedSource`), the shard and minishard
indices of a sharded layer once, and then one manifest and one fragment read per neuron -- counted by the
emulator over loopback, for each layout the emulator serves (legacy: the optic lobe's; multi-resolution
sharded: hemibrain's, MANC's, the male CNS's). Before, each of up to four concurrent cloud-volume reads opened
the layer again (four requests each), and a sharded layer's manifests were read twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cloudvolume")

import connectomix  # noqa: E402
from connectomix_neuprint.emulator.testing import running_emulator  # noqa: E402
from connectomix_release.backend import ReleaseBackend  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "connectomix_release" / "data" / "sample"
DATASET = "hemibrain:v1.2.1"
IDS = [1734350788, 1734350908, 722817260, 754534424, 754538881]  # the sample's five meshes
LAYER_FILES = 4  # info, provenance, mesh/info, skeletons/info
#: shard index + minishard index of the sample's one shard (five meshes hash to one shard and minishard)
SHARD_INDEX_READS = {"legacy": 0, "multires": 0, "multires-sharded": 2}


def _layer_requests(emu) -> int:
    return emu.stats.snapshot()["endpoints"].get("GET /precomputed", {}).get("requests", 0)


@pytest.fixture(scope="module")
def release_meshes():
    rb = ReleaseBackend(SAMPLE)
    try:
        return {int(n.id): n for n in rb.get_meshes(np.asarray(IDS, dtype="int64"))}
    finally:
        rb.close()


@pytest.mark.parametrize("layout", ["legacy", "multires-sharded", "multires"])
def test_meshes_send_the_physical_minimum(layout, release_meshes):
    with running_emulator(SAMPLE, dataset=DATASET, mesh_format=layout) as emu, emu.trusted():
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/{DATASET}", token=emu.token, verify=str(emu.cert_path),
                              catalogue="none", cache=False) as ds:
            emu.stats.reset()
            first = ds.get_meshes(IDS)
            assert _layer_requests(emu) == LAYER_FILES + SHARD_INDEX_READS[layout] + 2 * len(IDS)
            emu.stats.reset()
            again = ds.get_meshes(IDS[::-1])
            assert _layer_requests(emu) == 2 * len(IDS)  # the layer and its indices are not read again
            assert emu.stats.snapshot()["requests"] == 2 * len(IDS)  # nor anything else
    assert sorted(int(n.id) for n in first) == sorted(IDS) == sorted(int(n.id) for n in again)
    for n in first:
        want = release_meshes[int(n.id)]
        assert len(n.faces) == len(want.faces) and np.array_equal(n.faces, want.faces)
        if layout == "legacy":  # float32 nm fragments: vertex for vertex
            assert np.array_equal(np.asarray(n.vertices, "float32"), np.asarray(want.vertices, "float32"))
        else:  # Draco, 16 bits of each mesh's extent: within half a quantisation step (plus float32 rounding)
            extent = np.ptp(np.asarray(want.vertices), axis=0).max()
            assert np.abs(np.asarray(n.vertices) - np.asarray(want.vertices)).max() <= extent / (2 ** 16 - 1) + 1
