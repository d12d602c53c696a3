"""Skeletons of CAVE datastacks, from the sources the datastacks publish.

Two sources, chosen per datastack by the catalogue's ``[datasets.X.morphology]``
``skeleton_source`` (option ``skeleton_source`` overrides it):

``"service"``
    The CAVE skeleton service at the datastack's ``local_server`` (MICrONS; the
    SkeletonService repository, CAVEconnectome/SkeletonService). On servers >= 0.23.9,
    skeletons are asked in bulk first, as caveclient 8.2.1's ``client.skeleton.fetch_skeletons(
    rids, skeleton_version=4)`` asks them (``method_constraint=">=0.23.9"``): ``POST
    {local}/skeletoncache/api/v1/{ds}/bulk/get_cached_skeletons/4/flatdict`` with ``{"root_ids":
    [...], "generate_missing": false, "verbose_level": 0}``, spread over up to :data:`MAX_WORKERS`
    concurrent requests (:func:`bulk_size`) of at most :data:`BULK_LIMIT` (500) roots each -- the
    service refuses more with 400 (SkeletonService@0b3d901
    ``skeletonservice/datasets/service.py:48`` ``MAX_BULK_CACHED_SKELETONS = 500``, ``api.py``
    ``SkeletonResource__get_cached_skeletons_bulk.post``; caveclient ``skeletonservice.py:32``
    mirrors it). The answer ``{"<rid>": "<hex of the flatdict body>"}`` holds only skeletons already
    in the service's cache; every root it leaves out (not skeletonized yet, refused, or not a root)
    is then asked alone, which skeletonizes it or answers the refusal below. (The synchronous bulk
    route, ``GET .../bulk/get_skeletons/...``, takes 10 roots and answers ``"async"`` for
    uncached ones: not used.) Servers without the route (404, or older than 0.23.9) are asked one
    request per neuron, exactly as caveclient 8.2.1's ``client.skeleton.get_skeleton(rid,
    skeleton_version=4, output_format="dict")`` sends it (``skeletonservice.py``;
    URL templates from ``caveclient.endpoints``): ``GET
    {local}/skeletoncache/api/v1/{ds}/async/get_skeleton/4/{rid}/flatdict`` on
    servers >= 0.13.7 (the synchronous ``precomputed/skeleton/...`` path before),
    after one ``GET .../skeletoncache/api/version`` and ``.../versions``. The body
    is gzip-compressed JSON with ``vertices`` in **nm** (the service skeletonizes
    with ``root_resolution=[1, 1, 1]``, SkeletonService ``datasets/api.py``),
    ``edges``, ``root``, ``radius`` (nm) and ``compartment``. Node ids are the
    vertex indices (0 = the first vertex), parents follow the edges from
    ``root``, the SWC label is the compartment. An answer ``400 {"Error":
    "Invalid root id ..."}`` or ``"... is in the refusal list"`` means the
    service has no skeleton for that root.
a URL template with ``{materialization}``
    Published neuroglancer precomputed skeletons per materialization (FlyWire's
    ``https://flyem.mrc-lmb.cam.ac.uk/flyconnectome/flywire_skeletons_{630,783}``,
    navis-org/fafbseg-py ``fafbseg/flywire/skeletonize.py:38-48`` (fafbseg 3.2.3): nm, float32
    radius): ``GET {url}/{root_id}`` per neuron (404: no skeleton), the folder's ``info`` (or
    fafbseg's ``SKELETON_INFO`` where it has none) for the vertex attributes, each file's length
    checked against its counts, decoded by cloud-volume's ``Skeleton.from_precomputed``; node ids
    are vertex indices, parents follow the edges from vertex 0; only at the materializations the
    catalogue lists (``skeleton_materializations``).
``"none"``
    No skeletons (:class:`~connectomix.errors.UnsupportedOperation`).

Root ids are those of the resolved materialization (``'auto'`` picks a version
where all of them exist, an integer checks that they exist there); the version is
recorded on every neuron (``materialization`` and ``version``, with ``dataset`` and
``skeleton_source``) and on the list (``attrs``: ``table, backend, dataset, version, units,
source``, the keys :func:`connectomix.morphology.label_neurons` writes).
Requests run on a worker pool (:func:`connectomix.parallel.map_batches`, :data:`MAX_WORKERS`,
with a progress bar for long work) through sessions with the backend's retry policy and
whole-body checks (:mod:`.transport`); a broken body or a failure after the retries raises a
:class:`~connectomix.errors.ConnectomixError`, never a partial list. At an integer
materialization with the dataset's result cache, each skeleton is kept there
(keyed by the version's cache identity, kept in the cache's records like the
Dataset's; entries checked on read like every cached table), so asking again
sends no request, also from a new process within ``identity_ttl``.
"""

