"""Meshes in release folders: ``meshes.parquet`` (see ``FORMAT.md``, "Meshes").

One row per neuron: ``id`` (int64, sorted, unique, in ``neurons.parquet``), ``n_vertices``, ``n_faces``
(int64) and ``fragment`` (binary): the neuron's surface as one neuroglancer *legacy precomputed* mesh
fragment -- ``uint32`` vertex count, ``float32`` xyz in nm, ``uint32`` triangle indices -- made by
:func:`connectomix.precomputed.encode_mesh` (cloud-volume's encoder). The bytes are exactly what a
precomputed server sends for ``mesh/{id}:0:0``: :func:`write_precomputed` writes a release's meshes as a
precomputed segmentation folder that cloud-volume (``precomputed://file://...``) and neuroglancer read,
and the emulators serve the same bytes (:func:`connectomix.precomputed.segmentation_tree`).

Why a Parquet table rather than the precomputed folder itself: the legacy format's manifests are named
``{id}:0``, and ``:`` is not allowed in file names on Windows -- a package (the embedded sample) holding
such files cannot be installed there; one table is also one read on object storage (row groups pruned by
``id``), is compressed (zstd), and its row counts and ``n_vertices``/``n_faces`` let a reader tell a
truncated fragment from a whole one, which the legacy format itself cannot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from connectomix.errors import InvalidArgumentError

__all__ = ["MESHES_FILE", "MESH_ROW_GROUP_SIZE", "manifest_entry", "mesh_arrays", "mesh_problems", "write_meshes",
           "write_precomputed"]

#: The file of a release folder that holds its meshes.
MESHES_FILE = "meshes.parquet"
#: Rows per row group: small, so reading a few meshes reads only their row groups (meshes are ~0.1-10 MB).
MESH_ROW_GROUP_SIZE = 16
SCHEMA = pa.schema([("id", pa.int64()), ("n_vertices", pa.int64()), ("n_faces", pa.int64()),
                    ("fragment", pa.binary())])


def mesh_arrays(neuron_id: int, value: Any) -> tuple[np.ndarray, np.ndarray]:
    """Vertices in nm and faces of a navis ``MeshNeuron`` (any length units) or a ``(vertices_nm, faces)`` pair.

    Raises
    ------
    InvalidArgumentError
        For other values, or a MeshNeuron without length units.

    Examples
    --------
    >>> import navis
    >>> m = navis.example_neurons(1, kind="mesh")          # 8 nm voxels
    >>> v, f = mesh_arrays(int(m.id), m)
    >>> bool((v == m.vertices * 8).all()), f.shape == m.faces.shape
    (True, True)
    """
    import navis

    from connectomix.morphology import nm_per_unit

    if isinstance(value, navis.MeshNeuron):
        return np.asarray(value.vertices, dtype="float64") * nm_per_unit(value), np.asarray(value.faces)
    if isinstance(value, tuple) and len(value) == 2:
        return np.asarray(value[0], dtype="float64"), np.asarray(value[1])
    raise InvalidArgumentError(f"mesh of id {neuron_id}: expected a navis.MeshNeuron or a (vertices_nm, faces) "
                               f"pair; got {type(value).__name__}")


def write_meshes(path: str | os.PathLike, meshes: Mapping[int, Any]) -> int:
    """Write ``meshes.parquet`` (sorted by id) and return the number of meshes.

    Parameters
    ----------
    path
        The file to write.
    meshes
        ``{id: navis.MeshNeuron or (vertices_nm, faces)}``; MeshNeurons are converted to nm.

    Raises
    ------
    InvalidArgumentError
        For a non-positive id or a mesh :func:`connectomix.precomputed.encode_mesh` refuses.
    """
    from connectomix.precomputed import encode_mesh

    rows = []
    for key, value in meshes.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or int(key) <= 0:
            raise InvalidArgumentError(f"mesh keys must be positive integer neuron ids; got {key!r}")
        vertices, faces = mesh_arrays(int(key), value)
        try:
            data = encode_mesh(vertices, faces)
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(f"mesh of id {int(key)}: {exc}") from None
        rows.append((int(key), len(vertices), len(np.asarray(faces).reshape(-1, 3)), data))
    rows.sort(key=lambda r: r[0])
    ids = [r[0] for r in rows]
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError(f"mesh ids repeat: {sorted({i for i in ids if ids.count(i) > 1})[:10]}")
    table = pa.table([pa.array([r[k] for r in rows], type=SCHEMA.field(k).type) for k in range(4)], schema=SCHEMA)
    pq.write_table(table, path, row_group_size=MESH_ROW_GROUP_SIZE, compression="zstd")
    return len(rows)


def write_precomputed(release: str | os.PathLike, dest: str | os.PathLike, *, compress: bool = False) -> Path:
    """Write a release's meshes as a neuroglancer precomputed segmentation folder (legacy meshes).

    The folder holds ``info``, ``mesh/info``, ``mesh/{id}:0`` and ``mesh/{id}:0:0`` (the fragment bytes
    of ``meshes.parquet`` unchanged), so ``cloudvolume.CloudVolume("precomputed://file://" + dest)``,
    navis and neuroglancer (served over HTTP) read it. Not on Windows (``:`` in file names).

    Parameters
    ----------
    release
        A local release folder with ``meshes.parquet``.
    dest
        The folder to create (its parent must exist; it must not exist yet).
    compress
        Write fragments gzipped as ``{id}:0:0.gz``, which cloud-volume reads from local folders.

    Returns
    -------
    Path
        ``dest``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from cloudvolume import CloudVolume
    >>> from connectomix_release.plugin import SAMPLE_DIR
    >>> out = write_precomputed(SAMPLE_DIR, pathlib.Path(tempfile.mkdtemp()) / "layer")
    >>> cv = CloudVolume(f"precomputed://file://{out}", progress=False)
    >>> len(cv.mesh.get(1734350788, fuse=False)[1734350788].vertices)
    6309
    """
    import json

    from connectomix.errors import DataFormatError
    from connectomix.precomputed import decode_mesh, segmentation_tree

    release, dest = Path(release), Path(dest)
    source = release / MESHES_FILE
    if not source.is_file():
        raise DataFormatError(f"release folder {str(release)!r} has no {MESHES_FILE}")
    if dest.exists():
        raise InvalidArgumentError(f"{str(dest)!r} exists; write_precomputed creates a new folder")
    table = pq.read_table(source)
    meshes = {}
    for segid, n_vertices, n_faces, data in zip(*(table.column(k).to_pylist() for k in SCHEMA.names)):
        vertices, faces = decode_mesh(data, segid=segid, source=str(source))
        if (len(vertices), len(faces)) != (n_vertices, n_faces):
            raise DataFormatError(f"mesh {segid} in {source} has {len(vertices)} vertices and {len(faces)} "
                                  f"triangles but its row records {n_vertices} and {n_faces}")
        meshes[segid] = (vertices, faces)
    manifest = json.loads((release / "manifest.json").read_text(encoding="utf-8"))
    voxel = manifest.get("voxel_size_nm") or (1, 1, 1)
    tree = segmentation_tree(meshes=meshes, resolution_nm=voxel, compress=compress)
    dest.mkdir()
    for name, data in tree.items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    return dest


def manifest_entry(count: int) -> dict[str, Any]:
    """The manifest's ``"meshes"`` declaration (FORMAT.md, "Meshes")."""
    return {"file": MESHES_FILE, "count": int(count), "units": "nm",
            "encoding": "neuroglancer precomputed legacy mesh fragment (uint32 n_vertices, float32 xyz nm, "
                        "uint32 triangles), https://github.com/google/neuroglancer/blob/master/src/datasource/"
                        "precomputed/meshes.md"}


