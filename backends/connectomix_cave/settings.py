"""Per-datastack configuration of the CAVE backend.

Tables, views and column names differ between CAVE deployments, and change
between releases (fafbseg's filtered view was ``valid_synapses_nt_v2`` before
``valid_synapses_nt_np_v6``). They are therefore configuration, with working
defaults for the public datastacks below, overridable per dataset in the TOML
config or as ``connectomix.open(..., synapse_view="...")`` options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from connectomix.errors import InvalidArgumentError

__all__ = ["CaveSettings", "DATASTACK_DEFAULTS", "settings_for"]


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

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


_FLYWIRE = CaveSettings(
    synapse_table="synapses_nt_v1",
    synapse_view="valid_synapses_nt_np_v6",
    connection_view="valid_connection_v2",
    score_column="cleft_score",
    neuropil_column="neuropil",
    neuron_table="neuron_information_v2",
    type_column="tag",
    row_limit=500_000,
)

#: Working defaults for public datastacks (override any field per dataset).
DATASTACK_DEFAULTS: dict[str, CaveSettings] = {
    "flywire_fafb_public": replace(_FLYWIRE, live=False),  # the public stack has no live queries
    "flywire_fafb_production": _FLYWIRE,
    "fanc_production_mar2021": CaveSettings(
        synapse_table="synapses_may2021", score_column="score", filtered=False, row_limit=200_000,
    ),
    "brain_and_nerve_cord": CaveSettings(synapse_table="synapses_v1", score_column="score", filtered=False),
    "minnie65_public": CaveSettings(
        synapse_table="synapses_pni_2", score_column=None, filtered=False,
        neuron_table="aibs_metamodel_celltypes_v661", type_column="cell_type", live=False,
    ),
}


def settings_for(datastack: str, options: dict[str, Any]) -> CaveSettings:
    """Defaults for ``datastack`` updated by ``options`` (strings from URIs are converted)."""
    base = DATASTACK_DEFAULTS.get(datastack, CaveSettings(filtered=False))
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
        else:
            updates[key] = value
    return replace(base, **updates)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidArgumentError(f"{name} must be true or false; got {value!r}")
