"""Meshes (issue 14): ``Dataset.get_meshes`` on release folders, the sample's meshes, the release format's
``meshes.parquet``, and attaching synapses to meshes.

Expected values come from the inputs -- navis's own example meshes (``navis.example_neurons(kind="mesh")``,
8 nm voxels, multiplied by 8 here with numpy) and brute-force nearest vertices computed here -- never from
the code under test.
"""

from __future__ import annotations

import http.server
import threading
import warnings

import navis
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cloudvolume import CloudVolume

import connectomix
from connectomix import errors
from connectomix.precomputed import read_meshes, segmentation_tree, serve_tree
from connectomix_release.meshes import MESHES_FILE, write_precomputed
from connectomix_release.plugin import SAMPLE_DIR
from connectomix_release.writer import ReleaseValidationError, make_manifest, validate_release, write_release

FIVE = [722817260, 754534424, 754538881, 1734350788, 1734350908]  # navis's example neurons
TWO = [1765040289, 5813039315]  # the sample's other DA1 lPNs: no mesh
BUCKET = "connectomix-test-meshes"


@pytest.fixture(scope="module")
def ds():
    with connectomix.open("sample", cache=False) as ds:
        yield ds


@pytest.fixture(scope="module")
def navis_meshes():
    """navis's meshes of the five, as navis loads them (8 nm voxels), by id."""
    return {int(m.id): m for m in navis.example_neurons(kind="mesh")}


def _nm(mesh):
    return np.asarray(mesh.vertices, dtype="float64") * 8.0


# --- the sample's meshes ---------------------------------------------------------------------------


def test_sample_meshes_are_navis_meshes_in_nm_vertex_for_vertex(ds, navis_meshes):
    got = ds.get_meshes(FIVE)
    assert [int(m.id) for m in got] == FIVE
    for m in got:
        original = navis_meshes[int(m.id)]
        assert isinstance(m, navis.MeshNeuron) and str(m.units) == "1 nanometer"
        np.testing.assert_array_equal(m.vertices, _nm(original).astype("float32"))  # stored as float32
        np.testing.assert_allclose(m.vertices, _nm(original), atol=0.02)  # float32 of ~300,000 nm
        np.testing.assert_array_equal(m.faces, original.faces)
        assert m.name == "DA1_lPN_R"


def test_order_duplicates_provenance(ds):
    got = ds.get_meshes([1734350908, 722817260, 1734350908])
    assert [int(m.id) for m in got] == [722817260, 1734350908]  # each once, in id order (as get_skeletons)
    assert got.attrs == {"table": "meshes", "backend": "release", "dataset": "sample",
                         "version": ds.version, "units": "nm"}
    assert all(m.version == ds.version for m in got)


def test_ids_from_criteria_keys_and_navis_neurons(ds, navis_meshes):
    by_criteria = ds.get_meshes(connectomix.NeuronCriteria(type="DA1_lPN"), missing="skip")
    assert sorted(int(m.id) for m in by_criteria) == FIVE
    by_keys = ds.get_meshes(["sample:1734350788", "sample:754534424"])
    assert [int(m.id) for m in by_keys] == [754534424, 1734350788]
    by_neurons = ds.get_meshes(navis.NeuronList(list(navis_meshes.values())[:2]))
    assert [int(m.id) for m in by_neurons] == sorted(list(navis_meshes)[:2])
    with pytest.raises(errors.InvalidArgumentError, match="flywire"):
        ds.get_meshes(["flywire:720575940621039145"])


def test_neurons_without_a_mesh_raise_warn_or_skip(ds):
    with pytest.raises(errors.IdsNotFoundError, match="1765040289") as info:
        ds.get_meshes(FIVE[:1] + TWO)
    assert sorted(info.value.ids) == TWO
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ds.get_meshes(FIVE[:2] + TWO, missing="warn")
    assert [int(m.id) for m in got] == FIVE[:2]
    (gap,) = [w.message for w in caught if isinstance(w.message, errors.MissingDataWarning)]
    assert gap.what == "mesh" and sorted(gap.ids.tolist()) == TWO and "mesh" in str(gap)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [int(m.id) for m in ds.get_meshes(TWO + FIVE[:1], missing="skip")] == FIVE[:1]
        assert len(ds.get_meshes(TWO, missing="skip")) == 0


