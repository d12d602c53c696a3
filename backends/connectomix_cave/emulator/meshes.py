"""Segmentation meshes of the emulated datastack: PyChunkedGraph's meshing service and flat layers.

What a CAVE datastack publishes for meshes, and what of it the emulator serves:

* **The graphene source** (every datastack): ``segmentation_source`` of the datastack info is
  ``graphene://<server>/segmentation/table/<pcg table>``. cloud-volume reads its ``info`` from the
  chunkedgraph (``data_dir``, ``mesh``) and asks the meshing service for a root's fragments
  (``GET <server>/meshing/api/v1/table/<table>/manifest/<root>:0?verify=True`` with a JSON body
  ``{"start_layer": ...}``; cloud-volume ``datasource/graphene/mesh/unsharded.py``
  ``fetch_manifest_remote`` and ``graphene/metadata.py`` ``manifest_endpoint``; the route is
  PyChunkedGraph ``pychunkedgraph/app/meshing/v1/routes.py``), then reads the fragment files from
  ``<data_dir>/<mesh>/`` (a public bucket on the real deployments). The emulator answers the manifest
  with ``{"fragments": [...]}`` -- the **unsharded** manifest format (legacy fragment names, as in
  cloud-volume's own ``test/test_graphene.py`` fixture ``cv_graphene_mesh_draco``) -- and serves the
  fragments as **legacy precomputed** meshes from ``<base>/pcg-data/<table>/graphene_meshes/``. The real
  FlyWire/MICrONS sources are sharded Draco ("initial" shards plus "dynamic" fragments;
  PyChunkedGraph ``pychunkedgraph/meshing/manifest/sharded_format.md``): Draco quantises vertices,
  so the emulator keeps the exact legacy format, which cloud-volume's ``GrapheneUnshardedMeshSource``
  reads through the same manifest endpoint (its Draco decoder falls back to the legacy decoder).
* **Flat segmentations** (FlyWire only: ``precomputed://gs://flywire_v141_m783`` and ``..._m630``,
  fafbseg ``fafbseg/flywire/utils.py`` ``FLYWIRE_URLS``): one precomputed layer per materialization,
  whose segment ids are that version's root ids. The emulator serves ``<base>/flywire_v141_m<v>`` for
  every version ``v`` as the real buckets hold them, multi-resolution Draco meshes (fafbseg reads them
  with ``lod=2``, connecto calls them "a neat multi-resolution octree"; sharding unverified, served
  sharded), built by :func:`connectomix.precomputed.segmentation_tree` (``mesh_format=
  "multires-sharded"``: two levels, vertices quantised to 16 bits of each mesh's extent) and answered
  by byte range as a bucket. Other datastacks get no
  flat layer (connecto 0.3.0 ``backends/cave/meshes.py``: BANC, FANC and MICrONS have none).
* **The sharded Draco layout** (``CaveEmulator(..., mesh_layout="sharded-draco")``, held in
  ``MeshService.layout``; the default ``"legacy"`` keeps exact vertices): what cloud-volume 12.15.2's ``GrapheneShardedMeshSource``
  reads (``cloudvolume/datasource/graphene/mesh/sharded.py``): the mesh ``info`` has a ``"sharding"``
  specification per chunkedgraph layer (``GrapheneShardedMeshSource.__init__``), the chunkedgraph info a
  ``mesh_metadata`` (``uniform_draco_grid_size``, ``max_meshed_layer``, ``unsharded_mesh_dir``;
  ``graphene/metadata.py``), and the manifest, asked with ``return_seg_ids=1`` (``unsharded.py``
  ``fetch_manifest_remote``), answers ``{"fragments": ["~{layer}/{chunk}-{shard}.shard:{offset}:{size}"],
  "seg_ids": [...]}`` (``parse_manifest_filenames``); the fragments are Draco meshes (vertices in nm,
  :data:`DRACO_QUANTIZATION_BITS` bits over each mesh's largest extent) inside shard files written with
  cloud-volume's ``synthesize_shard_files``, under ``<mesh>/initial/{layer}/``, answered by byte range.
  Every release mesh is an "initial" fragment (no "dynamic" ones). ``uniform_draco_grid_size`` is 0:
  the Draco grid is per mesh, not chunk-aligned, so cloud-volume's chunk-boundary de-duplication
  merges nothing (it still re-orders vertices: compare triangles, not indices). Whether FlyWire's and
  MICrONS' buckets use these shard parameters: unverified.

Which roots have a mesh: a root whose supervoxels are exactly those of one or more whole release
bodies with a mesh (version 1: every body with a mesh; after a SYNTHETIC merge: the merged bodies'
meshes together). A root that holds part of a body (after a SYNTHETIC split) has no mesh: the manifest
lists no fragment (as PyChunkedGraph's ``verify=True`` lists only fragments that exist) and the flat
layers have no manifest for it.

Meshes come from the release backend's ``get_meshes`` (nm), read once on the first mesh request.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from connectomix.errors import IdsNotFoundError, UnsupportedOperation

from .server import HttpError, Request, Response

__all__ = ["MeshService", "FLAT_SEGMENTATIONS", "GRAPHENE_MESH_DIR"]

#: Flat segmentation names by datastack, ``{version}`` = materialization (fafbseg FLYWIRE_URLS "flat_783").
FLAT_SEGMENTATIONS = {
    "flywire_fafb_public": "flywire_v141_m{version}",
    "flywire_fafb_production": "flywire_v141_m{version}",
}
#: The ``mesh`` member of the emulated chunkedgraph info (a folder under ``data_dir``).
GRAPHENE_MESH_DIR = "graphene_meshes"
_FLAT_PREFIX = "flywire_v141_m"
#: ``<data_dir>/graphene_meshes/info``: legacy fragments, unsharded (cloud-volume GrapheneMeshSource).
_MESH_INFO = {"@type": "neuroglancer_legacy_mesh"}
#: Mesh layouts of the graphene source (``MeshService.layout``).
MESH_LAYOUTS = ("legacy", "sharded-draco")
#: Draco position quantisation of the sharded layout: a vertex is read back within
#: ``0.5 * extent / (2 ** bits - 1)`` nm per axis of where it was (extent: the mesh's largest side), plus
#: float32 rounding.
DRACO_QUANTIZATION_BITS = 20
#: The chunkedgraph layer whose "initial" shard folder holds the fragments (PyChunkedGraph meshes layer 2 up).
_INITIAL_LAYER = 2


def _release_meshes(path: Any) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{body: (vertices_nm, faces)}`` of every release body with a mesh (none: ``{}``)."""
    from connectomix_release.backend import ReleaseBackend
    from connectomix_release.meshes import MESHES_FILE

    if not (Path(path) / MESHES_FILE).is_file():
        return {}  # no meshes (and the emulator's release need not be one the release backend opens)
    backend = ReleaseBackend(path)
    try:
        ids = np.asarray(backend.fetch_neurons(_all_segments())["id"], dtype=np.int64)
        get = getattr(backend, "get_meshes", None)
        if get is None or not len(ids):
            return {}
        try:
            meshes = get(ids)
        except IdsNotFoundError as exc:  # the bodies without a mesh: ask for the others
            rest = np.setdiff1d(ids, np.asarray(list(exc.ids or ()), dtype=np.int64))
            meshes = get(rest) if len(rest) else []
        except UnsupportedOperation:
            return {}
    finally:
        backend.close()
    return {int(m.id): (np.asarray(m.vertices, dtype="float64"), np.asarray(m.faces, dtype="int64"))
            for m in meshes}


