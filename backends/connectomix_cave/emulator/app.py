"""The emulated CAVE services: InfoService, MaterializationEngine and PyChunkedGraph endpoints.

Response shapes follow the real servers (InfoService v2, MaterializationEngine
5.26.4 API v2/v3, PyChunkedGraph 2.x API v1) as caveclient 8.2.1 reads them;
see ``README.md`` of this package for the endpoint list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from connectomix.errors import InvalidArgumentError

from .dataset import EmulatedDataset
from .faults import FaultInjector, RequestStats
from .meshes import MeshService
from .query import QueryError, QueryResult, run_query
from .server import AuthPolicy, HttpError, Request, Response, Router
from .skeletons import add_routes as add_skeleton_routes, skeleton_source_url
from .tables import EmulatedTable
from .timeutil import format_cave, from_epoch_seconds, now_us, parse_iso, to_epoch_seconds
from .wire import ARROW_CONTENT_TYPE, arrow_stream, ipc_compression, json_bytes, records_json, resolution_header

__all__ = ["CaveApp", "SERVER_VERSIONS"]

#: Versions the emulated services report (caveclient needs materialize >= 5.13.0, chunkedgraph >= 2.17.0).
SERVER_VERSIONS = {"info": "4.5.0", "materialize": "5.26.4", "chunkedgraph": "2.20.0"}
N_LAYERS = 5  # so caveclient's suggest_latest_roots (stop_layer = n_layers - 4) asks for supervoxels
_LAYER_SHIFT = 56  # n_bits_for_layer_id = 8: the layer is the top byte of a node id (PyChunkedGraph)
_LOW_BITS = (1 << _LAYER_SHIFT) - 1


def graph_layers(dataset: EmulatedDataset) -> tuple[int, bool]:
    """``(n_layers, layered)`` of the emulated chunkedgraph.

    When every release body id (a version-1 root) carries the same layer ``L >= 3`` in its top
    byte, as FlyWire's root ids carry layer 10, and every supervoxel id carries layer 1, the graph
    reports ``n_layers = L`` and serves intermediate layers ``2 .. L-1`` (``layered``): the node
    of supervoxel ``sv`` at layer ``k`` is ``(k << 56) | (sv & (2**56 - 1))``, one node per
    supervoxel (a SYNTHETIC, degenerate hierarchy). Then fafbseg's ``is_valid_root`` (layer ==
    n_layers), ``update_ids`` (``get_leaves(stop_layer=2)`` then ``get_roots``) and caveclient's
    ``suggest_latest_roots`` (``stop_layer = n_layers - 4``) work. Otherwise (ids such as 101
    without layer bits) ``n_layers`` is :data:`N_LAYERS` and only layers 1 and n_layers exist.
    """
    bodies = np.asarray(dataset.release.body_ids(), dtype=np.int64)
    layers = set((bodies >> _LAYER_SHIFT).tolist())
    sv_layers = set((np.asarray(dataset.layout.sv_ids, dtype=np.int64) >> _LAYER_SHIFT).tolist())
    if len(layers) == 1 and min(layers) >= 3 and sv_layers == {1}:
        return int(min(layers)), True
    return N_LAYERS, False


def _prefiltered(frame, body: Any, name: str):
    """``frame`` without the rows ``body``'s ``filter_in_dict`` for table ``name`` excludes anyway.

    A join keeps only rows that pass every filter, which are applied again after the merge (with
    their checks and errors); dropping excluded rows first, as a database would with an index, keeps
    the emulator's join from merging whole tables on every request.
    """
    spec = (body.get("filter_in_dict") or {}).get(name) if isinstance(body.get("filter_in_dict"), dict) else None
    if not isinstance(spec, dict):
        return frame
    for column, values in spec.items():
        if column in frame.columns and isinstance(values, list):
            frame = frame[frame[column].isin(values)]
    return frame


def _flag(req: Request, name: str, default: bool = False) -> bool:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise HttpError(400, f"query parameter {name}={raw!r} must be True or False")


def _int_param(req: Request, name: str) -> int | None:
    raw = req.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise HttpError(400, f"query parameter {name}={raw!r} must be an integer") from None


def _time_param(req: Request, name: str, default: int | None) -> int:
    raw = req.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise HttpError(400, f"Timestamp parameter {name} is mandatory")
        return default
    try:
        return from_epoch_seconds(raw, what=name)
    except InvalidArgumentError as exc:
        raise HttpError(400, str(exc)) from None


def _id_list(value: Any, what: str) -> list[int]:
    """Integer ids, or decimal strings of them: fafbseg's ``is_latest_root`` posts its ids as strings
    (fafbseg/flywire/segmentation.py ``make_iterable(id, force_type=str)``), which the real chunkedgraph
    converts with ``np.array(..., dtype=np.uint64)``."""
    def ok(v: Any) -> bool:
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, str) and v.isdigit())

    if not isinstance(value, list) or not all(ok(v) for v in value):
        raise HttpError(400, f"{what} must be a list of integer ids")
    return [int(v) for v in value]


class CaveApp:
    """Routes and handlers for one emulated dataset served under one or more datastack names.

    Parameters
    ----------
    dataset
        What to serve.
    datastacks
        Datastack names (the first is the primary one; all serve the same data).
    forbidden_datastacks
        Names that exist but answer 403 to every token.
    pcg_table, aligned_volume
        Chunkedgraph table id and aligned volume name.
    row_limit
        ``QUERY_LIMIT_SIZE``: rows per query at most.
    auth, faults, stats
        Token policy, fault injector and request counters.

    Attributes
    ----------
    announce_caps
        ``True`` (default, as MaterializationEngine): a capped answer carries
        ``Warning: 201 - "Limited query to N rows``; ``False``: rows are capped
        silently, like servers that truncate without saying so.
    table_row_limits
        Per table or view name, a row cap replacing ``row_limit`` (servers cap
        every table alike; this lets a test cap one table without paying for
        splitting every other query).
    arrow_batch_rows
        ``None`` (default, as MaterializationEngine): one record batch per Arrow
        response; a number: batches of at most that many rows (more message
        boundaries to cut a stream at).
    """

    def __init__(self, dataset: EmulatedDataset, *, datastacks: Sequence[str], forbidden_datastacks: Sequence[str],
                 pcg_table: str, aligned_volume: str, row_limit: int, auth: AuthPolicy, faults: FaultInjector,
                 stats: RequestStats):
        if row_limit < 1:
            raise InvalidArgumentError(f"row_limit must be a positive integer, got {row_limit}")
        self.dataset = dataset
        self.datastacks = list(dict.fromkeys(datastacks))
        self.forbidden = set(forbidden_datastacks)
        self.pcg_table = pcg_table
        self.aligned_volume = aligned_volume
        self.row_limit = row_limit
        self.announce_caps = True
        self.table_row_limits: dict[str, int] = {}
        #: False on public datastacks: live queries are refused (see :meth:`live_live_query`).
        self.live_allowed = True
        self.n_layers, self.layered = graph_layers(dataset)
        self.arrow_batch_rows: int | None = None
        self.auth = auth
        self.faults = faults
        self.stats = stats
        self.base_url = ""
        self.router = Router()
        self.meshes = MeshService(self)
        self._add_routes()

    # --- routing -----------------------------------------------------------------------------------------

    def _add_routes(self) -> None:
        r = self.router.add
        get, post = ("GET",), ("POST",)
        r(get, "/info/version", "info_version", lambda q: Response.json(SERVER_VERSIONS["info"]), public=True)
        r(get, "/info/api/versions", "info_api_versions", lambda q: Response.json([2]), public=True)
        r(get, "/info/api/v2/datastacks", "datastacks", self.datastack_list)
        r(get, "/info/api/v2/datastack/full/{ds}", "datastack_info", self.datastack_info)
        r(get, "/info/api/v2/datastack/{ds}", "datastack_info", self.datastack_info)
        r(get, "/info/api/v2/aligned_volume/{av}", "aligned_volume", self.aligned_volume_info)
        r(get, "/materialize/version", "mat_version", lambda q: Response.json(SERVER_VERSIONS["materialize"]),
          public=True)
        r(get, "/materialize/api/versions", "mat_api_versions", lambda q: Response.json([2, 3]), public=True)
        base = "/materialize/api/v{api}/datastack/{ds}"
        r(get, base + "/versions", "versions", self.versions)
        r(get, base + "/version/{v}", "version", self.version)
        r(get, base + "/metadata", "versions_metadata", self.versions_metadata)
        r(get, base + "/version/{v}/tables", "tables", self.tables)
        r(get, base + "/version/{v}/tables/metadata", "tables_metadata", self.tables_metadata)
        r(get, base + "/version/{v}/table/{table}/metadata", "table_metadata", self.table_metadata)
        r(get, base + "/version/{v}/table/{table}/count", "table_count", self.table_count)
        r(post, base + "/version/{v}/table/{table}/query", "table_query", self.table_query)
        r(get, base + "/version/{v}/views", "views", self.views)
        r(get, base + "/version/{v}/views/{table}/metadata", "view_metadata", self.view_metadata)
        r(post, base + "/version/{v}/views/{table}/query", "view_query", self.view_query)
        r(post, base + "/version/{v}/query", "join_query", self.join_query)
        r(post, base + "/query", "live_live_query", self.live_live_query)
        r(get, "/segmentation/api/versions", "cg_api_versions", lambda q: Response.json([0, 1]), public=True)
        r(get, "/segmentation/api/version", "cg_version", lambda q: Response.json(SERVER_VERSIONS["chunkedgraph"]),
          public=True)
        r(get, "/segmentation/table/{tbl}/info", "cg_info", self.cg_info)
        cg = "/segmentation/api/v1/table/{tbl}"
        r(post, cg + "/is_latest_roots", "is_latest_roots", self.is_latest_roots)
        r(post, cg + "/root_timestamps", "root_timestamps", self.root_timestamps)
        r(post, cg + "/roots_binary", "roots_binary", self.roots_binary)
        r(post, cg + "/roots", "roots", self.roots_json)
        r(get, cg + "/node/{node}/root", "root", self.node_root)
        r(get, cg + "/node/{node}/leaves", "leaves", self.leaves)
        r(post, cg + "/node/leaves_many", "leaves_many", self.leaves_many)
        r(post, cg + "/leaves_many", "leaves_many", self.leaves_many)
        r(get, cg + "/past_id_mapping", "past_id_mapping", self.past_id_mapping)
        r(post, cg + "/lineage_graph_multiple", "lineage_graph", self.lineage_graph)
        r(get, cg + "/root/{node}/lineage_graph", "lineage_graph", self.lineage_graph)
        r(get, cg + "/delta_roots", "delta_roots", self.delta_roots)
        add_skeleton_routes(self)  # skeleton service, L2-cache table mapping, published FlyWire skeletons
        self.meshes.add_routes(r)  # meshing service manifest, fragment files, flat segmentations

    # --- common checks -----------------------------------------------------------------------------------

    def _datastack(self, req: Request) -> str:
        name = req.params["ds"]
        if name in self.forbidden:
            raise HttpError(403, f"this token does not have permission to view datastack {name!r}")
        if name not in self.datastacks:
            raise HttpError(404, f"datastack {name!r} not found; this server has {self.datastacks}")
        api = req.params.get("api")
        if api is not None and api not in ("2", "3"):
            raise HttpError(404, f"materialization API v{api} does not exist; use v2 or v3")
        return name

    def _version_number(self, req: Request, ds: str, *, queryable: bool = False) -> int:
        raw = req.params["v"]
        try:
            number = int(raw)
        except ValueError:
            raise HttpError(404, f"version {raw!r} is not an integer") from None
        spec = self.dataset.versions.get(number)
        if spec is None:
            raise HttpError(404, f"Version {number} not found in datastack {ds}; versions are "
                                 f"{sorted(self.dataset.versions)}")
        if queryable and not spec.valid:
            raise HttpError(410, f"This materialization version is not available: version {number} of {ds} "
                                 f"expired on {format_cave(spec.expires_on)}")
        return number

    def _table(self, req: Request, ds: str, version: int, kind: str):
        name = req.params["table"]
        table = self.dataset.tables.get(name)
        if table is None or table.kind != kind:
            names = sorted(n for n, t in self.dataset.tables.items() if t.kind == kind)
            raise HttpError(404, f"{'Analysis table' if kind == 'table' else 'View'} {name!r} not found for "
                                 f"version {version} in datastack {ds}; {kind}s are {names}")
        return table

    def _cg(self, req: Request) -> None:
        if req.params["tbl"] != self.pcg_table:
            raise HttpError(404, f"chunkedgraph table {req.params['tbl']!r} not found; this server has "
                                 f"{self.pcg_table!r}")

    # --- info service ------------------------------------------------------------------------------------

    def info_dict(self, ds: str) -> dict[str, Any]:
        res = self.dataset.resolution
        release = self.dataset.release
        return {
            "datastack_name": ds,
            "description": (f"connectomix CAVE emulator serving release {release.name!r}; version 1 equals the "
                            "release, later versions follow a SYNTHETIC (invented) proofreading history."),
            "aligned_volume": {"name": self.aligned_volume, "id": 1,
                               "image_source": f"precomputed://{self.base_url}/image-not-served",
                               "description": f"emulated aligned volume of release {release.name!r}"},
            "synapse_table": self.dataset.names.synapse_table,
            "soma_table": None,
            "local_server": self.base_url,
            "segmentation_source": f"graphene://{self.base_url}/segmentation/table/{self.pcg_table}",
            "skeleton_source": skeleton_source_url(self.base_url, ds),
            "analysis_database": None,
            "viewer_site": "https://neuroglancer-demo.appspot.com",
            "viewer_resolution_x": res[0], "viewer_resolution_y": res[1], "viewer_resolution_z": res[2],
        }

    def datastack_list(self, req: Request) -> Response:
        return Response.json(self.datastacks + sorted(self.forbidden - set(self.datastacks)))

    def datastack_info(self, req: Request) -> Response:
        return Response.json(self.info_dict(self._datastack(req)))

    def aligned_volume_info(self, req: Request) -> Response:
        if req.params["av"] != self.aligned_volume:
            raise HttpError(404, f"aligned volume {req.params['av']!r} not found")
        return Response.json(self.info_dict(self.datastacks[0])["aligned_volume"])

    # --- materialization: versions and metadata ----------------------------------------------------------

    def version_dict(self, ds: str, number: int) -> dict[str, Any]:
        spec = self.dataset.versions[number]
        return {"id": self.dataset.version_row_id(number), "version": number, "datastack": ds,
                "time_stamp": format_cave(spec.time_stamp), "expires_on": format_cave(spec.expires_on),
                "valid": spec.valid, "status": spec.status, "parent_version": None, "is_merged": True}

    def _listed(self, req: Request) -> list[int]:
        expired = _flag(req, "expired", False)
        return sorted(n for n, v in self.dataset.versions.items() if expired or v.valid)

    def versions(self, req: Request) -> Response:
        self._datastack(req)
        return Response.json(self._listed(req))

    def version(self, req: Request) -> Response:
        ds = self._datastack(req)
        try:
            number = self._version_number(req, ds)
        except HttpError:
            return Response.json("No version found", status=404)
        return Response.json(self.version_dict(ds, number))

    def versions_metadata(self, req: Request) -> Response:
        ds = self._datastack(req)
        listed = self._listed(req)
        if not listed:
            return Response.json("No valid versions found", status=404)
        return Response.json([self.version_dict(ds, n) for n in listed])

    def table_metadata_dict(self, ds: str, version: int, name: str) -> dict[str, Any]:
        table = self.dataset.tables[name]
        res = table.resolution or self.dataset.resolution  # each table its own (tables.py, "Resolution")
        genesis = format_cave(self.dataset.history.genesis)
        return {
            "id": list(self.dataset.tables).index(name) + 1, "aligned_volume": self.aligned_volume,
            "schema": table.schema, "schema_type": table.schema, "table_name": name, "valid": True,
            "created": genesis, "last_modified": genesis, "user_id": "0", "description": table.description,
            "notice_text": None, "reference_table": table.reference_table, "flat_segmentation_source": None,
            "voxel_resolution_x": res[0], "voxel_resolution_y": res[1], "voxel_resolution_z": res[2],
            "write_permission": "PRIVATE", "read_permission": "PUBLIC", "pcg_table_name": self.pcg_table,
            "analysisversion_id": version,
        }

    def view_metadata_dict(self, ds: str, name: str) -> dict[str, Any]:
        table = self.dataset.tables[name]
        # The view's own resolution, not its source table's. For FlyWire's valid_synapses_nt_np_v6 the real
        # view metadata was not read (unverified): 1, 1, 1 follows its answers in nm (tables.py, "Resolution").
        res = table.resolution or self.dataset.resolution
        return {"id": list(self.dataset.tables).index(name) + 1, "table_name": name, "datastack_name": ds,
                "description": table.description, "notice_text": None, "live_compatible": False,
                "voxel_resolution_x": res[0], "voxel_resolution_y": res[1], "voxel_resolution_z": res[2]}

    def _names(self, kind: str) -> list[str]:
        return [n for n, t in self.dataset.tables.items() if t.kind == kind]

    def tables(self, req: Request) -> Response:
        ds = self._datastack(req)
        self._version_number(req, ds)
        return Response.json(self._names("table"))

    def tables_metadata(self, req: Request) -> Response:
        ds = self._datastack(req)
        v = self._version_number(req, ds)
        return Response.json([self.table_metadata_dict(ds, v, n) for n in self._names("table")])

    def table_metadata(self, req: Request) -> Response:
        ds = self._datastack(req)
        v = self._version_number(req, ds)
        table = self._table(req, ds, v, "table")
        return Response.json(self.table_metadata_dict(ds, v, table.name))

    def table_count(self, req: Request) -> Response:
        ds = self._datastack(req)
        v = self._version_number(req, ds, queryable=True)
        table = self._table(req, ds, v, "table")
        return Response.json(int(len(table.stored)))

    def views(self, req: Request) -> Response:
        ds = self._datastack(req)
        self._version_number(req, ds)
        out = {}
        for name in self._names("view"):
            meta = self.view_metadata_dict(ds, name)
            meta.pop("table_name")
            out[name] = meta
        return Response.json(out)

    def view_metadata(self, req: Request) -> Response:
        ds = self._datastack(req)
        v = self._version_number(req, ds)
        table = self._table(req, ds, v, "view")
        return Response.json(self.view_metadata_dict(ds, table.name))

    # --- materialization: queries ------------------------------------------------------------------------

    def _respond(self, req: Request, result: QueryResult) -> Response:
        headers = {"column_names": json_bytes(result.column_names).decode()}
        headers["dataframe_resolution"] = resolution_header(result.resolution)
        warnings = [w for w in result.warnings if self.announce_caps or "Limited query" not in w]
        if warnings:
            headers["Warning"] = ", ".join(w.replace("\n", " ") for w in warnings)
        if _flag(req, "return_pyarrow", True):
            body = arrow_stream(result.frame, ipc_compression(req.headers.get("Accept-Encoding", "")),
                                max_rows=self.arrow_batch_rows)
            return Response(body=body, content_type=ARROW_CONTENT_TYPE, headers=headers, arrow=True)
        gz = "gzip" in (req.headers.get("Accept-Encoding") or "").lower()
        if gz:
            headers["Content-Encoding"] = "gzip"
        return Response(body=records_json(result.frame, gz), headers=headers)

    def _query(self, req: Request, table, frame, body: Any) -> Response:
        sample = _int_param(req, "random_sample")
        try:
            limit = self.table_row_limits.get(table.name, self.row_limit)
            result = run_query(frame, table, body, row_limit=limit,
                               table_resolution=table.resolution or self.dataset.resolution,
                               count=_flag(req, "count", False), random_sample=sample,
                               split_positions=_flag(req, "split_positions", True))
        except QueryError as exc:
            raise HttpError(400, str(exc)) from None
        return self._respond(req, result)

    def table_query(self, req: Request) -> Response:
        ds = self._datastack(req)
        v = self._version_number(req, ds, queryable=True)
        table = self._table(req, ds, v, "table")
        return self._query(req, table, self.dataset.table(table.name, v), req.json())

    def view_query(self, req: Request) -> Response:
        ds = self._datastack(req)
        v = self._version_number(req, ds, queryable=True)
        table = self._table(req, ds, v, "view")
        return self._query(req, table, self.dataset.table(table.name, v), req.json())

    def join_query(self, req: Request) -> Response:
        """A join of a reference table with its target: what caveclient sends for ``merge_reference=True``.

        Body ``"tables": [[table, "target_id"], [target, "id"]]`` with ``suffix_map``
        ``{table: "", target: "_ref"}`` (or ``suffixes``); filters and ``select_column_map``
        keyed by either table. Columns of the target that clash with the table's get the
        target's suffix (``id_ref``, ``valid_ref``), as in the FlyConnectome tutorial's merged
        output. Other joins are refused (HTTP 400).
        """
        ds = self._datastack(req)
        v = self._version_number(req, ds, queryable=True)
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "the request body must be a JSON object")
        spec = body.get("tables")
        try:
            (name, on), (target, target_on) = spec
        except (TypeError, ValueError):
            raise HttpError(400, f"tables must be [[table, column], [table, column]]; got {spec!r}") from None
        table = self.dataset.tables.get(name)
        if table is None or table.kind != "table":
            raise HttpError(404, f"Analysis table {name!r} not found for version {v} in datastack {ds}")
        if table.reference_table != target or (on, target_on) != ("target_id", "id"):
            raise HttpError(400, f"the connectomix CAVE emulator only joins a reference table with its target "
                                 f"([[table, 'target_id'], [target, 'id']]); got {spec!r}")
        suffixes = body.get("suffix_map") or {}
        if isinstance(body.get("suffixes"), list):
            suffixes = dict(zip((name, target), body["suffixes"]))
        suffix = suffixes.get(target, "_ref") or "_ref"
        left = _prefiltered(self.dataset.table(name, v), body, name)
        right = _prefiltered(self.dataset.table(target, v), body, target)
        target_table = self.dataset.tables[target]
        clash = set(left.columns) & set(right.columns)
        renamed = {c: (c + suffix if c in clash else c) for c in right.columns}
        merged = left.merge(right.rename(columns=renamed), left_on="target_id", right_on=renamed["id"], how="inner")
        logical = list(table.columns) + [renamed.get(c, c + suffix if c in table.columns else c)
                                         for c in target_table.columns]
        joined = EmulatedTable(
            name=name, kind="table", schema=table.schema, description=table.description, columns=logical,
            position_columns=target_table.position_columns, root_columns=(), stored=merged,
            string_columns=table.string_columns + target_table.string_columns,
            resolution=target_table.resolution)  # the positions are the target's
        query = {k: val for k, val in body.items() if k not in ("tables", "suffix_map", "suffixes")}
        for kind in list(query):
            value = query[kind]
            if kind.startswith("filter_") and isinstance(value, dict):
                flat = dict(value.get(name) or {})
                flat.update({(c + suffix if c in clash else c): x for c, x in (value.get(target) or {}).items()})
                query[kind] = {name: flat}
        if isinstance(query.get("select_column_map"), dict):
            cmap = query.pop("select_column_map")
            query["select_columns"] = list(cmap.get(name) or []) + [
                c + suffix if c in clash else c for c in (cmap.get(target) or [])]
        return self._query(req, joined, merged[joined.frame_columns()], query)

    def live_live_query(self, req: Request) -> Response:
        ds = self._datastack(req)
        if not self.live_allowed:
            # The wording of the real public stacks' refusal is unverified (no public record found);
            # public datastacks are documented as frozen snapshots without live queries.
            raise HttpError(403, f"live queries are not allowed on the public datastack {ds!r}; query a "
                                 "materialization version")
        if req.params.get("api") != "3":
            raise HttpError(404, "live queries need materialization API v3")
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "the request body must be a JSON object")
        if body.get("join_tables"):
            raise HttpError(400, "joins are not supported by the connectomix CAVE emulator")
        name = body.get("table")
        table = self.dataset.tables.get(name) if isinstance(name, str) else None
        if table is None or table.kind != "table":
            raise HttpError(404, f"table {name!r} not found in datastack {ds}; tables are {self._names('table')}")
        if "timestamp" not in body:
            raise HttpError(400, "a live query needs 'timestamp'")
        try:
            ts = parse_iso(body["timestamp"], what="timestamp")
        except InvalidArgumentError as exc:
            raise HttpError(400, str(exc)) from None
        if not _flag(req, "allow_invalid_root_ids", False):
            self._check_live_roots(body, table, ts)
        query = {k: v for k, v in body.items() if k not in ("table", "timestamp", "suffixes")}
        return self._query(req, table, self.dataset.table_at(table.name, ts), query)

    def _check_live_roots(self, body: dict, table, ts: int) -> None:
        ids: list[int] = []
        for kind in ("filter_in_dict", "filter_equal_dict"):
            spec = (body.get(kind) or {}).get(table.name) or {}
            for col, value in spec.items():
                if col.endswith("_root_id"):
                    values = value if isinstance(value, list) else [value]
                    ids.extend(int(v) for v in values if isinstance(v, int) and v != 0)
        if ids:
            latest = self.dataset.history.is_latest(ids, ts)
            bad = sorted({i for i, ok in zip(ids, latest) if not ok})
            if bad:
                raise HttpError(400, f"root_id(s) {bad} are not valid at timestamp {format_cave(ts)}; update them "
                                     "(chunkedgraph get_latest_roots) or pass allow_invalid_root_ids=True")

    # --- chunkedgraph ---------------------------------------------------------------------------------------

    def cg_info(self, req: Request) -> Response:
        self._cg(req)
        res = list(self.dataset.resolution)
        return Response.json({
            "app": {"supported_api_versions": [0, 1]},
            "data_type": "uint64",
            "graph": {"chunk_size": [256, 256, 512], "n_bits_for_layer_id": 8, "n_layers": self.n_layers,
                      "spatial_bit_masks": {str(i): 10 for i in range(1, self.n_layers + 1)}},
            "mesh_dir": "graphene_meshes", "num_channels": 1,
            "scales": [{"chunk_sizes": [[256, 256, 32]], "encoding": "raw", "key": "_".join(map(str, res)),
                        "resolution": res, "size": [1, 1, 1], "voxel_offset": [0, 0, 0]}],
            "type": "segmentation", "verify_mesh": False,
            "description": "connectomix CAVE emulator: roots over SYNTHETIC supervoxels; no image data",
            **self.meshes.graphene_info(),  # data_dir, mesh, sharded_mesh: where the mesh fragments are
        })

    def _node_ids(self, req: Request, key: str = "node_ids") -> list[int]:
        body = req.json()
        if not isinstance(body, dict) or key not in body:
            raise HttpError(400, f"the JSON body needs {key!r}")
        return _id_list(body[key], key)

    def _known_roots(self, ids: list[int]) -> None:
        unknown = self.dataset.history.unknown(ids)
        if unknown:
            raise HttpError(400, f"node id(s) {unknown[:10]} are not root ids of this chunkedgraph")

    def is_latest_roots(self, req: Request) -> Response:
        self._cg(req)
        ids = self._node_ids(req)
        ts = _time_param(req, "timestamp", now_us())
        return Response.json({"is_latest": self.dataset.history.is_latest(ids, ts).tolist()})

    def root_timestamps(self, req: Request) -> Response:
        self._cg(req)
        ids = self._node_ids(req)
        self._known_roots(ids)
        history = self.dataset.history
        if not _flag(req, "latest", False):
            return Response.json({"timestamp": history.created(ids)})
        ts = _time_param(req, "timestamp", now_us())
        out = []
        for i in ids:
            info = history.roots[i]
            if info.created > ts:
                raise HttpError(400, f"root {i} did not exist yet at timestamp {format_cave(ts)}")
            out.append(to_epoch_seconds(info.superseded if info.superseded is not None and info.superseded <= ts
                                        else ts))
        return Response.json({"timestamp": out})

    def roots_binary(self, req: Request) -> Response:
        self._cg(req)
        if len(req.body) % 8:
            raise HttpError(400, f"roots_binary needs little-endian uint64 ids; got {len(req.body)} bytes")
        self._stop_layer(req)
        svs = self._supervoxels(np.frombuffer(req.body, dtype="<u8").astype(np.int64))
        roots = self.dataset.history.roots_of_supervoxels(svs, _time_param(req, "timestamp", now_us()))
        return Response(body=roots.astype("<u8").tobytes(), content_type="application/octet-stream")

    def roots_json(self, req: Request) -> Response:
        self._cg(req)
        self._stop_layer(req)
        ids = self._node_ids(req)
        roots = self.dataset.history.roots_of_supervoxels(self._supervoxels(np.array(ids, dtype=np.int64)),
                                                          _time_param(req, "timestamp", now_us()))
        if req.query.get("as_binary") == "root_ids":
            return Response(body=roots.astype("<u8").tobytes(), content_type="application/octet-stream")
        return Response.json({"root_ids": roots.tolist()})

    def _layers_text(self) -> str:
        if self.layered:
            return f"supervoxels (layer 1), layers 2-{self.n_layers - 1} and roots (layer {self.n_layers})"
        return f"supervoxels (layer 1) and roots (layer {self.n_layers}) only"

    def _supervoxels(self, ids: np.ndarray) -> np.ndarray:
        """Node ids of intermediate layers replaced by their supervoxel (see :func:`graph_layers`)."""
        if not self.layered or not len(ids):
            return ids
        layer = ids >> _LAYER_SHIFT
        inner = (layer > 1) & (layer < self.n_layers)
        return np.where(inner, (np.int64(1) << _LAYER_SHIFT) | (ids & _LOW_BITS), ids)

    def _stop_layer(self, req: Request) -> None:
        layer = _int_param(req, "stop_layer")
        if layer is not None and layer != self.n_layers:
            raise HttpError(400, f"stop_layer={layer} is not supported for roots: the emulated graph has "
                                 f"{self._layers_text()}")

    def node_root(self, req: Request) -> Response:
        self._cg(req)
        try:
            node = int(req.params["node"])
        except ValueError:
            raise HttpError(400, f"node id {req.params['node']!r} is not an integer") from None
        self._stop_layer(req)
        node = int(self._supervoxels(np.array([node], dtype=np.int64))[0])
        root = self.dataset.history.root_at(node, _time_param(req, "timestamp", now_us()))
        if root is None:
            raise HttpError(400, f"node {node} is neither a supervoxel nor a root current at that time")
        return Response.json({"root_id": root})

    def _leaf_layer(self, req: Request) -> int:
        layer = _int_param(req, "stop_layer")
        if layer is None or layer == 1 or (self.layered and 1 < layer < self.n_layers):
            return 1 if layer is None else layer
        raise HttpError(400, f"stop_layer={layer} is not supported for leaves: the emulated graph has "
                             f"{self._layers_text()}")

    def _at_layer(self, svs: np.ndarray, layer: int) -> list[int]:
        svs = np.asarray(svs, dtype=np.int64)
        if layer == 1:
            return svs.tolist()
        return ((np.int64(layer) << _LAYER_SHIFT) | (svs & _LOW_BITS)).tolist()

    def leaves(self, req: Request) -> Response:
        self._cg(req)
        layer = self._leaf_layer(req)
        try:
            node = int(req.params["node"])
        except ValueError:
            raise HttpError(400, f"node id {req.params['node']!r} is not an integer") from None
        self._known_roots([node])
        return Response.json({"leaf_ids": self._at_layer(self.dataset.history.supervoxels_of_root(node), layer)})

    def leaves_many(self, req: Request) -> Response:
        self._cg(req)
        layer = self._leaf_layer(req)
        ids = self._node_ids(req)
        self._known_roots(ids)
        history = self.dataset.history
        return Response.json({str(i): self._at_layer(history.supervoxels_of_root(i), layer) for i in ids})

    def past_id_mapping(self, req: Request) -> Response:
        self._cg(req)
        ids = self._node_ids(req, "root_ids")
        self._known_roots(ids)
        past = _time_param(req, "timestamp_past", 0)
        future = _time_param(req, "timestamp_future", now_us())
        past_map, future_map = self.dataset.history.past_future_id_mapping(ids, past, future)
        return Response.json({"past_id_map": {str(k): v for k, v in past_map.items()},
                              "future_id_map": {str(k): v for k, v in future_map.items()}})

    def lineage_graph(self, req: Request) -> Response:
        self._cg(req)
        ids = [int(req.params["node"])] if "node" in req.params else self._node_ids(req, "root_ids")
        self._known_roots(ids)
        past = _time_param(req, "timestamp_past", 0)
        future = _time_param(req, "timestamp_future", now_us())
        graph = self.dataset.history.lineage_graph(ids, past, future)
        nodes = [{**graph.nodes[n], "id": int(n)} for n in sorted(graph.nodes)]
        links = [{"source": int(a), "target": int(b)} for a, b in sorted(graph.edges)]
        return Response.json({"directed": True, "multigraph": False, "graph": {}, "nodes": nodes, "links": links})

    def delta_roots(self, req: Request) -> Response:
        self._cg(req)
        past = _time_param(req, "timestamp_past", None)
        future = _time_param(req, "timestamp_future", now_us())
        old, new = self.dataset.history.delta_roots(past, future)
        return Response.json({"old_roots": old, "new_roots": new})
