"""The neuPrint property graph of a release folder, as engine-neutral tables.

:func:`build_model` reads a connectomix release folder (``FORMAT.md``) and
returns a :class:`GraphModel`: the node and relationship tables of neuPrint's
data model (``wire-protocols.md`` A.6) as pandas DataFrames, plus a
:class:`Schema` that describes them. The graph engine (:mod:`.engine`) loads
these tables; the Cypher rewriter (:mod:`.rewrite`) reads the schema. Nothing
here knows which engine is used.

What the graph holds
--------------------
``Segment`` (every body; the neuPrint ``:Neuron`` label is the hidden boolean
``__neuron``, see :data:`LABELS`)
    ``bodyId, type, instance, status, statusLabel (= status), pre, post,
    upstream, downstream, roiInfo`` plus one boolean property per ROI of the
    manifest (true where the body has synapses there, *absent* otherwise, as
    in neuPrint) and every extra column of ``neurons.parquet`` (``class``,
    ``cellBodyFiber``, ...). ``size``, ``cropped``, ``somaLocation`` and
    ``somaRadius`` are null unless ``neurons.parquet`` has ``size``,
    ``cropped``, ``soma_x/soma_y/soma_z`` (nm) and ``soma_radius`` (nm). ``upstream``/``downstream`` come from
    ``neurons.parquet`` where it has them, else they are the sums of the
    body's incoming/outgoing connection weights. ``roiInfo`` is a JSON string
    ``{roi: {"pre": n, "post": n}}`` from ``roi_counts.parquet`` (or, without
    it, counted from the synapses); ``NotPrimary`` is not an ROI and is left
    out (neuprint-python derives it).
``ConnectsTo`` (Segment -> Segment)
    One edge per connected pair: ``weight`` = sum of the pair's rows in
    ``connections.parquet``; ``roiInfo`` = ``{roi: {"pre": t, "post": w}}``
    over primary ROIs, where ``w`` is the ROI's weight (PSDs) and ``t`` the
    number of distinct presynaptic sites of those connections (from the
    synapses; ``w`` when the release has no synapses for the pair). Autapses
    are kept, as in neuPrint.
``Synapse``
    ``type`` (``'pre'``/``'post'``), ``confidence``, ``location`` (a point in
    **voxel units** = nm / ``voxel_size_nm``) and a boolean per primary ROI.
    Each row of ``synapses.parquet`` is one connection from a presynaptic to a
    postsynaptic site. Rows of the same presynaptic body with the same
    presynaptic position are **merged into one** ``pre`` synapse (neuPrint
    has one T-bar with many PSDs -- polyadic synapses); its confidence is the
    largest of the rows' presynaptic scores, its ROI that of its first row
    (by ``synapse_id``). Every row has its own ``post`` synapse.
    Scores: ``pre_score``/``post_score`` if present, else ``score`` on both
    sides; no scores leaves ``confidence`` absent.
``SynapsesTo`` (Synapse pre -> Synapse post)
    One per row of ``synapses.parquet``.
``SynapseSet`` and ``Contains``
    For every pair (a, b) with synapses: a set in ``a`` holding a's ``pre``
    synapses onto b and a set in ``b`` holding b's ``post`` synapses from a,
    linked ``(set_a)-[:ConnectsTo]->(set_b)``. A ``pre`` synapse onto several
    partners is in several sets (neuprint-python de-duplicates with
    ``WITH DISTINCT``).
``Meta`` (one node)
    ``dataset, tag, uuid, lastDatabaseEdit, info, description, logo,
    hideDataSet, totalPreCount, totalPostCount, primaryRois, superLevelRois,
    roiInfo, roiHierarchy, neuronProperties, voxelSize, voxelUnits,
    postHighAccuracyThreshold, preHPThreshold, postHPThreshold,
    statusDefinitions, neuroglancerInfo, neuroglancerMeta, synthetic``.
    ``ntSynapseProperties`` is absent (null), so neuprint-python asks the
    synapses for ``nt*`` keys, as it does on hemibrain. The release has no ROI
    hierarchy, so the hierarchy is flat and ``superLevelRois`` are the
    primary ROIs. ``postHighAccuracyThreshold`` is the manifest's
    recommended score (as neuPrint's ``>`` threshold) unless given; the
    other thresholds default to 0.0.

Properties whose names start with ``__`` are internal keys and flags; the
emulator never shows them to clients.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from hashlib import sha1
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectomix.errors import DataFormatError, InvalidArgumentError

__all__ = [
    "PropSpec",
    "TableSpec",
    "RelSpec",
    "Schema",
    "GraphModel",
    "LABELS",
    "HIDDEN_PREFIX",
    "POINT_SRID",
    "build_model",
    "split_dataset_name",
    "skeleton_swc",
]

log = logging.getLogger(__name__)

#: Prefix of internal property names (keys, flags); never shown to clients.
HIDDEN_PREFIX = "__"
#: neo4j's SRID of cartesian-3d points, reported in every point value.
POINT_SRID = 9157

#: Property types: ``INT64 DOUBLE STRING BOOL POINT STRING[] DOUBLE[]``.
PROP_TYPES = frozenset({"INT64", "DOUBLE", "STRING", "BOOL", "POINT", "STRING[]", "DOUBLE[]"})
#: Shapes of JSON-string properties: a map of maps of counts, a map of strings, anything.
JSON_KINDS = frozenset({"count_map", "string_map", "json"})

#: neuPrint label -> (node table, requires the hidden ``__neuron`` flag).
LABELS: dict[str, tuple[str, bool]] = {
    "Segment": ("Segment", False),
    "Neuron": ("Segment", True),
    "Synapse": ("Synapse", False),
    "SynapseSet": ("SynapseSet", False),
    "Meta": ("Meta", False),
}

_CORE_SEGMENT = ("bodyId", "type", "instance", "status", "statusLabel", "pre", "post", "upstream",
                 "downstream", "roiInfo", "size", "cropped", "somaLocation", "somaRadius", "confidence",
                 "location", "weight", "datasetBodyIds", "voxelUnits")


@dataclass(frozen=True)
class PropSpec:
    """One property: its type and, for JSON strings, the shape of the JSON."""

    type: str
    json_kind: str | None = None

    def __post_init__(self):
        if self.type not in PROP_TYPES:
            raise ValueError(f"unknown property type {self.type!r}; valid: {sorted(PROP_TYPES)}")
        if self.json_kind is not None and (self.type != "STRING" or self.json_kind not in JSON_KINDS):
            raise ValueError(f"json_kind {self.json_kind!r} needs a STRING property and one of {sorted(JSON_KINDS)}")


@dataclass(frozen=True)
class TableSpec:
    """A node table: its primary key (hidden or ``bodyId``) and properties in column order."""

    name: str
    key: str
    props: Mapping[str, PropSpec]


@dataclass(frozen=True)
class RelSpec:
    """A relationship table: the (from, to) node-table pairs it connects and its properties."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    props: Mapping[str, PropSpec]


