"""read_meshes on a legacy source over HTTP: each manifest is read once, then its fragment."""

import collections
import http.server
import threading

import numpy as np
import pytest

from connectomix import errors
from connectomix.precomputed import read_meshes, segmentation_tree, serve_tree

MESHES = {i: (np.array([[0, 0, 0], [8, 0, 0], [0, 8, 0], [i, i, 8]], dtype="float64"),
              np.array([[0, 1, 2], [1, 2, 3]])) for i in range(1, 7)}


@pytest.fixture(scope="module")
def layer():
    tree = segmentation_tree(meshes=MESHES)
    seen = collections.Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0].removeprefix("/layer")
            seen[path] += 1
            body = serve_tree(tree, path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"precomputed://http://127.0.0.1:{server.server_address[1]}/layer", seen
    server.shutdown()


def test_each_manifest_and_fragment_is_read_once(layer):
    source, seen = layer
    seen.clear()
    meshes = read_meshes(source, [3, 1, 5], timeout=30)
    assert [int(n.id) for n in meshes] == [3, 1, 5]
    for n in meshes:
        assert np.array_equal(n.vertices, MESHES[int(n.id)][0]) and np.array_equal(n.faces, MESHES[int(n.id)][1])
    for i in (3, 1, 5):
        assert seen[f"/mesh/{i}:0"] == 1 and seen[f"/mesh/{i}:0:0"] == 1
    assert sum(v for k, v in seen.items() if k.startswith("/mesh/") and k != "/mesh/info") == 6


def test_a_missing_manifest_names_the_id(layer):
    source, _ = layer
    with pytest.raises(errors.IdsNotFoundError) as info:
        read_meshes(source, [2, 99], timeout=30)
    assert info.value.ids == [99]


def test_a_shared_source_reads_the_layer_description_once_across_threads(layer):
    """Many concurrent reads through one PrecomputedSource: the layer's info files are read once in all."""
    from connectomix.parallel import map_batches
    from connectomix.precomputed import PrecomputedSource

    source, seen = layer
    seen.clear()
    shared = PrecomputedSource(source)
    got = map_batches(lambda i: read_meshes(shared, [i], timeout=30)[0], list(MESHES), max_workers=6)
    assert [int(n.id) for n in got] == list(MESHES)
    assert seen["/info"] == 1 and seen["/mesh/info"] == 1
    assert sum(v for k, v in seen.items() if not k.startswith("/mesh/") or k == "/mesh/info") == \
        sum(1 for k in seen if not k.startswith("/mesh/") or k == "/mesh/info")  # every description file once
    assert sum(v for k, v in seen.items() if k.startswith("/mesh/") and k != "/mesh/info") == 2 * len(MESHES)
    seen.clear()
    read_meshes(shared, [1, 2], timeout=30)
    assert sorted(seen) == ["/mesh/1:0", "/mesh/1:0:0", "/mesh/2:0", "/mesh/2:0:0"]  # nothing but the meshes
