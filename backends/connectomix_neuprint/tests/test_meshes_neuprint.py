"""Meshes of neuPrint datasets (issue 14): the emulator's precomputed layer and the backend's get_meshes.

The emulator serves the embedded sample (the five DA1 lPN meshes navis ships, in nm) as a neuroglancer
precomputed segmentation layer and names it where neuPrint does (``/api/npexplorer/nglayers``,
``:Meta.neuroglancerMeta``). Checked here: connectomix's meshes through the emulator equal the release's
vertex for vertex and navis' own example meshes (an independent expectation); unmodified navis
(``fetch_mesh_neuron``), neuprint-python and cloud-volume find and read them; where the source comes
from and what happens when the server and the catalogue disagree; missing meshes; damaged fragments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

neuprint = pytest.importorskip("neuprint")
navis = pytest.importorskip("navis")
cloudvolume = pytest.importorskip("cloudvolume")

import connectomix  # noqa: E402
from connectomix.backend import Capability  # noqa: E402
from connectomix.errors import (  # noqa: E402
    ConnectomixError,
    IdsNotFoundError,
    MissingDataWarning,
    ServerError,
    UnsupportedOperation,
)
from connectomix_neuprint import morphology  # noqa: E402
from connectomix_neuprint.backend import NeuprintBackend  # noqa: E402
from connectomix_neuprint.emulator.testing import (  # noqa: E402
    emulator_fixture,
    neuprint_client,
    running_emulator,
    synthetic_release,
)
from connectomix_release.backend import ReleaseBackend  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "connectomix_release" / "data" / "sample"
DATASET = "hemibrain:v1.2.1"
#: The five hemibrain DA1 lPNs navis ships as meshes (navis.example_neurons(kind="mesh")).
MESH_IDS = [1734350788, 1734350908, 722817260, 754534424, 754538881]
CATALOGUE_SOURCE = "precomputed://gs://neuroglancer-janelia-flyem-hemibrain/v1.2/segmentation"

# the legacy single-resolution layout (the optic lobe's): these tests compare vertex for vertex; the
# multi-resolution sharded layout hemibrain really has is the default, tested in test_meshes_multires_neuprint.py
emu = emulator_fixture(SAMPLE, scope="module", dataset=DATASET, mesh_format="legacy")


@pytest.fixture(scope="module", autouse=True)
def trust_emulator(emu):
    """cloud-volume (inside navis and connectomix) trusts the emulator's CA as requests does: $REQUESTS_CA_BUNDLE."""
    with emu.trusted():
        yield


@pytest.fixture(autouse=True)
def no_faults(emu):
    yield
    emu.faults.clear()


@pytest.fixture(scope="module")
def host(emu):
    return emu.url.split("://", 1)[1]


def backend(emu, **options):
    host = emu.url.split("://", 1)[1]
    return NeuprintBackend(host, emu.datasets[0], token=emu.token, verify=str(emu.cert_path), **options)


@pytest.fixture(scope="module")
def nb(emu):
    b = backend(emu, catalogue="none")  # the emulator impersonates hemibrain with a loopback source
    yield b
    b.close()


@pytest.fixture(scope="module")
def release_meshes():
    b = ReleaseBackend(SAMPLE)
    try:
        return {int(n.id): n for n in b.get_meshes(np.asarray(MESH_IDS, dtype="int64"))}
    finally:
        b.close()


@pytest.fixture(scope="module")
def navis_meshes():
    """navis' own DA1 lPN meshes in nm: the expectation that does not come from connectomix."""
    out = {}
    for n in navis.example_neurons(kind="mesh"):
        scale = n.units.to("nm").magnitude
        out[int(n.id)] = (np.asarray(n.vertices, dtype="float64") * scale, np.asarray(n.faces, dtype="int64"))
    return out