def _all_segments():
    from connectomix.criteria import NeuronCriteria

    return NeuronCriteria(label="segment")


class MeshService:
    """The mesh endpoints of one emulated datastack (see the module docstring).

    Parameters
    ----------
    app
        The :class:`~.app.CaveApp` (its dataset, chunkedgraph table, datastack names and base URL).
    """

    def __init__(self, app: Any):
        self.app = app
        self._lock = threading.Lock()
        self._meshes: dict[int, tuple[np.ndarray, np.ndarray]] | None = None
        self._graphene_tree: dict[str, bytes] | None = None
        self._flat_trees: dict[int, dict[str, bytes] | None] = {}
        self._sv_counts: dict[int, int] | None = None
        #: ``"legacy"`` (exact legacy fragments) or ``"sharded-draco"`` (see the module docstring).
        self.layout = "legacy"
        self._shards: tuple[dict[str, bytes], dict[int, str]] | None = None

    # --- what is served ------------------------------------------------------------------------------

    @property
    def meshes(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Release meshes by body id (nm), read on first use."""
        with self._lock:
            if self._meshes is None:
                self._meshes = _release_meshes(self.app.dataset.release.path)
            return self._meshes

    def data_dir(self) -> str:
        """The chunkedgraph info's ``data_dir``: where the fragment files are (a public 'bucket')."""
        return f"{self.app.base_url}/pcg-data/{self.app.pcg_table}"

    def flat_name(self, version: int) -> str | None:
        """The flat segmentation's name at ``version`` (``None``: this datastack has none)."""
        template = FLAT_SEGMENTATIONS.get(self.app.datastacks[0])
        return template.format(version=int(version)) if template else None

    def flat_url(self, version: int) -> str | None:
        """``precomputed://<base>/<flat name>`` of a version, as fafbseg names the real bucket."""
        name = self.flat_name(version)
        return f"precomputed://{self.app.base_url}/{name}" if name else None

    def bodies_of_root(self, root: int) -> list[int] | None:
        """The whole release bodies a root consists of, if each has a mesh; else ``None`` (no mesh)."""
        history = self.app.dataset.history
        info = history.roots.get(int(root))
        if info is None:
            return None
        layout = self.app.dataset.layout
        bodies, counts = np.unique(layout.sv_body[info.sv_ordinals], return_counts=True)
        if self._sv_counts is None:
            self._sv_counts = layout.counts()  # supervoxels per release body (fixed)
        whole = self._sv_counts
        meshes = self.meshes
        if not len(bodies) or any(whole.get(int(b)) != int(n) or int(b) not in meshes
                                  for b, n in zip(bodies, counts)):
            return None
        return [int(b) for b in bodies]

    def _graphene(self) -> dict[str, bytes]:
        from connectomix.precomputed import segmentation_tree

        meshes = self.meshes
        with self._lock:
            if self._graphene_tree is None:
                self._graphene_tree = (segmentation_tree(meshes=meshes, resolution_nm=self.app.dataset.resolution)
                                       if meshes else {})
            return self._graphene_tree

    def _flat(self, version: int) -> dict[str, bytes] | None:
        """The flat layer of a version: one mesh per root current then that has one (merged roots joined)."""
        from connectomix.precomputed import segmentation_tree

        if version in self._flat_trees:
            return self._flat_trees[version]
        spec = self.app.dataset.versions.get(version)
        tree = None
        if spec is not None and self.meshes:
            roots = self.app.dataset.history.current_roots(spec.time_stamp)
            meshes = {}
            for root in roots.tolist():
                bodies = self.bodies_of_root(root)
                if bodies:
                    meshes[root] = _joined([self.meshes[b] for b in bodies])
            tree = segmentation_tree(meshes=meshes, resolution_nm=self.app.dataset.resolution,
                                     mesh_format="multires-sharded") if meshes else None
        with self._lock:
            self._flat_trees.setdefault(version, tree)
            return self._flat_trees[version]

    def graphene_info(self) -> dict[str, Any]:
        """The members of the chunkedgraph ``info`` that say where meshes are."""
        if not self._sharded():
            return {"data_dir": self.data_dir(), "mesh": GRAPHENE_MESH_DIR, "sharded_mesh": False}
        return {"data_dir": self.data_dir(), "mesh": GRAPHENE_MESH_DIR, "sharded_mesh": True,
                "mesh_metadata": {"uniform_draco_grid_size": 0, "max_meshed_layer": self.app.n_layers,
                                  "unsharded_mesh_dir": "dynamic"}}

    def _sharded(self) -> bool:
        if self.layout not in MESH_LAYOUTS:
            raise HttpError(500, f"emulator mesh layout {self.layout!r} is not one of {MESH_LAYOUTS}")
        return self.layout == "sharded-draco"

    def _sharding_spec(self) -> Any:
        from cloudvolume.datasource.precomputed.sharding import ShardingSpecification

        return ShardingSpecification(type="neuroglancer_uint64_sharded_v1", preshift_bits=0,
                                     hash="murmurhash3_x86_128", minishard_bits=1, shard_bits=1,
                                     minishard_index_encoding="gzip", data_encoding="raw")

    def _sharded_tree(self) -> tuple[dict[str, bytes], dict[int, str]]:
        """``initial/{layer}/0-{n}.shard`` files and each body's manifest entry (``~{layer}/{file}:{off}:{size}``).

        The shards are cloud-volume's ``synthesize_shard_files`` of each body's Draco mesh; a body's offset
        is where its Draco bytes (stored raw) are in its shard file.
        """
        import DracoPy
        from cloudvolume.datasource.precomputed.sharding import synthesize_shard_files

        meshes = self.meshes
        with self._lock:
            if self._shards is not None:
                return self._shards
        blobs = {body: DracoPy.encode(np.asarray(v, dtype="float32"), np.asarray(f, dtype="uint32"),
                                      quantization_bits=DRACO_QUANTIZATION_BITS, preserve_order=True)
                 for body, (v, f) in meshes.items()}
        spec = self._sharding_spec()
        shards = synthesize_shard_files(spec, blobs) if blobs else {}
        names = {name: f"0-{i}.shard" for i, name in enumerate(sorted(shards))}
        files, entries = {}, {}
        for name, data in shards.items():
            files[f"initial/{_INITIAL_LAYER}/{names[name]}"] = data
        for body, blob in blobs.items():
            name = names[f"{spec.compute_shard_location(body).shard_number}.shard"]
            data = files[f"initial/{_INITIAL_LAYER}/{name}"]
            offset = data.find(blob)
            if offset < 0 or data.find(blob, offset + 1) >= 0:
                raise HttpError(500, f"emulator: the Draco mesh of body {body} is not once in its shard {name}")
            entries[body] = f"~{_INITIAL_LAYER}/{name}:{offset}:{len(blob)}"
        with self._lock:
            if self._shards is None:
                self._shards = (files, entries)
            return self._shards

    # --- routes ----------------------------------------------------------------------------------------

    def add_routes(self, add: Any) -> None:
        """Register the mesh endpoints with the app's router (``add = router.add``)."""
        get = ("GET",)
        add(get, "/meshing/api/v1/table/{tbl}/manifest/{node}", "mesh_manifest", self.manifest)
        data = "/pcg-data/{tbl}"
        add(get, data + "/{file}", "mesh_data", self.graphene_file, public=True)
        add(get, data + "/{dir}/{file}", "mesh_data", self.graphene_file, public=True)
        add(get, data + "/{dir}/initial/{layer}/{file}", "mesh_data", self.graphene_shard, public=True)
        add(get, "/" + _FLAT_PREFIX + "{v}/{file}", "flat_segmentation", self.flat_file, public=True)
        add(get, "/" + _FLAT_PREFIX + "{v}/{dir}/{file}", "flat_segmentation", self.flat_file, public=True)

    def manifest(self, req: Request) -> Response:
        """``GET /meshing/api/v1/table/{table}/manifest/{root}:0``: the root's fragment files.

        Like PyChunkedGraph ``handle_get_manifest`` (``pychunkedgraph/app/meshing/common.py``): query
        ``verify``, ``return_seg_ids``, ``prepend_seg_ids``; an unknown node is a 400 (as this emulator's
        other chunkedgraph endpoints answer); a known root without a mesh lists no fragment.
        """
        self.app._cg(req)
        node, sep, lod = req.params["node"].partition(":")
        if sep != ":" or lod != "0" or not node.isdigit():
            raise HttpError(404, f"no such manifest: {req.params['node']!r}; ask for '<root id>:0'")
        root = int(node)
        self.app._known_roots([root])
        bodies = self.bodies_of_root(root) or []
        if self._sharded():
            entries = self._sharded_tree()[1]
            return Response.json({"fragments": [entries[b] for b in bodies], "seg_ids": bodies})
        fragments = [f"{b}:0:0" for b in bodies]
        out: dict[str, Any] = {"fragments": fragments}
        if _true(req.query.get("prepend_seg_ids")):
            out["fragments"] = [f"~{b}:{f}" for b, f in zip(bodies, fragments)]
        if _true(req.query.get("return_seg_ids")):
            out["seg_ids"] = bodies
        return Response.json(out)

    def graphene_file(self, req: Request) -> Response:
        if req.params["tbl"] != self.app.pcg_table:
            raise HttpError(404, f"no such bucket path: {req.path}")
        if req.params.get("dir") != GRAPHENE_MESH_DIR:
            # the watershed layer itself (its info, provenance, image chunks) is not served: cloud-volume asks
            # for provenance whenever it opens the graphene source, which must not read every mesh
            return _file({}, req.params["file"], req.path)
        if req.params["file"] == "info":
            # asked whenever cloud-volume opens the graphene source (fafbseg's id functions do): answered
            # without reading the meshes; unsharded legacy fragments (no "sharding")
            info = dict(_MESH_INFO)
            if self._sharded():
                spec = json.loads(self._sharding_spec().to_json())
                info["sharding"] = {str(layer): spec for layer in range(self.app.n_layers + 1)}
                info["mip"] = 0  # the scale cloud-volume's chunk-boundary mask reads (PrecomputedMeshMetadata.mip)
            return Response(body=json.dumps(info).encode(), content_type="application/json")
        if self._sharded():
            return _file({}, req.params["file"], req.path)  # no legacy fragments in the sharded layout
        return _file(self._graphene(), "mesh/" + req.params["file"], req.path)

    def graphene_shard(self, req: Request) -> Response:
        """``<data_dir>/<mesh>/initial/{layer}/{file}``: a shard of the sharded layout, by byte range."""
        if (req.params["tbl"] != self.app.pcg_table or req.params["dir"] != GRAPHENE_MESH_DIR
                or not self._sharded()):
            return _file({}, req.params["file"], req.path)
        path = f"initial/{req.params['layer']}/{req.params['file']}"
        return _file(self._sharded_tree()[0], path, req.path, req.headers.get("Range"))

    def flat_file(self, req: Request) -> Response:
        raw = req.params["v"]
        version = int(raw) if raw.isdigit() else None
        name = self.flat_name(version) if version is not None else None
        if name is None or name != _FLAT_PREFIX + raw:
            raise HttpError(404, f"no such bucket: {req.path}")
        tree = self._flat(version)
        path = "/".join(p for p in (req.params.get("dir"), req.params["file"]) if p)
        return _file(tree or {}, path, req.path, req.headers.get("Range"))


def _true(value: str | None) -> bool:
    return value is not None and value in ("True", "true", "1")


def _file(tree: dict[str, bytes], path: str, url_path: str, range_header: str | None = None) -> Response:
    from connectomix.precomputed import serve_range, serve_tree

    data = serve_tree(tree, path)
    if data is None:
        # a bucket's 404 is not JSON; cloud-files reads a 404 as "no such file"
        return Response(status=404, body=b"Not Found: " + url_path.encode(), content_type="text/plain")
    name = path.rsplit("/", 1)[-1]
    manifest = name.count(":") == 1 and name.endswith(":0")  # '{id}:0'; fragments are '{id}:0:0'
    kind = "application/json" if name == "info" or manifest else "application/octet-stream"
    status, data, content_range = serve_range(data, range_header)  # shards are read by byte range
    return Response(status=status, body=data, content_type=kind,
                    headers={"Content-Range": content_range} if content_range else {})


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Meshes concatenated into one (faces re-indexed), in the order given."""
    vertices, faces, offset = [], [], 0
    for v, f in parts:
        vertices.append(v)
        faces.append(np.asarray(f, dtype="int64") + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)

