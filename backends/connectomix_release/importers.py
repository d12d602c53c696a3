"""Convert public connectome release downloads into connectomix release folders.

``connectomix convert <format> SRC DEST`` calls these; each reads its inputs
with DuckDB/pyarrow (columnar, streaming: a synapse table of tens of millions
of rows is never loaded into pandas) and writes the folder atomically.

Formats
-------
``neuprint-csv``
    neuPrint's compact connectome exports: ``traced-neurons.csv``
    (``bodyId,type,instance``), ``traced-total-connections.csv``
    (``bodyId_pre,bodyId_post,weight``) and optionally
    ``traced-roi-connections.csv`` (``bodyId_pre,bodyId_post,roi,weight``), as
    in hemibrain's ``exported-traced-adjacencies-v1.2``; also the un-prefixed
    names ``neuprint-python``'s ``fetch_adjacencies(export_dir=...)`` writes.
``flywire``
    FlyWire release tables (Codex / Zenodo): ``connections.csv.gz`` or
    ``connections_no_threshold.csv.gz`` (``pre_root_id, post_root_id,
    neuropil, syn_count``), optional ``neurons.csv.gz``,
    ``classification.csv.gz``, ``consolidated_cell_types.csv.gz`` and a synapse
    table (``flywire_synapses_*.feather`` / ``synapses.parquet``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from connectomix.errors import DataFormatError, InvalidArgumentError

from .writer import NOT_PRIMARY, copy_synapses, staging, write_manifest, write_table

__all__ = ["IMPORTERS", "import_neuprint_csv", "import_flywire"]

#: FlyWire's label for synapses outside every neuropil.
FLYWIRE_UNASSIGNED = ("UNASGD", "")


class _Sources:
    """Tabular input files as DuckDB relations, with column checks that name the file."""

    def __init__(self):
        self.con = duckdb.connect()
        self._n = 0

    def relation(self, path: Path) -> str:
        name = path.name.lower()
        quoted = str(path).replace("'", "''")
        if name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
            return f"read_csv('{quoted}', header=true, auto_detect=true, sample_size=-1)"
        if name.endswith(".parquet"):
            return f"read_parquet('{quoted}')"
        if name.endswith((".feather", ".arrow", ".ipc")):
            import pyarrow.dataset as pads

            self._n += 1
            view = f"src_{self._n}"
            self.con.register(view, pads.dataset(str(path), format="ipc"))
            return view
        raise InvalidArgumentError(f"{path}: unsupported file type; use .csv(.gz), .parquet or .feather")

    def columns(self, relation: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()]

    def pick(self, relation: str, path: Path, target: str, aliases: Sequence[str], required: bool = True) -> str | None:
        cols = self.columns(relation)
        for a in aliases:
            if a in cols:
                return a
        if required:
            raise DataFormatError(f"{path.name}: no column for {target!r} (expected one of {list(aliases)}); "
                                  f"it has {cols}")
        return None

    def check_integers(self, relation: str, path: Path, columns: Sequence[str]) -> None:
        for col in columns:
            bad = self.con.execute(
                f'SELECT "{col}" FROM {relation} WHERE "{col}" IS NOT NULL AND TRY_CAST("{col}" AS BIGINT) IS NULL '
                f"LIMIT 1"
            ).fetchone()
            if bad is not None:
                raise DataFormatError(f"{path.name}: column {col!r} must hold integer ids; found {bad[0]!r}")

    def df(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()


def _find(src: Path, names: Sequence[str], *, what: str, required: bool = True) -> Path | None:
    for n in names:
        if (src / n).is_file():
            return src / n
    if required:
        raise DataFormatError(f"{str(src)!r} has no {what} file; expected one of {list(names)}")
    return None


def _check_src(src: Path) -> Path:
    src = Path(src).expanduser()
    if not src.is_dir():
        raise InvalidArgumentError(f"source {str(src)!r} is not a folder of downloaded release files")
    return src


def _totals(connections: pd.DataFrame) -> pd.DataFrame:
    pre = connections.groupby("pre")["weight"].sum().rename("pre")
    post = connections.groupby("post")["weight"].sum().rename("post")
    pre.index.name = post.index.name = "id"
    return pd.concat([pre, post], axis=1).fillna(0).astype("int64")


def _roi_counts(connections: pd.DataFrame) -> pd.DataFrame:
    pre = connections.groupby(["pre", "roi"])["weight"].sum().rename("pre")
    post = connections.groupby(["post", "roi"])["weight"].sum().rename("post")
    pre.index.names = post.index.names = ["id", "roi"]
    out = pd.concat([pre, post], axis=1).fillna(0).astype("int64").reset_index()
    return out[out["id"] != 0]


def _neuron_table(listed: pd.DataFrame, connections: pd.DataFrame) -> pd.DataFrame:
    """Listed bodies are neurons; partners only seen in connections are mere segments."""
    ids = np.union1d(connections["pre"].to_numpy(), connections["post"].to_numpy())
    ids = ids[ids != 0]
    extra = pd.DataFrame({"id": np.setdiff1d(ids, listed["id"].to_numpy())})
    extra["is_neuron"] = False
    listed = listed.assign(is_neuron=True)
    neurons = pd.concat([listed, extra], ignore_index=True)
    totals = _totals(connections)
    neurons["pre"] = neurons["id"].map(totals["pre"]).fillna(0).astype("int64")
    neurons["post"] = neurons["id"].map(totals["post"]).fillna(0).astype("int64")
    for col in ("type", "instance", "status"):
        if col not in neurons:
            neurons[col] = pd.NA
    return neurons


# -- neuPrint --------------------------------------------------------------------------------------


def import_neuprint_csv(src: Path, dest: Path, *, name: str | None = None, version: str | None = None,
                        overwrite: bool = False, primary_rois: Sequence[str] | None = None,
                        voxel_size_nm: Sequence[float] = (8, 8, 8)) -> Path:
    """Convert a neuPrint compact connectome export (CSV) into a release folder.

    Per-ROI weights in neuPrint exports may overlap (nested ROIs). The release
    format needs the primary ROIs, which partition the brain, plus
    ``"NotPrimary"`` for the rest: give ``primary_rois``, or rely on the export
    already being primary-only (it has ``NotPrimary`` rows, or no pair's ROI
    weights exceed its total) -- otherwise a :class:`DataFormatError` asks for
    ``primary_rois``.

    ``neurons.pre``/``post`` are the summed outgoing/incoming connection
    weights among the exported bodies (exports carry no T-bar counts).
    """
    src = _check_src(src)
    neurons_f = _find(src, ["traced-neurons.csv", "neurons.csv"], what="neurons CSV")
    totals_f = _find(src, ["traced-total-connections.csv", "total-connections.csv"], what="total-connections CSV")
    roi_f = _find(src, ["traced-roi-connections.csv", "roi-connections.csv"], what="roi-connections CSV",
                  required=False)
    s = _Sources()
    n_rel, t_rel = s.relation(neurons_f), s.relation(totals_f)
    body = s.pick(n_rel, neurons_f, "bodyId", ["bodyId", "bodyid", "body_id"])
    s.check_integers(n_rel, neurons_f, [body])
    cols = s.columns(n_rel)
    listed = s.df(
        f'SELECT CAST("{body}" AS BIGINT) AS id'
        + "".join(f', CAST("{c}" AS VARCHAR) AS "{c}"' for c in ("type", "instance", "status") if c in cols)
        + f" FROM {n_rel}"
    )
    for c in ("bodyId_pre", "bodyId_post", "weight"):
        s.pick(t_rel, totals_f, c, [c])
    s.check_integers(t_rel, totals_f, ["bodyId_pre", "bodyId_post", "weight"])
    totals = s.df(f"SELECT CAST(bodyId_pre AS BIGINT) AS pre, CAST(bodyId_post AS BIGINT) AS post, "
                  f"CAST(sum(weight) AS BIGINT) AS weight FROM {t_rel} GROUP BY 1, 2")
    if roi_f is not None:
        r_rel = s.relation(roi_f)
        for c in ("bodyId_pre", "bodyId_post", "roi", "weight"):
            s.pick(r_rel, roi_f, c, [c])
        s.check_integers(r_rel, roi_f, ["bodyId_pre", "bodyId_post", "weight"])
        per_roi = s.df(f"SELECT CAST(bodyId_pre AS BIGINT) AS pre, CAST(bodyId_post AS BIGINT) AS post, "
                       f"CAST(roi AS VARCHAR) AS roi, CAST(sum(weight) AS BIGINT) AS weight FROM {r_rel} GROUP BY 1, 2, 3")
        connections, primary = _partition(per_roi, totals, primary_rois, roi_f)
    else:
        connections = totals.assign(roi=NOT_PRIMARY)[["pre", "post", "roi", "weight"]]
        primary = sorted(primary_rois or [])
    connections = connections[connections["weight"] > 0]
    neurons = _neuron_table(listed, connections)
    with staging(dest, overwrite=overwrite) as tmp:
        write_table(tmp, "neurons", neurons)
        write_table(tmp, "connections", connections, primary_rois=primary)
        write_table(tmp, "roi_counts", _roi_counts(connections), primary_rois=primary)
        write_manifest(tmp, {
            "name": name or src.name, "version": version or "unversioned",
            "description": f"Converted from the neuPrint CSV export in {src.name} ({neurons_f.name}, "
                           f"{totals_f.name}{', ' + roi_f.name if roi_f else ''}). neurons.pre/post are summed "
                           "connection weights among the exported bodies.",
            "source": str(src), "voxel_size_nm": list(voxel_size_nm), "primary_rois": primary,
        })
    return Path(dest).expanduser().resolve()


def _partition(per_roi: pd.DataFrame, totals: pd.DataFrame, primary_rois: Sequence[str] | None,
               roi_file: Path) -> tuple[pd.DataFrame, list[str]]:
    """Per-ROI rows restricted to primary ROIs plus NotPrimary = total - sum(primary)."""
    present = set(per_roi["roi"])
    if primary_rois is not None:
        primary = sorted(set(primary_rois))
        unknown = sorted(set(primary) - present)
        if unknown and not present & set(primary):
            raise InvalidArgumentError(f"none of primary_rois {unknown[:5]} occur in {roi_file.name}")
    else:
        primary = sorted(present - {NOT_PRIMARY})
    rows = per_roi[per_roi["roi"].isin(primary)]
    summed = rows.groupby(["pre", "post"])["weight"].sum()
    merged = totals.set_index(["pre", "post"])["weight"].to_frame("total").join(summed.rename("inside"), how="left")
    merged["inside"] = merged["inside"].fillna(0).astype("int64")
    over = merged[merged["inside"] > merged["total"]]
    if len(over):
        pre, post = over.index[0]
        raise DataFormatError(
            f"{roi_file.name}: the ROI weights of {len(over)} pair(s) exceed their totals (e.g. {pre}->{post}: "
            f"{int(over['inside'].iloc[0])} > {int(over['total'].iloc[0])}), so these ROIs overlap; pass the "
            "dataset's primary ROIs with --primary-rois (comma-separated or a file, one per line)"
        )
    rest = (merged["total"] - merged["inside"]).rename("weight").reset_index()
    rest = rest[rest["weight"] > 0].assign(roi=NOT_PRIMARY)
    connections = pd.concat([rows, rest[["pre", "post", "roi", "weight"]]], ignore_index=True)
    return connections, primary


# -- FlyWire ---------------------------------------------------------------------------------------


def import_flywire(src: Path, dest: Path, *, name: str | None = None, version: str | None = None,
                   overwrite: bool = False, coordinate_unit: str = "nm",
                   voxel_size_nm: Sequence[float] = (4, 4, 40)) -> Path:
    """Convert FlyWire release tables (Codex / Zenodo downloads) into a release folder.

    ``coordinate_unit`` says whether the synapse table's positions are ``"nm"``
    (default) or ``"voxel"`` (multiplied by ``voxel_size_nm``).
    ``neurons.pre``/``post`` are summed ``syn_count`` of outgoing/incoming
    connections. Bodies listed in ``neurons``/``classification`` files are
    neurons; other partners are mere segments.
    """
    if coordinate_unit not in ("nm", "voxel"):
        raise InvalidArgumentError(f"coordinate_unit must be 'nm' or 'voxel'; got {coordinate_unit!r}")
    src = _check_src(src)
    conn_f = _find(src, [f"{stem}{ext}" for stem in ("connections", "connections_no_threshold", "connections_princeton")
                         for ext in (".csv.gz", ".csv", ".parquet", ".feather")], what="connections table")
    s = _Sources()
    c_rel = s.relation(conn_f)
    pre = s.pick(c_rel, conn_f, "pre_root_id", ["pre_root_id", "pre_pt_root_id"])
    post = s.pick(c_rel, conn_f, "post_root_id", ["post_root_id", "post_pt_root_id"])
    count = s.pick(c_rel, conn_f, "syn_count", ["syn_count", "n_syn", "weight"])
    npil = s.pick(c_rel, conn_f, "neuropil", ["neuropil"], required=False)
    s.check_integers(c_rel, conn_f, [pre, post, count])
    unassigned = ", ".join(f"'{u}'" for u in FLYWIRE_UNASSIGNED)
    roi_expr = (f"CASE WHEN \"{npil}\" IS NULL OR CAST(\"{npil}\" AS VARCHAR) IN ({unassigned}) "
                f"THEN '{NOT_PRIMARY}' ELSE CAST(\"{npil}\" AS VARCHAR) END") if npil else f"'{NOT_PRIMARY}'"
    connections = s.df(
        f'SELECT CAST("{pre}" AS BIGINT) AS pre, CAST("{post}" AS BIGINT) AS post, {roi_expr} AS roi, '
        f'CAST(sum("{count}") AS BIGINT) AS weight FROM {c_rel} GROUP BY 1, 2, 3'
    )
    connections = connections[(connections["weight"] > 0)]
    primary = sorted(set(connections["roi"]) - {NOT_PRIMARY})
    listed = _flywire_neurons(s, src)
    neurons = _neuron_table(listed, connections)
    syn_f = _find(src, ["flywire_synapses_783.feather", "synapses.feather", "synapses.parquet"],
                  what="synapse table", required=False) or next(iter(sorted(src.glob("flywire_synapses_*.feather"))), None)
    with staging(dest, overwrite=overwrite) as tmp:
        write_table(tmp, "neurons", neurons)
        write_table(tmp, "connections", connections, primary_rois=primary)
        write_table(tmp, "roi_counts", _roi_counts(connections), primary_rois=primary)
        n_syn = _flywire_synapses(s, syn_f, tmp, coordinate_unit, voxel_size_nm) if syn_f else 0
        write_manifest(tmp, {
            "name": name or src.name, "version": version or "unversioned",
            "description": f"Converted from FlyWire release tables in {src.name}"
                           + (f" with {n_syn:,} synapses from {syn_f.name}" if syn_f else "")
                           + ". neurons.pre/post are summed syn_count of the connections table.",
            "source": str(src), "voxel_size_nm": list(voxel_size_nm), "primary_rois": primary,
            "score_name": "cleft_score" if syn_f else None,
        })
    return Path(dest).expanduser().resolve()


def _flywire_neurons(s: _Sources, src: Path) -> pd.DataFrame:
    frames = []
    for names, wanted in (
        (["neurons.csv.gz", "neurons.csv"], []),
        (["classification.csv.gz", "classification.csv"],
         ["flow", "super_class", "class", "sub_class", "cell_type", "hemibrain_type", "hemilineage", "side", "nerve"]),
        (["consolidated_cell_types.csv.gz", "consolidated_cell_types.csv"], ["primary_type"]),
    ):
        f = _find(src, names, what="neuron table", required=False)
        if f is None:
            continue
        rel = s.relation(f)
        rid = s.pick(rel, f, "root_id", ["root_id", "pt_root_id"])
        s.check_integers(rel, f, [rid])
        have = [c for c in wanted if c in s.columns(rel)]
        frames.append(s.df(f'SELECT DISTINCT CAST("{rid}" AS BIGINT) AS id'
                           + "".join(f', CAST("{c}" AS VARCHAR) AS "{c}"' for c in have) + f" FROM {rel}")
                      .drop_duplicates("id").set_index("id"))
    if not frames:
        return pd.DataFrame({"id": pd.Series([], dtype="int64")})
    listed = pd.concat(frames, axis=1).reset_index()
    type_sources = [c for c in ("primary_type", "cell_type", "hemibrain_type") if c in listed]
    listed["type"] = listed[type_sources].bfill(axis=1).iloc[:, 0] if type_sources else pd.NA
    return listed.drop(columns=[c for c in ("primary_type", "cell_type") if c in listed])


_SYNAPSE_ALIASES = {
    "synapse_id": ["id", "synapse_id"],
    "pre": ["pre_pt_root_id", "pre_root_id", "pre"],
    "post": ["post_pt_root_id", "post_root_id", "post"],
    **{f"{side}_{a}": [f"{side}_{a}", f"{side}_pt_position_{a}"] for side in ("pre", "post") for a in "xyz"},
    "score": ["cleft_score", "score"],
    "roi": ["neuropil", "roi"],
}


def _flywire_synapses(s: _Sources, path: Path, folder: Path, unit: str, voxel: Sequence[float]) -> int:
    rel = s.relation(path)
    picked = {t: s.pick(rel, path, t, a, required=t not in ("synapse_id", "score", "roi"))
              for t, a in _SYNAPSE_ALIASES.items()}
    s.check_integers(rel, path, [picked["pre"], picked["post"]] + ([picked["synapse_id"]] if picked["synapse_id"] else []))
    scale = dict(zip("xyz", voxel)) if unit == "voxel" else {"x": 1, "y": 1, "z": 1}
    unassigned = ", ".join(f"'{u}'" for u in FLYWIRE_UNASSIGNED)
    parts = [
        f'CAST("{picked["synapse_id"]}" AS BIGINT) AS synapse_id' if picked["synapse_id"]
        else "CAST(row_number() OVER () AS BIGINT) AS synapse_id",
        f'CAST("{picked["pre"]}" AS BIGINT) AS pre', f'CAST("{picked["post"]}" AS BIGINT) AS post',
        *[f'CAST("{picked[f"{side}_{a}"]}" AS DOUBLE) * {float(scale[a])} AS {side}_{a}'
          for side in ("pre", "post") for a in "xyz"],
        f'CAST("{picked["score"]}" AS DOUBLE) AS score' if picked["score"] else "CAST(NULL AS DOUBLE) AS score",
        (f'CASE WHEN "{picked["roi"]}" IS NULL OR CAST("{picked["roi"]}" AS VARCHAR) IN ({unassigned}) THEN NULL '
         f'ELSE CAST("{picked["roi"]}" AS VARCHAR) END AS roi') if picked["roi"] else "CAST(NULL AS VARCHAR) AS roi",
    ]
    return copy_synapses(s.con, f"SELECT {', '.join(parts)} FROM {rel}", folder)


IMPORTERS: dict[str, Callable[..., Path]] = {
    "neuprint-csv": import_neuprint_csv,
    "flywire": import_flywire,
}
