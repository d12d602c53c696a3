"""Multi-resolution (Draco) mesh layers, sharded or not: written by connectomix, read by cloud-volume and connectomix.

The public FlyEM layers (hemibrain v1.2 segmentation, MANC ``mesh-multi-res``, male CNS ``multi-res-meshes``)
and FlyWire's flat ``flywire_v141_m783`` publish ``neuroglancer_multilod_draco`` meshes, the FlyEM ones
sharded (see the catalogue's ``mesh_format``). Expected values are the inputs -- navis's DA1 lPN meshes
(8 nm units) converted to nm with plain numpy -- and the quantisation bound computed here from each mesh's
extent: a vertex may move by half a quantisation step, ``0.5 * chunk * 2**lod / (2**16 - 1)`` voxels per
axis, where ``chunk`` is the mesh's extent in voxels (lower corner floored, upper ceiled).

Layers are read from ``file://`` folders and over a loopback HTTP server that answers byte ranges as a
cloud bucket does (``serve_range``).
"""

from __future__ import annotations

import http.server
import json
import threading

import navis
import numpy as np
import pytest
from cloudvolume import CloudVolume

from connectomix import errors
from connectomix.precomputed import read_meshes, segmentation_tree, serve_range, serve_tree

RES = np.array([8.0, 8.0, 8.0])


@pytest.fixture(scope="module")
def meshes():
    return {int(m.id): (np.asarray(m.vertices, dtype="float64") * 8.0, np.asarray(m.faces, dtype="int64"))
            for m in navis.example_neurons(3, kind="mesh")}


def _tolerance(vertices_nm, lod):
    stored = vertices_nm / RES
    chunk = np.maximum(np.ceil(stored.max(axis=0)) - np.floor(stored.min(axis=0)), 1)
    return 0.5 * chunk * 2 ** lod / (2 ** 16 - 1) * RES + 0.05  # + float32 rounding of nm coordinates


def _write(folder, tree):
    for name, data in tree.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return f"precomputed://file://{folder}"


def _assert_close(got, meshes, lod):
    assert [int(n.id) for n in got] == list(meshes)
    for n in got:
        vertices, faces = meshes[int(n.id)]
        assert str(n.units) == "1 nanometer" and n.lod == lod
        assert n.vertices.shape == vertices.shape
        np.testing.assert_array_equal(n.faces, faces)  # same triangles, same order (preserve_order)
        assert (np.abs(n.vertices - vertices) <= _tolerance(vertices, lod)).all()


@pytest.mark.parametrize("mesh_format", ["multires-sharded", "multires"])
def test_written_layer_is_the_real_shape_and_cloudvolume_reads_it(tmp_path, meshes, mesh_format):
    tree = segmentation_tree(meshes=meshes, resolution_nm=RES, mesh_format=mesh_format)
    info = json.loads(tree["mesh/info"])
    assert info["@type"] == "neuroglancer_multilod_draco" and info["vertex_quantization_bits"] == 16
    assert info["transform"] == [8, 0, 0, 0, 0, 8, 0, 0, 0, 0, 8, 0]
    if mesh_format == "multires-sharded":
        assert info["sharding"]["@type"] == "neuroglancer_uint64_sharded_v1"
        assert info["sharding"]["data_encoding"] == "raw"
        assert all(name.endswith(".shard") for name in tree if name.startswith("mesh/") and name != "mesh/info")
    else:
        assert {f"mesh/{segid}.index" for segid in meshes} <= set(tree)
    cv = CloudVolume(_write(tmp_path, tree), progress=False)
    assert "MultiLevel" in type(cv.mesh).__name__  # what navis checks to pass lod (navis/interfaces/cave_utils.py)
    for lod in (0, 1):
        got = cv.mesh.get(list(meshes), lod=lod)
        for segid, (vertices, faces) in meshes.items():
            np.testing.assert_array_equal(got[segid].faces, faces)
            assert (np.abs(got[segid].vertices - vertices) <= _tolerance(vertices, lod)).all()


