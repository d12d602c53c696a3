"""The graphene mesh source in the sharded Draco layout (FlyWire/MICrONS shape), read by unmodified
cloud-volume's ``GrapheneShardedMeshSource`` and by connectomix's CAVE ``get_meshes``.

The emulator serves the embedded sample's five real meshes (navis ``example_neurons(kind="mesh")``, nm)
as Draco fragments in "initial" shard files behind the byte-offset manifest
(``CaveEmulator(..., mesh_layout="sharded-draco")``). Expected values are navis's meshes, never the code under
test. Draco quantises positions to ``DRACO_QUANTIZATION_BITS`` bits of each mesh's largest extent, so a
vertex is read back within ``0.5 * extent / (2 ** bits - 1)`` nm per axis (plus float32 rounding; the
test allows ``0.5 * step + 1e-6 * |coordinate| + 1e-3`` nm). cloud-volume's sharded reader always passes
the mesh through ``deduplicate_vertices``, which re-orders vertices, so meshes are compared as triangles:
every read vertex is matched to its nearest original vertex within the bound, and the matched triangles
must be the original triangles exactly (same number, same set).
"""

from __future__ import annotations

import numpy as np
import pytest
import requests
from scipy.spatial import cKDTree

import connectomix
from connectomix import errors
from connectomix_cave.emulator import CaveEmulator
from connectomix_cave.emulator.meshes import DRACO_QUANTIZATION_BITS
from connectomix_release.plugin import SAMPLE_DIR

FIVE = [722817260, 754534424, 754538881, 1734350788, 1734350908]  # navis.example_neurons(kind="mesh")
TOKEN = "c0ffee0123456789abcdef"  # hexadecimal: cloud-volume's graphene client refuses other tokens


@pytest.fixture(scope="module")
def emu():
    with CaveEmulator(SAMPLE_DIR, token=TOKEN, mesh_layout="sharded-draco") as emu:
        yield emu


def test_an_unknown_mesh_layout_is_refused():
    with pytest.raises(errors.InvalidArgumentError, match="sharded-draco"):
        CaveEmulator(SAMPLE_DIR, token=TOKEN, mesh_layout="sharded")


def _assert_same_mesh(vertices, faces, expected_vertices, expected_faces):
    vertices = np.asarray(vertices, dtype="float64")
    ev = np.asarray(expected_vertices, dtype="float64")
    extent = float((ev.max(axis=0) - ev.min(axis=0)).max())
    bound = 0.5 * extent / (2 ** DRACO_QUANTIZATION_BITS - 1) + 1e-6 * float(np.abs(ev).max()) + 1e-3
    distance, nearest = cKDTree(ev).query(vertices)
    assert distance.max() <= bound, (distance.max(), bound)
    got = np.sort(nearest[np.asarray(faces, dtype="int64")], axis=1)
    want = np.sort(np.asarray(expected_faces, dtype="int64"), axis=1)
    assert len(got) == len(want)
    assert {tuple(t) for t in got.tolist()} == {tuple(t) for t in want.tolist()}


def test_unmodified_cloudvolume_reads_the_sharded_draco_source(emu, navis_meshes):
    from cloudvolume import CloudVolume

    cv = CloudVolume(f"graphene://{emu.url}/segmentation/table/{emu.app.pcg_table}", secrets=TOKEN,
                     use_https=True, progress=False)
    assert type(cv.mesh).__name__ == "GrapheneShardedMeshSource"
    for root in FIVE:
        mesh = cv.mesh.get(root, deduplicate_chunk_boundaries=False)[root]
        _assert_same_mesh(mesh.vertices, mesh.faces, *navis_meshes[root])
    # the byte-offset manifest as cloud-volume asks for it (fetch_manifest_remote: return_seg_ids=1)
    url = f"{emu.url}/meshing/api/v1/table/{emu.app.pcg_table}/manifest/{FIVE[0]}:0"
    got = requests.get(url, params={"verify": "True", "return_seg_ids": 1},
                       headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert got["seg_ids"] == [FIVE[0]]
    assert len(got["fragments"]) == 1 and got["fragments"][0].startswith("~2/0-")


def test_connectomix_reads_the_sharded_draco_source(emu, navis_meshes):
    with connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, materialization=1,
                          cache=False) as cave:
        got = cave.get_meshes(FIVE)
    assert [int(n.id) for n in got] == FIVE
    for n in got:
        assert str(n.units) == "1 nanometer"
        _assert_same_mesh(n.vertices, n.faces, *navis_meshes[int(n.id)])
