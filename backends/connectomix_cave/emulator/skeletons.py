"""The emulated CAVE skeleton service (SkeletonService 0.23.11) and FlyWire's published precomputed skeletons.

What is served is the release's own skeletons (``skeletons/{id}.swc``, nm), keyed by
root id: a root that is a release body with a skeleton has that skeleton whatever the
version (a root id names one fixed segment, so its skeleton never changes); roots
created by the SYNTHETIC edit script, and release bodies without a skeleton file, have
none (the real service would skeletonize them on demand from the L2 cache; the
emulator cannot, so it answers as the real service does for a root on its refusal
list).

Skeleton service, under ``/skeletoncache/api`` (routes and shapes from
CAVEconnectome/SkeletonService@0b3d901 ``skeletonservice/__init__.py`` and
``skeletonservice/datasets/api.py``; the client side is caveclient 8.2.1
``skeletonservice.py`` with the endpoint templates of ``endpoints.py:305-345``):

* ``GET /version`` -> ``"0.23.11"``; ``GET /versions`` -> ``[-1, 0, 1, 2, 3, 4]``
  (``SKELETON_DEFAULT_VERSION_PARAMS + SKELETON_VERSION_PARAMS``, service.py:55-101).
* ``GET /v1/{ds}/precomputed/skeleton/info`` and ``.../{skvn}/info``: the neuroglancer
  skeleton info of that skeleton version (``0`` and ``/info`` are the Neuroglancer
  version 2: ``radius`` and ``compartment`` as float32 vertex attributes).
* ``GET /v1/{ds}/precomputed/skeleton/{skvn}/{rid}/{fmt}`` and
  ``GET /v1/{ds}/async/get_skeleton/{skvn}/{rid}/{fmt}`` (what
  ``client.skeleton.get_skeleton`` calls on servers >= 0.13.7) with ``fmt``:

  - ``flatdict``: gzip-compressed JSON (``SkeletonService.compressDictToBytes``, spaces
    removed) ``{"meta": {"root_id", "skeleton_version", ...}, "edges": [[child,
    parent], ...], "root": i, "vertices": [[x, y, z], ...], "radius": [...],
    "compartment": [...]}`` in **nm** (the service skeletonizes with
    ``root_resolution=[1, 1, 1]``, api.py ``SkeletonResource__get_skeleton_C``);
  - ``swccompressed``: gzip-compressed SWC text without header, ``id type x y z radius
    parent`` with 0-based ids and coordinates and radii in **micrometres** with three
    decimals (``SkeletonIO.export_to_swc``: ``xyz_scaling=1000``, ``fmt %.3f``,
    skeleton_io_from_meshparty.py:210-287);
  - ``precomputed``: the neuroglancer skeleton of that version's info.

  Vertices come in the release SWC's row order (the real service orders SWC rows by
  cover paths). ``compartment`` is the release SWC's label column. Not served:
  ``lvl2_ids`` and ``mesh_to_skel_map`` (there is no L2 graph), soma metadata.
  A root without a skeleton: HTTP 400 ``{"Error": "Problematic root id: ... is in the
  refusal list"}``; an id that is no root: 400 ``{"Error": "Invalid root id: ..."}``
  (service.py ``get_skeleton_by_datastack_and_rid_async``; api.py turns its ValueError
  into 400).
* ``GET /v1/{ds}/precomputed/skeleton/{rid}`` and ``.../{skvn}/{rid}``: precomputed.
* ``POST /v1/{ds}/precomputed/skeleton/exists`` -> ``{rid: bool}`` (``true`` for a
  single id, as caveclient reads it), ``GET /v1/{ds}/bulk/get_skeletons/{skvn}/{fmt}/{gms}/{rids}``
  (caveclient ``get_bulk_skeletons``), and ``POST
  /v1/{ds}/bulk/get_cached_skeletons/{skvn}/{fmt}`` (caveclient ``fetch_skeletons``)
  -> ``{rid: hex of the compressed skeleton}`` for the roots that have one. Their limits are the
  real service's: the GET route reads the first 10 ids and ignores the rest
  (``MAX_BULK_SYNCHRONOUS_SKELETONS``, service.py:47 and ``get_skeletons_bulk_by_datastack_and_rids``),
  the POST route refuses more than 500 with 400 ``{"Error": "Too many root IDs requested: N. Maximum
  allowed is 500."}`` (``MAX_BULK_CACHED_SKELETONS``, service.py:48; api.py
  ``SkeletonResource__get_cached_skeletons_bulk.post``). The POST route answers only skeletons already
  in the service's cache (roots in :attr:`SkeletonService.uncached` are left out, as the real service
  leaves out a root it has not skeletonized yet; the one-root routes still answer them, as the real
  service skeletonizes on demand); the GET route answers ``"async"`` for them.

The datastack info's ``skeleton_source`` is
``precomputed://{base}/skeletoncache/api/v1/{ds}/precomputed/skeleton`` (the shape of
caveclient@c57c15f ``caveclient/tools/testing.py:185``). caveclient's ``get_skeleton``
also needs an L2 cache (``l2cache.has_cache()``: the chunkedgraph table in
``GET /l2cache/api/v1/table_mapping``) and ``chunkedgraph.is_valid_nodes`` (``GET
/segmentation/api/v1/table/{tbl}/valid_nodes``): both are served here.

FlyWire's published precomputed skeletons (fafbseg 3.2.3, installed; navis-org/fafbseg-py@d114e29 has it at lines 38-40;
``fafbseg/flywire/skeletonize.py:38-48``: ``{base}/flyconnectome/flywire_skeletons_{630,783}/{root_id}``,
read with ``navis.read_precomputed(..., info=SKELETON_INFO)``, nm, a float32 ``radius``
attribute): ``GET /flyconnectome/flywire_skeletons_{v}/{rid}`` serves the skeleton of a
root current at materialization ``v`` of the emulator, ``/info`` that info.
"""

