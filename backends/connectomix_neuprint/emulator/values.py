"""Engine-neutral query values and their wire encodings (neuPrintHTTP JSON and Arrow IPC).

The engine (:mod:`.engine`) turns its native results into :class:`Node`,
:class:`Relationship`, :class:`Point` and plain Python values; this module
encodes them the way neuPrintHTTP does:

* a node becomes its property map (absent properties are simply missing);
* a relationship becomes its property map plus ``id``, ``type``,
  ``startNodeId``, ``endNodeId``;
* a point becomes ``{"type": "Point", "coordinates": [x, y, z], "crs": {...}}``;
* numbers: neuPrintHTTP decodes neo4j's JSON with ``UseNumber`` and re-encodes
  it with Go's encoder, so an integral float (``5.0``) goes out as ``5``;
  non-finite floats become null.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

__all__ = ["Point", "Node", "Relationship", "QueryResult", "to_json_value", "encode_json", "encode_arrow",
           "ARROW_CONTENT_TYPE"]

ARROW_CONTENT_TYPE = "application/vnd.apache.arrow.stream"

_CRS = {"name": "cartesian-3d", "srid": 9157, "type": "link",
        "properties": {"href": "http://spatialreference.org/ref/sr-org/9157/ogcwkt/", "type": "ogcwkt"}}


@dataclass(frozen=True)
class Point:
    """A cartesian 3-D point (voxel units)."""

    x: float
    y: float
    z: float


@dataclass
class Node:
    """A node: its labels and visible, non-null properties."""

    id: int
    labels: tuple[str, ...]
    properties: dict[str, Any]


@dataclass
class Relationship:
    """A relationship: its type, endpoints and visible, non-null properties."""

    id: int
    type: str
    start: int
    end: int
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueryResult:
    """Columns and rows of neutral values."""

    columns: list[str]
    rows: list[list[Any]]


def _number(v: float) -> int | float | None:
    if not math.isfinite(v):
        return None
    if v.is_integer() and abs(v) < 2**63:
        return int(v)
    return v


def to_json_value(v: Any) -> Any:
    """A neutral value as neuPrintHTTP would put it into ``data``."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return _number(v)
    if isinstance(v, Decimal):
        return _number(float(v)) if v != v.to_integral_value() else int(v)
    if isinstance(v, Point):
        return {"type": "Point", "coordinates": [_number(float(c)) for c in (v.x, v.y, v.z)], "crs": _CRS}
    if isinstance(v, Node):
        return {k: to_json_value(x) for k, x in v.properties.items()}
    if isinstance(v, Relationship):
        out = {k: to_json_value(x) for k, x in v.properties.items()}
        out.update({"id": v.id, "type": v.type, "startNodeId": v.start, "endNodeId": v.end})
        return out
    if isinstance(v, dict):
        return {str(k): to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    if hasattr(v, "item"):  # numpy scalars
        return to_json_value(v.item())
    return str(v)


def encode_json(columns: Sequence[str], rows: Iterable[Sequence[Any]], debug: str) -> bytes:
    """The body of ``/api/custom/custom``: ``{"columns", "data", "debug"}``."""
    data = [[to_json_value(v) for v in row] for row in rows]
    return json.dumps({"columns": list(columns), "data": data, "debug": debug},
                      ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def encode_arrow(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, batch_rows: int | None = None) -> bytes:
    """The body of ``/api/custom/arrow``: one record batch in an Arrow IPC stream.

    ``batch_rows`` splits the rows into record batches of at most that many
    rows (neuPrintHTTP always sends one; the emulator's fault tests want more).

    Column types follow neuPrintHTTP's ``arrow.go``: a column of node maps is
    ``map<string, string>`` (values rendered as text); ints are int64 and a
    column with any non-integral number is float64; bools stay bool. Unlike
    neuPrintHTTP, which types a column by its first row and renders lists and
    maps with Go's ``%v``, every row is considered (nulls included) and lists
    and maps are sent as JSON text; an empty result is an empty stream with
    string columns (neuPrintHTTP answers 500 there).
    """
    import pyarrow as pa

    arrays = []
    fields = []
    for c, name in enumerate(columns):
        raw = [row[c] for row in rows]
        values = [to_json_value(v) for v in raw]
        if any(isinstance(v, (Node, Relationship)) for v in raw):
            typ = pa.map_(pa.string(), pa.string())
            items = []
            for v in values:
                if v is None or not isinstance(v, dict):
                    items.append(None)
                else:
                    items.append([(k, _text(x)) for k, x in v.items() if x is not None])
            arrays.append(pa.array(items, type=typ))
        else:
            present = [v for v in values if v is not None]
            if present and all(isinstance(v, bool) for v in present):
                typ = pa.bool_()
            elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
                typ = pa.int64()
            elif present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
                typ = pa.float64()
                values = [None if v is None else float(v) for v in values]
            else:
                typ = pa.string()
                values = [None if v is None else _text(v) for v in values]
            arrays.append(pa.array(values, type=typ))
        fields.append(pa.field(name, typ))
    schema = pa.schema(fields)
    batch = pa.record_batch(arrays, schema=schema) if columns else pa.record_batch([], schema=schema)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, schema) as writer:
        if rows:
            writer.write_table(pa.Table.from_batches([batch]), max_chunksize=batch_rows)
    return sink.getvalue()


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)
