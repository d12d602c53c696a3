"""Convert public connectome dumps into connectomix release folders (``FORMAT.md``).

``connectomix convert <format> SRC DEST`` calls one function of
:data:`IMPORTERS`. Every importer reads its inputs with DuckDB (CSV and Parquet
natively, Arrow/Feather through a streaming ``pyarrow.dataset``), never with
pandas, so a synapse table of a hundred million rows goes from the source file
to a sorted ``synapses.parquet`` without ever being in memory whole. Work
tables live in a DuckDB database file inside the staging folder, and sorts and
aggregations spill to disk beyond ``memory_limit``. The release folder appears
only when every table passed the checks of :mod:`connectomix_release.writer`.

Errors about the inputs are :class:`SourceFormatError` s that name the file
and the column.

Formats
-------
``neuprint-csv`` (:func:`import_neuprint_csv`)
    neuPrint's compact connectome exports as written by neuprint-python's
    ``fetch_traced_adjacencies`` / ``fetch_adjacencies(export_dir=...)``:
    ``traced-neurons.csv`` (``bodyId,type,instance``),
    ``traced-total-connections.csv`` (``bodyId_pre,bodyId_post,weight``) and
    ``traced-roi-connections.csv`` (``bodyId_pre,bodyId_post,roi,weight``), as
    in hemibrain's ``exported-traced-adjacencies-v1.2`` (also without the
    ``traced-`` prefix); MANC's ``manc-traced-adjacencies-v1.0`` names the
    last two ``traced-connections.csv`` and ``traced-connections-per-roi.csv``.
    neuPrint's flat-connectome Feather dumps (male CNS:
    ``body-annotations-*.feather`` with ``bodyId,type,instance,status,...``,
    the complete ``connectome-weights-*.feather`` with
    ``body_pre,body_post,weight`` and ``syn-partners-*.feather`` with one
    row per synapse, positions in 8 nm voxels) are read too.
``flywire`` (:func:`import_flywire`)
    FlyWire release tables from Codex / Zenodo: ``connections.csv.gz``,
    ``connections_no_threshold.csv.gz`` (``pre_root_id,post_root_id,neuropil,
    syn_count,nt_type``) or ``proofread_connections_783.feather``
    (``pre_pt_root_id,post_pt_root_id,neuropil,syn_count,...``);
    ``neurons.csv.gz`` (``root_id,group,nt_type,...``),
    ``classification.csv.gz`` (``root_id,flow,super_class,class,sub_class,
    [cell_type,hemibrain_type,]hemilineage,side,nerve``),
    ``consolidated_cell_types.csv.gz`` (``root_id,primary_type,
    additional_type(s)``), ``names.csv.gz`` (``root_id,name,group``),
    ``proofread_root_ids_783.npy``; and one synapse table: Zenodo's
    ``flywire_synapses_783.feather`` (``id,pre_pt_root_id,
    post_pt_root_id,connection_score,cleft_score,gaba,ach,glut,oct,ser,da,
    pre_pt_position_x/y/z,post_pt_position_x/y/z,neuropil``), Codex's
    Princeton table ``fafb_v783_princeton_synapse_table.csv.gz``
    (``pre_x..post_z,size,pre_root_id_720575940,post_root_id_720575940,
    neuropil``) or Codex's ``synapse_coordinates.csv.gz``
    (``pre_root_id,post_root_id,x,y,z``, empty id cells repeat the value
    above).

Each file may also be ``.csv``, ``.csv.gz``, ``.parquet`` or ``.feather``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from connectomix.errors import DataFormatError, InvalidArgumentError, suggest
from connectomix.schema import NOT_PRIMARY

from .writer import ReleaseBuilder, make_manifest, quote_ident, quote_path, quote_str

__all__ = ["IMPORTERS", "SourceFormatError", "import_neuprint_csv", "import_flywire", "FLYWIRE_UNASSIGNED"]

#: Labels FlyWire uses for synapses outside every neuropil (Codex: ``UNASGD``; fafbseg's offline lookup: ``NA``).
FLYWIRE_UNASSIGNED = ("UNASGD", "NA", "")
#: FlyWire (FAFB) voxel size in nm.
FLYWIRE_VOXEL_NM = (4.0, 4.0, 40.0)
_EXTENSIONS = (".csv", ".csv.gz", ".parquet", ".feather", ".arrow")
_MAX_INT64 = 2**63 - 1
_EXAMPLES = 5
#: Bytes per block when streaming a CSV with pyarrow (:meth:`_Reader.fill_down_csv`).
_CSV_BLOCK_BYTES = 16 << 20


class SourceFormatError(InvalidArgumentError, DataFormatError):
    """A downloaded source file is missing, unreadable, or has a missing or malformed column.

    Attributes
    ----------
    file : str or None
        The offending file.
    column : str or None
        The offending column.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, column: str | None = None):
        self.file = str(file) if file is not None else None
        self.column = column
        super().__init__(message)


# --------------------------------------------------------------------------------------------
# reading source files with DuckDB
# --------------------------------------------------------------------------------------------


_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
                  "HUGEINT", "UHUGEINT"}
_FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


@dataclass
class Source:
    """One input file as a DuckDB relation."""

    path: Path
    rel: str
    types: dict[str, str]
    is_csv: bool
    label: str
    raw_types: dict[str, str] = field(default_factory=dict)
    #: Column with the row's position in the file (Parquet/Feather only), not one of the file's own columns.
    row_number: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def pick(self, target: str, aliases: Sequence[str], *, required: bool = True) -> str | None:
        """The first of ``aliases`` the file has (exact name, then case-insensitive)."""
        for alias in aliases:
            if alias in self.types:
                return alias
        lower = {c.lower(): c for c in self.types}
        for alias in aliases:
            if alias.lower() in lower:
                return lower[alias.lower()]
        if required:
            raise SourceFormatError(
                f"{self.name} ({self.label}) has no {target!r} column; expected one of {list(aliases)}, "
                f"found {list(self.types)}", file=self.path, column=target)
        return None


