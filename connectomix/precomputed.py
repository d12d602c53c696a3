"""Neuroglancer precomputed meshes and skeletons: encode a segmentation tree, read one with cloud-volume.

The format is Neuroglancer's "precomputed" segmentation layer:

* top-level ``info``: a ``"segmentation"`` volume whose ``"mesh"`` and ``"skeletons"`` members name
  the sub-folders (https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/volume.md);
* ``mesh/``: the *legacy single-resolution* mesh format
  (https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/meshes.md,
  "Legacy single-resolution mesh format"): ``mesh/info`` is ``{"@type": "neuroglancer_legacy_mesh"}``,
  ``mesh/{id}:0`` a JSON manifest ``{"fragments": [...]}`` and each fragment a little-endian
  ``uint32`` vertex count, ``float32`` xyz vertex positions **in nanometres** and ``uint32`` triangle
  vertex indices to the end of the file (a multiple of 12 bytes); or the *multi-resolution* format
  (meshes.md "Multi-resolution mesh format", ``"@type": "neuroglancer_multilod_draco"``) the public
  FlyEM and FlyWire flat layers use: per segment a binary manifest (octree grid, levels of detail,
  fragment positions and sizes) and Draco-encoded fragments whose integer vertex positions are
  quantised to ``vertex_quantization_bits`` bits of a fragment's cell, either one ``{id}.index`` +
  ``{id}`` pair per segment or packed into shard files (sharded.md, ``"sharding"`` in ``mesh/info``,
  read by byte range);
* ``skeletons/``: the unsharded precomputed skeleton format
  (https://github.com/google/neuroglancer/blob/master/src/datasource/precomputed/skeletons.md):
  ``skeletons/info`` with ``"@type": "neuroglancer_skeletons"``, a ``transform`` from stored to model
  (nm) coordinates and the ``vertex_attributes``; ``skeletons/{id}`` holds ``uint32`` vertex and edge
  counts, ``float32`` xyz vertex positions, ``uint32`` edge vertex-index pairs, then each vertex
  attribute in the order the info lists them (here one: ``radius``, ``float32``).

connectomix does not parse these files itself: bytes are made with cloud-volume's
``cloudvolume.Mesh.to_precomputed`` / ``cloudvolume.Skeleton.to_precomputed`` (multi-resolution:
its ``MultiLevelPrecomputedMeshManifest``, ``to_stored_model_space`` and shard writer, and ``DracoPy``)
and sources (``precomputed://
http://...``, ``precomputed://https://...``, ``precomputed://gs://...``, ``precomputed://file://...``) are
read with an unmodified ``cloudvolume.CloudVolume`` -- the maintained reader navis and fafbseg use. What
this module adds is the contract of the rest of connectomix: navis neurons in nm with their ids, every
asked id or :class:`~connectomix.errors.IdsNotFoundError` naming the missing ones, and a
:class:`~connectomix.errors.ConnectomixError` naming the source for a network fault or a file that is
not the format (a short fragment, triangle indices past the vertices) -- never a partial list.

Skeleton node ids are not part of the precomputed format: a skeleton read here has ``node_id`` equal
to the vertex index (0, 1, ...), as navis's own precomputed reader numbers them; the encoder writes a
``TreeNeuron``'s nodes in its node-table order, so vertex ``k`` is row ``k`` of ``neuron.nodes``.

Emulators build a tree with :func:`segmentation_tree` at start-up and answer ``GET`` requests from it
with :func:`serve_tree` (byte ranges with :func:`serve_range`); release folders store the same tree on disk.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import json
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .errors import (
    ConnectomixError,
    DataFormatError,
    IdsNotFoundError,
    InvalidArgumentError,
    RemoteError,
    RequestTimeoutError,
    UnsupportedOperation,
)

__all__ = [
    "MESH_DIR",
    "SKELETON_DIR",
    "SKELETON_VERTEX_ATTRIBUTES",
    "encode_mesh",
    "encode_skeleton",
    "decode_mesh",
    "MESH_FORMATS",
    "VERTEX_QUANTIZATION_BITS",
    "multires_mesh_files",
    "segmentation_tree",
    "serve_tree",
    "serve_range",
    "read_meshes",
    "read_skeletons",
    "PrecomputedSource",
    "READ_WORKERS",
]

#: Sub-folder names the top-level ``info`` of :func:`segmentation_tree` declares.
MESH_DIR = "mesh"
SKELETON_DIR = "skeletons"
#: The vertex attributes of skeletons written here (``skeletons/info``).
SKELETON_VERTEX_ATTRIBUTES = [{"id": "radius", "data_type": "float32", "num_components": 1}]
#: Identity: skeleton vertices are stored in nm (3x4 row-major matrix, skeletons.md ``transform``).
_IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
#: Mesh layouts :func:`segmentation_tree` writes: ``"legacy"`` (one file per fragment, meshes.md "Legacy
#: single-resolution mesh format"), ``"multires"`` (``{id}.index`` + ``{id}``) and ``"multires-sharded"``
#: (``{shard}.shard``), both meshes.md "Multi-resolution mesh format" (Draco fragments).
MESH_FORMATS = ("legacy", "multires", "multires-sharded")
#: Bits of the Draco integer vertex positions written by :func:`multires_mesh_files` (meshes.md allows 10 or 16).
VERTEX_QUANTIZATION_BITS = 16
#: Segments read at once: one chain (manifest, then its fragments) per segment on a pool this size. The 10
#: connections cloud-files' HTTP adapter keeps per host (its ``HttpInterface.adaptor`` is a default
#: ``requests`` ``HTTPAdapter``): every connection is reused, none re-opened (16 threads doubled the CPU time
#: at 0 ms latency with TLS handshakes; 10 beat 8 at 20 ms, benchmarks/README.md "morphology.py").
READ_WORKERS = 10


# --- encoding ---------------------------------------------------------------------------------------


def _vertices(vertices_nm: Any, what: str) -> np.ndarray:
    v = np.asarray(vertices_nm, dtype="float64")
    if v.ndim != 2 or v.shape[1] != 3:
        raise InvalidArgumentError(f"{what} vertices must be an (N, 3) array of nm; got shape {v.shape}")
    if not np.isfinite(v).all():
        raise InvalidArgumentError(f"{what} vertices contain NaN or infinite coordinates")
    return v.astype("<f4")


def _indices(values: Any, width: int, n_vertices: int, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.size == 0:
        a = a.reshape(0, width)
    if a.ndim != 2 or a.shape[1] != width or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise InvalidArgumentError(f"{what} must be an (M, {width}) integer array of vertex indices; "
                                   f"got shape {a.shape}, dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= n_vertices):
        raise InvalidArgumentError(f"{what} index vertices outside 0..{n_vertices - 1}: "
                                   f"min {a.min()}, max {a.max()}")
    return a.astype("<u4")


def encode_mesh(vertices_nm: Any, faces: Any) -> bytes:
    """One legacy precomputed mesh fragment (meshes.md, "Legacy single-resolution mesh format").

    Parameters
    ----------
    vertices_nm
        ``(N, 3)`` vertex positions in nm (stored as ``float32``).
    faces
        ``(M, 3)`` triangles as vertex indices (stored as ``uint32``).

    Returns
    -------
    bytes
        ``uint32`` N, ``float32`` xyz * N, ``uint32`` triangle indices * 3M (little-endian), made by
        ``cloudvolume.Mesh.to_precomputed``.

    Raises
    ------
    InvalidArgumentError
        For arrays of the wrong shape, non-finite coordinates or indices outside the vertices.

    Examples
    --------
    >>> data = encode_mesh([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]])
    >>> len(data) == 4 + 3 * 12 + 12
    True
    """
    from cloudvolume import Mesh

    v = _vertices(vertices_nm, "mesh")
    f = _indices(faces, 3, len(v), "mesh faces")
    return Mesh(v, f).to_precomputed()


def encode_skeleton(vertices_nm: Any, edges: Any, radius: Any = None) -> bytes:
    """One precomputed skeleton file (skeletons.md) with a ``float32`` ``radius`` vertex attribute.

    Parameters
    ----------
    vertices_nm
        ``(N, 3)`` vertex positions in nm.
    edges
        ``(M, 2)`` edges as vertex indices; connectomix writes ``(child, parent)``.
    radius
        ``N`` radii in nm; ``None`` (or missing values) are written as NaN.

    Returns
    -------
    bytes
        Made by ``cloudvolume.Skeleton.to_precomputed``; readable with the ``vertex_attributes`` of
        :data:`SKELETON_VERTEX_ATTRIBUTES` in ``skeletons/info``.

    Raises
    ------
    InvalidArgumentError
        For arrays of the wrong shape or edges outside the vertices.

    Examples
    --------
    >>> data = encode_skeleton([[0, 0, 0], [80, 0, 0]], [[1, 0]], radius=[10, 12])
    >>> len(data) == 8 + 2 * 12 + 8 + 2 * 4
    True
    """
    from cloudvolume import Skeleton

    v = _vertices(vertices_nm, "skeleton")
    e = _indices(edges, 2, len(v), "skeleton edges")
    r = np.full(len(v), np.nan) if radius is None else pd.to_numeric(pd.Series(radius), errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan)
    if r.shape != (len(v),):
        raise InvalidArgumentError(f"radius must have one value per vertex ({len(v)}); got {r.shape[0]}")
    skeleton = Skeleton(v, e, radii=r.astype("<f4"), segid=0, space="physical",
                        extra_attributes=SKELETON_VERTEX_ATTRIBUTES)
    return skeleton.to_precomputed()


def _tree_arrays(neuron: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices (nm), ``(child, parent)`` edges and radii (nm) of a navis TreeNeuron, in node-table order."""
    from .morphology import nm_per_unit

    scale = nm_per_unit(neuron)
    nodes = neuron.nodes
    xyz = nodes[["x", "y", "z"]].to_numpy(dtype="float64") * scale
    position = pd.Series(np.arange(len(nodes)), index=nodes["node_id"].to_numpy())
    has_parent = nodes["parent_id"].to_numpy() >= 0
    child = np.flatnonzero(has_parent)
    parent = position.reindex(nodes["parent_id"].to_numpy()[has_parent]).to_numpy()
    if np.isnan(parent.astype("float64")).any():
        raise InvalidArgumentError(f"skeleton {neuron.id} has parent ids that are not nodes")
    radius = nodes["radius"].to_numpy(dtype="float64", na_value=np.nan) * scale if "radius" in nodes \
        else np.full(len(nodes), np.nan)
    return xyz, np.column_stack([child, parent.astype("int64")]).reshape(-1, 2), radius


