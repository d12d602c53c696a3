"""Write (and check) release folders in the format of ``FORMAT.md``.

Folders are written atomically: into a temporary sibling folder that is
renamed into place only when every table was written and validated, so a
failed conversion never leaves a half folder behind. Large synapse tables are
written by DuckDB straight from the source files (``COPY ... ORDER BY pre``),
never loaded into pandas whole.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from connectomix.errors import DataFormatError, InvalidArgumentError

__all__ = ["staging", "write_manifest", "write_table", "copy_synapses", "validate_release", "FORMAT_VERSION"]

FORMAT_VERSION = 1
NOT_PRIMARY = "NotPrimary"
ROW_GROUP = 1_000_000

_REQUIRED = {
    "neurons": {"id": "int64", "type": "string", "instance": "string", "status": "string", "pre": "int64",
                "post": "int64", "is_neuron": "bool"},
    "connections": {"pre": "int64", "post": "int64", "roi": "string", "weight": "int64"},
    "roi_counts": {"id": "int64", "roi": "string", "pre": "int64", "post": "int64"},
}
_SORT = {"neurons": ["id"], "connections": ["pre", "post", "roi"], "roi_counts": ["id", "roi"]}


@contextlib.contextmanager
def staging(dest: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``dest`` if the block succeeds.

    Raises
    ------
    InvalidArgumentError
        ``dest`` exists and ``overwrite`` is False.
    """
    dest = Path(dest).expanduser().resolve()
    if dest.exists() and not overwrite:
        raise InvalidArgumentError(f"{str(dest)!r} already exists; pass overwrite=True (--overwrite) to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    required = ("name", "version", "primary_rois")
    missing = [k for k in required if k not in manifest]
    if missing:
        raise InvalidArgumentError(f"manifest is missing {missing}")
    full = {"format": "connectomix-release", "format_version": FORMAT_VERSION, "rois": list(manifest["primary_rois"]),
            "score_name": None, "synthetic": {}, **manifest}
    (Path(folder) / "manifest.json").write_text(json.dumps(full, indent=2, default=str) + "\n")


def write_table(folder: Path, name: str, df: pd.DataFrame, *, primary_rois: list[str] | None = None) -> None:
    """Validate a small table (neurons, connections, roi_counts) and write it as Parquet."""
    spec = _REQUIRED[name]
    missing = [c for c in spec if c not in df.columns]
    if missing:
        raise DataFormatError(f"{name} table lacks column(s) {missing}")
    out = df.copy()
    for col, dtype in spec.items():
        if dtype == "int64":
            if out[col].isna().any():
                raise DataFormatError(f"{name}.{col} has missing values")
            out[col] = out[col].astype("int64")
        elif dtype == "string":
            out[col] = out[col].astype("string")
        else:
            out[col] = out[col].fillna(False).astype(bool)
    if name == "neurons":
        if not out["id"].is_unique:
            dup = out.loc[out["id"].duplicated(), "id"].head(5).tolist()
            raise DataFormatError(f"neurons.id must be unique; duplicated: {dup}")
        if (out["id"] <= 0).any():
            raise DataFormatError("neurons.id must be > 0 (0 is the background segment)")
    if name == "connections" and (out["weight"] <= 0).any():
        raise DataFormatError("connections.weight must be > 0")
    if primary_rois is not None and "roi" in out:
        unknown = sorted(set(out["roi"].dropna()) - set(primary_rois) - {NOT_PRIMARY})
        if unknown:
            raise DataFormatError(f"{name}.roi has names outside primary_rois: {unknown[:10]}")
    out = out.sort_values(_SORT[name], kind="stable").reset_index(drop=True)
    out.to_parquet(Path(folder) / f"{name}.parquet", index=False)


def copy_synapses(con: duckdb.DuckDBPyConnection, select_sql: str, folder: Path, params: list | None = None) -> int:
    """Write ``synapses.parquet`` from a DuckDB query (streaming, sorted by pre); return the row count.

    ``select_sql`` must yield the synapse columns of ``FORMAT.md``.
    """
    target = str(Path(folder) / "synapses.parquet").replace("'", "''")
    con.execute(
        f"COPY (SELECT * FROM ({select_sql}) ORDER BY pre, synapse_id) TO '{target}' "
        f"(FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP}, COMPRESSION zstd)",
        params or [],
    )
    return int(con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()[0])


def validate_release(folder: str | Path) -> dict[str, Any]:
    """Cheap consistency checks of a release folder; returns a summary, raises on problems.

    Examples
    --------
    >>> from connectomix_release.plugin import SAMPLE_DIR
    >>> validate_release(SAMPLE_DIR)["rows"]["neurons"]
    554
    """
    folder = Path(folder)
    if not (folder / "manifest.json").is_file():
        raise DataFormatError(f"{str(folder)!r} has no manifest.json")
    manifest = json.loads((folder / "manifest.json").read_text())
    con = duckdb.connect()
    rows = {}
    for name in ("neurons", "connections", "roi_counts", "synapses"):
        path = folder / f"{name}.parquet"
        if not path.is_file():
            if name in ("neurons", "connections"):
                raise DataFormatError(f"{str(folder)!r} has no {name}.parquet")
            continue
        table = "read_parquet('" + str(path).replace("'", "''") + "')"
        columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}
        need = set(_REQUIRED.get(name, {})) or {"synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z",
                                                 "post_x", "post_y", "post_z", "score", "roi"}
        if need - columns:
            raise DataFormatError(f"{path} lacks column(s) {sorted(need - columns)}")
        rows[name] = int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        if "roi" in columns:
            rois = {r[0] for r in con.execute(f"SELECT DISTINCT roi FROM {table}").fetchall()} - {None, NOT_PRIMARY}
            unknown = rois - set(manifest.get("primary_rois", []))
            if unknown:
                raise DataFormatError(f"{path}: ROI names not in manifest primary_rois: {sorted(unknown)[:10]}")
    dup = con.execute(
        f"SELECT count(*) - count(DISTINCT id) FROM read_parquet('{str(folder / 'neurons.parquet')}')"
    ).fetchone()[0]
    if dup:
        raise DataFormatError(f"{folder / 'neurons.parquet'}: {dup} duplicated ids")
    return {"name": manifest.get("name"), "version": manifest.get("version"), "rows": rows}
