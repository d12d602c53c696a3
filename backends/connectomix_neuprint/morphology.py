"""Meshes of neuPrint datasets: find the dataset's segmentation source, read it with cloud-volume.

neuPrint does not serve neuron meshes itself. A dataset's meshes live in a public neuroglancer
precomputed segmentation layer, which the server names in two places (the ``[morphology]``
sections of the catalogue cite what each real dataset publishes):

1. ``GET /api/npexplorer/nglayers/<dataset>.json``: the neuroglancer state neuPrint Explorer opens
   (connectome-neuprint/neuPrintHTTP:main.go:117-135@eeca68a serves it from its ``ng-dir``); the
   ``"segmentation"`` layer named after the dataset holds the source. Every public dataset has one
   (MANC's names ``precomputed://gs://manc-seg-v1p2/manc-seg-v1.2``).
2. ``:Meta.neuroglancerMeta``: a JSON list of layers; the one with ``"dataType": "segmentation"``
   (hemibrain fills it; MANC and the male CNS do not: schlegelp/connecto
   connecto/backends/neuprint/dataset.py:65-78, connecto 0.3.0).

This is the order and the layer choice of navis' ``fetch_mesh_neuron``
(navis-org/navis:navis/interfaces/neuprint.py:861-915@ae9f042: a layer named exactly as the
dataset, else the first segmentation layer; its first source; ``{"url": ...}`` sources by their
url). What the server publishes is checked against the catalogue's ``morphology.mesh_source``
when the dataset has a catalogue entry: two different answers raise :class:`ServerError` (which
is right is not guessed); the catalogue value is used only when the server publishes nothing.
The ``mesh_source`` option overrides all of this.

Meshes are read with :func:`connectomix.precomputed.read_meshes` (cloud-volume), in nm: legacy
precomputed mesh vertices are nm by the format, and cloud-volume applies a multi-resolution layer's
``transform`` to give "physical coordinates (usually scaling by resolution)" (cloud-volume 12.15.2
``cloudvolume/datasource/precomputed/mesh/multilod.py:42-43``) -- the "units (e.g. nanometers)" navis
divides by ``:Meta.voxelSize`` to get voxels (navis/interfaces/neuprint.py:520-525@ae9f042). So nothing
is converted here. The public hemibrain, MANC and male CNS layers are multi-resolution (catalogue
``morphology.mesh_format``); ``read_meshes`` reads them at level of detail 0, the finest (each
neuron's ``lod`` attribute), as the emulator serves them when it plays those datasets.
cloud-volume makes its own HTTPS requests: it trusts the system's certificate authorities or
``$REQUESTS_CA_BUNDLE``, not the backend's ``verify`` option.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from connectomix.errors import (IdsNotFoundError, IncompleteResponseError, InvalidArgumentError, RemoteError,
                                ServerError, UnsupportedOperation)
from connectomix.http import json_body
from connectomix.parallel import batched, map_batches

__all__ = ["published_sources", "choose_source", "same_source", "as_precomputed", "mesh_cache", "shared_layer",
           "read_meshes_concurrently", "skeleton_nodes", "SKELETON_COLUMNS", "MESH_BATCH", "MESH_WORKERS"]

log = logging.getLogger("connectomix_neuprint")

#: Most ids per read, and reads in flight. Every read shares the layer opened once (:func:`shared_layer`:
#: its ``info``, ``provenance``, ``mesh/info`` and ``skeletons/info`` read once) and reads its segments
#: concurrently itself (:data:`connectomix.precomputed.READ_WORKERS`), so reads run one after another;
#: batches only give each read of a long list its own timeout.
MESH_BATCH = 1000
MESH_WORKERS = 1


def _layer_source(layer: dict) -> str | None:
    """A layer's first source URL (a string, a ``{"url": ...}`` or a list of either), as navis reads it."""
    source = layer.get("source")
    if isinstance(source, list):
        source = source[0] if source else None
    if isinstance(source, dict):
        source = source.get("url")
    return source if isinstance(source, str) and source else None


