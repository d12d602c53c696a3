"""Meshes of CAVE datastacks: the segmentation source's meshes as navis ``MeshNeuron`` s in nm.

Where they come from -- the datastack info's ``segmentation_source`` (what fafbseg's
``flywire.get_mesh_neuron`` reads for a CAVE datastack name: ``get_cloudvolume`` ->
``get_datastack_segmentation_source``, fafbseg ``fafbseg/flywire/utils.py``):

* ``graphene://<server>/segmentation/table/<table>`` (every CAVE datastack): the chunkedgraph's
  ``info`` names ``data_dir`` and ``mesh``; the meshing service lists a root's fragment files
  (``GET <server>/meshing/api/v1/table/<table>/manifest/<root>:0?verify=True`` with body
  ``{"start_layer": <layer>}``, as cloud-volume 12.15.2 asks: ``datasource/graphene/metadata.py``
  ``manifest_endpoint``, ``datasource/graphene/mesh/unsharded.py`` ``fetch_manifest_remote``; the route
  is PyChunkedGraph ``pychunkedgraph/app/meshing/v1/routes.py``). For an **unsharded** mesh folder
  (its ``info`` has no ``sharding``) the fragments are files under ``<data_dir>/<mesh>/``: every
  listed fragment is fetched (a listed fragment that cannot be read is an error, never a smaller
  mesh), decoded with cloud-volume's ``Mesh.from_draco`` or, for a file that is not Draco,
  ``Mesh.from_precomputed`` (cloud-volume's own order), and concatenated as stored -- no chunk-boundary
  de-duplication, as fafbseg reads graphene meshes (``deduplicate_chunk_boundaries=False``,
  ``fafbseg/flywire/meshes.py``). A **sharded** mesh folder (FlyWire, MICrONS: Draco "initial"
  shards plus "dynamic" fragments, PyChunkedGraph ``meshing/manifest/sharded_format.md``) is read with
  cloud-volume's ``GrapheneShardedMeshSource`` (``CloudVolume(...).mesh.get(root,
  deduplicate_chunk_boundaries=False)``), within the request timeout.
* ``precomputed://...`` (a flat segmentation): :func:`connectomix.precomputed.read_meshes`.

Units: vertices of precomputed meshes are in the layer's physical space, nanometres (neuroglancer
``src/datasource/precomputed/meshes.md``: legacy fragments hold positions in "model" coordinates,
which for precomputed segmentations are nm; multi-resolution meshes carry a ``transform`` to nm that
cloud-volume applies); fafbseg builds FlyWire meshes with ``units="nm"`` (``fafbseg/flywire/meshes.py``).

Ids are root ids at the backend's materialization (resolved as for every query, so an outdated id
raises before anything is fetched); a root the meshing service lists no fragment for is reported with
:class:`~connectomix.errors.IdsNotFoundError`. Roots are read concurrently (one request chain per root
on :func:`connectomix.parallel.map_batches`); at an integer materialization with a result cache each
mesh is kept there (a root id's supervoxels never change, and the key holds the version's identity).
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import requests

from connectomix.cache import query_key
from connectomix.errors import (
    ConnectomixError,
    DataFormatError,
    IdsNotFoundError,
    IncompleteResponseError,
    RequestTimeoutError,
    ServerError,
    UnsupportedOperation,
)
from connectomix.parallel import DEFAULT_MAX_WORKERS, map_batches

from .transport import harden

__all__ = ["get_meshes", "GrapheneMeshReader"]

#: Layers are the top byte of a chunkedgraph node id (n_bits_for_layer_id, default 8; cloud-volume
#: ``GrapheneMetadata.decode_layer_id``).
_DEFAULT_LAYER_BITS = 8


def get_meshes(backend: Any, ids: np.ndarray, *, progress: bool = True) -> Any:
    """Meshes of root ids at the backend's materialization (see the module docstring).

    Parameters
    ----------
    backend
        A :class:`~connectomix_cave.backend.CaveBackend`.
    ids
        Root ids (duplicates read once; the answer follows their first order).
    progress
        A progress bar for long reads.

    Returns
    -------
    navis.NeuronList
        One ``MeshNeuron`` per id, ``units="1 nanometer"``, with ``materialization``, ``dataset`` and
        ``mesh_source`` attributes.

    Raises
    ------
    IdsNotFoundError
        Roots without a mesh (every one named).
    ConnectomixError
        Network, server or format faults (never a partial list or a partial mesh).
    """
    import navis

    ids = list(dict.fromkeys(int(i) for i in np.asarray(ids, dtype=np.int64).tolist()))
    if not ids:
        return navis.NeuronList([])
    version = backend.resolve_materialization(np.asarray(ids, dtype=np.int64), None)
    cache, key_base = _cache_of(backend, version)

    def one(root: int) -> tuple[np.ndarray, np.ndarray, str] | None:
        key = query_key(key_base, "cave_mesh", {"id": root}) if cache is not None else None
        if key is not None:
            hit = cache.get(key)
            if hit is not None:
                return _from_frame(hit)
        reader = _reader(backend)  # made on the first miss only: a warm cache asks nothing of the mesh source
        got = reader.read(root)
        if got is None:
            return None
        if key is not None:
            cache.put(key, _to_frame(*got, reader.source))
        return (*got, reader.source)

    got = map_batches(one, ids, max_workers=DEFAULT_MAX_WORKERS, progress=progress, desc="meshes")
    missing = [i for i, g in zip(ids, got) if g is None]
    if missing:
        raise IdsNotFoundError(f"CAVE datastack {backend.datastack!r} has no mesh for root id(s) {missing} "
                               f"(materialization {version}; source {_reader(backend).source})", ids=missing)
    neurons = []
    for root, (vertices, faces, source) in zip(ids, got):
        n = navis.MeshNeuron((vertices, faces), id=root, units="1 nanometer", process=False)
        n.materialization = version
        n.dataset = backend.datastack
        n.mesh_source = source
        neurons.append(n)
    return navis.NeuronList(neurons)


def _cache_of(backend: Any, version: Any) -> tuple[Any, dict | None]:
    """The result cache and the key base for meshes at ``version``, or ``(None, None)`` (no caching).

    The key holds the version's identity (server, datastack, the version's metadata as the server reports
    it: :meth:`~connectomix_cave.backend.CaveBackend.cache_identity`), so a re-deployed server is not
    answered from an older deployment's meshes.
    """
    cache = getattr(backend, "result_cache", None)
    if cache is None or not cache.usable or not isinstance(version, (int, np.integer)) or isinstance(version, bool):
        return None, None
    # the identity as the backend keeps it in the result cache too: a new process on a warm cache asks nothing
    identity = backend._identities.get(int(version), backend.cache_identity, backend.identity_ttl,
                                       disk=backend.records())
    if identity is None:
        return None, None
    return cache, {"backend": backend.name, "version": int(version), "data": dict(identity)}


def _to_frame(vertices: np.ndarray, faces: np.ndarray, source: str) -> pd.DataFrame:
    """One frame for the result cache: vertex rows (``kind`` 0, xyz nm) then face rows (``kind`` 1)."""
    n, m = len(vertices), len(faces)
    frame = pd.DataFrame({
        "kind": np.concatenate([np.zeros(n, dtype="int8"), np.ones(m, dtype="int8")]),
        "x": np.concatenate([vertices[:, 0], faces[:, 0].astype("float64")]),
        "y": np.concatenate([vertices[:, 1], faces[:, 1].astype("float64")]),
        "z": np.concatenate([vertices[:, 2], faces[:, 2].astype("float64")]),
    })
    frame.attrs["mesh_source"] = source
    return frame


def _from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    kind = frame["kind"].to_numpy()
    xyz = frame[["x", "y", "z"]].to_numpy(dtype="float64")
    return xyz[kind == 0], xyz[kind == 1].astype("int64"), str(frame.attrs.get("mesh_source", ""))


_READER_LOCK = threading.Lock()


def _reader(backend: Any) -> GrapheneMeshReader | _FlatMeshReader:
    """The backend's mesh reader, made once (one datastack info and chunkedgraph info request)."""
    reader = getattr(backend, "_mesh_reader", None)
    if reader is None:
        with _READER_LOCK:
            reader = getattr(backend, "_mesh_reader", None)
            if reader is None:
                try:
                    import cloudvolume  # noqa: F401 - its decoders read the fragments
                except ImportError:
                    raise UnsupportedOperation("meshes of CAVE datastacks are read with cloud-volume, which is not "
                                               "installed: pip install cloud-volume") from None
                with backend._map_errors("reading the datastack's segmentation source"):
                    source = backend.client.info.get_datastack_info().get("segmentation_source")
                if not isinstance(source, str) or not source:
                    raise DataFormatError(f"the info of CAVE datastack {backend.datastack!r} names no "
                                          f"segmentation_source (got {source!r}), so it has no meshes to read")
                reader = (GrapheneMeshReader(backend, source) if source.startswith("graphene://")
                          else _FlatMeshReader(source))
                backend._mesh_reader = reader
    return reader