@pytest.mark.parametrize("mesh_format", ["multires-sharded", "multires"])
def test_read_meshes_reads_multiresolution_layers_at_each_lod(tmp_path, meshes, mesh_format):
    url = _write(tmp_path, segmentation_tree(meshes=meshes, resolution_nm=RES, mesh_format=mesh_format))
    _assert_close(read_meshes(url, list(meshes)), meshes, 0)  # default: the finest level
    _assert_close(read_meshes(url, list(meshes), lod=1), meshes, 1)
    coarse = read_meshes(url, list(meshes)[:1], lod=1)[0]
    fine = read_meshes(url, list(meshes)[:1], lod=0)[0]
    assert np.abs(coarse.vertices - fine.vertices).max() > 0  # the levels are really different quantisations
    with pytest.raises(errors.IdsNotFoundError) as info:
        read_meshes(url, [*meshes, 5, 6])
    assert info.value.ids == [5, 6]
    with pytest.raises(errors.InvalidArgumentError, match=r"0\.\.1"):
        read_meshes(url, list(meshes), lod=2)
    with pytest.raises(errors.InvalidArgumentError, match="lod"):
        read_meshes(url, list(meshes), lod=-1)


def test_legacy_layers_still_read_vertex_for_vertex_and_lod_is_ignored(tmp_path, meshes):
    url = _write(tmp_path, segmentation_tree(meshes=meshes, resolution_nm=RES))
    for n in read_meshes(url, list(meshes), lod=1):
        assert n.lod is None
        np.testing.assert_array_equal(n.vertices, meshes[int(n.id)][0].astype("float32"))


def _damage(data: bytes, start: int, length: int) -> bytes:
    return data[:start] + bytes(b ^ 0xFF for b in data[start:start + length]) + data[start + length:]


def test_damaged_shard_is_an_error_naming_the_source(tmp_path, meshes):
    """Truncation and damage that breaks the shard's gzip index or a Draco stream are errors, never a partial mesh.

    (Overwritten bytes that still decode -- e.g. inside a Draco position stream -- cannot be told apart
    from data: the format has no checksum.)
    """
    tree = segmentation_tree(meshes=meshes, resolution_nm=RES, mesh_format="multires-sharded")
    (shard,) = [name for name in tree if name.endswith(".shard")]
    index_length = 16 * 2 ** json.loads(tree["mesh/info"])["sharding"]["minishard_bits"]
    for damaged in (tree[shard][:len(tree[shard]) // 2],                       # truncated
                    _damage(tree[shard], index_length + 40, 64),               # Draco fragment bytes overwritten
                    _damage(tree[shard], len(tree[shard]) - 30, 30)):          # minishard index overwritten
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        url = _write(folder, {**tree, shard: damaged})
        with pytest.raises(errors.DataFormatError, match=str(folder)):
            read_meshes(url, list(meshes))


def test_damaged_unsharded_fragment_is_an_error(tmp_path, meshes):
    tree = segmentation_tree(meshes=meshes, resolution_nm=RES, mesh_format="multires")
    segid = list(meshes)[0]
    for damaged in (tree[f"mesh/{segid}"][:100], _damage(tree[f"mesh/{segid}"], 30, 64)):
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        url = _write(folder, {**tree, f"mesh/{segid}": damaged})
        with pytest.raises(errors.DataFormatError, match=str(folder)):
            read_meshes(url, [segid])


@pytest.fixture(scope="module")
def http_layer(meshes):
    """The sharded layer over loopback HTTP, answering byte ranges as a bucket does."""
    tree = segmentation_tree(meshes=meshes, resolution_nm=RES, mesh_format="multires-sharded")
    ranges = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = serve_tree(tree, self.path.split("?", 1)[0].removeprefix("/layer/"))
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            ranges.append(self.headers.get("Range"))
            status, part, content_range = serve_range(body, self.headers.get("Range"))
            self.send_response(status)
            if content_range:
                self.send_header("Content-Range", content_range)
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"precomputed://http://127.0.0.1:{httpd.server_address[1]}/layer", ranges
    httpd.shutdown()
    httpd.server_close()


def test_sharded_layer_over_http_byte_ranges(http_layer, meshes):
    url, ranges = http_layer
    _assert_close(read_meshes(url, list(meshes), lod=1), meshes, 1)
    assert any(r and r.startswith("bytes=") for r in ranges)  # read by range, as from a bucket
    with pytest.raises(errors.IdsNotFoundError):
        read_meshes(url, [7])
