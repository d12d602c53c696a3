"""Issue 14 items 2 and 4 on CAVE: meshes served by the emulator as the datastacks publish them, read by
connectomix, by unmodified cloud-volume and by unmodified fafbseg.

The emulator serves the embedded sample (five real hemibrain DA1 lPN meshes, navis's own
``example_neurons(kind="mesh")`` in nm) through PyChunkedGraph's meshing manifest and the chunkedgraph
info's ``data_dir``, and as FlyWire-style flat segmentations (``flywire_v141_m{version}``). Expected values
come from navis's meshes (8 nm voxels -> nm) and from the release backend, never from the code under
test. An explicit SYNTHETIC edit script merges two of the bodies and splits a third: the merged root's
mesh is both bodies' triangles, the split halves have none.
"""

from __future__ import annotations

import warnings

import navis
import numpy as np
import pytest

import connectomix
from connectomix import errors
from connectomix_cave.emulator import CaveEmulator, use_client_home
from connectomix_release.plugin import SAMPLE_DIR

FIVE = [722817260, 754534424, 754538881, 1734350788, 1734350908]  # navis.example_neurons(kind="mesh")
TWO = [1765040289, 5813039315]  # sample DA1 lPNs without morphology
TOKEN = "c0ffee0123456789abcdef"  # hexadecimal: cloud-volume's graphene client refuses other tokens
EDITS = {
    "format": "connectomix-cave-edits", "synthetic": True,
    "versions": [{"version": 1, "time_stamp": "2024-01-01T00:00:00"},
                 {"version": 2, "time_stamp": "2024-02-01T00:00:00"}],
    "operations": [
        {"type": "merge", "timestamp": "2024-01-10T00:00:00", "roots": [FIVE[0], FIVE[1]], "label": "M"},
        {"type": "split", "timestamp": "2024-01-20T00:00:00", "root": FIVE[2], "labels": ["S_kept", "S_moved"]},
    ],
}


@pytest.fixture(scope="module")
def release_meshes():
    with connectomix.open("sample", cache=False) as ds:
        return {int(m.id): m for m in ds.get_meshes(FIVE)}


@pytest.fixture(scope="module")
def emu():
    with CaveEmulator(SAMPLE_DIR, token=TOKEN, edits=EDITS) as emu:
        yield emu


def _open(emu, **options):
    options.setdefault("materialization", 1)
    options.setdefault("cache", False)
    return connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, **options)


def _same(got, vertices, faces):
    np.testing.assert_array_equal(np.asarray(got.vertices), vertices)
    np.testing.assert_array_equal(np.asarray(got.faces), faces)


def _triangles(vertices, faces) -> set:
    """A mesh as a set of triangles of coordinates: independent of vertex order and fragment order."""
    v = np.asarray(vertices, dtype="float32")
    return {tuple(map(tuple, v[f])) for f in np.asarray(faces)}


def _graphene(emu) -> str:
    return f"graphene://{emu.url}/segmentation/table/{emu.app.pcg_table}"


# -- connectomix ---------------------------------------------------------------------------------------------

def test_cave_meshes_equal_the_release_vertex_for_vertex(emu, navis_meshes, release_meshes):
    with _open(emu) as cave:
        got = cave.get_meshes(FIVE)
    assert [int(n.id) for n in got] == FIVE
    for n in got:
        assert isinstance(n, navis.MeshNeuron) and str(n.units) == "1 nanometer"
        assert n.materialization == 1
        _same(n, *navis_meshes[int(n.id)])
        _same(n, np.asarray(release_meshes[int(n.id)].vertices, dtype="float32"), release_meshes[int(n.id)].faces)


def test_neurons_without_a_mesh_follow_missing(emu):
    with _open(emu) as cave:
        with pytest.raises(errors.IdsNotFoundError) as info:
            cave.get_meshes([FIVE[0], *TWO])
        assert sorted(info.value.ids) == TWO
        with pytest.warns(errors.MissingDataWarning, match=str(TWO[0])):
            got = cave.get_meshes([TWO[0], FIVE[3]], missing="warn")
        assert [int(n.id) for n in got] == [FIVE[3]]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [int(n.id) for n in cave.get_meshes(TWO, missing="skip")] == []


