"""neuPrint meshes in the layout the real FlyEM layers have: multi-resolution, sharded, Draco (issue 14).

Playing hemibrain, the emulator serves the sample's meshes as hemibrain's public segmentation does
(catalogue ``morphology.mesh_format``: ``neuroglancer_multilod_draco``, sharded), by byte range as a bucket.
Checked: unmodified cloud-volume and navis' ``fetch_mesh_neuron`` (its default ``lod=1``) read it;
connectomix's meshes equal the release's at the finest level within the quantisation bound (computed here
from each mesh's extent: half a step of ``extent / (2**16 - 1)`` voxels, doubled per level) with the same
triangles; a damaged shard is an error naming the source, never a partial mesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

neuprint = pytest.importorskip("neuprint")
navis = pytest.importorskip("navis")
cloudvolume = pytest.importorskip("cloudvolume")

import connectomix  # noqa: E402
from connectomix.errors import ConnectomixError  # noqa: E402
from connectomix_neuprint.emulator import morphology as emu_morphology  # noqa: E402
from connectomix_neuprint.emulator.testing import emulator_fixture, neuprint_client  # noqa: E402
from connectomix_release.backend import ReleaseBackend  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "connectomix_release" / "data" / "sample"
DATASET = "hemibrain:v1.2.1"
MESH_IDS = [1734350788, 1734350908, 722817260, 754534424, 754538881]
VOXEL = np.array([8.0, 8.0, 8.0])  # the sample's :Meta.voxelSize

emu = emulator_fixture(SAMPLE, scope="module", dataset=DATASET)  # no mesh_format: hemibrain's own layout


@pytest.fixture(scope="module", autouse=True)
def trust_emulator(emu):
    """cloud-volume (inside navis and connectomix) trusts the emulator's CA as requests does: $REQUESTS_CA_BUNDLE."""
    with emu.trusted():
        yield


@pytest.fixture(scope="module")
def release_meshes():
    b = ReleaseBackend(SAMPLE)
    try:
        return {int(n.id): (np.asarray(n.vertices, dtype="float64"), np.asarray(n.faces, dtype="int64"))
                for n in b.get_meshes(np.asarray(MESH_IDS, dtype="int64"))}
    finally:
        b.close()


@pytest.fixture(scope="module")
def dataset(emu):
    host = emu.url.split("://", 1)[1]
    ds = connectomix.open(f"neuprint://{host}/{DATASET}", token=emu.token.reveal(), verify=str(emu.cert_path),
                          catalogue="none", cache=False)
    yield ds
    ds.close()


def tolerance(vertices_nm, lod):
    stored = vertices_nm / VOXEL
    chunk = np.maximum(np.ceil(stored.max(axis=0)) - np.floor(stored.min(axis=0)), 1)
    return 0.5 * chunk * 2 ** lod / (2 ** 16 - 1) * VOXEL + 0.05


def test_the_layer_has_hemibrains_shape(emu):
    assert emu_morphology.profile_mesh_format(DATASET) == "multires-sharded"
    cv = cloudvolume.CloudVolume(emu.segmentation_source(), use_https=True, progress=False)
    assert cv.mesh.meta.info["@type"] == "neuroglancer_multilod_draco"
    assert cv.mesh.meta.info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
    assert type(cv.mesh).__name__ == "ShardedMultiLevelPrecomputedMeshSource"


def test_connectomix_meshes_equal_the_release_within_quantisation(dataset, release_meshes):
    got = dataset.get_meshes(MESH_IDS)
    assert sorted(int(n.id) for n in got) == sorted(MESH_IDS)
    for n in got:
        vertices, faces = release_meshes[int(n.id)]
        assert n.lod == 0 and str(n.units) == "1 nanometer"
        assert n.vertices.shape == vertices.shape and np.array_equal(np.asarray(n.faces), faces)
        assert (np.abs(n.vertices - vertices) <= tolerance(vertices, 0)).all()
        assert np.abs(n.vertices - vertices).max() > 0  # really read from the quantised layer


def test_unmodified_cloudvolume_and_navis_read_it(emu, release_meshes):
    import navis.interfaces.neuprint as neu

    cv = cloudvolume.CloudVolume(emu.segmentation_source(), use_https=True, progress=False)
    for segid, mesh in cv.mesh.get(MESH_IDS, lod=0).items():
        vertices, faces = release_meshes[segid]
        assert np.array_equal(np.asarray(mesh.faces), faces)
        assert (np.abs(mesh.vertices - vertices) <= tolerance(vertices, 0)).all()
    client = neuprint_client(emu, progress=False)
    got = neu.fetch_mesh_neuron(MESH_IDS[:2], client=client, parallel=False)  # navis' default: lod=1
    assert sorted(int(n.id) for n in got) == sorted(MESH_IDS[:2])
    for n in got:
        vertices, faces = release_meshes[int(n.id)]
        assert n.lod == 1 and np.array_equal(np.asarray(n.faces), faces)
        nm = np.asarray(n.vertices, dtype="float64") * VOXEL  # navis divides by :Meta.voxelSize
        assert (np.abs(nm - vertices) <= tolerance(vertices, 1)).all()


def test_a_damaged_shard_is_an_error_naming_the_source(emu, dataset):
    layer = next(iter(emu._layers.values()))
    tree = layer.tree
    (shard,) = [name for name in tree if name.endswith(".shard")]
    original = tree[shard]
    try:
        tree[shard] = original[:len(original) // 2]
        with pytest.raises(ConnectomixError, match="127.0.0.1"):
            dataset.get_meshes(MESH_IDS)
    finally:
        tree[shard] = original
    assert len(dataset.get_meshes(MESH_IDS[:1])) == 1


def test_mesh_lod_option_chooses_the_level(emu, release_meshes, tmp_path):
    from connectomix.errors import InvalidArgumentError

    host = emu.url.split("://", 1)[1]
    uri = f"neuprint://{host}/{DATASET}"
    sent = []
    for cache in (False, str(tmp_path / "cache"), str(tmp_path / "cache")):  # the third read is from the disk cache
        before = emu.stats.requests("GET /precomputed")
        with connectomix.open(uri, token=emu.token.reveal(), verify=str(emu.cert_path), catalogue="none",
                              mesh_lod=1, cache=cache) as ds:
            got = ds.get_meshes(MESH_IDS[:2])
        sent.append(emu.stats.requests("GET /precomputed") - before)
        for n in got:
            vertices, faces = release_meshes[int(n.id)]
            assert n.lod == 1 and np.array_equal(np.asarray(n.faces), faces)
            assert (np.abs(n.vertices - vertices) <= tolerance(vertices, 1)).all()
            assert np.abs(n.vertices - vertices).max() > tolerance(vertices, 0).max()  # coarser than level 0
    assert sent[0] > 0 and sent[2] == 0  # the cached meshes kept their level
    for bad in (-1, "one", 1.5):
        with pytest.raises(InvalidArgumentError, match="mesh_lod"):
            connectomix.open(uri, token=emu.token.reveal(), verify=str(emu.cert_path), catalogue="none",
                             mesh_lod=bad)
    with connectomix.open(uri, token=emu.token.reveal(), verify=str(emu.cert_path), catalogue="none",
                          mesh_lod=2, cache=False) as ds, pytest.raises(InvalidArgumentError, match=r"0\.\.1"):
        ds.get_meshes(MESH_IDS[:1])
