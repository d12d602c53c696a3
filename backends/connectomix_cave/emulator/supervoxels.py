"""The emulator's invented supervoxels: a deterministic grouping of each body's synapse sites.

Real CAVE synapse tables carry the supervoxel of each synapse site, and root
ids are re-derived from supervoxels at every materialization. A release folder
has no supervoxels, so the emulator invents them (SYNTHETIC):

* every synapse site (the pre site of a synapse belongs to its ``pre`` body,
  the post site to its ``post`` body) is assigned to a supervoxel of its body;
* a body's sites are sorted along the axis on which the body is longest
  (ties by synapse id, pre before post) and cut into ``K = min(n_sites,
  supervoxels_per_body)`` contiguous groups of near-equal size; group ``k``
  is supervoxel ``k`` of the body;
* a body without synapse sites gets one supervoxel;
* supervoxel ids are ``sv_base + 64 * body_ordinal + k``, where ``body_ordinal``
  is the body's rank in ascending id order. ``sv_base`` is 79,000,000,000,000,000
  (FlyWire-like) unless release ids fall in that range, then it starts above
  the largest release id.

Splits later move whole supervoxels between roots, so a split divides a body
spatially.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from connectomix.errors import DataFormatError

__all__ = ["SV_STRIDE", "SupervoxelLayout", "assign_supervoxels", "new_root_base"]

#: Supervoxel id slots reserved per body (the maximum of ``supervoxels_per_body``).
SV_STRIDE = 64
_FLYWIRE_SV_BASE = 79_000_000_000_000_000
_FLYWIRE_ROOT_BASE = 720_575_940_600_000_000
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class SupervoxelLayout:
    """Supervoxels of the release's bodies.

    Attributes
    ----------
    sv_ids
        All supervoxel ids, ascending.
    sv_body
        The release body (= version-1 root) of each entry of ``sv_ids``.
    pre_sv, post_sv
        Supervoxel of each synapse row's pre and post site (0 where the body is 0).
    anchor_sv
        Per body (dict body -> supervoxel): the supervoxel of the body's median
        site, used as ``pt_supervoxel_id`` of annotation tables.
    anchor_position_nm
        Per body: that site's position in nm (zeros for bodies without sites).
    """

    sv_ids: np.ndarray
    sv_body: np.ndarray
    pre_sv: np.ndarray
    post_sv: np.ndarray
    anchor_sv: dict[int, int]
    anchor_position_nm: dict[int, tuple[float, float, float]]

    def supervoxels_of(self, body: int) -> np.ndarray:
        """Supervoxel ids of a release body, ascending."""
        return self.sv_ids[self.sv_body == body]

    def counts(self) -> dict[int, int]:
        """Number of supervoxels per release body."""
        bodies, counts = np.unique(self.sv_body, return_counts=True)
        return dict(zip(bodies.tolist(), counts.tolist()))

    def ordinals(self, svs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of ``svs`` in :attr:`sv_ids` and a mask of which ids are supervoxels."""
        svs = np.asarray(svs, dtype=np.int64)
        pos = np.searchsorted(self.sv_ids, svs)
        pos_clipped = np.minimum(pos, len(self.sv_ids) - 1)
        found = (pos < len(self.sv_ids)) & (self.sv_ids[pos_clipped] == svs)
        return pos_clipped, found


def _sv_base(body_ids: np.ndarray) -> int:
    span = SV_STRIDE * (len(body_ids) + 1)
    overlap = (body_ids >= _FLYWIRE_SV_BASE) & (body_ids < _FLYWIRE_SV_BASE + span)
    if not overlap.any():
        return _FLYWIRE_SV_BASE
    base = int(body_ids.max()) + 1
    if base + span > _INT64_MAX:
        raise DataFormatError("release ids are too close to the int64 maximum to place supervoxel ids above them")
    return base


