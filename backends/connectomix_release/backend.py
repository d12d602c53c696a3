"""Query a release folder (see ``FORMAT.md``) with DuckDB, without loading it whole.

Filters are pushed into DuckDB's Parquet scan: only the columns a query needs
are read, and row groups whose ``pre`` statistics exclude the requested ids are
skipped. Ids reach SQL as validated ``int64`` literals (which lets DuckDB prune
row groups); every user-supplied string goes through bound parameters.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import re
import threading
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import duckdb
import numpy as np
import pandas as pd

from connectomix import schema
from connectomix.backend import (
    Backend,
    Capability,
    ConnectivityQuery,
    DatasetInfo,
    ParsedURI,
    ScoreInfo,
    SynapseQuery,
)
from connectomix.criteria import COUNT_FIELDS, STRING_FIELDS, NeuronCriteria
from connectomix.errors import (
    DataFormatError,
    IdsNotFoundError,
    InvalidArgumentError,
    InvalidRegexError,
    InvalidURIError,
    ResourceLimitError,
    UnsupportedOperation,
)

from .meshes import MESHES_FILE
from .rowgroups import RowGroupReader
from . import aggregates
from .storage import Location, is_url
from .writer import CHECKED_ROWS, POST_COPY, TABLES, quote_ident

ENGINES = ("duckdb", "dask")

__all__ = ["ReleaseBackend"]

FORMAT_NAME = "connectomix-release"
SUPPORTED_FORMAT_VERSIONS = (1,)


_MEMORY = re.compile(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|[KMGT]|B|%)", re.I)


def _positive_int(value: Any, name: str) -> int:
    """A positive integer option; a string of ASCII digits (from a URI) is read, nothing else is."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        value = int(value.strip())
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or not 1 <= value <= 4096:
        raise InvalidArgumentError(f"{name} must be a positive integer (at most 4096); got {value!r}")
    return int(value)


def _id_list(ids: np.ndarray) -> str:
    """SQL literal for validated int64 ids (never user text)."""
    ids = np.asarray(ids, dtype="int64")
    return "(" + ",".join(map(str, ids.tolist())) + ")" if ids.size else "(NULL)"