def multires_mesh_files(meshes: Mapping[int, tuple[Any, Any]], *, resolution_nm: Iterable[float] = (1, 1, 1),
                        sharded: bool = True, lods: int = 2, directory: str = MESH_DIR) -> dict[str, bytes]:
    """The mesh folder of a multi-resolution (Draco) layer holding these meshes, sharded or not.

    The format is meshes.md "Multi-resolution mesh format": ``{directory}/info`` with ``"@type":
    "neuroglancer_multilod_draco"``, :data:`VERTEX_QUANTIZATION_BITS`, a ``transform`` from stored model
    space (voxels of ``resolution_nm``) to nm, and -- if ``sharded`` -- a ``"sharding"`` specification
    (sharded.md, ``neuroglancer_uint64_sharded_v1``, murmurhash3_x86_128, gzip minishard indices, raw
    data, as multi-resolution shards must be read by byte range). Each segment has a manifest (the
    binary index) and its fragment data; unsharded they are ``{id}.index`` and ``{id}``, sharded the
    fragment data followed by the manifest are one shard entry whose offset points at the manifest.
    Built from cloud-volume's own pieces: ``MultiLevelPrecomputedMeshManifest``,
    ``to_stored_model_space``, ``ShardingSpecification`` / ``synthesize_shard_files`` and
    ``DracoPy.encode`` (integer positions, ``preserve_order=True``: vertices and triangles keep their
    order and number).

    Every level of detail holds one fragment: the whole mesh, at octree position ``(0, 0, 0)`` of a grid
    whose origin is the mesh's lower corner (voxels, floored) and whose chunk is its extent (ceiled).
    Level ``l`` covers ``2 ** l`` chunks per axis, so its quantisation step is ``2 ** l`` times coarser;
    the triangles are the same at every level (no simplification). Read back, a vertex differs from the
    original by at most ``0.5 * chunk_shape * 2 ** l / (2 ** bits - 1) * resolution_nm`` per axis (plus
    float32 rounding).

    Parameters
    ----------
    meshes
        ``{id: (vertices_nm, faces)}``, at least one triangle each.
    resolution_nm
        Voxel size: the stored model space unit (the info's ``transform``).
    sharded
        Shard files (``{shard}.shard``) rather than a manifest and a data file per segment.
    lods
        Levels of detail per mesh (at least 1); navis' ``fetch_mesh_neuron`` asks level 1 by default.
    directory
        Folder name, the segmentation ``info``'s ``"mesh"`` member.

    Returns
    -------
    dict of str to bytes
        Relative path -> content (``{directory}/info`` and the data files).

    Raises
    ------
    InvalidArgumentError
        Bad arrays, a mesh without triangles, a non-positive id or ``lods < 1``.

    Examples
    --------
    >>> files = multires_mesh_files({7: ([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]])}, sharded=False)
    >>> sorted(files)
    ['mesh/7', 'mesh/7.index', 'mesh/info']
    """
    import DracoPy
    from cloudvolume.datasource.precomputed.mesh.multilod import (
        MultiLevelPrecomputedMeshManifest,
        to_stored_model_space,
    )
    from cloudvolume.datasource.precomputed.sharding import (
        ShardingSpecification,
        compute_shard_params_for_hashed,
        synthesize_shard_files,
    )

    resolution = np.asarray([float(r) for r in resolution_nm], dtype="float64")
    if resolution.shape != (3,) or resolution.min() <= 0:
        raise InvalidArgumentError(f"resolution_nm must be three positive numbers; got {resolution_nm!r}")
    if int(lods) != lods or lods < 1:
        raise InvalidArgumentError(f"lods must be a positive integer; got {lods!r}")
    lods = int(lods)
    bits = VERTEX_QUANTIZATION_BITS
    entries: dict[int, tuple[bytes, bytes]] = {}  # segid -> (fragment data of every lod, manifest)
    for segid, (vertices, faces) in sorted(meshes.items()):
        segid = _segid(segid)
        stored = _vertices(vertices, "mesh").astype("float64") / resolution
        triangles = _indices(faces, 3, len(stored), "mesh faces")
        if not len(triangles):
            raise InvalidArgumentError(f"mesh {segid} has no triangles; a multi-resolution fragment needs some")
        origin = np.floor(stored.min(axis=0))
        chunk = np.maximum(np.ceil(stored.max(axis=0)) - origin, 1.0)
        manifest = MultiLevelPrecomputedMeshManifest(
            segid, chunk_shape=chunk, grid_origin=origin, num_lods=lods,
            lod_scales=[float(chunk.max()) * 2 ** lod / (2 ** bits - 1) for lod in range(lods)],
            vertex_offsets=np.zeros((lods, 3)), num_fragments_per_lod=[1] * lods,
            fragment_positions=[np.zeros((1, 3), dtype="uint32") for _ in range(lods)],
            fragment_offsets=[0] * lods)
        fragments = [DracoPy.encode(to_stored_model_space(stored, manifest, lod, bits, 0), triangles,
                                    preserve_order=True) for lod in range(lods)]
        manifest.fragment_offsets = [len(f) for f in fragments]
        entries[segid] = (b"".join(fragments), manifest.to_binary())
    info: dict[str, Any] = {"@type": "neuroglancer_multilod_draco", "vertex_quantization_bits": bits,
                            "transform": [float(resolution[0]), 0, 0, 0, 0, float(resolution[1]), 0, 0, 0, 0,
                                          float(resolution[2]), 0],
                            "lod_scale_multiplier": 1.0}
    files: dict[str, bytes] = {}
    if sharded:
        shard_bits, minishard_bits, preshift_bits = compute_shard_params_for_hashed(num_labels=max(len(entries), 1))
        spec = ShardingSpecification(type="neuroglancer_uint64_sharded_v1", preshift_bits=preshift_bits,
                                     hash="murmurhash3_x86_128", minishard_bits=minishard_bits,
                                     shard_bits=shard_bits, minishard_index_encoding="gzip", data_encoding="raw")
        info["sharding"] = json.loads(spec.to_json())
        shards = synthesize_shard_files(spec, {segid: data + manifest for segid, (data, manifest) in entries.items()},
                                        data_offset={segid: len(manifest) for segid, (_, manifest) in entries.items()})
        files.update({f"{directory}/{name}": data for name, data in shards.items()})
    else:
        for segid, (data, manifest) in entries.items():
            files[f"{directory}/{segid}.index"] = manifest
            files[f"{directory}/{segid}"] = data
    files[f"{directory}/info"] = _json(info)
    return files


