"""The edit script: materialization versions and the (synthetic) proofreading edits between them.

An edit script is a JSON (``.json``) or TOML (``.toml``) file; the format is
documented in this package's ``README.md``. In short::

    format = "connectomix-cave-edits"
    format_version = 1
    genesis = "2023-12-01T00:00:00"        # creation time of the release's bodies
    supervoxels_per_body = 4

    [[versions]]                            # version 1 = the release as-is
    version = 1
    time_stamp = "2024-01-01T00:00:00.000000"

    [[operations]]
    timestamp = "2024-01-10T12:00:00"
    type = "split"                          # one root -> two new roots
    root = 722817260
    labels = ["A_kept", "A_moved"]          # optional names for later operations

    [[operations]]
    timestamp = "2024-01-20T12:00:00"
    type = "merge"                          # two or more roots -> one new root
    roots = ["@A_kept", 754534424]

Only the structure is checked here; whether a root exists and is current at an
operation's time is checked when the history is built
(:mod:`connectomix_cave.emulator.history`).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from connectomix.errors import DataFormatError, InvalidArgumentError

from .timeutil import format_cave, parse_iso

__all__ = [
    "EDITS_FORMAT",
    "EDITS_FORMAT_VERSION",
    "RootRef",
    "VersionSpec",
    "OperationSpec",
    "EditScript",
    "load_edit_script",
    "default_edit_script",
]

EDITS_FORMAT = "connectomix-cave-edits"
EDITS_FORMAT_VERSION = 1

#: A root named by id, or by a label (``"@name"``) given to the output of an earlier operation.
RootRef = Union[int, str]

_FAR_FUTURE = "2100-01-01T00:00:00.000000"
_TOP_KEYS = {"format", "format_version", "description", "synthetic", "genesis", "supervoxels_per_body",
             "versions", "operations"}
_VERSION_KEYS = {"version", "time_stamp", "expires_on", "valid", "status"}
_SPLIT_KEYS = {"type", "operation_id", "timestamp", "root", "move_supervoxels", "new_root_ids", "labels"}
_MERGE_KEYS = {"type", "operation_id", "timestamp", "roots", "new_root_id", "label"}


@dataclass(frozen=True)
class VersionSpec:
    """One materialization version.

    Attributes
    ----------
    version
        The version number (positive int).
    time_stamp
        Snapshot time, microseconds since the epoch (UTC).
    expires_on
        Expiry time, microseconds since the epoch.
    valid
        ``False`` marks an expired version: it is listed only with
        ``?expired=True`` and its tables answer 410.
    status
        ``AnalysisVersion.status`` as the server reports it.
    """

    version: int
    time_stamp: int
    expires_on: int
    valid: bool = True
    status: str = "AVAILABLE"

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "time_stamp": format_cave(self.time_stamp),
                "expires_on": format_cave(self.expires_on), "valid": self.valid, "status": self.status}


@dataclass(frozen=True)
class OperationSpec:
    """One proofreading edit as written in the script.

    Attributes
    ----------
    kind
        ``"split"`` or ``"merge"``.
    operation_id
        Unique positive id (PyChunkedGraph operation id).
    timestamp
        Microseconds since the epoch.
    inputs
        The root(s) edited: one for a split, two or more for a merge.
    move_supervoxels
        Split only: supervoxels that go to the second new root (``None``: the
        upper half of the root's supervoxels in ascending id order).
    new_root_ids
        Explicit ids of the new root(s) (split: ``[kept, moved]``; merge: one),
        or ``None`` for automatic ids.
    labels
        Names of the new root(s) for later ``"@label"`` references, or ``None``.
    """

    kind: str
    operation_id: int
    timestamp: int
    inputs: tuple[RootRef, ...]
    move_supervoxels: tuple[int, ...] | None = None
    new_root_ids: tuple[int, ...] | None = None
    labels: tuple[str, ...] | None = None

    @property
    def n_outputs(self) -> int:
        return 2 if self.kind == "split" else 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind, "operation_id": self.operation_id,
                               "timestamp": format_cave(self.timestamp)}
        if self.kind == "split":
            out["root"] = self.inputs[0]
            if self.move_supervoxels is not None:
                out["move_supervoxels"] = list(self.move_supervoxels)
            if self.new_root_ids is not None:
                out["new_root_ids"] = list(self.new_root_ids)
            if self.labels is not None:
                out["labels"] = list(self.labels)
        else:
            out["roots"] = list(self.inputs)
            if self.new_root_ids is not None:
                out["new_root_id"] = self.new_root_ids[0]
            if self.labels is not None:
                out["label"] = self.labels[0]
        return out


@dataclass(frozen=True)
class EditScript:
    """A parsed, structurally valid edit script (see the module docstring)."""

    versions: tuple[VersionSpec, ...]
    operations: tuple[OperationSpec, ...] = ()
    genesis: int | None = None
    supervoxels_per_body: int = 4
    description: str = "Synthetic proofreading history (invented edits)."
    source: str = field(default="<dict>", compare=False)

    @property
    def first_version(self) -> VersionSpec:
        """The earliest version: the release as-is."""
        return min(self.versions, key=lambda v: v.time_stamp)

    @property
    def genesis_us(self) -> int:
        """Creation time of the release's bodies (default: one day before the first version)."""
        if self.genesis is not None:
            return self.genesis
        return self.first_version.time_stamp - 86_400_000_000

    # --- (de)serialisation -----------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> EditScript:
        """Parse and check a script given as a mapping (the content of a JSON/TOML file).

        Raises
        ------
        DataFormatError
            A missing or malformed key; the message names the key and ``source``.
        """
        where = f"edit script {source}"
        if not isinstance(data, Mapping):
            raise DataFormatError(f"{where}: expected a table/object at the top level, got {type(data).__name__}")
        _no_unknown(data, _TOP_KEYS, where)
        if data.get("format", EDITS_FORMAT) != EDITS_FORMAT:
            raise DataFormatError(f"{where}: format must be {EDITS_FORMAT!r}, got {data.get('format')!r}")
        if data.get("format_version", EDITS_FORMAT_VERSION) != EDITS_FORMAT_VERSION:
            raise DataFormatError(
                f"{where}: format_version {data.get('format_version')!r} is not supported (only {EDITS_FORMAT_VERSION})"
            )
        if data.get("synthetic", True) is not True:
            raise DataFormatError(f"{where}: 'synthetic' must be true -- emulated proofreading edits are invented")
        spb = data.get("supervoxels_per_body", 4)
        if not isinstance(spb, int) or isinstance(spb, bool) or not 1 <= spb <= 64:
            raise DataFormatError(f"{where}: supervoxels_per_body must be an integer from 1 to 64, got {spb!r}")
        versions = _parse_versions(data.get("versions"), where)
        genesis = _time(data["genesis"], f"{where}: genesis") if "genesis" in data else None
        first = min(v.time_stamp for v in versions)
        if genesis is not None and genesis >= first:
            raise DataFormatError(f"{where}: genesis {format_cave(genesis)} must be before the first version "
                                  f"({format_cave(first)})")
        operations = _parse_operations(data.get("operations", []), where, first, {v.time_stamp for v in versions})
        description = data.get("description", cls.description)
        if not isinstance(description, str):
            raise DataFormatError(f"{where}: description must be a string")
        return cls(versions=versions, operations=operations, genesis=genesis, supervoxels_per_body=spb,
                   description=description, source=source)

    def to_dict(self) -> dict[str, Any]:
        """The script as a JSON-serialisable mapping (round-trips through :meth:`from_dict`)."""
        out: dict[str, Any] = {
            "format": EDITS_FORMAT, "format_version": EDITS_FORMAT_VERSION, "synthetic": True,
            "description": self.description, "supervoxels_per_body": self.supervoxels_per_body,
        }
        if self.genesis is not None:
            out["genesis"] = format_cave(self.genesis)
        out["versions"] = [v.to_dict() for v in self.versions]
        out["operations"] = [op.to_dict() for op in self.operations]
        return out

    def dump(self, path: str | Path) -> Path:
        """Write the script as JSON to ``path`` (TOML is read but not written)."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path


def load_edit_script(source: str | Path | Mapping[str, Any] | EditScript) -> EditScript:
    """Read an edit script from a ``.json``/``.toml`` file, a mapping, or pass an :class:`EditScript` through.

    Raises
    ------
    DataFormatError
        The file is missing, unreadable, or not a valid edit script.
    """
    if isinstance(source, EditScript):
        return source
    if isinstance(source, Mapping):
        return EditScript.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise DataFormatError(f"edit script {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            raise DataFormatError(f"edit script {str(path)!r}: the file name must end in .json or .toml")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DataFormatError(f"edit script {str(path)!r} is not valid {path.suffix[1:].upper()}: {exc}") from None
    return EditScript.from_dict(data, source=repr(str(path)))


# --- the default script -------------------------------------------------------------------------


def default_edit_script(ranked_bodies: Sequence[int], supervoxel_counts: Mapping[int, int], *,
                        supervoxels_per_body: int = 4) -> EditScript:
    """The default history for a release: four versions (one expired) and six invented edits.

    Bodies are taken from ``ranked_bodies`` (most synapse sites first); splits
    need a body with at least two supervoxels. Timeline (UTC)::

        v1  2024-01-01            the release as-is (valid)
        op1 2024-01-10T12:00      split  A        -> A_kept, A_moved
        op2 2024-01-20T12:00      merge  B + C    -> BC
        v2  2024-02-01T06:30:00.25 (valid)
        op3 2024-02-10T12:00      merge  A_kept + D -> AD
        op4 2024-02-20T12:00      split  F        -> F_kept, F_moved
        v3  2024-03-01            EXPIRED (valid = false, expired 2024-04-01)
        op5 2024-03-10T12:00      merge  F_kept + G -> FG
        v4  2024-04-01            newest valid version
        op6 2024-04-10T12:00      split  BC       -> BC_kept, BC_moved   (only in 'live')

    So ``A`` exists at v1 only, ``A_kept`` at v2 only, ``AD`` at v2 and v4,
    ``F_kept`` only at the expired v3 (``'auto'`` cannot find it), and the
    products of op6 only in live. With fewer than six usable bodies the
    operations whose bodies are missing are left out.
    """
    splittable = [b for b in ranked_bodies if supervoxel_counts.get(b, 0) >= 2]
    roles: dict[str, int] = {}
    used: set[int] = set()

    def take(role: str, pool: Sequence[int]) -> None:
        for body in pool:
            if body not in used:
                roles[role] = int(body)
                used.add(body)
                return

    take("A", splittable)
    take("F", splittable)
    for role in ("B", "C", "D", "G"):
        take(role, ranked_bodies)

    ops: list[dict[str, Any]] = []
    labels: set[str] = set()

    def add(op: dict[str, Any], needs: Sequence[str]) -> None:
        refs = []
        for name in needs:
            if name in roles:
                refs.append(roles[name])
            elif name in labels:
                refs.append(f"@{name}")
            else:
                return  # a body or an earlier product is missing: leave this edit out
        if op["type"] == "split":
            op["root"] = refs[0]
            labels.update(op["labels"])
        else:
            op["roots"] = refs
            labels.add(op["label"])
        op["operation_id"] = len(ops) + 1
        ops.append(op)

    add({"type": "split", "timestamp": "2024-01-10T12:00:00", "labels": ["A_kept", "A_moved"]}, ["A"])
    add({"type": "merge", "timestamp": "2024-01-20T12:00:00", "label": "BC"}, ["B", "C"])
    add({"type": "merge", "timestamp": "2024-02-10T12:00:00", "label": "AD"}, ["A_kept", "D"])
    add({"type": "split", "timestamp": "2024-02-20T12:00:00", "labels": ["F_kept", "F_moved"]}, ["F"])
    add({"type": "merge", "timestamp": "2024-03-10T12:00:00", "label": "FG"}, ["F_kept", "G"])
    add({"type": "split", "timestamp": "2024-04-10T12:00:00", "labels": ["BC_kept", "BC_moved"]}, ["BC"])
    data = {
        "format": EDITS_FORMAT,
        "format_version": EDITS_FORMAT_VERSION,
        "synthetic": True,
        "description": ("SYNTHETIC default proofreading history generated by the connectomix CAVE emulator: "
                        "the splits and merges are invented, not real proofreading."),
        "genesis": "2023-12-01T00:00:00.000000",
        "supervoxels_per_body": supervoxels_per_body,
        "versions": [
            {"version": 1, "time_stamp": "2024-01-01T00:00:00.000000", "expires_on": _FAR_FUTURE, "valid": True},
            {"version": 2, "time_stamp": "2024-02-01T06:30:00.250000", "expires_on": _FAR_FUTURE, "valid": True},
            {"version": 3, "time_stamp": "2024-03-01T00:00:00.000000", "expires_on": "2024-04-01T00:00:00.000000",
             "valid": False, "status": "EXPIRED"},
            {"version": 4, "time_stamp": "2024-04-01T00:00:00.000000", "expires_on": _FAR_FUTURE, "valid": True},
        ],
        "operations": ops,
    }
    return EditScript.from_dict(data, source="<default>")


# --- parsing helpers ---------------------------------------------------------------------------------


def _no_unknown(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise DataFormatError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


def _time(value: Any, where: str) -> int:
    try:
        return parse_iso(value, what=where)
    except InvalidArgumentError as exc:
        raise DataFormatError(str(exc)) from None


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DataFormatError(f"{where} must be a positive integer, got {value!r}")
    return value


def _root_ref(value: Any, where: str) -> RootRef:
    if isinstance(value, str):
        if not value.startswith("@") or len(value) < 2:
            raise DataFormatError(f"{where}: {value!r} is neither a root id nor a label reference like '@A_kept'")
        return value
    return _positive_int(value, where)


def _parse_versions(raw: Any, where: str) -> tuple[VersionSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise DataFormatError(f"{where}: 'versions' must be a non-empty list of version tables")
    out = []
    for i, item in enumerate(raw):
        at = f"{where}: versions[{i}]"
        if not isinstance(item, Mapping):
            raise DataFormatError(f"{at} must be a table/object")
        _no_unknown(item, _VERSION_KEYS, at)
        for key in ("version", "time_stamp"):
            if key not in item:
                raise DataFormatError(f"{at} lacks the required key {key!r}")
        version = _positive_int(item["version"], f"{at}.version")
        ts = _time(item["time_stamp"], f"{at}.time_stamp")
        expires = _time(item.get("expires_on", _FAR_FUTURE), f"{at}.expires_on")
        valid = item.get("valid", True)
        if not isinstance(valid, bool):
            raise DataFormatError(f"{at}.valid must be true or false, got {valid!r}")
        status = item.get("status", "AVAILABLE" if valid else "EXPIRED")
        if not isinstance(status, str):
            raise DataFormatError(f"{at}.status must be a string")
        out.append(VersionSpec(version=version, time_stamp=ts, expires_on=expires, valid=valid, status=status))
    numbers = [v.version for v in out]
    if len(set(numbers)) != len(numbers):
        raise DataFormatError(f"{where}: version numbers must be unique, got {numbers}")
    stamps = [v.time_stamp for v in out]
    if len(set(stamps)) != len(stamps):
        raise DataFormatError(f"{where}: two versions share a time_stamp")
    by_number = sorted(out, key=lambda v: v.version)
    if [v.time_stamp for v in by_number] != sorted(stamps):
        raise DataFormatError(f"{where}: version numbers must increase with time_stamp")
    return tuple(by_number)


def _parse_operations(raw: Any, where: str, first_version: int, version_stamps: set[int]) -> tuple[OperationSpec, ...]:
    if not isinstance(raw, list):
        raise DataFormatError(f"{where}: 'operations' must be a list of operation tables")
    out: list[OperationSpec] = []
    seen_ids: set[int] = set()
    seen_labels: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}: operations[{i}]"
        if not isinstance(item, Mapping):
            raise DataFormatError(f"{at} must be a table/object")
        kind = item.get("type")
        if kind not in ("split", "merge"):
            raise DataFormatError(f"{at}.type must be 'split' or 'merge', got {kind!r}")
        _no_unknown(item, _SPLIT_KEYS if kind == "split" else _MERGE_KEYS, at)
        if "timestamp" not in item:
            raise DataFormatError(f"{at} lacks the required key 'timestamp'")
        ts = _time(item["timestamp"], f"{at}.timestamp")
        if ts <= first_version:
            raise DataFormatError(f"{at}: timestamp {format_cave(ts)} must be after the first version "
                                  f"({format_cave(first_version)}), which is the release as-is")
        if ts in version_stamps:
            raise DataFormatError(f"{at}: timestamp {format_cave(ts)} equals a version's time_stamp; "
                                  "move it so each version is unambiguously before or after the edit")
        if out and ts <= out[-1].timestamp:
            raise DataFormatError(f"{at}: operations must be listed in strictly increasing timestamp order")
        op_id = _positive_int(item.get("operation_id", i + 1), f"{at}.operation_id")
        if op_id in seen_ids:
            raise DataFormatError(f"{at}: operation_id {op_id} is used twice")
        seen_ids.add(op_id)
        if kind == "split":
            if "root" not in item:
                raise DataFormatError(f"{at}: a split needs 'root'")
            inputs: tuple[RootRef, ...] = (_root_ref(item["root"], f"{at}.root"),)
            move = item.get("move_supervoxels")
            if move is not None:
                if not isinstance(move, list) or not move:
                    raise DataFormatError(f"{at}.move_supervoxels must be a non-empty list of supervoxel ids")
                move = tuple(_positive_int(s, f"{at}.move_supervoxels[]") for s in move)
            new_ids = _id_tuple(item.get("new_root_ids"), 2, f"{at}.new_root_ids")
            labels = _label_tuple(item.get("labels"), 2, f"{at}.labels")
        else:
            roots = item.get("roots")
            if not isinstance(roots, list) or len(roots) < 2:
                raise DataFormatError(f"{at}: a merge needs 'roots', a list of at least two roots")
            inputs = tuple(_root_ref(r, f"{at}.roots[]") for r in roots)
            if len(set(inputs)) != len(inputs):
                raise DataFormatError(f"{at}: a merge lists the same root twice: {list(inputs)}")
            move = None
            new_ids = _id_tuple([item["new_root_id"]] if "new_root_id" in item else None, 1, f"{at}.new_root_id")
            labels = _label_tuple([item["label"]] if "label" in item else None, 1, f"{at}.label")
        for ref in inputs:
            if isinstance(ref, str) and ref[1:] not in seen_labels:
                raise DataFormatError(f"{at}: {ref!r} refers to a label no earlier operation defines; "
                                      f"defined so far: {sorted(seen_labels)}")
        for label in labels or ():
            if label in seen_labels:
                raise DataFormatError(f"{at}: label {label!r} is defined twice")
            seen_labels.add(label)
        out.append(OperationSpec(kind=kind, operation_id=op_id, timestamp=ts, inputs=inputs,
                                 move_supervoxels=move, new_root_ids=new_ids, labels=labels))
    return tuple(out)


def _id_tuple(raw: Any, n: int, where: str) -> tuple[int, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != n:
        raise DataFormatError(f"{where} must list exactly {n} root id(s), got {raw!r}")
    ids = tuple(_positive_int(v, where) for v in raw)
    if len(set(ids)) != n:
        raise DataFormatError(f"{where}: ids must differ, got {list(ids)}")
    return ids


def _label_tuple(raw: Any, n: int, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != n or not all(isinstance(v, str) and v and not v.startswith("@")
                                                             for v in raw):
        raise DataFormatError(f"{where} must be {n} non-empty name(s) without a leading '@', got {raw!r}")
    if len(set(raw)) != n:
        raise DataFormatError(f"{where}: labels must differ, got {raw!r}")
    return tuple(raw)