def test_ids_the_dataset_lacks_always_raise(ds):
    for missing in ("raise", "warn", "skip"):
        with pytest.raises(errors.IdsNotFoundError, match="123") as info:
            ds.get_meshes([FIVE[0], 123], missing=missing)
        assert info.value.ids == [123]
    with pytest.raises(errors.InvalidArgumentError, match="missing"):
        ds.get_meshes(FIVE[0], missing="ignore")


def test_a_release_without_meshes_says_so(tmp_path):
    folder = _tiny_release(tmp_path / "r", None)
    assert not (folder / MESHES_FILE).exists()
    with connectomix.open(f"release://{folder}", cache=False) as r:
        assert connectomix.Capability.MESHES not in r.capabilities
        with pytest.raises(errors.UnsupportedOperation, match="no meshes"):
            r.get_meshes([1])


def test_the_sample_declares_its_meshes_and_stays_small(ds):
    import json

    manifest = json.loads((SAMPLE_DIR / "manifest.json").read_text())
    declared = manifest["meshes"]
    assert declared["file"] == MESHES_FILE and declared["count"] == 5 and declared["units"] == "nm"
    assert "navis.example_neurons(kind='mesh')" in declared["source"]
    assert set(manifest["partial"]["meshes"]["ids"]) >= set(TWO) and not set(FIVE) & set(
        manifest["partial"]["meshes"]["ids"])
    assert "kind=\"mesh\"" in (SAMPLE_DIR / "README.md").read_text()
    assert (SAMPLE_DIR / MESHES_FILE).stat().st_size < 1_000_000  # zstd; the wheel grows by well under 1 MB
    report = validate_release(SAMPLE_DIR, deep=True)
    assert report.ok and report.rows["meshes"] == 5


# --- the same bytes as a neuroglancer precomputed folder ------------------------------------------


def test_write_precomputed_is_read_by_unmodified_cloudvolume(tmp_path, navis_meshes):
    folder = write_precomputed(SAMPLE_DIR, tmp_path / "layer")
    cv = CloudVolume(f"precomputed://file://{folder}", progress=False)
    got = cv.mesh.get(FIVE, fuse=False, remove_duplicate_vertices=False)
    for segid in FIVE:
        np.testing.assert_array_equal(got[segid].vertices, _nm(navis_meshes[segid]).astype("float32"))
        np.testing.assert_array_equal(got[segid].faces, navis_meshes[segid].faces)


def test_the_sample_served_over_http_reads_like_the_release(ds, navis_meshes):
    meshes = {int(m.id): (m.vertices, m.faces) for m in ds.get_meshes(FIVE)}
    tree = segmentation_tree(meshes=meshes, resolution_nm=(8, 8, 8))

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = serve_tree(tree, self.path.split("?")[0].removeprefix("/layer"))
            self.send_response(404 if body is None else 200)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"precomputed://http://127.0.0.1:{httpd.server_address[1]}/layer"
        for m in read_meshes(url, FIVE):
            np.testing.assert_array_equal(m.vertices, _nm(navis_meshes[int(m.id)]).astype("float32"))
            np.testing.assert_array_equal(m.faces, navis_meshes[int(m.id)].faces)
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- writing and checking meshes.parquet -------------------------------------------------------------


def _tiny_release(folder, meshes):
    neurons = pd.DataFrame({"id": [1, 2], "type": ["A", None], "instance": [None, None], "status": [None, None],
                            "pre": [1, 0], "post": [0, 1], "is_neuron": [True, False]})
    connections = pd.DataFrame({"pre": [1], "post": [2], "roi": ["NotPrimary"], "weight": [1]})
    return write_release(folder, manifest=make_manifest(name="tiny", version="v1", synthetic={"neurons": "all"}),
                         neurons=neurons, connections=connections, meshes=meshes)


def test_writer_converts_mesh_neurons_to_nm(tmp_path):
    voxel_mesh = navis.MeshNeuron((np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float),
                                   np.array([[0, 1, 2], [0, 1, 3]])), units="8 nm", id=1, process=False)
    folder = _tiny_release(tmp_path / "r", {1: voxel_mesh, 2: ([[0, 0, 0], [5, 0, 0], [0, 5, 0]], [[0, 1, 2]])})
    assert validate_release(folder, deep=True).ok
    with connectomix.open(f"release://{folder}", cache=False) as r:
        one, two = r.get_meshes([1, 2])
    np.testing.assert_array_equal(one.vertices, [[0, 0, 0], [8, 0, 0], [0, 8, 0], [0, 0, 8]])
    np.testing.assert_array_equal(two.vertices, [[0, 0, 0], [5, 0, 0], [0, 5, 0]])
    np.testing.assert_array_equal(one.faces, [[0, 1, 2], [0, 1, 3]])


