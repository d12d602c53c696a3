"""Build the embedded ``sample`` release folder: real hemibrain data plus labelled synthetic partners.

Run ``python -m connectomix_release.build_sample [DEST]`` (default: the
package's ``data/sample``). The build is deterministic: one fixed seed, inputs
read in a fixed order, so rebuilding gives identical tables.

Real inputs
-----------
* ``navis.example_neurons()``: five hemibrain v1.2.1 DA1 lPNs with skeletons
  and all 14,836 of their synapse sites (position, ROI, confidence), in 8 nm
  voxels (Scheffer et al. 2020, CC BY 4.0).
* ``navis.example_neurons(kind="mesh")``: the surface meshes of the same five
  neurons (navis's ``navis/data/obj/<id>.obj``, hemibrain segmentation meshes in
  8 nm voxels, as navis loads them), written in nm to ``meshes.parquet``.
* ``S5_hemibrain_ALPN_meta.csv`` of flyconnectome/hemibrain_olf_data (MIT;
  Schlegel et al. 2021): 379 hemibrain olfactory projection neurons with their
  real ``pre``/``post``/``upstream``/``downstream`` totals, and the core
  annotation columns ``side`` (the table's own ``side`` column: "right" for
  all 379, including the five whose instance ends in ``_L``; hemibrain itself
  has no soma-side property, so nothing is derived from the instance suffix)
  and ``class`` (the table's PN class: uPN, mPN, biPN). The table has no
  superclass and no predicted transmitter, so the sample has no ``superclass``
  or ``nt`` column. A copy ships beside this script (``data/hemibrain_olf_data``).

What is invented, and how
-------------------------
The example neurons carry their own synapse sites but not the partners. For
each real site the partner body and the partner-side position are drawn here:

* every real PSD (``post`` connector) gets exactly one row, so a DA1 lPN's
  ``post`` rows equal its real ``post`` (= ``upstream``) total;
* every real T-bar (``pre`` connector) gets one or more rows (T-bars are
  polyadic), distributed so that a DA1 lPN's rows as ``pre`` equal its real
  ``downstream`` total from the PN table;
* a real PSD of one DA1 lPN lying within :data:`PAIR_MAX_NM` of a real T-bar of
  another is paired with the nearest such T-bar (``real_side == "both"``):
  both positions are real, the pairing is inferred;
* the other partners are drawn per ROI of the real site from plausible
  populations (:data:`INPUTS`, :data:`OUTPUTS`), and placed
  :data:`OFFSET_NM` away, the T-bar-to-PSD distances of real hemibrain
  synapses (112-278 nm, median 179 nm, in neuprint-python's
  ``fetch_synapse_connections`` example).

Every invented value is labelled: ``manifest.json`` ``synthetic``, the
``synthetic`` neuron column, the ``real_side`` synapse column, the README.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.spatial import cKDTree

from connectomix.errors import DataFormatError

from .meshes import MESHES_FILE, manifest_entry, write_meshes

HERE = Path(__file__).parent
PN_TABLE = HERE / "data" / "hemibrain_olf_data" / "S5_hemibrain_ALPN_meta.csv"
DEFAULT_DEST = HERE / "data" / "sample"

NAME = "hemibrain-olfactory-sample"
VERSION = "v1.2.1-sample.4"
SEED = 1734350788
VOXEL_NM = 8
DA1_IDS = (722817260, 754534424, 754538881, 1734350788, 1734350908)
NOT_PRIMARY = "NotPrimary"

#: Distance (nm) between a real site and the synthetic partner site placed for it, before snapping to the
#: 8 nm voxel grid (which moves it by at most 4*sqrt(3) nm).
OFFSET_NM = (120.0, 270.0)
#: A real DA1 PSD is paired with the nearest real T-bar of another DA1 lPN closer than this (nm).
PAIR_MAX_NM = 300.0
#: synapse_id = neuron rank (1-5, by body id) * ID_NEURON + navis connector_id * ID_CONNECTOR + PSD index.
ID_NEURON = 10_000_000
ID_CONNECTOR = 100

#: Synthetic partner bodies: key -> (type, instance, count, first id, is_neuron). Untyped fragments are mere
#: segments, like the many small bodies of real data.
POPULATIONS: dict[str, tuple[str | None, str | None, int, int, bool]] = {
    "ORN": ("ORN_DA1 (synthetic)", "ORN_DA1_R (synthetic)", 40, 9_000_000_001, True),
    "LN": ("LN (synthetic)", "LN_R (synthetic)", 20, 9_000_001_001, True),
    "KC": ("KC (synthetic)", "KC_R (synthetic)", 50, 9_000_002_001, True),
    "LHN": ("LHN (synthetic)", "LHN_R (synthetic)", 25, 9_000_003_001, True),
    "fragment": (None, None, 40, 9_000_009_001, False),
}

#: Presynaptic partners of the real PSDs, by ROI of the PSD: (pool, weight). ``PN_AL`` = real PNs with
#: dendrites in DA1 (the DA1 vPN, the two DA1 lPNs not in the sample) or many glomeruli (mPNs);
#: ``PN`` = any real PN of the table other than the five sample DA1 lPNs.
INPUTS: dict[str, list[tuple[str, float]]] = {
    "AL(R)": [("ORN", 0.62), ("LN", 0.25), ("PN_AL", 0.09), ("fragment", 0.04)],
    "CA(R)": [("KC", 0.45), ("PN", 0.15), ("fragment", 0.40)],
    "LH(R)": [("LHN", 0.45), ("PN", 0.35), ("fragment", 0.20)],
    "default": [("LHN", 0.50), ("PN", 0.20), ("fragment", 0.30)],
}
#: Postsynaptic partners of the real T-bars, by ROI of the T-bar.
OUTPUTS: dict[str, list[tuple[str, float]]] = {
    "AL(R)": [("LN", 0.55), ("ORN", 0.15), ("PN_AL", 0.24), ("fragment", 0.06)],
    "CA(R)": [("KC", 0.90), ("PN", 0.02), ("fragment", 0.08)],
    "LH(R)": [("LHN", 0.72), ("PN", 0.12), ("fragment", 0.16)],
    "default": [("LHN", 0.60), ("fragment", 0.40)],
}

SYNAPSE_COLUMNS = ["synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z",
                   "score", "roi", "pre_score", "post_score", "real_side"]
SYNAPSE_ROW_GROUP = 131_072

CITATION = (
    "Scheffer LK et al. (2020) A connectome and analysis of the adult Drosophila central brain. "
    "eLife 9:e57443, doi:10.7554/eLife.57443. "
    "Schlegel P, Bates AS et al. (2021) Information flow, cell types and stereotypy in a full olfactory "
    "connectome. eLife 10:e66018, doi:10.7554/eLife.66018."
)
SOURCE = (
    "hemibrain v1.2.1 (Janelia FlyEM; Scheffer et al. 2020): five DA1 lPNs with skeletons and synapse sites as "
    "shipped in navis's example data (navis.example_neurons()) and their meshes (navis.example_neurons("
    "kind='mesh'), navis/data/obj/<id>.obj); 379 olfactory projection neurons from "
    "S5_hemibrain_ALPN_meta.csv of github.com/flyconnectome/hemibrain_olf_data (Schlegel et al. 2021); "
    "synapse partners and their sites synthetic (connectomix_release.build_sample, seed "
    f"{SEED})"
)
LICENSE = (
    "hemibrain data: CC BY 4.0 (Scheffer et al. 2020); PN table: MIT (flyconnectome/hemibrain_olf_data); "
    "synthetic parts: CC0. navis itself (the software the example data ships with) is GPL-3.0; only its "
    "hemibrain example data is used here."
)


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def load_inputs(pn_table: Path = PN_TABLE) -> tuple[list[Any], pd.DataFrame]:
    """Read the five navis DA1 lPNs (sorted by id) and the PN table, and check they agree.

    Parameters
    ----------
    pn_table : Path
        ``S5_hemibrain_ALPN_meta.csv``.

    Returns
    -------
    (list of navis.TreeNeuron, pandas.DataFrame)

    Raises
    ------
    DataFormatError
        If the inputs are not the expected ones (other neurons, units, or synapse counts that no longer
        equal the table's ``pre``/``post``).
    """
    import navis

    da1 = sorted(navis.example_neurons(), key=lambda n: int(n.id))
    ids = tuple(int(n.id) for n in da1)
    if ids != DA1_IDS:
        raise DataFormatError(f"navis.example_neurons() returned bodies {ids}; expected {DA1_IDS}")
    pns = pd.read_csv(pn_table)
    missing = sorted(set(DA1_IDS) - set(pns["bodyid"]))
    if missing:
        raise DataFormatError(f"{pn_table}: bodies {missing} are not in the PN table")
    table = pns.set_index("bodyid")
    for n in da1:
        if str(n.units) != "8 nanometer":
            raise DataFormatError(f"navis example neuron {n.id} has units {n.units!s}; expected '8 nanometer'")
        kinds = n.connectors["type"].value_counts()
        for kind in ("pre", "post"):
            if int(kinds.get(kind, 0)) != int(table.loc[int(n.id), kind]):
                raise DataFormatError(
                    f"neuron {n.id}: {int(kinds.get(kind, 0))} navis '{kind}' connectors but the PN table "
                    f"says {kind}={int(table.loc[int(n.id), kind])}; the inputs changed"
                )
    return da1, pns


def load_meshes() -> dict[int, Any]:
    """The five DA1 lPNs' meshes from ``navis.example_neurons(kind="mesh")`` (8 nm voxels), by id.

    Raises
    ------
    DataFormatError
        If navis returns other neurons or units.
    """
    import navis

    meshes = {int(m.id): m for m in navis.example_neurons(kind="mesh")}
    if tuple(sorted(meshes)) != DA1_IDS:
        raise DataFormatError(f"navis.example_neurons(kind='mesh') returned bodies {sorted(meshes)}; "
                              f"expected {DA1_IDS}")
    for m in meshes.values():
        if str(m.units) != "8 nanometer":
            raise DataFormatError(f"navis example mesh {m.id} has units {m.units!s}; expected '8 nanometer'")
    return meshes


def real_sites(da1: Sequence[Any]) -> pd.DataFrame:
    """All real synapse sites of the DA1 lPNs in nm, one row per navis connector.

    Columns: ``neuron``, ``rank`` (1-5 by id), ``connector_id``, ``kind`` (pre/post), ``x``, ``y``, ``z``
    (nm, float64), ``roi`` (None outside the primary ROIs), ``confidence``.
    """
    parts = []
    for rank, n in enumerate(da1, start=1):
        c = n.connectors.sort_values("connector_id")
        parts.append(pd.DataFrame({
            "neuron": np.int64(n.id), "rank": rank, "connector_id": c["connector_id"].to_numpy("int64"),
            "kind": c["type"].astype(str).to_numpy(),
            **{a: c[a].to_numpy("float64") * VOXEL_NM for a in ("x", "y", "z")},
            "roi": [None if pd.isna(r) else str(r) for r in c["roi"]],
            "confidence": c["confidence"].to_numpy("float64"),
        }))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# synthetic partners
# --------------------------------------------------------------------------------------------


def partner_pools(pns: pd.DataFrame) -> dict[str, np.ndarray]:
    """Candidate partner ids per pool name (synthetic populations and real PNs; never a sample DA1 lPN)."""
    pools = {key: np.arange(first, first + count, dtype="int64")
             for key, (_, _, count, first, _) in POPULATIONS.items()}
    others = pns[~pns["bodyid"].isin(DA1_IDS)]
    pools["PN"] = np.sort(others["bodyid"].to_numpy("int64"))
    in_da1 = (others["glomerulus"] == "DA1") | (others["class"] == "mPN")
    pools["PN_AL"] = np.sort(others.loc[in_da1, "bodyid"].to_numpy("int64"))
    return pools


def draw_partners(rng: np.random.Generator, rois: Sequence[str | None], mix: dict[str, list[tuple[str, float]]],
                  pools: dict[str, np.ndarray]) -> np.ndarray:
    """One partner id per site, drawn from the pools of ``mix[roi]`` (``mix["default"]`` for other ROIs)."""
    keys = np.array([r if r in mix else "default" for r in rois], dtype=object)
    out = np.zeros(len(keys), dtype="int64")
    for key in sorted(set(keys)):
        idx = np.flatnonzero(keys == key)
        names = [name for name, _ in mix[key]]
        weights = np.array([w for _, w in mix[key]])
        which = rng.choice(len(names), size=len(idx), p=weights / weights.sum())
        for i, name in enumerate(names):
            sel = idx[which == i]
            out[sel] = rng.choice(pools[name], size=len(sel))
    return out


def offset_sites(rng: np.random.Generator, xyz: np.ndarray) -> np.ndarray:
    """Synthetic partner sites :data:`OFFSET_NM` from ``xyz`` (nm) in random directions, on the voxel grid."""
    direction = rng.normal(size=xyz.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    distance = rng.uniform(*OFFSET_NM, size=(len(xyz), 1))
    return np.round((xyz + direction * distance) / VOXEL_NM) * VOXEL_NM


def pair_da1_sites(sites: pd.DataFrame) -> pd.DataFrame:
    """Pair real DA1 PSDs with the nearest real T-bar of *another* DA1 lPN within :data:`PAIR_MAX_NM`.

    Returns
    -------
    pandas.DataFrame
        ``post_row``, ``pre_row`` (row labels of ``sites``), ``distance`` (nm); one row per paired PSD,
        ordered by ``post_row``. A T-bar can be paired with several PSDs (polyadic).
    """
    tbars = sites[sites["kind"] == "pre"]
    psds = sites[sites["kind"] == "post"]
    psd_xyz = psds[["x", "y", "z"]].to_numpy()
    best_dist = np.full(len(psds), np.inf)
    best_row = np.full(len(psds), -1, dtype="int64")
    for nid in DA1_IDS:
        own = tbars[tbars["neuron"] == nid]
        others = (psds["neuron"] != nid).to_numpy()
        if own.empty or not others.any():
            continue
        dist, idx = cKDTree(own[["x", "y", "z"]].to_numpy()).query(psd_xyz[others],
                                                                   distance_upper_bound=PAIR_MAX_NM)
        closer = np.zeros(len(psds), dtype=bool)
        closer[others] = dist < best_dist[others]
        best_dist[closer] = dist[closer[others]]
        best_row[closer] = own.index.to_numpy()[idx[closer[others]]]
    rows = np.flatnonzero(np.isfinite(best_dist))
    return pd.DataFrame({"post_row": psds.index.to_numpy()[rows], "pre_row": best_row[rows],
                         "distance": best_dist[rows]})


def polyadic_counts(rng: np.random.Generator, required: np.ndarray, total: int) -> np.ndarray:
    """PSDs per T-bar: at least ``max(1, required)`` each, summing to ``total`` (the real downstream count)."""
    base = np.maximum(required, 1)
    extra = int(total) - int(base.sum())
    if extra < 0:
        raise DataFormatError(f"downstream total {total} is smaller than the {int(base.sum())} PSDs required")
    return base + rng.multinomial(extra, np.full(len(base), 1.0 / len(base)))


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def build_synapses(sites: pd.DataFrame, pns: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """One row per synaptic connection (T-bar -> PSD) touching a real DA1 site; see the module docstring."""
    pools = partner_pools(pns)
    downstream = pns.set_index("bodyid")["downstream"]
    pairs = pair_da1_sites(sites)
    tbars = sites[sites["kind"] == "pre"]
    required = pairs["pre_row"].value_counts().reindex(tbars.index, fill_value=0).to_numpy()
    counts = np.concatenate([
        polyadic_counts(rng, required[(tbars["neuron"] == nid).to_numpy()], downstream.loc[nid])
        for nid in DA1_IDS
    ])
    if counts.max() >= ID_CONNECTOR:
        raise DataFormatError(f"a T-bar got {counts.max()} PSDs; synapse ids allow {ID_CONNECTOR - 1}")

    # T-bar rows: the first `required` PSDs of a T-bar are its paired real DA1 PSDs, the rest synthetic
    row = np.repeat(tbars.index.to_numpy(), counts)
    j = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
    t = sites.loc[row].reset_index(drop=True)
    paired = j < np.repeat(required, counts)
    partner_psd = pairs.sort_values(["pre_row", "post_row"])["post_row"].to_numpy()
    psd = sites.loc[partner_psd].reset_index(drop=True)
    post_xyz = np.empty((len(t), 3))
    post_xyz[paired] = psd[["x", "y", "z"]].to_numpy()
    post_ids = np.empty(len(t), dtype="int64")
    post_ids[paired] = psd["neuron"].to_numpy()
    post_ids[~paired] = draw_partners(rng, t.loc[~paired, "roi"].tolist(), OUTPUTS, pools)
    post_xyz[~paired] = offset_sites(rng, t.loc[~paired, ["x", "y", "z"]].to_numpy())
    post_score = np.full(len(t), np.nan)
    post_score[paired] = psd["confidence"].to_numpy()
    roi = t["roi"].to_numpy(dtype=object)
    roi[paired] = psd["roi"].to_numpy(dtype=object)
    out_rows = pd.DataFrame({
        "synapse_id": (t["rank"].to_numpy("int64") * ID_NEURON
                       + t["connector_id"].to_numpy("int64") * ID_CONNECTOR + j),
        "pre": t["neuron"].to_numpy("int64"), "post": post_ids,
        "pre_x": t["x"], "pre_y": t["y"], "pre_z": t["z"],
        "post_x": post_xyz[:, 0], "post_y": post_xyz[:, 1], "post_z": post_xyz[:, 2],
        "score": np.fmin(t["confidence"].to_numpy(), post_score),
        "roi": roi, "pre_score": t["confidence"].to_numpy(), "post_score": post_score,
        "real_side": np.where(paired, "both", "pre"),
    })

    # unpaired real PSDs: one row each, with a synthetic presynaptic partner and T-bar
    p = sites[(sites["kind"] == "post") & ~sites.index.isin(pairs["post_row"])].reset_index(drop=True)
    pre_xyz = offset_sites(rng, p[["x", "y", "z"]].to_numpy()) if len(p) else np.empty((0, 3))
    in_rows = pd.DataFrame({
        "synapse_id": p["rank"].to_numpy("int64") * ID_NEURON + p["connector_id"].to_numpy("int64") * ID_CONNECTOR,
        "pre": draw_partners(rng, p["roi"].tolist(), INPUTS, pools), "post": p["neuron"].to_numpy("int64"),
        "pre_x": pre_xyz[:, 0], "pre_y": pre_xyz[:, 1], "pre_z": pre_xyz[:, 2],
        "post_x": p["x"], "post_y": p["y"], "post_z": p["z"],
        "score": p["confidence"], "roi": p["roi"].to_numpy(dtype=object), "pre_score": np.nan,
        "post_score": p["confidence"], "real_side": "post",
    })
    syn = pd.concat([out_rows, in_rows], ignore_index=True)[SYNAPSE_COLUMNS]
    if (syn["pre"] == syn["post"]).any():
        raise DataFormatError("the sample builder produced an autapse")  # pools exclude the DA1 lPNs
    if not syn["synapse_id"].is_unique:
        raise DataFormatError("the sample builder produced duplicate synapse ids")
    floats = {c: "float64" for c in SYNAPSE_COLUMNS if c.endswith(("_x", "_y", "_z", "score"))}
    syn = syn.astype({"synapse_id": "int64", "pre": "int64", "post": "int64", "roi": "string",
                      "real_side": "string", **floats})
    return syn.sort_values(["pre", "synapse_id"]).reset_index(drop=True)


def build_connections(syn: pd.DataFrame) -> pd.DataFrame:
    """Weights per (pre, post, roi): the number of synapse rows, ``NotPrimary`` for a null ROI."""
    bucket = syn["roi"].fillna(NOT_PRIMARY)
    con = (syn.assign(roi=bucket).groupby(["pre", "post", "roi"], as_index=False).size()
           .rename(columns={"size": "weight"}).sort_values(["pre", "post", "roi"]).reset_index(drop=True))
    return con.astype({"pre": "int64", "post": "int64", "roi": "string", "weight": "int64"})


def build_roi_counts(sites: pd.DataFrame, syn: pd.DataFrame) -> pd.DataFrame:
    """Per-ROI ``pre`` (T-bars) and ``post`` (PSDs) of the bodies whose synapses the sample holds completely.

    The five DA1 lPNs: their real sites. Synthetic bodies: their rows (each synthetic T-bar has exactly one
    PSD, so rows = T-bars). Real PNs other than the five are left out: only their totals are known.
    """
    real = (sites.assign(roi=sites["roi"].fillna(NOT_PRIMARY)).groupby(["neuron", "roi", "kind"]).size()
            .unstack("kind", fill_value=0).reset_index().rename(columns={"neuron": "id"}))
    bucket = syn["roi"].fillna(NOT_PRIMARY)
    synthetic_min = min(first for _, _, _, first, _ in POPULATIONS.values())
    parts = []
    for side in ("pre", "post"):
        s = pd.DataFrame({"id": syn[side], "roi": bucket})
        parts.append(s[s["id"] >= synthetic_min].groupby(["id", "roi"]).size().rename(side))
    fake = pd.concat(parts, axis=1).fillna(0).reset_index()
    rc = pd.concat([real[["id", "roi", "pre", "post"]], fake[["id", "roi", "pre", "post"]]], ignore_index=True)
    rc = rc.astype({"id": "int64", "roi": "string", "pre": "int64", "post": "int64"})
    return rc.sort_values(["id", "roi"]).reset_index(drop=True)


def build_neurons(pns: pd.DataFrame, syn: pd.DataFrame) -> pd.DataFrame:
    """The 379 real PNs (real totals) and the synthetic partner bodies (totals = their sample rows)."""
    real = pd.DataFrame({
        "id": pns["bodyid"], "type": pns["cell.type"], "instance": pns["name"], "status": pns["status"],
        "pre": pns["pre"], "post": pns["post"], "is_neuron": True, "synthetic": False,
        "upstream": pns["upstream"], "downstream": pns["downstream"], "class": pns["class"],
        "glomerulus": pns["glomerulus"], "side": pns["side"], "cellBodyFiber": pns["cellBodyFiber"],
        "soma": pns["soma"],
    })
    as_pre, as_post = syn["pre"].value_counts(), syn["post"].value_counts()
    fake = []
    for type_, instance, count, first, is_neuron in POPULATIONS.values():
        for i in range(first, first + count):
            pre, post = int(as_pre.get(i, 0)), int(as_post.get(i, 0))
            fake.append({"id": i, "type": type_, "instance": instance, "status": "synthetic", "pre": pre,
                         "post": post, "is_neuron": is_neuron, "synthetic": True, "upstream": post,
                         "downstream": pre})
    neurons = pd.concat([real, pd.DataFrame(fake)], ignore_index=True)
    neurons = neurons.astype({
        "id": "int64", "type": "string", "instance": "string", "status": "string", "pre": "int64",
        "post": "int64", "is_neuron": "bool", "synthetic": "bool", "upstream": "int64", "downstream": "int64",
        "class": "string", "glomerulus": "string", "side": "string", "cellBodyFiber": "string",
        "soma": "boolean",
    })
    # the release format's core columns first (FORMAT.md); the PN table has no superclass and no predicted
    # transmitter, so those columns are absent (criteria on them are refused), never invented
    order = ["id", "type", "instance", "status", "side", "class", "pre", "post", "upstream", "downstream",
             "is_neuron", "synthetic", "glomerulus", "cellBodyFiber", "soma"]
    return neurons[order].sort_values("id").reset_index(drop=True)


#: The score (``manifest.score``, read as the dataset's ``ScoreInfo``). hemibrain's synapse confidence;
#: neuprint-python keeps ``confidence > :Meta.postHighAccuracyThreshold`` by default, the synapses counted in
#: ``weight`` (neuprint/queries/synapsecriteria.py of connectome-neuprint/neuprint-python at 3b0f372; its
#: docstring says "at least", its Cypher is strictly greater); hemibrain v1.2's value is 0.5 (catalogue
#: ``hemibrain.synapses.recommended_threshold_value``, a secondary source). ``> 0.5`` on floats is ``>=`` the
#: next float above 0.5.
SCORE = {
    "column": "confidence",
    "scale": "0.0-1.0 per synapse site (T-bar and PSD separately); score = the smaller of the two",
    "recommended": float(np.nextafter(0.5, 1.0)),
    "op": ">",
    "source": ("neuprint-python neuprint/queries/synapsecriteria.py@3b0f372: confidence > "
               ":Meta.postHighAccuracyThreshold by default; hemibrain v1.2 postHighAccuracyThreshold 0.5 "
               "(connectomix catalogue hemibrain.synapses.recommended_threshold_value, secondary source); "
               "> 0.5 written as >= 0.5000000000000001"),
}


def partial(neurons: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``manifest.partial``: the neurons the sample has without some kind of data, and why (FORMAT.md).

    Only the five DA1 lPNs have everything. The other real PNs have their real totals only: no per-ROI
    counts, no skeleton, and synapse rows only where they were drawn as synthetic partners. The synthetic
    bodies have no skeletons (their per-ROI counts and synapses are complete within the sample).
    """
    real = neurons.loc[~neurons["synthetic"] & ~neurons["id"].isin(DA1_IDS), "id"].astype("int64").tolist()
    fake = neurons.loc[neurons["synthetic"], "id"].astype("int64").tolist()
    totals_only = (f"real hemibrain olfactory PNs other than the five DA1 lPNs navis ships (navis.example_neurons): the sample has only their totals "
                   f"(pre, post, upstream, downstream) from {PN_TABLE.name}")
    return {
        "roi_counts": {"ids": real, "reason": f"{totals_only}, not their per-ROI counts; ROI criteria cannot "
                                              "match them"},
        "synapses": {"ids": real, "reason": f"{totals_only}; their rows in synapses.parquet and "
                                            "connections.parquet are only the synthetic connections in which "
                                            "they were drawn as partners of the five DA1 lPNs"},
        "skeletons": {"ids": sorted(real + fake), "reason": "only the five DA1 lPNs have skeletons (navis's "
                                                            "example neurons)"},
        "meshes": {"ids": sorted(real + fake), "reason": "only the five DA1 lPNs have meshes (navis's example "
                                                         "neurons, kind='mesh')"},
    }


def build_manifest(syn: pd.DataFrame, sites: pd.DataFrame, neurons: pd.DataFrame) -> dict[str, Any]:
    """``manifest.json`` content; ROIs are those of the real sites (hemibrain primary ROIs)."""
    rois = sorted(set(sites["roi"].dropna()))
    return {
        "format": "connectomix-release",
        "format_version": 1,
        "name": NAME,
        "version": VERSION,
        "description": (
            "Five real hemibrain v1.2.1 DA1 lPNs (skeletons, meshes and all 14,836 synapse sites with position, "
            "ROI and confidence) and the 379 hemibrain olfactory projection neurons of Schlegel et al. 2021 (real ids, "
            "types and synapse totals), with SYNTHETIC synapse partners. Connectivity is only complete for the "
            "five DA1 lPNs, and most of their partners are invented; see README.md."
        ),
        "source": SOURCE,
        "license": LICENSE,
        "citation": CITATION,
        "voxel_size_nm": [VOXEL_NM] * 3,
        "rois": rois,
        "primary_rois": rois,
        "score_name": "confidence",
        "score": SCORE,
        "synthetic": {
            "synapses": (
                "partner side synthetic: for real_side == 'pre' the columns post, post_x, post_y, post_z; for "
                "real_side == 'post' the columns pre, pre_x, pre_y, pre_z; for real_side == 'both' (a real PSD "
                "paired with a real T-bar of another DA1 lPN by proximity) only the pairing. The real side's "
                "position, roi and confidence (pre_score/post_score, score) are real; the synthetic side's "
                "score is null."
            ),
            "connections": "all rows: derived from synapses.parquet, so every weight counts synthetic partners",
            "neurons": (
                f"rows with synthetic == True (status 'synthetic', ids {POPULATIONS['ORN'][3]} and up) are "
                "invented partner bodies whose pre/post/upstream/downstream count their sample rows; the 379 "
                "rows with synthetic == False are real"
            ),
            "roi_counts": (
                "real for the five DA1 lPNs; rows of synthetic bodies count their synthetic synapses; other real "
                "PNs have no rows"
            ),
        },
        "partial": partial(neurons),
    }


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def _exact(values: np.ndarray) -> np.ndarray:
    """float32 skeleton values as the decimals navis read from its SWC files (14957.1, not 14957.0996...)."""
    return np.asarray(values, dtype="float32").astype(str).astype("float64")


def _fmt(v: float) -> str:
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def write_swc(neuron: Any, path: Path) -> None:
    """Write a navis skeleton (8 nm voxels) as standard SWC in nm, labels kept (1 = soma, 5 = fork, 6 = end)."""
    nodes = neuron.nodes.sort_values("node_id")
    xyzr = np.column_stack([_exact(nodes[c].fillna(0).to_numpy()) * VOXEL_NM for c in ("x", "y", "z", "radius")])
    header = [
        f"# hemibrain v1.2.1 body {int(neuron.id)} ({neuron.name}), skeleton from navis.example_neurons()",
        "# data: Scheffer et al. (2020) eLife 9:e57443, CC BY 4.0; written by connectomix_release.build_sample",
        "# units: nanometres (x, y, z and radius converted from 8 nm voxels)",
        "# labels: 0 = undefined, 1 = soma, 5 = fork point, 6 = end point (as in navis's SWC files)",
        "# node_id label x y z radius parent_id",
    ]
    lines = [
        f"{int(i)} {int(lab)} {_fmt(x)} {_fmt(y)} {_fmt(z)} {_fmt(r)} {int(par)}"
        for i, lab, (x, y, z, r), par in zip(nodes["node_id"], nodes["label"].astype(int), xyzr, nodes["parent_id"])
    ]
    path.write_text("\n".join(header + lines) + "\n")


def _write_parquet(df: pd.DataFrame, path: Path, row_group_size: int | None = None) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, row_group_size=row_group_size, compression="zstd")


