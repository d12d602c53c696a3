"""The emulated annotation tables and views, re-rooted at every materialization.

Each table is stored once with supervoxel columns and no root ids; a
materialization at time ``T`` fills ``*_root_id`` from ``*_supervoxel_id``
with the chunkedgraph state at ``T`` (:meth:`SegmentationHistory.root_map_at`),
as MaterializationEngine does.

Tables (names configurable, see :class:`TableNames`):

``synapses_nt_v1`` (schema ``synapse``)
    One row per release synapse. ``id`` = release ``synapse_id``; positions in
    the table's voxel units (``round(nm / resolution)``, see "Resolution" below); ``cleft_score`` from
    the release score (:func:`cleft_scores`); ``gaba, ach, glut, oct, ser, da``
    from the release or SYNTHETIC; ``neuropil`` = release ``roi``.
``valid_synapses_nt_np_v6`` (view)
    Rows with ``cleft_score > 50`` after removing duplicates: rows with the same
    (pre, post) supervoxel pair whose post sites lie within ``dedup_distance_nm``
    of a kept row (the one with the higher ``cleft_score``, then lower ``id``, is kept).
    Positions in nm by default (:attr:`TableOptions.view_resolution`), as FlyWire's view answers.
``valid_connection_v2`` (view)
    The view above grouped by (``pre_pt_root_id``, ``post_pt_root_id``):
    ``n_syn`` and the mean transmitter probabilities. One row per pair (fafbseg
    de-duplicates this view on ``pre, post, n_syn``, so it has no neuropil split).
``cell_types`` / ``neuron_information_v2`` (schema ``cell_type_local``-like)
    One row per release neuron with a ``type``: ``pt_supervoxel_id``/``pt_position``
    at the neuron's median synapse site, ``cell_type`` (resp. ``tag``) = ``type``.

Annotation profiles (:attr:`TableNames.annotations`) add the real shapes of each
datastack's annotation source (see ``connectomix/catalogue/*.toml``):

``"flywire"``: ``proofread_neurons`` (one row per release neuron) and
    ``hierarchical_neuron_annotations``, a *reference table* on it: long, one row per
    (neuron, ``classification_system``) with the value in ``cell_type``
    (super_class <- release superclass, cell_class <- class, cell_type <- type,
    hemibrain_type <- type: SYNTHETIC cross type). ``neuron_information_v2`` then holds
    free-text tags that are NOT the cell type (two rows per typed neuron).
``"microns"``: ``nucleus_detection_v0`` (nucleus ids 100000 + n, volume SYNTHETIC) and
    ``aibs_metamodel_celltypes_v661``, a reference table on it, one row per nucleus:
    ``classification_system`` <- release class (or SYNTHETIC ``excitatory_neuron``),
    ``cell_type`` <- type.
``"banc"``: ``cell_representative_point`` and ``codex_annotations``, a long reference
    table on it (keys super_class, cell_class, cell_type, side, fafb_783_cell_type).
``"fanc"``: ``neuron_information``, long and not a reference table: ``tag2`` the
    category (``neuron identity``, ``primary class``, ``soma side``), ``tag`` the value;
    sides spelled ``left soma`` / ``right soma`` / ``midline soma``.

Resolution: every table and view has its own voxel resolution (:attr:`EmulatedTable.resolution`),
reported in its metadata (``voxel_resolution_x/y/z``) and in the ``dataframe_resolution`` header of
its answers, and ``desired_resolution`` converts from it, as on MaterializationEngine, where a
view's resolution need not be its source table's: FlyWire's ``synapses_nt_v1`` is in 4 x 4 x 40 nm
voxels (natverse/fafbseg#254) while its filtered view ``valid_synapses_nt_np_v6`` answers nm
(seung-lab/FlyConnectome ``CAVE tutorial.ipynb`` @9b1790b cell 49: ``[366592, 246144, 74360]``
without ``desired_resolution``). A table's resolution is, in order: its entry in
:attr:`TableOptions.table_resolutions`, :attr:`TableOptions.view_resolution` for the filtered
synapse view, else :attr:`TableOptions.voxel_resolution` (default: the release's voxel size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from connectomix.errors import DataFormatError

from .history import SegmentationHistory
from .release import NT_COLUMNS, ReleaseData
from .supervoxels import SupervoxelLayout

__all__ = ["TableNames", "TableOptions", "EmulatedTable", "build_tables", "cleft_scores", "materialize", "splitmix64"]


@dataclass(frozen=True)
class TableNames:
    """Names under which the emulator serves its tables and views."""

    synapse_table: str = "synapses_nt_v1"
    synapse_view: str = "valid_synapses_nt_np_v6"
    connection_view: str = "valid_connection_v2"
    #: (table name, type column) pairs of cell-type annotation tables.
    cell_type_tables: tuple[tuple[str, str], ...] = (("cell_types", "cell_type"), ("neuron_information_v2", "tag"))
    #: The annotation profile: ``"flywire"``, ``"microns"``, ``"banc"``, ``"fanc"`` or ``None`` (see module doc).
    annotations: str | None = "flywire"
    #: Name of the synapse score column (FlyWire ``cleft_score``, MICrONS/BANC ``size``, FANC ``score``).
    score_column: str = "cleft_score"


@dataclass(frozen=True)
class TableOptions:
    """How release values become table values.

    Attributes
    ----------
    voxel_resolution
        Voxel size in nm of every table without a resolution of its own below, and of the
        datastack (info ``viewer_resolution``, chunkedgraph scale); default: the manifest's
        ``voxel_size_nm``.
    view_resolution
        Voxel size in nm of the filtered synapse view (:attr:`TableNames.synapse_view`); default
        1, 1, 1 (nm), as FlyWire's ``valid_synapses_nt_np_v6`` answers (module docstring);
        ``None``: :attr:`voxel_resolution`.
    table_resolutions
        ``(table or view name, (x, y, z))`` pairs: the voxel size of those tables, before the two
        settings above. A name the datastack does not serve is a :class:`DataFormatError`.
    reported_resolutions
        ``(name, (x, y, z))`` pairs: tables whose metadata (and ``dataframe_resolution``, and so
        ``desired_resolution``) report another voxel size than their positions are stored in,
        as BANC's ``cell_representative_point`` reports a placeholder 1, 1, 1 over 4 x 4 x 45
        voxels (htem/BANC-project ``cell_representative_point.md`` @e469a5a, catalogue banc.toml).
    cleft_score_scale
        ``cleft_score = round(score * scale)`` for 0-1 scores (confidence).
    missing_cleft_score
        SYNTHETIC ``cleft_score`` for synapses without a release score.
    min_cleft_score
        The filtered view keeps ``cleft_score > min_cleft_score``.
    dedup_distance_nm
        Post-site distance under which same-supervoxel-pair rows are duplicates.
    """

    voxel_resolution: tuple[float, float, float] | None = None
    view_resolution: tuple[float, float, float] | None = (1.0, 1.0, 1.0)
    table_resolutions: tuple[tuple[str, tuple[float, float, float]], ...] = ()
    reported_resolutions: tuple[tuple[str, tuple[float, float, float]], ...] = ()
    cleft_score_scale: float = 100.0
    missing_cleft_score: int = 100
    min_cleft_score: int = 50
    dedup_distance_nm: float = 100.0


@dataclass
class EmulatedTable:
    """One table or view: its stored rows (no root ids) and metadata.

    Attributes
    ----------
    name, kind
        Table/view name and ``"table"`` or ``"view"``.
    schema
        The CAVE schema name reported in metadata.
    description
        Human-readable, says which parts are SYNTHETIC.
    columns
        Logical columns in order; a position column ``p`` is stored as ``p_x, p_y, p_z``.
    position_columns
        The logical position columns.
    root_columns
        ``(root column, supervoxel column)`` pairs filled per materialization.
    stored
        The rows, without root columns.
    aggregate_of
        For the connection view: the name of the view it aggregates.
    """

    name: str
    kind: str
    schema: str
    description: str
    columns: list[str]
    position_columns: tuple[str, ...]
    root_columns: tuple[tuple[str, str], ...]
    stored: pd.DataFrame
    aggregate_of: str | None = None
    string_columns: tuple[str, ...] = ()
    #: The target table of a reference table (its ``target_id`` is the target's ``id``).
    reference_table: str | None = None
    #: Voxel size in nm of the stored positions: the metadata's ``voxel_resolution`` and the
    #: ``dataframe_resolution`` of answers (``None``: the datastack's, ``EmulatedDataset.resolution``).
    resolution: tuple[float, float, float] | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def frame_columns(self) -> list[str]:
        """Physical columns (positions split into ``_x/_y/_z``) in order."""
        out = []
        for col in self.columns:
            out.extend([f"{col}_x", f"{col}_y", f"{col}_z"] if col in self.position_columns else [col])
        return out


def splitmix64(values: np.ndarray, seed: int = 0) -> np.ndarray:
    """A fast deterministic 64-bit hash (SplitMix64) of integer arrays, as uint64."""
    with np.errstate(over="ignore"):
        z = np.asarray(values).astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 + seed) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _unit(values: np.ndarray, seed: int) -> np.ndarray:
    return (splitmix64(values, seed) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def cleft_scores(release: ReleaseData, options: TableOptions) -> tuple[np.ndarray, str]:
    """FlyWire-style integer ``cleft_score`` per synapse, and a sentence saying how it was made.

    * ``score_name == "cleft_score"``: the release score, rounded;
    * any other score (e.g. a 0-1 ``confidence``): ``round(score * cleft_score_scale)``
      (scale 100 maps the usual confidence cut 0.5 onto FlyWire's cut 50);
    * missing scores: SYNTHETIC ``missing_cleft_score``.
    """
    raw = pd.to_numeric(release.synapses["score"], errors="coerce").to_numpy(np.float64)
    missing = np.isnan(raw)
    if release.score_name == "cleft_score":
        values = np.round(raw)
        how = "cleft_score = release cleft_score"
    else:
        values = np.round(raw * options.cleft_score_scale)
        name = release.score_name or "score"
        how = f"cleft_score = round({options.cleft_score_scale:g} * release {name})"
    if missing.any():
        values[missing] = options.missing_cleft_score
        how += f"; SYNTHETIC {options.missing_cleft_score} for {int(missing.sum())} synapses without a score"
    return values.astype(np.int64), how


def _transmitters(release: ReleaseData) -> tuple[dict[str, np.ndarray], bool]:
    syn = release.synapses
    if release.has_transmitters:
        return {c: pd.to_numeric(syn[c], errors="coerce").to_numpy(np.float64) for c in NT_COLUMNS}, False
    pre = syn["pre"].to_numpy(np.int64)
    sid = syn["synapse_id"].to_numpy(np.int64)
    # dominant transmitter per presynaptic body (ach 50 %, gaba 20 %, glut 20 %, oct/ser/da 10 %)
    u = _unit(pre, seed=11)
    dominant = np.searchsorted(np.array([0.2, 0.7, 0.9, 0.9333, 0.9667]), u, side="right")  # gaba, ach, glut, ...
    p_dom = 0.6 + 0.35 * _unit(sid, seed=13)
    weights = np.stack([_unit(sid, seed=17 + k) for k in range(len(NT_COLUMNS))], axis=1)
    weights[np.arange(len(sid)), dominant] = 0.0
    weights = weights / weights.sum(axis=1, keepdims=True) * (1.0 - p_dom)[:, None]
    weights[np.arange(len(sid)), dominant] = p_dom
    return {c: np.round(weights[:, k], 4) for k, c in enumerate(NT_COLUMNS)}, True


def _voxels(nm: np.ndarray, res: tuple[float, float, float]) -> np.ndarray:
    return np.round(nm / np.asarray(res, dtype=np.float64)).astype(np.int64)


def _triple(value, what: str) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(np.isfinite(v) and v > 0 for v in out):
        raise DataFormatError(f"{what} must be three positive numbers (nm per voxel in x, y, z), got {value!r}")
    return out  # type: ignore[return-value]


def table_resolutions(release: ReleaseData, names: TableNames, options: TableOptions
                      ) -> tuple[tuple[float, float, float], Callable[[str], tuple[float, float, float]]]:
    """The datastack's voxel resolution and a function giving each table's (module docstring, "Resolution")."""
    default = _triple(options.voxel_resolution or release.voxel_size_nm, "voxel_resolution")
    view = None if options.view_resolution is None else _triple(options.view_resolution, "view_resolution")
    own = {str(name): _triple(value, f"table_resolutions[{name!r}]") for name, value in options.table_resolutions}

    def resolution_of(name: str) -> tuple[float, float, float]:
        if name in own:
            return own[name]
        return view if (name == names.synapse_view and view is not None) else default

    return default, resolution_of


def _duplicates(pre_sv: np.ndarray, post_sv: np.ndarray, post_nm: np.ndarray, score: np.ndarray,
                ids: np.ndarray, distance: float) -> np.ndarray:
    """Mask of rows that duplicate a better row of the same supervoxel pair (see module docstring).

    Rows are visited best first (higher score, then lower id); a row is a
    duplicate when a kept row of the same (pre, post) supervoxel pair has its
    post site within ``distance`` nm. Candidate pairs come from a k-d tree in
    which each supervoxel pair is moved far away from every other one.
    """
    dup = np.zeros(len(ids), dtype=bool)
    if distance <= 0 or len(ids) < 2:
        return dup
    _, group = np.unique(np.stack([pre_sv, post_sv], axis=1), axis=0, return_inverse=True)
    points = np.column_stack([post_nm - post_nm.min(axis=0), group.reshape(-1) * (10.0 * distance + 1.0)])
    pairs = cKDTree(points).query_pairs(r=distance, output_type="ndarray")
    if len(pairs) == 0:
        return dup
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.lexsort((ids, -score))] = np.arange(len(ids))
    neighbours: dict[int, list[int]] = {}
    for a, b in pairs.tolist():
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    for row in sorted(neighbours, key=rank.__getitem__):
        if any(not dup[n] and rank[n] < rank[row] for n in neighbours[row]):
            dup[row] = True
    return dup


def build_tables(release: ReleaseData, layout: SupervoxelLayout, names: TableNames, options: TableOptions
                 ) -> tuple[dict[str, EmulatedTable], tuple[float, float, float]]:
    """All tables and views of the emulated datastack, and the datastack's voxel resolution.

    Raises
    ------
    DataFormatError
        A resolution is not three positive numbers, or :attr:`TableOptions.table_resolutions`
        names a table or view the datastack does not serve.
    """
    res, resolution_of = table_resolutions(release, names, options)
    syn = release.synapses
    pre_nm = syn[["pre_x", "pre_y", "pre_z"]].to_numpy(np.float64)
    post_nm = syn[["post_x", "post_y", "post_z"]].to_numpy(np.float64)
    table_res = resolution_of(names.synapse_table)
    pre_vx, post_vx = _voxels(pre_nm, table_res), _voxels(post_nm, table_res)
    cleft, cleft_how = cleft_scores(release, options)
    nts, nt_synthetic = _transmitters(release)
    ids = syn["synapse_id"].to_numpy(np.int64)
    neuropil = syn["roi"].astype("string").astype(object).where(syn["roi"].notna(), None).to_numpy()
    stored = pd.DataFrame({
        "id": ids,
        "valid": np.ones(len(ids), dtype=bool),
        "pre_pt_supervoxel_id": layout.pre_sv,
        "post_pt_supervoxel_id": layout.post_sv,
        "pre_pt_position_x": pre_vx[:, 0], "pre_pt_position_y": pre_vx[:, 1], "pre_pt_position_z": pre_vx[:, 2],
        "post_pt_position_x": post_vx[:, 0], "post_pt_position_y": post_vx[:, 1],
        "post_pt_position_z": post_vx[:, 2],
        "cleft_score": cleft,
        **nts,
        "neuropil": neuropil,
    })
    nt_note = ("gaba..da are SYNTHETIC (invented per presynaptic body)" if nt_synthetic
               else "gaba..da from the release")
    origin = (f"Built by the connectomix CAVE emulator from release {release.name!r} "
              f"({release.manifest.get('version', '?')}); supervoxel ids are SYNTHETIC and root ids after "
              "version 1 follow a SYNTHETIC edit script (invented proofreading).")
    syn_cols = ["id", "valid", "pre_pt_supervoxel_id", "pre_pt_root_id", "post_pt_supervoxel_id", "post_pt_root_id",
                "pre_pt_position", "post_pt_position", "cleft_score", *NT_COLUMNS, "neuropil"]
    roots = (("pre_pt_root_id", "pre_pt_supervoxel_id"), ("post_pt_root_id", "post_pt_supervoxel_id"))
    tables: dict[str, EmulatedTable] = {}
    tables[names.synapse_table] = EmulatedTable(
        name=names.synapse_table, kind="table", schema="synapse",
        description=f"{origin} One row per release synapse; {cleft_how}; {nt_note}; neuropil = release roi.",
        columns=syn_cols, position_columns=("pre_pt_position", "post_pt_position"), root_columns=roots,
        stored=stored, string_columns=("neuropil",))
    dup = _duplicates(layout.pre_sv, layout.post_sv, post_nm, cleft.astype(np.float64), ids,
                      options.dedup_distance_nm)
    keep = (cleft > options.min_cleft_score) & ~dup
    view_cols = [c for c in syn_cols if c != "valid"]
    view_stored = stored.loc[keep, [c for c in stored.columns if c != "valid"]].reset_index(drop=True)
    view_res = resolution_of(names.synapse_view)
    for side, nm in (("pre", pre_nm[keep]), ("post", post_nm[keep])):  # the view's own unit
        vx = _voxels(nm, view_res)
        for i, axis in enumerate("xyz"):
            view_stored[f"{side}_pt_position_{axis}"] = vx[:, i]
    tables[names.synapse_view] = EmulatedTable(
        name=names.synapse_view, kind="view", schema="synapse",
        description=(f"{origin} Filtered synapses: cleft_score > {options.min_cleft_score}, duplicates removed "
                     f"(same supervoxel pair, post sites within {options.dedup_distance_nm:g} nm); {nt_note}."),
        columns=view_cols, position_columns=("pre_pt_position", "post_pt_position"), root_columns=roots,
        stored=view_stored, string_columns=("neuropil",))
    tables[names.connection_view] = EmulatedTable(
        name=names.connection_view, kind="view", schema="connection",
        description=(f"{origin} Connections of {names.synapse_view}: n_syn synapses per (pre, post) root pair "
                     f"and mean transmitter probabilities."),
        columns=["pre_pt_root_id", "post_pt_root_id", "n_syn", *NT_COLUMNS], position_columns=(),
        root_columns=(), stored=pd.DataFrame(), aggregate_of=names.synapse_view)
    for table_name, type_col in names.cell_type_tables:
        tables[table_name] = _cell_type_table(release, layout, resolution_of(table_name), table_name, type_col,
                                              origin)
        if type_col == "cell_type":  # a wide table: the release's other annotation columns too
            _add_wide_columns(tables[table_name], release)
    if names.annotations is not None:
        for table in _profile_tables(names.annotations, release, layout, resolution_of, origin):
            tables[table.name] = table
    if names.score_column != "cleft_score":
        for table in (tables[names.synapse_table], tables[names.synapse_view]):
            table.stored = table.stored.rename(columns={"cleft_score": names.score_column})
            table.columns = [names.score_column if c == "cleft_score" else c for c in table.columns]
    reported = {str(name): _triple(value, f"reported_resolutions[{name!r}]")
                for name, value in options.reported_resolutions}
    unknown = sorted(({str(name) for name, _ in options.table_resolutions} | set(reported)) - set(tables))
    if unknown:
        raise DataFormatError(f"table_resolutions / reported_resolutions name {unknown}, which this datastack does "
                              f"not serve; its tables and views are {sorted(tables)}")
    for name, table in tables.items():
        table.resolution = reported.get(name, resolution_of(name))
    return tables, res


#: Release neuron columns copied into the wide ``cell_types`` table (as they are, where present).
WIDE_COLUMNS = ("instance", "status", "side", "class", "superclass", "nt", "hemibrain_type", "flywire_type",
                "manc_type", "malecns_type")


def _add_wide_columns(table: EmulatedTable, release: ReleaseData) -> None:
    neurons = release.neurons[release.neurons["type"].notna()].sort_values("id")
    added = [c for c in WIDE_COLUMNS if c in neurons.columns]
    for column in added:
        values = neurons[column].astype(object)
        table.stored[column] = values.where(values.notna(), None).to_numpy()
    table.columns = table.columns + added
    table.string_columns = table.string_columns + tuple(added)
    if added:
        table.description += f" Also the release's {', '.join(added)} (a wide table)."


def _anchor(release: ReleaseData, layout: SupervoxelLayout, res, bodies: np.ndarray) -> dict[str, np.ndarray]:
    pos = np.array([layout.anchor_position_nm.get(int(b), (0.0, 0.0, 0.0)) for b in bodies],
                   dtype=np.float64).reshape(-1, 3)
    vx = _voxels(pos, res)
    return {"pt_supervoxel_id": np.array([layout.anchor_sv.get(int(b), 0) for b in bodies], dtype=np.int64),
            "pt_position_x": vx[:, 0], "pt_position_y": vx[:, 1], "pt_position_z": vx[:, 2]}


def _point_table(name: str, release, layout, res, bodies: np.ndarray, first_id: int, description: str,
                 extra: dict[str, np.ndarray] | None = None) -> EmulatedTable:
    stored = pd.DataFrame({"id": np.arange(first_id, first_id + len(bodies), dtype=np.int64),
                           "valid": np.ones(len(bodies), dtype=bool), **_anchor(release, layout, res, bodies),
                           **(extra or {})})
    return EmulatedTable(
        name=name, kind="table", schema="bound_tag" if not extra else "nucleus_detection", description=description,
        columns=["id", "valid", "pt_supervoxel_id", "pt_root_id", "pt_position", *(extra or {})],
        position_columns=("pt_position",), root_columns=(("pt_root_id", "pt_supervoxel_id"),), stored=stored)


def _long_rows(neurons: pd.DataFrame, keys: list[tuple[str, str]], target: dict[int, int]) -> pd.DataFrame:
    """``(target_id, key, value)`` rows: one per neuron and release column that has a value."""
    rows = []
    for key, column in keys:
        if column not in neurons:
            continue
        have = neurons[neurons[column].notna()]
        rows.append(pd.DataFrame({"target_id": [target[int(b)] for b in have["id"]], "key": key,
                                  "value": have[column].astype(str).to_numpy()}))
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["target_id", "key", "value"])
    return out.sort_values(["target_id", "key"], kind="stable").reset_index(drop=True)


def _reference(name: str, target: str, long: pd.DataFrame, key_col: str, value_col: str, description: str,
               schema: str) -> EmulatedTable:
    stored = pd.DataFrame({"id": np.arange(1, len(long) + 1, dtype=np.int64), "valid": np.ones(len(long), bool),
                           "target_id": long["target_id"].to_numpy(np.int64),
                           key_col: long["key"].astype(object).to_numpy(),
                           value_col: long["value"].astype(object).to_numpy()})
    return EmulatedTable(name=name, kind="table", schema=schema, description=description,
                         columns=["id", "valid", "target_id", key_col, value_col], position_columns=(),
                         root_columns=(), stored=stored, string_columns=(key_col, value_col), reference_table=target)


def _profile_tables(profile: str, release: ReleaseData, layout: SupervoxelLayout,
                    resolution_of: Callable[[str], tuple[float, float, float]], origin: str) -> list[EmulatedTable]:
    """The annotation tables of one profile, in the real shapes (see the module docstring)."""
    neurons = release.neurons[(release.neurons["id"] != 0)].sort_values("id").reset_index(drop=True)
    typed = neurons[neurons["type"].notna()] if "type" in neurons else neurons.iloc[:0]
    bodies = typed["id"].to_numpy(np.int64)
    if profile == "flywire":
        points = _point_table("proofread_neurons", release, layout, resolution_of("proofread_neurons"), bodies, 1,
                              f"{origin} One row per typed release neuron (as FlyWire's proofread_neurons).")
        target = dict(zip(bodies.tolist(), points.stored["id"].tolist()))
        long = _long_rows(typed, [("super_class", "superclass"), ("cell_class", "class"), ("cell_type", "type"),
                                  ("hemibrain_type", "hemibrain_type")], target)
        ref = _reference("hierarchical_neuron_annotations", points.name, long, "classification_system", "cell_type",
                         f"{origin} Long reference table on proofread_neurons: one row per neuron and "
                         "classification_system (values from the release).", "cell_type_reference")
        tags = pd.concat([typed.assign(tag="community: " + typed["type"].astype(str) + "-like"),
                          typed.assign(tag="seen by proofreader")], ignore_index=True).sort_values("id", kind="stable")
        info = _cell_type_table(release, layout, resolution_of("neuron_information_v2"), "neuron_information_v2",
                                "tag", origin, rows=tags)
        return [points, ref, info]
    if profile == "microns":
        nuclei = _point_table("nucleus_detection_v0", release, layout, resolution_of("nucleus_detection_v0"), bodies,
                              100_001,
                              f"{origin} One nucleus per typed release neuron; volume SYNTHETIC.",
                              extra={"volume": np.round(200.0 + (bodies % 97), 3)})
        target = dict(zip(bodies.tolist(), nuclei.stored["id"].tolist()))
        klass = typed["class"] if "class" in typed else pd.Series("excitatory_neuron", index=typed.index)
        wide = pd.DataFrame({"target_id": [target[int(b)] for b in bodies], "key": klass.fillna(
            "excitatory_neuron").astype(str).to_numpy(), "value": typed["type"].astype(str).to_numpy()})
        ref = _reference("aibs_metamodel_celltypes_v661", nuclei.name, wide, "classification_system", "cell_type",
                         f"{origin} Reference table on nucleus_detection_v0, one row per nucleus: "
                         "classification_system = release class (SYNTHETIC excitatory_neuron if none), "
                         "cell_type = type.", "cell_type_reference")
        return [nuclei, ref]
    if profile == "banc":
        points = _point_table("cell_representative_point", release, layout,
                              resolution_of("cell_representative_point"), bodies, 1,
                              f"{origin} One representative point per typed release neuron.")
        target = dict(zip(bodies.tolist(), points.stored["id"].tolist()))
        long = _long_rows(typed.assign(fafb=typed["type"]),
                          [("super_class", "superclass"), ("cell_class", "class"), ("cell_type", "type"),
                           ("side", "side"), ("fafb_783_cell_type", "fafb")], target)
        ref = _reference("codex_annotations", points.name, long, "classification_system", "cell_type",
                         f"{origin} Long reference table on cell_representative_point (BANC codex_annotations "
                         "shape); fafb_783_cell_type SYNTHETIC = type.", "cell_type_reference")
        return [points, ref]
    if profile == "fanc":
        spelled = {"left": "left soma", "right": "right soma", "center": "midline soma"}
        sides = typed["side"].map(spelled) if "side" in typed else pd.Series(None, index=typed.index)
        rows = []
        for tag2, values in (("neuron identity", typed["type"]), ("primary class", typed.get("class")),
                             ("soma side", sides)):
            if values is None:
                continue
            have = values.notna()
            rows.append(typed[have].assign(tag=values[have].astype(str), tag2=tag2))
        frame = pd.concat(rows, ignore_index=True).sort_values("id", kind="stable")
        table = _cell_type_table(release, layout, resolution_of("neuron_information"), "neuron_information", "tag",
                                 origin, rows=frame)
        table.stored["tag2"] = frame["tag2"].astype(object).to_numpy()
        table.columns.append("tag2")
        table.string_columns = ("tag", "tag2")
        return [table]
    raise ValueError(f"unknown annotation profile {profile!r}; profiles are flywire, microns, banc, fanc")


def _cell_type_table(release: ReleaseData, layout: SupervoxelLayout, res: tuple[float, float, float],
                     name: str, type_col: str, origin: str, rows: pd.DataFrame | None = None) -> EmulatedTable:
    neurons = release.neurons[release.neurons["type"].notna()].sort_values("id") if rows is None else rows
    bodies = neurons["id"].to_numpy(np.int64)
    pos = np.array([layout.anchor_position_nm.get(int(b), (0.0, 0.0, 0.0)) for b in bodies],
                   dtype=np.float64).reshape(-1, 3)
    vx = _voxels(pos, res)
    stored = pd.DataFrame({
        "id": np.arange(1, len(bodies) + 1, dtype=np.int64),
        "valid": np.ones(len(bodies), dtype=bool),
        # a row for background id 0 gets supervoxel 0, as an annotation point outside every segment does
        "pt_supervoxel_id": np.array([layout.anchor_sv.get(int(b), 0) for b in bodies], dtype=np.int64),
        "pt_position_x": vx[:, 0], "pt_position_y": vx[:, 1], "pt_position_z": vx[:, 2],
        type_col: neurons["type" if rows is None else type_col].astype(object).to_numpy(),
    })
    return EmulatedTable(
        name=name, kind="table", schema="cell_type_local",
        description=(f"{origin} Cell types = release neurons.type, one row per typed neuron, anchored at the "
                     "neuron's median synapse site (a SYNTHETIC supervoxel; position 0,0,0 if it has no synapses)."),
        columns=["id", "valid", "pt_supervoxel_id", "pt_root_id", "pt_position", type_col],
        position_columns=("pt_position",), root_columns=(("pt_root_id", "pt_supervoxel_id"),), stored=stored,
        string_columns=(type_col,))


def materialize(table: EmulatedTable, tables: dict[str, EmulatedTable], history: SegmentationHistory,
                ts: int) -> pd.DataFrame:
    """The rows of ``table`` with root ids as of ``ts`` (cached per chunkedgraph state)."""
    root_map = history.root_map_at(ts)
    key = id(root_map)
    cached = table._cache.get(key)
    if cached is not None and cached[0] is root_map:
        return cached[1]
    if table.aggregate_of is not None:
        rows = materialize(tables[table.aggregate_of], tables, history, ts)
        grouped = rows.groupby(["pre_pt_root_id", "post_pt_root_id"], sort=True)
        frame = grouped[list(NT_COLUMNS)].mean().round(4)
        frame.insert(0, "n_syn", grouped.size().astype(np.int64))
        frame = frame.reset_index()
    else:
        frame = table.stored.copy()
        for root_col, sv_col in table.root_columns:
            frame[root_col] = history.roots_of_supervoxels(frame[sv_col].to_numpy(np.int64), ts)
    frame = frame[table.frame_columns()]
    if len(table._cache) > 16:
        table._cache.clear()
    table._cache[key] = (root_map, frame)
    return frame
