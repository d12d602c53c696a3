"""A SYNTHETIC release folder of any size, for benchmarks (nothing in it is real data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

ROIS = ["AL(R)", "LH(R)", "CA(R)", "SLP(R)"]


def make_synthetic_release(folder: Path, *, n_bodies: int = 3000, synapses_per_body: int = 60, seed: int = 0) -> Path:
    """Write a release folder with ``n_bodies`` typed bodies and about ``n_bodies * synapses_per_body`` synapses."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(10_001, 10_001 + n_bodies, dtype="int64")
    n = n_bodies * synapses_per_body
    pre = ids[rng.integers(0, n_bodies, n)]
    post = ids[rng.integers(0, n_bodies, n)]
    keep = pre != post
    pre, post, n = pre[keep], post[keep], int(keep.sum())
    xyz = rng.integers(1000, 30000, size=(n, 3)) * 8
    roi = pd.Series(rng.choice(np.array(ROIS + [None], dtype=object), n), dtype="string")
    syn = pd.DataFrame({
        "synapse_id": np.arange(1, n + 1, dtype="int64"), "pre": pre, "post": post,
        "pre_x": xyz[:, 0] * 1.0, "pre_y": xyz[:, 1] * 1.0, "pre_z": xyz[:, 2] * 1.0,
        "post_x": xyz[:, 0] + 16.0, "post_y": xyz[:, 1] + 8.0, "post_z": xyz[:, 2] + 8.0,
        "score": np.round(rng.uniform(0.3, 1.0, n), 3), "roi": roi,
    }).sort_values(["pre", "synapse_id"])
    bucket = syn["roi"].fillna("NotPrimary")
    conn = syn.assign(roi=bucket).groupby(["pre", "post", "roi"], as_index=False).size().rename(columns={"size": "weight"})
    pre_c = syn.assign(roi=bucket).groupby(["pre", "roi"]).size().rename("pre")
    post_c = syn.assign(roi=bucket).groupby(["post", "roi"]).size().rename("post")
    pre_c.index.names = post_c.index.names = ["id", "roi"]
    rc = pd.concat([pre_c, post_c], axis=1).fillna(0).astype("int64").reset_index()
    totals = rc.groupby("id")[["pre", "post"]].sum()
    types = np.array([f"T{i % 50:02d}" for i in range(n_bodies)])
    neurons = pd.DataFrame({"id": ids, "type": pd.Series(types, dtype="string"),
                            "instance": pd.Series([f"{t}_R" for t in types], dtype="string"),
                            "status": pd.Series(["Traced"] * n_bodies, dtype="string"),
                            "pre": totals["pre"].reindex(ids).fillna(0).astype("int64").to_numpy(),
                            "post": totals["post"].reindex(ids).fillna(0).astype("int64").to_numpy(),
                            "is_neuron": True, "synthetic": True})
    manifest = {"format": "connectomix-release", "format_version": 1, "name": "synthetic-bench", "version": "v1",
                "description": "SYNTHETIC benchmark connectome (random); not real data.", "voxel_size_nm": [8, 8, 8],
                "rois": ROIS, "primary_rois": ROIS, "score_name": "confidence",
                "synthetic": {"*": "every table is synthetic (benchmark data)"}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conn.astype({"roi": "string"}).to_parquet(folder / "connections.parquet", index=False)
    rc.astype({"roi": "string"}).to_parquet(folder / "roi_counts.parquet", index=False)
    syn.to_parquet(folder / "synapses.parquet", index=False, row_group_size=131_072)
    return folder
