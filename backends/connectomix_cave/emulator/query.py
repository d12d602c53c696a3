"""MaterializationEngine query semantics on an in-memory frame.

The request body is the one caveclient sends (``filter_in_dict``,
``filter_notin_dict``, ``filter_equal_dict``, ``filter_greater_dict``,
``filter_less_dict``, ``filter_greater_equal_dict``, ``filter_less_equal_dict``,
``filter_spatial_dict``, ``filter_regex_dict`` -- each ``{table: {column: value}}``
-- plus ``select_columns`` / ``select_column_map``, ``offset``, ``limit`` and
``desired_resolution``). Order of operations, as in MaterializationEngine:

1. ``random_sample=N`` (query parameter) keeps a deterministic sample of N
   table rows *before* filtering (Postgres ``TABLESAMPLE``); ignored when N
   is at least the table size;
2. filters (spatial boxes are inclusive, in table voxel units; regexes use
   search semantics like Postgres ``~``);
3. rows are put in a deterministic hash order of their ``id`` -- *not* sorted,
   like the real server's unordered results -- then ``offset`` and
   ``limit = min(limit, QUERY_LIMIT_SIZE)`` are applied; when exactly
   ``limit`` rows come back the server adds ``Warning: 201 - "Limited query to
   N rows``;
4. ``count=True`` returns one ``count`` column instead of rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .tables import EmulatedTable, splitmix64

__all__ = ["QueryError", "QueryResult", "run_query", "FILTER_KINDS"]

#: Body keys of filters; ``filter_out_dict`` is the server-side spelling of ``filter_notin_dict``.
FILTER_KINDS = ("filter_in_dict", "filter_notin_dict", "filter_out_dict", "filter_equal_dict",
                "filter_greater_dict", "filter_less_dict", "filter_greater_equal_dict", "filter_less_equal_dict",
                "filter_spatial_dict", "filter_regex_dict")
_BODY_KEYS = set(FILTER_KINDS) | {"select_columns", "select_column_map", "offset", "limit", "desired_resolution",
                                  "table", "timestamp", "suffixes", "suffix_map", "join_tables", "tables"}


class QueryError(Exception):
    """A request the server rejects with 400; the message is returned to the client."""


@dataclass
class QueryResult:
    """Rows to send plus the response metadata."""

    frame: pd.DataFrame
    warnings: list[str]
    resolution: tuple[float, float, float]
    column_names: dict[str, dict[str, str]]


def _check_table_keys(body: Mapping[str, Any], table: EmulatedTable) -> None:
    unknown = sorted(set(body) - _BODY_KEYS)
    if unknown:
        raise QueryError(f"unknown query field(s) {unknown}")
    for kind in FILTER_KINDS:
        spec = body.get(kind)
        if spec is None:
            continue
        if not isinstance(spec, Mapping):
            raise QueryError(f"{kind} must be an object {{table: {{column: value}}}}")
        for name, cols in spec.items():
            if name != table.name:
                raise QueryError(f"{kind} refers to table {name!r}, but this query is on {table.name!r}")
            if not isinstance(cols, Mapping):
                raise QueryError(f"{kind}[{name!r}] must be an object {{column: value}}")


def _column(table: EmulatedTable, col: str, kind: str) -> str:
    if col in table.position_columns and kind != "filter_spatial_dict":
        raise QueryError(f"{kind} cannot filter position column {col!r}; use filter_spatial_dict")
    if col not in table.columns:
        raise QueryError(f"column {col!r} not found in {table.name!r}; columns are {table.columns}")
    return col


def _apply_filters(frame: pd.DataFrame, body: Mapping[str, Any], table: EmulatedTable) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for kind in FILTER_KINDS:
        spec = (body.get(kind) or {}).get(table.name) or {}
        for col, value in spec.items():
            col = _column(table, col, kind)
            if kind == "filter_spatial_dict":
                if col not in table.position_columns:
                    raise QueryError(f"filter_spatial_dict needs a position column; {col!r} is not one "
                                     f"(position columns: {list(table.position_columns)})")
                try:
                    box = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    box = np.empty(0)
                if box.shape != (2, 3):
                    raise QueryError(f"filter_spatial_dict[{col!r}] must be [[min_x,min_y,min_z],[max_x,max_y,max_z]]")
                if not (box[0] < box[1]).all():
                    raise QueryError(f"min bounds: {box[0].tolist()} must be less than max bounds: {box[1].tolist()}")
                xyz = frame[[f"{col}_x", f"{col}_y", f"{col}_z"]].to_numpy(np.float64)
                mask &= ((xyz >= box[0]) & (xyz <= box[1])).all(axis=1)
                continue
            series = frame[col]
            if kind in ("filter_in_dict", "filter_notin_dict", "filter_out_dict"):
                if not isinstance(value, list):
                    raise QueryError(f"{kind}[{col!r}] must be a list of values, got {type(value).__name__}")
                hit = series.isin(value).to_numpy()
                mask &= hit if kind == "filter_in_dict" else ~hit
            elif kind == "filter_regex_dict":
                if col not in table.string_columns:
                    raise QueryError("Regex filter is only supported on string columns")
                try:
                    pattern = re.compile(str(value))
                except re.error as exc:
                    raise QueryError(f"invalid regular expression {value!r}: {exc}") from None
                mask &= series.map(lambda v: isinstance(v, str) and pattern.search(v) is not None).to_numpy(bool)
            else:
                if isinstance(value, (list, dict)):
                    raise QueryError(f"{kind}[{col!r}] must be a single value")
                try:
                    if kind == "filter_equal_dict":
                        hit = series == value
                    elif kind == "filter_greater_dict":
                        hit = series > value
                    elif kind == "filter_less_dict":
                        hit = series < value
                    elif kind == "filter_greater_equal_dict":
                        hit = series >= value
                    else:
                        hit = series <= value
                except TypeError:
                    raise QueryError(f"{kind}[{col!r}]: cannot compare column {col!r} with {value!r}") from None
                mask &= hit.fillna(False).to_numpy(bool)
    return frame[mask]


def _order(frame: pd.DataFrame) -> np.ndarray:
    if "id" in frame.columns:
        key = splitmix64(frame["id"].to_numpy(np.int64), seed=7)
    else:
        key = splitmix64(frame.iloc[:, 0].to_numpy(np.int64), seed=7) ^ splitmix64(
            frame.iloc[:, 1].to_numpy(np.int64), seed=9)
    return np.argsort(key, kind="stable")


def _selected(body: Mapping[str, Any], table: EmulatedTable) -> list[str]:
    select = body.get("select_columns")
    if select is None and body.get("select_column_map") is not None:
        select = body["select_column_map"]
    if isinstance(select, Mapping):  # live-live queries and join-style maps: {table: [cols]}
        unknown = sorted(set(select) - {table.name})
        if unknown:
            raise QueryError(f"select columns name table(s) {unknown}; this query is on {table.name!r}")
        select = select.get(table.name)
    if not select:
        return list(table.columns)
    if not isinstance(select, list):
        raise QueryError("select_columns must be a list of column names")
    missing = [c for c in select if c not in table.columns]
    if missing:
        raise QueryError(f"column(s) {missing} not found in {table.name!r}; columns are {table.columns}")
    return list(dict.fromkeys(select))


def _int(body: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise QueryError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def run_query(frame: pd.DataFrame, table: EmulatedTable, body: Mapping[str, Any], *, row_limit: int,
              table_resolution: tuple[float, float, float], count: bool = False, random_sample: int | None = None,
              split_positions: bool = True) -> QueryResult:
    """Answer one query on ``frame`` (the table materialized at the right time); see the module docstring.

    Raises
    ------
    QueryError
        Malformed filters, unknown columns, bad limit/offset/resolution.
    """
    if not isinstance(body, Mapping):
        raise QueryError("the request body must be a JSON object")
    _check_table_keys(body, table)
    select = _selected(body, table)
    offset = _int(body, "offset", 0) or 0
    requested = _int(body, "limit", 1)
    limit = row_limit if requested is None else min(requested, row_limit)
    if random_sample is not None and 0 < random_sample < len(frame):
        keep = np.argsort(_hash_rank(frame), kind="stable")[:random_sample]
        frame = frame.iloc[np.sort(keep)]
    frame = _apply_filters(frame, body, table)
    if count:
        return QueryResult(pd.DataFrame({"count": [len(frame)]}, dtype=np.int64), [],
                           tuple(float(v) for v in table_resolution), {})
    frame = frame.iloc[_order(frame)].iloc[offset:offset + limit]
    warnings = [f'201 - "Limited query to {limit} rows'] if len(frame) == limit else []
    columns = []
    for col in select:
        columns.extend([f"{col}_x", f"{col}_y", f"{col}_z"] if col in table.position_columns else [col])
    out = frame[columns].reset_index(drop=True)
    # MaterializationEngine always reports a resolution (the table's unless one was asked for)
    resolution = tuple(float(v) for v in table_resolution)
    desired = body.get("desired_resolution")
    if desired is not None:
        try:
            desired_arr = np.asarray(desired, dtype=np.float64)
        except (TypeError, ValueError):
            desired_arr = np.empty(0)
        if desired_arr.shape != (3,) or not (desired_arr > 0).all():
            raise QueryError(f"desired_resolution must be three positive numbers, got {desired!r}")
        scale = np.asarray(table_resolution, dtype=np.float64) / desired_arr
        if not np.allclose(scale, 1.0):
            for col in select:
                if col in table.position_columns:
                    for axis, s in zip("xyz", scale):
                        out[f"{col}_{axis}"] = out[f"{col}_{axis}"].to_numpy(np.float64) * s
        resolution = tuple(float(v) for v in desired_arr)
    if not split_positions:
        for col in select:
            if col in table.position_columns:
                parts = [f"{col}_x", f"{col}_y", f"{col}_z"]
                at = out.columns.get_loc(parts[0])
                merged = list(out[parts].to_numpy())
                out = out.drop(columns=parts)
                out.insert(at, col, merged)
    return QueryResult(out, warnings, resolution, {table.name: {c: c for c in select}})


def _hash_rank(frame: pd.DataFrame) -> np.ndarray:
    if "id" in frame.columns:
        return splitmix64(frame["id"].to_numpy(np.int64), seed=3)
    return splitmix64(np.arange(len(frame)), seed=3)