def _pick(layers: Any, dataset: str, type_key: str) -> str | None:
    """The segmentation source among neuroglancer layers: the one named ``dataset``, else the first."""
    if not isinstance(layers, list):
        return None
    segs = [layer for layer in layers if isinstance(layer, dict) and layer.get(type_key) == "segmentation"]
    named = [layer for layer in segs if layer.get("name") == dataset]
    for layer in named or segs:
        source = _layer_source(layer)
        if source:
            return source
    return None


def published_sources(http: Any, run: Any, dataset: str) -> dict[str, str]:
    """The segmentation sources a neuPrint server publishes for ``dataset``, by place.

    Parameters
    ----------
    http
        The backend's :class:`~connectomix.http.HttpClient`.
    run
        ``run(cypher, arrow=False) -> DataFrame`` on the dataset.
    dataset
        The server's name of the dataset, e.g. ``"hemibrain:v1.2.1"``.

    Returns
    -------
    dict
        ``{"nglayers": source, "neuroglancerMeta": source}``, the places that name one.
    """
    out: dict[str, str] = {}
    path = f"/api/npexplorer/nglayers/{quote(dataset, safe=':')}.json"
    try:
        state = http.request("GET", path, decode=json_body)
    except RemoteError as exc:
        if exc.status != 404:  # 404: this server has no layer file for the dataset
            raise
        state = None
    source = _pick(state.get("layers") if isinstance(state, dict) else None, dataset, "type")
    if source:
        out["nglayers"] = source
    rows = run("MATCH (m:Meta) RETURN m.neuroglancerMeta AS neuroglancerMeta", arrow=False)
    value = rows.iloc[0, 0] if len(rows) else None
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ServerError(f"neuPrint's :Meta.neuroglancerMeta of {dataset!r} is not JSON: {value[:200]!r}") \
                from None
    source = _pick(value, dataset, "dataType")
    if source:
        out["neuroglancerMeta"] = source
    return out


_PIPE_PRECOMPUTED = "|neuroglancer-precomputed:"


def as_precomputed(source: str) -> str | None:
    """``source`` as the ``precomputed://<location>`` cloud-volume opens, or None if it is not one.

    Accepts ``precomputed://<url>``, a bare ``gs://``/``https://``/``http://``/``file://`` URL and
    neuroglancer's newer ``<url>|neuroglancer-precomputed:`` spelling; anything else (``dvid://``,
    ``graphene://``, ``zarr://``, other ``|`` formats) is None.

    Examples
    --------
    >>> as_precomputed("gs://manc-seg-v1p2/manc-seg-v1.2/|neuroglancer-precomputed:")
    'precomputed://gs://manc-seg-v1p2/manc-seg-v1.2'
    >>> as_precomputed("dvid://https://emdata.example/abc/segmentation") is None
    True
    """
    s = source.strip()
    if s.endswith(_PIPE_PRECOMPUTED):
        s = s[:-len(_PIPE_PRECOMPUTED)]
    elif "|" in s:
        return None
    s = re.sub(r"^precomputed://", "", s).rstrip("/")
    if not re.match(r"^(gs|https?|file)://\S", s):
        return None
    return f"precomputed://{s}"


def same_source(a: str, b: str) -> bool:
    """Whether two segmentation sources name the same layer.

    Ignores the spelling (see :func:`as_precomputed`), a trailing ``/`` and the ``gs://bucket`` /
    ``https://storage.googleapis.com/bucket`` aliases (neuroglancer treats them as the same).

    Examples
    --------
    >>> same_source("precomputed://gs://b/v1.2/segmentation", "https://storage.googleapis.com/b/v1.2/segmentation/")
    True
    >>> same_source("precomputed://gs://b/v1.2/segmentation", "precomputed://gs://b/v1.1/segmentation")
    False
    """
    def norm(s: str) -> str:
        s = as_precomputed(s) or s.strip()
        return re.sub(r"^precomputed://https://storage\.googleapis\.com/", "precomputed://gs://", s)
    return norm(a) == norm(b)