@dataclass(frozen=True)
class Schema:
    """Node and relationship tables of the graph (what the rewriter may rely on)."""

    nodes: Mapping[str, TableSpec]
    rels: Mapping[str, RelSpec]
    labels: Mapping[str, tuple[str, bool]] = field(default_factory=lambda: dict(LABELS))

    def node_props(self, table: str) -> Mapping[str, PropSpec]:
        return self.nodes[table].props

    def rel_props(self, rel: str) -> Mapping[str, PropSpec]:
        return self.rels[rel].props

    def visible(self, props: Mapping[str, PropSpec]) -> list[str]:
        """Property names a client may see, in column order."""
        return [p for p in props if not p.startswith(HIDDEN_PREFIX)]


@dataclass
class GraphModel:
    """A release folder as neuPrint-shaped tables.

    Attributes
    ----------
    name
        The dataset name clients use, ``"<dataset>:<tag>"``.
    dataset, tag
        ``:Meta.dataset`` and ``:Meta.tag``.
    schema
        Table descriptions.
    nodes
        ``{table: DataFrame}``, columns exactly ``schema.nodes[table].props``.
    rels
        ``{(rel, from_table, to_table): DataFrame}`` with columns ``__from``,
        ``__to`` (the endpoints' keys) and then the relationship's properties.
    voxel_size
        nm per voxel (x, y, z), as ``:Meta.voxelSize`` says.
    skeleton_dir
        ``<release>/skeletons`` if it exists.
    """

    name: str
    dataset: str
    tag: str
    schema: Schema
    nodes: dict[str, pd.DataFrame]
    rels: dict[tuple[str, str, str], pd.DataFrame]
    voxel_size: tuple[float, float, float]
    release_path: Path
    skeleton_dir: Path | None
    meta: dict[str, Any]
    #: nm per served position unit: ``voxel_size`` (positions in voxels) or 1 nm (``position_units="nm"``).
    position_size: tuple[float, float, float] | None = None

    @property
    def roi_names(self) -> list[str]:
        return list(self.meta["roiNames"])


def point_series(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> pd.Series:
    """A column of POINT values (voxels), Arrow-backed: no Python object per row."""
    import pyarrow as pa

    n = len(x)
    arr = pa.StructArray.from_arrays(
        [pa.array(x, pa.float64()), pa.array(y, pa.float64()), pa.array(z, pa.float64()),
         pa.array(np.full(n, POINT_SRID, dtype="int64"))], names=["x", "y", "z", "srid"])
    return pd.Series(pd.arrays.ArrowExtensionArray(arr))


def split_dataset_name(name: str) -> tuple[str, str]:
    """``"hemibrain:v1.2.1"`` -> ``("hemibrain", "v1.2.1")``; no colon -> empty tag."""
    dataset, _, tag = name.partition(":")
    if not dataset:
        raise InvalidArgumentError(f"dataset name {name!r} is empty before ':'; use e.g. 'hemibrain:v1.2.1'")
    return dataset, tag


# ------------------------------------------------------------------------------------------------
# reading the release
# ------------------------------------------------------------------------------------------------


def _read_manifest(folder: Path) -> dict:
    from connectomix_release.writer import read_manifest

    return read_manifest(folder)


def _read_table(folder: Path, table: str, required: bool) -> pd.DataFrame | None:
    path = folder / f"{table}.parquet"
    if not path.is_file():
        if required:
            raise DataFormatError(f"release folder {str(folder)!r} has no {table}.parquet (required by FORMAT.md)")
        return None
    return pd.read_parquet(path)


def _require(df: pd.DataFrame, table: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(f"{table}.parquet lacks column(s) {missing}; FORMAT.md requires {list(columns)}")


def _nullable_str(s: pd.Series) -> pd.Series:
    return s.astype(object).where(s.notna(), None)


def _kind_of(s: pd.Series) -> str | None:
    """Property type of an extra ``neurons.parquet`` column, or None if unsupported."""
    if pd.api.types.is_bool_dtype(s):
        return "BOOL"
    if pd.api.types.is_integer_dtype(s):
        return "INT64"
    if pd.api.types.is_float_dtype(s):
        return "DOUBLE"
    if pd.api.types.is_string_dtype(s) or s.dtype == object:
        non_null = s.dropna()
        if non_null.map(lambda v: isinstance(v, str)).all():
            return "STRING"
    return None


def _count_maps(frame: pd.DataFrame, keys: list[str], pre: str, post: str, rois: Sequence[str]) -> pd.DataFrame:
    """One JSON text ``{"roi": {"pre": p, "post": q}, ...}`` (ROIs in ``rois`` order) per group of ``keys``.

    Vectorised (string columns joined with ``np.add.reduceat``): a release has millions of pairs.
    Returns the distinct ``keys`` plus a column ``json``.
    """
    order = {r: i for i, r in enumerate(rois)}
    frame = frame[frame["roi"].isin(order)]
    if frame.empty:
        return pd.DataFrame({**{k: pd.Series(dtype="int64") for k in keys}, "json": pd.Series(dtype=object)})
    frame = frame.assign(_o=frame["roi"].map(order).astype("int64")).sort_values([*keys, "_o"], kind="stable")
    names = frame["roi"].map({r: json.dumps(r) for r in rois}).astype(str)
    frag = (names + ':{"pre":' + frame[pre].astype("int64").astype(str) + ',"post":'
            + frame[post].astype("int64").astype(str) + "},").to_numpy(dtype=object)
    k = frame[keys].to_numpy()
    starts = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]).any(axis=1)])
    texts = np.add.reduceat(frag, starts)
    out = frame.iloc[starts][keys].reset_index(drop=True)
    out["json"] = ["{" + t[:-1] + "}" for t in texts]
    return out