def segmentation_tree(*, meshes: Mapping[int, tuple[Any, Any]] | None = None,
                      skeletons: Mapping[int, Any] | None = None,
                      resolution_nm: Iterable[float] = (1, 1, 1),
                      bounds_nm: tuple[Iterable[float], Iterable[float]] | None = None,
                      compress: bool = False, mesh_format: str = "legacy") -> dict[str, bytes]:
    """The files of a precomputed segmentation layer holding these meshes and skeletons.

    Parameters
    ----------
    meshes
        ``{id: (vertices_nm, faces)}``; each becomes ``mesh/{id}:0`` (manifest
        ``{"fragments": ["{id}:0:0"]}``) and the fragment ``mesh/{id}:0:0``.
    skeletons
        ``{id: navis.TreeNeuron}`` (any length units; converted to nm); each becomes ``skeletons/{id}``
        with its nodes in node-table order and a ``radius`` attribute.
    resolution_nm
        Voxel size declared by the top-level ``info`` (its only scale). Meshes and skeletons are in nm
        whatever it is; it matters only to viewers and to the declared volume ``size``.
    bounds_nm
        ``(lower, upper)`` corner of the volume in nm; by default the bounding box of every vertex.
    compress
        Store meshes and skeletons gzipped under ``name + ".gz"`` -- the layout cloud-volume reads from
        ``precomputed://file://`` folders (a web server would instead send the plain name with
        ``Content-Encoding: gzip``). ``info`` files and manifests stay plain JSON, and so do
        multi-resolution mesh files (read by byte range).
    mesh_format
        One of :data:`MESH_FORMATS`: ``"legacy"`` (the files below), or ``"multires"`` /
        ``"multires-sharded"``: the ``mesh/`` folder of :func:`multires_mesh_files` (two levels of
        detail, Draco, vertices quantised to :data:`VERTEX_QUANTIZATION_BITS` bits of each mesh's
        extent in voxels of ``resolution_nm``), as the public FlyEM and FlyWire flat layers publish.

    Returns
    -------
    dict of str to bytes
        Relative path -> file content: ``info``, ``mesh/info``, ``mesh/{id}:0``, ``mesh/{id}:0:0``,
        ``skeletons/info``, ``skeletons/{id}`` (only the parts given).

    Raises
    ------
    InvalidArgumentError
        For a non-positive id, bad arrays, or neither meshes nor skeletons.

    Examples
    --------
    >>> tree = segmentation_tree(meshes={7: ([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]])})
    >>> sorted(tree)
    ['info', 'mesh/7:0', 'mesh/7:0:0', 'mesh/info']
    >>> json.loads(tree["mesh/7:0"])
    {'fragments': ['7:0:0']}
    """
    meshes = dict(meshes or {})
    skeletons = dict(skeletons or {})
    if not meshes and not skeletons:
        raise InvalidArgumentError("segmentation_tree needs meshes or skeletons (or both); got neither")
    resolution = [float(r) for r in resolution_nm]
    if len(resolution) != 3 or min(resolution) <= 0:
        raise InvalidArgumentError(f"resolution_nm must be three positive numbers; got {resolution_nm!r}")
    if mesh_format not in MESH_FORMATS:
        raise InvalidArgumentError(f"mesh_format {mesh_format!r} is not one of {list(MESH_FORMATS)}")
    tree: dict[str, bytes] = {}
    suffix = ".gz" if compress else ""

    def put(name: str, data: bytes) -> None:
        tree[name + suffix] = gzip.compress(data, mtime=0) if compress else data

    corners = []
    if meshes and mesh_format != "legacy":
        tree.update(multires_mesh_files(meshes, resolution_nm=resolution, sharded=mesh_format == "multires-sharded"))
        corners.extend(_vertices(vertices, "mesh") for vertices, _ in meshes.values())
    for segid, (vertices, faces) in sorted(meshes.items() if mesh_format == "legacy" else []):
        segid = _segid(segid)
        data = encode_mesh(vertices, faces)
        tree[f"{MESH_DIR}/{segid}:0"] = _json({"fragments": [f"{segid}:0:0"]})
        put(f"{MESH_DIR}/{segid}:0:0", data)
        corners.append(_vertices(vertices, "mesh"))
    for segid, neuron in sorted(skeletons.items()):
        segid = _segid(segid)
        xyz, edges, radius = _tree_arrays(neuron)
        put(f"{SKELETON_DIR}/{segid}", encode_skeleton(xyz, edges, radius))
        corners.append(xyz)
    if meshes and mesh_format == "legacy":
        tree[f"{MESH_DIR}/info"] = _json({"@type": "neuroglancer_legacy_mesh"})
    if skeletons:
        tree[f"{SKELETON_DIR}/info"] = _json({"@type": "neuroglancer_skeletons", "transform": _IDENTITY,
                                              "vertex_attributes": SKELETON_VERTEX_ATTRIBUTES})
    if bounds_nm is None:
        points = np.concatenate([c for c in corners if len(c)] or [np.zeros((1, 3))])
        lower, upper = points.min(axis=0), points.max(axis=0)
    else:
        lower, upper = (np.asarray(list(b), dtype="float64") for b in bounds_nm)
    offset = np.floor(lower / resolution).astype("int64")
    size = np.maximum(np.ceil(upper / resolution).astype("int64") - offset, 1)
    info: dict[str, Any] = {
        "@type": "neuroglancer_multiscale_volume", "type": "segmentation", "data_type": "uint64",
        "num_channels": 1,
        "scales": [{"key": "_".join(f"{r:g}" for r in resolution), "resolution": resolution,
                    "size": size.tolist(), "voxel_offset": offset.tolist(), "chunk_sizes": [[64, 64, 64]],
                    "encoding": "raw"}],
    }
    if meshes:
        info["mesh"] = MESH_DIR
    if skeletons:
        info["skeletons"] = SKELETON_DIR
    tree["info"] = _json(info)
    return tree