def choose_source(published: dict[str, str], catalogue: str | None, dataset: str, where: str) -> str:
    """The one segmentation source to read, or an error saying why there is none.

    Parameters
    ----------
    published
        :func:`published_sources`.
    catalogue
        The catalogue's ``morphology.mesh_source`` of this dataset, if any.
    dataset
        The dataset's name (for messages).
    where
        The server (for messages).

    Raises
    ------
    ServerError
        The published sources disagree with each other or with the catalogue.
    UnsupportedOperation
        Nothing names a source, or it is not a precomputed layer (e.g. ``dvid://``).
    """
    hint = ("pass the mesh_source option (a precomputed segmentation URL) to choose, "
            "or catalogue='none' to trust the server")
    values = list(published.values())
    if any(not same_source(values[0], v) for v in values[1:]):
        raise ServerError(f"neuPrint server {where} names different segmentation sources for {dataset!r}: "
                          f"{published}; {hint}")
    source = values[0] if values else catalogue
    if values and catalogue and not same_source(values[0], catalogue):
        raise ServerError(f"neuPrint server {where} publishes the segmentation of {dataset!r} as {values[0]!r} "
                          f"({', '.join(published)}), but the catalogue says {catalogue!r}; {hint}")
    if source is None:
        raise UnsupportedOperation(
            f"neuPrint dataset {dataset!r} on {where} publishes no segmentation source (no segmentation layer in "
            f"/api/npexplorer/nglayers/{dataset}.json or :Meta.neuroglancerMeta) and the catalogue has none, so "
            "there is nowhere to read meshes from; pass the mesh_source option")
    if not values:
        log.info("neuPrint dataset %s publishes no segmentation source; using the catalogue's %s", dataset, source)
    url = as_precomputed(source)
    if url is None:
        raise UnsupportedOperation(f"the segmentation source of {dataset!r} is {source!r}: only neuroglancer "
                                   "precomputed layers (precomputed://gs://, https://, file://) are read")
    return url


_IDENTITIES_LOCK = threading.Lock()


def mesh_cache(backend: Any, source: str) -> tuple[Any, dict | None]:
    """The backend's result cache and the key base of its meshes, or ``(None, None)`` (not cached).

    The key holds the dataset's identity (server, dataset, ``last-mod`` and ``uuid``:
    :meth:`~connectomix_neuprint.backend.NeuprintBackend.cache_identity`, asked at most once per
    ``identity_ttl`` per backend) and the mesh source, so meshes of a re-deployed dataset or of
    another segmentation are never answered from older entries.
    """
    from connectomix.cache import IdentityMemo

    cache = getattr(backend, "result_cache", None)
    ttl = float(getattr(backend, "identity_ttl", 0.0))
    if cache is None or not getattr(cache, "usable", False):
        return None, None
    with _IDENTITIES_LOCK:
        memo = backend.__dict__.setdefault("_mesh_identities", IdentityMemo())
    identity = memo.get("meshes", lambda _: backend.cache_identity(None), ttl)
    if identity is None:
        return None, None
    return cache, {"backend": backend.name, "data": dict(identity), "mesh_source": source}


def shared_layer(backend: Any, source: str, key_base: dict | None = None) -> Any:
    """The backend's one :class:`~connectomix.precomputed.PrecomputedSource` for ``source``.

    Kept per source and dataset identity (``key_base["data"]`` of :func:`mesh_cache`, when the backend
    has a result cache; otherwise for the backend's life, as its :attr:`mesh_source` is), so the layer's
    four description files are read once, not once per read; a re-deployed dataset (new identity)
    opens the layer again. Safe to call from many threads.
    """
    from connectomix.precomputed import PrecomputedSource

    identity = None if key_base is None else repr(sorted(dict(key_base.get("data") or {}).items()))
    with _IDENTITIES_LOCK:
        layers = backend.__dict__.setdefault("_mesh_layers", {})
        layer = layers.get((source, identity))
        if layer is None:
            layers.clear()  # only the newest identity's layer is kept
            layer = layers[(source, identity)] = PrecomputedSource(source)
        return layer