def test_edited_roots_merged_mesh_is_both_bodies_and_split_halves_have_none(emu, navis_meshes):
    merged, kept, moved = emu.labels["M"], emu.labels["S_kept"], emu.labels["S_moved"]
    with _open(emu, materialization=2) as cave:
        (mesh,) = cave.get_meshes([merged])
        assert mesh.materialization == 2 and int(mesh.id) == merged
        expected = _triangles(*navis_meshes[FIVE[0]]) | _triangles(*navis_meshes[FIVE[1]])
        assert len(mesh.faces) == len(navis_meshes[FIVE[0]][1]) + len(navis_meshes[FIVE[1]][1])
        assert _triangles(mesh.vertices, mesh.faces) == expected
        with pytest.raises(errors.IdsNotFoundError) as info:
            cave.get_meshes([kept, moved, FIVE[3]])
        assert sorted(info.value.ids) == sorted([kept, moved])
        with pytest.raises(errors.ConnectomixError, match=str(FIVE[0])):
            cave.get_meshes([FIVE[0]])  # retired by the merge: not a root at materialization 2


def test_immutable_versions_are_cached_on_disk(emu, navis_meshes, tmp_path):
    with _open(emu, cache=str(tmp_path / "cache")) as cave:
        cave.get_meshes(FIVE[:2])
    emu.stats.reset()
    with _open(emu, cache=str(tmp_path / "cache")) as cave:
        got = cave.get_meshes(FIVE[:2])
    assert emu.stats.requests() == 0, emu.stats.snapshot()  # a new Dataset on a warm cache sends nothing
    for n in got:
        _same(n, *navis_meshes[int(n.id)])


# -- faults: an error naming what failed, never a partial mesh or list --------------------------------------------

def test_transient_faults_are_retried(emu, navis_meshes):
    with _open(emu) as cave:
        emu.faults.fail_next(2, status=503, endpoint="mesh_data")
        emu.faults.reset_next(1, endpoint="mesh_manifest")
        got = cave.get_meshes(FIVE[3:])
    emu.faults.clear()
    for n in got:
        _same(n, *navis_meshes[int(n.id)])


def test_a_server_that_keeps_failing_raises(emu):
    with _open(emu) as cave:
        emu.faults.fail_next(50, status=503, endpoint="mesh_manifest")
        try:
            with pytest.raises(errors.ServerError, match="503"):
                cave.get_meshes(FIVE[:1])
        finally:
            emu.faults.clear()


@pytest.fixture()
def graphene_tree(emu):
    """The emulator's fragment files (restored after the test)."""
    tree = emu.app.meshes._graphene()
    saved = dict(tree)
    yield tree
    tree.clear()
    tree.update(saved)


def test_a_truncated_fragment_is_a_format_error(emu, graphene_tree):
    name = f"mesh/{FIVE[4]}:0:0"
    graphene_tree[name] = graphene_tree[name][:-6]
    with _open(emu) as cave:
        with pytest.raises(errors.DataFormatError, match=str(FIVE[4])):
            cave.get_meshes(FIVE[3:])


def test_a_listed_fragment_that_is_gone_is_an_error_not_half_a_mesh(emu, graphene_tree):
    del graphene_tree[f"mesh/{FIVE[1]}:0:0"]  # one of the merged root's two fragments
    with _open(emu, materialization=2) as cave:
        with pytest.raises(errors.ServerError, match=f"{FIVE[1]}:0:0"):
            cave.get_meshes([emu.labels["M"]])


# -- the unmodified peers -----------------------------------------------------------------------------------

def test_unmodified_cloudvolume_reads_the_graphene_source(emu, navis_meshes):
    from cloudvolume import CloudVolume

    vol = CloudVolume(_graphene(emu), secrets=TOKEN, use_https=True, progress=False)
    got = vol.mesh.get(FIVE, deduplicate_chunk_boundaries=False)
    for i in FIVE:
        _same(got[i], *navis_meshes[i])


