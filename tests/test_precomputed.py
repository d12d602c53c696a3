"""connectomix.precomputed: a neuroglancer precomputed segmentation layer, written by connectomix and read back.

The layer is served by a real HTTP server on 127.0.0.1 (``http.server`` in a thread, port 0) and read both
by an unmodified ``cloudvolume.CloudVolume`` and by connectomix's readers. Expected values are the inputs:
navis's example neurons (hemibrain DA1 lPN meshes and skeletons, 8 nm units) converted to nm here with
plain numpy, and the format's byte layout (meshes.md / skeletons.md) unpacked here with ``struct``.
"""

from __future__ import annotations

import gzip
import http.server
import json
import struct
import threading

import navis
import numpy as np
import pytest
from cloudvolume import CloudVolume

from connectomix import errors
from connectomix.precomputed import (
    encode_mesh,
    encode_skeleton,
    read_meshes,
    read_skeletons,
    segmentation_tree,
    serve_tree,
)


@pytest.fixture(scope="module")
def example():
    """navis's five DA1 lPNs: meshes (nm arrays) and skeletons (TreeNeurons in 8 nm units)."""
    meshes = {int(m.id): (np.asarray(m.vertices, dtype="float64") * 8.0, np.asarray(m.faces, dtype="int64"))
              for m in navis.example_neurons(kind="mesh")}
    skeletons = {int(n.id): n for n in navis.example_neurons(kind="skeleton")}
    return meshes, skeletons


class _Server:
    """Serves ``tree`` under ``/layer/``; ``short``/``cut`` damage chosen files (see the handler)."""

    def __init__(self, tree):
        self.tree = tree
        self.short: dict[str, int] = {}   # path -> bytes sent (a consistently short file)
        self.cut: dict[str, int] = {}     # path -> remaining times the body is cut mid-stream
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _body(self):
                path = self.path.split("?", 1)[0]
                server.requests.append(path)
                if not path.startswith("/layer/"):
                    return path, None
                rel = path[len("/layer/"):]
                return rel, serve_tree(server.tree, rel)

            def do_HEAD(self):
                _, body = self._body()
                self.send_response(404 if body is None else 200)
                self.send_header("Content-Length", "0" if body is None else str(len(body)))
                self.end_headers()

            def do_GET(self):
                rel, body = self._body()
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if rel in server.short:
                    body = body[:server.short[rel]]
                cut = server.cut.get(rel, 0) > 0
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if cut:  # promise the whole body, send half, close
                    server.cut[rel] -= 1
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"precomputed://http://127.0.0.1:{self.httpd.server_address[1]}/layer"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def tree(example):
    meshes, skeletons = example
    return segmentation_tree(meshes=meshes, skeletons=skeletons, resolution_nm=(8, 8, 8))


@pytest.fixture
def server(tree):
    s = _Server(tree)
    yield s
    s.close()


def _unpack_mesh(data: bytes):
    """The legacy fragment layout of meshes.md, read with struct (independent of the code under test)."""
    (n,) = struct.unpack_from("<I", data, 0)
    vertices = np.array(struct.unpack_from(f"<{3 * n}f", data, 4)).reshape(n, 3)
    rest = (len(data) - 4 - 12 * n) // 4
    faces = np.array(struct.unpack_from(f"<{rest}I", data, 4 + 12 * n)).reshape(-1, 3)
    return vertices, faces


def _nm(neuron):
    return neuron.nodes[["x", "y", "z"]].to_numpy(dtype="float64") * 8.0


# --- the files -------------------------------------------------------------------------------------