def _roi_info_json(frame: pd.DataFrame, key: str, rois: Sequence[str]) -> pd.Series:
    """``{key: '{"roi": {"pre": .., "post": ..}}'}`` from rows (key, roi, pre, post)."""
    maps = _count_maps(frame, [key], "pre", "post", rois)
    return pd.Series(maps["json"].to_numpy(), index=maps[key].astype("int64").to_numpy(), dtype=object)


# ------------------------------------------------------------------------------------------------
# building the model
# ------------------------------------------------------------------------------------------------


def build_model(release: str | os.PathLike, *, name: str | None = None,
                voxel_size: Sequence[float] | None = None,
                post_high_accuracy_threshold: float | None = None,
                pre_hp_threshold: float = 0.0, post_hp_threshold: float = 0.0,
                position_units: str = "voxel", meta_voxel_size: bool = True,
                side_values: Mapping[str, str] | None = None) -> GraphModel:
    """Read a release folder into neuPrint's data model.

    Parameters
    ----------
    release
        The release folder.
    name
        Dataset name served to clients, ``"<dataset>[:<tag>]"`` (default
        ``"<manifest name>:<manifest version>"``), e.g. ``"hemibrain:v1.2.1"``.
    voxel_size
        nm per voxel; default ``manifest.voxel_size_nm``, else 1 nm.
    post_high_accuracy_threshold, pre_hp_threshold, post_hp_threshold
        ``:Meta`` confidence thresholds. With a threshold given here and
        above 0, the ``weight`` (and ``roiInfo``, ``upstream``,
        ``downstream``) of a pair with synapses in the release counts the
        connections whose postsynaptic confidence is at least the threshold,
        T-bars unfiltered, as FlyEM's neuPrint builder counts it
        (janelia-flyem/flyem-snapshot ``outputs/neuprint/segment.py``; see
        :func:`_thresholded_connections`). neuprint-python's default filter,
        ``confidence > postHighAccuracyThreshold`` on both sites
        (``neuprint/queries/synapsecriteria.py``), whose docstring says it
        keeps "the same synapses that were counted in each neuron-neuron
        weight", can keep fewer. ``None`` (default) publishes the
        manifest's recommended score (``manifest.score.recommended``, a
        ``>=`` value, as the largest float below it, so that ``> t`` keeps
        the same synapses), else 0.0, and keeps the release's weights as
        they are (a release's ``connections`` are its dataset's weights).
    position_units
        ``"voxel"`` (positions served in voxels = nm / voxel size, as on
        hemibrain, MANC, male CNS) or ``"nm"`` (served as nm while
        ``:Meta.voxelSize`` still says the image voxel size, as on the FlyWire
        and BANC mirrors ``flywire-fafb:v783b``, ``banc:v888``).
    meta_voxel_size
        False leaves ``:Meta.voxelSize`` null (a server that does not say).
    side_values
        ``{"left": .., "right": .., "center": ..}``: how the release's
        ``side`` column is spelled in ``somaSide`` (default male CNS style
        ``L``/``R``/``M``; MANC uses ``LHS``/``RHS``/``Midline``).

    Raises
    ------
    DataFormatError
        The folder is not a valid release.
    InvalidArgumentError
        Bad ``name`` or ``voxel_size``, or ROI names the graph cannot hold.
    """
    folder = Path(release).expanduser().resolve()
    manifest = _read_manifest(folder)
    dataset, tag = split_dataset_name(name or f"{manifest['name']}:{manifest['version']}")
    full_name = f"{dataset}:{tag}" if tag else dataset

    vs = voxel_size if voxel_size is not None else (manifest.get("voxel_size_nm") or (1.0, 1.0, 1.0))
    try:
        vs = tuple(float(v) for v in vs)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"voxel_size must be three positive numbers (nm); got {vs!r}") from None
    if len(vs) != 3 or not all(v > 0 for v in vs):
        raise InvalidArgumentError(f"voxel_size must be three positive numbers (nm); got {vs!r}")
    if position_units not in ("voxel", "nm"):
        raise InvalidArgumentError(f"position_units must be 'voxel' or 'nm'; got {position_units!r}")
    pos = vs if position_units == "voxel" else (1.0, 1.0, 1.0)
    sides = dict(SIDE_VALUES if side_values is None else side_values)
    if set(sides) != set(SIDE_VALUES) or not all(isinstance(v, str) and v for v in sides.values()):
        raise InvalidArgumentError(f"side_values must map each of {sorted(SIDE_VALUES)} to a non-empty string; "
                                   f"got {side_values!r}")

    primary = list(manifest["primary_rois"])
    rois = list(dict.fromkeys([*manifest["rois"], *primary]))
    for roi in rois:
        if not roi or "`" in roi or roi.startswith(HIDDEN_PREFIX) or roi in _CORE_SEGMENT or roi == "NotPrimary":
            raise InvalidArgumentError(
                f"ROI name {roi!r} cannot be a neuPrint property (empty, contains '`', starts with "
                f"{HIDDEN_PREFIX!r}, or clashes with a core property)")

    neurons = _read_table(folder, "neurons", True)
    _require(neurons, "neurons", ["id", "type", "instance", "status", "pre", "post", "is_neuron"])
    connections = _read_table(folder, "connections", True)
    _require(connections, "connections", ["pre", "post", "roi", "weight"])
    roi_counts = _read_table(folder, "roi_counts", False)
    if roi_counts is not None:
        _require(roi_counts, "roi_counts", ["id", "roi", "pre", "post"])
    synapses = _read_table(folder, "synapses", False)
    if synapses is not None:
        _require(synapses, "synapses", ["synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z",
                                        "post_x", "post_y", "post_z", "score", "roi"])

    body_ids = neurons["id"].astype("int64")
    known = pd.Index(body_ids)
    if synapses is not None:
        ok = synapses["pre"].isin(known) & synapses["post"].isin(known)
        if not ok.all():
            log.warning("%d synapse rows name bodies missing from neurons.parquet; they are left out",
                        int((~ok).sum()))
            synapses = synapses[ok]
        synapses = synapses.sort_values("synapse_id", kind="stable").reset_index(drop=True)
    ok = connections["pre"].isin(known) & connections["post"].isin(known)
    if not ok.all():
        log.warning("%d connection rows name bodies missing from neurons.parquet; they are left out",
                    int((~ok).sum()))
        connections = connections[ok]

    if post_high_accuracy_threshold is None:
        post_high_accuracy_threshold = _published_threshold(manifest)
    elif synapses is not None and post_high_accuracy_threshold > 0:
        connections = _thresholded_connections(connections, synapses, float(post_high_accuracy_threshold))
        # the release's own totals count every connection; at an explicit threshold they are recounted
        neurons = neurons.drop(columns=["upstream", "downstream"], errors="ignore")
    syn = _synapse_tables(synapses, primary, pos, dataset) if synapses is not None else None
    segment, segment_props = _segment_table(_neuprint_names(neurons, sides), connections, roi_counts, synapses,
                                            rois, primary, pos)
    connects, connects_props = _connects_table(connections, synapses, primary)

    meta = _meta_row(manifest, dataset, tag, folder, rois, primary, segment, segment_props,
                     vs if meta_voxel_size else None,
                     post_high_accuracy_threshold, pre_hp_threshold, post_hp_threshold, roi_counts, synapses)
    meta_props = {
        "__mid": PropSpec("INT64"),
        "dataset": PropSpec("STRING"), "tag": PropSpec("STRING"), "uuid": PropSpec("STRING"),
        "lastDatabaseEdit": PropSpec("STRING"), "info": PropSpec("STRING"), "logo": PropSpec("STRING"),
        "description": PropSpec("STRING"), "hideDataSet": PropSpec("BOOL"),
        "totalPreCount": PropSpec("INT64"), "totalPostCount": PropSpec("INT64"),
        "primaryRois": PropSpec("STRING[]"), "superLevelRois": PropSpec("STRING[]"),
        "roiInfo": PropSpec("STRING", "count_map"), "roiHierarchy": PropSpec("STRING", "json"),
        "neuronProperties": PropSpec("STRING", "string_map"), "voxelSize": PropSpec("DOUBLE[]"),
        "voxelUnits": PropSpec("STRING"),
        "postHighAccuracyThreshold": PropSpec("DOUBLE"), "preHPThreshold": PropSpec("DOUBLE"),
        "postHPThreshold": PropSpec("DOUBLE"), "statusDefinitions": PropSpec("STRING", "string_map"),
        "neuroglancerInfo": PropSpec("STRING", "json"), "neuroglancerMeta": PropSpec("STRING", "json"),
        "synthetic": PropSpec("STRING", "json"),
    }
    meta_df = pd.DataFrame([{k: meta.get(k) for k in meta_props}])

    synapse_props = {"__sid": PropSpec("INT64"), "type": PropSpec("STRING"), "confidence": PropSpec("DOUBLE"),
                     "location": PropSpec("POINT"), **{r: PropSpec("BOOL") for r in primary}}
    synset_props = {"__ssid": PropSpec("INT64"), "datasetBodyIds": PropSpec("STRING")}
    schema = Schema(
        nodes={
            "Segment": TableSpec("Segment", "bodyId", segment_props),
            "Synapse": TableSpec("Synapse", "__sid", synapse_props),
            "SynapseSet": TableSpec("SynapseSet", "__ssid", synset_props),
            "Meta": TableSpec("Meta", "__mid", meta_props),
        },
        rels={
            "ConnectsTo": RelSpec("ConnectsTo", (("Segment", "Segment"), ("SynapseSet", "SynapseSet")),
                                  connects_props),
            "Contains": RelSpec("Contains", (("Segment", "SynapseSet"), ("SynapseSet", "Synapse")), {}),
            "SynapsesTo": RelSpec("SynapsesTo", (("Synapse", "Synapse"),), {}),
        },
    )
    empty_syn = pd.DataFrame({c: pd.Series(dtype=object) for c in synapse_props})
    empty_set = pd.DataFrame({c: pd.Series(dtype=object) for c in synset_props})
    nodes = {
        "Segment": segment,
        "Synapse": syn["synapses"] if syn else empty_syn,
        "SynapseSet": syn["sets"] if syn else empty_set,
        "Meta": meta_df,
    }
    rels: dict[tuple[str, str, str], pd.DataFrame] = {("ConnectsTo", "Segment", "Segment"): connects}
    if syn:
        rels[("ConnectsTo", "SynapseSet", "SynapseSet")] = syn["set_connects"].assign(
            **{p: None for p in connects_props})
        rels[("Contains", "Segment", "SynapseSet")] = syn["body_contains"]
        rels[("Contains", "SynapseSet", "Synapse")] = syn["set_contains"]
        rels[("SynapsesTo", "Synapse", "Synapse")] = syn["synapses_to"]
    skel = folder / "skeletons"
    meta["roiNames"] = rois
    return GraphModel(name=full_name, dataset=dataset, tag=tag, schema=schema, nodes=nodes, rels=rels,
                      voxel_size=vs, release_path=folder, skeleton_dir=skel if skel.is_dir() else None,
                      meta=meta, position_size=pos)