@pytest.fixture(scope="module")
def other_ids():
    """Sample neurons the release has no mesh for."""
    import pandas as pd

    ids = pd.read_parquet(SAMPLE / "neurons.parquet")["id"].astype("int64")
    return sorted(set(ids) - set(MESH_IDS))[:3]


def assert_same_mesh(got, vertices, faces, *, exact=True):
    v = np.asarray(got.vertices, dtype="float64")
    assert v.shape == np.shape(vertices) and np.array_equal(np.asarray(got.faces), faces)
    if exact:
        assert np.array_equal(v, vertices)
    else:  # float32 storage of nm
        np.testing.assert_allclose(v, vertices, rtol=1e-6, atol=1e-3)


# -- the backend ---------------------------------------------------------------------------------


def test_meshes_equal_the_release_vertex_for_vertex(nb, release_meshes, navis_meshes):
    assert sorted(navis_meshes) == sorted(MESH_IDS)
    got = nb.get_meshes(np.asarray(MESH_IDS[::-1], dtype="int64"))
    assert [int(n.id) for n in got] == MESH_IDS[::-1]
    for n in got:
        assert isinstance(n, navis.MeshNeuron) and str(n.units) == "1 nanometer"
        assert n.dataset == DATASET and n.mesh_source == nb.mesh_source
        r = release_meshes[int(n.id)]
        assert_same_mesh(n, np.asarray(r.vertices, dtype="float64"), np.asarray(r.faces))
        assert_same_mesh(n, *navis_meshes[int(n.id)], exact=False)


def test_dataset_get_meshes_and_missing(host, emu, other_ids, release_meshes):
    with connectomix.open(f"neuprint://{host}/{DATASET}", token=emu.token.reveal(), verify=str(emu.cert_path),
                          catalogue="none", cache=False) as ds:
        assert Capability.MESHES in ds.capabilities
        got = ds.get_meshes(MESH_IDS[:2])
        assert [int(n.id) for n in got] == MESH_IDS[:2] and got.attrs["table"] == "meshes"
        asked = [MESH_IDS[0], *other_ids]
        with pytest.raises(IdsNotFoundError) as err:
            ds.get_meshes(asked)
        assert sorted(err.value.ids) == sorted(other_ids)
        with pytest.warns(MissingDataWarning, match=str(other_ids[0])):
            warned = ds.get_meshes(asked, missing="warn")
        assert [int(n.id) for n in warned] == [MESH_IDS[0]]
        skipped = ds.get_meshes(asked, missing="skip")
        assert [int(n.id) for n in skipped] == [MESH_IDS[0]]
        assert np.array_equal(skipped[0].vertices, release_meshes[MESH_IDS[0]].vertices)


def test_meshes_are_cached_on_disk(host, emu, tmp_path, release_meshes):
    def precomputed_requests():
        emu.wait_idle()
        return emu.stats.snapshot()["endpoints"].get("GET /precomputed", {}).get("requests", 0)

    def open_dataset():
        return connectomix.open(f"neuprint://{host}/{DATASET}", token=emu.token.reveal(),
                                verify=str(emu.cert_path), catalogue="none", cache=str(tmp_path / "cache"))

    before = precomputed_requests()
    with open_dataset() as ds:
        cold = ds.get_meshes(MESH_IDS[:3])
        assert precomputed_requests() > before
        before = precomputed_requests()
        warm = ds.get_meshes(MESH_IDS[:3][::-1])
    with open_dataset() as ds:  # a new Dataset (and backend) on the same cache directory
        again = ds.get_meshes(MESH_IDS[:3])
    assert precomputed_requests() == before  # both answered from the cache: nothing read from the layer
    assert sorted(int(n.id) for n in warm) == sorted(int(n.id) for n in again) == sorted(MESH_IDS[:3])
    for n in (*cold, *warm, *again):
        r = release_meshes[int(n.id)]
        assert np.array_equal(n.vertices, r.vertices) and np.array_equal(n.faces, r.faces)
        assert str(n.units) == "1 nanometer" and n.dataset == DATASET