def new_root_base(body_ids: np.ndarray, sv_ids: np.ndarray) -> int:
    """First automatic id for roots created by edits: above every release id and supervoxel id."""
    top = max(int(body_ids.max()) if len(body_ids) else 0, int(sv_ids.max()) if len(sv_ids) else 0)
    return max(_FLYWIRE_ROOT_BASE, top + 1)


def assign_supervoxels(synapses: pd.DataFrame, body_ids: np.ndarray, per_body: int) -> SupervoxelLayout:
    """Group every body's synapse sites into at most ``per_body`` supervoxels (see the module docstring)."""
    if not 1 <= per_body <= SV_STRIDE:
        raise DataFormatError(f"supervoxels_per_body must be between 1 and {SV_STRIDE}, got {per_body}")
    body_ids = np.unique(np.asarray(body_ids, dtype=np.int64))
    body_ids = body_ids[body_ids != 0]
    base = _sv_base(body_ids)
    n = len(synapses)
    body = np.concatenate([synapses["pre"].to_numpy(np.int64), synapses["post"].to_numpy(np.int64)])
    side = np.repeat(np.array([0, 1], dtype=np.int8), n)
    sid = np.tile(synapses["synapse_id"].to_numpy(np.int64), 2)
    xyz = np.concatenate([synapses[["pre_x", "pre_y", "pre_z"]].to_numpy(np.float64),
                          synapses[["post_x", "post_y", "post_z"]].to_numpy(np.float64)])
    site_sv = np.zeros(2 * n, dtype=np.int64)
    real = body != 0
    idx = np.flatnonzero(real)
    anchor_sv: dict[int, int] = {}
    anchor_pos: dict[int, tuple[float, float, float]] = {}
    if len(idx):
        b = body[idx]
        frame = pd.DataFrame({"b": b, "x": xyz[idx, 0], "y": xyz[idx, 1], "z": xyz[idx, 2]})
        grouped = frame.groupby("b", sort=True)
        extent = (grouped[["x", "y", "z"]].max() - grouped[["x", "y", "z"]].min()).to_numpy()
        ext_bodies = grouped.size().index.to_numpy(np.int64)
        axis_of_body = np.argmax(extent, axis=1)  # ties -> x, then y
        axis = axis_of_body[np.searchsorted(ext_bodies, b)]
        key = xyz[idx, :][np.arange(len(idx)), axis]
        order = np.lexsort((side[idx], sid[idx], key, b))
        sorted_b = b[order]
        starts = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1]])
        counts = np.diff(np.r_[starts, len(sorted_b)])
        rank = np.arange(len(sorted_b)) - np.repeat(starts, counts)
        n_b = np.repeat(counts, counts)
        k = rank * np.minimum(per_body, n_b) // n_b
        ordinal = np.searchsorted(body_ids, sorted_b)
        sv_sorted = base + SV_STRIDE * ordinal + k
        site_sv[idx[order]] = sv_sorted
        median_pos = starts + counts // 2
        for s in median_pos:
            bid = int(sorted_b[s])
            anchor_sv[bid] = int(sv_sorted[s])
            anchor_pos[bid] = tuple(float(v) for v in xyz[idx[order[s]]])  # type: ignore[assignment]
    used = np.unique(site_sv[site_sv != 0])
    lonely = np.setdiff1d(body_ids, np.fromiter(anchor_sv.keys(), dtype=np.int64, count=len(anchor_sv)))
    lonely_sv = base + SV_STRIDE * np.searchsorted(body_ids, lonely)
    for bid, sv in zip(lonely.tolist(), lonely_sv.tolist()):
        anchor_sv[bid] = sv
        anchor_pos[bid] = (0.0, 0.0, 0.0)
    sv_ids = np.unique(np.concatenate([used, lonely_sv.astype(np.int64)]))
    sv_body = body_ids[(sv_ids - base) // SV_STRIDE]
    return SupervoxelLayout(sv_ids=sv_ids, sv_body=sv_body, pre_sv=site_sv[:n], post_sv=site_sv[n:],
                            anchor_sv=anchor_sv, anchor_position_nm=anchor_pos)