#: The release's normalised ``side`` values and their default ``somaSide`` spelling (male CNS style, L/R/M:
#: schlegelp/connecto connecto/datasets/janelia.py@0bae3a4; MANC's LHS/RHS/Midline via ``side_values``).
SIDE_VALUES = {"left": "L", "right": "R", "center": "M"}
#: Release (connectomix) column -> neuPrint ``:Neuron`` property (neuprint-python 0.6.4
#: neuprint/queries/neuroncriteria.py:174, 182-191 lists these properties).
NEURON_PROPERTIES = {"side": "somaSide", "nt": "predictedNt", "flywire_type": "flywireType",
                     "hemibrain_type": "hemibrainType", "manc_type": "mancType"}


def _neuprint_names(neurons: pd.DataFrame, sides: Mapping[str, str]) -> pd.DataFrame:
    """The release's neuron columns under neuPrint's property names, ``side`` spelled as ``sides`` says.

    ``class`` and ``superclass`` keep their names. A release that already has the neuPrint column
    (e.g. ``somaSide``) keeps it, and the connectomix column is then served under its own name.
    """
    out = neurons.copy()
    for column, prop in NEURON_PROPERTIES.items():
        if column not in out.columns or prop in out.columns:
            continue
        values = out.pop(column)
        if column == "side":  # other values (already a neuPrint spelling, say) are served as they are
            values = values.map(lambda v: sides.get(v, v) if isinstance(v, str) else None)
        out[prop] = values
    return out


