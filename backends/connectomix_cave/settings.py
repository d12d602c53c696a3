"""Per-datastack configuration of the CAVE backend.

Tables, views and column names differ between CAVE deployments, and change
between releases (FlyWire's filtered view is ``valid_synapses_nt_np`` at 630 and
``valid_synapses_nt_np_v6`` from 783 on). The values come from the dataset
catalogue (:mod:`connectomix.catalogue`, every value with its public source)
when the datastack is a catalogue dataset: synapse table and view per version,
score column/scale/recommended threshold, synapse units, the annotation table
and its shape, live queries and the row cap. :data:`DATASTACK_DEFAULTS` holds
what the catalogue does not describe (neuropil column, connection view). Any
field is overridable per dataset in the TOML config or as
``connectomix.open(..., synapse_view="...")`` options. An unknown datastack gets
conservative defaults (no live queries, no filtered view, no neuron table) and a
warning naming what is unverified.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any

from connectomix.errors import InvalidArgumentError

__all__ = ["CaveSettings", "DATASTACK_DEFAULTS", "settings_for", "catalogue_settings"]


@dataclass(frozen=True)
class CaveSettings:
    """What the CAVE backend needs to know about a datastack.

    Attributes
    ----------
    synapse_table
        Materialized synapse table (``None``: the datastack info's ``synapse_table``).
    synapse_view
        Filtered synapse view used when ``filtered`` (FlyWire: de-duplicated,
        ``cleft_score > 50``); ``None`` if the datastack has none.
    connection_view
        Pre-aggregated edge view (``pre_pt_root_id, post_pt_root_id, n_syn``)
        used for total weights when it matches the filtered synapses.
    filtered
        Query the filtered view by default.
    score_column
        Synapse score column (``cleft_score`` on FlyWire, ``score`` on FANC);
        ``None`` if synapses have no score.
    neuropil_column
        Per-synapse neuropil (ROI) column, ``None`` if absent.
    neuron_table
        Annotation table that lists neurons (root id column ``neuron_id_column``),
        with optional ``type_column``, ``instance_column``, ``status_column``.
    row_limit
        Rows the server returns at most per query (queries that hit it are split).
    live
        Whether live (un-materialized) queries are allowed on this datastack.
    primary_rois
        The neuropil names that partition the brain, if known.
    view_versions
        ``(version, view)`` pairs: the filtered view of those materializations
        when it differs from ``synapse_view`` (FlyWire 630: ``valid_synapses_nt_np``).
    synapse_unit
        ``"nm"`` or ``"voxel"`` as the catalogue says, ``None`` if unknown.
        Positions are always converted with the table metadata's
        ``voxel_resolution`` (what caveclient's ``desired_resolution`` uses); a
        table whose metadata disagrees with this unit raises an error.
    score_scale, score_recommended, score_op, score_source
        The score's scale in words, the published threshold in connectomix's
        ``>=`` meaning, the operator as published and where it is published.
    annotation_shape
        ``"wide"`` (one row per neuron, one column per field) or ``"long"``
        (one row per neuron and field: ``annotation_key_column`` names the
        field, ``annotation_value_column`` holds the value).
    annotation_reference
        The target table when ``neuron_table`` is a reference table (its rows
        carry ``target_id``; root ids live in the target's ``neuron_id_column``).
    annotation_map
        ``(connectomix column, source)`` pairs: the long table's key, or the
        wide table's column, that fills each core or cross-type column; as an
        option ``annotation_map="side=side,class=cell_class"`` (with a user's
        own ``neuron_table``, on top of ``type_column`` and friends).
    catalogue
        The catalogue dataset these settings come from (``None``: not a catalogue dataset).
    """

    synapse_table: str | None = None
    synapse_view: str | None = None
    connection_view: str | None = None
    filtered: bool = True
    score_column: str | None = None
    neuropil_column: str | None = None
    neuron_table: str | None = None
    neuron_id_column: str = "pt_root_id"
    type_column: str | None = None
    instance_column: str | None = None
    status_column: str | None = None
    row_limit: int = 200_000
    live: bool = True
    materialization: Any = "auto"
    primary_rois: tuple[str, ...] = ()
    view_versions: tuple[tuple[int, str], ...] = ()
    synapse_unit: str | None = None
    score_scale: str | None = None
    score_recommended: float | None = None
    score_op: str = ">="
    score_source: str | None = None
    annotation_shape: str = "wide"
    annotation_reference: str | None = None
    annotation_key_column: str | None = None
    annotation_value_column: str | None = None
    annotation_map: tuple[tuple[str, str], ...] = ()
    catalogue: str | None = None

    def view_at(self, version: Any) -> str | None:
        """The filtered synapse view of materialization ``version``."""
        for number, view in self.view_versions:
            if isinstance(version, (int,)) and not isinstance(version, bool) and int(version) == number:
                return view
        return self.synapse_view

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


_FLYWIRE = CaveSettings(
    synapse_table="synapses_nt_v1",
    synapse_view="valid_synapses_nt_np_v6",
    connection_view="valid_connection_v2",
    score_column="cleft_score",
    neuropil_column="neuropil",
    row_limit=500_000,
)

#: What the catalogue does not describe, per datastack (neuropil column, connection view, filtered);
#: the catalogue's values are laid over these (see :func:`settings_for`).
DATASTACK_DEFAULTS: dict[str, CaveSettings] = {
    "flywire_fafb_public": replace(_FLYWIRE, live=False),
    "flywire_fafb_production": _FLYWIRE,
    "fanc_production_mar2021": CaveSettings(filtered=False),
    "brain_and_nerve_cord_public": CaveSettings(filtered=False, live=False),
    "brain_and_nerve_cord": CaveSettings(filtered=False),
    "minnie65_public": CaveSettings(filtered=False, live=False),
    "minnie65_phase3_v1": CaveSettings(filtered=False, live=False),
}

#: The catalogue's cross-dataset type keys/columns and the connectomix column each fills
#: (BANC names from schlegelp/connecto:connecto/datasets/banc.py@0bae3a4, via the catalogue).
CROSS_TYPE_NAMES = {"hemibrain_type": "hemibrain_type", "fafb_783_cell_type": "flywire_type",
                    "malecns_09_cell_type": "malecns_type", "manc_121_cell_type": "manc_type",
                    "manc_type": "manc_type", "flywire_type": "flywire_type", "malecns_type": "malecns_type"}
_CORE_FIELDS = ("type", "instance", "status", "side", "class", "superclass", "nt")
_KEY_RULE = re.compile(r"^(\w+) = '([^']+)'$")
_WORD = re.compile(r"^\w+$")


def _catalogue_entry(datastack: str):
    from connectomix import catalogue

    for entry in catalogue.load().datasets.values():
        if entry.backend == "cave" and entry.dataset == datastack:
            return entry
    return None


def catalogue_settings(datastack: str) -> dict[str, Any]:
    """The :class:`CaveSettings` fields the catalogue gives for ``datastack`` (empty if not a catalogue stack).

    Values the catalogue writes as prose (``"none (mouse cortex)"``, ``"per table: ..."``) are not
    settings and are skipped; a numeric threshold published as ``> t`` on an integer score becomes
    ``t + 1`` (connectomix's ``>=``), e.g. FlyWire ``cleft_score > 50`` -> 51.
    """
    entry = _catalogue_entry(datastack)
    if entry is None:
        return {}
    out: dict[str, Any] = {"catalogue": entry.name}
    if isinstance(entry.row_cap, int) and not isinstance(entry.row_cap, bool):
        out["row_limit"] = entry.row_cap
    out["live"] = entry.live_queries is True
    table = entry.value("synapses.table")
    if isinstance(table, str) and _WORD.match(table):
        out["synapse_table"] = table
    view = entry.value("synapses.view")
    if isinstance(view, str) and _WORD.match(view):
        out["synapse_view"] = view
    out["view_versions"] = tuple(sorted(
        (int(path.rsplit("_v", 1)[1]), item.value) for path, item in entry.leaves()
        if re.fullmatch(r"synapses\.view_v\d+", path)))
    unit = str(entry.value("synapses.unit", entry.value("coordinates.unit", "")))
    out["synapse_unit"] = "nm" if unit.startswith("nm") else "voxel" if unit.startswith("voxel") else None
    score = entry.score_column
    out["score_column"] = score if isinstance(score, str) and _WORD.match(score) and score != "none" else None
    if out["score_column"]:
        out["score_scale"] = entry.score_scale
        threshold, op = entry.recommended_threshold, entry.threshold_op or ">="
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            integer = "integer" in str(entry.score_scale or "")
            out["score_recommended"] = threshold + 1 if op == ">" and integer else threshold
            out["score_op"] = op
            conversion = f"; published '{out['score_column']} {op} {threshold}'" + (
                f" on integers = '>= {threshold + 1}'" if op == ">" and integer else "")
            out["score_source"] = ", ".join(entry.sources_of("synapses.recommended_threshold")) + conversion
    source = entry.annotation_source
    if isinstance(source, str) and _WORD.match(source):
        shape = str(entry.annotation_shape or "")
        out["neuron_table"] = source
        out["annotation_shape"] = "long" if shape.startswith("long") else "wide"
        target = entry.value("annotations.reference_target")
        out["annotation_reference"] = target if "reference" in shape and isinstance(target, str) else None
        id_column = str(entry.value("annotations.id_column", "pt_root_id")).split(" ")[0]
        out["neuron_id_column"] = id_column
        out["annotation_key_column"] = entry.value("annotations.key_column")
        out["annotation_value_column"] = entry.value("annotations.value_column")
        mapping = []
        for field in _CORE_FIELDS:
            rule = entry.value(f"annotations.{field}")
            if not isinstance(rule, str):
                continue
            m = _KEY_RULE.match(rule)
            if m and out["annotation_shape"] == "long":
                mapping.append((field, m.group(2)))
            elif _WORD.match(rule) and rule != "none" and out["annotation_shape"] == "wide":
                mapping.append((field, rule))
        for name in entry.value("annotations.cross_types", ()) or ():
            if name in CROSS_TYPE_NAMES:
                mapping.append((CROSS_TYPE_NAMES[name], name))
        out["annotation_map"] = tuple(mapping)
    return out


def settings_for(datastack: str, options: dict[str, Any]) -> CaveSettings:
    """Settings of ``datastack``: the code defaults, the catalogue's values, then ``options``.

    A datastack neither in :data:`DATASTACK_DEFAULTS` nor in the catalogue gets
    conservative defaults (no live queries, no filtered view, no neuron table)
    and a :class:`UserWarning` saying so. Setting ``neuron_table`` in ``options``
    describes a wide one-row-per-neuron table through ``type_column`` etc.
    """
    from_catalogue = catalogue_settings(datastack)
    base = DATASTACK_DEFAULTS.get(datastack)
    if base is None and not from_catalogue:
        warnings.warn(
            f"CAVE datastack {datastack!r} is not in the connectomix catalogue: its synapse table, score column "
            "and threshold, units, annotation table and whether it allows live queries are unverified; using "
            "conservative defaults (no live queries, the datastack info's synapse_table, no filtered view, no "
            "neuron table). Pass synapse_table=, neuron_table=, live=... to configure it.", UserWarning,
            stacklevel=3)
        base = CaveSettings(filtered=False, live=False)
    base = replace(base or CaveSettings(), **from_catalogue)
    updates: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(CaveSettings)}
    for key, value in options.items():
        if key not in types:
            continue
        if value in ("", "none", "None", None) and key not in ("materialization",):
            updates[key] = None
        elif key in ("filtered", "live"):
            updates[key] = _as_bool(key, value)
        elif key == "row_limit":
            try:
                updates[key] = int(value)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"row_limit must be a positive integer; got {value!r}") from None
            if updates[key] < 1:
                raise InvalidArgumentError(f"row_limit must be a positive integer; got {value!r}")
        elif key == "primary_rois":
            updates[key] = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
        elif key == "annotation_map":
            updates[key] = _pairs(value)
        elif key == "score_recommended":
            try:
                updates[key] = float(value)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"score_recommended must be a number; got {value!r}") from None
            updates.setdefault("score_source", "configured by the user (option score_recommended; unverified)")
        else:
            updates[key] = value
    if "neuron_table" in updates:  # a user's own (wide) table replaces the catalogue's annotation source
        updates.setdefault("annotation_shape", "wide")
        updates.setdefault("annotation_reference", None)
        updates.setdefault("annotation_map", ())
        updates.setdefault("neuron_id_column", "pt_root_id")
    if "synapse_view" in updates:
        updates.setdefault("view_versions", ())
    return replace(base, **updates)


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    """``annotation_map`` from ``"side=side,class=cell_class"`` (URI/config) or pairs/a mapping."""
    if isinstance(value, str):
        items = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if not all(len(item) == 2 and item[0].strip() and item[1].strip() for item in items):
            raise InvalidArgumentError(f"annotation_map must look like 'side=side,class=cell_class'; got {value!r}")
        return tuple((a.strip(), b.strip()) for a, b in items)
    pairs = value.items() if isinstance(value, dict) else value
    return tuple((str(a), str(b)) for a, b in pairs)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidArgumentError(f"{name} must be true or false; got {value!r}")