def check_lod(value: Any) -> int | None:
    """The ``mesh_lod`` option: ``None`` (the finest level) or an integer >= 0 (URI query strings accepted)."""
    if value is None or value == "":
        return None
    try:
        lod = int(value)
    except (TypeError, ValueError):
        lod = -1
    if isinstance(value, bool) or lod < 0 or str(lod) != str(value).strip():
        raise InvalidArgumentError(f"mesh_lod must be a level of detail >= 0 (0 the finest); got {value!r}")
    return lod


#: The columns of neuPrint's JSON skeleton table (``GET /api/skeletons/skeleton/{dataset}/{body}``).
SKELETON_COLUMNS = ("rowId", "x", "y", "z", "radius", "link")


def skeleton_nodes(response: Any) -> np.ndarray:
    """neuPrint's JSON skeleton table as a ``float64`` array, one row per node, :data:`SKELETON_COLUMNS` in order.

    The body is parsed with orjson (a few times faster than the standard library on these
    all-number tables) straight into one array, with no DataFrame of Python objects in between.
    Node ids are exact as ``float64`` up to 2**53.

    Raises
    ------
    IncompleteResponseError
        The body is not whole JSON, or a row does not have one number per column (transient).
    ServerError
        The JSON is whole but not a table, or lacks one of :data:`SKELETON_COLUMNS` (its columns named).

    Examples
    --------
    >>> import requests
    >>> r = requests.Response(); r._content = b'{"columns": ["rowId", "x", "y", "z", "radius", "link"], ' \\
    ...     b'"data": [[1, 8, 16, 24, 2.5, -1], [2, 9, 16, 24, 2, 1]]}'
    >>> skeleton_nodes(r)[:, [0, 1, 5]].tolist()
    [[1.0, 8.0, -1.0], [2.0, 9.0, 1.0]]
    """
    import orjson

    content = response.content
    try:
        payload = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise IncompleteResponseError(f"incomplete response: the body is not whole JSON ({len(content)} bytes; "
                                      f"{str(exc)[:200]})", status=response.status_code,
                                      url=response.url.split("?", 1)[0]) from None
    columns = payload.get("columns") if isinstance(payload, dict) else None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(columns, list) or not isinstance(data, list):
        raise ServerError("neuPrint answered something that is not a skeleton table (no 'columns' and 'data' "
                          f"lists): {str(payload)[:200]}", url=response.url)
    missing = [c for c in SKELETON_COLUMNS if c not in columns]
    if missing:
        raise ServerError(f"neuPrint's skeleton table lacks columns {missing}; got {columns}", url=response.url)
    if not data:
        return np.zeros((0, len(SKELETON_COLUMNS)), dtype="float64")
    try:
        table = np.array(data, dtype="float64")
    except (ValueError, TypeError):  # ragged rows, or a value that is not a number
        table = None
    if table is None or table.shape != (len(data), len(columns)):
        raise IncompleteResponseError(f"incomplete response: the skeleton table's {len(data)} rows do not each have "
                                      f"one number for each of its {len(columns)} columns",
                                      status=response.status_code, url=response.url.split("?", 1)[0])
    table = table[:, [columns.index(c) for c in SKELETON_COLUMNS]]
    blank = [c for k, c in enumerate(SKELETON_COLUMNS) if c != "radius" and np.isnan(table[:, k]).any()]
    if blank:
        raise ServerError(f"neuPrint's skeleton table has null values in columns {blank}", url=response.url)
    return table


