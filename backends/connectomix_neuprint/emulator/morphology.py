"""Meshes and skeletons of a served release as a neuroglancer precomputed segmentation layer.

A real neuPrint dataset keeps its meshes outside neuPrint, in a public precomputed segmentation
layer (a Google Cloud Storage bucket, e.g. ``precomputed://gs://neuroglancer-janelia-flyem-
hemibrain/v1.2/segmentation``), and says where in two places (see the ``[morphology]`` sections of
the catalogue):

* ``GET /api/npexplorer/nglayers/<dataset>.json``: a neuroglancer state, ``{"layers": [...]}``, whose
  ``"segmentation"`` layer named after the dataset has the source (neuPrintHTTP ``main.go``, the
  ``ng-dir`` files; connectome-neuprint/neuPrintHTTP:main.go:117-135@eeca68a). Every dataset has one.
* ``:Meta.neuroglancerMeta``: a JSON list of layers, the segmentation one with
  ``"dataType": "segmentation"`` (hemibrain has it; MANC and the male CNS leave it empty:
  schlegelp/connecto connecto/backends/neuprint/dataset.py:65-78, connecto 0.3.0).

navis' ``fetch_mesh_neuron`` reads the first, then the second
(navis-org/navis:navis/interfaces/neuprint.py:861-915@ae9f042), and opens the source with
``CloudVolume(source, use_https=True)``.

The emulator does the same with its own HTTPS server standing in for the bucket: the release's
meshes and skeletons (through the release backend, so in nm) become a layer built with
:func:`connectomix.precomputed.segmentation_tree`, served read-only and without a token (the
buckets are public) under ``/precomputed/<dataset slug>/segmentation/``, and advertised in both
places with the loopback URL. The meshes have the layout of the real dataset the emulator plays
(:func:`profile_mesh_format`, from the catalogue's ``morphology.mesh_format``): multi-resolution
sharded Draco meshes for hemibrain, MANC and the male CNS, legacy single-resolution meshes for the
optic lobe (what its volume's ``info`` opens) and for datasets the catalogue does not know. Files are
answered by byte range (``Range``/``206``) as a bucket answers them.
Unmodified navis and cloud-volume then read them (trusting the
emulator's CA through ``$REQUESTS_CA_BUNDLE``, as requests does).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from connectomix.errors import InvalidArgumentError

__all__ = ["PRECOMPUTED_PREFIX", "PUBLISH_PLACES", "ReleaseLayer", "layer_path", "neuroglancer_meta",
           "nglayers_state", "publish", "check_places", "serve", "profile_mesh_format"]

log = logging.getLogger("connectomix_neuprint.emulator")

#: Where the emulator serves precomputed layers (no token needed, like a public bucket).
PRECOMPUTED_PREFIX = "/precomputed/"
#: Where a dataset's segmentation source can be advertised: the ``nglayers`` state and ``:Meta.neuroglancerMeta``.
PUBLISH_PLACES = ("nglayers", "meta")


def check_places(places: Iterable[str]) -> tuple[str, ...]:
    """The ``publish_segmentation`` option checked: a subset of :data:`PUBLISH_PLACES`."""
    out = tuple(dict.fromkeys(str(p) for p in places))
    bad = [p for p in out if p not in PUBLISH_PLACES]
    if bad:
        raise InvalidArgumentError(f"publish_segmentation names unknown places {bad}; valid: {list(PUBLISH_PLACES)}")
    return out


def profile_mesh_format(dataset: str) -> str:
    """The mesh layout (:data:`connectomix.precomputed.MESH_FORMATS`) of the real neuPrint dataset ``dataset``.

    From the catalogue entry whose ``dataset`` is this name (else the first with the same name before
    the ``:`` tag): ``"multires-sharded"`` where its ``morphology.mesh_format`` starts with
    ``multires`` (hemibrain: sharded per the catalogue's sources; MANC and male CNS: multi-resolution,
    their sharding unverified), ``"legacy"`` otherwise (the optic lobe's volume opens
    ``single-res-meshes``) and for names the catalogue does not have.

    Examples
    --------
    >>> profile_mesh_format("hemibrain:v1.2.1"), profile_mesh_format("optic-lobe:v1.1"), profile_mesh_format("x")
    ('multires-sharded', 'legacy', 'legacy')
    """
    from connectomix import catalogue

    entries = [e for e in catalogue.load().datasets.values() if e.backend == "neuprint"]
    name = str(dataset).lower()
    match = [e for e in entries if str(e.dataset).lower() == name] or \
        [e for e in entries if str(e.dataset).lower().split(":")[0] == name.split(":")[0]]
    text = str(match[0].value("morphology.mesh_format", "") or "") if match else ""
    return "multires-sharded" if text.startswith("multires") else "legacy"


def layer_path(dataset: str) -> str:
    """URL path of a dataset's layer, e.g. ``/precomputed/hemibrain-v1.2.1/segmentation``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", dataset).strip("-") or "dataset"
    return f"{PRECOMPUTED_PREFIX}{slug}/segmentation"