def test_writer_refuses_unknown_ids_and_bad_meshes(tmp_path):
    triangle = ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])
    with pytest.raises(ReleaseValidationError, match=r"\[7\]"):
        _tiny_release(tmp_path / "a", {7: triangle})
    with pytest.raises(ReleaseValidationError, match="outside"):
        _tiny_release(tmp_path / "b", {1: ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 5]])})
    with pytest.raises(ReleaseValidationError, match="units"):
        _tiny_release(tmp_path / "c", {1: navis.MeshNeuron(tuple(map(np.asarray, triangle)), process=False, id=1)})
    assert not (tmp_path / "a").exists()  # nothing half-written


def _damage(folder, cut: int):
    """Rewrite meshes.parquet with the last ``cut`` bytes of every fragment removed (counts unchanged)."""
    path = folder / MESHES_FILE
    t = pq.read_table(path)
    cut_fragments = pa.array([f[:-cut] for f in t.column("fragment").to_pylist()], type=pa.binary())
    pq.write_table(t.set_column(3, "fragment", cut_fragments), path)


@pytest.mark.parametrize("cut", [12, 5])  # a whole triangle (the legacy format alone cannot tell); a partial one
def test_a_truncated_fragment_is_an_error_never_a_partial_mesh(tmp_path, cut):
    triangles = ([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 1, 2], [0, 1, 3]])
    folder = _tiny_release(tmp_path / "r", {1: triangles})
    _damage(folder, cut)
    report = validate_release(folder)
    assert not report.ok and any("truncated" in str(p) for p in report.problems)
    with connectomix.open(f"release://{folder}", cache=False) as r:
        with pytest.raises(errors.DataFormatError, match="mesh 1"):
            r.get_meshes([1])


# --- attaching synapses to meshes ----------------------------------------------------------------------


def _brute_nearest(points_nm: np.ndarray, sites_nm: np.ndarray):
    """Nearest point and its distance for every site, by exhaustive search (no k-d tree).

    Squared distances of every pair as |s|^2 - 2 s.p + |p|^2 (one matrix product per chunk), centred first
    so the terms stay small; the distance of the chosen point is then computed directly.
    """
    centre = points_nm.mean(axis=0)
    points, sites = points_nm - centre, sites_nm - centre
    norms = (points ** 2).sum(axis=1)
    index = np.empty(len(sites), dtype="int64")
    for start in range(0, len(sites), 2048):
        chunk = sites[start:start + 2048]
        d2 = norms[None, :] - 2.0 * chunk @ points.T  # + |s|^2, the same for every point of a row
        index[start:start + 2048] = d2.argmin(axis=1)
    return index, np.linalg.norm(sites - points[index], axis=1)


@pytest.fixture(scope="module")
def attached(ds):
    meshes = ds.get_meshes(FIVE)
    syn, out = ds.get_synapses(meshes, attach=True, clean=False, progress=False)
    return meshes, syn, out


def test_every_da1_mesh_attaches_99_percent_of_its_sites(ds, attached, navis_meshes):
    meshes, syn, out = attached
    for m in out:
        c = m.connectors
        # the sites navis ships with its own mesh of the neuron: T-bars and PSDs
        navis_types = navis_meshes[int(m.id)].connectors["type"].value_counts()
        assert c["type"].value_counts().to_dict() == {"pre": navis_types["pre"], "post": navis_types["post"]}
        # one connector per site: T-bars once each (their connections in n_partners), PSDs one each
        assert int(c.loc[c["type"] == "pre", "n_partners"].sum()) == int((syn["pre"] == m.id).sum())
        assert int((c["type"] == "post").sum()) == int((syn["post"] == m.id).sum())
        assert (c["distance"] <= 10_000).mean() >= 0.99
    _, cleaned = ds.get_synapses(meshes, attach=True, progress=False)  # the default: fafbseg's 10 um rule
    for full, kept in zip(out, cleaned):
        expected = full.connectors[full.connectors["distance"] <= 10_000]
        assert len(kept.connectors) == len(expected) >= 0.99 * len(full.connectors)


