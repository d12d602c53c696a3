"""Constants and independent expectation helpers shared by the CAVE emulator tests.

Expected values are computed from the release parquet files and the edit script
below by small helpers written independently of the emulator's code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


# Explicit new root ids of the edit script (FlyWire-like, above every release id).
A1, A2, BC, AD, F1, F2, FG, BC1, BC2 = (720575940700000001 + i for i in range(9))
#: version -> "%Y-%m-%dT%H:%M:%S.%f" time stamp (version 3 is expired)
VERSION_TIMES = {1: "2024-01-01T00:00:00.000000", 2: "2024-02-01T06:30:00.250000",
                 3: "2024-03-01T00:00:00.000000", 4: "2024-04-01T00:00:00.000000"}

EDITS = {
    "format": "connectomix-cave-edits",
    "format_version": 1,
    "synthetic": True,
    "description": "SYNTHETIC test history",
    "genesis": "2023-12-01T00:00:00",
    "supervoxels_per_body": 4,
    "versions": [
        {"version": 1, "time_stamp": VERSION_TIMES[1]},
        {"version": 2, "time_stamp": VERSION_TIMES[2]},
        {"version": 3, "time_stamp": VERSION_TIMES[3], "valid": False, "expires_on": "2024-04-01T00:00:00.000000"},
        {"version": 4, "time_stamp": VERSION_TIMES[4]},
    ],
    "operations": [
        {"type": "split", "timestamp": "2024-01-10T12:00:00", "root": 101, "new_root_ids": [A1, A2],
         "labels": ["A_kept", "A_moved"]},
        {"type": "merge", "timestamp": "2024-01-20T12:00:00", "roots": [102, 103], "new_root_id": BC},
        {"type": "merge", "timestamp": "2024-02-10T12:00:00", "roots": ["@A_kept", 104], "new_root_id": AD},
        {"type": "split", "timestamp": "2024-02-20T12:00:00", "root": 105, "new_root_ids": [F1, F2]},
        {"type": "merge", "timestamp": "2024-03-10T12:00:00", "roots": [F1, 106], "new_root_id": FG},
        {"type": "split", "timestamp": "2024-04-10T12:00:00", "root": BC, "new_root_ids": [BC1, BC2]},
    ],
}
VOXEL = np.array([4.0, 4.0, 40.0])


# --- independent expectations -------------------------------------------------------------------------


def sv_bodies(v1_rows: pd.DataFrame) -> dict[int, int]:
    """Supervoxel -> release body, read off the version-1 table."""
    out = dict(zip(v1_rows["pre_pt_supervoxel_id"], v1_rows["pre_pt_root_id"]))
    out.update(zip(v1_rows["post_pt_supervoxel_id"], v1_rows["post_pt_root_id"]))
    return {int(k): int(v) for k, v in out.items()}


def expected_roots(v1_rows: pd.DataFrame, until: str | None) -> dict[int, int]:
    """Supervoxel -> root after applying EDITS' operations up to ``until`` (ISO time; None = all)."""
    members: dict[int, set[int]] = {}
    for sv, body in sv_bodies(v1_rows).items():
        members.setdefault(body, set()).add(sv)
    for op in EDITS["operations"]:
        if until is not None and op["timestamp"] > until:
            break
        if op["type"] == "split":
            svs = sorted(members.pop(op["root"]))
            moved = set(svs[len(svs) - len(svs) // 2:])
            members[op["new_root_ids"][0]] = set(svs) - moved
            members[op["new_root_ids"][1]] = moved
        else:
            roots = [A1 if r == "@A_kept" else r for r in op["roots"]]
            members[op["new_root_id"]] = set().union(*(members.pop(r) for r in roots))
    return {sv: root for root, svs in members.items() for sv in svs}


def rerooted(v1_rows: pd.DataFrame, until: str | None) -> pd.DataFrame:
    """The version-1 table with root ids recomputed independently for time ``until``."""
    roots = expected_roots(v1_rows, until)
    out = v1_rows.copy()
    out["pre_pt_root_id"] = out["pre_pt_supervoxel_id"].map(roots).astype(np.int64)
    out["post_pt_root_id"] = out["post_pt_supervoxel_id"].map(roots).astype(np.int64)
    return out


def expected_view_ids(v1_rows: pd.DataFrame, release: pd.DataFrame, distance_nm: float = 100.0) -> set[int]:
    """Synapse ids of the filtered view: cleft_score > 50, greedy de-duplication per supervoxel pair."""
    t = v1_rows.set_index("id")
    rel = release.set_index("synapse_id")
    keep: set[int] = set()
    cand = t[t["cleft_score"] > 50]
    for _, group in cand.groupby(["pre_pt_supervoxel_id", "post_pt_supervoxel_id"]):
        group = group.assign(_neg=-group["cleft_score"]).sort_index().sort_values("_neg", kind="stable")
        kept_pos: list[np.ndarray] = []
        for sid in group.index:
            pos = rel.loc[sid, ["post_x", "post_y", "post_z"]].to_numpy(float)
            if any(np.linalg.norm(pos - p) <= distance_nm for p in kept_pos):
                continue
            kept_pos.append(pos)
            keep.add(int(sid))
    return keep