def _published_threshold(manifest: Mapping[str, Any]) -> float:
    """The manifest's recommended score (connectomix ``>=``) as neuPrint's ``>`` threshold, else 0.0.

    ``>= r`` is ``> t`` for the largest float ``t`` below ``r``.
    """
    score = manifest.get("score")
    value = score.get("recommended") if isinstance(score, Mapping) else None
    try:
        r = float(value)
    except (TypeError, ValueError):
        return 0.0
    if not np.isfinite(r) or r <= 0:
        return 0.0
    return float(np.nextafter(r, -np.inf))


def _thresholded_connections(connections: pd.DataFrame, synapses: pd.DataFrame, t: float) -> pd.DataFrame:
    """Connection rows of the pairs with synapses recounted as FlyEM's neuPrint builder counts ``weight``.

    A connection counts when its postsynaptic confidence is ``>= t``; the T-bar is not filtered at ``t``
    (janelia-flyem/flyem-snapshot ``flyem_snapshot/outputs/neuprint/segment.py:96-98, 638-672`` at
    b7c8db8; the catalogue's ``connectivity.weight_rule``). neuprint-python's default synapse filter,
    ``confidence > t`` on both sites, can therefore keep fewer synapses than ``weight`` counts. Rows
    with a missing postsynaptic confidence do not count. Pairs without synapses keep their rows.
    """
    score = synapses["score"].astype("float64")
    post_score = synapses["post_score"].astype("float64") if "post_score" in synapses else score
    passing = synapses[(post_score >= t).to_numpy()]
    recount = (passing.assign(roi=passing["roi"].fillna("NotPrimary"))
               .groupby(["pre", "post", "roi"]).size().rename("weight").reset_index())
    pairs = pd.MultiIndex.from_frame(synapses[["pre", "post"]].drop_duplicates())
    keep = ~pd.MultiIndex.from_frame(connections[["pre", "post"]]).isin(pairs)
    out = pd.concat([connections[keep][["pre", "post", "roi", "weight"]], recount], ignore_index=True)
    return out.sort_values(["pre", "post", "roi"], kind="stable").reset_index(drop=True)


