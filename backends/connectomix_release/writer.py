"""Write and check connectomix release folders (the format of ``FORMAT.md``).

Three entry points:

:func:`write_release`
    Validate pandas tables against the format and write a complete folder
    **atomically**: everything goes into a hidden staging folder beside the
    destination, which is renamed into place only when every table passed, so
    a failed conversion never leaves a half-written release.
:func:`write_synapses_streaming`
    Add (or replace) ``synapses.parquet`` of an existing release from an
    iterable of record batches or DataFrames, without holding the whole table
    in memory: batches are spooled to disk, then sorted by DuckDB (which spills
    to disk under its memory limit) and written with row groups of exactly
    :data:`SYNAPSE_ROW_GROUP_SIZE` rows.
:func:`validate_release`
    Check an existing folder: manifest, file schemas, row counts and Parquet
    row-group statistics (cheap, the default), or every row (``deep=True``).
    This is what ``connectomix convert --check`` runs.

All table checks are SQL run by DuckDB, whether the rows come from pandas, from
Parquet files or from an importer's query (:class:`ReleaseBuilder`, used by
:mod:`connectomix_release.importers`), so the same rules hold on every path.

Examples
--------
>>> import pandas as pd, tempfile, pathlib
>>> from connectomix_release.writer import make_manifest, write_release, validate_release
>>> folder = pathlib.Path(tempfile.mkdtemp()) / "tiny"
>>> neurons = pd.DataFrame({"id": [1, 2], "type": ["A", None], "instance": [None, None],
...                         "status": ["Traced", None], "pre": [3, 0], "post": [0, 3],
...                         "is_neuron": [True, False]})
>>> connections = pd.DataFrame({"pre": [1, 1], "post": [2, 2], "roi": ["AL(R)", "NotPrimary"], "weight": [2, 1]})
>>> manifest = make_manifest(name="tiny", version="v1", primary_rois=["AL(R)"],
...                          synthetic={"neurons": "all rows", "connections": "all rows"})
>>> write_release(folder, manifest=manifest, neurons=neurons, connections=connections).name
'tiny'
>>> validate_release(folder).ok
True
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from connectomix.errors import DataFormatError, InvalidArgumentError
from connectomix.schema import CROSS_TYPES, NOT_PRIMARY

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SYNAPSE_ROW_GROUP_SIZE",
    "TABLES",
    "ReleaseValidationError",
    "ReleaseReport",
    "ReleaseBuilder",
    "make_manifest",
    "read_manifest",
    "write_release",
    "write_synapses_streaming",
    "write_post_copy",
    "validate_release",
]

FORMAT_NAME = "connectomix-release"
FORMAT_VERSION = 1
#: Rows per Parquet row group of ``synapses.parquet`` (FORMAT.md: 131,072); used for every table.
SYNAPSE_ROW_GROUP_SIZE = 131_072
#: Rows per row group of the two synapse files as written now (FORMAT.md "Layout for scale"): an id's
#: rows sit in one or two row groups, so a filter on 100 ids reads about 100 x this many rows whatever
#: the table's size (at most SYNAPSE_ROW_GROUP_SIZE is valid: older releases keep theirs). 8,192 rather
#: than 16,384 since issue 15's measurements: the filter's CPU is the decoding of those rows (2.4x less).
SYNAPSE_SCAN_ROW_GROUP_SIZE = 8_192
_MAX_INT64 = 2**63 - 1
_EXAMPLES = 5

# --------------------------------------------------------------------------------------------
# table specifications (FORMAT.md)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """One required (or optional) column of a release table."""

    name: str
    kind: str  # "id" (body id > 0), "key" (row key), "count", "nm", "float", "str", "bool"
    nullable: bool = False
    required: bool = True

    @property
    def duck_type(self) -> str:
        return {"id": "BIGINT", "key": "BIGINT", "count": "BIGINT", "nm": "DOUBLE", "float": "DOUBLE",
                "str": "VARCHAR", "bool": "BOOLEAN"}[self.kind]


@dataclass(frozen=True)
class TableSpec:
    """Columns, sort order and uniqueness key of one release table."""

    name: str
    columns: tuple[ColumnSpec, ...]
    sort: tuple[str, ...]
    unique: tuple[str, ...]
    required: bool = False

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"

    def column(self, name: str) -> ColumnSpec | None:
        return next((c for c in self.columns if c.name == name), None)


_XYZ = tuple(ColumnSpec(f"{side}_{axis}", "nm") for side in ("pre", "post") for axis in "xyz")

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        TableSpec(
            "neurons",
            (ColumnSpec("id", "id"), ColumnSpec("type", "str", nullable=True),
             ColumnSpec("instance", "str", nullable=True), ColumnSpec("status", "str", nullable=True),
             *(ColumnSpec(c, "str", nullable=True, required=False) for c in ("side", "class", "superclass", "nt")),
             ColumnSpec("pre", "count", nullable=True), ColumnSpec("post", "count", nullable=True),
             ColumnSpec("upstream", "count", required=False), ColumnSpec("downstream", "count", required=False),
             *(ColumnSpec(c, "str", nullable=True, required=False) for c in CROSS_TYPES),
             ColumnSpec("is_neuron", "bool")),
            sort=("id",), unique=("id",), required=True,
        ),
        TableSpec(
            "connections",
            (ColumnSpec("pre", "id"), ColumnSpec("post", "id"), ColumnSpec("roi", "str"),
             ColumnSpec("weight", "count")),
            sort=("pre", "post", "roi"), unique=("pre", "post", "roi"), required=True,
        ),
        TableSpec(
            "roi_counts",
            (ColumnSpec("id", "id"), ColumnSpec("roi", "str"), ColumnSpec("pre", "count"),
             ColumnSpec("post", "count")),
            sort=("id", "roi"), unique=("id", "roi"),
        ),
        TableSpec(
            "synapses",
            (ColumnSpec("synapse_id", "key"), ColumnSpec("pre", "id"), ColumnSpec("post", "id"), *_XYZ,
             ColumnSpec("score", "float", nullable=True), ColumnSpec("roi", "str", nullable=True),
             ColumnSpec("pre_score", "float", nullable=True, required=False),
             ColumnSpec("post_score", "float", nullable=True, required=False)),
            sort=("pre", "synapse_id"), unique=("synapse_id",),
        ),
    )
}

#: Manifest key: ``{table: rows}`` of the tables the writer checked row by row (unique keys included).
#: The release backend compares these counts with the files on open; a table without a record is
#: checked for duplicate keys there instead.
CHECKED_ROWS = "checked_rows"

#: The second copy of the synapse rows, sorted by ``post`` (FORMAT.md "Layout for scale"): a filter on
#: ``post`` ids skips row groups there as a filter on ``pre`` does in ``synapses.parquet``.
POST_COPY = "synapses_by_post.parquet"
POST_SORT = ("post", "synapse_id")

#: Tables whose ids must all appear in neurons.parquet (neuPrint: every body with synapses is a Segment).
_ID_COLUMNS = {"connections": ("pre", "post"), "roi_counts": ("id",), "synapses": ("pre", "post")}

# --------------------------------------------------------------------------------------------
# errors and reports
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One violation of the release format."""

    table: str
    message: str
    column: str | None = None

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.message}"


class ReleaseValidationError(InvalidArgumentError):
    """Tables (or a manifest) that do not follow the release format (``FORMAT.md``).

    Attributes
    ----------
    problems : list of Problem
        Every violation found; ``table`` and ``column`` of the first are
        repeated as attributes.
    """

    def __init__(self, problems: Sequence[Problem] | str, *, table: str | None = None, column: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(table or "release", problems, column)]
        self.problems = list(problems)
        self.table = self.problems[0].table if self.problems else table
        self.column = self.problems[0].column if self.problems else column
        shown = "\n  - ".join(str(p) for p in self.problems[:10])
        more = f"\n  ... and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        head = "release table does not follow FORMAT.md" if len(self.problems) == 1 else (
            f"{len(self.problems)} problems with the release tables (FORMAT.md)")
        super().__init__(f"{head}:\n  - {shown}{more}")