from __future__ import annotations

import binascii
import gzip
import json
import threading
import zlib
from typing import Any

import numpy as np
import pandas as pd
import requests

from connectomix.cache import query_key
from connectomix.errors import (
    DataFormatError,
    IdsNotFoundError,
    IncompleteResponseError,
    InvalidArgumentError,
    ServerError,
    UnsupportedOperation,
)
from connectomix.parallel import batched, map_batches

__all__ = ["SkeletonReader", "SERVICE", "NONE", "SKELETON_VERSION", "BULK_LIMIT", "bulk_size", "decode_flatdict",
           "decode_precomputed"]

SERVICE = "service"
NONE = "none"
#: The skeleton version asked of the service: caveclient 8.2.1's default (``get_skeleton(skeleton_version=4)``).
SKELETON_VERSION = 4
#: Server versions from which caveclient uses the asynchronous endpoint / the ``flatdict`` format.
_ASYNC_FROM = (0, 13, 7)
_FLATDICT_FROM = (0, 6, 0)
#: Servers from which the cached bulk route exists (caveclient 8.2.1 ``fetch_skeletons``: ``>=0.23.9``).
_BULK_FROM = (0, 23, 9)
#: Most roots per cached bulk request: the service refuses more (SkeletonService@0b3d901 service.py:48
#: ``MAX_BULK_CACHED_SKELETONS = 500``; api.py answers 400 "Too many root IDs requested").
BULK_LIMIT = 500
#: Fewest roots per bulk request when a read is spread over :data:`MAX_WORKERS` requests: caveclient's own
#: small bulk (``MAX_BULK_SYNCHRONOUS_SKELETONS = 10``, skeletonservice.py:31).
BULK_MIN = 10