def test_tree_files_follow_the_spec(example, tree):
    meshes, skeletons = example
    info = json.loads(tree["info"])
    assert info["type"] == "segmentation" and info["mesh"] == "mesh" and info["skeletons"] == "skeletons"
    assert info["scales"][0]["resolution"] == [8.0, 8.0, 8.0]
    assert json.loads(tree["mesh/info"]) == {"@type": "neuroglancer_legacy_mesh"}
    sk_info = json.loads(tree["skeletons/info"])
    assert sk_info["@type"] == "neuroglancer_skeletons"
    assert sk_info["transform"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
    assert sk_info["vertex_attributes"] == [{"id": "radius", "data_type": "float32", "num_components": 1}]
    for segid, (vertices, faces) in meshes.items():
        assert json.loads(tree[f"mesh/{segid}:0"]) == {"fragments": [f"{segid}:0:0"]}
        v, f = _unpack_mesh(tree[f"mesh/{segid}:0:0"])
        np.testing.assert_array_equal(v, vertices.astype("float32"))
        np.testing.assert_array_equal(f, faces)
    for segid, n in skeletons.items():
        data = tree[f"skeletons/{segid}"]
        nv, ne = struct.unpack_from("<II", data, 0)
        assert nv == n.n_nodes and ne == n.n_nodes - n.n_trees
        assert len(data) == 8 + 12 * nv + 8 * ne + 4 * nv
        xyz = np.array(struct.unpack_from(f"<{3 * nv}f", data, 8)).reshape(-1, 3)
        np.testing.assert_array_equal(xyz, _nm(n).astype("float32"))
        radius = np.array(struct.unpack_from(f"<{nv}f", data, 8 + 12 * nv + 8 * ne))
        np.testing.assert_array_equal(radius, (n.nodes["radius"].to_numpy(dtype="float64") * 8).astype("float32"))


def test_encoders_refuse_bad_arrays():
    with pytest.raises(errors.InvalidArgumentError, match="outside 0..2"):
        encode_mesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 3]])
    with pytest.raises(errors.InvalidArgumentError, match=r"\(N, 3\)"):
        encode_mesh([[0, 0], [1, 0]], [[0, 1, 1]])
    with pytest.raises(errors.InvalidArgumentError, match="NaN"):
        encode_skeleton([[0, 0, np.nan], [1, 0, 0]], [[1, 0]])
    with pytest.raises(errors.InvalidArgumentError, match="one value per vertex"):
        encode_skeleton([[0, 0, 0], [1, 0, 0]], [[1, 0]], radius=[1.0])
    with pytest.raises(errors.InvalidArgumentError, match="positive integers"):
        segmentation_tree(meshes={0: ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])})
    with pytest.raises(errors.InvalidArgumentError, match="neither"):
        segmentation_tree()


def test_serve_tree_answers_compressed_files_plain():
    tree = segmentation_tree(meshes={7: ([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]])}, compress=True)
    assert "mesh/7:0:0.gz" in tree and "mesh/7:0:0" not in tree
    assert serve_tree(tree, "mesh/7:0:0") == gzip.decompress(tree["mesh/7:0:0.gz"])
    assert serve_tree(tree, "/mesh/7:0") == b'{"fragments":["7:0:0"]}'
    assert serve_tree(tree, "mesh/8:0") is None


# --- over HTTP: the unmodified reader and connectomix's ----------------------------------------------


def test_unmodified_cloudvolume_reads_the_served_layer(example, server):
    meshes, skeletons = example
    cv = CloudVolume(server.url, progress=False)
    got = cv.mesh.get(list(meshes), fuse=False, remove_duplicate_vertices=False)
    assert sorted(got) == sorted(meshes)
    for segid, (vertices, faces) in meshes.items():
        np.testing.assert_array_equal(got[segid].vertices, vertices.astype("float32"))
        np.testing.assert_array_equal(got[segid].faces, faces)
    for segid, n in skeletons.items():
        sk = cv.skeleton.get(segid)
        np.testing.assert_array_equal(sk.vertices, _nm(n).astype("float32"))
        np.testing.assert_allclose(sk.radius, n.nodes["radius"].to_numpy(dtype="float64") * 8, rtol=1e-6)


def test_read_meshes_round_trips_vertex_for_vertex(example, server):
    meshes, _ = example
    ids = [754538881, 1734350788, 754538881, 722817260]  # order kept, duplicate read once
    got = read_meshes(server.url, ids)
    assert [int(m.id) for m in got] == [754538881, 1734350788, 722817260]
    for m in got:
        vertices, faces = meshes[int(m.id)]
        assert str(m.units) == "1 nanometer"
        np.testing.assert_array_equal(m.vertices, vertices.astype("float32"))
        np.testing.assert_array_equal(m.faces, faces)


