"""The one place where connectomix's result tables are defined.

Every backend returns these tables; :func:`validate` checks and coerces them at
the core boundary, so a notebook sees identical columns, dtypes and units
whichever dataset it talks to.

Conventions (identical for every backend)
------------------------------------------
ids
    ``int64``. Neuron ids are neuPrint ``bodyId`` s or CAVE root ids.
    Id ``0`` is the background segment: it is never a neuron and rows touching
    it are always dropped.
units
    Coordinates are **nanometres** (``float64``), converted from the dataset's
    voxel size by the backend. ``df.attrs["units"] == "nm"``.
thresholds
    ``min_weight`` and ``min_score`` keep values ``>=`` the threshold.
autapses
    Connections of a neuron onto itself are excluded unless
    ``include_autapses=True`` is passed.
labels
    A :class:`~connectomix.NeuronCriteria` with explicit ids matches any
    segment (neuPrint ``:Segment``); criteria without ids match only neurons
    (neuPrint ``:Neuron``, ``is_neuron`` in release folders). Connectivity and
    synapse queries never drop partners for being mere segments.
ROIs
    In synapse tables ``roi`` is the ROI of the **postsynaptic** site (as
    neuprint-python's ``fetch_synapse_connections`` and FlyWire's
    ``neuropil``). Outside every primary ROI every table says
    ``"NotPrimary"`` (:data:`NOT_PRIMARY`; neuprint-python's name in
    ``fetch_adjacencies``): synapse tables (backends give ``<NA>``, the core
    names it), per-ROI connectivity and ROI counts, so per-ROI weights always
    sum to the total weight and ``rois="NotPrimary"`` selects those synapses.
scores
    ``score`` is the value ``min_score`` thresholds, in the dataset's own
    unit: FlyWire's ``cleft_score``; for neuPrint the smaller of the pre- and
    postsynaptic confidences (so ``score >= t`` means both sides pass ``t``).
    ``min_score="recommended"`` applies the dataset's published threshold
    (:class:`~connectomix.backend.ScoreInfo`), as ``>=``.
neurons
    The same core columns on every dataset (:data:`NEURONS`): ``side`` is one
    of :data:`SIDES`, ``nt`` one of :data:`TRANSMITTERS` (lowercase), ``pre``/
    ``post`` count synaptic *sites* (``<NA>`` where the dataset does not
    identify them, e.g. CAVE fly synapse tables), ``upstream``/``downstream``
    synaptic *connections*. Columns a dataset lacks are ``<NA>`` and criteria
    on them are refused. All four are nullable ``Int64``: where counting
    needs every synapse row (CAVE) they are ``<NA>`` unless a criterion
    needs them or ``fetch_neurons(counts=True)`` asks, and
    ``df.attrs["counts"]`` then says what was not computed (``<NA>`` is
    never a zero count).
partners
    Connectivity and synapse tables name the partners' cell types:
    ``pre_type, pre_instance, post_type, post_instance`` (optional columns,
    ``string``; ``partner_types=True`` by default), from the same dataset's
    neuron table at the same version (:mod:`connectomix.partners`). An id
    without a type or instance there (a fragment, an unannotated segment) is
    ``<NA>``; no row is dropped for it. Type-level tables (``by="type"``) use
    ``pre_type``/``post_type`` as keys, with ``'(untyped)'`` instead of ``<NA>``.
versions
    ``df.attrs["version"]`` is the immutable version the rows came from (a
    neuPrint dataset tag, a CAVE materialization, a release version).
criteria
    The same in ``fetch_neurons``, ``get_connectivity``, ``get_synapses``
    and ``get_skeletons``, enforced by the core before any backend runs:
    ``None`` puts no condition on a field (a ``None`` side of
    ``get_connectivity`` is any segment; ``get_synapses``/``get_skeletons``
    need neurons and refuse ``None``); an empty list of alternatives
    (``ids=[]`` or any string field: ``type=[]``, ``side=[]``, ...) matches
    nothing and gives empty tables; an empty ROI list (``rois=[]``,
    ``input_rois=[]``, ``output_rois=[]``) is refused as ambiguous; ids the
    dataset does not have raise :class:`~connectomix.errors.IdsNotFoundError`
    (also in ``fetch_neurons``), never an empty or shorter table.

Mapping to the existing clients
-------------------------------
=================== ============================================ ========================================
connectomix         neuprint-python                              fafbseg / caveclient
=================== ============================================ ========================================
neurons.id          ``bodyId``                                   ``root_id``
neurons.type        ``type``                                     ``cell_type`` / ``primary_type``
neurons.instance    ``instance``                                 (annotation tables)
neurons.side        ``somaSide`` (L/R/M, LHS/RHS/Midline)        ``side`` / ``soma side`` tags
neurons.class       ``class``                                    ``cell_class``
neurons.superclass  ``superclass``                               ``super_class``
neurons.nt          ``predictedNt``                              ``top_nt`` / ``nt_type``
neurons.pre         ``pre`` (T-bars)                             (none: rows are connections)
neurons.post        ``post`` (PSDs)                              connection rows as post (one PSD each)
neurons.upstream    ``upstream``                                 connection rows as post
neurons.downstream  ``downstream``                               connection rows as pre
roi_counts          ``roi_counts_df`` (``bodyId, roi,...``)      ``get_synapse_counts(by_neuropil=True)``
connectivity.pre    ``bodyId_pre``                               ``pre`` / ``pre_pt_root_id``
connectivity.post   ``bodyId_post``                              ``post`` / ``post_pt_root_id``
connectivity.weight ``weight``                                   ``weight`` / ``syn_count``
connectivity.roi    ``roi`` (``fetch_adjacencies``)              ``neuropil``
pre_type, post_type ``type_pre``, ``type_post`` (added by        (merge the annotation table by hand)
                    ``merge_neuron_properties``)
pre_instance, ...   ``instance_pre``, ``instance_post`` (same)   (merge the annotation table by hand)
synapses.pre_x      ``x_pre`` × voxel size                       ``pre_x`` (``pre_pt_position_x`` × res.)
synapses.post_x     ``x_post`` × voxel size                      ``post_x``
synapses.score      min(``confidence_pre``, ``confidence_post``) ``cleft_score``
synapses.roi        ``roi_post``                                 ``neuropil``
synapses.synapse_id (none; derived, stable per dataset)          ``id``
=================== ============================================ ========================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import frames
from .errors import SchemaError

__all__ = [
    "Column",
    "TableSchema",
    "NEURONS",
    "ROI_COUNTS",
    "CONNECTIVITY",
    "CONNECTIVITY_BY_ROI",
    "TYPE_CONNECTIVITY",
    "SYNAPSES",
    "PARTNERS",
    "UNTYPED",
    "TABLES",
    "NOT_PRIMARY",
    "SIDES",
    "TRANSMITTERS",
    "CROSS_TYPES",
    "validate",
    "provenance",
]

#: Bucket name for synapses outside every primary ROI in aggregated tables.
NOT_PRIMARY = "NotPrimary"

_ID = "int64"
_COUNT = "int64"
_NCOUNT = "Int64"  # nullable count
_NM = "float64"
_STR = "string"


@dataclass(frozen=True)
class Column:
    """One column of a result table."""

    name: str
    dtype: str
    description: str
    unit: str | None = None
    nullable: bool = False


@dataclass(frozen=True)
class TableSchema:
    """Required columns (in order), with dtypes; extra columns may follow.

    Examples
    --------
    >>> import pandas as pd
    >>> from connectomix.schema import CONNECTIVITY
    >>> CONNECTIVITY.names
    ('pre', 'post', 'weight')
    >>> CONNECTIVITY.validate(pd.DataFrame({"pre": [1], "post": [2], "weight": [3]})).dtypes.tolist()
    [dtype('int64'), dtype('int64'), dtype('int64')]
    """

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    optional: tuple[Column, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def empty(self) -> pd.DataFrame:
        """An empty frame with the right columns and dtypes."""
        return pd.DataFrame({c.name: pd.Series([], dtype=c.dtype) for c in self.columns})

    def validate(self, df: pd.DataFrame) -> pd.DataFrame:
        """Check and coerce ``df``; return a new frame with required columns first.

        Columns that already have their dtype are shared with ``df``, not copied
        (tables can hold millions of rows): copy the result before editing it in
        place if ``df`` must stay as it is.

        Raises
        ------
        SchemaError
            A required column is missing, has nulls where none are allowed, or
            cannot be converted to its dtype.
        """
        if not isinstance(df, pd.DataFrame):
            raise SchemaError(f"{self.name}: expected a pandas DataFrame, got {type(df).__name__}")
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise SchemaError(
                f"{self.name} table is missing column(s) {missing}; it has {list(df.columns)}"
            )
        out = {}
        for col in self.columns + tuple(c for c in self.optional if c.name in df.columns):
            out[col.name] = _coerce(df[col.name], col, self.name)
        for c in df.columns:
            if c not in out:
                out[c] = df[c].array
        return frames.from_columns(out)


def _coerce(s: pd.Series, col: Column, table: str) -> pd.Series:
    if not col.nullable and s.isna().any():
        raise SchemaError(f"{table}.{col.name} must not contain missing values")
    try:
        if col.dtype == "int64":
            if s.dtype.kind == "f" and not np.all(np.mod(s.to_numpy(), 1) == 0):
                raise ValueError("non-integral floats")
            return pd.Series(s.to_numpy().astype("int64", copy=False), name=col.name)
        if col.dtype == "string":
            if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "python":
                return s
            return pd.Series(s.to_numpy(), name=col.name, dtype="string")
        if col.dtype == "Int64":
            if s.dtype.kind == "f" and not np.all(np.mod(s.dropna().to_numpy(), 1) == 0):
                raise ValueError("non-integral floats")
            return pd.Series(pd.array(s.to_numpy(dtype=object) if s.dtype == object else s, dtype="Int64"),
                             name=col.name)
        if col.dtype == "bool":
            return pd.Series(s.to_numpy().astype(bool, copy=False), name=col.name)
        return pd.Series(s.to_numpy().astype(col.dtype, copy=False), name=col.name)
    except (TypeError, ValueError, OverflowError) as exc:
        raise SchemaError(f"{table}.{col.name} cannot be converted to {col.dtype}: {exc}") from exc


#: Values of ``neurons.side`` on every backend (each backend maps its dataset's spelling to these).
SIDES = ("left", "right", "center")
#: Spelling of ``neurons.nt`` on every backend: lowercase full names (``ACH`` -> ``acetylcholine`` ...).
TRANSMITTERS = ("acetylcholine", "gaba", "glutamate", "dopamine", "serotonin", "octopamine", "histamine")
#: Optional ``neurons`` columns naming the cell type of the same neuron in another dataset.
CROSS_TYPES = ("flywire_type", "hemibrain_type", "manc_type", "malecns_type")

NEURONS = TableSchema(
    "neurons",
    (
        Column("id", _ID, "Neuron id (neuPrint bodyId / CAVE root id)."),
        Column("type", _STR, "The dataset's published cell type (never free-text community tags).", nullable=True),
        Column("instance", _STR, "Instance name (neuPrint instance; CAVE: a published instance-like name).",
               nullable=True),
        Column("status", _STR, "Proofreading status, e.g. 'Traced'.", nullable=True),
        Column("side", _STR, "Soma side: 'left', 'right' or 'center' (each dataset's spelling mapped).",
               nullable=True),
        Column("class", _STR, "The dataset's cell class (neuPrint class, FlyWire cell_class, ...).", nullable=True),
        Column("superclass", _STR, "The dataset's superclass (neuPrint superclass, FlyWire super_class, ...).",
               nullable=True),
        Column("nt", _STR, "Predicted neurotransmitter, lowercase full name ('acetylcholine', 'gaba', ...).",
               nullable=True),
        Column("pre", _NCOUNT, "Presynaptic sites (T-bars); <NA> where the dataset does not identify them "
               "(CAVE fly synapse tables list connections).", nullable=True),
        Column("post", _NCOUNT, "Postsynaptic sites (PSDs); <NA> where unknown.", nullable=True),
        Column("upstream", _NCOUNT, "Incoming synaptic connections (one per PSD of a connection); <NA> where "
               "not computed (CAVE fetch_neurons without counts=True, see attrs['counts']).", nullable=True),
        Column("downstream", _NCOUNT, "Outgoing synaptic connections (one per PSD a T-bar connects to); <NA> "
               "where not computed.", nullable=True),
    ),
    "One row per neuron matching the criteria, ordered by id; dataset-native columns follow the core ones.",
    optional=tuple(Column(c, _STR, f"Cell type of the neuron in the {c[:-5]} dataset, where published.",
                          nullable=True) for c in CROSS_TYPES) + (
        Column("is_neuron", "bool", "False for mere segments (neuPrint :Segment without :Neuron)."),
        Column("synthetic", "bool", "True for rows invented for a demo dataset (never in real data)."),
    ),
)

ROI_COUNTS = TableSchema(
    "roi_counts",
    (
        Column("id", _ID, "Neuron id."),
        Column("roi", _STR, f"Primary ROI, or {NOT_PRIMARY!r} for synapses outside every primary ROI."),
        Column("pre", _COUNT, "Presynaptic sites of the neuron in the ROI."),
        Column("post", _COUNT, "Postsynaptic sites of the neuron in the ROI."),
    ),
    "Per-ROI synapse counts; per neuron the rows sum to the neuron's pre/post totals.",
)

#: Optional partner columns of connectivity and synapse tables (see "partners" above).
PARTNERS = tuple(
    Column(f"{side}_{label}", _STR, f"{label.capitalize()} of the {side}synaptic neuron (its neurons row); "
           "<NA> if it has none.", nullable=True)
    for side in ("pre", "post") for label in ("type", "instance")
)

CONNECTIVITY = TableSchema(
    "connectivity",
    (
        Column("pre", _ID, "Presynaptic (upstream) neuron id."),
        Column("post", _ID, "Postsynaptic (downstream) neuron id."),
        Column("weight", _COUNT, "Number of synaptic connections (PSDs) from pre to post."),
    ),
    "One row per connected pair, ordered by weight (descending), pre, post.",
    optional=PARTNERS,
)

CONNECTIVITY_BY_ROI = TableSchema(
    "connectivity_by_roi",
    CONNECTIVITY.columns[:2]
    + (
        Column("roi", _STR, f"Primary ROI of the postsynaptic sites, or {NOT_PRIMARY!r}."),
        Column("weight", _COUNT, "Connections from pre to post inside the ROI."),
    ),
    "One row per (pre, post, roi); the rows of a pair sum to its total weight.",
    optional=PARTNERS,
)

TYPE_CONNECTIVITY = TableSchema(
    "type_connectivity",
    (
        Column("pre_type", _STR, "Cell type of the presynaptic neurons ('(untyped)' if none)."),
        Column("post_type", _STR, "Cell type of the postsynaptic neurons ('(untyped)' if none)."),
        Column("weight", _COUNT, "Synaptic connections summed over all neuron pairs of the two types."),
        Column("n_pre", _COUNT, "Presynaptic neurons of pre_type contributing."),
        Column("n_post", _COUNT, "Postsynaptic neurons of post_type contributing."),
        Column("n_pairs", _COUNT, "Connected neuron pairs (each with weight >= min_weight)."),
    ),
    "Type-to-type connectivity aggregated from neuron-level weights, ordered by weight (descending).",
)

SYNAPSES = TableSchema(
    "synapses",
    (
        Column("synapse_id", _ID, "Stable id of the synaptic connection within the dataset version."),
        Column("pre", _ID, "Presynaptic neuron id."),
        Column("post", _ID, "Postsynaptic neuron id."),
        Column("pre_x", _NM, "Presynaptic site x.", unit="nm"),
        Column("pre_y", _NM, "Presynaptic site y.", unit="nm"),
        Column("pre_z", _NM, "Presynaptic site z.", unit="nm"),
        Column("post_x", _NM, "Postsynaptic site x.", unit="nm"),
        Column("post_y", _NM, "Postsynaptic site y.", unit="nm"),
        Column("post_z", _NM, "Postsynaptic site z.", unit="nm"),
        Column("score", "float64", "Detection score that min_score thresholds (NaN if none).", nullable=True),
        Column("roi", _STR, f"Primary ROI of the postsynaptic site, or {NOT_PRIMARY!r} outside every primary ROI "
               "(backends may give <NA>; the core names it).", nullable=True),
    ),
    "One row per synaptic connection (pre site -> post site), ordered by synapse_id.",
    optional=PARTNERS,
)

#: Label of neurons without a cell type in type-level tables.
UNTYPED = "(untyped)"

TABLES = {t.name: t for t in (NEURONS, ROI_COUNTS, CONNECTIVITY, CONNECTIVITY_BY_ROI, TYPE_CONNECTIVITY, SYNAPSES)}


def validate(df: pd.DataFrame, table: str | TableSchema) -> pd.DataFrame:
    """Validate ``df`` against a named table schema (see :data:`TABLES`)."""
    schema = TABLES[table] if isinstance(table, str) else table
    return schema.validate(df)


def provenance(df: pd.DataFrame, *, table: str, backend: str, dataset: str,
               version: Any, synthetic: Any = None, **extra: Any) -> pd.DataFrame:
    """Record where a table came from in ``df.attrs`` (in place) and return ``df``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = provenance(pd.DataFrame(), table="synapses", backend="release",
    ...                 dataset="sample", version="v1")
    >>> df.attrs["units"]
    'nm'
    """
    df.attrs.update(
        {
            "table": table,
            "backend": backend,
            "dataset": dataset,
            "version": version,
            "units": "nm",
            "synthetic": synthetic or {},
            **extra,
        }
    )
    return df