def _quantisation(vertices_nm, resolution, lod=0):
    """Half a 16-bit quantisation step of the mesh's extent in voxels (per axis, nm), plus float32 rounding."""
    stored = np.asarray(vertices_nm, dtype="float64") / resolution
    chunk = np.maximum(np.ceil(stored.max(axis=0)) - np.floor(stored.min(axis=0)), 1)
    return 0.5 * chunk * 2 ** lod / (2 ** 16 - 1) * resolution + 0.05


def test_unmodified_cloudvolume_reads_the_flat_segmentation(emu, navis_meshes):
    """Multi-resolution sharded Draco, as the real flat layers: the same triangles, vertices within quantisation."""
    from cloudvolume import CloudVolume
    from scipy.spatial import cKDTree

    from connectomix.precomputed import read_meshes

    url = emu.app.meshes.flat_url(1)
    assert url == f"precomputed://{emu.url}/flywire_v141_m1"  # as fafbseg's flat_783: gs://flywire_v141_m783
    vol = CloudVolume(url, use_https=True, progress=False)
    assert vol.mesh.meta.info["@type"] == "neuroglancer_multilod_draco" and "sharding" in vol.mesh.meta.info
    resolution = np.asarray(emu.app.dataset.resolution, dtype="float64")
    got = vol.mesh.get(FIVE, lod=0)
    ours = {int(n.id): n for n in read_meshes(url, FIVE)}
    for i in FIVE:
        vertices, faces = navis_meshes[i]
        for mesh in (got[i], ours[i]):
            np.testing.assert_array_equal(np.asarray(mesh.faces), faces)
            assert (np.abs(np.asarray(mesh.vertices) - vertices) <= _quantisation(vertices, resolution)).all()
    merged = emu.labels["M"]
    at2 = CloudVolume(emu.app.meshes.flat_url(2), use_https=True, progress=False)
    mesh = at2.mesh.get([merged], lod=0)[merged]
    parts = [navis_meshes[FIVE[0]], navis_meshes[FIVE[1]]]
    assert len(mesh.faces) == sum(len(f) for _, f in parts)
    union = np.concatenate([v for v, _ in parts])
    distance, _ = cKDTree(union).query(np.asarray(mesh.vertices, dtype="float64"))
    assert distance.max() <= np.linalg.norm(_quantisation(union, resolution))
    exists = dict(zip([FIVE[0], merged], at2.mesh.exists([FIVE[0], merged])))
    assert exists[FIVE[0]] is None and exists[merged] is not None  # retired at 2: not in that version's layer


def test_unmodified_fafbseg_get_mesh_neuron(emu, navis_meshes, tmp_path):
    flywire = pytest.importorskip("fafbseg.flywire")
    emu.write_client_home(tmp_path / "home")
    with use_client_home(tmp_path / "home"):
        got = flywire.get_mesh_neuron(FIVE[:2], dataset=_graphene(emu), threads=2, progress=False)
    for n in got:
        assert str(n.units) == "1 nanometer"
        _same(n, *navis_meshes[int(n.id)])


def test_a_release_without_meshes_serves_none_and_cloudvolume_still_opens(tmp_path):
    """cloud-volume opens the graphene source whenever fafbseg maps ids: that must work without meshes."""
    from cloudvolume import CloudVolume
    from connectomix_cave.emulator.testing import write_tiny_release

    release = write_tiny_release(tmp_path / "tiny")  # no meshes.parquet
    with CaveEmulator(release, token=TOKEN) as emu:
        vol = CloudVolume(_graphene(emu), secrets=TOKEN, use_https=True, progress=False)
        root = int(emu.dataset.release.neurons["id"].iloc[0])
        assert vol.mesh.get(root, deduplicate_chunk_boundaries=False, allow_missing=True) == {}
        with _open(emu) as cave:
            with pytest.raises(errors.IdsNotFoundError) as info:
                cave.get_meshes([root])
        assert list(info.value.ids) == [root]