def _segid(value: Any) -> int:
    try:
        segid = int(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"segment ids must be positive integers; got {value!r}") from None
    if segid <= 0 or segid != value:
        raise InvalidArgumentError(f"segment ids must be positive integers; got {value!r}")
    return segid


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def serve_tree(tree: Mapping[str, bytes], path: str) -> bytes | None:
    """The content of ``path`` in a :func:`segmentation_tree`, or ``None`` (answer 404) if there is none.

    ``path`` is relative to the layer (leading/trailing ``/`` ignored). A compressed tree's
    ``name.gz`` is answered decompressed for ``name``, so a plain HTTP server needs no
    ``Content-Encoding``.

    Examples
    --------
    >>> tree = segmentation_tree(meshes={7: ([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]])})
    >>> serve_tree(tree, "/mesh/7:0")
    b'{"fragments":["7:0:0"]}'
    >>> serve_tree(tree, "mesh/8:0") is None
    True
    """
    name = str(path).strip("/")
    if name in tree:
        return tree[name]
    if name + ".gz" in tree:
        return gzip.decompress(tree[name + ".gz"])
    return None


def serve_range(data: bytes, range_header: str | None) -> tuple[int, bytes, str | None]:
    """``(status, body, Content-Range)`` answering an HTTP ``Range: bytes=a-b`` header (RFC 9110 14.2).

    Sharded and multi-resolution layers are read by byte range (sharded.md; cloud-volume sends
    ``Range: bytes=start-(end-1)``), as cloud storage buckets answer them; a server standing in for a
    bucket answers ``206`` with the slice. No header (or one this does not parse: several ranges,
    other units) answers ``200`` with everything; a range starting past the end ``416``.

    Examples
    --------
    >>> serve_range(b"0123456789", "bytes=2-4")
    (206, b'234', 'bytes 2-4/10')
    >>> serve_range(b"0123456789", "bytes=-3")[1], serve_range(b"0123456789", None)[0]
    (b'789', 200)
    """
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", range_header or "")
    if not match or match.groups() == ("", ""):
        return 200, data, None
    first, last = match.groups()
    size = len(data)
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), (size - 1 if last == "" else min(int(last), size - 1))
    if start >= size or end < start:
        return 416, b"", f"bytes */{size}"
    return 206, data[start:end + 1], f"bytes {start}-{end}/{size}"


