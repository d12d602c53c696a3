"""A small SYNTHETIC connectome in the release-folder format, for conformance tests.

Every backend's conformance run serves this same toy connectome (the release
backend reads it directly, the emulators load it), so all backends must give
the same answers. It deliberately contains what users trip over: an autapse,
synapses onto background id 0, mere segments (no ``:Neuron`` label), scores
exactly at a threshold, synapses outside every ROI, an ROI name with
parentheses, a cell type full of quote characters, and a row for background
id 0 in the neuron table, typed and labelled like a neuron (as a CAVE
annotation whose point lies outside every segment would be): every backend
serves it, and the core must never return it.

Nothing in it is real data.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["make_toy_release", "TOY_VERSION", "TOY_PRIMARY_ROIS", "HOSTILE_TYPE", "BACKGROUND_TYPE",
           "ANNOTATION_COLUMNS"]

TOY_VERSION = "v1"
TOY_PRIMARY_ROIS = ("A", "B", "C(R)")
#: A real-looking cell type that breaks naive string splicing into queries.
HOSTILE_TYPE = "Q\"uo'te`} //MATCH (n) DETACH DELETE n"
#: The cell type of the background row (id 0) of the toy neuron table; no real neuron has it.
BACKGROUND_TYPE = "BG"
VOXEL_NM = 8


def _neurons() -> pd.DataFrame:
    rows = [
        # id, type, instance, status, is_neuron
        (101, "PN_a", "PN_a_R", "Traced", True),
        (102, "PN_a", "PN_a_R", "Traced", True),
        (103, "PN_a", "PN_a_L", "Traced", True),
        (104, "KC", "KC_R", "Traced", True),
        (105, "KC", "KC_R", "Traced", True),
        (106, "KC", "KC_L", "Anchor", True),
        (107, "LN", "LN_R", "Traced", True),
        (108, "LN", "LN_L", "Traced", True),
        (109, "MBON", "MBON_R", "Traced", True),
        (110, HOSTILE_TYPE, HOSTILE_TYPE + "_R", "Traced", True),
        (901, None, None, "Orphan", False),
        (902, None, None, None, False),
    ]
    return pd.DataFrame(rows, columns=["id", "type", "instance", "status", "is_neuron"])


#: The annotation columns of the toy neurons (SYNTHETIC): core columns side, class, superclass, nt, the
#: cross-dataset column hemibrain_type and a native extra column ``lineage``. Missing values (None) are
#: deliberate: a criterion must never match them.
_ANNOTATIONS = {
    # id: (side, class, superclass, nt, hemibrain_type, lineage)
    101: ("right", "ALPN", "projection", "acetylcholine", "DA1_lPN", "ALl1"),
    102: ("right", "ALPN", "projection", "acetylcholine", "DA1_lPN", "ALl1"),
    103: ("left", "ALPN", "projection", "acetylcholine", None, "ALl1"),
    104: ("right", "KC", "intrinsic", "acetylcholine", "KCg-m", "MBp1"),
    105: ("right", "KC", "intrinsic", "acetylcholine", "KCg-m", "MBp2"),
    106: ("left", "KC", "intrinsic", None, None, None),
    107: ("right", "ALLN", "local", "gaba", None, "ALv1"),
    108: ("left", "ALLN", "local", "gaba", None, "ALv1"),
    109: ("center", "MBON", "output", "glutamate", "MBON01", None),
    110: (None, None, "projection", "dopamine", HOSTILE_TYPE, None),
    901: (None, None, None, None, None, None),
    902: (None, None, None, None, None, None),
    0: ("right", "BG", "BG", "gaba", BACKGROUND_TYPE, None),
}
ANNOTATION_COLUMNS = ("side", "class", "superclass", "nt", "hemibrain_type", "lineage")


def _synapses(ids: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    n = 640
    pre = rng.choice(ids, size=n, p=_weights(ids))
    post = rng.choice(ids, size=n)
    # a few hand-placed cases
    pre[:6] = [101, 101, 101, 102, 102, 104]
    post[:6] = [101, 101, 0, 0, 104, 104]  # 101->101 autapse (x2), ->0 background, 104 autapse
    base = rng.integers(100, 4000, size=(n, 3)) * VOXEL_NM
    offset = rng.integers(-4, 5, size=(n, 3)) * VOXEL_NM
    score = np.round(rng.uniform(0.3, 1.0, size=n), 3)
    score[6:40:3] = 0.5  # exactly at the threshold used by the tests
    roi = rng.choice(np.array(list(TOY_PRIMARY_ROIS) + [None], dtype=object), size=n, p=[0.4, 0.3, 0.2, 0.1])
    df = pd.DataFrame(
        {
            "synapse_id": np.arange(1, n + 1, dtype="int64") * 10 + 7,
            "pre": pre.astype("int64"),
            "post": post.astype("int64"),
            "pre_x": base[:, 0].astype("float64"),
            "pre_y": base[:, 1].astype("float64"),
            "pre_z": base[:, 2].astype("float64"),
            "post_x": (base[:, 0] + offset[:, 0]).astype("float64"),
            "post_y": (base[:, 1] + offset[:, 1]).astype("float64"),
            "post_z": (base[:, 2] + offset[:, 2] + VOXEL_NM).astype("float64"),
            "score": score,
            "roi": pd.Series(roi, dtype="string"),
        }
    )
    return df.sort_values(["pre", "synapse_id"]).reset_index(drop=True)


def _weights(ids: np.ndarray) -> np.ndarray:
    w = np.where(ids < 900, 3.0, 0.5)
    return w / w.sum()


def make_toy_release(folder: str | Path) -> Path:
    """Write the toy release folder to ``folder`` (created) and return its path.

    Examples
    --------
    >>> import tempfile, connectomix
    >>> path = make_toy_release(tempfile.mkdtemp())
    >>> ds = connectomix.open(f"release://{path}")
    >>> ds.version
    'v1'
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261122)
    neurons = _neurons()
    syn = _synapses(neurons["id"].to_numpy(), rng)
    roi_bucket = syn["roi"].fillna("NotPrimary")
    connections = (
        syn.assign(roi=roi_bucket).groupby(["pre", "post", "roi"], as_index=False).size()
        .rename(columns={"size": "weight"})
    )
    connections["weight"] = connections["weight"].astype("int64")
    connections["roi"] = connections["roi"].astype("string")
    # every synapse row is one pre site and one post site
    pre_counts = syn.assign(roi=roi_bucket).groupby(["pre", "roi"]).size().rename("pre")
    post_counts = syn.assign(roi=roi_bucket).groupby(["post", "roi"]).size().rename("post")
    pre_counts.index.names = post_counts.index.names = ["id", "roi"]
    roi_counts = pd.concat([pre_counts, post_counts], axis=1).fillna(0).astype("int64").reset_index()
    roi_counts = roi_counts[roi_counts["id"] != 0].sort_values(["id", "roi"]).reset_index(drop=True)
    roi_counts["roi"] = roi_counts["roi"].astype("string")
    totals = roi_counts.groupby("id")[["pre", "post"]].sum()
    # background id 0 as the backend's neuron table may carry it; added after the synapses were
    # drawn, so the rest of the toy is unchanged
    background = {"id": 0, "type": BACKGROUND_TYPE, "instance": BACKGROUND_TYPE + "_R", "status": "Traced",
                  "is_neuron": True}
    neurons = pd.concat([neurons, pd.DataFrame([background])], ignore_index=True)
    neurons["pre"] = neurons["id"].map(totals["pre"]).fillna(0).astype("int64")
    neurons["post"] = neurons["id"].map(totals["post"]).fillna(0).astype("int64")
    neurons.loc[neurons["id"] == 0, "post"] = int((syn["post"] == 0).sum())
    # connections (every row, autapses and background partners included), as neuPrint counts them
    neurons["upstream"] = neurons["id"].map(connections.groupby("post")["weight"].sum()).fillna(0).astype("int64")
    neurons["downstream"] = neurons["id"].map(connections.groupby("pre")["weight"].sum()).fillna(0).astype("int64")
    for k, col in enumerate(ANNOTATION_COLUMNS):
        neurons[col] = pd.Series([_ANNOTATIONS[i][k] for i in neurons["id"]], dtype="string")
    neurons["synthetic"] = True
    for col in ("type", "instance", "status"):
        neurons[col] = neurons[col].astype("string")
    core = ["id", "type", "instance", "status", "side", "class", "superclass", "nt", "pre", "post", "upstream",
            "downstream", "hemibrain_type", "is_neuron", "synthetic", "lineage"]
    neurons = neurons[core]
    manifest = {
        "format": "connectomix-release",
        "format_version": 1,
        "name": "toy",
        "version": TOY_VERSION,
        "description": "SYNTHETIC toy connectome for connectomix conformance tests; not real data.",
        "source": "generated by connectomix.testing.make_toy_release",
        "license": "CC0-1.0",
        "citation": "",
        "voxel_size_nm": [VOXEL_NM] * 3,
        "rois": list(TOY_PRIMARY_ROIS) + ["AB"],
        "primary_rois": list(TOY_PRIMARY_ROIS),
        "score_name": "confidence",
        "score": {"column": "confidence", "scale": "0.0-1.0 (synthetic)", "recommended": 0.5, "op": ">=",
                  "source": "synthetic toy: 0.5, the value several toy scores sit on exactly"},
        "synthetic": {"*": "every table and column is synthetic (toy connectome)"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    connections.sort_values(["pre", "post", "roi"]).to_parquet(folder / "connections.parquet", index=False)
    roi_counts.to_parquet(folder / "roi_counts.parquet", index=False)
    syn.to_parquet(folder / "synapses.parquet", index=False, row_group_size=131_072)
    _write_skeletons(folder / "skeletons", [101, 102])
    manifest["meshes"] = _write_meshes(folder / "meshes.parquet", [101, 102])
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (folder / "README.md").write_text(
        "# toy (SYNTHETIC)\n\nA synthetic toy connectome written by "
        "`connectomix.testing.make_toy_release` for conformance tests. Nothing here is real data.\n"
    )
    return folder


#: The toy meshes (SYNTHETIC): a box (8 vertices, 12 triangles) around each toy skeleton, in nm.
TOY_MESH_FACES = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                           [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], dtype="uint32")


def toy_mesh_vertices(k: int) -> np.ndarray:
    """The 8 corners (nm) of the box of the ``k``-th toy skeleton (101: 0, 102: 1), 200 nm around it."""
    lo = np.array([1000, 500 * k + 40, 8016], dtype="float64") - 200
    hi = np.array([20000, 500 * k + 800, 8320], dtype="float64") + 200
    return np.array([[(lo, hi)[i >> 2 & 1][0], (lo, hi)[i >> 1 & 1][1], (lo, hi)[i & 1][2]] for i in range(8)])


def _write_meshes(path: Path, ids: list[int]) -> dict:
    """``meshes.parquet`` of the release format (one legacy precomputed fragment per id); the manifest entry."""
    import struct

    rows = []
    for k, body in enumerate(ids):
        vertices = toy_mesh_vertices(k)
        fragment = struct.pack("<I", len(vertices)) + vertices.astype("<f4").tobytes() + TOY_MESH_FACES.astype(
            "<u4").tobytes()
        rows.append((body, len(vertices), len(TOY_MESH_FACES), fragment))
    pd.DataFrame(rows, columns=["id", "n_vertices", "n_faces", "fragment"]).to_parquet(path, index=False)
    return {"file": "meshes.parquet", "count": len(rows), "units": "nm",
            "encoding": "neuroglancer precomputed legacy mesh fragment", "source": "SYNTHETIC toy boxes"}


def _write_skeletons(folder: Path, ids: list[int]) -> None:
    folder.mkdir(exist_ok=True)
    for k, body in enumerate(ids):
        lines = ["# SYNTHETIC toy skeleton (connectomix.testing); units: nm", "# node_id type x y z radius parent"]
        for i in range(1, 21):
            parent = -1 if i == 1 else i - 1
            x, y, z = 1000 * i, 500 * k + 40 * i, 8000 + 16 * i
            lines.append(f"{i} 0 {x} {y} {z} 40 {parent}")
        (folder / f"{body}.swc").write_text("\n".join(lines) + "\n")