class ReleaseLayer:
    """The precomputed file tree of a release's meshes and skeletons (nm), built on first use.

    Meshes and skeletons are read with the release backend (``get_meshes``, ``get_skeletons``), so
    they are exactly what ``connectomix.open(<release>)`` returns. Built lazily (once, thread-safe):
    an emulator that is never asked for morphology does not read it.
    """

    def __init__(self, folder: str | Path, voxel_size: Iterable[float], mesh_format: str = "legacy"):
        from connectomix.precomputed import MESH_FORMATS

        if mesh_format not in MESH_FORMATS:
            raise InvalidArgumentError(f"mesh_format {mesh_format!r} is not one of {list(MESH_FORMATS)}")
        self.folder = Path(folder)
        self.voxel_size = tuple(float(v) for v in voxel_size)
        self.mesh_format = mesh_format
        self._tree: dict[str, bytes] | None = None
        self._lock = threading.Lock()

    @staticmethod
    def present(folder: str | Path) -> bool:
        """Whether the release has meshes or skeletons (a cheap look at the folder)."""
        from connectomix_release.meshes import MESHES_FILE

        folder = Path(folder)
        return any((folder / "skeletons").glob("*.swc")) or (folder / MESHES_FILE).is_file()

    @property
    def tree(self) -> dict[str, bytes]:
        with self._lock:
            if self._tree is None:
                self._tree = self._build()
            return self._tree

    def _build(self) -> dict[str, bytes]:
        from connectomix.precomputed import segmentation_tree
        from connectomix_release.backend import ReleaseBackend

        backend = ReleaseBackend(self.folder)
        try:
            meshes = {int(n.id): (n.vertices, n.faces) for n in _release_meshes(backend)}
            skeleton_ids = sorted(int(p.stem) for p in (self.folder / "skeletons").glob("*.swc") if p.stem.isdigit())
            skeletons = {int(n.id): n for n in backend.get_skeletons(np.asarray(skeleton_ids, dtype="int64"))} \
                if skeleton_ids else {}
        finally:
            backend.close()
        log.info("precomputed layer of %s: %d meshes, %d skeletons", self.folder.name, len(meshes), len(skeletons))
        return segmentation_tree(meshes=meshes, skeletons=skeletons, resolution_nm=self.voxel_size,
                                 mesh_format=self.mesh_format)


def _release_meshes(backend: Any) -> list[Any]:
    """Every mesh the release has: ``get_meshes`` of all its bodies, less those it names as without one."""
    from connectomix.criteria import NeuronCriteria
    from connectomix.errors import IdsNotFoundError, UnsupportedOperation

    ids = np.asarray(backend.fetch_neurons(NeuronCriteria(label="segment"))["id"], dtype="int64")
    if not len(ids):
        return []
    try:
        return list(backend.get_meshes(ids))
    except UnsupportedOperation:
        return []
    except IdsNotFoundError as exc:
        rest = np.setdiff1d(ids, np.asarray(exc.ids, dtype="int64"))
        return list(backend.get_meshes(rest)) if len(rest) else []


def neuroglancer_meta(dataset: str, source: str) -> str:
    """``:Meta.neuroglancerMeta``: the layer list with one segmentation layer (JSON text, as neuPrint stores it)."""
    return json.dumps([{"name": dataset, "dataType": "segmentation", "source": source}], separators=(",", ":"))


def nglayers_state(dataset: str, source: str) -> dict[str, Any]:
    """The ``/api/npexplorer/nglayers/<dataset>.json`` document: a neuroglancer state with the segmentation layer.

    The layer has the dataset's name and a ``{"url", "subsources"}`` source, as in the layer files the
    neuPrint Explorer reads (connectome-neuprint/neuPrintExplorer:src/mocks/ng-layers.json@60a8671).
    """
    return {"layers": [{"type": "segmentation", "name": dataset, "tab": "source",
                        "source": {"url": source, "subsources": {"default": True, "mesh": True, "skeletons": True},
                                   "enableDefaultSubsources": False}}]}


def publish(model: Any, source: str, places: Iterable[str]) -> None:
    """Write the layer's ``source`` into the model's ``:Meta.neuroglancerMeta`` if ``"meta"`` is a place.

    Must run before the model is loaded into the engine.
    """
    if "meta" not in places:
        return
    text = neuroglancer_meta(model.name, source)
    model.meta["neuroglancerMeta"] = text
    model.nodes["Meta"].loc[:, "neuroglancerMeta"] = text


def serve(layers: Mapping[str, ReleaseLayer], path: str) -> tuple[bytes, str] | None:
    """``(content, content type)`` of a precomputed file under :data:`PRECOMPUTED_PREFIX`, or None (404)."""
    from connectomix.precomputed import serve_tree

    for prefix, layer in layers.items():
        if path == prefix or path.startswith(prefix + "/"):
            data = serve_tree(layer.tree, path[len(prefix):])
            if data is None:
                return None
            name = path.rsplit("/", 1)[-1]
            is_json = name == "info" or (name.endswith(":0") and name.count(":") == 1)
            return data, ("application/json" if is_json else "application/octet-stream")
    return None