def test_every_missing_id_is_named_across_concurrent_reads(nb, other_ids, monkeypatch):
    monkeypatch.setattr(morphology, "MESH_BATCH", 2)  # 4 reads, the missing ids in different ones
    asked = np.asarray([other_ids[0], *MESH_IDS[:3], *other_ids[1:]], dtype="int64")
    with pytest.raises(IdsNotFoundError) as err:
        nb.get_meshes(asked)
    assert sorted(err.value.ids) == sorted(other_ids)
    got = nb.get_meshes(np.asarray(MESH_IDS, dtype="int64"))
    assert [int(n.id) for n in got] == MESH_IDS


# -- where the source comes from ----------------------------------------------------------------------


def test_source_is_published_as_neuprint_does(emu, nb):
    client = neuprint_client(emu, progress=False)
    source = emu.segmentation_source()
    assert source.startswith(f"precomputed://{emu.url}/precomputed/")
    layers = client.meta["neuroglancerMeta"]
    assert [(x["dataType"], x["source"]) for x in layers if x["dataType"] == "segmentation"] == [
        ("segmentation", source)]
    state = client.session.get(f"{client.server}/api/npexplorer/nglayers/{client.dataset}.json").json()
    assert [(x["type"], x["name"], x["source"]["url"]) for x in state["layers"]] == [("segmentation", DATASET, source)]
    assert morphology.published_sources(nb.http, nb.run, DATASET) == {"nglayers": source, "neuroglancerMeta": source}
    assert nb.mesh_source == source
    import navis.interfaces.neuprint as neu

    assert neu.get_seg_source(client=client) == source


def test_layer_is_public_and_read_only_like_a_bucket(emu):
    import requests

    layer = emu.segmentation_source()[len("precomputed://"):]
    info = requests.get(f"{layer}/info", verify=str(emu.cert_path), timeout=10)  # no token
    assert info.status_code == 200 and info.json()["type"] == "segmentation" and info.json()["mesh"] == "mesh"
    assert requests.head(f"{layer}/mesh/{MESH_IDS[0]}:0", verify=str(emu.cert_path), timeout=10).status_code == 200
    for missing in (f"{layer}/mesh/1:0", f"{emu.url}/precomputed/other/segmentation/info"):
        assert requests.get(missing, verify=str(emu.cert_path), timeout=10).status_code == 404
    assert requests.put(f"{layer}/info", data=b"{}", verify=str(emu.cert_path), timeout=10).status_code != 200
    nglayers = f"{emu.url}/api/npexplorer/nglayers/{DATASET}.json"
    assert requests.get(nglayers, verify=str(emu.cert_path), timeout=10).status_code == 401  # as neuPrintHTTP
    emu.wait_idle()
    assert {"GET /precomputed", "HEAD /precomputed", "GET /api/npexplorer/nglayers"} <= set(
        emu.stats.snapshot()["endpoints"])


def test_only_meta_published_like_hemibrain_without_layers(emu):
    emu.publish_segmentation = ("meta",)  # the nglayers file now answers 404
    try:
        b = backend(emu, catalogue="none")
        assert morphology.published_sources(b.http, b.run, DATASET) == {"neuroglancerMeta": emu.segmentation_source()}
        assert [int(n.id) for n in b.get_meshes(np.asarray(MESH_IDS[:1]))] == MESH_IDS[:1]
        b.close()
    finally:
        emu.publish_segmentation = ("nglayers", "meta")


def test_server_and_catalogue_disagree(emu):
    b = backend(emu)  # hemibrain:v1.2.1 has a catalogue entry naming the public bucket
    with pytest.raises(ServerError) as err:
        b.get_meshes(np.asarray(MESH_IDS[:1]))
    message = str(err.value)
    assert CATALOGUE_SOURCE in message and emu.segmentation_source() in message and "mesh_source" in message
    b.close()
    b = backend(emu, mesh_source=emu.segmentation_source())  # an explicit source is read as given
    assert [int(n.id) for n in b.get_meshes(np.asarray(MESH_IDS[:1]))] == MESH_IDS[:1]
    b.close()