def _synapse_roi_counts(synapses: pd.DataFrame) -> pd.DataFrame:
    """``id, roi, pre, post`` counted from the synapse nodes the graph builds (see :func:`_synapse_tables`).

    A T-bar is one per (presynaptic body, position), in the ROI of its first row (lowest ``synapse_id``;
    ``synapses`` is sorted by it); every row is one PSD in its own ROI. Sites outside every ROI are
    not counted.
    """
    tbars = synapses.drop_duplicates(["pre", "pre_x", "pre_y", "pre_z"]).dropna(subset=["roi"])
    pre_sites = tbars.groupby(["pre", "roi"]).size()
    post_sites = synapses.dropna(subset=["roi"]).groupby(["post", "roi"]).size()
    pre_sites.index.names = post_sites.index.names = ["id", "roi"]
    counts = pd.concat([pre_sites.rename("pre"), post_sites.rename("post")], axis=1).fillna(0)
    return counts.astype("int64").reset_index()


_CONSUMED = ("size", "cropped", "soma_x", "soma_y", "soma_z", "soma_radius", "somaRadius")


def _column_values(s: pd.Series, cast) -> list:
    return [None if pd.isna(v) else cast(v) for v in s]


def _soma_and_size(df: pd.DataFrame, neurons: pd.DataFrame, vs: tuple[float, float, float]) -> None:
    """neuPrint's ``size``, ``cropped``, ``somaLocation``, ``somaRadius`` (null unless the release has them).

    Read from optional ``neurons.parquet`` columns ``size`` (voxels), ``cropped``
    (bool), ``soma_x/soma_y/soma_z`` (nm) and ``soma_radius`` (nm) or ``somaRadius`` (voxels).
    """
    n = len(df)
    df["size"] = _column_values(neurons["size"], int) if "size" in neurons else [None] * n
    df["cropped"] = _column_values(neurons["cropped"], bool) if "cropped" in neurons else [None] * n
    if {"soma_x", "soma_y", "soma_z"} <= set(neurons.columns):
        df["somaLocation"] = [
            None if any(pd.isna(v) for v in (x, y, z)) else
            {"x": float(x) / vs[0], "y": float(y) / vs[1], "z": float(z) / vs[2], "srid": POINT_SRID}
            for x, y, z in zip(neurons["soma_x"], neurons["soma_y"], neurons["soma_z"])]
    else:
        df["somaLocation"] = [None] * n
    if "somaRadius" in neurons:
        df["somaRadius"] = _column_values(neurons["somaRadius"], float)
    elif "soma_radius" in neurons:
        df["somaRadius"] = [None if v is None else v / vs[0] for v in _column_values(neurons["soma_radius"], float)]
    else:
        df["somaRadius"] = [None] * n


def _segment_table(neurons: pd.DataFrame, connections: pd.DataFrame, roi_counts: pd.DataFrame | None,
                   synapses: pd.DataFrame | None, rois: list[str], primary: list[str],
                   vs: tuple[float, float, float]) -> tuple[pd.DataFrame, dict[str, PropSpec]]:
    ids = neurons["id"].astype("int64").to_numpy()
    df = pd.DataFrame({"bodyId": ids})
    for col in ("type", "instance", "status"):
        df[col] = _nullable_str(neurons[col]).to_numpy()
    df["statusLabel"] = df["status"]
    df["pre"] = neurons["pre"].astype("int64").to_numpy()
    df["post"] = neurons["post"].astype("int64").to_numpy()
    # upstream/downstream: the release's own totals where neurons.parquet has them (a partial release, such as
    # the sample, keeps a neuron's real totals while holding only some of its connections), else the sums of
    # the connection weights the graph holds
    summed = {"upstream": connections.groupby("post")["weight"].sum(),
              "downstream": connections.groupby("pre")["weight"].sum()}
    for col, sums in summed.items():
        computed = pd.Series(ids).map(sums).fillna(0).astype("int64")
        given = neurons[col].reset_index(drop=True) if col in neurons else None
        df[col] = (computed if given is None else given.fillna(computed).astype("int64")).to_numpy()

    # roiInfo: roi_counts.parquet for the bodies it covers, else counted from the synapses the graph holds,
    # so that a body's roiInfo and ROI flags cover the Synapse nodes it contains
    counts = pd.DataFrame({"id": [], "roi": [], "pre": [], "post": []})
    if roi_counts is not None:
        counts = roi_counts[["id", "roi", "pre", "post"]]
    if synapses is not None:
        counted = _synapse_roi_counts(synapses)
        counts = pd.concat([counts, counted[~counted["id"].isin(counts["id"])]], ignore_index=True)
    counts = counts[(counts["pre"] > 0) | (counts["post"] > 0)]
    info = _roi_info_json(counts, "id", rois)
    df["roiInfo"] = pd.Series(ids).map(info).fillna("{}").to_numpy()
    df["__neuron"] = neurons["is_neuron"].astype(bool).to_numpy()
    _soma_and_size(df, neurons, vs)
    present = counts[counts["roi"].isin(rois)]
    for roi in rois:
        members = present.loc[present["roi"] == roi, "id"].astype("int64").to_numpy()
        df[roi] = np.where(np.isin(ids, members), True, None)

    props: dict[str, PropSpec] = {
        "bodyId": PropSpec("INT64"), "type": PropSpec("STRING"), "instance": PropSpec("STRING"),
        "status": PropSpec("STRING"), "statusLabel": PropSpec("STRING"), "pre": PropSpec("INT64"),
        "post": PropSpec("INT64"), "upstream": PropSpec("INT64"), "downstream": PropSpec("INT64"),
        "roiInfo": PropSpec("STRING", "count_map"), "size": PropSpec("INT64"), "cropped": PropSpec("BOOL"),
        "somaLocation": PropSpec("POINT"), "somaRadius": PropSpec("DOUBLE"), "__neuron": PropSpec("BOOL"),
        **{r: PropSpec("BOOL") for r in rois},
    }
    reserved = set(props) | {"id", "is_neuron", *_CONSUMED}
    for col in neurons.columns:
        if col in reserved:
            continue
        kind = _kind_of(neurons[col])
        if kind is None or col.startswith(HIDDEN_PREFIX) or "`" in col or not col:
            log.warning("neurons.parquet column %r (dtype %s) is not served as a neuPrint property", col,
                        neurons[col].dtype)
            continue
        values = neurons[col]
        if kind == "STRING":
            df[col] = _nullable_str(values).to_numpy()
        else:
            df[col] = values.astype(object).where(values.notna(), None).to_numpy()
        props[col] = PropSpec(kind)
    return df[list(props)], props