def bulk_size(n: int) -> int:
    """Roots per bulk request for a read of ``n``: spread over :data:`MAX_WORKERS` concurrent requests, at least
    :data:`BULK_MIN` and at most :data:`BULK_LIMIT` each.

    The service reads the roots of one request one after another from its cache bucket
    (``get_cached_skeletons_bulk_by_datastack_and_rids`` loops over them, service.py), so one request of 100
    roots would wait for 100 reads in a row; a few concurrent requests keep the service's workers busy, as
    one request per root did, with a tenth of the requests or fewer.

    Examples
    --------
    >>> bulk_size(5), bulk_size(100), bulk_size(100_000)
    (10, 13, 500)
    """
    return min(BULK_LIMIT, max(BULK_MIN, -(-int(n) // MAX_WORKERS)))
#: Concurrent skeleton requests (connecto measured no gain past 8 workers, anchors-features.md 3.2).
MAX_WORKERS = 8
_NODE_COLUMNS = ["node_id", "label", "x", "y", "z", "radius", "parent_id"]


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def decode_flatdict(body: bytes, root_id: int, url: str) -> pd.DataFrame:
    """The node table (nm) of a skeleton service ``flatdict`` body, or an error naming what is wrong.

    Raises
    ------
    IncompleteResponseError
        The body is not whole gzip-compressed JSON (cut short, or not gzip).
    DataFormatError
        The JSON lacks vertices/edges/root, has arrays of the wrong shapes, or its
        edges do not form one tree over all vertices.
    """
    try:
        data = json.loads(gzip.decompress(body))
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise IncompleteResponseError(
            f"the skeleton of root {root_id} from {url} is not whole gzip-compressed JSON "
            f"({len(body)} bytes; {type(exc).__name__}: {exc})", url=url) from None
    if not isinstance(data, dict):
        raise DataFormatError(f"the skeleton of root {root_id} from {url} is not a JSON object")
    try:
        vertices = np.asarray(data["vertices"], dtype="float64").reshape(-1, 3)
        edges = np.asarray(data["edges"], dtype="int64").reshape(-1, 2)
        root = int(data["root"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"the skeleton of root {root_id} from {url} lacks vertices/edges/root or has them "
                              f"in another shape ({type(exc).__name__}: {exc})") from None
    n = len(vertices)
    radius = np.asarray(data.get("radius", np.full(n, np.nan)), dtype="float64")
    label = np.asarray(data.get("compartment", np.zeros(n)), dtype="float64")
    problems = []
    if not n or not np.isfinite(vertices).all():
        problems.append("no vertices, or vertices that are not finite numbers")
    if len(radius) != n or len(label) != n:
        problems.append(f"{len(radius)} radii and {len(label)} compartments for {n} vertices")
    if not 0 <= root < max(n, 1) or len(edges) >= n or (len(edges) and not (
            (edges >= 0).all() and (edges < n).all())):
        problems.append(f"root {root} and {len(edges)} edges do not fit {n} vertices")
    if problems:
        raise DataFormatError(f"the skeleton of root {root_id} from {url} is malformed: {'; '.join(problems)}")
    parent = _parents(n, edges, root)
    if parent is None:
        raise DataFormatError(f"the skeleton of root {root_id} from {url} is malformed: its {len(edges)} edges "
                              f"over {n} vertices hold a cycle")
    return pd.DataFrame({"node_id": np.arange(n, dtype="int64"), "label": label.astype("int64"),
                         "x": vertices[:, 0], "y": vertices[:, 1], "z": vertices[:, 2], "radius": radius,
                         "parent_id": parent})


def _parents(n: int, edges: np.ndarray, root: int) -> np.ndarray | None:
    """Parent of each vertex walking the (undirected) edges from ``root``; ``None`` if they hold a cycle.

    The service's skeletons are one tree; a forest (a skeleton in pieces) keeps its pieces, each
    rooted at its lowest vertex index (the piece holding ``root`` at ``root``).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components

    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    pieces, piece = connected_components(graph, directed=False)
    if len(edges) != n - pieces:
        return None
    parent = np.full(n, -1, dtype="int64")
    starts = {int(piece[root]): root}
    for label, v in zip(*np.unique(piece, return_index=True)):  # each piece's lowest vertex index
        starts.setdefault(int(label), int(v))
    for start in starts.values():
        order, pred = breadth_first_order(graph, start, directed=False, return_predecessors=True)
        parent[order[1:]] = pred[order[1:]]
    return parent


class SkeletonReader:
    """Reads skeletons for one :class:`~connectomix_cave.backend.CaveBackend` (see the module docstring).

    Parameters
    ----------
    backend
        The backend (its client, retry policy, version resolver, cache identity and result cache).
    source
        ``"service"``, ``"none"``, a precomputed URL template with ``{materialization}``, or ``None``
        for the catalogue's choice for the datastack (the skeleton service when the catalogue has none).
    """

    def __init__(self, backend: Any, source: str | None = None):
        self.backend = backend
        self.materializations: tuple[int, ...] | None = None
        if source is None:
            source, self.materializations = _catalogue_source(backend.datastack)
        if not isinstance(source, str) or not (source in (SERVICE, NONE) or "{materialization}" in source):
            raise InvalidArgumentError(f"skeleton_source must be 'service', 'none' or a precomputed URL template "
                                       f"with '{{materialization}}'; got {source!r}")
        self.source = source
        self._lock = threading.Lock()
        self._session: requests.Session | None = None  # the service's, with the client's credentials
        self._public: requests.Session | None = None  # a published folder's
        self._template: str | None = None
        self._bulk: str | None = None  # the cached bulk route's URL, on servers that have it

    # -- the service's handshake ------------------------------------------------------------------

    def _service(self) -> tuple[requests.Session, str]:
        """A hardened session with the client's credentials and the skeleton URL template (asked once)."""
        from caveclient.endpoints import skeletonservice_endpoints_v1 as endpoints

        from .transport import harden

        with self._lock:
            if self._session is not None:
                return self._session, self._template
            client = self.backend.client
            session = requests.Session()
            session.headers.update(client.materialize.session.headers)
            session.cookies.update(client.materialize.session.cookies)
            harden(session, lambda: self.backend.retry, pool_maxsize=32, pool_block=True)
            mapping = {"skeleton_server_address": client.local_server, "datastack_name": self.backend.datastack,
                       "skeleton_version": SKELETON_VERSION}
            url = endpoints["get_version"].format_map(mapping)
            with self.backend._map_errors("asking the CAVE skeleton service its version"):
                answer = session.get(url)
                if answer.status_code == 404:
                    raise UnsupportedOperation(
                        f"datastack {self.backend.datastack!r} has no skeleton service at {client.local_server} "
                        f"(GET {url} answered 404)")
                answer.raise_for_status()
                version = _version_tuple(answer.json())
                offered = session.get(endpoints["get_versions"].format_map(mapping))
                offered.raise_for_status()
                if SKELETON_VERSION not in offered.json():
                    raise UnsupportedOperation(
                        f"the skeleton service of {self.backend.datastack!r} offers skeleton versions "
                        f"{offered.json()}, not {SKELETON_VERSION}")
            if version < _FLATDICT_FROM:
                raise UnsupportedOperation(f"the skeleton service of {self.backend.datastack!r} is version "
                                           f"{'.'.join(map(str, version))}; connectomix reads 0.6.0 and later")
            name = "get_skeleton_async_via_skvn_rid_fmt" if version >= _ASYNC_FROM else "get_skeleton_via_skvn_rid_fmt"
            mapping["output_format"] = "flatdict"
            self._template = endpoints[name].format_map({**mapping, "root_id": "{root_id}"})
            if version >= _BULK_FROM:
                self._bulk = endpoints["get_cached_skeletons_bulk_as_post"].format_map(mapping)
            self._session = session
            return session, self._template

    def close(self) -> None:
        for session in (self._session, self._public):
            if session is not None:
                session.close()

    # -- reading ----------------------------------------------------------------------------------

    def get(self, ids: np.ndarray) -> Any:
        """``TreeNeuron`` s in nm for ``ids`` at the backend's materialization (see the module docstring).

        Raises
        ------
        IdsNotFoundError
            Naming every id the source has no skeleton for (after the others were fetched and cached).
        """
        import navis

        if self.source == NONE:
            raise UnsupportedOperation(f"datastack {self.backend.datastack!r} publishes no skeletons "
                                       "(catalogue morphology.skeleton_source = 'none')")
        ids = np.asarray(ids, dtype="int64")
        backend = self.backend
        version = backend.resolve_materialization(ids, None)
        self._check_version(version)
        cache, identity = self._cache(version)
        found: dict[int, pd.DataFrame] = {}
        todo = []
        for rid in dict.fromkeys(ids.tolist()):
            hit = cache.get(self._key(identity, version, rid)) if cache is not None else None
            if hit is not None:
                found[rid] = hit
            else:
                todo.append(rid)
        if todo:
            fetched = (self._from_service(todo) if self.source == SERVICE else self._from_precomputed(todo, version))
            for rid, nodes in fetched.items():
                if nodes is not None:
                    found[rid] = nodes
                    if cache is not None:
                        cache.put(self._key(identity, version, rid), nodes)
        missing = [rid for rid in dict.fromkeys(ids.tolist()) if rid not in found]
        if missing:
            raise IdsNotFoundError(
                f"{self._describe(version)} has no skeleton for {len(missing)} root id(s): {missing[:20]}"
                f"{' ...' if len(missing) > 20 else ''}", ids=missing)
        source = self._describe(version)
        neurons = []
        for rid in ids.tolist():
            n = navis.TreeNeuron(found[rid].copy(), id=int(rid), units="1 nm")
            n.dataset = backend.datastack
            n.materialization = n.version = version  # ``version``: what connectomix.morphology.label_neurons keeps
            n.skeleton_source = source
            neurons.append(n)
        out = navis.NeuronList(neurons)
        # the keys of a table's df.attrs, as connectomix.morphology.label_neurons writes them, and the source
        out.attrs = {"table": "skeletons", "backend": "cave", "dataset": backend.datastack, "version": version,
                     "units": "nm", "source": source}
        return out

    def _check_version(self, version: Any) -> None:
        if self.materializations is not None and version not in self.materializations:
            raise UnsupportedOperation(
                f"published skeletons of {self.backend.datastack!r} exist for materializations "
                f"{list(self.materializations)} only; the ids resolved to {version!r} (open the dataset with "
                f"materialization={self.materializations[-1]})")

    def _describe(self, version: Any) -> str:
        if self.source == SERVICE:
            return (f"the CAVE skeleton service of {self.backend.datastack!r} (skeleton version {SKELETON_VERSION}, "
                    f"root ids of materialization {version})")
        return f"the published skeletons at {self.source.format(materialization=version)}"

    def _cache(self, version: Any) -> tuple[Any, Any]:
        """The result cache and the version's identity, or ``(None, None)`` when nothing may be cached."""
        backend = self.backend
        cache = backend.result_cache
        if cache is None or not cache.usable or not isinstance(version, (int, np.integer)) or isinstance(
                version, bool):
            return None, None
        # kept on disk too (the backend's records, as the Dataset keeps identities): a new process on a warm
        # cache then reads skeletons without connecting, within identity_ttl of the version's last check
        identity = backend._identities.get(int(version), backend.cache_identity, backend.identity_ttl,
                                           disk=backend.records())
        return (cache, identity) if identity is not None else (None, None)

    def _key(self, identity: Any, version: Any, rid: int) -> str:
        source = {"service": SKELETON_VERSION} if self.source == SERVICE else {"precomputed": self.source}
        return query_key({"backend": "cave", "version": int(version), "data": dict(identity)}, "cave_skeleton",
                         {"source": source, "id": int(rid)})

    def _from_service(self, ids: list[int]) -> dict[int, pd.DataFrame | None]:
        """Skeletons in bulk (servers with the route, more than one root), then one request per root left out."""
        session, template = self._service()

        def one(rid: int) -> pd.DataFrame | None:
            url = template.format(root_id=int(rid))
            doing = f"fetching the skeleton of root {rid}"
            with self.backend._map_errors(doing):
                response = session.get(url, params={"verbose_level": 0})
                if response.status_code == 400 and _refused(response):
                    return None
                response.raise_for_status()
                return decode_flatdict(response.content, int(rid), url)

        found: dict[int, pd.DataFrame] = {}
        if self._bulk is not None and len(ids) > 1:
            chunks = batched(ids, bulk_size(len(ids)))
            for part in map_batches(lambda chunk: self._from_bulk(session, list(chunk)), chunks,
                                    max_workers=MAX_WORKERS):
                found.update(part)
        rest = [rid for rid in ids if rid not in found]
        progress = len(rest) > 1
        found.update(zip(rest, map_batches(one, rest, max_workers=MAX_WORKERS, progress=progress,
                                           desc="skeletons")))
        return {rid: found[rid] for rid in ids}

    def _from_bulk(self, session: requests.Session, ids: list[int]) -> dict[int, pd.DataFrame]:
        """The skeletons the service's cached bulk route answers for ``ids`` (at most :data:`BULK_LIMIT`).

        Roots it leaves out are not in the answer (asked alone afterwards); a server without the route
        (404) is asked one root at a time from then on.
        """
        url = self._bulk
        if url is None:
            return {}
        with self.backend._map_errors(f"fetching the skeletons of {len(ids)} roots in bulk"):
            response = session.post(url, json={"root_ids": [int(r) for r in ids], "generate_missing": False,
                                               "verbose_level": 0})
            if response.status_code == 404:
                self._bulk = None
                return {}
            response.raise_for_status()
            try:
                answer = json.loads(response.content)
            except ValueError as exc:
                raise IncompleteResponseError(f"the bulk skeleton answer from {url} is not whole JSON "
                                              f"({len(response.content)} bytes; {exc})", url=url) from None
        if not isinstance(answer, dict):
            raise ServerError(f"the bulk skeleton answer from {url} is not a JSON object: {str(answer)[:200]}",
                              url=url)
        out = {}
        for rid in ids:
            value = answer.get(str(int(rid)))
            if value is None:
                continue
            try:
                body = binascii.unhexlify(value)
            except (binascii.Error, TypeError, ValueError):
                raise IncompleteResponseError(f"the skeleton of root {rid} in the bulk answer from {url} is not "
                                              f"hexadecimal text ({str(value)[:40]!r})", url=url) from None
            out[int(rid)] = decode_flatdict(body, int(rid), url)
        return out

    def _from_precomputed(self, ids: list[int], version: Any) -> dict[int, pd.DataFrame | None]:
        """Skeleton files ``{url}/{root_id}`` of a published folder, decoded by cloud-volume.

        The folder's ``info`` gives the vertex attributes; where it has none (FlyWire's bucket is read by
        fafbseg with its own ``SKELETON_INFO``), that info is used: one float32 ``radius``.
        """
        from .transport import harden

        base = self.source.format(materialization=version).removeprefix("precomputed://").rstrip("/")
        with self._lock:
            if self._public is None:
                self._public = requests.Session()  # a public bucket: no credentials
                harden(self._public, lambda: self.backend.retry, pool_maxsize=32, pool_block=True)
            session = self._public
        doing = f"reading the published skeletons at {base}"
        with self.backend._map_errors(doing):
            answer = session.get(f"{base}/info")
            if answer.status_code == 404:
                attributes = list(PUBLISHED_INFO["vertex_attributes"])
            else:
                answer.raise_for_status()
                attributes = list(answer.json().get("vertex_attributes") or [])

        def one(rid: int) -> pd.DataFrame | None:
            url = f"{base}/{int(rid)}"
            with self.backend._map_errors(f"fetching the skeleton of root {rid}"):
                response = session.get(url)
                if response.status_code == 404:
                    return None
                response.raise_for_status()
                return decode_precomputed(response.content, attributes, int(rid), url)

        progress = len(ids) > 1
        return dict(zip(ids, map_batches(one, ids, max_workers=MAX_WORKERS, progress=progress, desc="skeletons")))


#: fafbseg's info of the published FlyWire skeletons (fafbseg 3.2.3 fafbseg/flywire/skeletonize.py:42-48).
PUBLISHED_INFO = {"@type": "neuroglancer_skeletons", "transform": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0],
                  "vertex_attributes": [{"id": "radius", "data_type": "float32", "num_components": 1}]}


def decode_precomputed(body: bytes, attributes: list[dict], root_id: int, url: str) -> pd.DataFrame:
    """The node table of a neuroglancer precomputed skeleton file (decoded by cloud-volume; nm, identity
    transform), after checking that its length is what its counts and ``attributes`` need."""
    from cloudvolume import Skeleton

    if len(body) < 8:
        raise IncompleteResponseError(f"the skeleton of root {root_id} from {url} has {len(body)} bytes", url=url)
    n_vertices, n_edges = (int(v) for v in np.frombuffer(body[:8], dtype="<u4"))
    per_vertex = 12 + sum(np.dtype(a["data_type"]).itemsize * int(a.get("num_components", 1)) for a in attributes)
    expected = 8 + n_vertices * per_vertex + n_edges * 8
    if len(body) != expected:
        raise IncompleteResponseError(
            f"the skeleton of root {root_id} from {url} is {len(body)} bytes; its {n_vertices} vertices and "
            f"{n_edges} edges need {expected} (a cut or damaged file)", url=url)
    sk = Skeleton.from_precomputed(body, segid=root_id, vertex_attributes=attributes)
    vertices = np.asarray(sk.vertices, dtype="float64")
    edges = np.asarray(sk.edges, dtype="int64").reshape(-1, 2)
    n = len(vertices)
    parent = _parents(n, edges, 0) if n else None
    if parent is None:
        raise DataFormatError(f"the skeleton of root {root_id} from {url} is malformed: {n} vertices, "
                              f"{len(edges)} edges")
    radius = getattr(sk, "radius", None)
    radius = np.asarray(radius, dtype="float64") if radius is not None and len(radius) == n else np.full(n, np.nan)
    return pd.DataFrame({"node_id": np.arange(n, dtype="int64"), "label": np.zeros(n, dtype="int64"),
                         "x": vertices[:, 0], "y": vertices[:, 1], "z": vertices[:, 2], "radius": radius,
                         "parent_id": parent})


def _refused(response: requests.Response) -> bool:
    """Whether a 400 is the service's "no skeleton for this root" (an invalid or refused root id)."""
    try:
        message = str(response.json().get("Error", ""))
    except (ValueError, AttributeError):
        return False
    return "Invalid root id" in message or "refusal list" in message


def _catalogue_source(datastack: str) -> tuple[str, tuple[int, ...] | None]:
    """The catalogue's ``morphology.skeleton_source`` (and ``skeleton_materializations``) of ``datastack``."""
    from .settings import _catalogue_entry

    entry = _catalogue_entry(datastack)
    if entry is None:
        return SERVICE, None
    source = entry.value("morphology.skeleton_source", SERVICE)
    if source == "precomputed":
        source = entry.value("morphology.skeleton_url")
    versions = entry.value("morphology.skeleton_materializations", None)
    return source, (tuple(int(v) for v in versions) if isinstance(versions, list) else None)