def test_nothing_published(tmp_path_factory):
    with running_emulator(synthetic_release(tmp_path_factory), dataset=DATASET, publish_segmentation=()) as e:
        b = backend(e, catalogue="none")
        try:
            with pytest.raises(UnsupportedOperation, match="publishes no segmentation source"):
                b.get_meshes(np.asarray(MESH_IDS[:1]))
        finally:
            b.close()
        b = backend(e)
        try:  # the catalogue's source is the fallback (not read here: no network)
            assert b.mesh_source == CATALOGUE_SOURCE
        finally:
            b.close()


def test_publish_segmentation_option_is_checked():
    from connectomix.errors import InvalidArgumentError
    from connectomix_neuprint.emulator import NeuprintEmulator
    from connectomix_neuprint.emulator.morphology import layer_path

    with pytest.raises(InvalidArgumentError, match="publish_segmentation names unknown places"):
        NeuprintEmulator(SAMPLE, publish_segmentation=("bucket",))
    assert layer_path("hemibrain:v1.2.1") == "/precomputed/hemibrain-v1.2.1/segmentation"
    assert layer_path("a b/c") == "/precomputed/a-b-c/segmentation"


def test_choose_source_rules():
    gs = "precomputed://gs://bucket/v1/segmentation"
    https = "https://storage.googleapis.com/bucket/v1/segmentation/"
    assert morphology.choose_source({"nglayers": gs, "neuroglancerMeta": https}, gs, "d", "s") == gs
    assert morphology.choose_source({}, https, "d", "s") == f"precomputed://{https.rstrip('/')}"
    piped = "gs://bucket/v1/segmentation/|neuroglancer-precomputed:"  # neuroglancer's newer source syntax
    assert morphology.choose_source({"nglayers": piped}, gs, "d", "s") == gs
    with pytest.raises(UnsupportedOperation, match="only neuroglancer precomputed"):
        morphology.choose_source({"nglayers": "gs://bucket/v1/segmentation/|zarr2:"}, None, "d", "s")
    with pytest.raises(ServerError, match="different segmentation sources"):
        morphology.choose_source({"nglayers": gs, "neuroglancerMeta": gs.replace("v1", "v2")}, None, "d", "s")
    with pytest.raises(UnsupportedOperation, match="only neuroglancer precomputed"):
        morphology.choose_source({"nglayers": "dvid://https://emdata.example/abc/segmentation"}, None, "d", "s")
    with pytest.raises(UnsupportedOperation, match="publishes no segmentation"):
        morphology.choose_source({}, None, "d", "s")


# -- the peers, unmodified -----------------------------------------------------------------------------


def test_navis_fetch_mesh_neuron_reads_the_emulator(emu, release_meshes):
    import navis.interfaces.neuprint as neu

    client = neuprint_client(emu, progress=False)
    got = neu.fetch_mesh_neuron(MESH_IDS, lod=None, client=client, parallel=False)
    assert sorted(int(n.id) for n in got) == sorted(MESH_IDS)
    voxel = np.asarray(client.meta["voxelSize"], dtype="float64")
    for n in got:  # in voxels (nm / :Meta.voxelSize), after cloud-volume's fused get merged duplicate vertices
        r = release_meshes[int(n.id)]
        fused = cloudvolume.Mesh(np.asarray(r.vertices, dtype="float32"), np.asarray(r.faces), segid=int(n.id))
        expected = navis.MeshNeuron(fused.consolidate())
        np.testing.assert_allclose(np.asarray(n.vertices, dtype="float64") * voxel, expected.vertices, rtol=1e-6)
        assert np.array_equal(np.asarray(n.faces), np.asarray(expected.faces))
    default = neu.fetch_mesh_neuron(MESH_IDS[0], client=client)  # as users call it: lod=1 (ignored: one level)
    assert np.array_equal(default[0].vertices, got.idx[MESH_IDS[0]].vertices)