def render_readme(manifest: dict[str, Any], tables: dict[str, pd.DataFrame], sites: pd.DataFrame) -> str:
    """The folder's README.md: what is real, what is synthetic, conventions, sources, licences, citations."""
    neurons, syn = tables["neurons"], tables["synapses"]
    fake = neurons[neurons["synthetic"]]
    sides = syn["real_side"].value_counts()
    both = syn[syn["real_side"] == "both"]
    da1_pairs = both.groupby(["pre", "post"]).size()
    pair_nm = float(np.median(np.linalg.norm(both[["pre_x", "pre_y", "pre_z"]].to_numpy()
                                             - both[["post_x", "post_y", "post_z"]].to_numpy(), axis=1)))
    pops = "\n".join(
        f"  * {count} × `{type_ or 'untyped fragment'}` (ids {first}-{first + count - 1}, "
        f"is_neuron={is_neuron})" for type_, _, count, first, is_neuron in POPULATIONS.values()
    )
    other_pns = neurons.loc[~neurons["synthetic"] & ~neurons["id"].isin(DA1_IDS), "id"]
    pn_rows = pd.concat([syn["pre"], syn["post"]]).value_counts().reindex(other_pns).dropna()
    da1_others = neurons.loc[~neurons["synthetic"] & ~neurons["id"].isin(DA1_IDS)
                             & (neurons["type"] == "DA1_lPN"), "id"].tolist()
    da1_other_rows = int((syn["pre"].isin(da1_others) | syn["post"].isin(da1_others)).sum())
    return f"""# {manifest['name']} ({manifest['version']})

The embedded default dataset of connectomix: `connectomix.open("sample")`, offline. Built by
`python -m connectomix_release.build_sample` (deterministic, seed {SEED}) from the real inputs below.
Coordinates are nanometres; ids int64; format: `FORMAT.md` of connectomix_release.

## Real

* **Five DA1 lPNs** of hemibrain v1.2.1 ({', '.join(map(str, DA1_IDS))}) as shipped with navis
  (`navis.example_neurons()`):
  * skeletons, `skeletons/<id>.swc`: every node, label, radius and parent, converted from 8 nm voxels to nm;
  * meshes, `meshes.parquet`: their surfaces as navis ships them (`navis.example_neurons(kind="mesh")`,
    navis's `navis/data/obj/<id>.obj`: hemibrain segmentation meshes in 8 nm voxels), every vertex and
    triangle, vertices × 8 = nm stored as float32 (FORMAT.md, "Meshes"; `get_meshes`);
  * all {len(sites):,} synapse sites ({int((sites.kind == 'pre').sum()):,} T-bars, \
{int((sites.kind == 'post').sum()):,} PSDs): position (voxels × 8 = nm), ROI
    (null outside the primary ROIs) and confidence. Each appears in `synapses.parquet` on its own side of
    the rows (see `real_side`), and their per-ROI counts in `roi_counts.parquet` are the real ones.
* **379 olfactory projection neurons** (`neurons.parquet`, `synthetic == False`): id, type (`cell.type`),
  instance (`name`), status, pre, post, upstream, downstream, class, glomerulus, side, cellBodyFiber,
  soma from `S5_hemibrain_ALPN_meta.csv` (flyconnectome/hemibrain_olf_data; note that it renames three
  glomeruli relative to hemibrain v1.2.1: VC5->VM6, VC3l->VC3, VC3m->VC5). The five DA1 lPNs' navis
  synapse counts equal this table's `pre`/`post` exactly.

## SYNTHETIC

hemibrain ships the example neurons' synapse sites without their partners. The partners are invented:

* **Partner bodies**: {len(fake)} rows of `neurons.parquet` with `synthetic == True` and `status == "synthetic"`;
  the typed ones have type and instance ending in "(synthetic)", the fragments no type:
{pops}
  Their `pre`/`post` (and `upstream`/`downstream`) count their rows in `synapses.parquet`.
* **Partners of the real sites**, drawn per ROI of the real site: in AL(R) mostly ORN_DA1 and LN bodies and
  real PNs with dendrites in DA1 (the DA1 vPN, the two DA1 lPNs outside the sample, multiglomerular PNs); in
  CA(R) mostly KC bodies; in LH(R) LHN bodies and real PNs; elsewhere LHN bodies and fragments.
  {len(pn_rows)} real PNs appear as partners ({int(pn_rows.min())}-{int(pn_rows.max())} rows each): those
  connections are synthetic too.
* **Partner-side positions**: {OFFSET_NM[0]:.0f}-{OFFSET_NM[1]:.0f} nm from the real site in a random
  direction, snapped to the 8 nm voxel grid, like the T-bar-to-PSD distances of real hemibrain synapses
  (112-278 nm, median 179 nm, in neuprint-python's `fetch_synapse_connections` documentation example).
* **DA1 lPN -> DA1 lPN connections** ({len(both)} rows, {len(da1_pairs)} ordered pairs, no autapses): a real PSD
  of one DA1 lPN within {PAIR_MAX_NM:.0f} nm of a real T-bar of another is paired with the nearest one. Both
  positions are real (median distance {pair_nm:.0f} nm); the pairing is inferred.
* `connections.parquet` is derived from `synapses.parquet`, so every weight includes synthetic partner
  assignments. **Connectivity is only complete for the five DA1 lPNs**; the other 374 real PNs have only
  their real totals and the few synthetic connections in which they were drawn as partners.

## What is partial, and how connectomix reports it

Only the five DA1 lPNs have everything (skeleton, mesh, every synapse site, per-ROI counts). `manifest.json`
`partial` lists, per kind of data, the neurons the sample has without it:

* **Per-ROI counts** (`partial.roi_counts`, {len(other_pns)} ids): the other real PNs. `fetch_neurons` warns
  (`MissingDataWarning`, naming them) when it returns such neurons without `roi_counts` rows, and when ROI
  criteria leave out neurons that meet every other criterion -- e.g. `fetch_neurons(type="DA1_lPN")` returns
  seven DA1 lPNs: the five above and {', '.join(map(str, sorted(set(da1_others))))}, which are real (real
  totals) but have no per-ROI counts, so `fetch_neurons(type="DA1_lPN", rois="AL(R)")` returns five and says
  which two it could not place.
* **Synapses** (`partial.synapses`, the same ids): their rows are only the synthetic connections in which they
  were drawn as partners of the five (e.g. {da1_other_rows} rows for the two other DA1 lPNs together), far
  fewer than their real totals in `neurons.parquet`. `get_connectivity` and `get_synapses` name them in a
  `MissingDataWarning` when asked about them.
* **Skeletons** (`partial.skeletons`, every body but the five): `get_skeletons(ids)` raises
  `IdsNotFoundError` naming them; `get_skeletons(ids, missing="warn")` returns the others with a
  `MissingDataWarning` naming them, `missing="skip"` returns the others silently.
* **Meshes** (`partial.meshes`, every body but the five): `get_meshes` behaves exactly as `get_skeletons`.

## Columns and counting conventions

* `synapses.parquet`: one row per synaptic connection (T-bar -> PSD), {len(syn):,} rows. Extra columns:
  * `real_side` (sample-specific): `"pre"` ({int(sides.get('pre', 0)):,} rows: real DA1 T-bar, synthetic
    partner and PSD), `"post"` ({int(sides.get('post', 0)):,} rows: real DA1 PSD, synthetic partner and
    T-bar), `"both"` ({int(sides.get('both', 0)):,} rows: real T-bar and real PSD of two DA1 lPNs).
  * `pre_score`/`post_score`: real confidence of each side, null on a synthetic side; `score` is the real
    side's confidence (the smaller of the two for `"both"`, as for neuPrint data).
  * `roi`: ROI of the postsynaptic site: the real PSD's ROI, or for `"pre"` rows the real T-bar's ROI (the
    synthetic PSD lies {OFFSET_NM[0]:.0f}-{OFFSET_NM[1]:.0f} nm away). Null outside the primary ROIs.
  * `synapse_id` = rank × {ID_NEURON:,} + navis `connector_id` × {ID_CONNECTOR} + PSD index, with rank 1-5 the
    position of the real neuron in the id order above: for `"pre"`/`"both"` rows the T-bar's neuron and
    connector (index = which of the T-bar's PSDs), for `"post"` rows the PSD's (index 0).
* T-bars are polyadic: a DA1 T-bar has several rows with the same `pre_x/y/z`. The rows of each DA1 lPN as
  `pre` add up to its real `downstream` (connections), its rows as `post` to its real `post` = `upstream`.
* `neurons.pre` counts T-bars and `neurons.post` PSDs, as in neuPrint; `upstream`/`downstream` count
  connections. `roi_counts.parquet` follows the same rule (DA1 `pre` = real T-bars per ROI) and covers the
  DA1 lPNs and the synthetic bodies only. `connections.weight` counts rows (PSDs).

## Sources, licences, citations

* hemibrain: Janelia FlyEM, data under CC BY 4.0. Scheffer LK et al. (2020) A connectome and analysis of the
  adult Drosophila central brain. *eLife* 9:e57443. doi:10.7554/eLife.57443
* PN table: flyconnectome/hemibrain_olf_data (MIT). Schlegel P, Bates AS et al. (2021) Information flow,
  cell types and stereotypy in a full olfactory connectome. *eLife* 10:e66018. doi:10.7554/eLife.66018
* navis (GPL-3.0) distributes the five example neurons (skeletons and meshes); only that hemibrain data is
  used, no navis code.
* Synthetic parts: CC0.

Cite Scheffer et al. (2020) and Schlegel et al. (2021) when you use the real parts.
"""


