"""A SYNTHETIC release folder of any size, for benchmarks (nothing in it is real data)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROIS = ["AL(R)", "LH(R)", "CA(R)", "SLP(R)"]


def make_synthetic_release(folder: Path, *, n_bodies: int = 3000, synapses_per_body: int = 60, seed: int = 0,
                           morphology: int = 0) -> Path:
    """Write a release folder with ``n_bodies`` typed bodies and about ``n_bodies * synapses_per_body`` synapses.

    ``morphology``: the first that many bodies also get a SYNTHETIC skeleton and mesh
    (:func:`synthetic_morphology`).
    """
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
    if morphology:
        manifest["meshes"] = write_synthetic_morphology(folder, ids[:morphology], seed=seed)
        manifest["synthetic"]["skeletons"] = manifest["synthetic"]["meshes"] = (
            "random trees and deformed spheres (benchmark data), not neuron shapes")
        manifest["partial"] = {kind: {"ids": ids[morphology:].tolist(), "reason": "SYNTHETIC: morphology for the "
                                      f"first {morphology} bodies only"} for kind in ("skeletons", "meshes")}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conn.astype({"roi": "string"}).to_parquet(folder / "connections.parquet", index=False)
    rc.astype({"roi": "string"}).to_parquet(folder / "roi_counts.parquet", index=False)
    syn.to_parquet(folder / "synapses.parquet", index=False, row_group_size=131_072)
    return folder


#: Size of each SYNTHETIC neuron: about the five real DA1 lPNs of the sample (4,000-5,000 skeleton nodes,
#: 6,300-7,100 mesh vertices, 13,000-14,600 triangles).
SKELETON_NODES = 4000
MESH_SUBDIVISIONS = 5  # an icosphere of 10,242 vertices and 20,480 triangles


def synthetic_morphology(body: int, *, seed: int = 0):
    """A SYNTHETIC skeleton (SWC text, nm) and mesh ``(vertices_nm, faces)`` for one body: nothing real.

    The skeleton is a random tree of :data:`SKELETON_NODES` nodes (each node 200-600 nm from a parent
    among the last 50), the mesh an icosphere of 5-20 um radius with its vertices jittered by 5 %.
    """
    rng = np.random.default_rng([seed, body])
    n = SKELETON_NODES
    parent = np.full(n, -1, dtype="int64")
    parent[1:] = np.maximum(np.arange(1, n) - rng.integers(1, 51, n - 1), 0)
    steps = rng.normal(size=(n, 3))
    steps *= (rng.uniform(200, 600, n) / np.linalg.norm(steps, axis=1))[:, None]
    xyz = np.zeros((n, 3))
    xyz[0] = rng.uniform(50_000, 200_000, 3)
    for i in range(1, n):
        xyz[i] = xyz[parent[i]] + steps[i]
    radius = rng.uniform(50, 400, n)
    rows = [f"{i + 1} 0 {x:.3f} {y:.3f} {z:.3f} {r:.3f} {p + 1 if p >= 0 else -1}"
            for i, ((x, y, z), r, p) in enumerate(zip(xyz, radius, parent))]
    unit, faces = _icosphere()
    vertices = unit * rng.uniform(5_000, 20_000)
    vertices *= rng.uniform(0.95, 1.05, (len(vertices), 1))
    return "\n".join(["# SYNTHETIC skeleton (benchmark data, not a neuron)", *rows]) + "\n", (vertices + xyz[0], faces)


@functools.lru_cache(maxsize=1)
def _icosphere():
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=MESH_SUBDIVISIONS)
    return np.asarray(sphere.vertices), np.asarray(sphere.faces)


def write_synthetic_morphology(folder: Path, ids, *, seed: int = 0) -> dict:
    """``skeletons/<id>.swc`` and ``meshes.parquet`` for ``ids``; returns the manifest's ``"meshes"`` entry."""
    from connectomix_release.meshes import MESHES_FILE, manifest_entry, write_meshes

    (folder / "skeletons").mkdir(exist_ok=True)
    meshes = {}
    for body in ids:
        swc, meshes[int(body)] = synthetic_morphology(int(body), seed=seed)
        (folder / "skeletons" / f"{int(body)}.swc").write_text(swc)
    return manifest_entry(write_meshes(folder / MESHES_FILE, meshes))
