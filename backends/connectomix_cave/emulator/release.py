"""Reading the release folder the emulator serves (format: ``connectomix_release/FORMAT.md``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from connectomix.errors import DataFormatError

__all__ = ["ReleaseData", "read_release", "NT_COLUMNS"]

#: FlyWire's per-synapse neurotransmitter probability columns, in table order.
NT_COLUMNS = ("gaba", "ach", "glut", "oct", "ser", "da")

_SYNAPSE_COLUMNS = ("synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z")


@dataclass(frozen=True)
class ReleaseData:
    """The parts of a release folder the emulator uses.

    Attributes
    ----------
    path
        The folder.
    manifest
        Parsed ``manifest.json``.
    neurons
        ``neurons.parquet`` (at least ``id`` and ``type``).
    synapses
        ``synapses.parquet``: ``synapse_id, pre, post, pre_x..post_z`` (nm),
        ``score`` and ``roi`` (nullable), plus any neurotransmitter columns
        named in :data:`NT_COLUMNS`.
    """

    path: Path
    manifest: dict[str, Any]
    neurons: pd.DataFrame
    synapses: pd.DataFrame

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.path.name))

    @property
    def voxel_size_nm(self) -> tuple[float, float, float]:
        vs = self.manifest.get("voxel_size_nm") or [1, 1, 1]
        return tuple(float(v) for v in vs)  # type: ignore[return-value]

    @property
    def score_name(self) -> str | None:
        return self.manifest.get("score_name")

    @property
    def has_transmitters(self) -> bool:
        return all(c in self.synapses.columns for c in NT_COLUMNS)

    def body_ids(self) -> np.ndarray:
        """Every body id (neurons plus synapse partners), sorted, without background 0."""
        ids = np.concatenate([self.neurons["id"].to_numpy(np.int64), self.synapses["pre"].to_numpy(np.int64),
                              self.synapses["post"].to_numpy(np.int64)])
        ids = np.unique(ids)
        return ids[ids != 0]


def read_release(path: str | Path) -> ReleaseData:
    """Load manifest, neurons and synapses of a release folder.

    Raises
    ------
    DataFormatError
        The folder, ``manifest.json``, ``neurons.parquet`` or ``synapses.parquet``
        is missing or lacks required columns.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataFormatError(f"release folder {str(folder)!r} does not exist or is not a directory")
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise DataFormatError(f"{str(folder)!r} is not a release folder: manifest.json is missing")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("format") != "connectomix-release":
        raise DataFormatError(f"{manifest_path}: format must be 'connectomix-release', got {manifest.get('format')!r}")
    for name in ("neurons.parquet", "synapses.parquet"):
        if not (folder / name).is_file():
            hint = (" The CAVE emulator serves synapse tables, so the release needs per-synapse data."
                    if name == "synapses.parquet" else "")
            raise DataFormatError(f"release {str(folder)!r} has no {name}.{hint}")
    neurons = pd.read_parquet(folder / "neurons.parquet")
    _require(neurons, ("id",), folder / "neurons.parquet")
    if "type" not in neurons.columns:
        neurons = neurons.assign(type=pd.Series([None] * len(neurons), dtype="string"))
    synapses = pd.read_parquet(folder / "synapses.parquet")
    _require(synapses, _SYNAPSE_COLUMNS, folder / "synapses.parquet")
    if synapses["synapse_id"].duplicated().any():
        raise DataFormatError(f"{folder / 'synapses.parquet'}: synapse_id must be unique")
    for col in ("score", "roi"):
        if col not in synapses.columns:
            synapses[col] = None
    return ReleaseData(path=folder, manifest=manifest, neurons=neurons, synapses=synapses)


def _require(df: pd.DataFrame, columns: tuple[str, ...], where: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(f"{where} lacks required column(s) {missing}; it has {list(df.columns)}")