def build(dest: Path = DEFAULT_DEST, *, pn_table: Path = PN_TABLE) -> Path:
    """Build the sample release folder at ``dest`` (replaced atomically) and return its path.

    Parameters
    ----------
    dest : Path
        Folder to write; an existing one is replaced only once the new one is complete.
    pn_table : Path
        ``S5_hemibrain_ALPN_meta.csv``.

    Returns
    -------
    Path
        ``dest``.
    """
    dest = Path(dest)
    da1, pns = load_inputs(pn_table)
    sites = real_sites(da1)
    rng = np.random.default_rng(SEED)
    syn = build_synapses(sites, pns, rng)
    tables = {
        "neurons": build_neurons(pns, syn),
        "connections": build_connections(syn),
        "roi_counts": build_roi_counts(sites, syn),
        "synapses": syn,
    }
    manifest = build_manifest(syn, sites, tables["neurons"])
    meshes = load_meshes()
    manifest["meshes"] = {**manifest_entry(len(meshes)),
                          "source": "navis.example_neurons(kind='mesh') (navis 1.x, navis/data/obj/<id>.obj): "
                                    "hemibrain v1.2.1 meshes of the five DA1 lPNs in 8 nm voxels, multiplied by 8"}

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        tmp.chmod(0o755)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        for name, df in tables.items():
            _write_parquet(df, tmp / f"{name}.parquet", SYNAPSE_ROW_GROUP if name == "synapses" else None)
        (tmp / "skeletons").mkdir()
        for n in da1:
            write_swc(n, tmp / "skeletons" / f"{int(n.id)}.swc")
        # converted to nm (x 8) by write_meshes; the manifest declares them (FORMAT.md, "Meshes")
        write_meshes(tmp / MESHES_FILE, meshes)
        (tmp / "README.md").write_text(render_readme(manifest, tables, sites))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m connectomix_release.build_sample [DEST]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1 or (args and args[0].startswith("-")):
        print("usage: python -m connectomix_release.build_sample [DEST]", file=sys.stderr)
        return 2
    print(build(Path(args[0]) if args else DEFAULT_DEST))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
