"""navis integration: attach synapse tables to neurons as ``.connectors``.

Synapse tables are in nm; navis neurons carry their own units (hemibrain
skeletons are often in 8 nm voxels). :func:`attach_synapses` converts the
synapse positions into each neuron's units, maps every synapse to its nearest
skeleton node (or mesh vertex) with one vectorised k-d tree query per neuron,
and, with ``clean=True``, drops synapses farther than ``max_distance`` nm from
the neuron -- fafbseg's 10 µm rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .errors import InvalidArgumentError

__all__ = ["attach_synapses", "nm_per_unit"]

def nm_per_unit(neuron: Any) -> float:
    """How many nm one coordinate unit of a navis neuron is (e.g. 8 for '8 nanometer').

    Raises
    ------
    InvalidArgumentError
        If the neuron's units are unknown or not a length.

    Examples
    --------
    >>> import navis
    >>> nm_per_unit(navis.example_neurons(1))
    8.0
    """
    units = getattr(neuron, "units", None)
    try:
        value = float(units.to("nm").magnitude)
    except Exception:
        raise InvalidArgumentError(
            f"neuron {getattr(neuron, 'id', '?')} has units {units!r}, which are not a length; set them, "
            "e.g. neuron.units = '8 nm' for hemibrain voxels or '1 nm'"
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"neuron {getattr(neuron, 'id', '?')} has invalid units {units!r}")
    return value


class _SynapseIndex:
    """Numpy views of a synapse table, grouped by pre and post id for fast per-neuron lookup."""

    def __init__(self, synapses: pd.DataFrame):
        self.cols = {c: synapses[c].to_numpy() for c in
                     ("synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z", "score")}
        self.roi = synapses["roi"].to_numpy()
        self.order = {side: np.argsort(self.cols[side], kind="stable") for side in ("pre", "post")}
        self.sorted = {side: self.cols[side][self.order[side]] for side in ("pre", "post")}

    def rows(self, side: str, neuron_id: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted[side], [neuron_id, neuron_id + 1])
        return self.order[side][lo:hi]

    def connectors(self, neuron_id: int) -> dict[str, np.ndarray]:
        """Positions (nm) and attributes of the neuron's own sites, presynaptic first."""
        pre_rows, post_rows = self.rows("pre", neuron_id), self.rows("post", neuron_id)
        c = self.cols
        out = {
            "synapse_id": np.concatenate([c["synapse_id"][pre_rows], c["synapse_id"][post_rows]]),
            "score": np.concatenate([c["score"][pre_rows], c["score"][post_rows]]).astype("float64"),
            "partner_id": np.concatenate([c["post"][pre_rows], c["pre"][post_rows]]).astype("int64"),
            "type": np.repeat(np.array([0, 1], dtype="int8"), [len(pre_rows), len(post_rows)]),
            "roi": np.concatenate([self.roi[pre_rows], self.roi[post_rows]]),
        }
        out["xyz"] = np.column_stack([
            np.concatenate([c[f"pre_{a}"][pre_rows], c[f"post_{a}"][post_rows]]).astype("float64") for a in "xyz"
        ]) if len(pre_rows) + len(post_rows) else np.empty((0, 3))
        return out


def attach_synapses(neurons: Any, synapses: pd.DataFrame, *, max_distance: float | None = 10_000,
                    clean: bool = True) -> Any:
    """Set ``.connectors`` of navis neurons from a connectomix synapse table.

    Parameters
    ----------
    neurons
        A navis ``TreeNeuron``/``MeshNeuron`` or a ``NeuronList``; each
        neuron's ``.id`` must be its id in the synapse table.
    synapses
        A :data:`connectomix.schema.SYNAPSES` table (nm).
    max_distance
        Distance in nm beyond which a synapse counts as not on the neuron.
    clean
        Drop such distant synapses from ``.connectors`` (the returned synapse
        table is never modified).

    Returns
    -------
    The same neuron object(s). Each gets ``.connectors`` with columns
    ``connector_id, x, y, z, score, partner_id, type, node_id`` (``vertex_id``
    for meshes), ``synapse_id, roi, distance``; positions in the neuron's
    units, ``distance`` in nm.

    Examples
    --------
    >>> import connectomix, navis
    >>> ds = connectomix.open("sample")
    >>> n = navis.example_neurons(1)                  # 8 nm voxel units
    >>> syn = ds.get_synapses(n, progress=False)
    >>> _ = attach_synapses(n, syn)
    >>> n.connectors[["connector_id", "partner_id", "synapse_id"]].dtypes.tolist()
    [dtype('int64'), dtype('int64'), dtype('int64')]
    >>> n.connectors["type"].cat.categories.tolist()
    ['pre', 'post']
    """
    import navis

    if max_distance is not None and (not np.isfinite(max_distance) or max_distance < 0):
        raise InvalidArgumentError(f"max_distance must be a non-negative number of nm or None; got {max_distance!r}")
    items = list(neurons) if isinstance(neurons, navis.NeuronList) else [neurons]
    index = _SynapseIndex(synapses)
    for n in items:
        scale = nm_per_unit(n)
        con = index.connectors(int(n.id))
        if isinstance(n, navis.TreeNeuron):
            points, ids, id_col = n.nodes[["x", "y", "z"]].to_numpy(dtype="float64"), n.nodes["node_id"], "node_id"
        elif isinstance(n, navis.MeshNeuron):
            points, ids, id_col = np.asarray(n.vertices, dtype="float64"), pd.Series(np.arange(len(n.vertices))), "vertex_id"
        else:
            raise InvalidArgumentError(f"cannot attach synapses to a {type(n).__name__}; use a TreeNeuron or MeshNeuron")
        xyz_nm = con.pop("xyz")
        if len(points) and len(xyz_nm):
            dist, ix = cKDTree(points * scale).query(xyz_nm, workers=-1)
            nearest = ids.to_numpy()[ix]
        else:
            dist, nearest = np.full(len(xyz_nm), np.inf), np.full(len(xyz_nm), -1)
        keep = dist <= max_distance if (clean and max_distance is not None) else np.ones(len(dist), dtype=bool)
        xyz = xyz_nm[keep] / scale
        n.connectors = pd.DataFrame({
            "connector_id": np.arange(int(keep.sum()), dtype="int64"),
            "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "score": con["score"][keep],
            "partner_id": con["partner_id"][keep],
            "type": pd.Categorical.from_codes(con["type"][keep], categories=["pre", "post"]),
            id_col: nearest[keep],
            "synapse_id": con["synapse_id"][keep],
            "roi": con["roi"][keep],
            "distance": dist[keep],
        })
    return neurons