def _connects_table(connections: pd.DataFrame, synapses: pd.DataFrame | None, primary: list[str]
                    ) -> tuple[pd.DataFrame, dict[str, PropSpec]]:
    props = {"weight": PropSpec("INT64"), "roiInfo": PropSpec("STRING", "count_map")}
    if connections.empty:
        return pd.DataFrame({"__from": pd.Series(dtype="int64"), "__to": pd.Series(dtype="int64"),
                             "weight": pd.Series(dtype="int64"), "roiInfo": pd.Series(dtype=object)}), props
    totals = connections.groupby(["pre", "post"], sort=True)["weight"].sum().rename("weight").reset_index()
    per_roi = connections[connections["roi"].isin(primary)].groupby(["pre", "post", "roi"])["weight"].sum()
    per_roi = per_roi.rename("post_w").reset_index()
    if synapses is not None and not synapses.empty:
        tbars = (synapses.dropna(subset=["roi"])
                 .drop_duplicates(["pre", "post", "roi", "pre_x", "pre_y", "pre_z"])
                 .groupby(["pre", "post", "roi"]).size().rename("tbars").reset_index())
        has_syn = synapses[["pre", "post"]].drop_duplicates().assign(_has=True)
        per_roi = per_roi.merge(tbars, on=["pre", "post", "roi"], how="left").merge(
            has_syn, on=["pre", "post"], how="left")
        per_roi["pre_w"] = np.where(per_roi["_has"].notna().to_numpy(),
                                    per_roi["tbars"].fillna(0), per_roi["post_w"]).astype("int64")
    else:
        per_roi["pre_w"] = per_roi["post_w"]
    maps = _count_maps(per_roi, ["pre", "post"], "pre_w", "post_w", primary)
    totals = totals.merge(maps, on=["pre", "post"], how="left")
    out = pd.DataFrame({
        "__from": totals["pre"].astype("int64"), "__to": totals["post"].astype("int64"),
        "weight": totals["weight"].astype("int64"),
        "roiInfo": totals["json"].fillna("{}").to_numpy(dtype=object),
    })
    return out, props


def _synapse_tables(synapses: pd.DataFrame, primary: list[str], vs: tuple[float, float, float],
                    dataset: str) -> dict[str, pd.DataFrame]:
    n = len(synapses)
    score = synapses["score"].astype("float64")
    pre_score = synapses["pre_score"].astype("float64") if "pre_score" in synapses else score
    post_score = synapses["post_score"].astype("float64") if "post_score" in synapses else score
    roi = synapses["roi"].astype(object).where(synapses["roi"].notna(), None)

    pre_key = pd.MultiIndex.from_arrays([synapses["pre"], synapses["pre_x"], synapses["pre_y"], synapses["pre_z"]])
    pre_codes, pre_uniques = pd.factorize(pre_key)  # first occurrence (lowest synapse_id) first
    n_pre = len(pre_uniques)
    first_row = pd.Series(np.arange(n)).groupby(pre_codes).min().to_numpy()
    pre_conf = pd.Series(pre_score.to_numpy()).groupby(pre_codes).max().to_numpy()  # NaN-skipping max

    def points(x, y, z) -> pd.Series:
        return point_series(np.asarray(x, dtype="float64") / vs[0], np.asarray(y, dtype="float64") / vs[1],
                            np.asarray(z, dtype="float64") / vs[2])

    first = synapses.iloc[first_row]
    pre_df = pd.DataFrame({
        "__sid": np.arange(n_pre, dtype="int64"),
        "type": "pre",
        "confidence": pre_conf,
        "location": points(first["pre_x"], first["pre_y"], first["pre_z"]),
    })
    pre_roi = roi.iloc[first_row].to_numpy()
    post_df = pd.DataFrame({
        "__sid": np.arange(n_pre, n_pre + n, dtype="int64"),
        "type": "post",
        "confidence": post_score.to_numpy(),
        "location": points(synapses["post_x"], synapses["post_y"], synapses["post_z"]),
    })
    post_roi = roi.to_numpy()
    for r in primary:
        pre_df[r] = np.where(pre_roi == r, True, None)
        post_df[r] = np.where(post_roi == r, True, None)
    syn_nodes = pd.concat([pre_df, post_df], ignore_index=True)

    pre_sid = pre_codes.astype("int64")
    post_sid = np.arange(n_pre, n_pre + n, dtype="int64")
    pairs = pd.MultiIndex.from_arrays([synapses["pre"], synapses["post"]])
    pair_codes, pair_uniques = pd.factorize(pairs)
    n_pairs = len(pair_uniques)
    a = pair_uniques.get_level_values(0).astype("int64").to_numpy()
    b = pair_uniques.get_level_values(1).astype("int64").to_numpy()
    set_a = np.arange(n_pairs, dtype="int64")
    set_b = np.arange(n_pairs, 2 * n_pairs, dtype="int64")
    sets = pd.DataFrame({
        "__ssid": np.concatenate([set_a, set_b]),
        "datasetBodyIds": [f"{dataset}:{x}:{y}" for x, y in zip(a, b)] * 2,
    })
    body_contains = pd.DataFrame({"__from": np.concatenate([a, b]), "__to": np.concatenate([set_a, set_b])})
    pre_members = pd.DataFrame({"__from": set_a[pair_codes], "__to": pre_sid}).drop_duplicates()
    post_members = pd.DataFrame({"__from": set_b[pair_codes], "__to": post_sid})
    return {
        "synapses": syn_nodes,
        "sets": sets,
        "set_connects": pd.DataFrame({"__from": set_a, "__to": set_b}),
        "body_contains": body_contains,
        "set_contains": pd.concat([pre_members, post_members], ignore_index=True),
        "synapses_to": pd.DataFrame({"__from": pre_sid, "__to": post_sid}),
    }