@dataclass
class ReleaseReport:
    """Result of :func:`validate_release`.

    Attributes
    ----------
    folder : Path
    manifest : dict or None
        The manifest, if it could be read.
    rows : dict
        Row count per table file present.
    problems : list of Problem
    checks : list of str
        What was checked (so a clean report says how thorough it was).
    deep : bool
        Whether every row was read.
    """

    folder: Path
    manifest: dict | None = None
    rows: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    deep: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to ``"name"``, ``"version"`` and ``"rows"`` (the summary of earlier versions)."""
        if key == "rows":
            return dict(self.rows)
        if key in ("name", "version"):
            return (self.manifest or {}).get(key)
        raise KeyError(key)

    def raise_for_problems(self) -> ReleaseReport:
        """Raise :class:`~connectomix.errors.DataFormatError` if there are problems, else return self."""
        if self.problems:
            raise DataFormatError(str(self))
        return self

    def __str__(self) -> str:
        name = (self.manifest or {}).get("name", self.folder.name)
        version = (self.manifest or {}).get("version", "?")
        counts = ", ".join(f"{t} {n:,}" for t, n in self.rows.items())
        mode = "deep (every row)" if self.deep else "quick (metadata, statistics and small tables)"
        lines = [f"release {name!r} {version} at {self.folder}", f"  rows: {counts or 'none'}",
                 f"  check: {mode}; {len(self.checks)} checks"]
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s):")
            lines += [f"    - {p}" for p in self.problems]
        else:
            lines.append("  OK")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# manifest
# --------------------------------------------------------------------------------------------


def make_manifest(*, name: str, version: str, description: str = "", source: str = "", license: str = "",
                  citation: str = "", voxel_size_nm: Sequence[float] | None = None,
                  rois: Iterable[str] | None = None, primary_rois: Iterable[str] = (),
                  score_name: str | None = None, synthetic: Mapping[str, Any] | None = None,
                  **extra: Any) -> dict:
    """Build a manifest dict (validated like :func:`write_release` does).

    Parameters
    ----------
    name, version
        Dataset name and immutable version tag of this release.
    rois
        Every ROI name the dataset knows; defaults to ``primary_rois``.
    primary_rois
        The non-overlapping ROIs used in the ``roi`` columns.
    score_name
        What ``synapses.score`` is (``"confidence"``, ``"cleft_score"``), or None.
    synthetic
        ``{table: description}`` of invented data; ``{}`` for real data.
    **extra
        Further JSON-serialisable keys (e.g. ``notes``), kept verbatim.
    """
    raw = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": name, "version": version,
        "description": description, "source": source, "license": license, "citation": citation,
        "voxel_size_nm": list(voxel_size_nm) if isinstance(voxel_size_nm, (list, tuple)) else voxel_size_nm,
        "rois": list(rois) if rois is not None else list(primary_rois),
        "primary_rois": list(primary_rois), "score_name": score_name,
        "synthetic": synthetic if synthetic is not None else {}, **extra,
    }
    problems = _manifest_problems(raw)
    if problems:
        raise ReleaseValidationError(problems)
    raw["rois"] = sorted(set(raw["rois"]) | set(raw["primary_rois"]))
    raw["primary_rois"] = sorted(raw["primary_rois"])
    return checked_manifest(raw)


def checked_manifest(manifest: Mapping[str, Any]) -> dict:
    """Return a normalised copy of ``manifest``, or raise :class:`ReleaseValidationError`."""
    problems = _manifest_problems(manifest)
    if problems:
        raise ReleaseValidationError(problems)
    m = dict(manifest)
    m.setdefault("format", FORMAT_NAME)
    m.setdefault("format_version", FORMAT_VERSION)
    for key in ("description", "source", "license", "citation"):
        m.setdefault(key, "")
    m["primary_rois"] = list(m.get("primary_rois") or [])
    m["rois"] = list(m.get("rois") if m.get("rois") is not None else m["primary_rois"])
    m.setdefault("voxel_size_nm", None)
    m.setdefault("score_name", None)
    m["synthetic"] = dict(m.get("synthetic") or {})
    order = ["format", "format_version", "name", "version", "description", "source", "license", "citation",
             "voxel_size_nm", "rois", "primary_rois", "score_name", "synthetic"]
    return {**{k: m[k] for k in order}, **{k: v for k, v in m.items() if k not in order}}


def _manifest_problems(m: Any) -> list[Problem]:
    p: list[Problem] = []

    def bad(key: str, msg: str) -> None:
        p.append(Problem("manifest", msg, key))

    if not isinstance(m, Mapping):
        return [Problem("manifest", f"must be a JSON object (dict); got {type(m).__name__}")]
    if m.get("format", FORMAT_NAME) != FORMAT_NAME:
        bad("format", f"must be {FORMAT_NAME!r}; got {m.get('format')!r}")
    if m.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        bad("format_version", f"must be {FORMAT_VERSION}; got {m.get('format_version')!r}")
    for key in ("name", "version"):
        if not isinstance(m.get(key), str) or not m.get(key, "").strip():
            bad(key, f"is required and must be a non-empty string; got {m.get(key)!r}")
    for key in ("description", "source", "license", "citation"):
        if key in m and not isinstance(m[key], str):
            bad(key, f"must be a string; got {type(m[key]).__name__}")
    vox = m.get("voxel_size_nm")
    if vox is not None and not (
        isinstance(vox, (list, tuple)) and len(vox) == 3
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0 for v in vox)
    ):
        bad("voxel_size_nm", f"must be null or three positive numbers [x, y, z]; got {vox!r}")
    primary = m.get("primary_rois", [])
    rois = m.get("rois", primary)
    for key, value in (("primary_rois", primary), ("rois", rois)):
        if not isinstance(value, (list, tuple)) or not all(isinstance(r, str) and r for r in value):
            bad(key, f"must be a list of non-empty strings; got {value!r}")
            return p
        dupes = sorted({r for r in value if list(value).count(r) > 1})
        if dupes:
            bad(key, f"lists {dupes} more than once")
        if NOT_PRIMARY in value:
            bad(key, f"must not contain {NOT_PRIMARY!r}: it is the bucket for synapses outside all primary ROIs")
    missing = sorted(set(primary) - set(rois))
    if missing:
        bad("rois", f"must include every primary ROI; missing {missing}")
    score = m.get("score_name")
    if score is not None and (not isinstance(score, str) or not score):
        bad("score_name", f"must be null or a non-empty string such as 'confidence'; got {score!r}")
    info = m.get("score")
    if info is not None:
        keys = {"column", "scale", "recommended", "op", "source"}
        if not isinstance(info, Mapping) or set(info) != keys:
            bad("score", f"must be null or an object with exactly the keys {sorted(keys)}; got {info!r}")
        elif not (isinstance(info["column"], str) and isinstance(info["scale"], str)
                  and isinstance(info["source"], str) and info["op"] in (">", ">=")
                  and (info["recommended"] is None or (isinstance(info["recommended"], numbers.Real)
                                                       and not isinstance(info["recommended"], bool)))):
            bad("score", "column, scale and source must be strings, op '>' or '>=', recommended a number "
                         f"(the >= threshold) or null; got {info!r}")
        elif score is None:
            bad("score", "describes a score but score_name is null")
    synthetic = m.get("synthetic", {})
    if not isinstance(synthetic, Mapping) or not all(
        isinstance(v, str) or (isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v))
        for v in synthetic.values()
    ):
        bad("synthetic", f"must be an object {{table: description or [columns]}} ({{}} for real data); got {synthetic!r}")
    try:
        json.dumps(dict(m))
    except (TypeError, ValueError) as exc:
        p.append(Problem("manifest", f"is not JSON-serialisable: {exc}"))
    return p


def read_manifest(folder: str | os.PathLike) -> dict:
    """Read and check ``manifest.json`` of a release folder.

    Raises
    ------
    DataFormatError
        The folder or manifest is missing, not JSON, or does not follow FORMAT.md.
    """
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise DataFormatError(f"{str(folder)!r} is not a connectomix release folder: it has no manifest.json")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path} is not valid JSON: {exc}") from None
    problems = _manifest_problems(manifest)
    if problems:
        raise DataFormatError(f"{path} does not follow FORMAT.md: " + "; ".join(str(x) for x in problems))
    return checked_manifest(manifest)


# --------------------------------------------------------------------------------------------
# atomic staging
# --------------------------------------------------------------------------------------------


def _is_replaceable(folder: Path) -> bool:
    """Only empty folders and release folders may be overwritten (never an arbitrary directory)."""
    if not any(folder.iterdir()):
        return True
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def staged_folder(dest: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a hidden staging folder that replaces ``dest`` only if the block succeeds.

    The staging folder is created beside ``dest`` (same file system, so the
    final rename is atomic). On any exception it is deleted and ``dest`` is
    left exactly as it was.
    """
    dest = Path(dest).expanduser().absolute()
    if dest.exists():
        if not dest.is_dir():
            raise InvalidArgumentError(f"destination {str(dest)!r} exists and is not a folder")
        if not overwrite:
            raise InvalidArgumentError(
                f"destination {str(dest)!r} already exists; choose a new folder or pass overwrite=True "
                "(CLI: --overwrite)"
            )
        if not _is_replaceable(dest):
            raise InvalidArgumentError(
                f"refusing to overwrite {str(dest)!r}: it is not empty and not a connectomix release folder "
                "(no manifest.json with format 'connectomix-release')"
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        yield stage
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(dest, old)
            try:
                os.replace(stage, dest)
            except BaseException:
                os.replace(old, dest)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, dest)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------
