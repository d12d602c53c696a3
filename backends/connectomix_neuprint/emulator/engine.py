"""The graph engine behind the emulator: Kuzu, and nothing else imports it.

:class:`KuzuEngine` loads a :class:`~.model.GraphModel` into an embedded
Kuzu database, rewrites neo4j Cypher into Kuzu's dialect (:mod:`.rewrite`),
runs it and returns engine-neutral values (:mod:`.values`). Replacing the
engine means replacing this module and :mod:`.rewrite` (which targets Kuzu's
dialect); the server only uses :meth:`KuzuEngine.run`.

Mapping of the model to Kuzu
----------------------------
* Kuzu node tables have a single label, so neuPrint's ``:Segment`` and
  ``:Neuron`` share one table ``Segment``; ``:Neuron`` is the hidden boolean
  property ``__neuron`` that the rewriter adds to patterns and predicates.
* ``ConnectsTo`` and ``Contains`` are relationship tables with several
  (from, to) table pairs (Segment->Segment and SynapseSet->SynapseSet;
  Segment->SynapseSet and SynapseSet->Synapse).
* Points are ``STRUCT(x DOUBLE, y DOUBLE, z DOUBLE, srid INT64)``, so
  ``s.location.x`` works as in neo4j; results turn them into points.
* JSON helpers for ``apoc.convert.fromJson*`` are Python UDFs registered on
  every connection (``__json_text``, ``__json_count_map``,
  ``__json_string_map``, ``__json_keys``, ``__json_get``, ``__json_at``).
* The database is built in a temporary directory, then reopened
  **read-only**, so a write that slipped past the rewriter's check still fails.
* Queries run on a small pool of connections, so concurrent HTTP requests
  run concurrently (Kuzu allows many readers).
"""

from __future__ import annotations

import json
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import kuzu
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .model import HIDDEN_PREFIX, GraphModel, PropSpec
from .rewrite import CypherError, WriteQueryError, rewrite
from .values import Node, Point, QueryResult, Relationship

__all__ = ["KuzuEngine", "QueryTimeout", "EngineError", "CypherError", "WriteQueryError", "ENGINE_NAME"]

log = logging.getLogger(__name__)

ENGINE_NAME = f"kuzu {kuzu.__version__}"

_KUZU_TYPES = {
    "INT64": "INT64", "DOUBLE": "DOUBLE", "STRING": "STRING", "BOOL": "BOOLEAN",
    "POINT": "STRUCT(x DOUBLE, y DOUBLE, z DOUBLE, srid INT64)", "STRING[]": "STRING[]", "DOUBLE[]": "DOUBLE[]",
}
_POINT_ARROW = pa.struct([("x", pa.float64()), ("y", pa.float64()), ("z", pa.float64()), ("srid", pa.int64())])
_ARROW_TYPES = {
    "INT64": pa.int64(), "DOUBLE": pa.float64(), "STRING": pa.string(), "BOOL": pa.bool_(), "POINT": _POINT_ARROW,
    "STRING[]": pa.list_(pa.string()), "DOUBLE[]": pa.list_(pa.float64()),
}
_POINT_KEYS = frozenset({"x", "y", "z", "srid"})


class EngineError(RuntimeError):
    """The engine failed on a query (the message is the engine's own)."""


class QueryTimeout(EngineError):
    """A query ran longer than the server's (not a timeboxed) limit."""


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# ------------------------------------------------------------------------------------------------
# UDFs for apoc.convert.fromJson* (see rewrite.py)
# ------------------------------------------------------------------------------------------------


# No type annotations on UDFs: Kuzu derives parameter types from them and rejects bare ``dict``.


def _json_text(s):
    return json.dumps(json.loads(s), separators=(",", ":"), ensure_ascii=False)


def _json_count_map(s):
    d = json.loads(s)
    if not isinstance(d, dict):
        raise ValueError(f"apoc.convert.fromJsonMap: not a JSON object: {s[:80]!r}")
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = {kk: int(vv) for kk, vv in v.items()
                      if isinstance(vv, (int, float)) and not isinstance(vv, bool)}
    return out


def _json_string_map(s):
    d = json.loads(s)
    if not isinstance(d, dict):
        raise ValueError(f"apoc.convert.fromJsonMap: not a JSON object: {s[:80]!r}")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in d.items()}


def _json_keys(s):
    d = json.loads(s)
    return list(d) if isinstance(d, dict) else None


def _json_get(s, key):
    d = json.loads(s)
    v = d.get(key) if isinstance(d, dict) else None
    return None if v is None else json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _json_at(s, index):
    d = json.loads(s)
    if not isinstance(d, list) or not -len(d) <= index < len(d):
        return None
    v = d[index]
    return None if v is None else json.dumps(v, separators=(",", ":"), ensure_ascii=False)


