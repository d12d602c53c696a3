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
from typing import Any

from connectomix.errors import InvalidArgumentError

from .tables import TableNames, TableOptions

__all__ = ["DatastackProfile", "profile", "PROFILE_OF_TABLE"]

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
    # One voxel resolution for every table of the emulator: nm (1, 1, 1) where the catalogue says the
    # synapse table is in nm (BANC synapses_v2), else the release's voxel size.
    options = TableOptions(voxel_resolution=(1.0, 1.0, 1.0) if s.synapse_unit == "nm" else None)
    return DatastackProfile(datastack, names, options, s.live)