from __future__ import annotations

import binascii
import functools
import gzip
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .server import HttpError, Request, Response

__all__ = ["SERVICE_VERSION", "SKELETON_VERSIONS", "SkeletonStore", "add_routes", "compress_json",
           "skeleton_source_url"]

#: What ``GET /skeletoncache/api/version`` reports (SkeletonService@0b3d901 ``.bumpversion.cfg``).
SERVICE_VERSION = "0.23.11"
#: ``GET /skeletoncache/api/versions``: -1 (latest), 0 (Neuroglancer), then the skeleton versions 1-4.
SKELETON_VERSIONS = [-1, 0, 1, 2, 3, 4]
_NEUROGLANCER_VERSION = 2
_LATEST_VERSION = 4
_RADIUS = {"id": "radius", "data_type": "float32", "num_components": 1}
_IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
#: The info of each skeleton version (SkeletonService service.py:56-100 ``SKELETON_VERSION_PARAMS``).
VERSION_INFO = {
    1: {"@type": "neuroglancer_skeletons", "transform": _IDENTITY, "vertex_attributes": []},
    2: {"@type": "neuroglancer_skeletons", "transform": _IDENTITY, "vertex_attributes": [
        _RADIUS, {"id": "compartment", "data_type": "float32", "num_components": 1}]},
    3: {"@type": "neuroglancer_skeletons", "transform": _IDENTITY, "vertex_attributes": [
        _RADIUS, {"id": "compartment", "data_type": "uint8", "num_components": 1}]},
    4: {"@type": "neuroglancer_skeletons", "transform": _IDENTITY, "vertex_attributes": [
        _RADIUS, {"id": "compartment", "data_type": "uint8", "num_components": 1}]},
}
#: fafbseg's ``SKELETON_INFO`` of the published FlyWire skeletons (skeletonize.py:42-48).
FLYWIRE_INFO = {"@type": "neuroglancer_skeletons", "transform": _IDENTITY, "vertex_attributes": [_RADIUS]}
_FORMATS = ("flatdict", "swccompressed", "precomputed")