def test_cloudvolume_reads_meshes_and_skeletons(emu, release_meshes):
    cv = cloudvolume.CloudVolume(emu.segmentation_source(), use_https=True, progress=False)
    meshes = cv.mesh.get(MESH_IDS, fuse=False)
    for i in MESH_IDS:
        r = release_meshes[i]
        assert np.array_equal(np.asarray(meshes[i].vertices, dtype="float64"), np.asarray(r.vertices, "float64"))
        assert np.array_equal(np.asarray(meshes[i].faces), np.asarray(r.faces))
    skeleton_ids = sorted(int(p.stem) for p in (SAMPLE / "skeletons").glob("*.swc"))[:2]
    b = ReleaseBackend(SAMPLE)
    try:
        expected = {int(n.id): n for n in b.get_skeletons(np.asarray(skeleton_ids, dtype="int64"))}
    finally:
        b.close()
    for i in skeleton_ids:
        sk = cv.skeleton.get(i)
        nodes = expected[i].nodes
        np.testing.assert_allclose(sk.vertices, nodes[["x", "y", "z"]].to_numpy(dtype="float64"), rtol=1e-6)
        np.testing.assert_allclose(sk.radius, nodes["radius"].to_numpy(dtype="float64"), rtol=1e-6)


# -- damaged fragments ------------------------------------------------------------------------------------


def fragment_path(emu, body):
    return emu.segmentation_source().split(emu.url, 1)[1] + f"/mesh/{body}:0:0"


@pytest.mark.parametrize("where", ["in-vertices", "mid-triangle"])
def test_truncated_fragment_is_an_error_not_a_smaller_mesh(emu, nb, release_meshes, where):
    body = MESH_IDS[1]
    r = release_meshes[body]
    nv, nf = len(r.vertices), len(r.faces)
    at = 4 + 12 * (nv // 2) + 5 if where == "in-vertices" else 4 + 12 * nv + 12 * (nf // 2) + 7
    # a whole-looking, shorter body (properly ended chunked transfer), on every retry
    emu.faults.cut_next(50, kind="chunked", at=at, path=fragment_path(emu, body))
    with pytest.raises(ConnectomixError):
        nb.get_meshes(np.asarray(MESH_IDS, dtype="int64"))


def test_connection_reset_mid_fragment_is_retried_whole(emu, nb, release_meshes):
    body = MESH_IDS[2]
    emu.faults.reset_next(1, path=fragment_path(emu, body), at="half")  # cloud-files retries: the whole mesh or nothing
    got = nb.get_meshes(np.asarray([body], dtype="int64"))
    assert emu.faults.pending == []  # the fault was served
    assert np.array_equal(got[0].vertices, release_meshes[body].vertices)
    assert np.array_equal(got[0].faces, release_meshes[body].faces)


@pytest.mark.xfail(strict=True, reason="known gap: a legacy precomputed fragment has no triangle count, so a body "
                                       "cut at a triangle boundary that looks whole (a short Content-Length, or a "
                                       "properly ended chunked body) decodes as a smaller mesh; cloud-files does not "
                                       "check hashes over HTTP")
def test_truncated_at_a_triangle_boundary(emu, nb, release_meshes):
    body = MESH_IDS[3]
    r = release_meshes[body]
    emu.faults.cut_next(50, kind="chunked", at=4 + 12 * len(r.vertices) + 12 * (len(r.faces) // 2),
                        path=fragment_path(emu, body))
    with pytest.raises(ConnectomixError):
        nb.get_meshes(np.asarray([body], dtype="int64"))