# --- reading ---------------------------------------------------------------------------------------


def _ids(ids: Any) -> list[int]:
    values = np.atleast_1d(np.asarray(ids))
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise InvalidArgumentError(f"ids must be integers; got dtype {values.dtype}")
    out = [int(i) for i in values]
    bad = [i for i in out if i <= 0]
    if bad:
        raise InvalidArgumentError(f"segment ids must be positive; got {bad[:5]}")
    return list(dict.fromkeys(out))


def _source_name(source_url: str) -> str:
    """The URL without credentials or query (for messages)."""
    from .config import redact

    text = str(source_url)
    scheme, sep, rest = text.rpartition("://")
    if "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    return redact((scheme + sep + rest).split("?", 1)[0])


def _run(source_url: str, timeout: float | None, work: Any, what: str) -> Any:
    """Run ``work()`` (cloud-volume calls) with a total deadline, translating its errors.

    ``what`` (e.g. ``"meshes of [1, 2]"``) goes into every message.
    """
    name = _source_name(source_url)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="connectomix-precomputed")
    future = pool.submit(work)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise RequestTimeoutError(f"reading {what} from {name} took longer than {timeout} s", url=name) from None
    except ConnectomixError:
        raise
    except Exception as err:  # cloud-volume / cloud-files / requests / decoding errors
        raise _translate(err, name, what) from err
    finally:
        pool.shutdown(wait=False)


def _translate(err: Exception, name: str, what: str) -> ConnectomixError:
    import requests

    from .config import redact

    # cloud-volume colours some messages; tokens never reach a message (a URL's query, userinfo, headers)
    text = redact(re.sub(r"\x1b\[[0-9;]*m", "", f"{type(err).__name__}: {err}"))
    if isinstance(err, requests.HTTPError) and err.response is not None:
        return RemoteError(f"reading {what}: precomputed source {name} answered HTTP "
                           f"{err.response.status_code}: {text}", status=err.response.status_code, url=name)
    if isinstance(err, (requests.RequestException, OSError)) and not isinstance(err, FileNotFoundError):
        return RemoteError(f"reading {what}: could not read precomputed source {name}: {text}", url=name)
    return DataFormatError(f"reading {what}: precomputed source {name} is not a readable neuroglancer "
                           f"precomputed segmentation layer (a missing info, or a truncated or damaged file): "
                           f"{text}")


def _open(source_url: str) -> Any:
    from cloudvolume import CloudVolume

    return CloudVolume(source_url, use_https=True, progress=False, fill_missing=False, cache=False)


class PrecomputedSource:
    """One precomputed segmentation layer, opened once and read from any number of threads.

    Opening a layer with cloud-volume reads its ``info``, ``provenance`` and the ``info`` of its mesh
    and skeleton folders (four requests). :func:`read_meshes` and :func:`read_skeletons` given a URL
    open the layer for that one call; given a ``PrecomputedSource`` they share its one opened
    ``CloudVolume`` (opened on first use, under a lock, so concurrent first calls open it once), so
    a caller reading many batches, or one id at a time, pays the four requests once. Only the layer's
    description is kept (cloud-volume is made with ``cache=False``: no mesh or skeleton is kept); a
    layer re-published under the same URL is seen by a new ``PrecomputedSource``.

    Parameters
    ----------
    source_url
        A cloud-volume path, as :func:`read_meshes` takes.

    Examples
    --------
    >>> layer = PrecomputedSource("precomputed://file:///data/layer")
    >>> layer.name
    'precomputed://file:///data/layer'
    """

    def __init__(self, source_url: str):
        self.url = str(source_url)
        self.name = _source_name(self.url)
        self._lock = threading.Lock()
        self._volume: Any = None

    def __repr__(self) -> str:
        return f"PrecomputedSource({self.name!r})"

    def volume(self) -> Any:
        """The layer's ``CloudVolume``, opened on the first call (its errors are raised to every caller)."""
        with self._lock:
            if self._volume is None:
                self._volume = _open(self.url)
            return self._volume


def _layer(source: Any) -> PrecomputedSource:
    return source if isinstance(source, PrecomputedSource) else PrecomputedSource(source)


def _check_mesh(segid: int, mesh: Any, name: str) -> None:
    """Refuse meshes no correct fragment can give (meshes.md: triangles fill the rest of the file)."""
    faces = np.asarray(mesh.faces)
    n = len(mesh.vertices)
    if n == 0 or faces.size == 0:
        raise DataFormatError(f"mesh {segid} from {name} has {n} vertices and {faces.size // 3} triangles; "
                              "a truncated or empty fragment")
    if faces.max() >= n:
        raise DataFormatError(f"mesh {segid} from {name} has triangle indices up to {faces.max()} but only "
                              f"{n} vertices; a damaged fragment")