def read_meshes_concurrently(source: str, ids: np.ndarray, *, timeout: float | None,
                             tls_hint: str | None = None, cache: Any = None, key_base: dict | None = None,
                             lod: int | None = None, layer: Any = None) -> list[Any]:
    """``MeshNeuron``s (nm) of ``ids`` from ``source``, at most :data:`MESH_BATCH` ids per read,
    :data:`MESH_WORKERS` reads at a time; every missing id named in one :class:`IdsNotFoundError`.

    ``layer`` is the opened layer to read from (:func:`shared_layer`); ``None`` opens ``source`` once for
    this call.

    ``lod`` is passed to :func:`connectomix.precomputed.read_meshes`; each neuron's ``lod`` attribute is
    the level read (``None`` from a legacy source), kept with a cached mesh.

    With a result ``cache`` and ``key_base`` (the data's identity and the source), each mesh is kept
    on disk under its id and read from there next time; only the others are asked of the source.
    """
    import navis

    from connectomix.cache import query_key
    from connectomix.precomputed import read_meshes

    order = list(dict.fromkeys(int(i) for i in np.asarray(ids, dtype="int64").tolist()))
    keys = {i: query_key(key_base, "neuprint_mesh", {"id": i} if lod is None else {"id": i, "lod": lod})
            for i in order} \
        if cache is not None and key_base is not None else {}
    found: dict[int, Any] = {}
    for i, key in keys.items():
        hit = cache.get(key)
        if hit is not None:
            vertices, faces = _from_frame(hit)
            found[i] = navis.MeshNeuron((vertices, faces), id=i, units="1 nanometer", process=False)
            level = int(hit["lod"].iloc[0]) if "lod" in hit and len(hit) else -1
            found[i].lod = level if level >= 0 else None
    ids = np.asarray([i for i in order if i not in found], dtype="int64")
    if layer is None:
        from connectomix.precomputed import PrecomputedSource

        layer = PrecomputedSource(source)

    def fetch(batch: np.ndarray) -> Any:
        try:
            return list(read_meshes(layer, batch, lod=lod, timeout=timeout))
        except IdsNotFoundError as exc:  # collected: the error names every missing id, not one batch's
            return exc
        except RemoteError as exc:
            if tls_hint and "CERTIFICATE_VERIFY_FAILED" in str(exc).upper():
                raise type(exc)(f"{exc} -- {tls_hint}", status=exc.status, url=exc.url) from exc
            raise

    size = min(MESH_BATCH, -(-len(ids) // MESH_WORKERS))  # one read per worker, at most MESH_BATCH ids each
    parts = map_batches(fetch, list(batched(ids, size)), max_workers=MESH_WORKERS) if len(ids) else []
    for n in (n for part in parts if not isinstance(part, IdsNotFoundError) for n in part):
        found[int(n.id)] = n
        if int(n.id) in keys:  # kept even if other ids are missing: the core then asks for the rest
            frame = _to_frame(np.asarray(n.vertices), np.asarray(n.faces))
            frame["lod"] = np.int8(-1 if getattr(n, "lod", None) is None else n.lod)  # -1: a legacy source
            cache.put(keys[int(n.id)], frame)
    missing = [i for part in parts if isinstance(part, IdsNotFoundError) for i in part.ids]
    if missing:
        raise IdsNotFoundError(f"no mesh for id(s) {missing} in {source}", ids=missing)
    return [found[i] for i in order]


def _to_frame(vertices: np.ndarray, faces: np.ndarray) -> pd.DataFrame:
    """One result-cache frame per mesh: vertex rows (``kind`` 0, xyz nm) then triangle rows (``kind`` 1)."""
    return pd.DataFrame({
        "kind": np.concatenate([np.zeros(len(vertices), dtype="int8"), np.ones(len(faces), dtype="int8")]),
        "x": np.concatenate([vertices[:, 0], faces[:, 0]]).astype("float64"),
        "y": np.concatenate([vertices[:, 1], faces[:, 1]]).astype("float64"),
        "z": np.concatenate([vertices[:, 2], faces[:, 2]]).astype("float64"),
    })


def _from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    kind = frame["kind"].to_numpy()
    xyz = frame[["x", "y", "z"]].to_numpy(dtype="float64")
    return xyz[kind == 0], xyz[kind == 1].astype("int64")
