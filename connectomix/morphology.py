"""navis integration: attach synapse tables to neurons as ``.connectors``.

Synapse tables are in nm and list connections; navis neurons carry their own
units (hemibrain skeletons are often in 8 nm voxels) and, in navis's and
neuPrint's convention, one connector per synaptic *site* (T-bar or PSD).
:func:`attach_synapses` returns copies of the neurons whose ``.connectors``
have one row per site of the neuron with the site's partners as columns,
positions in the neuron's units, the nearest skeleton node (or mesh vertex)
from one vectorised k-d tree query per neuron and, with ``clean=True``,
without sites farther than ``max_distance`` nm from the neuron -- fafbseg's
10 µm rule.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from .errors import InvalidArgumentError

__all__ = ["AttachedSynapses", "attach_synapses", "label_neurons", "nm_per_unit"]

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


def label_neurons(neurons: Any, *, table: str, backend: str, dataset: str, version: Any) -> Any:
    """Record where navis neurons came from (in place) and return them.

    The list gets ``attrs`` -- the keys of a table's ``df.attrs`` (``table``, ``backend``, ``dataset``,
    ``version``, ``units="nm"``) -- and each neuron the attributes ``dataset`` and ``version`` unless its
    backend set them (a CAVE root id's own materialization, say). Where the backend set one ``version``
    on every neuron, ``attrs["version"]`` is that one.

    Examples
    --------
    >>> import navis
    >>> nl = label_neurons(navis.NeuronList([]), table="meshes", backend="release", dataset="sample",
    ...                    version="v1")
    >>> nl.attrs["units"], nl.attrs["table"]
    ('nm', 'meshes')
    """
    own = {str(getattr(n, "version", None)): getattr(n, "version", None) for n in neurons}
    if len(own) == 1 and next(iter(own.values())) is not None:
        version = next(iter(own.values()))
    for n in neurons:
        for key, value in (("dataset", dataset), ("version", version)):
            if getattr(n, key, None) is None:
                setattr(n, key, value)
    neurons.attrs = {"table": table, "backend": backend, "dataset": dataset, "version": version, "units": "nm"}
    return neurons


class AttachedSynapses(NamedTuple):
    """What ``Dataset.get_synapses(..., attach=True)`` returns: the table and new neurons.

    Unpack it: ``syn, neurons = ds.get_synapses(neurons, attach=True)``.
    """

    synapses: pd.DataFrame
    """The synapse table (:data:`connectomix.schema.SYNAPSES`), one row per connection, never cleaned."""
    neurons: Any
    """Copies of the neurons passed in, with ``.connectors`` (see :func:`attach_synapses`)."""


def _site_groups(xyz: np.ndarray) -> tuple[np.ndarray, int]:
    """Site index of each row: rows at the same position are one site; sites numbered by first row."""
    if not len(xyz):
        return np.zeros(0, dtype="int64"), 0
    site = pd.DataFrame(xyz).groupby([0, 1, 2], sort=False, dropna=False).ngroup().to_numpy(dtype="int64")
    return site, int(site.max()) + 1


def _most_common(values: np.ndarray) -> Any:
    """The most frequent non-missing value (the first of equals), or ``<NA>``."""
    present = [v for v in values if not pd.isna(v)]
    if not present:
        return pd.NA
    names, counts = np.unique(np.asarray(present, dtype=object).astype(str), return_counts=True)
    best = set(names[counts == counts.max()])
    return next(v for v in present if str(v) in best)


class _SynapseIndex:
    """Numpy views of a synapse table, grouped by pre and post id for fast per-neuron lookup."""

    def __init__(self, synapses: pd.DataFrame):
        self.cols = {c: synapses[c].to_numpy() for c in
                     ("synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z")}
        score = synapses["score"].to_numpy(dtype="float64")
        # a site's own confidence where the table has per-side scores (neuPrint, the sample), else the connection's
        self.site_score = {side: synapses[f"{side}_score"].to_numpy(dtype="float64")
                           if f"{side}_score" in synapses.columns else score for side in ("pre", "post")}
        self.roi = synapses["roi"].to_numpy()
        self.order = {side: np.argsort(self.cols[side], kind="stable") for side in ("pre", "post")}
        self.sorted = {side: self.cols[side][self.order[side]] for side in ("pre", "post")}

    def rows(self, side: str, neuron_id: int) -> np.ndarray:
        lo, hi = np.searchsorted(self.sorted[side], [neuron_id, neuron_id + 1])
        return np.sort(self.order[side][lo:hi])  # table order

    def sites(self, neuron_id: int, sides: tuple[str, ...]) -> dict[str, Any]:
        """The neuron's own synaptic sites (nm), presynaptic first, each site once with all its connections."""
        c = self.cols
        parts = []
        for code, side in enumerate(("pre", "post")):
            if side not in sides:
                continue
            rows = self.rows(side, neuron_id)
            xyz = np.column_stack([c[f"{side}_{a}"][rows] for a in "xyz"]).astype("float64") if len(rows) \
                else np.empty((0, 3))
            site, n_sites = _site_groups(xyz)
            by_site = np.argsort(site, kind="stable")  # rows of each site together, in table order
            counts = np.bincount(site, minlength=n_sites)
            starts = np.cumsum(counts) - counts
            first = by_site[starts]
            score = self.site_score[side][rows][by_site]
            roi = self.roi[rows][first].astype(object)
            if n_sites < len(rows):  # some sites have several connections
                score = np.fmax.reduceat(score, starts)  # NaN-skipping maximum per site
                codes = pd.factorize(self.roi[rows][by_site], use_na_sentinel=True)[0]
                mixed = np.flatnonzero(np.minimum.reduceat(codes, starts) != np.maximum.reduceat(codes, starts))
                for k in mixed:  # sites whose connections disagree on the ROI (rare): the most common one
                    roi[k] = _most_common(self.roi[rows][by_site[starts[k]:starts[k] + counts[k]]])
            parts.append({
                "xyz": xyz[first],
                "type": np.full(n_sites, code, dtype="int8"),
                "roi": roi,
                "score": score.astype("float64"),
                "n_partners": counts.astype("int64"),
                "partner_ids": _tuples(c["post" if side == "pre" else "pre"][rows][by_site], starts, counts),
                "synapse_ids": _tuples(c["synapse_id"][rows][by_site], starts, counts),
            })
        return {key: np.concatenate([p[key] for p in parts]) if parts else np.zeros(0, dtype=object)
                for key in ("xyz", "type", "roi", "score", "n_partners", "partner_ids", "synapse_ids")}


def _tuples(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """An object array of int tuples: ``values[start:start + count]`` for each site."""
    flat = values.astype("int64").tolist()
    out = np.empty(len(starts), dtype=object)
    if len(flat) == len(starts):  # one connection per site (every PSD; CAVE tables): 1-tuples at C speed
        out[:] = list(zip(flat))
    else:
        out[:] = [tuple(flat[a:a + n]) for a, n in zip(starts.tolist(), counts.tolist())]
    return out


def attach_synapses(neurons: Any, synapses: pd.DataFrame, *, max_distance: float | None = 10_000,
                    clean: bool = True, pre: bool = True, post: bool = True) -> Any:
    """New navis neurons with ``.connectors`` made from a connectomix synapse table.

    The neurons passed in are not modified: each is copied (``neuron.copy()``)
    and the copy gets the connectors, as navis's own functions do unless
    ``inplace=True``.

    Connectors follow navis's conventions for neuPrint data
    (``navis.interfaces.neuprint.fetch_skeletons(with_synapses=True)``) and
    fafbseg's column names: **one row per synaptic site** of the neuron -- a
    presynaptic T-bar (``type == "pre"``) or a postsynaptic density
    (``type == "post"``) -- so ``neuron.presynapses`` counts T-bars and
    ``neuron.postsynapses`` PSDs, like neuPrint's ``pre``/``post``. The
    connections of a site are the table's rows that share the neuron's side
    position (neuPrint: every connection of a T-bar starts at the T-bar's
    position). Datasets that list connections without identifying sites (CAVE
    fly synapse tables) give each connection its own position, hence one
    connector per connection there -- the same rows as fafbseg's.

    Parameters
    ----------
    neurons
        A navis ``TreeNeuron``/``MeshNeuron`` or a ``NeuronList``; each
        neuron's ``.id`` must be its id in the synapse table.
    synapses
        A :data:`connectomix.schema.SYNAPSES` table (nm); optional
        ``pre_score``/``post_score`` columns give each site its own score.
    max_distance
        Distance in nm beyond which a site counts as not on the neuron.
    clean
        Drop such distant sites from ``.connectors`` (fafbseg's 10 µm rule;
        the synapse table is never modified).
    pre, post
        Make connectors of the neuron's presynaptic / postsynaptic sites.

    Returns
    -------
    A new ``TreeNeuron``/``MeshNeuron`` (for one neuron) or ``NeuronList``.
    Each has ``.connectors`` with columns:

    ``connector_id``
        0, 1, ... (presynaptic sites first, each side in synapse-table order).
    ``x, y, z``
        The site's position in the neuron's units (e.g. 8 nm voxels).
    ``type``
        ``"pre"`` (T-bar) or ``"post"`` (PSD), categorical.
    ``node_id`` (``vertex_id`` for meshes)
        The nearest node (vertex); ``-1`` if the neuron has none.
    ``roi``
        ROI of the site's postsynaptic side as in the synapse table: a PSD's
        own ROI; for a T-bar the ROI most of its PSDs are in.
    ``score``
        The site's own score (``pre_score``/``post_score``) where the table
        has them, else the largest score of its connections.
    ``n_partners``
        Connections of the site (PSDs a T-bar connects to; 1 for a PSD).
    ``partner_ids``, ``synapse_ids``
        Tuples, one entry per connection: the partner neuron and the
        ``synapse_id`` of that connection. ``connectors.explode(["partner_ids",
        "synapse_ids"])`` gives fafbseg's one row per connection.
    ``distance``
        From the site to its node/vertex, in nm.

    Raises
    ------
    InvalidArgumentError
        For neurons that are not TreeNeurons/MeshNeurons, have no length
        units, or a bad ``max_distance``.

    Examples
    --------
    >>> import connectomix, navis
    >>> ds = connectomix.open("sample")
    >>> n = navis.example_neurons(1)                  # 8 nm voxel units
    >>> syn = ds.get_synapses(n, progress=False)
    >>> new = attach_synapses(n, syn)
    >>> new is n, len(new.presynapses), len(n.presynapses)   # T-bars, as in navis's neuPrint data
    (False, 621, 621)
    >>> new.connectors["type"].cat.categories.tolist()
    ['pre', 'post']
    >>> int(new.presynapses["n_partners"].sum()) == int((syn["pre"] == n.id).sum())
    True
    """
    import navis

    if max_distance is not None and (not np.isfinite(max_distance) or max_distance < 0):
        raise InvalidArgumentError(f"max_distance must be a non-negative number of nm or None; got {max_distance!r}")
    single = not isinstance(neurons, navis.NeuronList)
    items = [neurons] if single else list(neurons)
    for n in items:
        if not isinstance(n, (navis.TreeNeuron, navis.MeshNeuron)):
            raise InvalidArgumentError(f"cannot attach synapses to a {type(n).__name__}; use a TreeNeuron or MeshNeuron")
        nm_per_unit(n)  # refuse neurons without length units before copying any
    sides = tuple(s for s, on in (("pre", pre), ("post", post)) if on)
    if not sides:
        raise InvalidArgumentError("pre and post are both False: no sites to attach; set at least one to True")
    index = _SynapseIndex(synapses)
    out = []
    for original in items:
        n = original.copy()
        scale = nm_per_unit(n)
        site = index.sites(int(n.id), sides)
        if isinstance(n, navis.TreeNeuron):
            points, ids, id_col = n.nodes[["x", "y", "z"]].to_numpy(dtype="float64"), n.nodes["node_id"], "node_id"
        else:
            points, ids, id_col = np.asarray(n.vertices, dtype="float64"), pd.Series(np.arange(len(n.vertices))), "vertex_id"
        xyz_nm = site["xyz"]
        if len(points) and len(xyz_nm):
            dist, ix = cKDTree(points * scale).query(xyz_nm, workers=-1)
            nearest = ids.to_numpy()[ix]
        else:
            dist, nearest = np.full(len(xyz_nm), np.inf), np.full(len(xyz_nm), -1)
        keep = dist <= max_distance if (clean and max_distance is not None) else np.ones(len(dist), dtype=bool)
        xyz = xyz_nm[keep] / scale
        kept = np.flatnonzero(keep)
        n.connectors = pd.DataFrame({
            "connector_id": np.arange(len(kept), dtype="int64"),
            "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
            "type": pd.Categorical.from_codes(site["type"][keep].astype("int8"), categories=["pre", "post"]),
            id_col: nearest[keep].astype("int64"),
            "roi": pd.array(site["roi"][keep], dtype="string"),
            "score": site["score"][keep].astype("float64"),
            "n_partners": site["n_partners"][keep].astype("int64"),
            "partner_ids": pd.Series(site["partner_ids"][keep], dtype=object),
            "synapse_ids": pd.Series(site["synapse_ids"][keep], dtype=object),
            "distance": dist[keep],
        })
        out.append(n)
    return out[0] if single else navis.NeuronList(out)