def test_nearest_vertices_equal_a_brute_force_search(attached, navis_meshes):
    _, _, out = attached
    for m in out:
        c = m.connectors
        vertices_nm = _nm(navis_meshes[int(m.id)])  # from navis, not from the code under test
        sites_nm = c[["x", "y", "z"]].to_numpy(dtype="float64")  # the neuron is in nm
        index, dist = _brute_nearest(vertices_nm, sites_nm)
        # ties between equidistant vertices may resolve differently: compare distances, and ids where unique
        np.testing.assert_allclose(c["distance"].to_numpy(), dist, atol=0.05)
        assert (c["vertex_id"].to_numpy() == index).mean() > 0.999


def test_units_8nm_mesh_attaches_like_the_nm_mesh(ds, attached, navis_meshes):
    _, _, in_nm = attached
    voxels = navis.NeuronList([navis_meshes[i] for i in FIVE])  # navis's own meshes, 8 nm units
    _, in_voxels = ds.get_synapses(voxels, attach=True, clean=False, progress=False)
    for a, b in zip(in_nm, in_voxels):
        assert str(b.units) == "8 nanometer"
        assert (a.connectors["vertex_id"].to_numpy() == b.connectors["vertex_id"].to_numpy()).mean() > 0.999
        np.testing.assert_allclose(b.connectors[["x", "y", "z"]].to_numpy() * 8,
                                   a.connectors[["x", "y", "z"]].to_numpy(), atol=1e-6)
        np.testing.assert_allclose(b.connectors["distance"], a.connectors["distance"], atol=0.05)  # nm both


def test_max_distance_cleans_meshes_as_it_cleans_skeletons(ds, attached):
    meshes, _, out = attached
    _, near = ds.get_synapses(meshes[:2], attach=True, max_distance=250, progress=False)
    for full, kept in zip(out[:2], near):
        expected = full.connectors.loc[full.connectors["distance"] <= 250, "synapse_ids"].tolist()
        assert kept.connectors["synapse_ids"].tolist() == expected
        assert 0 < len(expected) < len(full.connectors)
    skeletons = ds.get_skeletons(FIVE[:2])
    _, sk_near = ds.get_synapses(skeletons, attach=True, max_distance=250, progress=False)
    _, sk_all = ds.get_synapses(skeletons, attach=True, clean=False, progress=False)
    for full, kept in zip(sk_all, sk_near):  # the same rule on skeletons
        assert len(kept.connectors) == int((full.connectors["distance"] <= 250).sum())
    with pytest.raises(errors.InvalidArgumentError, match="max_distance"):
        ds.get_synapses(meshes[:1], attach=True, max_distance=-1, progress=False)


def test_meshes_of_a_release_on_object_storage(ds, tmp_path):
    """The sample on S3 (moto's server on 127.0.0.1): the same meshes, read through the release's own storage."""
    s3fs = pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"}
        fs = s3fs.S3FileSystem(**options)
        # moto keeps its buckets per process (every ThreadedMotoServer shares them): a bucket of this test's own,
        # removed at the end, so other tests' fixtures can create theirs
        fs.mkdir(BUCKET)
        for name in ("manifest.json", "neurons.parquet", "connections.parquet", MESHES_FILE):  # what meshes need
            fs.put(str(SAMPLE_DIR / name), f"{BUCKET}/sample/{name}")
        with connectomix.open(f"release://s3://{BUCKET}/sample", storage_options=options, cache=False) as remote:
            assert connectomix.Capability.MESHES in remote.capabilities
            got = remote.get_meshes(FIVE[:2])
            with pytest.raises(errors.IdsNotFoundError):
                remote.get_meshes(TWO)
        for m, local in zip(got, ds.get_meshes(FIVE[:2])):
            np.testing.assert_array_equal(m.vertices, local.vertices)
            np.testing.assert_array_equal(m.faces, local.faces)
        fs.rm(BUCKET, recursive=True)
    finally:
        server.stop()


def test_provenance_keeps_a_version_the_backend_recorded():
    from connectomix.morphology import label_neurons

    a, b = navis.MeshNeuron(None, id=1), navis.MeshNeuron(None, id=2)
    a.version = b.version = 783  # e.g. the materialization a CAVE backend read them at
    nl = label_neurons(navis.NeuronList([a, b]), table="meshes", backend="cave", dataset="fw", version="latest")
    assert nl.attrs["version"] == 783 and a.version == 783
    c, d = navis.MeshNeuron(None, id=3), navis.MeshNeuron(None, id=4)
    c.version = 1
    nl = label_neurons(navis.NeuronList([c, d]), table="meshes", backend="r", dataset="s", version="v1")
    assert nl.attrs["version"] == "v1" and (c.version, d.version) == (1, "v1")