def test_read_skeletons_round_trips_node_for_node(example, server):
    _, skeletons = example
    got = read_skeletons(server.url, list(skeletons))
    assert [int(n.id) for n in got] == list(skeletons)
    for n in got:
        original = skeletons[int(n.id)]
        assert str(n.units) == "1 nanometer" and n.n_nodes == original.n_nodes
        np.testing.assert_array_equal(n.nodes[["x", "y", "z"]].to_numpy(), _nm(original).astype("float32"))
        # node k is row k of the original node table: the parent of each row maps to the same row
        row = {nid: k for k, nid in enumerate(original.nodes["node_id"].to_numpy())}
        expected_parent = [row.get(p, -1) for p in original.nodes["parent_id"].to_numpy()]
        assert n.nodes["node_id"].tolist() == list(range(original.n_nodes))
        assert n.nodes["parent_id"].tolist() == expected_parent
        np.testing.assert_allclose(n.nodes["radius"], original.nodes["radius"].to_numpy(dtype="float64") * 8,
                                   rtol=1e-6)


def test_missing_ids_raise_naming_all_of_them(example, server):
    meshes, skeletons = example
    with pytest.raises(errors.IdsNotFoundError, match="12345") as info:
        read_meshes(server.url, [list(meshes)[0], 12345, 67890])
    assert info.value.ids == [12345, 67890]
    with pytest.raises(errors.IdsNotFoundError) as info:
        read_skeletons(server.url, [99, list(skeletons)[0]])
    assert info.value.ids == [99]


@pytest.mark.parametrize("keep", [
    3,                        # not even a vertex count
    4 + 12 * 100 + 2,         # inside the vertices
    "faces-1",                # a byte short of the last triangle
])
def test_truncated_mesh_fragment_raises_not_a_partial_mesh(example, server, keep):
    meshes, _ = example
    segid = list(meshes)[1]
    full = serve_tree(server.tree, f"mesh/{segid}:0:0")
    server.short[f"mesh/{segid}:0:0"] = len(full) - 1 if keep == "faces-1" else keep
    with pytest.raises(errors.ConnectomixError, match=f"meshes of .*{segid}") as info:
        read_meshes(server.url, [list(meshes)[0], segid])
    assert "127.0.0.1" in str(info.value)


def test_mesh_fragment_without_triangles_raises(example, server):
    meshes, _ = example
    segid = list(meshes)[2]
    server.short[f"mesh/{segid}:0:0"] = 4 + 12 * len(meshes[segid][0])  # every vertex, no triangle
    with pytest.raises(errors.DataFormatError, match=f"mesh {segid}.*0 triangles"):
        read_meshes(server.url, [segid])


@pytest.mark.parametrize("cut_bytes", [1, 4 * 50])
def test_truncated_skeleton_raises(example, server, cut_bytes):
    _, skeletons = example
    segid = list(skeletons)[3]
    full = serve_tree(server.tree, f"skeletons/{segid}")
    server.short[f"skeletons/{segid}"] = len(full) - cut_bytes  # inside the radius attribute
    with pytest.raises(errors.DataFormatError, match=f"skeleton {segid} .* bytes"):
        read_skeletons(server.url, [segid])


def test_a_body_cut_mid_stream_is_retried_and_never_returned_short(example, server):
    meshes, _ = example
    segid = list(meshes)[4]
    server.cut[f"mesh/{segid}:0:0"] = 1
    (m,) = read_meshes(server.url, [segid])
    assert server.cut[f"mesh/{segid}:0:0"] == 0  # the cut happened
    assert server.requests.count(f"/layer/mesh/{segid}:0:0") == 2  # and the fragment was fetched again
    np.testing.assert_array_equal(m.vertices, meshes[segid][0].astype("float32"))
    np.testing.assert_array_equal(m.faces, meshes[segid][1])