def _meta_row(manifest: Mapping[str, Any], dataset: str, tag: str, folder: Path, rois: list[str],
              primary: list[str], segment: pd.DataFrame, segment_props: Mapping[str, PropSpec],
              vs: tuple[float, float, float] | None, post_hat: float, pre_hp: float, post_hp: float,
              roi_counts: pd.DataFrame | None, synapses: pd.DataFrame | None) -> dict[str, Any]:
    # uuid and lastDatabaseEdit identify the data served (clients key caches by them, as they would by a
    # real server's DVID uuid and last-edit time): a digest of the manifest and every table, and the
    # newest modification time among them, so a release changed in any file gets new stamps.
    files = [folder / "manifest.json", *sorted(folder.glob("*.parquet"))]
    digest = sha1()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    edited = datetime.fromtimestamp(max(f.stat().st_mtime for f in files), tz=timezone.utc)
    totals: dict[str, dict[str, int]] = {r: {"pre": 0, "post": 0} for r in rois}
    for info in segment["roiInfo"]:
        for r, c in json.loads(info).items():
            if r in totals:
                totals[r]["pre"] += int(c.get("pre", 0))
                totals[r]["post"] += int(c.get("post", 0))
    statuses = sorted({s for s in segment["status"] if s is not None})
    type_names = {"INT64": "int", "DOUBLE": "float", "STRING": "string", "BOOL": "boolean", "POINT": "point",
                  "STRING[]": "list", "DOUBLE[]": "list"}
    roi_set = set(rois)
    neuron_properties = {p: type_names[s.type] for p, s in segment_props.items()
                         if not p.startswith(HIDDEN_PREFIX) and p not in roi_set}
    return {
        "__mid": 0,
        "dataset": dataset,
        "tag": tag,
        "uuid": digest.hexdigest()[:5],
        "lastDatabaseEdit": edited.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "info": manifest.get("source") or "N/A",
        "logo": "",
        "description": manifest.get("description", ""),
        "hideDataSet": False,
        "totalPreCount": int(segment["pre"].sum()),
        "totalPostCount": int(segment["post"].sum()),
        "primaryRois": primary,
        "superLevelRois": primary,
        "roiInfo": json.dumps(totals, separators=(",", ":")),
        "roiHierarchy": json.dumps({"name": dataset, "children": [{"name": r} for r in rois]},
                                   separators=(",", ":")),
        "neuronProperties": json.dumps(neuron_properties, separators=(",", ":")),
        "voxelSize": list(vs) if vs is not None else None,
        "voxelUnits": "nanometers",
        "postHighAccuracyThreshold": float(post_hat),
        "preHPThreshold": float(pre_hp),
        "postHPThreshold": float(post_hp),
        "statusDefinitions": json.dumps({s: f"status {s!r} as given by the release" for s in statuses},
                                        separators=(",", ":")),
        "neuroglancerInfo": "{}",
        "neuroglancerMeta": "[]",
        "synthetic": json.dumps(manifest.get("synthetic") or {}, separators=(",", ":")),
    }


_SWC_LINE = re.compile(r"^\s*(-?\d+)\s+(-?\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s*$")


def skeleton_swc(model: GraphModel, body_id: int) -> str | None:
    """The skeleton of ``body_id`` as neuPrint serves it: SWC in voxel units, or None.

    neuPrint stores skeletons in voxel coordinates with radii in voxels; the
    release stores nm. Coordinates are divided by the voxel size per axis and
    radii by the x voxel size. Comment lines are kept, with a note on units.

    Raises
    ------
    DataFormatError
        The release's SWC file has a malformed line.
    """
    if model.skeleton_dir is None:
        return None
    path = model.skeleton_dir / f"{int(body_id)}.swc"
    if not path.is_file():
        return None
    vx, vy, vz = model.position_size or model.voxel_size
    out = [f"# neuPrint emulator: skeleton of body {int(body_id)} in units of {vx:g} x {vy:g} x {vz:g} nm"]
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if line.lstrip().startswith("#"):
            out.append(line)
            continue
        m = _SWC_LINE.match(line)
        if not m:
            raise DataFormatError(f"{path}:{lineno} is not an SWC node line: {line!r}")
        node, kind, x, y, z, r, parent = m.groups()
        out.append(f"{node} {kind} {_num(float(x) / vx)} {_num(float(y) / vy)} {_num(float(z) / vz)} "
                   f"{_num(float(r) / vx)} {parent}")
    return "\n".join(out) + "\n"


def _num(v: float) -> str:
    """A coordinate without float noise: at most 6 decimals, trailing zeros dropped (``1.0`` -> ``1``)."""
    text = f"{v:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