# DuckDB helpers
# --------------------------------------------------------------------------------------------


def quote_ident(name: str) -> str:
    """SQL identifier quoting (column names come from user files)."""
    return '"' + str(name).replace('"', '""') + '"'


def quote_str(value: str | os.PathLike) -> str:
    """SQL string literal (text values; file paths to *read* go through :func:`quote_path`)."""
    return "'" + str(value).replace("'", "''") + "'"


def quote_path(path: str | os.PathLike) -> str:
    """SQL string literal of a file for DuckDB's readers (``read_parquet``, ``read_csv``, ``parquet_metadata``).

    Those readers expand ``*``, ``?`` and ``[...]`` in file names as globs,
    so a folder named ``data[ab]`` would read ``dataa``, and ``run*`` every
    ``run...`` folder. Each of those characters is wrapped in brackets
    (``[*]``, ``[?]``, ``[[]``), which DuckDB's glob matches literally; the
    result names exactly one file. (``COPY ... TO`` takes paths literally:
    use :func:`quote_str` there.)

    Examples
    --------
    >>> quote_path("/data/run*[v2]/it's.parquet")
    "'/data/run[*][[]v2]/it''s.parquet'"
    """
    return quote_str("".join(f"[{c}]" if c in "*?[" else c for c in str(path)))