_UDFS = [
    ("__json_text", _json_text, ["STRING"], "STRING"),
    ("__json_count_map", _json_count_map, ["STRING"], "MAP(STRING, MAP(STRING, INT64))"),
    ("__json_string_map", _json_string_map, ["STRING"], "MAP(STRING, STRING)"),
    ("__json_keys", _json_keys, ["STRING"], "STRING[]"),
    ("__json_get", _json_get, ["STRING", "STRING"], "STRING"),
    ("__json_at", _json_at, ["STRING", "INT64"], "STRING"),
]


# ------------------------------------------------------------------------------------------------
# the engine
# ------------------------------------------------------------------------------------------------


class KuzuEngine:
    """A read-only Kuzu database holding one dataset.

    Parameters
    ----------
    model
        The graph to load.
    pool_size
        Connections, i.e. queries that can run at the same time.
    threads
        Kuzu worker threads per query.
    buffer_pool_mb
        Kuzu's buffer pool (address space reserved, used as needed). Default: 512 MB,
        plus 512 bytes per node and relationship of the graph for large releases
        (Kuzu fails queries with "The buffer pool is full" when it is too small).
    workdir
        Where to build the database (default: a new temporary directory,
        removed by :meth:`close`).
    """

    def __init__(self, model: GraphModel, *, pool_size: int = 4, threads: int = 2,
                 buffer_pool_mb: int | None = None, workdir: str | Path | None = None):
        self.model = model
        self.schema = model.schema
        self._own_dir = workdir is None
        self._dir = Path(tempfile.mkdtemp(prefix="connectomix-neuprint-emulator-")) if workdir is None \
            else Path(workdir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._db_path = self._dir / "graph.kuzu"
        self._closed = False
        self._lock = threading.Lock()
        if buffer_pool_mb is None:
            rows = sum(len(df) for df in model.nodes.values()) + sum(len(df) for df in model.rels.values())
            buffer_pool_mb = 512 + rows * 512 // 2**20
        self._buffer = int(buffer_pool_mb) * 2**20
        self._threads = int(threads)
        try:
            self._build()
            self._db = kuzu.Database(str(self._db_path), read_only=True, buffer_pool_size=self._buffer,
                                     max_num_threads=self._threads)
            self._pool: queue.Queue = queue.Queue()
            self._connections = []
            for k in range(max(1, int(pool_size))):
                conn = kuzu.Connection(self._db, num_threads=self._threads)
                if k == 0:  # UDFs live in the database's catalog: register once
                    for name, fn, params, ret in _UDFS:
                        conn.create_function(name, fn, params, ret)
                self._connections.append(conn)
                self._pool.put(conn)
        except Exception:
            self._cleanup_dir()
            raise

    @property
    def version(self) -> str:
        return kuzu.__version__

    # -- building --------------------------------------------------------------------------------

    def _build(self) -> None:
        db = kuzu.Database(str(self._db_path), buffer_pool_size=self._buffer, max_num_threads=self._threads)
        conn = kuzu.Connection(db)
        try:
            for table in self.schema.nodes.values():
                cols = ", ".join(f"{_q(p)} {_KUZU_TYPES[s.type]}" for p, s in table.props.items())
                conn.execute(f"CREATE NODE TABLE {_q(table.name)}({cols}, PRIMARY KEY({_q(table.key)}))")
            for rel in self.schema.rels.values():
                pairs = ", ".join(f"FROM {_q(a)} TO {_q(b)}" for a, b in rel.pairs)
                cols = "".join(f", {_q(p)} {_KUZU_TYPES[s.type]}" for p, s in rel.props.items())
                conn.execute(f"CREATE REL TABLE {_q(rel.name)}({pairs}{cols})")
            staging = self._dir / "staging"
            staging.mkdir(exist_ok=True)
            for name, df in self.model.nodes.items():
                if len(df):
                    path = staging / f"node_{name}.parquet"
                    self._write(df, self.schema.nodes[name].props, path)
                    conn.execute(f"COPY {_q(name)} FROM '{path.as_posix()}'")
            for (rel, a, b), df in self.model.rels.items():
                if len(df):
                    path = staging / f"rel_{rel}_{a}_{b}.parquet"
                    props = {"__from": PropSpec("INT64"), "__to": PropSpec("INT64"), **self.schema.rels[rel].props}
                    self._write(df, props, path)
                    multi = len(self.schema.rels[rel].pairs) > 1
                    opts = f" (from='{a}', to='{b}')" if multi else ""
                    conn.execute(f"COPY {_q(rel)} FROM '{path.as_posix()}'{opts}")
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            conn.close()
            db.close()

    @staticmethod
    def _write(df: pd.DataFrame, props: Mapping[str, PropSpec], path: Path) -> None:
        arrays = []
        for col, spec in props.items():
            values = df[col]
            typ = _ARROW_TYPES[spec.type]
            if isinstance(values.dtype, pd.ArrowDtype):
                arrays.append(values.array.__arrow_array__().cast(typ))
            elif spec.type in ("INT64", "DOUBLE") and values.dtype != object:
                arrays.append(pa.array(values.to_numpy(), type=typ, from_pandas=True))
            else:
                arrays.append(pa.array(values.tolist(), type=typ, from_pandas=True))
        pq.write_table(pa.Table.from_arrays(arrays, names=list(props)), path)

    # -- querying --------------------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._closed:
            raise EngineError("the emulator's database is closed")
        conn = self._pool.get()
        try:
            yield conn
        finally:
            self._pool.put(conn)

    def run(self, cypher: str, *, timeout_ms: int | None = None) -> QueryResult:
        """Run neo4j-flavoured Cypher; return neutral values.

        Parameters
        ----------
        cypher
            The query as a neuPrint client sends it.
        timeout_ms
            Server-side limit; exceeding it raises :class:`QueryTimeout`.

        Raises
        ------
        WriteQueryError
            The query would modify the database.
        CypherError
            The rewriter rejected the query.
        QueryTimeout
            ``timeout_ms`` was exceeded.
        EngineError
            Kuzu rejected or failed the query (message from Kuzu).
        """
        rewritten = rewrite(cypher, self.schema)
        limits = [t for t in (timeout_ms, rewritten.timebox_ms) if t]
        limit = min(limits) if limits else 0
        with self._connection() as conn:
            conn.set_query_timeout(int(limit))
            try:
                result = conn.execute(rewritten.text)
                columns = result.get_column_names()
                rows = []
                while result.has_next():
                    rows.append(result.get_next())
            except RuntimeError as exc:
                message = str(exc)
                if "Interrupted" in message:
                    if rewritten.timebox_ms is not None and (timeout_ms is None or
                                                             rewritten.timebox_ms <= timeout_ms):
                        log.info("timeboxed query exceeded %d ms; returning no rows", rewritten.timebox_ms)
                        return QueryResult(columns=list(rewritten.columns or []), rows=[])
                    raise QueryTimeout(f"query exceeded {limit} ms") from None
                if "read-only" in message:
                    raise WriteQueryError("not authorized to modify the database") from None
                raise EngineError(message) from None
            finally:
                conn.set_query_timeout(0)
        out_rows = [[_convert(v) for v in row] for row in rows]
        for col, transform in rewritten.transforms.items():
            for row in out_rows:
                row[col] = _apply(transform, row[col])
        if rewritten.columns and len(rewritten.columns) == len(columns):
            columns = rewritten.columns
        return QueryResult(columns=list(columns), rows=out_rows)

    def close(self) -> None:
        """Release the database and remove its directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for conn in getattr(self, "_connections", []):
            try:
                conn.close()
            except Exception:  # pragma: no cover - best effort
                pass
        if hasattr(self, "_db"):
            self._db.close()
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> KuzuEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------------
# Kuzu values -> neutral values
# ------------------------------------------------------------------------------------------------


def _internal_id(v: Any) -> int:
    if isinstance(v, dict) and "offset" in v and "table" in v:
        return (int(v["table"]) << 40) | int(v["offset"])
    return -1


_PLAIN = frozenset({int, float, str, bool, type(None)})


def _convert(v: Any) -> Any:
    if type(v) in _PLAIN:
        return v
    if isinstance(v, dict):
        if "_src" in v and "_dst" in v:
            props = {k: _convert(x) for k, x in v.items()
                     if not k.startswith("_") and x is not None}
            return Relationship(id=_internal_id(v.get("_id")), type=str(v.get("_label")),
                                start=_internal_id(v["_src"]), end=_internal_id(v["_dst"]), properties=props)
        if "_label" in v and "_id" in v:
            label = str(v["_label"])
            labels = (label, "Neuron") if label == "Segment" and v.get("__neuron") else (label,)
            props = {k: _convert(x) for k, x in v.items()
                     if not k.startswith("_") and x is not None}
            return Node(id=_internal_id(v["_id"]), labels=labels, properties=props)
        if "_nodes" in v and "_rels" in v:  # a path: nodes and relationships, interleaved
            nodes = [_convert(n) for n in v["_nodes"]]
            rels = [_convert(r) for r in v["_rels"]]
            out: list[Any] = []
            for k, n in enumerate(nodes):
                out.append(n)
                if k < len(rels):
                    out.append(rels[k])
            return out
        if set(v) == _POINT_KEYS:
            if v["x"] is None:
                return None
            return Point(float(v["x"]), float(v["y"]), float(v["z"]))
        return {k: _convert(x) for k, x in v.items() if not str(k).startswith(HIDDEN_PREFIX)}
    if isinstance(v, list):
        return [_convert(x) for x in v]
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def _apply(transform: tuple, value: Any) -> Any:
    kind = transform[0]
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "remove_keys":
        keys = set(transform[1])
        if isinstance(value, (Node, Relationship)):
            return {k: x for k, x in value.properties.items() if k not in keys}
        if isinstance(value, dict):
            return {k: x for k, x in value.items() if k not in keys}
        return value
    raise ValueError(f"unknown result transform {transform!r}")
