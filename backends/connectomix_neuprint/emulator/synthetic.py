"""A tiny SYNTHETIC release folder for tests, demos and downstream CI.

Every row is invented (the manifest's ``synthetic`` key says so). It is small
enough to build in milliseconds but exercises what neuPrint queries care
about: neurons with types, instances and statuses, ``:Segment``-only bodies,
three primary ROIs with awkward names plus a non-primary one, polyadic
synapses (one T-bar, several PSDs) with per-side confidences (some exactly
0.5, to test ``>`` against ``>=``), synapses outside every primary ROI
(``NotPrimary``), an autapse, a connection without synapse rows, extra neuron
columns and two skeletons.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["write_synthetic_release", "SYNTHETIC_ROIS"]

#: Primary ROIs of the synthetic release.
SYNTHETIC_ROIS = ["AL(R)", "LH(R)", "MB(+ACA)(R)"]

_NEURONS = [
    # id, type, instance, status, is_neuron, cellBodyFiber
    (101, "DA1_lPN", "DA1_lPN_R", "Traced", True, "ADL05"),
    (102, "DA1_lPN", "DA1_lPN_R", "Traced", True, "ADL05"),
    (103, "DA1_lPN", "DA1_lPN_L", "Anchor", True, "ADL05"),
    (201, "KCg-m", "KCg-m_R", "Traced", True, None),
    (202, "KCg-m", "KCg-m_R", "Traced", True, None),
    (203, "KCab-s", "KCab-s_R", "Traced", True, None),
    (301, "MBON01", "MBON01(y5b'2a)_R", "Traced", True, "PDM08"),
    (302, "MBON02", "MBON02(B2B'2a)_R", "Anchor", True, "PDM12"),
    (401, "LHAV4a4", "LHAV4a4_R", "Traced", True, "AV4"),
    (402, None, None, "Orphan", True, None),
    (9001, None, None, None, False, None),
    (9002, None, None, None, False, None),
    (9003, None, None, None, False, None),
]

# (pre, post, roi or None = outside all primary ROIs, number of connections)
_CONNECTIONS = [
    (101, 201, "MB(+ACA)(R)", 7), (101, 202, "MB(+ACA)(R)", 4), (101, 401, "LH(R)", 9), (101, 401, "AL(R)", 2),
    (102, 201, "MB(+ACA)(R)", 3), (102, 401, "LH(R)", 5), (102, 9001, "LH(R)", 2),
    (103, 203, "MB(+ACA)(R)", 6), (103, 402, None, 3),
    (201, 301, "MB(+ACA)(R)", 8), (202, 301, "MB(+ACA)(R)", 5), (202, 302, "MB(+ACA)(R)", 4),
    (203, 302, "MB(+ACA)(R)", 6), (301, 101, "LH(R)", 1), (302, 401, "LH(R)", 3),
    (401, 102, "AL(R)", 2), (401, 401, "LH(R)", 2),  # autapse
    (9002, 101, "AL(R)", 3), (9003, 9002, None, 1), (402, 301, "LH(R)", 2),
]
# a pair that connections.parquet lists but synapses.parquet does not (real releases have such pairs)
_CONNECTION_ONLY = [(301, 302, "MB(+ACA)(R)", 4)]

_ROI_CENTRES = {"AL(R)": (150_000, 280_000, 200_000), "LH(R)": (100_000, 220_000, 160_000),
                "MB(+ACA)(R)": (180_000, 160_000, 150_000), None: (60_000, 60_000, 60_000)}


def write_synthetic_release(folder: str | os.PathLike, *, seed: int = 7) -> Path:
    """Write the synthetic release into ``folder`` (created; must not hold a release already).

    Parameters
    ----------
    folder
        Destination folder.
    seed
        Seed of the random positions and confidences (the default gives the
        documented properties, e.g. some confidences exactly 0.5).

    Returns
    -------
    Path
        The folder.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "manifest.json").exists():
        raise FileExistsError(f"{folder} already holds a release")
    rng = np.random.default_rng(seed)

    rows = []
    sid = 1
    for pre, post, roi, n in _CONNECTIONS:
        centre = np.array(_ROI_CENTRES[roi], dtype=float)
        left = n
        while left:
            fan = int(min(left, rng.integers(1, 4)))  # PSDs sharing this T-bar
            tbar = centre + rng.integers(-200, 200, size=3) * 8
            pre_score = float(rng.choice([0.5, 0.35, 0.9, 0.75, 0.62]))
            for _ in range(fan):
                psd = tbar + rng.integers(-6, 6, size=3) * 8
                rows.append({
                    "synapse_id": sid, "pre": pre, "post": post,
                    "pre_x": tbar[0], "pre_y": tbar[1], "pre_z": tbar[2],
                    "post_x": psd[0], "post_y": psd[1], "post_z": psd[2],
                    "score": None, "roi": roi,
                    "pre_score": pre_score, "post_score": float(rng.choice([0.5, 0.41, 0.88, 0.97, 0.7])),
                })
                sid += 1
            left -= fan
    syn = pd.DataFrame(rows)
    syn["score"] = syn["post_score"]
    syn = syn.astype({"synapse_id": "int64", "pre": "int64", "post": "int64", "score": "float64",
                      "roi": "string", "pre_score": "float64", "post_score": "float64"})
    for c in ("pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"):
        syn[c] = syn[c].astype("float64")
    syn = syn.sort_values(["pre", "synapse_id"], kind="stable").reset_index(drop=True)

    conn = syn.assign(roi=syn["roi"].fillna("NotPrimary")).groupby(["pre", "post", "roi"]).size()
    conn = conn.rename("weight").reset_index()
    extra = pd.DataFrame(_CONNECTION_ONLY, columns=["pre", "post", "roi", "weight"])
    conn = pd.concat([conn, extra], ignore_index=True).sort_values(["pre", "post", "roi"]).reset_index(drop=True)
    conn = conn.astype({"pre": "int64", "post": "int64", "roi": "string", "weight": "int64"})

    tbars = syn.drop_duplicates(["pre", "pre_x", "pre_y", "pre_z"])
    pre_counts = tbars.assign(roi=tbars["roi"].fillna("NotPrimary")).groupby(["pre", "roi"]).size()
    post_counts = syn.assign(roi=syn["roi"].fillna("NotPrimary")).groupby(["post", "roi"]).size()
    pre_counts.index.names = post_counts.index.names = ["id", "roi"]
    roi_counts = pd.concat([pre_counts.rename("pre"), post_counts.rename("post")], axis=1).fillna(0)
    roi_counts = roi_counts.astype("int64").reset_index().sort_values(["id", "roi"]).reset_index(drop=True)
    roi_counts = roi_counts.astype({"roi": "string"})

    neurons = pd.DataFrame(_NEURONS, columns=["id", "type", "instance", "status", "is_neuron", "cellBodyFiber"])
    totals = roi_counts.groupby("id")[["pre", "post"]].sum()
    neurons["pre"] = neurons["id"].map(totals["pre"]).fillna(0).astype("int64")
    neurons["post"] = neurons["id"].map(totals["post"]).fillna(0).astype("int64")
    neurons["synthetic"] = True
    neurons = neurons[["id", "type", "instance", "status", "pre", "post", "is_neuron", "cellBodyFiber", "synthetic"]]
    neurons = neurons.astype({"id": "int64", "type": "string", "instance": "string", "status": "string",
                              "cellBodyFiber": "string"})

    manifest = {
        "format": "connectomix-release", "format_version": 1,
        "name": "emulator-synthetic", "version": "v1",
        "description": "SYNTHETIC test data for the neuPrint emulator: every row is invented.",
        "source": "connectomix_neuprint.emulator.synthetic (generated)", "license": "CC0",
        "citation": "none (synthetic)", "voxel_size_nm": [8, 8, 8],
        "rois": sorted(SYNTHETIC_ROIS + ["MB(R)"]), "primary_rois": sorted(SYNTHETIC_ROIS),
        "score_name": "confidence",
        "synthetic": {"neurons": "all rows", "connections": "all rows", "roi_counts": "all rows",
                      "synapses": "all rows", "skeletons": "all files"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conn.to_parquet(folder / "connections.parquet", index=False)
    roi_counts.to_parquet(folder / "roi_counts.parquet", index=False)
    syn.to_parquet(folder / "synapses.parquet", index=False)
    skel = folder / "skeletons"
    skel.mkdir(exist_ok=True)
    for body, origin in ((101, (150_000.0, 280_000.0, 200_000.0)), (301, (180_000.0, 160_000.0, 150_000.0))):
        lines = ["# SYNTHETIC skeleton (nm)", "# node_id type x y z radius parent_id"]
        parent = -1
        for k in range(1, 9):
            x, y, z = origin[0] + 80 * k, origin[1] + 40 * k, origin[2] - 16 * k
            lines.append(f"{k} 0 {x:.1f} {y:.1f} {z:.1f} {120.0 - 8 * k:.1f} {parent}")
            parent = k
        lines.append(f"9 0 {origin[0] + 320:.1f} {origin[1] - 160:.1f} {origin[2]:.1f} 40.0 4")
        (skel / f"{body}.swc").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(
        "# emulator-synthetic (v1)\n\nSYNTHETIC data written by "
        "`connectomix_neuprint.emulator.synthetic.write_synthetic_release`; nothing here is real.\n",
        encoding="utf-8")
    return folder