class _Reader:
    """Opens input files as DuckDB relations and turns columns into checked, typed SQL."""

    def __init__(self, con: duckdb.DuckDBPyConnection, work: Path):
        self.con = con
        self.work = work
        self._n = 0

    def _sql(self, sql: str, source: Source | None = None) -> list[tuple]:
        try:
            return self.con.execute(sql).fetchall()
        except duckdb.Error as exc:
            where = f"{source.name} ({source.label})" if source else "the source files"
            raise SourceFormatError(f"cannot read {where}: {exc}", file=source.path if source else None) from exc

    def open(self, path: Path, label: str, *, small: bool = False) -> Source:
        """Register ``path``; ``small`` files are type-sniffed on every row (CSV)."""
        path = Path(path)
        if not path.is_file():
            raise SourceFormatError(f"{label} file {str(path)!r} does not exist", file=path)
        lower = path.name.lower()
        self._n += 1
        view = f"_src_{self._n}"
        if lower.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
            base = f"read_csv({quote_path(path)}, header=true"
            sniff = base + (", sample_size=-1)" if small else ")")
            rel = base + ", all_varchar=true)"
            source = Source(path, view, {}, True, label)
            try:
                source.types = {r[0]: r[1] for r in self.con.execute(f"DESCRIBE SELECT * FROM {sniff}").fetchall()}
                self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {rel}")
            except duckdb.Error as exc:
                raise SourceFormatError(f"cannot read {path.name} ({label}) as CSV: {exc}", file=path) from exc
            source.raw_types = {c: "VARCHAR" for c in source.types}
            return source
        if lower.endswith(".parquet"):
            rel = f"read_parquet({quote_path(path)}, file_row_number=true)"
            try:
                self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {rel}")
            except duckdb.Error as exc:
                raise SourceFormatError(f"cannot read {path.name} ({label}) as Parquet: {exc}", file=path) from exc
            return self._typed(path, view, label)
        if lower.endswith((".feather", ".arrow", ".ipc")):
            staged = self._arrow_to_parquet(path, label)
            rel = f"read_parquet({quote_path(staged)}, file_row_number=true)"
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM {rel}")
            return self._typed(path, view, label)
        raise SourceFormatError(
            f"{path.name} ({label}): unsupported file type; use one of {list(_EXTENSIONS)}", file=path)

    def _typed(self, path: Path, view: str, label: str) -> Source:
        """Source for a Parquet view read with ``file_row_number=true`` (the last column)."""
        types = {r[0]: r[1] for r in self.con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()}
        row_number = "file_row_number" if list(types)[-1:] == ["file_row_number"] else None
        if row_number:
            del types[row_number]
        return Source(path, view, types, False, label, dict(types), row_number)

    def _arrow_to_parquet(self, path: Path, label: str) -> Path:
        """Copy an Arrow IPC (Feather v2) file to Parquet one record batch at a time.

        DuckDB then reads it natively: columnar passes are cheap, and no Arrow
        scanner holds read-ahead batches outside DuckDB's memory limit.
        """
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        self._n += 1
        out = self.work / f"source-{self._n}.parquet"
        try:
            with pa.OSFile(str(path)) as raw:
                try:
                    reader = ipc.open_file(raw)
                    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
                except pa.ArrowInvalid:
                    raw.seek(0)
                    reader = ipc.open_stream(raw)
                    batches = iter(reader)
                with pq.ParquetWriter(out, reader.schema, compression="lz4") as writer:
                    held, rows = [], 0
                    for batch in batches:
                        held.append(batch)
                        rows += batch.num_rows
                        if rows >= 1_000_000:
                            writer.write_table(pa.Table.from_batches(held, reader.schema))
                            held, rows = [], 0
                    if held:
                        writer.write_table(pa.Table.from_batches(held, reader.schema))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise SourceFormatError(
                f"cannot read {path.name} ({label}) as Arrow/Feather version 2: {exc}", file=path) from exc
        return out

    def stage(self, source: Source, columns: Iterable[str]) -> Source:
        """Copy the needed columns of a CSV into Parquet once, so later passes are columnar."""
        if not source.is_csv:
            return source
        self._n += 1
        out = self.work / f"source-{self._n}.parquet"
        cols = ", ".join(quote_ident(c) for c in dict.fromkeys(columns))
        self._sql(f"COPY (SELECT {cols} FROM {source.rel}) TO {quote_str(out)} (FORMAT parquet, COMPRESSION zstd)",
                  source)
        view = f"_src_{self._n}"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({quote_path(out)})")
        return Source(source.path, view, source.types, True, source.label, source.raw_types, source.row_number)

    def stage_numbered(self, source: Source, columns: Iterable[str]) -> Source:
        """:meth:`stage` a CSV keeping its row order, with the data row number (from 0) as ``row_number``.

        DuckDB keeps the scan order when copying a scan without ORDER BY
        (``preserve_insertion_order``, set here explicitly), so row ``n`` of the
        Parquet copy is data row ``n`` of the file.
        """
        self._n += 1
        out = self.work / f"source-{self._n}.parquet"
        cols = ", ".join(quote_ident(c) for c in dict.fromkeys(columns))
        self.con.execute("SET preserve_insertion_order = true")
        self._sql(f"COPY (SELECT {cols} FROM {source.rel}) TO {quote_str(out)} (FORMAT parquet, COMPRESSION zstd)",
                  source)
        view = f"_src_{self._n}"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({quote_path(out)}, "
                         "file_row_number=true)")
        return Source(source.path, view, source.types, True, source.label, source.raw_types, "file_row_number")

    def fill_down_csv(self, path: Path, label: str, id_columns: Sequence[str],
                      float_columns: Sequence[str] = ()) -> Source:
        """Copy a CSV whose empty ``id_columns`` cells repeat the last value above them to numbered Parquet.

        FlyWire Codex's ``synapse_coordinates.csv.gz`` is written this way:
        "empty pre/post id columns should be inferred by looking up in the
        table at the last non-empty value respectively" (murthylab/codex,
        codex/configuration.py, DOWNLOADABLE_ARCHIVE_FILES, 630 release). The
        file is streamed one block at a time (pyarrow's CSV reader, gzip
        detected from the name), so it is never in memory whole.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        self._n += 1
        out = self.work / f"source-{self._n}.parquet"
        types = {c: pa.int64() for c in id_columns} | {c: pa.float64() for c in float_columns}
        last: dict[str, int | None] = {c: None for c in id_columns}
        done = 0
        writer = None
        try:
            with pa.input_stream(str(path)) as raw:
                reader = pacsv.open_csv(raw, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                                        convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""]))
                missing = [c for c in types if c not in reader.schema.names]
                if missing:
                    raise SourceFormatError(f"{path.name} ({label}) has no {missing[0]!r} column; found "
                                            f"{reader.schema.names}", file=path, column=missing[0])
                for batch in reader:
                    columns = {}
                    for name in batch.schema.names:
                        col = batch.column(name)
                        if name in last:
                            head = pa.array([last[name]], pa.int64())
                            col = pc.fill_null_forward(pa.concat_arrays([head, col])).slice(1)
                            if col.null_count:
                                row = done + pc.index(pc.is_null(col), True).as_py() + 1
                                raise SourceFormatError(
                                    f"{path.name} ({label}), column {name!r}: data row {row:,} is empty and no row "
                                    "above it has a value to repeat", file=path, column=name)
                            if len(col):
                                last[name] = col[-1].as_py()
                        columns[name] = col
                    table = pa.table(columns)
                    if writer is None:
                        writer = pq.ParquetWriter(out, table.schema, compression="zstd")
                    writer.write_table(table)
                    done += batch.num_rows
        except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
            raise SourceFormatError(f"cannot read {path.name} ({label}): {exc}", file=path) from exc
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise SourceFormatError(f"{path.name} ({label}) has no rows", file=path)
        view = f"_src_{self._n}"
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({quote_path(out)}, "
                         "file_row_number=true)")
        return self._typed(path, view, label)

    # -- typed columns ------------------------------------------------------------------------

    def integer(self, source: Source, column: str, *, what: str = "ids", allow_null: bool = False) -> str:
        """SQL for an integer column (ids or counts), after checking every value."""
        q = quote_ident(column)
        raw = source.raw_types.get(column, source.types.get(column))
        where = f"{source.name} ({source.label}), column {column!r}"
        if raw in _INTEGER_TYPES:
            expr = f"CAST({q} AS BIGINT)"
            checks = [(f"{q} < 0", "negative values")]
            if raw in ("UBIGINT", "HUGEINT", "UHUGEINT"):
                checks.append((f"{q} > {_MAX_INT64}", "values beyond the int64 range"))
        elif raw == "VARCHAR":
            expr = f"CAST(trim({q}) AS BIGINT)"
            checks = [(f"{q} IS NOT NULL AND NOT regexp_full_match(trim({q}), '[0-9]{{1,19}}')",
                       "values that are not non-negative integers"),
                      (f"length(trim({q})) = 19 AND trim({q}) > '{_MAX_INT64}'", "values beyond the int64 range")]
        elif raw in _FLOAT_TYPES or (raw or "").startswith("DECIMAL"):
            hint = (" (floating-point ids lose precision above 2**53; FlyWire root ids are ~7.2e17)"
                    if what == "ids" else "")
            raise SourceFormatError(f"{where} must hold integer {what}; it has type {raw}{hint}",
                                    file=source.path, column=column)
        else:
            raise SourceFormatError(f"{where} must hold integer {what}; it has type {raw}",
                                    file=source.path, column=column)
        if not allow_null:
            checks.append((f"{q} IS NULL", "missing values"))
        aggs = ", ".join(f"count(*) FILTER (WHERE {cond})" for cond, _ in checks)
        counts = self._sql(f"SELECT {aggs} FROM {source.rel}", source)[0]
        for (cond, message), n in zip(checks, counts):
            if n:
                ex = self._sql(f"SELECT {q} FROM {source.rel} WHERE {cond} LIMIT {_EXAMPLES}", source)
                shown = ", ".join(repr(r[0]) for r in ex)
                raise SourceFormatError(f"{where} must hold integer {what}; {n:,} row(s) have {message}, e.g. {shown}",
                                        file=source.path, column=column)
        return expr

    def number(self, source: Source, column: str) -> str:
        """SQL for a float column (coordinates, scores), after checking every value parses."""
        q = quote_ident(column)
        raw = source.raw_types.get(column, source.types.get(column))
        if raw in _INTEGER_TYPES | _FLOAT_TYPES or (raw or "").startswith("DECIMAL"):
            return f"CAST({q} AS DOUBLE)"
        if raw == "VARCHAR":
            bad = self._sql(f"SELECT {q} FROM {source.rel} WHERE {q} IS NOT NULL AND "
                            f"TRY_CAST(trim({q}) AS DOUBLE) IS NULL LIMIT {_EXAMPLES}", source)
            if bad:
                raise SourceFormatError(
                    f"{source.name} ({source.label}), column {column!r} must hold numbers; found "
                    f"{', '.join(repr(r[0]) for r in bad)}", file=source.path, column=column)
            return f"CAST(trim({q}) AS DOUBLE)"
        raise SourceFormatError(f"{source.name} ({source.label}), column {column!r} must hold numbers; "
                                f"it has type {raw}", file=source.path, column=column)

    def extra(self, source: Source, column: str) -> str:
        """SQL for a pass-through column: the sniffed type for CSVs, as stored otherwise."""
        q = quote_ident(column)
        if source.is_csv:
            sniffed = source.types[column]
            return q if sniffed == "VARCHAR" else f"CAST({q} AS {sniffed})"
        return q

    def unique(self, source: Source, column: str, expr: str) -> None:
        dupes = self._sql(f"SELECT {expr} AS k, count(*) FROM {source.rel} GROUP BY k HAVING count(*) > 1 "
                          f"LIMIT {_EXAMPLES}", source)
        if dupes:
            raise SourceFormatError(
                f"{source.name} ({source.label}), column {column!r} must list each id once; repeated: "
                f"{', '.join(str(d[0]) for d in dupes)}", file=source.path, column=column)


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _source_dir(src: str | Path) -> Path:
    src = Path(src).expanduser()
    lower = src.name.lower()
    if src.is_file() and lower.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
        raise InvalidArgumentError(
            f"{str(src)!r} is an archive; extract it first (e.g. 'tar xzf {src.name}') and give the folder")
    if not src.is_dir():
        raise InvalidArgumentError(f"source {str(src)!r} is not a folder of downloaded release files")
    return src


def _find(src: Path, stems: Sequence[str], *, patterns: Sequence[str] = ()) -> Path | None:
    """The first file ``<stem><ext>`` (or glob ``pattern``) in ``src``."""
    for stem in stems:
        for ext in _EXTENSIONS:
            if (src / f"{stem}{ext}").is_file():
                return src / f"{stem}{ext}"
    for pattern in patterns:
        hits = sorted(p for p in src.glob(pattern) if p.is_file() and p.name.lower().endswith(_EXTENSIONS))
        if hits:
            return hits[0]
    return None


def _given(path: str | Path | None, src: Path) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser()
    return path if path.is_absolute() or path.exists() else src / path


def _listing(src: Path) -> str:
    """The files of ``src`` for error messages (at most 30 names)."""
    names = sorted(p.name for p in src.iterdir() if not p.name.startswith("."))
    return (", ".join(names[:30]) + (f", ... ({len(names)} files)" if len(names) > 30 else "")) or "no files"


def _given_file(path: str | Path | None, src: Path, label: str, option: str) -> Path | None:
    """An explicitly named input file (relative to ``src`` or absolute); it must exist."""
    given = _given(path, src)
    if given is not None and not given.is_file():
        raise SourceFormatError(f"the {label} file {str(path)!r} (option {option}) does not exist in {str(src)!r} "
                                f"or as given; the folder has: {_listing(src)}", file=given)
    return given


def _missing_file(src: Path, label: str, expected: Sequence[str], option: str) -> SourceFormatError:
    return SourceFormatError(
        f"{str(src)!r} has no {label} file; expected one of {', '.join(expected)} (also .csv.gz/.parquet/.feather), "
        f"or name it with {option} FILE; the folder has: {_listing(src)}", file=src)


def _primary_list(primary_rois: Any) -> list[str] | None:
    """``primary_rois`` as given: a list, a file with one ROI per line, or a comma-separated string."""
    if primary_rois is None:
        return None
    if isinstance(primary_rois, Path) or (isinstance(primary_rois, str) and Path(primary_rois).is_file()):
        path = Path(primary_rois)
        if not path.is_file():
            raise InvalidArgumentError(f"primary_rois file {str(path)!r} does not exist")
        items = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        items = [i for i in items if i and not i.startswith("#")]
    elif isinstance(primary_rois, str):
        items = [r.strip() for r in primary_rois.split(",") if r.strip()]
    else:
        items = list(primary_rois)
    if not items or not all(isinstance(r, str) and r for r in items):
        raise InvalidArgumentError(f"primary_rois must be a non-empty list of ROI names; got {primary_rois!r}")
    if NOT_PRIMARY in items:
        raise InvalidArgumentError(f"primary_rois must not contain {NOT_PRIMARY!r}; it is added automatically")
    return sorted(set(items))


_VERSION_PATTERNS = (re.compile(r"(?<![A-Za-z0-9])(v\d+(?:\.\d+)*)(?![0-9])"),
                     re.compile(r"(?:^|[_-])(\d{3,})(?=[._-]|$)"))


def _guess_version(names: Iterable[str]) -> str | None:
    names = list(names)
    for pattern in _VERSION_PATTERNS:
        for n in names:
            m = pattern.search(n)
            if m:
                return m.group(1)
    return None


def _name_version(src: Path, files: Iterable[Path | None], name: str | None, version: str | None,
                  default_name: str) -> tuple[str, str]:
    version = version or _guess_version([src.name] + [f.name for f in files if f is not None])
    if not version:
        raise InvalidArgumentError(
            f"cannot tell the release version from {src.name!r} or its file names; pass version= "
            "(CLI: --release-version), e.g. 'v1.2'")
    return name or src.name or default_name, str(version)


def _roi_case(column_sql: str, unassigned: Sequence[str], primary: Sequence[str] | None, outside: str) -> str:
    """SQL mapping raw ROI labels to a primary ROI or ``outside`` (NULL or 'NotPrimary')."""
    label = f"trim({column_sql})"
    unassigned_sql = ", ".join(quote_str(u) for u in unassigned) or "NULL"
    parts = [f"WHEN {label} IS NULL OR {label} IN ({unassigned_sql}) THEN {outside}"]
    if primary is not None:
        parts.append(f"WHEN {label} NOT IN ({', '.join(quote_str(r) for r in primary) or 'NULL'}) THEN {outside}")
    return f"CASE {' '.join(parts)} ELSE {label} END"


def _count_union(rel: str, weight: str) -> str:
    """Per (id, roi) outgoing and incoming totals of a pre/post/roi relation."""
    return (f"(SELECT id, roi, CAST(sum(pre) AS BIGINT) AS pre, CAST(sum(post) AS BIGINT) AS post FROM ("
            f"SELECT pre AS id, roi, {weight} AS pre, 0 AS post FROM {rel} UNION ALL "
            f"SELECT post AS id, roi, 0 AS pre, {weight} AS post FROM {rel}) GROUP BY id, roi)")


def _neurons_sql(listed: str, listed_columns: Sequence[str], totals: str, ids: str, status_default: str | None,
                 *, post_from_totals: bool = False, conn: str = "conn") -> str:
    """Listed bodies (``is_neuron``) plus mere segments for every other id, with the count columns.

    ``pre``/``post`` are synaptic *sites* (FORMAT.md): taken from the neurons file when it has them, else
    ``NULL`` -- summed connections are not site counts -- except ``post`` with ``post_from_totals``, when
    ``totals`` count one PSD per synapse row. ``upstream``/``downstream`` (connections) come from the neurons
    file when it has them, else they are the summed weights of ``conn`` (the release's connections).
    """
    counted = ("id", "type", "instance", "status", "pre", "post", "upstream", "downstream", "is_neuron")
    extras = [c for c in listed_columns if c not in counted]

    def col(c: str, cast: str) -> str:
        return f"l.{quote_ident(c)}" if c in listed_columns else f"CAST(NULL AS {cast})"

    status = col("status", "VARCHAR")
    if status_default is not None and "status" not in listed_columns:
        status = f"CASE WHEN l.id IS NOT NULL THEN {quote_str(status_default)} END"
    # totals from the neurons file when it has them (true synapse counts)
    pre = "l.pre" if "pre" in listed_columns else "NULL"
    post = ("coalesce(l.post, t.post, 0)" if "post" in listed_columns else
            "coalesce(t.post, 0)" if post_from_totals else "NULL")
    up = "coalesce(l.upstream, c_in.w, 0)" if "upstream" in listed_columns else "coalesce(c_in.w, 0)"
    down = "coalesce(l.downstream, c_out.w, 0)" if "downstream" in listed_columns else "coalesce(c_out.w, 0)"
    extra_sql = "".join(f", l.{quote_ident(c)}" for c in extras)
    return (f"(SELECT a.id, {col('type', 'VARCHAR')} AS type, {col('instance', 'VARCHAR')} AS instance, "
            f"{status} AS status, CAST({pre} AS BIGINT) AS pre, CAST({post} AS BIGINT) AS post, "
            f"CAST({up} AS BIGINT) AS upstream, CAST({down} AS BIGINT) AS downstream, "
            f"l.id IS NOT NULL AS is_neuron{extra_sql} "
            f"FROM (SELECT id FROM {listed} UNION SELECT id FROM {ids}) AS a "
            f"LEFT JOIN {listed} AS l ON l.id = a.id "
            f"LEFT JOIN (SELECT id, sum(pre) AS pre, sum(post) AS post FROM {totals} GROUP BY id) AS t ON t.id = a.id "
            f"LEFT JOIN (SELECT post AS id, sum(weight) AS w FROM {conn} GROUP BY post) AS c_in ON c_in.id = a.id "
            f"LEFT JOIN (SELECT pre AS id, sum(weight) AS w FROM {conn} GROUP BY pre) AS c_out ON c_out.id = a.id)")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchall()[0][0]


# --------------------------------------------------------------------------------------------
# neuPrint compact exports
# --------------------------------------------------------------------------------------------

# Default file names, first match wins. neuprint-python writes neurons.csv, total-connections.csv and
# roi-connections.csv (connectome-neuprint/neuprint-python, neuprint/queries/connectivity.py,
# fetch_adjacencies(export_dir=...), v0.4.10 to 0.6.1). The public downloads rename them:
# hemibrain v1.2 (exported-traced-adjacencies-v1.2.tar.gz, link in neuprint-python docs/source/faq.rst):
# traced-neurons.csv, traced-total-connections.csv, traced-roi-connections.csv (file names as read by many
# public analysis scripts; unverified against the tarball itself). MANC v1.0
# (gs://flyem-manc-exports/v1.0/manc-traced-adjacencies-v1.0/, README there: made with neuprint-python 0.4.25
# fetch_traced_adjacencies): traced-neurons.csv (bodyId,type,instance), traced-connections.csv
# (bodyId_pre,bodyId_post,weight), traced-connections-per-roi.csv (bodyId_pre,bodyId_post,roi,weight; only
# primary ROIs plus "NotPrimary") and traced-connections2.csv, an identical copy that is ignored (bucket listing
# and README as quoted by public dataset notes; not fetched by us).
_NP_NEURONS = ("traced-neurons", "neurons")
_NP_TOTALS = ("traced-total-connections", "total-connections", "traced-connections")
_NP_ROIS = ("traced-roi-connections", "roi-connections", "traced-connections-per-roi")
# neuPrint flat-connectome Feather files (male CNS; janelia-flyem/male-cns docs/download.md, "Download raw data",
# gs://flyem-male-cns/v0.9/connectome-data/flat-connectome/): body-annotations-<tag>.feather,
# connectome-weights-<tag>.feather ("the full connection graph": body_pre, body_post, weight) and
# syn-partners-<tag>.feather (x_pre, y_pre, z_pre, body_pre, conf_pre, x_post, y_post, z_post, body_post,
# conf_post, primary_post; positions "in voxel units, i.e. 8nm"). The export code writes restricted variants
# beside them, <file>-<tag>-primary-only.feather (janelia-flyem/flyem-snapshot,
# flyem_snapshot/outputs/flat_connectome.py, export_flat_connectome); v1.0 ships -traced-only and
# -significant-only weights (bucket listing as quoted by public dataset notes; unverified by us).
_NP_FLAT_WEIGHTS = "connectome-weights"
_NP_FLAT_SYNAPSES = "syn-partners"
# body-neurotransmitters-<tag>.feather: "Aggregate neurotransmitter predictions for each neuron" (male-cns
# docs/download.md). Its columns (body, predicted_nt, predicted_nt_confidence, celltype_predicted_nt,
# consensus_nt, ...) are unverified: seen only in public notes on the v1.0 file.
_NP_FLAT_NT = "body-neurotransmitters"
_RESTRICTED_VARIANT = re.compile(r"-(traced|primary|significant)-only(?=[.-])", re.IGNORECASE)
#: Voxel size of the neuPrint flat exports' synapse positions (male CNS and MANC: 8 nm isotropic;
#: janelia-flyem/male-cns docs/download.md "8nm isotropic resolution", "voxel units, i.e. 8nm").
NEUPRINT_FLAT_VOXEL_NM = (8.0, 8.0, 8.0)
#: ROI labels of syn-partners meaning "outside every primary ROI": flyem-snapshot labels such synapses
#: "<unspecified>" (flyem_snapshot/outputs/flat_connectome.py, restrict-connectivity-to-roiset); "<unassigned>"
#: is unverified (seen in public notes on MANC).
NEUPRINT_UNASSIGNED = ("<unspecified>", "<unassigned>", "")
_NP_SYN_COLUMNS = {
    "pre": ("body_pre", "bodyId_pre"), "post": ("body_post", "bodyId_post"),
    **{f"{s}_{a}": (f"{a}_{s}",) for s in ("pre", "post") for a in "xyz"},
    "pre_score": ("conf_pre",), "post_score": ("conf_post",),
    # MANC v1.2 manc-v1.2-synapse-partners-minconf-0.0.feather names it roi_post (public notes; unverified)
    "roi": ("primary_post", "roi_post"),
}
_NP_BODY = ("bodyId", "bodyid", "body_id", "body")
_NP_PRE = ("bodyId_pre", "body_pre", "bodyid_pre")
_NP_POST = ("bodyId_post", "body_post", "bodyid_post")


#: ``manifest.score`` of neuPrint exports with synapses: the confidence, but no recommended threshold -- the
#: dataset's :Meta.postHighAccuracyThreshold is not in the export (and the male CNS value is unverified in the
#: catalogue, connectomix/catalogue/male-cns.toml), so min_score="recommended" is refused, never guessed.
NEUPRINT_SCORE = {
    "column": "confidence",
    "scale": "0.0-1.0 per synapse site (T-bar and PSD separately); score = the smaller of the two",
    "recommended": None,
    "op": ">",
    "source": ("connectome-neuprint/neuprint-python neuprint/queries/synapsecriteria.py: confidence > "
               ":Meta.postHighAccuracyThreshold; the export carries no :Meta, so no threshold is recorded"),
}


def import_neuprint_csv(src: str | Path, dest: str | Path, *, name: str | None = None, version: str | None = None,
                        overwrite: bool = False, primary_rois: Any = None, neurons: str | Path | None = None,
                        connections: str | Path | None = None, roi_connections: str | Path | None = None,
                        synapses: str | Path | None = None, neurotransmitters: str | Path | None = None,
                        voxel_size_nm: Sequence[float] | None = None, description: str | None = None,
                        source: str | None = None, license: str = "", citation: str = "",
                        synthetic: Mapping[str, Any] | None = None, memory_limit: str | None = "1GB",
                        threads: int | None = None) -> Path:
    """Convert a neuPrint compact connectome export into a release folder.

    Parameters
    ----------
    src
        Folder with the extracted export, e.g. ``exported-traced-adjacencies-v1.2/``.
    dest
        Release folder to create.
    name, version
        Manifest name (default: the source folder's name) and version
        (default: ``v1.2``-like text in the folder or file names, else required).
    overwrite
        Replace an existing release folder at ``dest``.
    primary_rois
        The dataset's non-overlapping ROIs (neuPrint ``primaryRois``; neuprint-
        python ``fetch_primary_rois()``): a list, a file with one ROI per
        line, or a comma-separated string. Without it, the ROIs of the
        per-ROI file are used when that is safe: when no pair's per-ROI
        weights add up to more than its total (nested ROIs such as ``SNP(R)``
        and ``SLP(R)`` would); otherwise a :class:`SourceFormatError` asks for
        ``primary_rois``. Per pair, weight outside the primary ROIs becomes a
        ``"NotPrimary"`` row (total minus the sum over primary ROIs).
    neurons, connections, roi_connections, synapses
        Explicit file names (relative to ``src``) instead of the defaults:
        neurons ``[traced-]neurons`` or ``body-annotations-*``; total
        connections ``[traced-]total-connections``, ``traced-connections``
        (MANC) or the complete ``connectome-weights-*``; per-ROI connections
        ``[traced-]roi-connections`` or ``traced-connections-per-roi``
        (MANC); synapses the complete ``syn-partners-*``. The per-ROI file
        is optional: without it (and without synapses) every connection is
        ``"NotPrimary"``. Restricted variants of the flat files
        (``*-traced-only``, ``*-primary-only``, ``*-significant-only``) are
        never picked on their own: name one explicitly to convert it.
    neurotransmitters
        Per-body transmitter predictions (default ``body-neurotransmitters-*``,
        male CNS): their columns join the neurons file's bodies, and
        ``predicted_nt`` is copied to the core column ``nt``.
    voxel_size_nm
        Voxel size of the synapse positions, recorded in the manifest;
        ``syn-partners`` positions are multiplied by it. Default with a
        synapse file: 8 nm isotropic (male CNS, MANC), else none.
    description, source, license, citation
        Manifest text; sensible provenance is filled in when omitted.
    synthetic
        Manifest ``synthetic`` entry, for converting invented test data
        (``{table: description}``); real downloads leave it empty.
    memory_limit, threads
        DuckDB limits; beyond ``memory_limit`` work spills to disk.

    Returns
    -------
    Path
        The release folder.

    Notes
    -----
    The exports carry no synapse totals per body, so unless the neurons file
    has ``pre``/``post`` columns, ``neurons.pre``/``post`` and
    ``roi_counts`` are the summed weights of each body's outgoing/incoming
    connections among the exported bodies (recorded in ``manifest.notes``).
    Bodies listed in the neurons file are neurons (``is_neuron``); partners
    only seen in connections become segments. Neurons of a ``traced-neurons``
    file without a ``status`` column get status ``"Traced"``:
    ``fetch_traced_adjacencies`` exports only ``Traced``, uncropped neurons.

    With a synapse file (``syn-partners-*``), ``synapses.parquet`` holds every
    synapse (positions in nm, ``pre_score``/``post_score`` from
    ``conf_pre``/``conf_post``, ``score`` their minimum as on neuPrint,
    ``roi`` from ``primary_post``), ``connections`` and ``roi_counts`` are
    counted from it, and the weights file must agree with it pair by pair
    (the export derives one from the other).

    Examples
    --------
    >>> import_neuprint_csv("exported-traced-adjacencies-v1.2", "hemibrain-v1.2")  # doctest: +SKIP
    PosixPath('hemibrain-v1.2')
    """
    src = _source_dir(src)
    f_neurons = (_given_file(neurons, src, "neurons", "--neurons")
                 or _find(src, _NP_NEURONS, patterns=("body-annotations*",)))
    f_totals = (_given_file(connections, src, "total connections", "--connections") or _find(src, _NP_TOTALS)
                or _flat_file(src, _NP_FLAT_WEIGHTS, "weights", "--connections"))
    f_rois = _given_file(roi_connections, src, "ROI connections", "--roi-connections") or _find(src, _NP_ROIS)
    f_syn = (_given_file(synapses, src, "synapses", "--synapses")
             or _flat_file(src, _NP_FLAT_SYNAPSES, "synapse", "--synapses"))
    f_nt = (_given_file(neurotransmitters, src, "neurotransmitters", "--neurotransmitters")
            or _flat_file(src, _NP_FLAT_NT, "neurotransmitter", "--neurotransmitters"))
    if f_neurons is None:
        raise _missing_file(src, "neurons", [f"{s}.csv" for s in _NP_NEURONS] + ["body-annotations-*.feather"],
                            "--neurons")
    if f_totals is None:
        raise _missing_file(src, "total connections", [f"{s}.csv" for s in _NP_TOTALS]
                            + [f"{_NP_FLAT_WEIGHTS}-*.feather"], "--connections")
    primary_given = _primary_list(primary_rois)
    name, version = _name_version(src, [f_neurons, f_totals, f_rois, f_syn], name, version, "neuprint-export")
    if f_syn is not None and voxel_size_nm is None:
        voxel_size_nm = NEUPRINT_FLAT_VOXEL_NM
    notes: list[str] = []
    with ReleaseBuilder(dest, overwrite=overwrite, memory_limit=memory_limit, threads=threads) as rb:
        con, rd = rb.con, _Reader(rb.con, rb.stage / ".duckdb-tmp")

        # neurons listed in the export
        sn = rd.open(f_neurons, "neurons", small=True)
        body = sn.pick("bodyId", _NP_BODY)
        body_sql = rd.integer(sn, body)
        rd.unique(sn, body, body_sql)
        listed_cols = ["id"]
        select = [f"{body_sql} AS id"]
        for c in sn.types:
            if c == body or c in ("is_neuron",):
                continue
            if c in ("pre", "post"):
                select.append(f"{rd.integer(sn, c, what='counts', allow_null=True)} AS {c}")
            elif c in ("type", "instance", "status"):
                select.append(f"CAST({quote_ident(c)} AS VARCHAR) AS {c}")
            else:
                select.append(f"{rd.extra(sn, c)} AS {quote_ident(c)}")
            listed_cols.append(c)
        con.execute(f"CREATE TABLE listed AS SELECT {', '.join(select)} FROM {sn.rel} WHERE {body_sql} <> 0")
        if f_nt is not None:
            listed_cols += _neuprint_transmitters(rd, f_nt, listed_cols, notes)
        status_default = "Traced" if f_neurons.name.lower().startswith("traced-") else None
        if status_default and "status" not in listed_cols:
            notes.append(f"status 'Traced' for the bodies of {f_neurons.name}: neuprint-python's "
                         "fetch_traced_adjacencies exports only Traced, uncropped neurons")

        # total weights per pair
        st = rd.open(f_totals, "total connections")
        t_pre, t_post = st.pick("bodyId_pre", _NP_PRE), st.pick("bodyId_post", _NP_POST)
        t_w = st.pick("weight", ("weight",))
        st = rd.stage(st, [t_pre, t_post, t_w])
        pre_sql, post_sql = rd.integer(st, t_pre), rd.integer(st, t_post)
        w_sql = rd.integer(st, t_w, what="weights")
        con.execute(f"CREATE TABLE totals AS SELECT {pre_sql} AS pre, {post_sql} AS post, {w_sql} AS weight "
                    f"FROM {st.rel}")
        dupes = con.execute("SELECT pre, post FROM totals GROUP BY ALL HAVING count(*) > 1 LIMIT 5").fetchall()
        if dupes:
            raise SourceFormatError(f"{f_totals.name} lists pair(s) {dupes} more than once; a total-connections "
                                    "file has one row per (bodyId_pre, bodyId_post)", file=f_totals)
        dropped = _scalar(con, "SELECT count(*) FROM totals WHERE pre = 0 OR post = 0")
        if dropped:
            notes.append(f"{dropped:,} pair(s) with body 0 (background) in {f_totals.name} were left out")
        con.execute("DELETE FROM totals WHERE pre = 0 OR post = 0 OR weight = 0")

        # per-ROI weights -> primary ROIs + NotPrimary
        all_rois: list[str] = []
        if f_syn is not None:
            all_rois, primary = _neuprint_synapses(rb, rd, f_syn, f_totals, voxel_size_nm, primary_given, notes,
                                                   dict(name=name, version=version, source=source or "",
                                                        license=license, citation=citation,
                                                        synthetic=dict(synthetic or {})))
            if f_rois is not None:
                notes.append(f"{f_rois.name} was not used: per-ROI connections are counted from {f_syn.name}")
        elif f_rois is not None:
            sr = rd.open(f_rois, "ROI connections")
            r_pre, r_post = sr.pick("bodyId_pre", _NP_PRE), sr.pick("bodyId_post", _NP_POST)
            r_roi, r_w = sr.pick("roi", ("roi",)), sr.pick("weight", ("weight",))
            sr = rd.stage(sr, [r_pre, r_post, r_roi, r_w])
            con.execute(
                f"CREATE TABLE roi_rows AS SELECT {rd.integer(sr, r_pre)} AS pre, {rd.integer(sr, r_post)} AS post, "
                f"CAST({quote_ident(r_roi)} AS VARCHAR) AS roi, {rd.integer(sr, r_w, what='weights')} AS weight "
                f"FROM {sr.rel}")
            nulls = _scalar(con, "SELECT count(*) FROM roi_rows WHERE roi IS NULL")
            if nulls:
                raise SourceFormatError(f"{f_rois.name}, column {r_roi!r} has {nulls:,} empty ROI name(s)",
                                        file=f_rois, column=r_roi)
            con.execute(f"DELETE FROM roi_rows WHERE pre = 0 OR post = 0 OR weight = 0 OR roi = {quote_str(NOT_PRIMARY)}")
            dupes = con.execute("SELECT pre, post, roi FROM roi_rows GROUP BY ALL HAVING count(*) > 1 LIMIT 5").fetchall()
            if dupes:
                raise SourceFormatError(f"{f_rois.name} lists (pre, post, roi) {dupes} more than once",
                                        file=f_rois, column=r_roi)
            all_rois = sorted(r[0] for r in con.execute("SELECT DISTINCT roi FROM roi_rows").fetchall())
            primary = _choose_primary(con, primary_given, all_rois, f_rois, f_totals)
            in_primary = f"roi IN ({', '.join(quote_str(r) for r in primary) or 'NULL'})"
            con.execute(
                f"CREATE TABLE conn AS "
                f"SELECT pre, post, roi, weight FROM roi_rows WHERE {in_primary} UNION ALL "
                f"SELECT t.pre, t.post, {quote_str(NOT_PRIMARY)} AS roi, t.weight - coalesce(s.inside, 0) AS weight "
                f"FROM totals AS t LEFT JOIN (SELECT pre, post, sum(weight) AS inside FROM roi_rows "
                f"WHERE {in_primary} GROUP BY ALL) AS s USING (pre, post) WHERE t.weight > coalesce(s.inside, 0)")
            ignored = sorted(set(all_rois) - set(primary))
            if ignored:
                notes.append(f"{len(ignored)} non-primary ROI(s) of {f_rois.name} were folded into "
                             f"{NOT_PRIMARY!r}: {ignored[:20]}{' ...' if len(ignored) > 20 else ''}")
        else:
            primary = primary_given or []
            con.execute(f"CREATE TABLE conn AS SELECT pre, post, {quote_str(NOT_PRIMARY)} AS roi, weight FROM totals")
            notes.append(f"no per-ROI file: every connection is {NOT_PRIMARY!r}")

        counts = _count_union("conn", "weight")
        con.execute(f"CREATE TABLE counts AS SELECT * FROM {counts}")
        con.execute("CREATE TABLE ids AS SELECT pre AS id FROM totals UNION SELECT post FROM totals")
        has_totals = "pre" in listed_cols and "post" in listed_cols
        if f_syn is not None:
            notes.append(("neurons.pre/post come from the neurons file; " if has_totals else
                          f"neurons.post counts the rows of {f_syn.name} per body (one PSD each); neurons.pre is "
                          "null (rows are connections, not T-bars); ")
                         + "roi_counts count the rows per ROI (pre: connections made)")
        else:
            notes.append(
                ("neurons.pre/post come from the neurons file; " if has_totals else
                 "neurons.pre/post are null (the export has no per-body synapse totals, and summed connections "
                 "are not site counts); ")
                + "roi_counts are the summed weights of each body's outgoing/incoming connections per ROI")
        notes.append("neurons.upstream/downstream " + (
            "come from the neurons file" if {"upstream", "downstream"} <= set(listed_cols) else
            "are the summed weights of each body's incoming/outgoing connections in this release (among the "
            "exported bodies only, for traced-only exports)"))
        rb.set_manifest(make_manifest(
            name=name, version=version,
            description=description or (
                f"neuPrint connectome export {src.name} converted by connectomix ({f_neurons.name}, {f_totals.name}"
                f"{', ' + f_rois.name if f_rois and not f_syn else ''}{', ' + f_syn.name if f_syn else ''})."),
            source=source or f"neuPrint export {src.name}", license=license, citation=citation,
            voxel_size_nm=voxel_size_nm, rois=sorted(set(all_rois) | set(primary)), primary_rois=primary,
            score_name="confidence" if f_syn else None, synthetic=dict(synthetic or {}), notes=notes,
            **({"score": NEUPRINT_SCORE} if f_syn else {}),
        ))
        rb.add_table("neurons", _neurons_sql("listed", listed_cols, "counts", "ids", status_default,
                                             post_from_totals=f_syn is not None))
        rb.add_table("connections", "conn")
        rb.add_table("roi_counts", "counts")
    return rb.dest


def _choose_primary(con: duckdb.DuckDBPyConnection, given: list[str] | None, all_rois: list[str],
                    roi_file: Path, totals_file: Path) -> list[str]:
    """The primary ROIs to keep: ``given`` (checked), or all ROIs of the file when they cannot overlap."""
    if given is not None:
        unknown = [r for r in given if r not in all_rois]
        if unknown and len(unknown) == len(given):
            raise InvalidArgumentError(
                f"none of the primary_rois occur in {roi_file.name}: {unknown[:5]}; "
                f"{suggest(unknown[0], all_rois)}")
        if unknown:
            raise InvalidArgumentError(
                f"primary ROI(s) {unknown[:5]} do not occur in {roi_file.name}; {suggest(unknown[0], all_rois)}")
        candidate = given
    else:
        candidate = all_rois
    in_set = f"roi IN ({', '.join(quote_str(r) for r in candidate) or 'NULL'})"
    orphan = con.execute(
        "SELECT r.pre, r.post FROM (SELECT DISTINCT pre, post FROM roi_rows) AS r ANTI JOIN totals AS t "
        "USING (pre, post) LIMIT 5").fetchall()
    if orphan:
        raise SourceFormatError(
            f"{roi_file.name} has pair(s) {orphan} that are missing from {totals_file.name}; the two files do not "
            "belong together", file=roi_file)
    over = con.execute(
        f"SELECT s.pre, s.post, s.inside, t.weight FROM (SELECT pre, post, sum(weight) AS inside FROM roi_rows "
        f"WHERE {in_set} GROUP BY ALL) AS s JOIN totals AS t USING (pre, post) WHERE s.inside > t.weight "
        f"ORDER BY s.inside - t.weight DESC LIMIT 1").fetchall()
    over = over[0] if over else None
    if over:
        n = _scalar(con, f"SELECT count(*) FROM (SELECT pre, post, sum(weight) AS inside FROM roi_rows WHERE {in_set} "
                         f"GROUP BY ALL) AS s JOIN totals AS t USING (pre, post) WHERE s.inside > t.weight")
        pre, post, inside, total = over
        if given is None:
            raise SourceFormatError(
                f"the ROIs in {roi_file.name} overlap (nested ROIs): for {n:,} pair(s) the per-ROI weights add up to "
                f"more than the total in {totals_file.name} (e.g. {pre} -> {post}: {inside} > {total}). Pass the "
                "dataset's primary ROIs, the non-overlapping ones (neuPrint primaryRois, neuprint-python "
                "fetch_primary_rois()), as primary_rois= (CLI: --primary-rois, a comma-separated list or a file "
                "with one ROI per line)", file=roi_file, column="roi")
        raise InvalidArgumentError(
            f"the given primary_rois overlap: for {n:,} pair(s) their weights in {roi_file.name} add up to more than "
            f"the total (e.g. {pre} -> {post}: {inside} > {total}); give only non-overlapping ROIs")
    return sorted(candidate)


def _flat_file(src: Path, stem: str, label: str, option: str) -> Path | None:
    """The complete neuPrint flat-connectome file ``<stem>-*`` of ``src``, never a restricted variant.

    ``connectome-weights-<tag>.feather`` is "the full connection graph"; its
    ``-traced-only`` / ``-primary-only`` / ``-significant-only`` siblings keep
    only some bodies or edges (see the file-name notes above), so picking one
    silently would drop connections. With only restricted variants present,
    the caller must name one (``option``).
    """
    hits = sorted(p for p in src.glob(f"{stem}*") if p.is_file() and p.name.lower().endswith(_EXTENSIONS))
    complete = [p for p in hits if not _RESTRICTED_VARIANT.search(p.name)]
    restricted = [p.name for p in hits if _RESTRICTED_VARIANT.search(p.name)]
    if len(complete) > 1:
        raise SourceFormatError(f"{str(src)!r} has several complete {label} files ({', '.join(p.name for p in complete)}); "
                                f"name the one to convert with {option} FILE", file=src)
    if complete:
        return complete[0]
    if restricted:
        raise SourceFormatError(
            f"{str(src)!r} has only restricted {label} file(s) ({', '.join(restricted)}), not the complete "
            f"{stem}-<tag>.feather; converting a restricted one drops connections of other bodies. Download the "
            f"complete file, or name the restricted one with {option} FILE to convert it deliberately", file=src)
    return None


def _neuprint_transmitters(rd: _Reader, path: Path, listed_cols: Sequence[str], notes: list[str]) -> list[str]:
    """Join per-body transmitter predictions to table ``listed``; returns the columns added."""
    con = rd.con
    s = rd.open(path, "neurotransmitters")
    body = s.pick("body", ("body", "bodyId"))
    body_sql = rd.integer(s, body)
    rd.unique(s, body, body_sql)
    taken = set(listed_cols)
    select, added = [], []
    for c in s.types:
        if c == body:
            continue
        target = c if c not in taken else f"{c}_nt"
        taken.add(target)
        select.append(f"{rd.extra(s, c)} AS {quote_ident(target)}")
        added.append(target)
    con.execute(f"CREATE TABLE nt_meta AS SELECT {body_sql} AS id, {', '.join(select) or 'NULL AS _none'} "
                f"FROM {s.rel}")
    extra = "".join(f", n.{quote_ident(c)}" for c in added)
    if "predicted_nt" in added and "nt" not in taken:
        extra += ", CAST(n.predicted_nt AS VARCHAR) AS nt"
        added.append("nt")
        notes.append(f"nt copies predicted_nt of {path.name} (per-body prediction)")
    con.execute(f"CREATE TABLE listed_nt AS SELECT l.*{extra} FROM listed AS l LEFT JOIN nt_meta AS n USING (id)")
    con.execute("DROP TABLE listed")
    con.execute("ALTER TABLE listed_nt RENAME TO listed")
    notes.append(f"transmitter predictions of {path.name} joined to the bodies of the neurons file")
    return added


def _primary_rois(given: list[str] | None, labels: set[str], where: str) -> list[str]:
    """The primary ROIs: ``given`` (each must occur among ``labels``), else every label, sorted."""
    if given is None:
        return sorted(labels)
    unknown = [r for r in given if r not in labels]
    if unknown:
        raise InvalidArgumentError(f"primary ROI(s) {unknown[:5]} do not occur in {where}; "
                                   f"{suggest(unknown[0], labels)}")
    return given


def _neuprint_synapses(rb: ReleaseBuilder, rd: _Reader, path: Path, totals_file: Path, voxel: Sequence[float],
                       primary_given: list[str] | None, notes: list[str],
                       manifest: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Write ``synapses`` from a neuPrint ``syn-partners`` file and create ``conn`` from it.

    ``totals`` (the weights file) must hold the same pairs with the same
    weights: flyem-snapshot derives connectome-weights from the partner table
    (``value_counts`` of ``body_pre, body_post``; flyem_snapshot/outputs/
    flat_connectome.py). Returns ``(all_rois, primary_rois)``.
    """
    con = rb.con
    voxel = tuple(float(v) for v in voxel)
    if len(voxel) != 3 or not all(v > 0 for v in voxel):
        raise InvalidArgumentError(f"voxel_size_nm must be three positive numbers; got {voxel!r}")
    s = rd.open(path, "synapses")
    picked = {k: s.pick(k, aliases) for k, aliases in _NP_SYN_COLUMNS.items()}
    s = rd.stage_numbered(s, picked.values()) if s.is_csv else s
    if s.row_number is None:
        raise SourceFormatError(f"cannot number the rows of {path.name} (synapses)", file=path)
    pre, post = rd.integer(s, picked["pre"]), rd.integer(s, picked["post"])
    xyz = {k: rd.number(s, picked[k]) for k in picked if k[-2:] in ("_x", "_y", "_z")}
    conf = {k: rd.number(s, picked[k]) for k in ("pre_score", "post_score")}
    label = f"trim(CAST({quote_ident(picked['roi'])} AS VARCHAR))"
    labels = {r[0] for r in rd._sql(f"SELECT DISTINCT {label} FROM {s.rel}", s) if r[0] is not None}
    labels -= set(NEUPRINT_UNASSIGNED)
    # without primary_given: the export labels each synapse with the one primary ROI holding its PSD
    # ("roi-set": "primary"), so these labels do not overlap
    primary = _primary_rois(primary_given, labels, f"{path.name}, column {picked['roi']!r}")
    roi = _roi_case(label, NEUPRINT_UNASSIGNED, primary if primary_given is not None else None, "NULL")
    n_zero = _scalar(con, f"SELECT count(*) FROM {s.rel} WHERE {pre} = 0 OR {post} = 0")
    if n_zero:
        notes.append(f"{n_zero:,} synapse(s) of {path.name} with body 0 (background) were left out")
    notes.append(f"synapse positions of {path.name} multiplied by the voxel size {list(voxel)} nm "
                 "(the export gives them in voxels)")
    rb.set_manifest(make_manifest(voxel_size_nm=list(voxel), rois=sorted(labels), primary_rois=primary,
                                  score_name="confidence", notes=list(notes), **manifest))
    select = ", ".join([f"CAST({s.row_number} AS BIGINT) AS synapse_id", f"{pre} AS pre", f"{post} AS post",
                        *[f"{xyz[k]} * {voxel['xyz'.index(k[-1])]!r} AS {k}"
                          for k in ("pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z")],
                        # min of both sides as the neuPrint backend does; missing if either is missing
                        f"CASE WHEN {conf['pre_score']} IS NULL OR {conf['post_score']} IS NULL THEN NULL "
                        f"ELSE least({conf['pre_score']}, {conf['post_score']}) END AS score",
                        f"{roi} AS roi", f"{conf['pre_score']} AS pre_score", f"{conf['post_score']} AS post_score"])
    rb.add_table("synapses", f"(SELECT {select} FROM {s.rel} WHERE {pre} <> 0 AND {post} <> 0)")
    syn_file = f"read_parquet({quote_path(rb.stage / 'synapses.parquet')})"
    con.execute(f"CREATE TABLE conn AS SELECT pre, post, coalesce(roi, {quote_str(NOT_PRIMARY)}) AS roi, "
                f"count(*) AS weight FROM {syn_file} GROUP BY ALL")
    differ = con.execute(
        "SELECT pre, post, t.weight, s.n FROM totals AS t FULL JOIN (SELECT pre, post, sum(weight) AS n FROM conn "
        "GROUP BY ALL) AS s USING (pre, post) WHERE t.weight IS DISTINCT FROM s.n ORDER BY pre, post LIMIT 3"
    ).fetchall()
    if differ:
        shown = "; ".join(f"{a} -> {b}: weight {w if w is not None else 'absent'} in {totals_file.name}, "
                          f"{n if n is not None else 0} synapse(s) in {path.name}" for a, b, w, n in differ)
        raise SourceFormatError(f"{totals_file.name} and {path.name} disagree ({shown}); the weights must count the "
                                "synapse rows of each pair, so the files must come from the same export (same "
                                "version and minconf)", file=totals_file)
    notes.append(f"connections and their ROIs counted from the synapses of {path.name}; they match "
                 f"{totals_file.name} pair by pair")
    return sorted(labels), primary


# --------------------------------------------------------------------------------------------
# FlyWire release tables
# --------------------------------------------------------------------------------------------

_FW_CONNECTIONS = ("connections_no_threshold", "connections", "connections_princeton_no_threshold",
                   "connections_princeton")
_FW_SYN_COLUMNS = {
    "id": ("id", "synapse_id"),
    "pre": ("pre_pt_root_id", "pre_root_id", "pre"),
    "post": ("post_pt_root_id", "post_root_id", "post"),
    **{f"{s}_{a}": (f"{s}_pt_position_{a}", f"{s}_{a}") for s in ("pre", "post") for a in "xyz"},
    "score": ("cleft_score",),
    "neuropil": ("neuropil",),
}
# Codex's Princeton synapse table fafb_v783_princeton_synapse_table.csv.gz (listed at
# https://codex.flywire.ai/api/download; header as read by public analysis scripts, unverified by us):
# pre_x,pre_y,pre_z,ctr_x,ctr_y,ctr_z,post_x,post_y,post_z,size,pre_root_id_720575940,post_root_id_720575940,
# neuropil. The id columns drop the shared leading digits named in the header: root id = 720575940 * 10**9 +
# value (FlyWire root ids have 18 digits). The unit of the positions is not documented there (unverified):
# coordinate_unit="auto" inspects them.
_PREFIXED_ID = re.compile(r"^(pre|post)_root_id_([0-9]{1,17})$")
_ROOT_ID_DIGITS = 18
#: Codex synapse_coordinates.csv.gz: pre_root_id,post_root_id,x,y,z, "x, y, z in nanometers", one point per
#: synapse, empty id cells repeat the last value above (murthylab/codex, codex/configuration.py,
#: DOWNLOADABLE_ARCHIVE_FILES["synapse_coordinates"], release 630: 5 columns, INT positions).
_CODEX_POINT_COLUMNS = ("pre_root_id", "post_root_id", "x", "y", "z")
# Core neuron columns copied from Codex's own names (the native columns stay): classification.csv.gz
# super_class -> superclass; neurons.csv.gz nt_type ("predicted NT type", ACH/GABA/GLUT/DA/SER/OCT;
# murthylab/codex codex/data/catalog.py and codex/data/neurotransmitters.py) -> nt. classification's side
# (left/right/center, codex/data/structured_search_filters.py) and class keep their names.
_FW_CORE_COPIES = {"super_class": "superclass", "nt_type": "nt"}
#: Codex's nt_type abbreviations (murthylab/codex codex/data/neurotransmitters.py, as cited above) to the
#: lowercase full names of the core ``nt`` column; any other value is lowercased (the native column stays).
_FW_NT_NAMES = {"ACH": "acetylcholine", "GABA": "gaba", "GLUT": "glutamate", "DA": "dopamine", "SER": "serotonin",
                "OCT": "octopamine", "HIST": "histamine"}


def _core_copy_sql(core: str, native: str) -> str:
    """SQL for a core column copied from a native one (``nt`` spelled as the core spells transmitters)."""
    value = f"CAST({quote_ident(native)} AS VARCHAR)"
    if core != "nt":
        return value
    cases = " ".join(f"WHEN {quote_str(k)} THEN {quote_str(v)}" for k, v in _FW_NT_NAMES.items())
    return f"CASE upper(trim({value})) {cases} ELSE nullif(lower(trim({value})), '') END"
#: ``manifest.score`` of FlyWire releases with ``cleft_score`` (the Zenodo/CAVE synapse table's score), read
#: as the dataset's ScoreInfo; values from the catalogue (connectomix/catalogue/flywire.toml,
#: datasets.flywire.synapses). The Princeton table's score is not described there, so it gets none.
FLYWIRE_SCORE = {
    "column": "cleft_score",
    "scale": "integer cleft score (Heinrich et al. 2018)",
    "recommended": 51,
    "op": ">",
    "source": ("seung-lab/FlyConnectome CAVE tutorial ('cleft_score > 50 works well') and "
               "navis-org/fafbseg-py fafbseg/flywire/synapses.py:462-468@d114e29 ('removes ... cleft_score <= 50'), "
               "via the connectomix catalogue (flywire.synapses.recommended_threshold); integer scores, so "
               "> 50 is >= 51"),
}


def import_flywire(src: str | Path, dest: str | Path, *, name: str | None = None, version: str | None = None,
                   overwrite: bool = False, primary_rois: Any = None, coordinate_unit: str = "auto",
                   voxel_size_nm: Sequence[float] = FLYWIRE_VOXEL_NM, min_score: float | None = None,
                   connections: str | Path | None = None, synapses: str | Path | None = None,
                   neurons: str | Path | None = None, classification: str | Path | None = None,
                   cell_types: str | Path | None = None, proofread_ids: str | Path | None = None,
                   names: str | Path | None = None, unassigned: Sequence[str] = FLYWIRE_UNASSIGNED, description: str | None = None,
                   source: str | None = None, license: str = "", citation: str = "",
                   synthetic: Mapping[str, Any] | None = None, memory_limit: str | None = "1GB",
                   threads: int | None = None) -> Path:
    """Convert FlyWire release tables (Codex / Zenodo downloads) into a release folder.

    Parameters
    ----------
    src
        Folder with the downloaded files (see the module docstring for names).
    dest
        Release folder to create.
    name, version
        Manifest name (default: the folder's name) and version (default: a
        number such as ``783`` in the file names, else required).
    overwrite
        Replace an existing release folder at ``dest``.
    primary_rois
        Neuropils to keep as ROIs (list, file or comma-separated string).
        Default: every neuropil in the data, since FlyWire's neuropils do not
        overlap. Other neuropils, ``unassigned`` labels and missing values
        become ``"NotPrimary"`` (connections, roi_counts) / null (synapses).
    coordinate_unit
        Unit of the synapse positions: ``"nm"``, ``"voxel"`` (multiplied by
        ``voxel_size_nm``) or ``"auto"`` (default): the median z/x ratio of the
        first 100,000 postsynaptic positions is ~0.3 in nm but ~0.03 in FAFB's
        4x4x40 nm voxels, so ratios below 0.1 mean voxels. The decision and
        its evidence are recorded in ``manifest.notes``.
    voxel_size_nm
        FAFB: ``(4, 4, 40)``.
    min_score
        Keep only synapses with ``cleft_score >= min_score``.
    connections, synapses, neurons, classification, cell_types, proofread_ids, names
        Explicit file names (relative to ``src``) instead of the defaults
        ``connections_no_threshold`` / ``proofread_connections_*`` /
        ``connections`` (/ ``connections_princeton[_no_threshold]``);
        synapses ``synapses`` / ``flywire_synapses_*`` (Zenodo) /
        ``fafb_v*_princeton_synapse_table*`` / ``synapse_coordinates``
        (Codex), first found; ``neurons``, ``classification``,
        ``consolidated_cell_types`` / ``cell_types``,
        ``proofread_root_ids_*.npy`` and ``names``.
    unassigned
        Neuropil labels meaning "outside every neuropil".
    description, source, license, citation
        Manifest text; provenance is filled in when omitted.
    synthetic
        Manifest ``synthetic`` entry, for converting invented test data.
    memory_limit, threads
        DuckDB limits; beyond ``memory_limit`` sorting and aggregation spill to disk.

    Returns
    -------
    Path
        The release folder.

    Notes
    -----
    * Every root id of the neuron tables (``neurons``, ``classification``,
      ``consolidated_cell_types``, ``names``, ``proofread_root_ids``) is a
      neuron (``is_neuron``); partners found only in connections or synapses
      become segments. ``type`` is ``primary_type`` (consolidated cell
      types), else ``cell_type`` (older classification files);
      ``superclass`` copies ``super_class`` and ``nt`` copies ``nt_type``
      (neurons.csv.gz's predicted transmitter); ``class``, ``side``, and
      names.csv.gz's ``name`` keep their names. A column name shared by two
      files gets the second file's label as suffix (``group_names``).
    * Synapse layouts: the Zenodo table (ids, ``cleft_score``, pre/post
      positions); Codex's Princeton table (ids are rebuilt from the prefix in
      the ``*_root_id_720575940`` headers; no ids, so ``synapse_id`` is the
      data row number); Codex's ``synapse_coordinates`` (one point per synapse,
      used as both the pre- and postsynaptic position; empty id cells repeat
      the value above; documented in nm, which ``coordinate_unit="auto"``
      checks; no neuropil, so every synapse's ``roi`` is null).
    * With a synapse table, ``neurons.pre``/``post`` and ``roi_counts`` count
      its rows per body; ``connections`` come from the connections file if
      there is one (Codex's ``connections.csv.gz`` keeps only pairs with >= 5
      synapses), else they are aggregated from the synapses.
    * Rows touching id 0 (background) are left out.

    Examples
    --------
    >>> import_flywire("flywire_783_downloads", "flywire-783")  # doctest: +SKIP
    PosixPath('flywire-783')
    """
    if coordinate_unit not in ("auto", "nm", "voxel"):
        raise InvalidArgumentError(f"coordinate_unit must be 'auto', 'nm' or 'voxel'; got {coordinate_unit!r}")
    voxel = tuple(float(v) for v in voxel_size_nm)
    if len(voxel) != 3 or not all(v > 0 for v in voxel):
        raise InvalidArgumentError(f"voxel_size_nm must be three positive numbers; got {voxel_size_nm!r}")
    if min_score is not None and not isinstance(min_score, (int, float)):
        raise InvalidArgumentError(f"min_score must be a number or None; got {min_score!r}")
    src = _source_dir(src)
    f_syn = (_given_file(synapses, src, "synapses", "--synapses")
             or _find(src, ("synapses",), patterns=("flywire_synapses_*", "fafb_v*_princeton_synapse_table*"))
             or _find(src, ("synapse_coordinates",)))
    princeton = f_syn is not None and "princeton" in f_syn.name.lower()
    f_conn = (_given_file(connections, src, "connections", "--connections")
              or (_find(src, _FW_CONNECTIONS[2:]) if princeton else None)
              or _find(src, _FW_CONNECTIONS[:1], patterns=("proofread_connections_*",))
              or _find(src, _FW_CONNECTIONS[1:]))
    meta_files = {
        "neurons": _given_file(neurons, src, "neurons", "--neurons") or _find(src, ("neurons",)),
        "classification": (_given_file(classification, src, "classification", "--classification")
                           or _find(src, ("classification",))),
        "cell types": (_given_file(cell_types, src, "cell types", "--cell-types")
                       or _find(src, ("consolidated_cell_types", "cell_types"))),
        "names": _given_file(names, src, "names", "--names") or _find(src, ("names",)),
    }
    f_ids = (_given_file(proofread_ids, src, "proofread root ids", "--proofread-ids")
             or next(iter(sorted(src.glob("proofread_root_ids*.npy"))), None))
    if f_syn is None and f_conn is None:
        raise SourceFormatError(
            f"{str(src)!r} has neither a connections table (connections_no_threshold.csv.gz, connections.csv.gz, "
            "connections_princeton[_no_threshold].csv.gz, proofread_connections_783.feather; option --connections) "
            "nor a synapse table (flywire_synapses_783.feather, fafb_v783_princeton_synapse_table.csv.gz, "
            f"synapse_coordinates.csv.gz; option --synapses); the folder has: {_listing(src)}", file=src)
    if not any(meta_files.values()) and f_ids is None:
        raise SourceFormatError(
            f"{str(src)!r} has no neuron table; give at least one of neurons.csv.gz, classification.csv.gz, "
            "consolidated_cell_types.csv.gz, names.csv.gz or proofread_root_ids_783.npy (they say which ids are "
            f"neurons; options --neurons, --classification, --cell-types, --names, --proofread-ids); the folder "
            f"has: {_listing(src)}", file=src)
    primary_given = _primary_list(primary_rois)
    all_files = [f_syn, f_conn, f_ids, *meta_files.values()]
    name, version = _name_version(src, all_files, name, version, "flywire")
    notes: list[str] = []
    if f_syn is not None and f_conn is not None and princeton != ("princeton" in f_conn.name.lower()):
        # Codex offers connection tables of two synapse detections, connections_princeton* (2025 Princeton
        # synapses; R fafbseg calls them the "783.2" release, R/flywire-arrow.R) and the older ones; mixed,
        # neurons.pre/post (counted from the synapses) and connections count different synapses
        notes.append(f"{f_syn.name} and {f_conn.name} may come from different synapse detections (Princeton "
                     "vs. the earlier one): neurons.pre/post and roi_counts count the synapse table, connections "
                     "come from the connections file")
    score_name = None
    with ReleaseBuilder(dest, overwrite=overwrite, memory_limit=memory_limit, threads=threads) as rb:
        con, rd = rb.con, _Reader(rb.con, rb.stage / ".duckdb-tmp")
        listed_cols = _flywire_listed(con, rd, meta_files, f_ids, notes)

        # sources of connectivity
        syn = conn_src = None
        if f_syn is not None:
            syn = _flywire_synapse_select(rd, f_syn, coordinate_unit, voxel, min_score, notes)
            score_name = "cleft_score" if syn["has_score"] else None
        if f_conn is not None:
            conn_src = _flywire_connection_select(rd, f_conn)
        neuropils: set[str] = set()
        for part in (syn, conn_src):
            if part is not None and part["neuropil"] is not None:
                neuropils |= {r[0] for r in con.execute(
                    f"SELECT DISTINCT trim(CAST({part['neuropil']} AS VARCHAR)) FROM {part['rel']}").fetchall()
                    if r[0] is not None}
        neuropils -= set(unassigned)
        primary = _primary_rois(primary_given, neuropils, "the data")
        restrict = primary if primary_given is not None else None

        rb.set_manifest(make_manifest(
            name=name, version=version,
            description=description or (
                "FlyWire connectome release tables converted by connectomix ("
                + ", ".join(f.name for f in all_files if f is not None) + ")."),
            source=source or f"FlyWire release files in {src.name} (Codex / Zenodo)",
            license=license, citation=citation, voxel_size_nm=list(voxel), rois=sorted(neuropils),
            primary_rois=primary, score_name=score_name, synthetic=dict(synthetic or {}), notes=notes,
            **({"score": FLYWIRE_SCORE} if score_name == "cleft_score" and not princeton else {}),
        ))
        if syn is not None:
            roi = _roi_case(syn["neuropil"], unassigned, restrict, "NULL") if syn["neuropil"] else "CAST(NULL AS VARCHAR)"
            rb.add_table("synapses", f"(SELECT {syn['select']}, {roi} AS roi{syn['extras']} FROM {syn['rel']} "
                                     f"WHERE {syn['where']})")
            syn_file = f"read_parquet({quote_path(rb.stage / 'synapses.parquet')})"
            con.execute(f"CREATE TABLE syn_rois AS SELECT pre, post, coalesce(roi, {quote_str(NOT_PRIMARY)}) AS roi "
                        f"FROM {syn_file}")
        if conn_src is not None:
            roi = (_roi_case(conn_src["neuropil"], unassigned, restrict, quote_str(NOT_PRIMARY))
                   if conn_src["neuropil"] else quote_str(NOT_PRIMARY))
            con.execute(f"CREATE TABLE conn AS SELECT pre, post, roi, CAST(sum(weight) AS BIGINT) AS weight FROM "
                        f"(SELECT {conn_src['pre']} AS pre, {conn_src['post']} AS post, {roi} AS roi, "
                        f"{conn_src['weight']} AS weight FROM {conn_src['rel']}) "
                        f"WHERE pre <> 0 AND post <> 0 GROUP BY ALL HAVING sum(weight) > 0")
            dropped = _scalar(con, f"SELECT count(*) FROM {conn_src['rel']} WHERE {conn_src['pre']} = 0 OR "
                                   f"{conn_src['post']} = 0")
            if dropped:
                notes.append(f"{dropped:,} row(s) of {f_conn.name} with root id 0 (background) were left out")
            notes.append(f"connections from {f_conn.name}")
        else:
            con.execute("CREATE TABLE conn AS SELECT pre, post, roi, count(*) AS weight FROM syn_rois GROUP BY ALL")
            notes.append(f"connections aggregated from the synapses of {f_syn.name}")
        if syn is not None:
            con.execute(f"CREATE TABLE counts AS SELECT * FROM {_count_union('syn_rois', '1')}")
            con.execute("CREATE TABLE ids AS SELECT pre AS id FROM syn_rois UNION SELECT post FROM syn_rois "
                        "UNION SELECT pre FROM conn UNION SELECT post FROM conn")
            notes.append(f"neurons.post and roi_counts count the rows of {f_syn.name} per body (one PSD per row); "
                         "neurons.pre is null: FlyWire synapse rows are connections, not T-bars")
        else:
            con.execute(f"CREATE TABLE counts AS SELECT * FROM {_count_union('conn', 'weight')}")
            con.execute("CREATE TABLE ids AS SELECT pre AS id FROM conn UNION SELECT post FROM conn")
            notes.append(f"neurons.post and roi_counts are summed syn_count of {f_conn.name} per body; neurons.pre "
                         "is null (connections, not T-bars)"
                         + (" (Codex's connections.csv.gz only has pairs with >= 5 synapses, so these are lower "
                            "bounds)" if f_conn.name.startswith("connections.") else ""))
        notes.append("neurons.upstream/downstream are the summed weights of each body's incoming/outgoing "
                     "connections in this release")
        rb.manifest["notes"] = notes
        rb.add_table("neurons", _neurons_sql("listed", listed_cols, "counts", "ids", None, post_from_totals=True))
        rb.add_table("connections", "conn")
        rb.add_table("roi_counts", "counts")
    return rb.dest


def _flywire_listed(con: duckdb.DuckDBPyConnection, rd: _Reader, files: Mapping[str, Path | None],
                    f_ids: Path | None, notes: list[str]) -> list[str]:
    """Create table ``listed``: every root id of the neuron tables, with their columns merged."""
    parts: list[tuple[str, list[str]]] = []
    taken = {"id"}
    for label, path in files.items():
        if path is None:
            continue
        s = rd.open(path, label, small=True)
        rid = s.pick("root_id", ("root_id", "pt_root_id"))
        rid_sql = rd.integer(s, rid)
        rd.unique(s, rid, rid_sql)
        cols, select = [], [f"{rid_sql} AS id"]
        for c in s.types:
            if c == rid:
                continue
            target = "additional_types" if c == "additional_type(s)" else c
            if target in taken:
                target = f"{target}_{label.replace(' ', '_')}"
            taken.add(target)
            select.append(f"{rd.extra(s, c)} AS {quote_ident(target)}")
            cols.append(target)
        table = f"meta_{len(parts)}"
        con.execute(f"CREATE TABLE {table} AS SELECT {', '.join(select)} FROM {s.rel} WHERE {rid_sql} <> 0")
        parts.append((table, cols))
    if f_ids is not None:
        try:
            ids = np.load(f_ids, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SourceFormatError(f"cannot read {f_ids.name} as a numpy array of root ids: {exc}", file=f_ids) from exc
        if ids.ndim != 1 or ids.dtype.kind not in "iu":
            raise SourceFormatError(f"{f_ids.name} must be a 1-d integer array of root ids; got {ids.dtype} "
                                    f"with shape {ids.shape}", file=f_ids)
        import pandas as pd

        con.register("_proofread_ids", pd.DataFrame({"id": ids.astype("int64")}))
        con.execute("CREATE TABLE meta_ids AS SELECT DISTINCT id FROM _proofread_ids WHERE id <> 0")
        con.unregister("_proofread_ids")
        parts.append(("meta_ids", []))
    union = " UNION ".join(f"SELECT id FROM {t}" for t, _ in parts)
    columns = [c for _, cols in parts for c in cols]
    copies = {core: native for native, core in _FW_CORE_COPIES.items() if native in columns and core not in columns}
    type_sources = [c for c in ("primary_type", "cell_type") if c in columns]
    type_sql = (f"CAST(coalesce({', '.join(quote_ident(c) for c in type_sources)}) AS VARCHAR)"
                if type_sources else "CAST(NULL AS VARCHAR)")
    keep = [c for c in columns if c not in ("primary_type", "type", "instance", "status")]
    joins = " ".join(f"LEFT JOIN {t} USING (id)" for t, cols in parts if cols)
    con.execute(f"CREATE TABLE listed AS SELECT id, {type_sql} AS type"
                + "".join(f", {quote_ident(c)}" for c in keep)
                + "".join(f", {_core_copy_sql(core, native)} AS {quote_ident(core)}" for core, native in copies.items())
                + f" FROM ({union}) {joins}")
    if type_sources:
        notes.append(f"type from {' then '.join(type_sources)}")
    if copies:
        notes.append("core columns copied from native ones: "
                     + ", ".join(f"{core} = {native}" for core, native in copies.items()))
    return ["id", "type", *keep, *copies]


def _flywire_connection_select(rd: _Reader, path: Path) -> dict[str, Any]:
    s = rd.open(path, "connections")
    pre = s.pick("pre_root_id", ("pre_root_id", "pre_pt_root_id", "pre"))
    post = s.pick("post_root_id", ("post_root_id", "post_pt_root_id", "post"))
    weight = s.pick("syn_count", ("syn_count", "weight", "n_syn"))
    neuropil = s.pick("neuropil", ("neuropil",), required=False)
    s = rd.stage(s, [c for c in (pre, post, weight, neuropil) if c])
    return {"rel": s.rel, "pre": rd.integer(s, pre), "post": rd.integer(s, post),
            "weight": rd.integer(s, weight, what="synapse counts"),
            "neuropil": f"CAST({quote_ident(neuropil)} AS VARCHAR)" if neuropil else None}


def _flywire_synapse_select(rd: _Reader, path: Path, unit: str, voxel: tuple[float, float, float],
                            min_score: float | None, notes: list[str]) -> dict[str, Any]:
    """SELECT pieces for the synapse table, from any of the three FlyWire layouts (see import_flywire)."""
    s = rd.open(path, "synapses")
    lower = {c.lower(): c for c in s.types}
    codex_points = s.is_csv and all(c in lower for c in _CODEX_POINT_COLUMNS) and "pre_x" not in lower
    documented_unit = None
    if codex_points:
        s = rd.fill_down_csv(path, "synapses", [lower["pre_root_id"], lower["post_root_id"]],
                             [lower[a] for a in "xyz"])
        notes.append(f"{path.name}: Codex synapse coordinates; empty pre/post root id cells took the last value "
                     "above them; its one point per synapse is both the pre- and the postsynaptic position; it has "
                     "no neuropil column (roi is null). Codex's 630 listing gives the same numbers of distinct "
                     "pre/post ids as its connections.csv.gz, so it likely holds only the synapses of pairs with "
                     ">= 5 synapses (inferred, unverified)")
        documented_unit = "nm"
        picked = {"id": None, "pre": lower["pre_root_id"], "post": lower["post_root_id"],
                  **{f"{side}_{a}": lower[a] for side in ("pre", "post") for a in "xyz"},
                  "score": None, "neuropil": None}
    else:
        prefixed = {m.group(1): (c, m.group(2)) for c in s.types if (m := _PREFIXED_ID.match(c))}
        picked = {k: s.pick(k, aliases, required=k not in ("id", "score", "neuropil", *prefixed))
                  for k, aliases in _FW_SYN_COLUMNS.items()}
        for side, (column, _) in prefixed.items():
            picked[side] = picked[side] or column
    used = {c for c in picked.values() if c}
    extras = [c for c in s.types if c not in used] if not s.is_csv else []
    numbered = s.is_csv and not codex_points and not picked["id"] and any(
        _PREFIXED_ID.match(picked[side]) for side in ("pre", "post"))
    s = rd.stage_numbered(s, used) if numbered else rd.stage(s, used)
    if picked["id"]:
        sid = rd.integer(s, picked["id"], what="synapse ids")
    elif s.row_number:
        sid = f"CAST({s.row_number} AS BIGINT)"
        notes.append(f"{path.name} has no synapse id column: synapse_id is the row number in the file (from 0)")
    else:
        raise SourceFormatError(f"{path.name} (synapses) has no 'id' column; FlyWire's synapse table has one. "
                                "Add ids, or give the table as Parquet (its row numbers are then used)",
                                file=path, column="id")
    pre, post = (_root_id_sql(rd, s, picked[side]) for side in ("pre", "post"))
    xyz = {k: rd.number(s, picked[k]) for k in picked if k[-2:] in ("_x", "_y", "_z")}
    if unit == "auto":
        if voxel != FLYWIRE_VOXEL_NM:
            raise InvalidArgumentError("coordinate_unit='auto' only recognises FAFB's 4x4x40 nm voxels; "
                                       "pass coordinate_unit='nm' or 'voxel'")
        unit, evidence = _detect_unit(rd, s, xyz["post_x"], xyz["post_z"])
        if documented_unit and unit != documented_unit:
            raise SourceFormatError(
                f"{path.name}: Codex documents these positions in {documented_unit}, but they look like {unit} "
                f"({evidence}); pass coordinate_unit (CLI --coordinate-unit) to say which", file=path)
        notes.append(f"synapse positions read as {unit} ({evidence}"
                     + (f"; documented as {documented_unit}" if documented_unit else "")
                     + "; override with coordinate_unit)")
    else:
        notes.append(f"synapse positions given as {unit}")
    scale = dict(zip("xyz", voxel)) if unit == "voxel" else {"x": 1.0, "y": 1.0, "z": 1.0}
    if unit == "voxel":
        notes.append(f"positions multiplied by the voxel size {list(voxel)} nm")
    score = rd.number(s, picked["score"]) if picked["score"] else None
    where = [f"{pre} <> 0", f"{post} <> 0"]
    n_zero = _scalar(rd.con, f"SELECT count(*) FROM {s.rel} WHERE {pre} = 0 OR {post} = 0")
    if n_zero:
        notes.append(f"{n_zero:,} synapse(s) of {path.name} with root id 0 (background) were left out")
    if min_score is not None:
        if score is None:
            raise InvalidArgumentError(f"min_score needs a cleft_score column; {path.name} has none")
        where.append(f"{score} >= {float(min_score)!r}")
        notes.append(f"only synapses with cleft_score >= {min_score}")
    select = [f"{sid} AS synapse_id", f"{pre} AS pre", f"{post} AS post",
              *[f"{xyz[k]} * {scale[k[-1]]!r} AS {k}" for k in ("pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z")],
              f"{score} AS score" if score else "CAST(NULL AS DOUBLE) AS score"]
    return {"rel": s.rel, "select": ", ".join(select), "where": " AND ".join(where), "has_score": score is not None,
            "neuropil": f"CAST({quote_ident(picked['neuropil'])} AS VARCHAR)" if picked["neuropil"] else None,
            "extras": "".join(f", {quote_ident(c)}" for c in extras)}


def _root_id_sql(rd: _Reader, s: Source, column: str) -> str:
    """SQL for a root id column; ``<side>_root_id_<digits>`` columns hold the id without those leading digits."""
    m = _PREFIXED_ID.match(column)
    expr = rd.integer(s, column)
    if not m:
        return expr
    prefix, width = m.group(2), _ROOT_ID_DIGITS - len(m.group(2))
    bad = rd._sql(f"SELECT {expr} FROM {s.rel} WHERE {expr} >= {10 ** width} LIMIT {_EXAMPLES}", s)
    if bad:
        raise SourceFormatError(
            f"{s.name} ({s.label}), column {column!r} must hold the last {width} digits of {_ROOT_ID_DIGITS}-digit "
            f"root ids starting {prefix}; found {', '.join(str(r[0]) for r in bad)}", file=s.path, column=column)
    return f"({int(prefix) * 10 ** width} + {expr})"


def _detect_unit(rd: _Reader, s: Source, x_sql: str, z_sql: str) -> tuple[str, str]:
    row = rd._sql(f"SELECT median(z) / nullif(median(x), 0), count(*) FROM (SELECT {x_sql} AS x, {z_sql} AS z "
                  f"FROM {s.rel} LIMIT 100000)", s)[0]
    ratio, n = row
    if not n or ratio is None:
        return "nm", "no positions to inspect"
    unit = "voxel" if ratio < 0.1 else "nm"
    return unit, f"median z/x of {n:,} postsynaptic positions = {ratio:.3f}; ~0.3 means nm, ~0.03 FAFB voxels"


IMPORTERS: dict[str, Callable[..., Path]] = {
    "neuprint-csv": import_neuprint_csv,
    "flywire": import_flywire,
}
"""Importer per ``connectomix convert`` format; each is ``func(src, dest, *, name=None, version=None,
overwrite=False, **format_options) -> Path`` (see its docstring for the options)."""