def connect(temp_dir: Path | None = None, *, memory_limit: str | None = None, threads: int | None = None,
            database: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to ``temp_dir`` (tables in ``database``, or in memory)."""
    config: dict[str, Any] = {}
    if temp_dir is not None:
        config["temp_directory"] = str(temp_dir)
    if memory_limit is not None:
        config["memory_limit"] = str(memory_limit)
    if threads is not None:
        config["threads"] = int(threads)
    if database is not None and "?" in str(database):
        # DuckDB cuts a database path at '?' when it names the write-ahead log (its 'db?x/w.duckdb'
        # writes 'db.wal?x/...'); such folders work in memory, spilling to temp_dir like the file would
        database = None
    return duckdb.connect(str(database) if database is not None else ":memory:", config=config)


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}


_SMALL_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}
_LARGE_INTS = {"UBIGINT", "HUGEINT", "UHUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE", "REAL"}


def _is_decimal(t: str) -> bool:
    return t.startswith("DECIMAL")


def _cast_expr(spec: ColumnSpec, actual: str, table: str) -> tuple[str | None, Problem | None, bool]:
    """SQL cast of a column to its format type: (expression, problem, needs_range_check)."""
    col = quote_ident(spec.name)
    want = spec.duck_type
    if actual == want:
        return col, None, False
    if want == "BIGINT":
        if actual in _SMALL_INTS:
            return f"CAST({col} AS BIGINT)", None, False
        if actual in _LARGE_INTS:
            return f"CAST({col} AS BIGINT)", None, True
        if actual == '"NULL"' and spec.nullable:
            return f"CAST({col} AS BIGINT)", None, False
        if actual in _FLOATS or _is_decimal(actual):
            hint = ("floating-point ids lose precision above 2**53 (FlyWire root ids are ~7.2e17); "
                    "read them as integers" if spec.kind in ("id", "key") else "counts must be whole numbers")
            return None, Problem(table, f"must hold integers (int64); it has type {actual}: {hint}", spec.name), False
        return None, Problem(table, f"must hold integers (int64); it has type {actual}", spec.name), False
    if want == "DOUBLE":
        if actual in _SMALL_INTS | _LARGE_INTS | _FLOATS or _is_decimal(actual) or actual == '"NULL"':
            return f"CAST({col} AS DOUBLE)", None, False
        return None, Problem(table, f"must hold numbers (float64); it has type {actual}", spec.name), False
    if want == "VARCHAR":
        if actual.startswith("ENUM") or (actual == '"NULL"'):
            return f"CAST({col} AS VARCHAR)", None, False
        return None, Problem(table, f"must hold text (string); it has type {actual}", spec.name), False
    if want == "BOOLEAN":
        return None, Problem(table, f"must hold booleans; it has type {actual}", spec.name), False
    raise AssertionError(want)  # pragma: no cover


def _examples(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    rows = con.execute(sql).fetchall()
    shown = ", ".join(str(r[0] if len(r) == 1 else tuple(r)) for r in rows[:_EXAMPLES])
    return shown


# --------------------------------------------------------------------------------------------
# row-level checks (SQL)
# --------------------------------------------------------------------------------------------


def table_problems(con: duckdb.DuckDBPyConnection, table: str, rel: str, manifest: Mapping[str, Any], *,
                   neurons_rel: str | None = None, check_unique: bool = True) -> list[Problem]:
    """Every row-level rule of FORMAT.md for one table, as SQL over ``rel``.

    ``rel`` must already have the format's column types (see :meth:`ReleaseBuilder.add_table`).
    ``neurons_rel`` enables the check that every id appears in ``neurons``.
    """
    spec = TABLES[table]
    present = _columns(con, rel)
    cols = [c for c in spec.columns if c.name in present]
    p: list[Problem] = []
    aggs = ["count(*)"]
    labels: list[tuple[str, str, str]] = []  # (column, message, example-where)

    def agg(column: str, condition: str, message: str) -> None:
        aggs.append(f"count(*) FILTER (WHERE {condition})")
        labels.append((column, message, condition))

    for c in cols:
        q = quote_ident(c.name)
        if not c.nullable:
            agg(c.name, f"{q} IS NULL", "must not contain missing values")
        if c.kind == "id":
            hint = " (id 0 is the background segment and never a neuron)"
            agg(c.name, f"{q} <= 0", f"ids must be positive integers{hint}")
        elif c.kind == "count":
            if table == "connections":
                agg(c.name, f"{q} <= 0", "weights must be > 0 (leave out pairs without connections)")
            else:
                agg(c.name, f"{q} < 0", "counts must be >= 0")
        elif c.kind in ("nm", "float"):
            agg(c.name, f"{q} IS NOT NULL AND NOT isfinite({q})", "must be finite numbers (no NaN or infinity)")
    row = con.execute(f"SELECT {', '.join(aggs)} FROM {rel}").fetchall()[0]
    for (column, message, condition), n in zip(labels, row[1:]):
        if n:
            ex = _examples(con, f"SELECT {quote_ident(column)} FROM {rel} WHERE {condition} LIMIT {_EXAMPLES}")
            p.append(Problem(table, f"{message}; {n:,} row(s), e.g. {ex}", column))

    if "roi" in present:
        allowed = set(manifest.get("primary_rois", ()))
        if table != "synapses":
            allowed.add(NOT_PRIMARY)
        found = [r[0] for r in con.execute(f"SELECT DISTINCT roi FROM {rel} WHERE roi IS NOT NULL").fetchall()]
        bad = sorted(set(found) - allowed)
        if bad:
            if table == "synapses":
                valid = "a primary ROI of the manifest, or null outside all primary ROIs"
            else:
                valid = f"a primary ROI of the manifest or {NOT_PRIMARY!r}"
            shown = bad[:10] + (["..."] if len(bad) > 10 else [])
            p.append(Problem(table, f"{len(bad)} unknown ROI name(s) {shown}; roi must be {valid} "
                                    f"(manifest primary_rois: {sorted(manifest.get('primary_rois', ()))[:10]}"
                                    f"{' ...' if len(manifest.get('primary_rois', ())) > 10 else ''})", "roi"))

    if table == "synapses" and "score" in present:
        n_scores = con.execute(f"SELECT count(score) FROM {rel}").fetchall()[0][0]
        if n_scores and not manifest.get("score_name"):
            p.append(Problem(table, f"{n_scores:,} synapses have a score but the manifest's score_name is null; "
                                    "set it to what the score is (e.g. 'cleft_score' or 'confidence')", "score"))

    if check_unique and all(k in present for k in spec.unique):
        key = ", ".join(quote_ident(k) for k in spec.unique)
        dupes = con.execute(
            f"SELECT {key}, count(*) AS n FROM {rel} GROUP BY ALL HAVING count(*) > 1 LIMIT {_EXAMPLES}"
        ).fetchall()
        if dupes:
            shown = ", ".join(str(d[:-1] if len(d) > 2 else d[0]) for d in dupes)
            p.append(Problem(table, f"({key}) must be unique; repeated: {shown}", ",".join(spec.unique)))

    if neurons_rel is not None:
        p += id_problems(con, table, rel, neurons_rel)
    return p


def id_problems(con: duckdb.DuckDBPyConnection, table: str, rel: str, neurons_rel: str) -> list[Problem]:
    """Ids of ``rel`` that have no row in the neurons relation."""
    present = _columns(con, rel)
    p = []
    for column in _ID_COLUMNS.get(table, ()):
        if column not in present:
            continue
        q = quote_ident(column)
        missing = con.execute(
            f"SELECT DISTINCT x.{q} FROM {rel} AS x ANTI JOIN {neurons_rel} AS n ON x.{q} = n.id "
            f"WHERE x.{q} IS NOT NULL LIMIT {_EXAMPLES}"
        ).fetchall()
        if missing:
            p.append(Problem(table, f"ids missing from neurons: {', '.join(str(m[0]) for m in missing)}; every "
                                    "body in a table must have a neurons row (add partners as is_neuron=False "
                                    "segments)", column))
    return p


def coerce_relation(con: duckdb.DuckDBPyConnection, table: str, rel: str,
                    manifest: Mapping[str, Any]) -> tuple[str, list[Problem]]:
    """A SELECT that casts ``rel`` to the format's column types, and the problems found on the way.

    Integer columns of any width become int64 (unsigned ones are range-checked),
    numbers become float64 where the format wants coordinates or scores,
    categorical text becomes plain text; anything else is a :class:`Problem`.
    """
    spec = TABLES[table]
    present = _columns(con, rel)
    problems: list[Problem] = []
    missing = [c.name for c in spec.columns if c.required and c.name not in present]
    if table == "synapses" and "score" in missing and not manifest.get("score_name"):
        missing.remove("score")  # no scores in this dataset: an all-null column is added
    if missing:
        return "", [Problem(table, f"is missing required column(s) {missing}; it has {list(present)}")]
    exprs, range_checks = [], []
    for c in spec.columns:
        if c.name not in present:
            if c.required:  # only synapses.score without score_name
                exprs.append(f"CAST(NULL AS DOUBLE) AS {quote_ident(c.name)}")
            continue
        expr, problem, check = _cast_expr(c, present[c.name], table)
        if problem:
            problems.append(problem)
            continue
        exprs.append(f"{expr} AS {quote_ident(c.name)}")
        if check:
            range_checks.append(c.name)
    for name, t in present.items():
        if spec.column(name) is None:
            q = quote_ident(name)
            cast = t.startswith("ENUM") or t == '"NULL"'
            exprs.append(f"CAST({q} AS VARCHAR) AS {q}" if cast else q)
    for name in range_checks:
        q = quote_ident(name)
        n = con.execute(f"SELECT count(*) FROM {rel} WHERE {q} > {_MAX_INT64}").fetchall()[0][0]
        if n:
            problems.append(Problem(table, f"{n:,} value(s) exceed the int64 range", name))
    return f"(SELECT {', '.join(exprs)} FROM {rel})", problems


# --------------------------------------------------------------------------------------------
# building a release from DuckDB relations
# --------------------------------------------------------------------------------------------


class ReleaseBuilder:
    """Assemble a release folder from DuckDB relations, checked and written atomically.

    Use as a context manager: tables are checked and written into a hidden
    staging folder; on a clean exit the manifest is written, the folder is
    validated once more and renamed to ``dest``. Any exception removes the
    staging folder and leaves ``dest`` untouched.

    Parameters
    ----------
    dest
        The release folder to create.
    manifest
        The manifest (see :func:`make_manifest`); can be replaced with
        :meth:`set_manifest` before tables are added.
    overwrite
        Replace an existing release folder.
    memory_limit, threads
        DuckDB settings; sorts and aggregations beyond ``memory_limit`` spill
        to a temporary folder inside the staging folder.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> from connectomix_release.writer import ReleaseBuilder, make_manifest
    >>> dest = pathlib.Path(tempfile.mkdtemp()) / "built"
    >>> with ReleaseBuilder(dest, manifest=make_manifest(name="b", version="1")) as rb:
    ...     rb.add_dataframe("neurons", pd.DataFrame({"id": [5], "type": ["T"], "instance": [None],
    ...                                               "status": [None], "pre": [1], "post": [1], "is_neuron": [True]}))
    ...     rb.add_table("connections", "(SELECT 5 AS pre, 5 AS post, 'NotPrimary' AS roi, 1 AS weight)")
    1
    1
    >>> sorted(p.name for p in dest.iterdir())
    ['connections.parquet', 'manifest.json', 'neurons.parquet']
    """

    def __init__(self, dest: str | os.PathLike, *, manifest: Mapping[str, Any] | None = None,
                 overwrite: bool = False, memory_limit: str | None = None, threads: int | None = None):
        self.dest = Path(dest).expanduser().absolute()
        self.manifest = checked_manifest(manifest) if manifest is not None else None
        self.overwrite = overwrite
        self._memory_limit = memory_limit
        self._threads = threads
        self._stack: contextlib.ExitStack | None = None
        self.stage: Path | None = None
        self.con: duckdb.DuckDBPyConnection | None = None
        self.rows: dict[str, int] = {}
        self.readme: str | None = None
        self._unchecked_ids: list[str] = []
        self._checked: set[str] = set()  # tables whose every row passed table_problems (keys unique)

    # -- context -------------------------------------------------------------------------

    def __enter__(self) -> ReleaseBuilder:
        stack = contextlib.ExitStack()
        self.stage = stack.enter_context(staged_folder(self.dest, overwrite=self.overwrite))
        tmp = self.stage / ".duckdb-tmp"
        tmp.mkdir()
        self.con = connect(tmp, memory_limit=self._memory_limit, threads=self._threads, database=tmp / "work.duckdb")
        stack.callback(self.con.close)
        self._stack = stack
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self._stack is not None and self.stage is not None
        try:
            if exc_type is None:
                self._finish()
        except BaseException as err:
            with contextlib.suppress(Exception):
                self.con.close()
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise
        return bool(self._stack.__exit__(exc_type, exc, tb))

    def _finish(self) -> None:
        if self.manifest is None:
            raise ReleaseValidationError("no manifest was given", table="manifest")
        for name, spec in TABLES.items():
            if spec.required and name not in self.rows:
                raise ReleaseValidationError("is required but was not written", table=name)
        self.con.close()
        shutil.rmtree(self.stage / ".duckdb-tmp", ignore_errors=True)
        manifest = {**self.manifest, CHECKED_ROWS: {t: self.rows[t] for t in TABLES if t in self._checked}}
        (self.stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        if self.readme:
            (self.stage / "README.md").write_text(self.readme, encoding="utf-8")
        report = validate_release(self.stage, deep=False)
        if not report.ok:
            raise ReleaseValidationError(report.problems)

    # -- content -------------------------------------------------------------------------

    def set_manifest(self, manifest: Mapping[str, Any]) -> dict:
        """Set (or replace) the manifest; returns the checked copy."""
        self.manifest = checked_manifest(manifest)
        return self.manifest

    def _require_open(self) -> None:
        if self.con is None or self.stage is None:
            raise InvalidArgumentError("use ReleaseBuilder as a context manager ('with ReleaseBuilder(...) as rb:')")

    def coerced(self, table: str, rel: str) -> tuple[str, list[Problem]]:
        """A SELECT that casts ``rel`` to the format's column types, and problems found on the way."""
        self._require_open()
        return coerce_relation(self.con, table, rel, self.manifest or {})

    def add_table(self, table: str, rel: str, *, check: bool = True) -> int:
        """Check the relation ``rel`` (a table/view name or ``read_parquet(...)``) and write ``<table>.parquet``.

        Rows are sorted as FORMAT.md requires. Tables added before ``neurons``
        have their ids checked against it when ``neurons`` is added. Returns
        the number of rows written.

        Raises
        ------
        ReleaseValidationError
            The relation breaks a rule of the format (all problems are listed).
        """
        self._require_open()
        if table not in TABLES:
            raise InvalidArgumentError(f"unknown release table {table!r}; valid tables: {sorted(TABLES)}")
        if self.manifest is None:
            raise InvalidArgumentError("set the manifest (set_manifest) before adding tables")
        sql, problems = self.coerced(table, rel)
        if problems:
            raise ReleaseValidationError(problems)
        spec = TABLES[table]
        out = self.stage / spec.file
        n = write_sorted(self.con, sql, out, order_by=spec.sort,
                         row_group_size=SYNAPSE_SCAN_ROW_GROUP_SIZE if table == "synapses" else SYNAPSE_ROW_GROUP_SIZE)
        written = f"read_parquet({quote_path(out)})"
        if check:
            have_neurons = "neurons" in self.rows
            neurons = "_release_neurons" if have_neurons and table != "neurons" else None
            problems = table_problems(self.con, table, written, self.manifest, neurons_rel=neurons)
            if problems:
                out.unlink()
                raise ReleaseValidationError(problems)
            if not have_neurons and table != "neurons":
                self._unchecked_ids.append(table)
            self._checked.add(table)
        else:
            self._checked.discard(table)
        if table == "synapses":
            write_sorted(self.con, written, self.stage / POST_COPY, order_by=POST_SORT,
                         row_group_size=SYNAPSE_SCAN_ROW_GROUP_SIZE)
        self.rows[table] = n
        if table == "neurons":
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW _release_neurons AS SELECT id FROM {written}")
            problems = [p for t in self._unchecked_ids for p in id_problems(
                self.con, t, f"read_parquet({quote_path(self.stage / TABLES[t].file)})", "_release_neurons")]
            if problems:
                raise ReleaseValidationError(problems)
            self._unchecked_ids.clear()
        return n

    def add_dataframe(self, table: str, df: pd.DataFrame) -> int:
        """:meth:`add_table` for a pandas DataFrame."""
        self._require_open()
        if not isinstance(df, pd.DataFrame):
            raise InvalidArgumentError(f"{table} must be a pandas DataFrame; got {type(df).__name__}")
        name = f"_df_{table}"
        frame = df.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        self.con.register(name, frame)
        try:
            return self.add_table(table, name)
        except duckdb.Error as exc:
            raise ReleaseValidationError(f"cannot be read: {exc}", table=table) from exc
        finally:
            self.con.unregister(name)

    def add_meshes(self, meshes: Mapping[int, Any]) -> int:
        """Write ``meshes.parquet`` from navis ``MeshNeuron`` s (converted to nm) or ``(vertices_nm, faces)``.

        The manifest then declares them (``"meshes"``; FORMAT.md, "Meshes"). Returns the number written.
        """
        from .meshes import MESHES_FILE, manifest_entry, write_meshes

        self._require_open()
        if "neurons" not in self.rows:
            raise InvalidArgumentError("add the neurons table before meshes")
        ids = [int(k) for k in meshes if isinstance(k, numbers.Integral) and not isinstance(k, bool)]
        known = {r[0] for r in self.con.execute(
            f"SELECT id FROM _release_neurons WHERE id IN ({','.join(map(str, ids)) or 'NULL'})").fetchall()}
        unknown = sorted(set(ids) - known)
        if unknown:
            raise ReleaseValidationError(f"ids {unknown[:10]} are not in the neurons table", table="meshes")
        try:
            n = write_meshes(self.stage / MESHES_FILE, meshes)
        except InvalidArgumentError as exc:
            raise ReleaseValidationError(str(exc), table="meshes") from None
        self.manifest = {**self.manifest, "meshes": manifest_entry(n)}
        return n

    def add_skeletons(self, skeletons: Mapping[int, Any]) -> int:
        """Write ``skeletons/<id>.swc`` from navis ``TreeNeuron`` s (converted to nm) or SWC files."""
        self._require_open()
        if "neurons" not in self.rows:
            raise InvalidArgumentError("add the neurons table before skeletons")
        folder = self.stage / "skeletons"
        folder.mkdir(exist_ok=True)
        ids = [_skeleton_id(k) for k in skeletons]
        known = {r[0] for r in self.con.execute(
            f"SELECT id FROM _release_neurons WHERE id IN ({','.join(map(str, ids)) or 'NULL'})").fetchall()}
        unknown = sorted(set(ids) - known)
        if unknown:
            raise ReleaseValidationError(f"ids {unknown[:10]} are not in the neurons table", table="skeletons")
        for key, value in skeletons.items():
            _write_skeleton(_skeleton_id(key), value, folder / f"{_skeleton_id(key)}.swc")
        return len(ids)


def _skeleton_id(key: Any) -> int:
    if isinstance(key, bool) or not isinstance(key, numbers.Integral) or int(key) <= 0:
        raise ReleaseValidationError(f"keys must be positive integer neuron ids; got {key!r}", table="skeletons")
    return int(key)


def _write_skeleton(neuron_id: int, value: Any, path: Path) -> None:
    import navis

    if isinstance(value, (str, os.PathLike)):
        src = Path(value)
        if not src.is_file():
            raise ReleaseValidationError(f"SWC file {str(src)!r} for id {neuron_id} does not exist", table="skeletons")
        try:
            navis.read_swc(src)
        except Exception as exc:  # navis raises many kinds of errors on bad files
            raise ReleaseValidationError(f"{str(src)!r} (id {neuron_id}) is not a readable SWC file: {exc}",
                                         table="skeletons") from exc
        shutil.copyfile(src, path)
        return
    if not isinstance(value, navis.TreeNeuron):
        raise ReleaseValidationError(
            f"id {neuron_id}: expected a navis.TreeNeuron or an SWC file path; got {type(value).__name__}",
            table="skeletons")
    neuron = value
    units = getattr(neuron, "units", None)
    if units is None or getattr(units, "dimensionless", True):
        raise ReleaseValidationError(
            f"id {neuron_id}: the TreeNeuron has no physical units (units={units!r}); set neuron.units "
            "(e.g. '8 nm') so it can be written in nm", table="skeletons")
    try:
        neuron = neuron.convert_units("nm", inplace=False)
    except Exception as exc:
        raise ReleaseValidationError(f"id {neuron_id}: cannot convert units {units} to nm: {exc}",
                                     table="skeletons") from exc
    navis.write_swc(neuron, path)


def write_sorted(con: duckdb.DuckDBPyConnection, rel_sql: str, path: Path, *, order_by: Sequence[str],
                 row_group_size: int = SYNAPSE_ROW_GROUP_SIZE, batch_rows: int = 131_072) -> int:
    """Stream ``SELECT * FROM rel ORDER BY ...`` into Parquet with row groups of exactly ``row_group_size`` rows.

    DuckDB sorts (spilling to its temporary folder beyond the memory limit);
    rows come back in Arrow batches and are written by pyarrow, so at most
    one row group is held in Python memory.
    """
    order = ", ".join(quote_ident(c) for c in order_by)
    reader = con.sql(f"SELECT * FROM {rel_sql} ORDER BY {order}").to_arrow_reader(batch_rows)
    schema = _plain_schema(reader.schema)
    buffered: list[pa.RecordBatch] = []
    held = total = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in reader:
            batch = batch.cast(schema) if batch.schema != schema else batch
            while batch.num_rows:
                take = min(batch.num_rows, row_group_size - held)
                buffered.append(batch.slice(0, take))
                held += take
                batch = batch.slice(take)
                if held == row_group_size:
                    writer.write_table(pa.Table.from_batches(buffered, schema), row_group_size=row_group_size)
                    total += held
                    buffered, held = [], 0
        if held or total == 0:
            writer.write_table(pa.Table.from_batches(buffered, schema), row_group_size=row_group_size)
            total += held
    return total


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """Arrow schema without DuckDB/pandas metadata, with large/view strings made plain strings."""
    fields = []
    for f in schema:
        t = f.type
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            t = pa.string()
        elif pa.types.is_dictionary(t):
            t = t.value_type
        fields.append(pa.field(f.name, t, nullable=True))
    return pa.schema(fields)


# --------------------------------------------------------------------------------------------
# public writers
# --------------------------------------------------------------------------------------------


def write_release(folder: str | os.PathLike, *, manifest: Mapping[str, Any], neurons: pd.DataFrame,
                  connections: pd.DataFrame, roi_counts: pd.DataFrame | None = None,
                  synapses: pd.DataFrame | None = None, skeletons: Mapping[int, Any] | None = None,
                  meshes: Mapping[int, Any] | None = None,
                  readme: str | None = None, overwrite: bool = False) -> Path:
    """Validate tables against FORMAT.md and write a release folder atomically.

    Parameters
    ----------
    folder
        Folder to create. It must not exist unless ``overwrite=True`` (and then
        it must be an existing release folder or empty).
    manifest
        See :func:`make_manifest`; ``format``/``format_version`` are filled in.
    neurons, connections, roi_counts, synapses
        Tables with the columns of FORMAT.md (extra columns are kept). Integer
        columns of any width are widened to int64, numeric coordinates to
        float64; rows are sorted as the format requires.
    skeletons
        ``{id: navis.TreeNeuron or path to an SWC file}``. TreeNeurons are
        converted to nm; SWC files are copied as they are (they must be in nm).
    meshes
        ``{id: navis.MeshNeuron or (vertices_nm, faces)}``, written to ``meshes.parquet`` in nm
        (FORMAT.md, "Meshes").
    readme
        Text for ``README.md``.
    overwrite
        Replace an existing release folder.

    Returns
    -------
    Path
        The release folder.

    Raises
    ------
    ReleaseValidationError
        (a :class:`~connectomix.errors.InvalidArgumentError`) listing every
        rule the tables break; nothing is written then.
    """
    m = checked_manifest(manifest)
    given = {"neurons": neurons, "connections": connections, "roi_counts": roi_counts, "synapses": synapses}
    with ReleaseBuilder(folder, manifest=m, overwrite=overwrite) as rb:
        for table, df in given.items():
            if df is not None:
                rb.add_dataframe(table, df)
        if skeletons:
            rb.add_skeletons(skeletons)
        if meshes:
            rb.add_meshes(meshes)
        rb.readme = readme
    return rb.dest


def _as_arrow(batch: Any, index: int) -> pa.Table:
    if isinstance(batch, pd.DataFrame):
        try:
            return pa.Table.from_pandas(batch.reset_index(drop=True), preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ReleaseValidationError(f"batch {index} cannot be converted to Arrow: {exc}",
                                         table="synapses") from exc
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    if isinstance(batch, pa.Table):
        return batch
    raise ReleaseValidationError(
        f"batch {index} is a {type(batch).__name__}; give pandas DataFrames or pyarrow RecordBatches/Tables",
        table="synapses")


def write_synapses_streaming(folder: str | os.PathLike, batches: Iterable[pa.RecordBatch | pa.Table | pd.DataFrame],
                             *, update_manifest: Mapping[str, Any] | None = None,
                             memory_limit: str | None = "1GB") -> Path:
    """Write ``synapses.parquet`` of an existing release folder from batches, in bounded memory.

    Batches are spooled to disk as they arrive, then checked and sorted by
    DuckDB and written with row groups of :data:`SYNAPSE_ROW_GROUP_SIZE` rows. The new file
    replaces any previous one only when every check passed.

    Parameters
    ----------
    folder
        An existing release folder (its ``neurons.parquet`` must list every id).
    batches
        DataFrames or pyarrow RecordBatches/Tables with the synapse columns of
        FORMAT.md (their schemas may differ in integer width).
    update_manifest
        Keys to change in ``manifest.json`` together with the synapses (e.g.
        ``{"score_name": "cleft_score"}``).
    memory_limit
        DuckDB memory limit for the sort; beyond it DuckDB spills to disk.

    Returns
    -------
    Path
        The new ``synapses.parquet``.

    Examples
    --------
    >>> import pandas as pd, tempfile, pathlib
    >>> folder = write_release(
    ...     pathlib.Path(tempfile.mkdtemp()) / "with-synapses",
    ...     manifest=make_manifest(name="s", version="1", primary_rois=["AL(R)"], synthetic={"all": "toy"}),
    ...     neurons=pd.DataFrame({"id": [1, 2], "type": None, "instance": None, "status": None,
    ...                           "pre": [2, 2], "post": [2, 2], "is_neuron": True}),
    ...     connections=pd.DataFrame({"pre": [1, 2], "post": [2, 1], "roi": ["AL(R)", "NotPrimary"], "weight": 2}))
    >>> def batches():  # e.g. chunks read from a big source file
    ...     for start in range(0, 3, 2):
    ...         yield pd.DataFrame({"synapse_id": [start, start + 1], "pre": [1, 2], "post": [2, 1],
    ...                             "pre_x": 0.0, "pre_y": 0.0, "pre_z": 0.0, "post_x": 1.0, "post_y": 1.0,
    ...                             "post_z": 1.0, "score": 0.9, "roi": ["AL(R)", None]})
    >>> write_synapses_streaming(folder, batches(), update_manifest={"score_name": "confidence"}).name
    'synapses.parquet'
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if update_manifest:
        manifest = checked_manifest({**manifest, **dict(update_manifest)})
    neurons_file = folder / "neurons.parquet"
    if not neurons_file.is_file():
        raise DataFormatError(f"release folder {str(folder)!r} has no neurons.parquet")
    spool = Path(tempfile.mkdtemp(prefix=".synapses.partial-", dir=folder))
    try:
        parts = []
        for i, batch in enumerate(batches):
            table = _as_arrow(batch, i)
            if table.num_rows:
                parts.append(spool / f"part-{i:06d}.parquet")
                pq.write_table(table, parts[-1], compression="zstd")
        tmp = spool / ".duckdb-tmp"
        tmp.mkdir()
        # an explicit list of the parts: the folder's own name may contain glob characters
        src = (f"read_parquet([{', '.join(quote_path(p) for p in parts)}], union_by_name=true)" if parts
               else _empty_synapses_sql())
        out = spool / "synapses.parquet"
        con = connect(tmp, memory_limit=memory_limit)
        try:
            sql, problems = coerce_relation(con, "synapses", src, manifest)
            if not problems:
                n_rows = write_sorted(con, sql, out, order_by=TABLES["synapses"].sort,
                                      row_group_size=SYNAPSE_SCAN_ROW_GROUP_SIZE)
                write_sorted(con, f"read_parquet({quote_path(out)})", spool / POST_COPY, order_by=POST_SORT,
                             row_group_size=SYNAPSE_SCAN_ROW_GROUP_SIZE)
                con.execute(f"CREATE TEMP VIEW _release_neurons AS SELECT id FROM read_parquet({quote_path(neurons_file)})")
                problems = table_problems(con, "synapses", f"read_parquet({quote_path(out)})", manifest,
                                          neurons_rel="_release_neurons")
        except duckdb.Error as exc:
            raise ReleaseValidationError(f"cannot be read: {exc}", table="synapses") from exc
        finally:
            con.close()
        if problems:
            raise ReleaseValidationError(problems)
        # the manifest records the checked row count (the release backend compares it on open)
        manifest = {**manifest, CHECKED_ROWS: {**dict(manifest.get(CHECKED_ROWS) or {}), "synapses": n_rows}}
        tmp_manifest = spool / "manifest.json"
        tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        os.replace(out, folder / "synapses.parquet")
        os.replace(spool / POST_COPY, folder / POST_COPY)
        os.replace(tmp_manifest, folder / "manifest.json")
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return folder / "synapses.parquet"


def write_post_copy(folder: str | os.PathLike, *, memory_limit: str | None = None) -> Path:
    """Write (or rewrite) ``synapses_by_post.parquet`` of a release from its ``synapses.parquet``.

    Releases written before the copy was part of the format stay readable
    without it (a filter on ``post`` ids then reads every row group); this
    upgrades one in place, in bounded memory (DuckDB spills its sort to a
    temporary folder inside the release).

    Returns
    -------
    pathlib.Path
        The new file.
    """
    folder = Path(folder)
    src = folder / "synapses.parquet"
    if not src.is_file():
        raise DataFormatError(f"release folder {str(folder)!r} has no synapses.parquet")
    spool = Path(tempfile.mkdtemp(prefix=".post-copy.partial-", dir=folder))
    try:
        con = connect(spool, memory_limit=memory_limit)
        try:
            write_sorted(con, f"read_parquet({quote_path(src)})", spool / POST_COPY, order_by=POST_SORT,
                         row_group_size=SYNAPSE_SCAN_ROW_GROUP_SIZE)
        finally:
            con.close()
        os.replace(spool / POST_COPY, folder / POST_COPY)
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    return folder / POST_COPY


def _empty_synapses_sql() -> str:
    cols = ", ".join(f"CAST(NULL AS {c.duck_type}) AS {quote_ident(c.name)}"
                     for c in TABLES["synapses"].columns if c.required)
    return f"(SELECT {cols} WHERE false)"


# --------------------------------------------------------------------------------------------
# validation of existing folders
# --------------------------------------------------------------------------------------------


def validate_release(folder: str | os.PathLike, *, deep: bool = False) -> ReleaseReport:
    """Check a release folder against FORMAT.md.

    The quick check (default) reads the manifest, the Parquet schemas and
    row-group statistics (null counts, minima, ``pre`` ranges of consecutive
    row groups, row-group sizes), checks the small tables (``neurons``,
    ``roi_counts``) row by row and the ROI names of ``connections``. With
    ``deep=True`` every rule is checked on every row of every table,
    including sort order, uniqueness and that every id has a neurons row.

    Returns
    -------
    ReleaseReport
        ``report.ok`` is True when no problem was found;
        ``report.raise_for_problems()`` raises
        :class:`~connectomix.errors.DataFormatError` otherwise.
    """
    folder = Path(folder)
    report = ReleaseReport(folder=folder, deep=deep)
    if not folder.is_dir():
        report.problems.append(Problem("release", f"{str(folder)!r} does not exist or is not a folder"))
        return report
    try:
        manifest = read_manifest(folder)
    except DataFormatError as exc:
        report.problems.append(Problem("manifest", str(exc)))
        return report
    report.manifest = manifest
    report.checks.append("manifest")
    con = connect()
    try:
        files = {}
        for name, spec in TABLES.items():
            path = folder / spec.file
            if not path.is_file():
                if spec.required:
                    report.problems.append(Problem(name, f"{spec.file} is required but missing"))
                continue
            files[name] = path
        neurons_rel = None
        for name, path in files.items():
            rel = f"read_parquet({quote_path(path)})"
            try:
                problems = _file_problems(con, name, path, rel, manifest, report, deep=deep,
                                          neurons_rel=neurons_rel)
            except duckdb.Error as exc:
                problems = [Problem(name, f"{path.name} cannot be read: {exc}")]
            report.problems += problems
            if name == "neurons" and not problems:
                con.execute(f"CREATE TEMP VIEW _release_neurons AS SELECT id FROM {rel}")
                neurons_rel = "_release_neurons"
        report.problems += _skeleton_problems(con, folder, neurons_rel, report)
        from .meshes import mesh_problems

        report.problems += mesh_problems(con, folder, manifest, neurons_rel, report, deep=deep)
        for table, n in sorted((manifest.get(CHECKED_ROWS) or {}).items()):
            if table in report.rows and report.rows[table] != n:
                report.problems.append(Problem(table, f"{TABLES[table].file} has {report.rows[table]:,} rows but the "
                                                      f"manifest's {CHECKED_ROWS} records {n:,}: changed after writing"))
        if manifest.get("score_name") and "synapses" not in files:
            report.checks.append("score_name")
        if (folder / POST_COPY).is_file():
            report.problems += _post_copy_problems(con, folder, report.rows.get("synapses"))
            report.checks.append(f"{POST_COPY}: rows and order")
    finally:
        con.close()
    return report


def _file_problems(con, table: str, path: Path, rel: str, manifest: Mapping[str, Any], report: ReleaseReport, *,
                   deep: bool, neurons_rel: str | None) -> list[Problem]:
    spec = TABLES[table]
    present = _columns(con, rel)
    meta = con.execute(
        f"SELECT row_group_id, path_in_schema, row_group_num_rows, stats_null_count, stats_min, stats_max "
        f"FROM parquet_metadata({quote_path(path)})"
    ).fetchall()
    groups: dict[int, int] = {}
    stats: dict[tuple[int, str], tuple[Any, Any, Any]] = {}
    for rg, col, nrows, nulls, smin, smax in meta:
        groups[rg] = nrows
        stats[(rg, col)] = (nulls, smin, smax)
    report.rows[table] = sum(groups.values())
    report.checks.append(f"{table}: schema")
    problems = []
    missing = [c.name for c in spec.columns if c.required and c.name not in present]
    if missing:
        return [Problem(table, f"{path.name} is missing required column(s) {missing}; it has {list(present)}")]
    for c in spec.columns:
        if c.name in present and present[c.name] != c.duck_type:
            problems.append(Problem(table, f"must be stored as {c.duck_type}; {path.name} has {present[c.name]}",
                                    c.name))
    if problems:
        return problems
    small = table in ("neurons", "roi_counts")
    if deep or small:
        report.checks.append(f"{table}: every row")
        problems += table_problems(con, table, rel, manifest, neurons_rel=neurons_rel)
        if deep:
            problems += _sort_problems(con, table, path)
    else:
        report.checks.append(f"{table}: row-group statistics")
        problems += _stats_problems(table, spec, groups, stats)
        if table == "connections":
            allowed = set(manifest.get("primary_rois", ())) | {NOT_PRIMARY}
            found = {r[0] for r in con.execute(f"SELECT DISTINCT roi FROM {rel}").fetchall()}
            bad = sorted(found - allowed, key=str)
            if bad:
                problems.append(Problem(table, f"unknown ROI name(s) {bad[:10]}; roi must be a primary ROI of the "
                                               f"manifest or {NOT_PRIMARY!r}", "roi"))
            report.checks.append("connections: roi names")
    if table == "synapses":
        too_big = [rg for rg, n in groups.items() if n > SYNAPSE_ROW_GROUP_SIZE]
        if too_big:
            problems.append(Problem(table, f"row groups must hold at most {SYNAPSE_ROW_GROUP_SIZE:,} rows; "
                                           f"{len(too_big)} are larger (e.g. {groups[too_big[0]]:,} rows)"))
        report.checks.append("synapses: row-group sizes")
    return problems


def _post_copy_problems(con, folder: Path, synapse_rows: int | None) -> list[Problem]:
    """``synapses_by_post.parquet`` holds as many rows as ``synapses.parquet``, in ``post`` order (statistics)."""
    meta = con.execute(f"SELECT row_group_id, row_group_num_rows, stats_min, stats_max FROM "
                       f"parquet_metadata({quote_path(folder / POST_COPY)}) WHERE path_in_schema = 'post' "
                       "ORDER BY row_group_id").fetchall()
    rows = sum(m[1] for m in meta)
    if synapse_rows is None or rows != synapse_rows:
        return [Problem("synapses", f"{POST_COPY} has {rows:,} rows but synapses.parquet has "
                                    f"{synapse_rows if synapse_rows is None else format(synapse_rows, ',')}; "
                                    "rewrite it with connectomix_release.writer.write_post_copy(folder)")]
    for a, b in zip(meta, meta[1:]):
        if a[3] is not None and b[2] is not None and int(b[2]) < int(a[3]):
            return [Problem("synapses", f"{POST_COPY} must be sorted by post: row group {b[0]} starts at "
                                        f"post={b[2]} after row group {a[0]} ended at {a[3]}", "post")]
    return []


def _stats_problems(table: str, spec: TableSpec, groups: dict[int, int],
                    stats: dict[tuple[int, str], tuple[Any, Any, Any]]) -> list[Problem]:
    """Rules checkable from Parquet statistics alone: nulls, minima, order of ``pre`` across row groups."""
    problems = []
    for c in spec.columns:
        entries = [stats.get((rg, c.name)) for rg in sorted(groups)]
        if any(e is None for e in entries):
            continue
        if not c.nullable:
            nulls = sum(e[0] or 0 for e in entries if e[0] is not None)
            if nulls:
                problems.append(Problem(table, f"must not contain missing values; {nulls:,} row(s)", c.name))
        mins = [e[1] for e in entries if e[1] is not None]
        if c.kind in ("id", "count") and mins:
            low = min(int(v) for v in mins)
            floor = 1 if (c.kind == "id" or table == "connections") else 0
            if low < floor:
                what = "ids must be positive integers" if c.kind == "id" else (
                    "weights must be > 0" if table == "connections" else "counts must be >= 0")
                problems.append(Problem(table, f"{what}; the smallest value is {low}", c.name))
    first = spec.sort[0]
    ranges = [stats.get((rg, first)) for rg in sorted(groups)]
    if all(r is not None and r[1] is not None and r[2] is not None for r in ranges):
        for i in range(1, len(ranges)):
            if int(ranges[i][1]) < int(ranges[i - 1][2]):
                problems.append(Problem(table, f"rows must be sorted by {', '.join(spec.sort)}: row group {i} starts "
                                               f"at {first}={ranges[i][1]} after row group {i - 1} ended at "
                                               f"{ranges[i - 1][2]}", first))
                break
    return problems


def _sort_problems(con, table: str, path: Path) -> list[Problem]:
    spec = TABLES[table]
    keys = spec.sort if table != "synapses" else ("pre",)
    rel = f"read_parquet({quote_path(path)}, file_row_number=true)"
    lags = ", ".join(f"lag({quote_ident(k)}) OVER w AS _prev_{i}" for i, k in enumerate(keys))
    cur = "(" + ", ".join(quote_ident(k) for k in keys) + ")"
    prev = "(" + ", ".join(f"_prev_{i}" for i in range(len(keys))) + ")"
    if len(keys) == 1:
        cur, prev = quote_ident(keys[0]), "_prev_0"
    row = con.execute(
        f"SELECT count(*), min(file_row_number) FROM (SELECT *, {lags} FROM {rel} WINDOW w AS "
        f"(ORDER BY file_row_number)) WHERE _prev_0 IS NOT NULL AND {cur} < {prev}"
    ).fetchall()[0]
    if row[0]:
        return [Problem(table, f"rows must be sorted by {', '.join(keys)}; {row[0]:,} row(s) are out of order "
                               f"(first at row {row[1]})", keys[0])]
    return []


_SWC_NAME = re.compile(r"^([0-9]+)\.swc$")


def _skeleton_problems(con, folder: Path, neurons_rel: str | None, report: ReleaseReport) -> list[Problem]:
    sk = folder / "skeletons"
    if not sk.is_dir():
        return []
    report.checks.append("skeletons: file names and ids")
    files = [p.name for p in sk.iterdir() if not p.name.startswith(".")]
    bad = sorted(f for f in files if not _SWC_NAME.match(f))
    problems = []
    if bad:
        problems.append(Problem("skeletons", f"files must be named <id>.swc; found {bad[:5]}"))
    ids = sorted(int(_SWC_NAME.match(f).group(1)) for f in files if _SWC_NAME.match(f))
    if ids and neurons_rel is not None:
        known = {r[0] for r in con.execute(
            f"SELECT id FROM {neurons_rel} WHERE id IN ({','.join(map(str, ids))})").fetchall()}
        unknown = [i for i in ids if i not in known]
        if unknown:
            problems.append(Problem("skeletons", f"skeletons of ids missing from neurons: {unknown[:10]}"))
    report.rows["skeletons"] = len(ids)
    return problems