class ReleaseBackend(Backend):
    """Connectome release folders (Parquet), local or on object storage, queried with DuckDB or Dask.

    URI: ``release:///absolute/path/to/folder`` (or ``release://relative/path``). The path is
    percent-decoded, as in ``file://`` URIs: write ``?``, ``#`` and ``%`` in folder names as
    ``%3F``, ``%23`` and ``%25``. Glob characters (``*``, ``?``, ``[...]``) in the path are
    always literal. A release on object storage is ``release://s3://bucket/prefix`` (any URL
    fsspec reads: ``gs://``, ``https://``, ...; not percent-decoded), read in place.

    Parameters
    ----------
    threads : int
        DuckDB worker threads (default: DuckDB's choice).
    memory_limit : str
        DuckDB memory limit, e.g. ``"2GB"``: beyond it, large sorts, joins
        and aggregates spill to ``temp_directory``.
    temp_directory : str or path, optional
        Where DuckDB spills (default: DuckDB's, ``.tmp`` in the working folder,
        removed when the dataset is closed); e.g. a node's local scratch.
    engine : {"duckdb", "dask"}
        What answers queries: DuckDB in this process (default), or a Dask
        cluster (``dask.distributed``), see :mod:`connectomix_release.dask_engine`.
    scheduler : str, distributed.Client or cluster, optional
        With ``engine="dask"``: a scheduler address (``"tcp://host:8786"``), a
        ``Client``, or a cluster object (``LocalCluster``, a dask-jobqueue
        ``SLURMCluster``...). Default: a 2-worker ``LocalCluster`` started on
        first use and closed with the dataset.
    storage_options : dict, optional
        For a URL: options of the fsspec filesystem (e.g. ``{"endpoint_url": ...}``);
        never shown in messages or cache keys. Credentials normally come from
        the store's usual environment variables and config files.
    anon : bool, optional
        For a URL: read a public bucket without credentials.

    Examples
    --------
    >>> import connectomix
    >>> ds = connectomix.open("sample")
    >>> ds.backend.path.name
    'sample'
    """

    name = "release"
    schemes = ("release",)
    description = "Local connectome release folders (Parquet) queried with DuckDB; works offline"
    capabilities = frozenset(
        {Capability.SYNAPSES, Capability.SYNAPSE_SCORES, Capability.ROIS, Capability.SKELETONS,
         Capability.MESHES, Capability.NEURON_SIDES}
    )
    OPTIONS = ("threads", "memory_limit", "temp_directory", "engine", "scheduler", "storage_options", "anon")

    def __init__(self, path: str | Path, *, threads: int | None = None, memory_limit: str | None = None,
                 temp_directory: str | Path | None = None, engine: str = "duckdb", scheduler: Any = None,
                 storage_options: dict | None = None, anon: bool | str | None = None):
        if not isinstance(engine, str) or engine not in ENGINES:
            raise InvalidArgumentError(f"engine must be one of {list(ENGINES)}; got {engine!r}")
        if scheduler is not None and engine != "dask":
            raise InvalidArgumentError("scheduler= is an option of engine='dask'")
        self._loc = Location(path, _storage_options(path, storage_options, anon))
        self.path = self._loc.path  # None for a release on object storage (see .location)
        self.location = self._loc.root
        if not self._loc.isdir():
            raise InvalidURIError(f"release folder {self.location!r} does not exist or is not a folder")
        manifest_file = self._loc.url("manifest.json")
        if not self._loc.isfile("manifest.json"):
            raise DataFormatError(f"{self.location!r} is not a connectomix release folder: it has no manifest.json")
        try:
            self.manifest: dict[str, Any] = json.loads(self._loc.read_bytes("manifest.json").decode("utf-8"))
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{manifest_file} is not valid JSON: {exc}") from None
        if self.manifest.get("format", FORMAT_NAME) != FORMAT_NAME or (
            self.manifest.get("format_version", 1) not in SUPPORTED_FORMAT_VERSIONS
        ):
            raise DataFormatError(
                f"{manifest_file}: unsupported format {self.manifest.get('format')!r} version "
                f"{self.manifest.get('format_version')!r}; this connectomix reads {FORMAT_NAME!r} "
                f"versions {SUPPORTED_FORMAT_VERSIONS}"
            )
        # on object storage every existence check is a request: the files are listed once, here
        self._remote_files: set[str] | None = None
        if self._loc.remote:
            self._remote_files = {f for f in (*(f"{t}.parquet" for t in TABLES), POST_COPY, MESHES_FILE)
                                  if self._loc.isfile(f)} | ({"skeletons"} if self._loc.isdir("skeletons") else set())
        for required in ("neurons.parquet", "connections.parquet"):
            if not self._has(required[:-len(".parquet")]):
                raise DataFormatError(f"release folder {self.location!r} has no {required}")
        config: dict[str, Any] = {}
        if threads is not None:
            config["threads"] = _positive_int(threads, "threads")
        if memory_limit is not None:
            if not isinstance(memory_limit, str) or not _MEMORY.fullmatch(memory_limit.strip()):
                raise InvalidArgumentError(
                    f"memory_limit must be an amount such as '2GB', '512MB' or '80%'; got {memory_limit!r}")
            config["memory_limit"] = memory_limit.strip()
        if temp_directory is not None:
            if not isinstance(temp_directory, (str, Path)) or not str(temp_directory).strip():
                raise InvalidArgumentError(f"temp_directory must be a folder path; got {temp_directory!r}")
            config["temp_directory"] = str(Path(temp_directory).expanduser())
        self._memory_limit = config.get("memory_limit")
        try:
            self._con = duckdb.connect(":memory:", config=config)
        except duckdb.Error as exc:
            raise InvalidArgumentError(f"DuckDB refused threads={threads!r} / memory_limit={memory_limit!r}: "
                                       f"{exc}") from None
        self._loc.register(self._con)
        self._rows = RowGroupReader(self._loc)  # parsed footers of the synapse files, kept per file identity
        self._lock = threading.Lock()
        self._closed = False
        self._neuron_columns = self._columns("neurons")
        # (from the footer the synapse filter keeps: DuckDB's DESCRIBE would read it once more)
        self._synapse_columns = tuple(self._rows.metadata("synapses.parquet")[0].schema.to_arrow_schema().names
                                      ) if self._has("synapses") else ()
        self._check_integrity()
        self.engine = engine
        self._dask = None
        if engine == "dask":
            from .dask_engine import DaskEngine

            self._dask = DaskEngine(self, scheduler)

    # -- construction ---------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: ParsedURI, options: Mapping[str, Any]) -> ReleaseBackend:
        cls.check_options(options)
        # percent-decoded like a file URI: a folder named 'run?' is release:///data/run%3F;
        # a URL (release://s3://bucket/prefix) is passed to fsspec as written
        path = uri.location if is_url(uri.location) else unquote(uri.location)
        return cls(path, **dict(options))

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._con.close()
                self._closed = True
                if self._dask is not None:
                    self._dask.close()

    # -- helpers ------------------------------------------------------------------------

    def _has(self, table: str) -> bool:
        name = table if table.endswith(".parquet") else f"{table}.parquet"
        if self._remote_files is not None:
            return name in self._remote_files
        return self._loc.isfile(name)

    def _table(self, table: str) -> str:
        # the folder is the user's: quoted for SQL and escaped for DuckDB's glob (see quote_path)
        name = table if table.endswith(".parquet") else f"{table}.parquet"
        return f"read_parquet({self._loc.sql(name)})"

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            if self._closed:
                raise InvalidArgumentError("this dataset has been closed")
            cur = self._con.cursor()
        try:
            yield cur
        except duckdb.OutOfMemoryException as exc:
            limit = (f"memory_limit={self._memory_limit!r}" if self._memory_limit is not None
                     else "no memory_limit (DuckDB's default: 80% of the RAM)")
            raise ResourceLimitError(
                f"release folder {self.location!r}: the query needed more memory than allowed ({limit}): "
                f"{str(exc).splitlines()[0]}. Open the dataset with a larger memory_limit=, a temp_directory= "
                "on a disk with room to spill, fewer threads=, or engine='dask'") from exc
        except duckdb.Error as exc:
            raise DataFormatError(f"release folder {self.location!r}: {exc}") from exc
        finally:
            cur.close()

    def _query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        with self._cursor() as cur:
            return cur.sql(sql, params=params or None).to_arrow_table().to_pandas()

    def _check_integrity(self) -> None:
        """Refuse a folder whose tables repeat their keys (doubled weights, doubled synapses).

        ``neurons.parquet`` is always checked row by row (it is small). Another
        table is trusted when the manifest records the row count the writer
        checked (``checked_rows``) and the file still has that many rows
        (read from the Parquet footer, without a scan); otherwise its keys are
        checked for duplicates here.
        """
        recorded = self.manifest.get(CHECKED_ROWS) or {}
        if self._has("synapses") and self._has(POST_COPY):
            rows, copied = self._footer_rows("synapses.parquet"), self._footer_rows(POST_COPY)
            if rows != copied:
                raise DataFormatError(
                    f"{self._loc.url(POST_COPY)!r} does not hold the rows of synapses.parquet ({copied:,} vs "
                    f"{rows:,}): one was changed after the release was written; rebuild the release folder, or "
                    "rewrite the copy with connectomix_release.writer.write_post_copy(folder)")
        for table in ("neurons", "connections", "roi_counts", "synapses"):
            if not self._has(table):
                continue
            file = self._loc.url(f"{table}.parquet")
            if table != "neurons" and table in recorded:
                rows = self._footer_rows(f"{table}.parquet")
                if rows == recorded[table]:
                    continue
                raise DataFormatError(
                    f"{str(file)!r} has {rows:,} rows but the release's manifest.json records {recorded[table]:,}: "
                    "the file was changed after the release was written; rebuild the release folder "
                    "(or check it with 'connectomix convert --check --deep')"
                )
            key = TABLES[table].unique
            cols = ", ".join(quote_ident(k) for k in key)
            with self._cursor() as cur:
                dupes = cur.execute(f"SELECT {cols}, count(*) FROM {self._table(table)} GROUP BY ALL "
                                    "HAVING count(*) > 1 LIMIT 3").fetchall()
            if dupes:
                shown = "; ".join(", ".join(f"{k}={v!r}" for k, v in zip(key, d[:-1])) + f" ({d[-1]} rows)"
                                  for d in dupes)
                raise DataFormatError(
                    f"{str(file)!r} is corrupt: each ({', '.join(key)}) must appear once, but rows repeat, "
                    f"e.g. {shown}; the release would return doubled or dropped rows. Rebuild it "
                    "(or list every problem with 'connectomix convert --check --deep')"
                )

    def _footer_rows(self, name: str) -> int:
        """Rows of a Parquet file, from its footer (no scan; the parsed footer is kept for the synapse filter)."""
        return int(self._rows.metadata(name)[0].num_rows)

    def _columns(self, table: str) -> tuple[str, ...]:
        with self._cursor() as cur:
            return tuple(r[0] for r in cur.execute(f"DESCRIBE SELECT * FROM {self._table(table)}").fetchall())

    # -- metadata -------------------------------------------------------------------------

    def info(self) -> DatasetInfo:
        m = self.manifest
        primary = tuple(m.get("primary_rois", ()))
        return DatasetInfo(
            name=m.get("name", self.location.rstrip("/").rsplit("/", 1)[-1]),
            version=m.get("version"),
            rois=tuple(m.get("rois", primary)),
            primary_rois=primary,
            voxel_size_nm=tuple(m["voxel_size_nm"]) if m.get("voxel_size_nm") else None,
            description=m.get("description", ""),
            synthetic=m.get("synthetic", {}),
            extra={k: m[k] for k in ("source", "license", "citation", "score_name", "partial") if k in m},
            score=ScoreInfo(**m["score"]) if m.get("score_name") and m.get("score") else None,
            neuron_columns=self._declared_neuron_columns(),
        )

    def _declared_neuron_columns(self) -> tuple[str, ...]:
        """The neuron columns this release has: those of ``neurons.parquet`` (core ones first), with
        ``upstream``/``downstream`` (summed from connections when the file lacks them)."""
        present = set(self._neuron_columns) | {"upstream", "downstream"}
        core = [c.name for c in schema.NEURONS.columns + schema.NEURONS.optional if c.name in present]
        return tuple(core + [c for c in self._neuron_columns if c not in core])

    def dataset_capabilities(self) -> frozenset[Capability]:
        # per-ROI neuron counts only with roi_counts.parquet: they count synaptic *sites* per ROI, which
        # synapse rows (connections, located by their postsynaptic site) cannot reproduce exactly
        caps = {Capability.NEURON_SIDES}
        if self._has("roi_counts"):
            caps.add(Capability.ROIS)
        if self._has("synapses"):
            caps.add(Capability.SYNAPSES)
            if self.manifest.get("score_name"):
                caps.add(Capability.SYNAPSE_SCORES)
        if (self._remote_files is not None and "skeletons" in self._remote_files) or (
                self.path is not None and (self.path / "skeletons").is_dir()):
            caps.add(Capability.SKELETONS)
        if self._has(MESHES_FILE):
            caps.add(Capability.MESHES)
        return frozenset(caps)

    def cache_identity(self, version: Any) -> Mapping[str, Any] | None:
        """The folder, a digest of ``manifest.json`` and a fingerprint of every table file.

        Taken afresh on every call (one small read and a few ``stat`` calls),
        so a release rewritten in place under the same path gets new cache
        keys; see :func:`connectomix.cache.file_fingerprints`.
        """
        import hashlib

        try:
            manifest = hashlib.sha256(self._loc.read_bytes("manifest.json")).hexdigest()
        except OSError:
            return None  # the folder is going away: do not cache; the query reports the problem
        tables = [f"{t}.parquet" for t in ("neurons", "connections", "roi_counts", "synapses")]
        # (a remote release: ETag, size and modification time of each object, never credentials)
        return {"path": self._loc.identity(), "version": version, "manifest_sha256": manifest,
                "files": self._loc.fingerprints(tables)}

    # -- neurons ---------------------------------------------------------------------------

    def _neurons_relation(self) -> str:
        """``neurons.parquet`` with ``upstream``/``downstream``; a release written before they were part
        of the format gets them summed from ``connections.parquet`` (every row, as the writer counts them)."""
        if {"upstream", "downstream"} <= set(self._neuron_columns):
            return self._table("neurons")
        c = self._table("connections")
        return (f"(SELECT n.*, coalesce(u.w, 0)::BIGINT AS upstream, coalesce(d.w, 0)::BIGINT AS downstream "
                f"FROM {self._table('neurons')} AS n "
                f"LEFT JOIN (SELECT post AS id, sum(weight) AS w FROM {c} GROUP BY post) AS u USING (id) "
                f"LEFT JOIN (SELECT pre AS id, sum(weight) AS w FROM {c} GROUP BY pre) AS d USING (id))")

    def fetch_neurons(self, criteria: NeuronCriteria, materialization: Any = None) -> pd.DataFrame:
        if self._dask is not None:
            return self._dask.fetch_neurons(criteria)
        where, params = ["n.id <> 0"], []
        if criteria.ids is not None:
            where.append(f"n.id IN {_id_list(np.array(criteria.ids))}")
        if criteria.label == "neuron":
            where.append(self._neuron_condition("n."))
        for field_name, column in STRING_FIELDS.items():
            values = getattr(criteria, field_name)
            if values is None or column not in self._neuron_columns:
                continue  # a column the release lacks: the core refuses the criterion (see info().neuron_columns)
            if criteria.regex:
                where.append("(" + " OR ".join(f"regexp_full_match(n.{quote_ident(column)}, ?)" for _ in values)
                             + ")")
            else:
                where.append(f"n.{quote_ident(column)} IN (" + ",".join("?" for _ in values) + ")")
            params.extend(values)
        for field_name, column in COUNT_FIELDS.items():
            if getattr(criteria, field_name):  # unknown counts (null) reach the core, which refuses the threshold
                where.append(f"(n.{column} >= ? OR n.{column} IS NULL)")
                params.append(getattr(criteria, field_name))
        roi_where, roi_params = self._roi_conditions(criteria)
        where += roi_where
        params += roi_params
        sql = f"SELECT n.* FROM {self._neurons_relation()} AS n WHERE {' AND '.join(where)} ORDER BY n.id"
        try:
            return self._query(sql, params)
        except DataFormatError as exc:
            if criteria.regex and isinstance(exc.__cause__, duckdb.InvalidInputException):
                patterns = tuple(p for f in STRING_FIELDS for p in getattr(criteria, f) or ())
                raise InvalidRegexError(
                    f"pattern(s) {list(patterns)} cannot be used: {exc.__cause__}. connectomix patterns use "
                    "the RE2 subset that every backend supports"
                ) from exc.__cause__
            raise

    def _neuron_condition(self, prefix: str = "") -> str:
        """SQL that is true for neurons (every body when the release has no is_neuron column)."""
        return f"{prefix}is_neuron" if "is_neuron" in self._neuron_columns else "TRUE"

    def _roi_conditions(self, c: NeuronCriteria) -> tuple[list[str], list]:
        if not c.all_rois:
            return [], []
        if not self._has("roi_counts"):
            raise DataFormatError(f"release folder {self.location!r} has no roi_counts.parquet, so ROI criteria cannot be applied")
        rc = self._table("roi_counts")
        where, params = [], []

        def exists(measure: str, minimum: int) -> str:
            return f"EXISTS (SELECT 1 FROM {rc} r WHERE r.id = n.id AND r.roi = ? AND {measure} >= {int(minimum)})"

        if c.rois:
            joiner = " AND " if c.roi_req == "all" else " OR "
            where.append("(" + joiner.join(exists("r.pre + r.post", 1) for _ in c.rois) + ")")
            params += list(c.rois)
        for rois, measure, minimum in ((c.input_rois, "r.post", c.min_roi_inputs),
                                        (c.output_rois, "r.pre", c.min_roi_outputs)):
            for roi in rois or ():
                where.append(exists(measure, minimum))
                params.append(roi)
        return where, params

    def fetch_roi_counts(self, ids: np.ndarray, materialization: Any = None) -> pd.DataFrame:
        if not self._has("roi_counts"):
            return schema.ROI_COUNTS.empty()
        if self._dask is not None:
            return self._dask.fetch_roi_counts(ids)
        return self._query(
            f"SELECT id, roi, pre, post FROM {self._table('roi_counts')} WHERE id IN {_id_list(ids)} ORDER BY id, roi"
        )

    def missing_ids(self, ids: np.ndarray, materialization: Any = None) -> np.ndarray:
        if self._dask is not None:
            return self._dask.missing_ids(ids)
        found = self._query(f"SELECT id FROM {self._table('neurons')} WHERE id IN {_id_list(ids)}")["id"]
        return np.setdiff1d(ids, found.to_numpy(dtype="int64"))

    # -- connectivity ------------------------------------------------------------------------

    def get_connectivity(self, query: ConnectivityQuery) -> pd.DataFrame:
        if self._dask is not None:
            return self._dask.get_connectivity(query)
        where, params = ["c.pre <> 0", "c.post <> 0"], []
        if query.sources is not None:
            where.append(f"c.pre IN {_id_list(query.sources)}")
        if query.targets is not None:
            where.append(f"c.post IN {_id_list(query.targets)}")
        neuron_ids = f"(SELECT id FROM {self._table('neurons')} WHERE {self._neuron_condition()})"
        if query.sources_neurons_only:
            where.append(f"c.pre IN {neuron_ids}")
        if query.targets_neurons_only:
            where.append(f"c.post IN {neuron_ids}")
        if not query.include_autapses:
            where.append("c.pre <> c.post")
        if query.rois is not None:
            where.append("c.roi IN (" + ",".join("?" for _ in query.rois) + ")")
            params += list(query.rois)
        base = f"SELECT c.pre, c.post, c.roi, c.weight FROM {self._table('connections')} AS c WHERE {' AND '.join(where)}"
        min_weight = max(int(query.min_weight), 1)
        if query.by_roi or query.rois is not None:
            sql = (
                f"SELECT pre, post, roi, weight FROM ({base}) "
                f"QUALIFY sum(weight) OVER (PARTITION BY pre, post) >= {min_weight}"
            )
        else:
            sql = (
                f"SELECT pre, post, CAST(sum(weight) AS BIGINT) AS weight FROM ({base}) "
                f"GROUP BY pre, post HAVING sum(weight) >= {min_weight}"
            )
        return self._query(sql, params)

    # -- synapses ------------------------------------------------------------------------------

    def get_synapses(self, query: SynapseQuery) -> pd.DataFrame:
        if not self._has("synapses"):
            return schema.SYNAPSES.empty()
        if self._dask is not None:
            return self._dask.get_synapses(query)
        ids = _id_list(query.ids)
        where, params = ["s.pre <> 0", "s.post <> 0"], []
        if not query.include_autapses:
            where.append("s.pre <> s.post")
        if query.min_score is not None:
            where.append("s.score >= ?")
            params.append(float(query.min_score))
        if query.rois is not None:
            where.append("s.roi IN (" + ",".join("?" for _ in query.rois) + ")")
            params += list(query.rois)
        rest = " AND ".join(where)
        # each side from the file sorted by it (synapses.parquet by pre, the copy by post; a release without
        # the copy filters post in synapses.parquet), reading only the row groups whose footer statistics can
        # hold the ids (rowgroups.py, FORMAT.md "Layout for scale"); a row of both sides once
        sides = ([("pre", "synapses.parquet")] if query.pre else []) + (
            [("post", POST_COPY if self._has(POST_COPY) else "synapses.parquet")] if query.post else [])
        parts, part_params = [], []
        tables = self._rows.read_sides([(name, side) for side, name in sides], query.ids)  # (remote: concurrently)
        with self._cursor() as cur:
            for (side, name), table in zip(sides, tables):
                cur.register(f"_{side}_rows", table)
                not_pre = f" AND s.pre NOT IN {ids}" if side == "post" and query.pre else ""
                parts.append(f"SELECT s.* FROM _{side}_rows AS s WHERE s.{side} IN {ids}{not_pre} AND {rest}")
                part_params += params
            sql = f"SELECT * FROM ({' UNION ALL BY NAME '.join(parts)}) ORDER BY synapse_id"
            return cur.sql(sql, params=part_params or None).to_arrow_table().to_pandas()

    # -- whole-dataset aggregates (both engines; no connection rows reach this process) -------------

    def _neuron_pairs(self, *, by_roi: bool, rois: list | None, min_weight: int, include_autapses: bool) -> str:
        """SQL of the neuron-to-neuron pairs (per ROI with ``by_roi``) whose weight within ``rois`` is
        ``>= min_weight``: the rows ``get_connectivity(NC(), NC())`` returns."""
        neuron_ids = f"(SELECT id FROM {self._table('neurons')} WHERE {self._neuron_condition()})"
        where = ["c.pre <> 0", "c.post <> 0", f"c.pre IN {neuron_ids}", f"c.post IN {neuron_ids}"]
        if not include_autapses:
            where.append("c.pre <> c.post")
        if rois is not None:  # ROI names are bound parameters (see _aggregate)
            where.append("c.roi IN (" + ",".join("?" for _ in rois) + ")")
        base = f"SELECT c.pre, c.post, c.roi, c.weight FROM {self._table('connections')} AS c WHERE {' AND '.join(where)}"
        if by_roi:
            return (f"SELECT pre, post, roi, weight FROM ({base}) "
                    f"QUALIFY sum(weight) OVER (PARTITION BY pre, post) >= {int(min_weight)}")
        return f"SELECT pre, post, sum(weight) AS weight FROM ({base}) GROUP BY pre, post HAVING sum(weight) >= {int(min_weight)}"

    def type_connectivity(self, *, by_roi: bool = False, rois: list | None = None, min_weight: int = 1,
                          include_autapses: bool = False) -> pd.DataFrame:
        """Type-to-type weights over every neuron pair of the dataset, computed by the engine.

        The table ``Dataset.get_connectivity(NC(), NC(), by="type")`` returns
        (``schema.TYPE_CONNECTIVITY``, plus ``roi`` with ``by_roi``): neuron
        pairs with weight ``>= min_weight`` (within ``rois``), summed per
        (pre type, post type); ``n_pre``/``n_post`` count distinct neurons,
        ``n_pairs`` the pair (per-ROI with ``by_roi``) rows. Untyped neurons
        are ``schema.UNTYPED``.
        """
        min_weight = max(int(min_weight), 1)
        compute = self._dask.type_connectivity if self._dask is not None else partial(
            aggregates.duckdb_type_connectivity, self)
        coded, names = compute(by_roi=by_roi, rois=rois, min_weight=min_weight, include_autapses=include_autapses)
        return aggregates.finish_type_connectivity(coded, names, by_roi)

    def partner_profiles(self, direction: str = "input", *, min_weight: int = 1,
                         include_autapses: bool = False) -> pd.DataFrame:
        """Per neuron, its input (or output) weight from (to) each partner type, over every neuron pair.

        Columns ``id, partner_type, weight, n_partners, fraction``: ``fraction``
        is ``weight`` over the neuron's total input (output) weight from (to)
        neurons in pairs of weight ``>= min_weight``. Sorted by ``id``, then
        weight (descending) and ``partner_type``.
        """
        if direction not in ("input", "output"):
            raise InvalidArgumentError(f"direction must be 'input' or 'output'; got {direction!r}")
        min_weight = max(int(min_weight), 1)
        compute = self._dask.partner_profiles if self._dask is not None else partial(
            aggregates.duckdb_partner_profiles, self)
        coded, names = compute(direction=direction, min_weight=min_weight, include_autapses=include_autapses)
        return aggregates.finish_partner_profiles(coded, names)

    def roi_totals(self, *, include_autapses: bool = False) -> pd.DataFrame:
        """Per ROI (and ``NotPrimary``): connection weight and pairs of all bodies, and synaptic sites.

        Columns ``roi, weight, n_pairs, pre, post``: ``weight`` sums
        ``connections.weight`` in the ROI (every body, id 0 excluded; autapses
        only with ``include_autapses``), ``n_pairs`` counts its (pre, post)
        rows, ``pre``/``post`` sum ``roi_counts`` (``<NA>`` without that file).
        """
        if self._dask is not None:
            out = self._dask.roi_totals(include_autapses=include_autapses)
        else:
            where = "pre <> 0 AND post <> 0" + ("" if include_autapses else " AND pre <> post")
            sites = (f"LEFT JOIN (SELECT roi, sum(pre) AS pre, sum(post) AS post FROM {self._table('roi_counts')} "
                     "WHERE id <> 0 GROUP BY roi) AS r USING (roi)" if self._has("roi_counts") else "")
            out = self._query(
                "SELECT * FROM (SELECT roi, CAST(sum(weight) AS BIGINT) AS weight, count(*) AS n_pairs "
                f"FROM {self._table('connections')} WHERE {where} GROUP BY roi) AS c {sites}")
        for column in ("pre", "post"):
            out[column] = out[column].astype("Int64") if column in out.columns else pd.array(
                [pd.NA] * len(out), dtype="Int64")
        out = out.dropna(subset=["weight"]) if "weight" in out.columns else out
        out = out.astype({"weight": "int64", "n_pairs": "int64"})
        return out[["roi", "weight", "n_pairs", "pre", "post"]].sort_values("roi").reset_index(drop=True)

    # -- skeletons ---------------------------------------------------------------------------------

    def get_skeletons(self, ids: np.ndarray) -> Any:
        import navis

        # (on object storage: one listing, then one small read per skeleton)
        files = {int(i): f"skeletons/{int(i)}.swc" for i in ids}
        if self.path is not None:
            missing = [i for i, f in files.items() if not (self.path / f).is_file()]
        else:
            present = set(self._loc.listdir("skeletons"))
            missing = [i for i, f in files.items() if f.rsplit("/", 1)[-1] not in present]
        if missing:
            n_present = sum(f.endswith(".swc") for f in self._loc.listdir("skeletons"))
            raise IdsNotFoundError(
                f"no skeleton in release {self.info().name!r} for id(s) {missing}; "
                f"skeletons exist for {n_present} neurons",
                ids=missing,
            )
        names = self.fetch_neurons(NeuronCriteria(ids=list(files), label="segment")).set_index("id")
        neurons = []
        for i, f in files.items():
            source = Path(self._loc.url(f)) if self.path is not None else self._loc.read_bytes(f).decode("utf-8")
            n = navis.read_swc(source, units="1 nm", id=i)
            if i in names.index and pd.notna(names.at[i, "instance"]):
                n.name = names.at[i, "instance"]
            n.dataset = self.info().name
            neurons.append(n)
        return navis.NeuronList(neurons)

    # -- meshes (meshes.parquet, FORMAT.md "Meshes") ------------------------------------------------

    def get_meshes(self, ids: np.ndarray) -> Any:
        import navis

        from connectomix.precomputed import decode_mesh

        if not self._has(MESHES_FILE):
            raise UnsupportedOperation(f"release {self.info().name!r} has no meshes ({MESHES_FILE})")
        ids = [int(i) for i in dict.fromkeys(np.asarray(ids, dtype="int64").tolist())]
        # one scan; row groups whose id range excludes the ids are skipped
        rows = self._query(f"SELECT id, n_vertices, n_faces, fragment FROM {self._table(MESHES_FILE)} "
                           f"WHERE id IN {_id_list(np.asarray(ids, dtype='int64'))}")
        found = rows["id"].astype("int64").tolist()
        if len(set(found)) != len(found):
            raise DataFormatError(f"{self._loc.url(MESHES_FILE)!r} holds more than one mesh for id(s) "
                                  f"{sorted({i for i in found if found.count(i) > 1})}; rebuild the release")
        missing = [i for i in ids if i not in set(found)]
        if missing:
            (n_present,) = self._query(f"SELECT count(*) AS n FROM {self._table(MESHES_FILE)}")["n"].tolist()
            raise IdsNotFoundError(f"no mesh in release {self.info().name!r} for id(s) {missing}; "
                                   f"meshes exist for {n_present} neurons", ids=missing)
        names = self.fetch_neurons(NeuronCriteria(ids=ids, label="segment")).set_index("id")
        by_id = {int(r.id): r for r in rows.itertuples(index=False)}
        source = self._loc.url(MESHES_FILE)
        meshes = []
        for i in ids:
            row = by_id[i]
            vertices, faces = decode_mesh(row.fragment, segid=i, source=source)
            if (len(vertices), len(faces)) != (row.n_vertices, row.n_faces):
                raise DataFormatError(f"mesh {i} in {source!r} has {len(vertices)} vertices and {len(faces)} "
                                      f"triangles but its row records {row.n_vertices} and {row.n_faces}: "
                                      "truncated or damaged; rebuild the release")
            m = navis.MeshNeuron((vertices, faces), units="1 nanometer", id=i, process=False)
            if i in names.index and pd.notna(names.at[i, "instance"]):
                m.name = names.at[i, "instance"]
            m.dataset = self.info().name
            meshes.append(m)
        return navis.NeuronList(meshes)


def _storage_options(where: Any, storage_options: dict | None, anon: bool | str | None) -> dict | None:
    """fsspec options of a URL release: ``storage_options`` plus ``anon`` (``true``/``false`` from a URI)."""
    if anon is None:
        return storage_options
    if isinstance(anon, str) and anon.strip().lower() in ("true", "false", "1", "0"):
        anon = anon.strip().lower() in ("true", "1")
    if not isinstance(anon, bool):
        raise InvalidArgumentError(f"anon must be true or false; got {anon!r}")
    if not is_url(where):
        raise InvalidArgumentError("anon= applies to releases on object storage (release://s3://...), "
                                   "not to local folders")
    return {**(storage_options or {}), "anon": anon}