class _FlatMeshReader:
    """A flat ``precomputed://`` segmentation source, read with :func:`connectomix.precomputed.read_meshes`.

    The layer is opened once (one :class:`~connectomix.precomputed.PrecomputedSource`: its four description
    files read once for the reader's life, not once per root).
    """

    def __init__(self, source: str):
        from connectomix.precomputed import PrecomputedSource

        self.source = source
        self.layer = PrecomputedSource(source)

    def read(self, root: int) -> tuple[np.ndarray, np.ndarray] | None:
        from connectomix.precomputed import read_meshes

        try:
            mesh = read_meshes(self.layer, [root])[0]
        except IdsNotFoundError:
            return None
        return np.asarray(mesh.vertices, dtype="float64"), np.asarray(mesh.faces, dtype="int64")


class GrapheneMeshReader:
    """A chunkedgraph's meshes: the meshing service's manifest, then the fragment files.

    Parameters
    ----------
    backend
        The CAVE backend: its chunkedgraph session (token, timeouts, retries) asks the chunkedgraph
        ``info`` and the manifests; fragment files are read with a session of their own that carries
        no token (they are in a storage bucket, not on the CAVE server).
    source
        ``graphene://<server>/segmentation/table/<table>``.
    """

    def __init__(self, backend: Any, source: str):
        from cloudvolume.datasource.graphene.metadata import GrapheneApiVersion, GraphenePath, extract_graphene_path
        from cloudvolume.paths import to_https_protocol

        self.backend = backend
        self.source = source
        url = source[len("graphene://"):].replace("middleauth+", "")
        path = extract_graphene_path(url)
        self.session = backend.client.chunkedgraph.session
        self.storage = requests.Session()
        harden(self.storage, lambda: backend.retry, pool_maxsize=32, pool_block=True)
        base = f"{path.scheme}://{path.fqdn}"
        self.info = self._json(self.session, f"{base}/{path.modality}/table/{path.dataset}/info",
                               "reading the chunkedgraph info")
        # the meshing service's path as cloud-volume builds it (GrapheneMetadata.manifest_endpoint): a URL
        # '.../segmentation/table/<t>' uses the newest API the chunkedgraph offers, '.../1.0/<t>' the legacy one
        version = path.version
        if version == "table":
            offered = sorted(int(v) for v in (self.info.get("app") or {}).get("supported_api_versions") or [1])
            version = ("1.0", "v1")[min(offered[-1], 1)]
        meshing = GrapheneApiVersion(version).path(GraphenePath(path.scheme, path.fqdn, "meshing", version,
                                                                path.dataset))
        self.manifest_url = f"{base}/{meshing}/manifest"
        try:
            data_dir = to_https_protocol(self.info["data_dir"])
        except (KeyError, TypeError, ValueError):
            raise DataFormatError(f"the chunkedgraph info of {source} has no usable data_dir") from None
        self.mesh_dir = f"{data_dir.rstrip('/')}/{self.info.get('mesh') or 'mesh'}"
        graph = self.info.get("graph") or {}
        self.layer_shift = 64 - int(graph.get("n_bits_for_layer_id", _DEFAULT_LAYER_BITS))
        meta = self.info.get("mesh_metadata") or {}
        self.max_meshed_layer = int(meta.get("max_meshed_layer", graph.get("n_layers", 0)) or 0)
        mesh_info = self._json(self.storage, f"{self.mesh_dir}/info", "reading the mesh folder's info",
                               missing_ok=True) or {}
        self.sharded = bool(mesh_info.get("sharding"))
        self._volume = None
        self._volume_lock = threading.Lock()

    def _get(self, session: requests.Session, url: str, doing: str, **kwargs: Any) -> requests.Response:
        with self.backend._map_errors(doing):
            response = session.get(url, **kwargs)
            if response.status_code == 404:
                return response
            response.raise_for_status()
            return response

    def _json(self, session: requests.Session, url: str, doing: str, *, missing_ok: bool = False,
              **kwargs: Any) -> Any:
        response = self._get(session, url, f"{doing} ({url})", **kwargs)
        if response.status_code == 404:
            if missing_ok:
                return None
            raise DataFormatError(f"{doing}: {url} answered 404")
        try:
            return response.json()
        except ValueError:
            raise IncompleteResponseError(f"{doing}: {url} did not answer JSON", url=url) from None

    def read(self, root: int) -> tuple[np.ndarray, np.ndarray] | None:
        """``(vertices_nm, faces)`` of a root, or ``None`` if the meshing service lists no fragment."""
        if self.sharded:
            return self._read_sharded(root)
        layer = root >> self.layer_shift
        if self.max_meshed_layer:
            layer = min(layer, self.max_meshed_layer)
        doing = f"reading the mesh manifest of root {root}"
        manifest = self._json(self.session, f"{self.manifest_url}/{root}:0", doing,
                              params={"verify": "True"}, json={"start_layer": int(layer)})
        fragments = manifest.get("fragments") if isinstance(manifest, dict) else None
        if not isinstance(fragments, list) or not all(isinstance(f, str) for f in fragments):
            raise DataFormatError(f"{doing}: the meshing service answered {str(manifest)[:200]!r}, not "
                                  "{'fragments': [...]}")
        if not fragments:
            return None
        parts = [self._fragment(root, name) for name in sorted(fragments)]  # cloud-volume's decoding order
        vertices = np.concatenate([p[0] for p in parts])
        offsets = np.cumsum([0] + [len(p[0]) for p in parts[:-1]])
        faces = np.concatenate([p[1] + off for p, off in zip(parts, offsets)])
        return vertices, faces

    def _fragment(self, root: int, name: str) -> tuple[np.ndarray, np.ndarray]:
        import DracoPy
        from cloudvolume import Mesh

        url = f"{self.mesh_dir}/{name}"
        response = self._get(self.storage, url, f"reading mesh fragment {name} of root {root}")
        if response.status_code == 404:
            raise ServerError(f"mesh fragment {name} of root {root}, listed by the meshing service, is not at "
                              f"{url} (HTTP 404); no mesh is returned rather than part of one", status=404, url=url)
        data = response.content
        try:
            try:
                mesh = Mesh.from_draco(data)
            except DracoPy.FileTypeException:
                mesh = Mesh.from_precomputed(data)
        except Exception as exc:  # noqa: BLE001 - any decoding failure is a damaged file
            raise DataFormatError(f"mesh fragment {url} of root {root} is not a readable mesh: "
                                  f"{type(exc).__name__}: {exc}") from None
        return _checked(root, url, mesh, len(data))

    def _read_sharded(self, root: int) -> tuple[np.ndarray, np.ndarray] | None:
        """cloud-volume's sharded graphene reader, within the request timeout."""
        import concurrent.futures

        from cloudvolume import CloudVolume

        with self._volume_lock:
            if self._volume is None:
                token = self.backend.client.auth.token
                self._volume = CloudVolume(self.source, secrets=token, use_https=True, progress=False)
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        future = pool.submit(self._volume.mesh.get, root, deduplicate_chunk_boundaries=False, allow_missing=True)
        timeout = self.backend.retry.request_timeout
        try:
            got = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise RequestTimeoutError(f"reading the mesh of root {root} from {self.source} took longer than "
                                      f"{timeout} s", url=self.source) from None
        except ConnectomixError:
            raise
        except Exception as exc:  # noqa: BLE001 - cloud-volume, cloud-files, requests, DracoPy
            raise ServerError(f"could not read the mesh of root {root} from {self.source}: "
                              f"{type(exc).__name__}: {exc}", url=self.source) from None
        finally:
            pool.shutdown(wait=False)
        mesh = got.get(root)
        return None if mesh is None else _checked(root, self.source, mesh, None)


def _checked(root: int, where: str, mesh: Any, n_bytes: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (float64 nm) and faces (int64) of a decoded mesh, refusing what no whole file gives."""
    vertices = np.asarray(mesh.vertices, dtype="float64").reshape(-1, 3)
    faces = np.asarray(mesh.faces, dtype="int64").reshape(-1, 3)
    bad = (not len(vertices) or not len(faces) or faces.min() < 0 or faces.max() >= len(vertices)
           or not np.isfinite(vertices).all())
    legacy_size = 4 + 12 * len(vertices) + 12 * len(faces)
    if n_bytes is not None and getattr(mesh, "encoding_type", None) == "precomputed" and n_bytes != legacy_size:
        bad = True  # a legacy fragment is exactly its counts' size (neuroglancer meshes.md)
    if bad:
        raise DataFormatError(f"the mesh of root {root} from {urlsplit(where).netloc or where} is damaged or "
                              f"truncated: {len(vertices)} vertices, {len(faces)} triangles"
                              + (f", {n_bytes} bytes" if n_bytes is not None else ""))
    return vertices, faces
