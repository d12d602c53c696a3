"""Everything the emulator serves, built once from a release folder and an edit script."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from connectomix.errors import DataFormatError

from .edits import EditScript, VersionSpec, default_edit_script, load_edit_script
from .history import SegmentationHistory
from .release import ReleaseData, read_release
from .supervoxels import SupervoxelLayout, assign_supervoxels
from .tables import EmulatedTable, TableNames, TableOptions, build_tables, materialize

__all__ = ["EmulatedDataset", "build_dataset", "default_script_for_release"]


@dataclass
class EmulatedDataset:
    """A release served as a versioned CAVE datastack.

    Attributes
    ----------
    release
        The release folder's data.
    script
        The edit script in effect (the default one when none was given).
    layout
        The SYNTHETIC supervoxels.
    history
        Roots over time.
    tables
        Tables and views by name.
    resolution
        The datastack's voxel resolution in nm (info, chunkedgraph); each table's own is
        :attr:`EmulatedTable.resolution`.
    names
        The table names.
    """

    release: ReleaseData
    script: EditScript
    layout: SupervoxelLayout
    history: SegmentationHistory
    tables: dict[str, EmulatedTable]
    resolution: tuple[float, float, float]
    names: TableNames

    @property
    def versions(self) -> dict[int, VersionSpec]:
        """Materialization versions by number (expired ones included)."""
        return {v.version: v for v in self.script.versions}

    def valid_versions(self) -> list[int]:
        return [v.version for v in self.script.versions if v.valid]

    def table(self, name: str, version: int) -> pd.DataFrame:
        """A table or view as materialized at ``version`` (root ids of that version)."""
        spec = self.versions[version]
        return materialize(self.tables[name], self.tables, self.history, spec.time_stamp)

    def table_at(self, name: str, ts_us: int) -> pd.DataFrame:
        """A table or view with root ids as of an arbitrary time (live queries)."""
        return materialize(self.tables[name], self.tables, self.history, ts_us)

    @functools.cached_property
    def data_digest(self) -> str:
        """SHA-256 over everything served: the stored tables, the edit script and the voxel resolutions.

        Different data gives a different digest; the version metadata's ``id``
        comes from it (:meth:`version_row_id`).
        """
        h = hashlib.sha256(json.dumps(self.script.to_dict(), sort_keys=True, default=str).encode())
        h.update(repr(self.resolution).encode())
        for name in sorted(self.tables):
            frame = self.tables[name].stored
            h.update(json.dumps([name, [str(c) for c in frame.columns], len(frame),
                                 repr(self.tables[name].resolution)]).encode())
            for col in frame.columns:
                h.update(pd.util.hash_pandas_object(frame[col], index=False).to_numpy().tobytes())
        return h.hexdigest()

    def version_row_id(self, number: int) -> int:
        """The ``id`` reported in a version's metadata.

        On a real MaterializationEngine it is the row id of the version in the
        deployment's AnalysisVersion table (DynamicAnnotationDB models.py), so it
        belongs to one deployment. The emulator derives it from
        :attr:`data_digest`: an emulator restarted with other data reports other
        ids, as a re-deployed server would, and clients that key caches by
        version metadata notice.
        """
        return int(hashlib.sha256(f"{self.data_digest}:{number}".encode()).hexdigest()[:7], 16)

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary: versions, operations with concrete ids, labels."""
        return {
            "release": str(self.release.path),
            "synthetic": ("supervoxel ids and every edit are invented by the emulator; version 1 equals "
                          "the release"),
            "versions": [v.to_dict() for v in self.script.versions],
            "operations": [op.to_dict() for op in self.history.operations],
            "labels": self.history.label_ids(),
            "tables": {name: {"kind": t.kind, "description": t.description} for name, t in self.tables.items()},
        }


def _site_ranking(release: ReleaseData) -> list[int]:
    syn = release.synapses
    bodies = pd.concat([syn["pre"], syn["post"]], ignore_index=True).astype(np.int64)
    counts = bodies[bodies != 0].value_counts()
    frame = pd.DataFrame({"body": counts.index.to_numpy(np.int64), "n": counts.to_numpy()})
    return frame.sort_values(["n", "body"], ascending=[False, True])["body"].tolist()


def default_script_for_release(release: ReleaseData, *, supervoxels_per_body: int = 4) -> EditScript:
    """The default edit script (:func:`default_edit_script`) for a release."""
    layout = assign_supervoxels(release.synapses, release.body_ids(), supervoxels_per_body)
    return default_edit_script(_site_ranking(release), layout.counts(), supervoxels_per_body=supervoxels_per_body)


def build_dataset(release: str | Path | ReleaseData, edits: str | Path | Mapping[str, Any] | EditScript | None = None,
                  *, names: TableNames | None = None, options: TableOptions | None = None) -> EmulatedDataset:
    """Build the emulated datastack.

    Parameters
    ----------
    release
        A release folder (or its loaded data).
    edits
        An edit script (file, mapping or :class:`EditScript`); ``None`` uses the
        default script for this release.
    names, options
        Table names and value mapping (defaults: FlyWire's names, see :mod:`.tables`).

    Raises
    ------
    DataFormatError
        The release or the edit script is invalid.
    """
    data = release if isinstance(release, ReleaseData) else read_release(release)
    names = names or TableNames()
    options = options or TableOptions()
    all_names = [names.synapse_table, names.synapse_view, names.connection_view,
                 *(n for n, _ in names.cell_type_tables)]
    if len(set(all_names)) != len(all_names):
        raise DataFormatError(f"table and view names must be distinct, got {all_names}")
    script = (load_edit_script(edits) if edits is not None else default_script_for_release(data))
    body_ids = data.body_ids()
    layout = assign_supervoxels(data.synapses, body_ids, script.supervoxels_per_body)
    history = SegmentationHistory(layout, script, body_ids)
    tables, resolution = build_tables(data, layout, names, options)
    return EmulatedDataset(release=data, script=script, layout=layout, history=history, tables=tables,
                           resolution=resolution, names=names)