def test_a_folder_without_info_raises_data_format_error():
    with pytest.raises(errors.DataFormatError, match=r"nonexistent/connectomix-layer.*No info file") as info:
        read_meshes("precomputed://file:///nonexistent/connectomix-layer", [1], timeout=30)
    assert "\x1b[" not in str(info.value)  # cloud-volume's terminal colours are not part of the message


def test_an_unreachable_server_raises_within_the_timeout():
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(errors.RequestTimeoutError, match=f"127.0.0.1:{port}") as info:
        read_meshes(f"precomputed://http://reader:s3cr3t-tok@127.0.0.1:{port}/layer", [1], timeout=2)
    assert time.monotonic() - start < 10
    assert "s3cr3t-tok" not in str(info.value) and "s3cr3t-tok" not in str(info.value.url)


def test_a_layer_without_meshes_says_so(tmp_path, example):
    _, skeletons = example
    tree = segmentation_tree(skeletons=dict(list(skeletons.items())[:1]))
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with pytest.raises(errors.DataFormatError, match="no meshes"):
        read_meshes(f"precomputed://file://{tmp_path}", [list(skeletons)[0]])


def test_compressed_folder_reads_with_file_urls(tmp_path, example):
    meshes, skeletons = example
    tree = segmentation_tree(meshes=meshes, skeletons=skeletons, compress=True)
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    url = f"precomputed://file://{tmp_path}"
    got = read_meshes(url, list(meshes))
    for m in got:
        np.testing.assert_array_equal(m.vertices, meshes[int(m.id)][0].astype("float32"))
    cv = CloudVolume(url, progress=False)  # and the unmodified reader
    segid = list(meshes)[0]
    mesh = cv.mesh.get(segid, fuse=False, remove_duplicate_vertices=False)[segid]
    np.testing.assert_array_equal(mesh.faces, meshes[segid][1])
    sk = read_skeletons(url, [list(skeletons)[0]])[0]
    assert sk.n_nodes == skeletons[list(skeletons)[0]].n_nodes


def test_sharded_skeletons_are_read_too(tmp_path, example):
    """A sharded skeleton folder (as large published sources are), written with cloud-volume's shard writer."""
    from cloudvolume.datasource.precomputed.sharding import ShardingSpecification, synthesize_shard_files

    _, skeletons = example
    tree = segmentation_tree(skeletons=skeletons)
    spec = ShardingSpecification(type="neuroglancer_uint64_sharded_v1", preshift_bits=0, hash="murmurhash3_x86_128",
                                 minishard_bits=1, shard_bits=1)
    shards = synthesize_shard_files(spec, {segid: tree[f"skeletons/{segid}"] for segid in skeletons})
    info = json.loads(tree["skeletons/info"])
    info["sharding"] = json.loads(spec.to_json())
    (tmp_path / "skeletons").mkdir()
    (tmp_path / "info").write_bytes(tree["info"])
    (tmp_path / "skeletons" / "info").write_text(json.dumps(info))
    for name, data in shards.items():
        (tmp_path / "skeletons" / name).write_bytes(data)
    url = f"precomputed://file://{tmp_path}"
    got = read_skeletons(url, list(skeletons))
    for n in got:
        np.testing.assert_array_equal(n.nodes[["x", "y", "z"]].to_numpy(), _nm(skeletons[int(n.id)]).astype("float32"))
    with pytest.raises(errors.IdsNotFoundError) as info_:
        read_skeletons(url, [list(skeletons)[0], 5])
    assert info_.value.ids == [5]


def test_a_mesh_format_not_read_is_refused_by_name(tmp_path, example):
    meshes, _ = example
    tree = segmentation_tree(meshes=dict(list(meshes.items())[:1]))
    tree["mesh/info"] = json.dumps({"@type": "neuroglancer_future_mesh"}).encode()
    for name, data in tree.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    with pytest.raises(errors.UnsupportedOperation, match="neuroglancer_future_mesh"):
        read_meshes(f"precomputed://file://{tmp_path}", list(meshes)[:1])
