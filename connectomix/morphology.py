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

_CONNECTOR_COLUMNS = ["connector_id", "x", "y", "z", "score", "partner_id", "type"]


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


def _neuron_synapses(neuron_id: int, synapses: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for side, partner in (("pre", "post"), ("post", "pre")):
        rows = synapses[synapses[side] == neuron_id]
        parts.append(pd.DataFrame({
            "synapse_id": rows["synapse_id"].to_numpy(),
            "x": rows[f"{side}_x"].to_numpy(dtype="float64"),
            "y": rows[f"{side}_y"].to_numpy(dtype="float64"),
            "z": rows[f"{side}_z"].to_numpy(dtype="float64"),
            "score": rows["score"].to_numpy(dtype="float64"),
            "partner_id": rows[partner].to_numpy(dtype="int64"),
            "type": side,
            "roi": rows["roi"].to_numpy(),
        }))
    return pd.concat(parts, ignore_index=True)


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
    >>> n.connectors[["connector_id", "type", "node_id"]].dtypes.tolist()
    [dtype('int64'), dtype('O'), dtype('int64')]
    """
    import navis

    if max_distance is not None and (not np.isfinite(max_distance) or max_distance < 0):
        raise InvalidArgumentError(f"max_distance must be a non-negative number of nm or None; got {max_distance!r}")
    items = list(neurons) if isinstance(neurons, navis.NeuronList) else [neurons]
    for n in items:
        scale = nm_per_unit(n)
        con = _neuron_synapses(int(n.id), synapses)
        if isinstance(n, navis.TreeNeuron):
            points, ids, id_col = n.nodes[["x", "y", "z"]].to_numpy(dtype="float64"), n.nodes["node_id"], "node_id"
        elif isinstance(n, navis.MeshNeuron):
            points, ids, id_col = np.asarray(n.vertices, dtype="float64"), pd.Series(np.arange(len(n.vertices))), "vertex_id"
        else:
            raise InvalidArgumentError(f"cannot attach synapses to a {type(n).__name__}; use a TreeNeuron or MeshNeuron")
        xyz_nm = con[["x", "y", "z"]].to_numpy(dtype="float64")
        if len(points) and len(con):
            dist, ix = cKDTree(points * scale).query(xyz_nm)
        else:
            dist, ix = np.full(len(con), np.inf), np.zeros(len(con), dtype=int)
        con[["x", "y", "z"]] = xyz_nm / scale
        con[id_col] = ids.to_numpy()[ix] if len(points) else -1
        con["distance"] = dist
        if clean and max_distance is not None:
            con = con[con["distance"] <= max_distance]
        con = con.reset_index(drop=True)
        con.insert(0, "connector_id", np.arange(len(con), dtype="int64"))
        con["type"] = pd.Categorical(con["type"], categories=["pre", "post"])
        n.connectors = con[_CONNECTOR_COLUMNS + [id_col, "synapse_id", "roi", "distance"]]
    return neurons