def decode_mesh(data: bytes, *, segid: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (nm, ``float32``) and triangles (``uint32``) of one legacy mesh fragment, checked.

    Decoded by ``cloudvolume.Mesh.from_precomputed``. For stores that keep fragments outside a
    precomputed folder (release folders keep them in ``meshes.parquet``); ``source`` names the store in
    messages.

    Raises
    ------
    DataFormatError
        Bytes that are not a fragment: shorter than their vertex count needs, a triangle part that is not
        a multiple of 12 bytes, no triangles, or triangle indices past the vertices.

    Examples
    --------
    >>> v, f = decode_mesh(encode_mesh([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]]), segid=7, source="x")
    >>> v.shape, f.tolist()
    ((3, 3), [[0, 1, 2]])
    """
    from cloudvolume import Mesh

    data = bytes(data)
    n = int(np.frombuffer(data[:4], dtype="<u4")[0]) if len(data) >= 4 else -1
    if n < 0 or len(data) < 4 + 12 * n or (len(data) - 4 - 12 * n) % 12:
        raise DataFormatError(f"mesh {segid} in {source} is {len(data)} bytes, which no legacy fragment of "
                              f"{max(n, 0)} vertices is (4 + 12 * vertices + 12 * triangles); truncated or damaged")
    mesh = Mesh.from_precomputed(data, segid=segid)
    _check_mesh(segid, mesh, source)
    return np.asarray(mesh.vertices), np.asarray(mesh.faces)


def read_meshes(source_url: str | PrecomputedSource, ids: Any, *, lod: int | None = None,
                timeout: float | None = 120.0) -> Any:
    """Meshes of segments from a precomputed source, as navis ``MeshNeuron`` s in nm.

    Legacy single-resolution meshes (meshes.md "Legacy single-resolution mesh format") and
    multi-resolution Draco meshes, sharded or one manifest per segment (meshes.md "Multi-resolution
    mesh format", sharded.md) -- the layouts the public FlyEM and FlyWire flat layers use -- are read with
    cloud-volume's own pieces (its layer metadata, ``CloudFiles``, shard reader, manifest class and
    decoders), one chain per segment on :data:`READ_WORKERS` threads: each manifest once, then only the
    fragments (or the level's byte range) it names -- see ``_read_legacy`` and ``_read_multires``.

    Parameters
    ----------
    source_url
        A cloud-volume path of a segmentation layer with a ``mesh`` member:
        ``precomputed://https://host/path``, ``precomputed://http://127.0.0.1:PORT/path``,
        ``precomputed://gs://bucket/path``, ``precomputed://file:///folder``; or a
        :class:`PrecomputedSource` (the layer opened once for many reads).
    ids
        Segment ids (duplicates read once).
    lod
        Level of detail of a multi-resolution source (0 the finest); ``None`` means 0, cloud-volume's
        own default (``cv.mesh.get(..., lod=0)``) and connecto's generic one (``DatasetSpec.mesh_lod = 0``;
        connecto sets 1 for FlyEM datasets, as navis' ``fetch_mesh_neuron(lod=1)`` does). Ignored by
        legacy sources, which have one level. Recorded as each neuron's ``lod`` attribute (navis' name;
        ``None`` for a legacy source).
    timeout
        Total seconds for the whole read (cloud-volume has no request timeout of its own);
        ``None`` waits indefinitely.

    Returns
    -------
    navis.NeuronList
        One ``MeshNeuron`` per id in the order asked, ``units="1 nanometer"``, every fragment of the
        segment's manifest (of the level asked) concatenated as stored (vertex for vertex, no
        de-duplication).

    Raises
    ------
    IdsNotFoundError
        Ids without a mesh manifest in the source (all of them named).
    RemoteError
        The source could not be reached or answered an HTTP error.
    RequestTimeoutError
        The read took longer than ``timeout``.
    DataFormatError
        A file is not the format (bad ``info``, manifest, shard or a short/damaged fragment).
    InvalidArgumentError
        ``lod`` is negative or past the levels a segment has (the valid range named).
    UnsupportedOperation
        The mesh info declares a format that is neither (its ``@type`` named).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> tree = segmentation_tree(meshes={7: ([[0, 0, 0], [8, 0, 0], [0, 8, 0]], [[0, 1, 2]])})
    >>> for name, data in tree.items():
    ...     _ = (folder / name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (folder / name).write_bytes(data)
    >>> meshes = read_meshes(f"precomputed://file://{folder}", [7])
    >>> meshes[0].id, len(meshes[0].vertices), str(meshes[0].units)
    (7, 3, '1 nanometer')
    """
    import navis

    wanted = _ids(ids)
    layer = _layer(source_url)
    name = layer.name
    if lod is not None and (isinstance(lod, bool) or not isinstance(lod, (int, np.integer)) or lod < 0):
        raise InvalidArgumentError(f"lod must be a level of detail >= 0 (0 the finest) or None; got {lod!r}")

    def work() -> tuple[dict[int, Any], int | None]:
        if not wanted:
            return {}, None
        cv = layer.volume()
        if not cv.info.get("mesh"):
            raise DataFormatError(f"precomputed source {name} has no meshes (its info has no 'mesh' member)")
        kind = (cv.mesh.meta.info or {}).get("@type", "neuroglancer_legacy_mesh")
        if kind == "neuroglancer_multilod_draco":
            level = 0 if lod is None else int(lod)
            return _read_multires(cv, wanted, level, name), level
        if kind != "neuroglancer_legacy_mesh":
            raise UnsupportedOperation(f"the meshes of {name} are {kind!r}; connectomix reads "
                                       "'neuroglancer_legacy_mesh' and 'neuroglancer_multilod_draco' meshes")
        return _read_legacy(cv, wanted, name), None

    got, level = _run(layer.url, timeout, work, f"meshes of {wanted}")
    neurons = []
    for segid in wanted:
        mesh = got.get(segid)
        if mesh is None:
            raise DataFormatError(f"precomputed source {name} returned no mesh for {segid}")
        _check_mesh(segid, mesh, name)
        neuron = navis.MeshNeuron((np.asarray(mesh.vertices, dtype="float64"), np.asarray(mesh.faces, dtype="int64")),
                                  units="1 nanometer", id=segid, process=False)
        neuron.lod = level
        neurons.append(neuron)
    return navis.NeuronList(neurons)


def _read_legacy(cv: Any, wanted: list[int], name: str) -> dict[int, Any]:
    """``{segid: cloudvolume.Mesh}`` from a legacy source: each manifest read once, then its fragments.

    cloud-volume's ``cv.mesh.exists`` then ``cv.mesh.get`` read every manifest three times (``get``
    checks existence again). Here each segment is one chain on :data:`READ_WORKERS` threads: its
    manifest (a missing one is a missing id), then the fragments it names, each read with a
    one-file ``CloudFiles.get`` (no barrier between the manifests and the fragments of different
    segments, and none of cloud-files' per-call thread start-up and 0.1 s queue polling), decoded by
    ``cloudvolume.Mesh.from_precomputed`` and concatenated as ``get(fuse=False)`` does, with the mesh
    info's ``transform`` applied.
    """
    from cloudfiles import CloudFiles
    from cloudvolume import Mesh

    from .parallel import map_batches

    source = cv.mesh
    files = CloudFiles(source.meta.join(source.meta.cloudpath, source.path), progress=False,
                       secrets=cv.config.secrets)
    transform = np.asarray(source.transform, dtype="float64")

    def one(segid: int) -> Any:
        manifest = files.get(f"{segid}:0")
        if manifest is None:
            return None
        try:
            names = json.loads(manifest)["fragments"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataFormatError(f"mesh manifest {segid}:0 in {name} is not a manifest JSON with a 'fragments' "
                                  f"list: {exc}") from None
        if not isinstance(names, list) or not names or not all(isinstance(f, str) for f in names):
            raise DataFormatError(f"mesh manifest {segid}:0 in {name} names no fragment files: {names!r}")
        names = sorted(names)  # cloud-volume decodes fragments in name order
        data = {f: files.get(f) for f in names}
        absent = [f for f in names if data[f] is None]
        if absent:
            raise DataFormatError(f"the manifest of mesh {segid} in {name} names fragments that are not there: "
                                  f"{absent}")
        mesh = Mesh.concatenate(*(Mesh.from_precomputed(data[f], segid=segid) for f in names), segid=segid)
        if not np.array_equal(transform, np.eye(4)):
            mesh.vertices = mesh.vertices @ transform[:3, :3].T + transform[:3, 3]
        return mesh

    got = dict(zip(wanted, map_batches(one, wanted, max_workers=READ_WORKERS)))
    missing = [segid for segid in wanted if got[segid] is None]
    if missing:
        raise IdsNotFoundError(f"no mesh in {name} for id(s) {missing}", ids=missing)
    return got


def _read_multires(cv: Any, wanted: list[int], level: int, name: str) -> dict[int, Any]:
    """``{segid: cloudvolume.Mesh}`` at ``level`` from a multi-resolution source, every id checked first.

    One chain per segment on :data:`READ_WORKERS` threads: its manifest, read with cloud-volume's mesh
    source when sharded (``get_manifest``: the shard reader, whose shard and minishard index caches the
    chains share) or as ``{id}.index`` with a one-file ``CloudFiles.get`` (a missing manifest is a missing
    id; the shard and minishard indices of all of them are read first, once each, with the shard
    reader's batch ``exists``), then only the byte range of level ``level`` -- the range cloud-volume's own ``get`` reads
    (``MultiLevelPrecomputedMeshManifest`` sizes; sharded: the fragments end where the manifest starts)
    -- decoded by cloud-volume's ``extract_lod_meshes`` (Draco, stored model space to nm) and
    concatenated. cloud-volume's ``get`` reads every manifest again after an existence check, one
    segment after another; this reads each once.
    """
    from cloudfiles import CloudFiles
    from cloudvolume import Mesh
    from cloudvolume.datasource.precomputed.mesh.multilod import (
        MultiLevelPrecomputedMeshManifest,
        extract_lod_meshes,
    )

    from .parallel import map_batches

    source = cv.mesh
    sharded = source.meta.is_sharded()
    files = CloudFiles(source.meta.join(source.meta.cloudpath, source.path), progress=False,
                       secrets=cv.config.secrets)

    def one(segid: int) -> Any:
        if sharded:
            manifest = source.get_manifest(segid)
        else:
            binary = files.get(f"{segid}.index")
            manifest = None if binary is None else MultiLevelPrecomputedMeshManifest.from_binary(
                binary, segment_id=segid, shard_offset=0)
        if manifest is None:
            return None
        if level >= manifest.num_lods:
            return manifest.num_lods
        sizes = [int(np.sum(s)) for s in manifest.fragment_offsets]
        start = int(np.sum(sizes[:level]))
        if sharded:  # fragment data then the manifest in one shard entry (sharded.md); as cloud-volume's get
            start += int(manifest.shard_offset) - int(np.sum(sizes))
            path = str(manifest.path).rsplit("/", 1)[-1]  # the shard file, in the mesh folder
        else:
            path = str(segid)
        data = files.get({"path": path, "start": start, "end": start + sizes[level]}) if sizes[level] else b""
        if data is None or len(data) != sizes[level]:
            raise DataFormatError(f"the level {level} fragments of mesh {segid} in {name} are "
                                  f"{'missing' if data is None else f'{len(data)} bytes'}; its manifest says "
                                  f"{sizes[level]}")
        pieces = extract_lod_meshes(manifest, level, data, source.vertex_quantization_bits,
                                    source.transform).get(segid, [])
        return Mesh.concatenate(*pieces, segid=segid) if pieces else Mesh(np.zeros((0, 3)), np.zeros((0, 3)),
                                                                          segid=segid)

    if sharded:  # every shard and minishard index read once, into the reader's caches the chains then use
        source.reader.exists(wanted, source.path, progress=False)
    got = dict(zip(wanted, map_batches(one, wanted, max_workers=READ_WORKERS)))
    missing = [segid for segid in wanted if got[segid] is None]
    if missing:
        raise IdsNotFoundError(f"no mesh in {name} for id(s) {missing}", ids=missing)
    for segid, mesh in got.items():
        if isinstance(mesh, int):
            raise InvalidArgumentError(f"lod {level} is past the levels of detail of segment {segid} in {name}: "
                                       f"it has 0..{mesh - 1} (0 the finest)")
    return got


def _expected_skeleton_bytes(data: bytes, attributes: list[dict]) -> int | None:
    if len(data) < 8:
        return None
    n_vertices, n_edges = np.frombuffer(data[:8], dtype="<u4").tolist()
    per_vertex = sum(int(a.get("num_components", 1)) * np.dtype(a["data_type"]).itemsize for a in attributes)
    return 8 + 12 * n_vertices + 8 * n_edges + per_vertex * n_vertices


def _tree_neuron(segid: int, vertices: np.ndarray, edges: np.ndarray, radius: np.ndarray | None) -> Any:
    """A TreeNeuron (node_id = vertex index) from a skeleton's vertices (nm) and edges."""
    import navis
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(vertices)
    edges = np.asarray(edges, dtype="int64").reshape(-1, 2)
    child, parent_ix = edges[:, 0], edges[:, 1]
    graph = coo_matrix((np.ones(len(edges)), (child, parent_ix)), shape=(n, n))
    n_components = connected_components(graph, directed=False)[0] if n else 0
    if len(np.unique(child)) == len(child) and n_components == n - len(edges):
        parent = np.full(n, -1, dtype="int64")  # a forest written (child, parent), as connectomix writes it
        parent[child] = parent_ix
        nodes = pd.DataFrame({"node_id": np.arange(n, dtype="int64"), "parent_id": parent,
                              "x": vertices[:, 0], "y": vertices[:, 1], "z": vertices[:, 2]})
        if radius is not None:
            nodes["radius"] = radius
        return navis.TreeNeuron(nodes, units="1 nanometer", id=segid)
    # other orientations / graphs: navis orients the edges from a root per connected component
    neuron = navis.edges2neuron(edges, vertices=vertices, validate=True)
    if radius is not None:
        neuron.nodes["radius"] = radius[neuron.nodes["node_id"].to_numpy()]
    neuron.units = "1 nanometer"
    neuron.id = segid
    return neuron


def read_skeletons(source_url: str | PrecomputedSource, ids: Any, *, timeout: float | None = 120.0) -> Any:
    """Skeletons of segments from a precomputed source, as navis ``TreeNeuron`` s in nm.

    Parameters
    ----------
    source_url
        A cloud-volume path of a segmentation layer with a ``skeletons`` member, or of a skeleton
        folder itself (its ``info`` has ``"@type": "neuroglancer_skeletons"``), or a
        :class:`PrecomputedSource`; see :func:`read_meshes`. Unsharded and sharded (``"sharding"`` in ``skeletons/info``) skeleton folders are read.
    ids
        Segment ids (duplicates read once).
    timeout
        Total seconds for the whole read; ``None`` waits indefinitely.

    Returns
    -------
    navis.NeuronList
        One ``TreeNeuron`` per id in the order asked, ``units="1 nanometer"`` (the info's
        ``transform`` applied by cloud-volume), ``node_id`` = vertex index, ``radius`` from the
        ``radius`` vertex attribute where the source has one.

    Raises
    ------
    IdsNotFoundError
        Ids without a skeleton file (all of them named).
    RemoteError, RequestTimeoutError, DataFormatError
        As :func:`read_meshes`; a skeleton file shorter or longer than its counts and the declared
        vertex attributes require is a ``DataFormatError``.

    Examples
    --------
    >>> import tempfile, pathlib, navis
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> n = navis.example_neurons(1)
    >>> for name, data in segmentation_tree(skeletons={int(n.id): n}).items():
    ...     _ = (folder / name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (folder / name).write_bytes(data)
    >>> sk = read_skeletons(f"precomputed://file://{folder}", [n.id])[0]
    >>> sk.n_nodes == n.n_nodes, str(sk.units)
    (True, '1 nanometer')
    """
    import navis
    from cloudfiles import CloudFiles
    from cloudvolume import Skeleton

    from .parallel import map_batches

    wanted = _ids(ids)
    layer = _layer(source_url)
    name = layer.name

    def work() -> list[Any]:
        if not wanted:
            return []
        cv = layer.volume()
        if not cv.info.get("skeletons") and cv.info.get("@type") != "neuroglancer_skeletons":
            raise DataFormatError(f"precomputed source {name} has no skeletons "
                                  "(its info has no 'skeletons' member)")
        source = cv.skeleton
        attributes = list(source.meta.info.get("vertex_attributes") or [])
        if source.meta.is_sharded():  # cloud-volume's shard reader: {segid: bytes or None}
            found = source.reader.get_data(wanted, source.meta.skeleton_path, progress=False)
            contents = {segid: found.get(segid) for segid in wanted}
        else:
            paths = {segid: source.meta.join(source.meta.skeleton_path, str(segid)) for segid in wanted}
            files = CloudFiles(cv.cloudpath, progress=False, secrets=cv.config.secrets)
            contents = dict(zip(paths, map_batches(files.get, list(paths.values()), max_workers=READ_WORKERS)))
        missing = [segid for segid, data in contents.items() if data is None]
        if missing:
            raise IdsNotFoundError(f"no skeleton in {name} for id(s) {missing}", ids=missing)
        out = []
        for segid, data in contents.items():
            expected = _expected_skeleton_bytes(data, attributes)
            if expected != len(data):
                raise DataFormatError(f"skeleton {segid} from {name} is {len(data)} bytes but its vertex and "
                                      f"edge counts and vertex attributes need {expected}; a truncated or "
                                      "damaged file")
            # decoded by cloud-volume, which also applies the info's transform (as CloudVolume.skeleton.get)
            skeleton = Skeleton.from_precomputed(data, segid=segid, vertex_attributes=attributes)
            skeleton.transform = source.meta.transform
            out.append((segid, skeleton.physical_space()))
        return out

    neurons = []
    for segid, skeleton in _run(layer.url, timeout, work, f"skeletons of {wanted}"):
        radius = getattr(skeleton, "radius", None)
        radius = None if radius is None or len(radius) != len(skeleton.vertices) else np.asarray(radius, "float64")
        neurons.append(_tree_neuron(segid, np.asarray(skeleton.vertices, dtype="float64"),
                                    np.asarray(skeleton.edges), radius))
    return navis.NeuronList(neurons)