def skeleton_source_url(base_url: str, datastack: str) -> str:
    """The datastack info's ``skeleton_source`` for ``datastack`` served at ``base_url``."""
    return f"precomputed://{base_url}/skeletoncache/api/v1/{datastack}/precomputed/skeleton"


def compress_json(value: Any) -> bytes:
    """JSON without spaces, gzip-compressed (SkeletonService ``compressDictToBytes``)."""
    return gzip.compress(json.dumps(value).replace(" ", "").encode("utf-8"))


@dataclass(frozen=True)
class Skeleton:
    """One release skeleton: vertices (nm) in SWC row order, ``parent`` row index (-1 at the root)."""

    vertices: np.ndarray
    parent: np.ndarray
    radius: np.ndarray
    label: np.ndarray

    @property
    def root(self) -> int:
        """The first root row (a skeleton in pieces has one root per piece; flatdict names one)."""
        return int(np.flatnonzero(self.parent < 0)[0])

    @property
    def edges(self) -> np.ndarray:
        """``[child, parent]`` row pairs (meshparty's orientation: towards the root)."""
        child = np.flatnonzero(self.parent >= 0)
        return np.column_stack([child, self.parent[child]]).astype(np.int64)


class SkeletonStore:
    """The release's skeletons by root id, read on first use (``skeletons/{id}.swc``)."""

    def __init__(self, release_path: Path):
        self.folder = Path(release_path) / "skeletons"
        self._lock = threading.Lock()
        self._cache: dict[int, Skeleton | None] = {}

    @functools.cached_property
    def ids(self) -> frozenset[int]:
        """Ids with a skeleton file."""
        if not self.folder.is_dir():
            return frozenset()
        return frozenset(int(p.stem) for p in self.folder.glob("*.swc") if p.stem.isdigit())

    def get(self, root_id: int) -> Skeleton | None:
        if root_id not in self.ids:
            return None
        with self._lock:
            if root_id not in self._cache:
                self._cache[root_id] = _read_swc(self.folder / f"{root_id}.swc")
            return self._cache[root_id]


def _read_swc(path: Path) -> Skeleton:
    table = pd.read_csv(path, sep=r"\s+", comment="#", header=None,
                        names=["node_id", "label", "x", "y", "z", "radius", "parent_id"])
    row = pd.Series(np.arange(len(table)), index=table["node_id"].to_numpy(np.int64))
    parent_ids = table["parent_id"].to_numpy(np.int64)
    parent = np.where(parent_ids < 0, -1, row.reindex(parent_ids).fillna(-1).to_numpy(np.int64))
    return Skeleton(vertices=table[["x", "y", "z"]].to_numpy(np.float64), parent=parent,
                    radius=table["radius"].to_numpy(np.float64), label=table["label"].to_numpy(np.int64))


# --- encodings ---------------------------------------------------------------------------------------


def flatdict(sk: Skeleton, root_id: int, skeleton_version: int, datastack: str) -> dict[str, Any]:
    """The service's ``flatdict`` (``SkeletonService._skeleton_to_flatdict``), without L2 fields."""
    compartment = sk.label.astype(float).tolist() if skeleton_version == 2 else sk.label.tolist()
    return {"meta": {"root_id": root_id, "skeleton_version": skeleton_version, "meta": {"datastack": datastack}},
            "edges": sk.edges.tolist(), "root": sk.root, "vertices": sk.vertices.tolist(),
            "radius": sk.radius.tolist(), "compartment": compartment}


def swc_text(sk: Skeleton) -> str:
    """SWC rows ``id type x y z radius parent`` in micrometres, three decimals, no header (SkeletonIO)."""
    rows = [f"{i} {int(t)} {x / 1000:.3f} {y / 1000:.3f} {z / 1000:.3f} {r / 1000:.3f} {int(p)}"
            for i, (t, (x, y, z), r, p) in enumerate(zip(sk.label, sk.vertices, sk.radius, sk.parent))]
    return "\n".join(rows) + "\n"


