"""Emulator configurations in the real shape of a catalogue datastack.

:func:`profile` reads the CAVE backend's settings of a datastack (which come from
``connectomix/catalogue/*.toml``) and returns the emulator arguments that serve a
release under that datastack's table names, score column, annotation shape and
units, with live queries refused where the catalogue says the stack has none:

>>> from connectomix_cave.emulator import CaveEmulator, profile   # doctest: +SKIP
>>> p = profile("minnie65_public")                                 # doctest: +SKIP
>>> CaveEmulator("release/", **p.emulator_kwargs())                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connectomix.errors import InvalidArgumentError

from .tables import TableNames, TableOptions

if TYPE_CHECKING:
    from connectomix_cave.settings import CaveSettings

__all__ = ["DatastackProfile", "profile", "resolution_options", "PROFILE_OF_TABLE"]

#: The emulator's annotation profile of each catalogue annotation table (tables.py module doc).
PROFILE_OF_TABLE = {"hierarchical_neuron_annotations": "flywire", "aibs_metamodel_celltypes_v661": "microns",
                    "codex_annotations": "banc", "neuron_information": "fanc"}


@dataclass(frozen=True)
class DatastackProfile:
    """Emulator arguments shaped like one datastack."""

    datastack: str
    names: TableNames
    options: TableOptions
    live_allowed: bool

    def emulator_kwargs(self) -> dict[str, Any]:
        """``datastack=``, ``names=``, ``options=`` and ``live_allowed=`` for :class:`CaveEmulator`."""
        return {"datastack": self.datastack, "names": self.names, "options": self.options,
                "live_allowed": self.live_allowed}


def profile(datastack: str) -> DatastackProfile:
    """The emulator shaped like catalogue datastack ``datastack``.

    Raises
    ------
    InvalidArgumentError
        ``datastack`` is not a catalogue CAVE datastack, or its annotation table has no emulator profile.
    """
    from connectomix_cave.settings import catalogue_settings, settings_for

    if not catalogue_settings(datastack):
        raise InvalidArgumentError(f"{datastack!r} is not a CAVE datastack of the connectomix catalogue")
    s = settings_for(datastack, {})
    annotations = PROFILE_OF_TABLE.get(s.neuron_table or "")
    if annotations is None:
        raise InvalidArgumentError(f"no emulator profile for annotation table {s.neuron_table!r} of {datastack!r}; "
                                   f"profiles exist for {sorted(PROFILE_OF_TABLE)}")
    view = s.synapse_view or f"{s.synapse_table}_filtered_emulated"
    names = TableNames(
        synapse_table=s.synapse_table, synapse_view=view,
        connection_view=s.connection_view or f"{s.synapse_table}_connections_emulated",
        cell_type_tables=(), annotations=annotations, score_column=s.score_column or "size")
    return DatastackProfile(datastack, names, resolution_options(s, names), s.live)


def resolution_options(s: CaveSettings, names: TableNames) -> TableOptions:
    """The voxel resolution of each table and view of a datastack, where the catalogue cites it.

    * FlyWire (``flywire_fafb_public``, ``flywire_fafb_production``): ``synapses_nt_v1`` in the
      catalogue's 4 x 4 x 40 nm voxels (natverse/fafbseg#254; its metadata in
      shared/reference/wire-protocols.md says 4, 4, 40); the view ``valid_synapses_nt_np_v6`` in nm
      (seung-lab/FlyConnectome ``CAVE tutorial.ipynb`` @9b1790b cell 49 answers ``[366592, 246144, 74360]``
      without ``desired_resolution``; fafbseg's ``get_synapses`` treats the view's positions as nm on
      both stacks, navis-org/fafbseg-py:fafbseg/flywire/synapses.py:424-430,650-693@d114e29; the view's
      own metadata was not read, so its 1, 1, 1 is unverified). ``proofread_neurons`` and
      ``neuron_information_v2``: 4 x 4 x 40, unverified (the stack's voxel size; no public record of
      their metadata found; fafbseg's 4 x 4 x 40 for annotation positions is about the
      flywire_annotations files). Tables without positions (``valid_connection_v2``,
      ``hierarchical_neuron_annotations``) keep the release's voxel size: unverified.
    * MICrONS: every position in the catalogue's 4 x 4 x 40 voxels ("Unless otherwise specified
      ... all positions are in units of 4,4,40 nm/voxel", AllenSWDB em-microns-tables.md), the
      emulated view too.
    * BANC: ``synapses_v2`` (and the emulated view) in nm (catalogue); ``cell_representative_point``
      holds its positions in the stack's 4 x 4 x 45 voxels while its metadata reports a placeholder
      1, 1, 1 (catalogue banc.toml ``coordinates.unit`` note, htem/BANC-project
      ``cell_representative_point.md`` @e469a5a); ``codex_annotations`` (no positions) reports 1, 1, 1.
    * FANC and anything else: the unit is "per table metadata", unverified: every table in the
      release's voxel size, as before.

    Parameters
    ----------
    s
        The datastack's CAVE settings (from the catalogue).
    names
        The table names the emulator serves for it.
    """
    from connectomix import catalogue

    entry = catalogue.get(s.catalogue) if s.catalogue else None

    def size(path: str) -> tuple[float, float, float] | None:
        value = entry.value(path, None) if entry is not None else None
        return tuple(float(v) for v in value) if isinstance(value, list) and len(value) == 3 else None

    voxel = size("synapses.voxel_size_nm") or size("coordinates.voxel_size_nm")
    if s.synapse_unit == "nm":
        stack_voxel = size("coordinates.voxel_size_nm")
        if names.annotations == "banc" and stack_voxel is not None:
            point = "cell_representative_point"
            return TableOptions(voxel_resolution=(1.0, 1.0, 1.0), view_resolution=None,
                                table_resolutions=((point, stack_voxel),),
                                reported_resolutions=((point, (1.0, 1.0, 1.0)),))
        return TableOptions(voxel_resolution=(1.0, 1.0, 1.0), view_resolution=None)
    if names.annotations == "flywire" and voxel is not None and names.synapse_view == s.synapse_view:
        own = tuple((name, voxel) for name in (names.synapse_table, "proofread_neurons", "neuron_information_v2"))
        return TableOptions(table_resolutions=own, view_resolution=(1.0, 1.0, 1.0))
    if names.annotations == "microns" and s.synapse_unit == "voxel" and voxel is not None:
        own = tuple((name, voxel) for name in (names.synapse_table, names.synapse_view, "nucleus_detection_v0"))
        return TableOptions(table_resolutions=own, view_resolution=None)
    return TableOptions(view_resolution=None)