def mesh_problems(con: Any, folder: Path, manifest: Mapping[str, Any], neurons_rel: str | None, report: Any, *,
                  deep: bool) -> list:
    """Problems of ``meshes.parquet`` and the manifest's ``"meshes"`` declaration (for ``validate_release``).

    Quick: the schema, the declared count, ids sorted, unique and in ``neurons``, and every fragment's
    byte length equal to ``4 + 12 * n_vertices + 12 * n_faces``. Deep: every fragment decoded as well
    (triangle indices within the vertices).
    """
    from connectomix.errors import DataFormatError
    from connectomix.precomputed import decode_mesh

    from .writer import Problem, quote_path

    path = folder / MESHES_FILE
    declared = manifest.get("meshes")
    if not path.is_file():
        return [Problem("meshes", f"manifest declares meshes but {MESHES_FILE} is missing")] if declared else []
    report.checks.append("meshes: schema, ids, fragment lengths" + (", every fragment decoded" if deep else ""))
    rel = f"read_parquet({quote_path(path)})"
    types = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}
    expected = {"id": "BIGINT", "n_vertices": "BIGINT", "n_faces": "BIGINT", "fragment": "BLOB"}
    if types != expected:
        return [Problem("meshes", f"{MESHES_FILE} must have exactly the columns {expected}; it has {types}")]
    ids = pq.read_table(path, columns=["id"]).column("id").to_numpy(zero_copy_only=False)  # in file order
    step = np.diff(ids)
    n, unsorted, dupes = len(ids), int((step < 0).sum()), int((step == 0).sum())
    bad_id = int(pd.isna(ids).sum() + (ids <= 0).sum()) if n else 0
    (bad_len,) = con.execute(
        f"SELECT count(*) FROM {rel} WHERE fragment IS NULL OR n_faces IS NULL OR n_faces < 1 "
        f"OR octet_length(fragment) != 4 + 12 * n_vertices + 12 * n_faces").fetchone()
    report.rows["meshes"] = int(n)
    problems = []
    if unsorted or dupes or bad_id:
        problems.append(Problem("meshes", f"ids must be positive, unique and sorted: {unsorted} out of order, "
                                          f"{dupes} repeated, {bad_id} null or not positive", "id"))
    if bad_len:
        problems.append(Problem("meshes", f"{bad_len} fragment(s) are not 4 + 12 * n_vertices + 12 * n_faces "
                                          "bytes with at least one triangle: truncated or damaged", "fragment"))
    if not isinstance(declared, Mapping) or declared.get("file") != MESHES_FILE or declared.get("count") != n \
            or declared.get("units") != "nm":
        problems.append(Problem("manifest", f"must declare the {n} meshes of {MESHES_FILE} as "
                                            f"{{'file': {MESHES_FILE!r}, 'count': {n}, 'units': 'nm', ...}}; "
                                            f"got {declared!r}", "meshes"))
    if neurons_rel is not None:
        unknown = [r[0] for r in con.execute(
            f"SELECT id FROM {rel} WHERE id NOT IN (SELECT id FROM {neurons_rel}) ORDER BY id LIMIT 10").fetchall()]
        if unknown:
            problems.append(Problem("meshes", f"meshes of ids missing from neurons: {unknown}", "id"))
    if deep and not problems:
        for segid, data in con.execute(f"SELECT id, fragment FROM {rel}").fetchall():
            try:
                decode_mesh(data, segid=segid, source=str(path))
            except DataFormatError as exc:
                problems.append(Problem("meshes", str(exc), "fragment"))
    return problems