def precomputed_bytes(sk: Skeleton, info: dict[str, Any]) -> bytes:
    """The neuroglancer precomputed skeleton for ``info``'s vertex attributes (encoded by cloud-volume)."""
    attributes = [a["id"] for a in info["vertex_attributes"]]
    if attributes == ["radius"]:
        from connectomix.precomputed import encode_skeleton

        return encode_skeleton(sk.vertices, sk.edges, radius=sk.radius)
    from cloudvolume import Skeleton as CvSkeleton

    cv = CvSkeleton(sk.vertices.astype(np.float32), sk.edges.astype(np.uint32),
                    extra_attributes=info["vertex_attributes"])
    if "radius" in attributes:
        cv.radius = sk.radius.astype(np.float32)
    if "compartment" in attributes:
        kind = next(a["data_type"] for a in info["vertex_attributes"] if a["id"] == "compartment")
        cv.compartment = sk.label.astype(kind)
    return cv.to_precomputed()


# --- routes ------------------------------------------------------------------------------------------


def add_routes(app: Any) -> None:
    """Register the skeleton service, L2-cache table mapping, ``valid_nodes`` and FlyWire's published
    skeletons on a :class:`~.app.CaveApp` (its ``router``, ``dataset``, ``datastacks``, ``pcg_table``)."""
    service = SkeletonService(app)
    app.skeletons = service
    r = app.router.add
    get, post = ("GET",), ("POST",)
    base = "/skeletoncache/api"
    r(get, base + "/version", "skeleton_version", lambda q: Response.json(SERVICE_VERSION), public=True)
    r(get, base + "/versions", "skeleton_versions", lambda q: Response.json(SKELETON_VERSIONS), public=True)
    sk = base + "/v1/{ds}/precomputed/skeleton"
    r(get, sk + "/info", "skeleton_info", service.info)
    r(get, sk + "/{skvn}/info", "skeleton_info", service.info)
    r(get, sk + "/get_refusal_list", "skeleton_refusal_list", service.refusal_list)
    r(post, sk + "/exists", "skeletons_exist", service.exists)
    r(get, sk + "/{rid}", "skeleton", service.skeleton)
    r(get, sk + "/{skvn}/{rid}", "skeleton", service.skeleton)
    r(get, sk + "/{skvn}/{rid}/{fmt}", "skeleton", service.skeleton)
    r(get, base + "/v1/{ds}/async/get_skeleton/{skvn}/{rid}/{fmt}", "skeleton", service.skeleton)
    r(post, base + "/v1/{ds}/bulk/get_cached_skeletons/{skvn}/{fmt}", "skeletons_bulk", service.bulk)
    r(get, base + "/v1/{ds}/bulk/get_skeletons/{skvn}/{fmt}/{gms}/{rids}", "skeletons_bulk", service.bulk_get)
    r(get, "/l2cache/api/v1/table_mapping", "l2cache_table_mapping", service.l2_table_mapping)
    r(get, "/segmentation/api/v1/table/{tbl}/valid_nodes", "valid_nodes", service.valid_nodes)
    # public, as the published bucket is (fafbseg reads it without credentials)
    r(get, "/flyconnectome/flywire_skeletons_{v}/info", "flywire_skeleton", service.flywire_info, public=True)
    r(get, "/flyconnectome/flywire_skeletons_{v}/{rid}", "flywire_skeleton", service.flywire_skeleton, public=True)


def _int(req: Request, name: str, what: str) -> int:
    raw = req.params[name]
    try:
        return int(raw)
    except ValueError:
        raise HttpError(404, f"{what} {raw!r} is not an integer") from None


def _error(status: int, message: str) -> Response:
    """An error as SkeletonService's handlers return it: ``{"Error": message}``."""
    return Response.json({"Error": message}, status=status)


class SkeletonService:
    """Handlers of the emulated skeleton service (see the module docstring).

    Attributes
    ----------
    store
        The release's skeletons.
    cut_next
        Number of following skeleton bodies to cut to half their bytes with a matching
        ``Content-Length`` (a broken body in a valid HTTP message), for fault tests; in a bulk
        answer, the compressed skeletons inside it (hex of half the bytes).
    uncached
        Roots whose skeleton is not in the service's cache yet: left out of the cached bulk answer,
        ``"async"`` in the synchronous bulk answer, served by the one-root routes.
    """

    def __init__(self, app: Any):
        self.app = app
        self.store = SkeletonStore(app.dataset.release.path)
        self.cut_next = 0
        self.uncached: set[int] = set()
        self._lock = threading.Lock()

    def _body(self, body: bytes) -> bytes:
        with self._lock:
            if self.cut_next > 0:
                self.cut_next -= 1
                return body[: len(body) // 2]
        return body

    def _version(self, raw: str | None) -> int:
        if raw is None:
            return _NEUROGLANCER_VERSION
        try:
            skvn = int(raw)
        except ValueError:
            raise HttpError(404, f"skeleton version {raw!r} is not an integer") from None
        if skvn not in SKELETON_VERSIONS:
            raise HttpError(400, f"Invalid skeleton version: v{skvn}. Valid versions: {SKELETON_VERSIONS}")
        return {-1: _LATEST_VERSION, 0: _NEUROGLANCER_VERSION}.get(skvn, skvn)

    def _lookup(self, root_id: int) -> Skeleton:
        """The skeleton of a root, or the service's 400 for an id that is no root / has none."""
        info = self.app.dataset.history.roots.get(root_id)
        if info is None:
            raise _Refused(f"Invalid root id: {root_id} (perhaps it doesn't exist; the error is unclear)")
        sk = self.store.get(root_id)
        if sk is None:
            raise _Refused(f"Problematic root id: {root_id} is in the refusal list")
        return sk

    def info(self, req: Request) -> Response:
        self.app._datastack(req)
        return Response.json(VERSION_INFO[self._version(req.params.get("skvn"))])

    def skeleton(self, req: Request) -> Response:
        ds = self.app._datastack(req)
        skvn = self._version(req.params.get("skvn"))
        fmt = req.params.get("fmt", "precomputed")
        if fmt not in _FORMATS:
            return _error(400, f"Unknown output format: {fmt}; the connectomix emulator serves {list(_FORMATS)}")
        root_id = _int(req, "rid", "root id")
        try:
            sk = self._lookup(root_id)
        except _Refused as exc:
            return _error(400, str(exc))
        return Response(body=self._body(_encode(sk, root_id, skvn, fmt, ds)), content_type="application/octet-stream")

    def bulk(self, req: Request) -> Response:
        ds = self.app._datastack(req)
        skvn = self._version(req.params.get("skvn"))
        fmt = req.params["fmt"]
        if fmt not in ("flatdict", "swccompressed"):
            return _error(400, f"Unknown output format: {fmt}")
        body = req.json()
        ids = body.get("root_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise HttpError(400, "the JSON body needs 'root_ids'")
        if len(ids) > 500:  # MAX_BULK_CACHED_SKELETONS (api.py SkeletonResource__get_cached_skeletons_bulk)
            return _error(400, f"Too many root IDs requested: {len(ids)}. Maximum allowed is 500.")
        out = {}
        for raw in ids:
            try:
                sk = self._lookup(int(raw))
            except (_Refused, ValueError):
                continue
            if int(raw) in self.uncached:
                continue
            out[str(int(raw))] = binascii.hexlify(self._body(_encode(sk, int(raw), skvn, fmt, ds))).decode("ascii")
        return Response.json(out)

    def bulk_get(self, req: Request) -> Response:
        """``get_bulk_skeletons`` (GET, at most 10 ids): ``{rid: hex}``, ``"invalid_rid"`` for ids that are no
        root; roots without a skeleton are left out."""
        ds = self.app._datastack(req)
        skvn = self._version(req.params.get("skvn"))
        fmt = req.params["fmt"]
        if fmt not in ("flatdict", "swccompressed"):
            return _error(400, f"Unknown output format: {fmt}")
        try:
            ids = [int(i) for i in req.params["rids"].split(",") if i]
        except ValueError:
            return _error(400, f"root ids must be integers: {req.params['rids']!r}")
        out: dict[str, str] = {}
        for rid in ids[:10]:  # MAX_BULK_SYNCHRONOUS_SKELETONS
            if rid not in self.app.dataset.history.roots:
                out[str(rid)] = "invalid_rid"
            elif rid in self.store.ids and rid in self.uncached:
                out[str(rid)] = "async"
            elif rid in self.store.ids:
                out[str(rid)] = binascii.hexlify(_encode(self.store.get(rid), rid, skvn, fmt, ds)).decode("ascii")
        return Response.json(out)

    def exists(self, req: Request) -> Response:
        self.app._datastack(req)
        body = req.json()
        ids = body.get("root_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            raise HttpError(400, "the JSON body needs 'root_ids'")
        found = {str(int(i)): int(i) in self.store.ids for i in ids}
        return Response.json(next(iter(found.values())) if len(found) == 1 else found)

    def refusal_list(self, req: Request) -> Response:
        ds = self.app._datastack(req)
        refused = sorted(set(self.app.dataset.release.body_ids().tolist()) - self.store.ids)
        text = "".join(f"{ds},{i}\n" for i in refused)
        return Response(body=gzip.compress(text.encode("ascii")), content_type="application/octet-stream")

    def l2_table_mapping(self, req: Request) -> Response:
        return Response.json({self.app.pcg_table: {"l2cache_id": f"{self.app.pcg_table}_l2",
                                                   "cv_path": f"graphene://{self.app.base_url}/segmentation/table/"
                                                              f"{self.app.pcg_table}"}})

    def valid_nodes(self, req: Request) -> Response:
        """PyChunkedGraph's ``valid_nodes``: the ids sent that are roots created by ``end_timestamp``."""
        self.app._cg(req)
        from .app import _time_param, _id_list
        from .timeutil import now_us

        body = req.json()
        ids = _id_list(body.get("node_ids") if isinstance(body, dict) else None, "node_ids")
        end = _time_param(req, "end_timestamp", now_us())
        roots = self.app.dataset.history.roots
        return Response.json({"valid_roots": [i for i in ids if i in roots and roots[i].created <= end]})

    def flywire_info(self, req: Request) -> Response:
        self._flywire_version(req)
        return Response.json(FLYWIRE_INFO)

    def flywire_skeleton(self, req: Request) -> Response:
        spec = self._flywire_version(req)
        root_id = _int(req, "rid", "root id")
        info = self.app.dataset.history.roots.get(root_id)
        sk = self.store.get(root_id)
        if info is None or sk is None or not info.is_latest(spec.time_stamp):
            raise HttpError(404, f"no published skeleton for root id {root_id} at materialization {spec.version}")
        return Response(body=self._body(precomputed_bytes(sk, FLYWIRE_INFO)), content_type="application/octet-stream")

    def _flywire_version(self, req: Request):
        v = _int(req, "v", "materialization")
        spec = self.app.dataset.versions.get(v)
        if spec is None or not spec.valid:
            raise HttpError(404, f"no published skeletons for materialization {v}")
        return spec


class _Refused(Exception):
    """The service's ValueError for a root it will not skeletonize (answered with HTTP 400)."""


def _encode(sk: Skeleton, root_id: int, skvn: int, fmt: str, datastack: str) -> bytes:
    if fmt == "flatdict":
        return compress_json(flatdict(sk, root_id, skvn, datastack))
    if fmt == "swccompressed":
        return gzip.compress(swc_text(sk).encode("ascii"))
    return precomputed_bytes(sk, VERSION_INFO[skvn])
