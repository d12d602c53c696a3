"""The emulated chunkedgraph: roots, their supervoxels, and how edits change them over time.

The release's bodies are the roots at ``genesis``. Each operation of the edit
script retires its input root(s) and creates new ones:

* **split**: root ``R`` becomes ``kept`` (the supervoxels that stay) and
  ``moved`` (the supervoxels named in ``move_supervoxels``, default the upper
  half of ``R``'s supervoxels in ascending id order);
* **merge**: roots ``R1..Rk`` become one root with the union of their supervoxels.

A root is *latest at time T* iff it was created at or before ``T`` and not
retired by ``T`` -- the rule PyChunkedGraph's ``is_latest_roots`` applies and
fafbseg's ``find_mat_version`` relies on.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from connectomix.errors import DataFormatError

from .edits import EditScript, OperationSpec
from .supervoxels import SupervoxelLayout, new_root_base
from .timeutil import format_cave, to_epoch_seconds

__all__ = ["RootInfo", "AppliedOperation", "SegmentationHistory"]


@dataclass
class RootInfo:
    """One root id and its life span.

    Attributes
    ----------
    id
        The root id.
    created
        Creation time (microseconds); ``genesis`` for release bodies.
    sv_ordinals
        Indices into :attr:`SupervoxelLayout.sv_ids` of the root's supervoxels.
    created_by, superseded_by
        Operation ids (``None`` for release bodies / current roots).
    superseded
        Time the root was retired, or ``None``.
    parents, children
        Roots it was made from / that replaced it.
    """

    id: int
    created: int
    sv_ordinals: np.ndarray
    created_by: int | None = None
    superseded: int | None = None
    superseded_by: int | None = None
    parents: tuple[int, ...] = ()
    children: tuple[int, ...] = ()

    def is_latest(self, ts: int) -> bool:
        return self.created <= ts and (self.superseded is None or self.superseded > ts)


@dataclass(frozen=True)
class AppliedOperation:
    """An edit with its concrete input and output root ids."""

    operation_id: int
    kind: str
    timestamp: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    labels: tuple[str, ...] | None = None
    moved_supervoxels: tuple[int, ...] = field(default=(), compare=False)

    def to_dict(self) -> dict:
        out = {"operation_id": self.operation_id, "type": self.kind, "timestamp": format_cave(self.timestamp),
               "inputs": list(self.inputs), "outputs": list(self.outputs)}
        if self.labels:
            out["labels"] = list(self.labels)
        if self.kind == "split":
            out["moved_supervoxels"] = list(self.moved_supervoxels)
        return out


class SegmentationHistory:
    """Roots over time for a release plus an edit script.

    Parameters
    ----------
    layout
        The supervoxels of the release (:func:`assign_supervoxels`).
    script
        The edit script; its operations are applied in time order.
    body_ids
        All release body ids (the roots at genesis).

    Raises
    ------
    DataFormatError
        An operation names a root that does not exist or is not current at
        the operation's time, a split that would leave a side empty, or an
        explicit new root id that is already taken.
    """

    def __init__(self, layout: SupervoxelLayout, script: EditScript, body_ids: np.ndarray):
        self.layout = layout
        self.script = script
        self.genesis = script.genesis_us
        self.roots: dict[int, RootInfo] = {}
        self.labels: dict[str, int] = {}
        body_ids = np.asarray(body_ids, dtype=np.int64)
        starts = np.searchsorted(layout.sv_body, body_ids, side="left")
        ends = np.searchsorted(layout.sv_body, body_ids, side="right")
        for bid, s, e in zip(body_ids.tolist(), starts.tolist(), ends.tolist()):
            self.roots[bid] = RootInfo(id=bid, created=self.genesis, sv_ordinals=np.arange(s, e))
        self._initial_map = layout.sv_body.copy()
        self._next_id = new_root_base(body_ids, layout.sv_ids)
        self._reserved = {i for op in script.operations for i in (op.new_root_ids or ())}
        ops = [self._apply(op) for op in script.operations]
        self.operations: tuple[AppliedOperation, ...] = tuple(ops)
        self._op_times = [op.timestamp for op in ops]
        self._maps: dict[int, np.ndarray] = {}

    # --- building ---------------------------------------------------------------------------------

    def _resolve(self, ref: int | str, op: OperationSpec) -> RootInfo:
        where = f"edit script {self.script.source}: operation {op.operation_id} ({op.kind})"
        root_id = self.labels[ref[1:]] if isinstance(ref, str) else int(ref)
        info = self.roots.get(root_id)
        if info is None:
            raise DataFormatError(f"{where}: root {root_id} does not exist in the release or in earlier operations")
        if not info.is_latest(op.timestamp):
            raise DataFormatError(
                f"{where}: root {root_id} is not current at {format_cave(op.timestamp)} "
                f"(it was replaced by operation {info.superseded_by}); "
                f"edit its successor(s) {list(info.children)} instead"
            )
        return info

    def _new_id(self, explicit: int | None, op: OperationSpec) -> int:
        if explicit is not None:
            if explicit in self.roots or self.layout.ordinals(np.array([explicit]))[1][0]:
                raise DataFormatError(f"edit script {self.script.source}: operation {op.operation_id} asks for "
                                      f"new root id {explicit}, which is already a root or supervoxel id")
            return explicit
        while self._next_id in self.roots or self._next_id in self._reserved:
            self._next_id += 1
        new = self._next_id
        self._next_id += 1
        return new

    def _apply(self, op: OperationSpec) -> AppliedOperation:
        inputs = [self._resolve(ref, op) for ref in op.inputs]
        where = f"edit script {self.script.source}: operation {op.operation_id} (split of {inputs[0].id})"
        moved_svs: tuple[int, ...] = ()
        if op.kind == "split":
            src = inputs[0]
            ords = np.sort(src.sv_ordinals)
            if op.move_supervoxels is None:
                if len(ords) < 2:
                    raise DataFormatError(f"{where}: the root has only {len(ords)} supervoxel(s); a split needs two")
                moved = ords[len(ords) - len(ords) // 2:]
            else:
                pos, found = self.layout.ordinals(np.array(op.move_supervoxels, dtype=np.int64))
                own = set(ords.tolist())
                not_in_root = [sv for sv, p, f in zip(op.move_supervoxels, pos, found) if not f or int(p) not in own]
                if not_in_root:
                    raise DataFormatError(f"{where}: move_supervoxels {not_in_root} are not supervoxels of root "
                                          f"{src.id}; its supervoxels are {self.layout.sv_ids[ords].tolist()}")
                moved = np.unique(pos)
            kept = np.setdiff1d(ords, moved)
            if len(kept) == 0:
                raise DataFormatError(f"{where}: moving every supervoxel would leave nothing behind")
            parts = [kept, moved]
            moved_svs = tuple(self.layout.sv_ids[moved].tolist())
        else:
            parts = [np.sort(np.concatenate([r.sv_ordinals for r in inputs]))]
        explicit = op.new_root_ids or (None,) * len(parts)
        outputs = []
        for part, want in zip(parts, explicit):
            new_id = self._new_id(want, op)
            self.roots[new_id] = RootInfo(id=new_id, created=op.timestamp, sv_ordinals=part,
                                          created_by=op.operation_id, parents=tuple(r.id for r in inputs))
            outputs.append(new_id)
        for r in inputs:
            r.superseded = op.timestamp
            r.superseded_by = op.operation_id
            r.children = tuple(outputs)
        for label, new_id in zip(op.labels or (), outputs):
            self.labels[label] = new_id
        return AppliedOperation(operation_id=op.operation_id, kind=op.kind, timestamp=op.timestamp,
                                inputs=tuple(r.id for r in inputs), outputs=tuple(outputs), labels=op.labels,
                                moved_supervoxels=moved_svs)

    # --- state at a time ---------------------------------------------------------------------------------

    def root_map_at(self, ts: int) -> np.ndarray:
        """Root of every supervoxel (aligned with ``layout.sv_ids``) at time ``ts`` (microseconds)."""
        n_applied = bisect.bisect_right(self._op_times, ts)
        cached = self._maps.get(n_applied)
        if cached is not None:
            return cached
        mapping = self._initial_map.copy()
        for op in self.operations[:n_applied]:
            for new_id in op.outputs:
                mapping[self.roots[new_id].sv_ordinals] = new_id
        mapping.setflags(write=False)
        self._maps[n_applied] = mapping
        return mapping

    def roots_of_supervoxels(self, svs: Iterable[int], ts: int) -> np.ndarray:
        """Root ids of supervoxels at ``ts``; 0 for ids that are not supervoxels (PCG ``fail_to_zero``)."""
        svs = np.asarray(list(svs) if not isinstance(svs, np.ndarray) else svs, dtype=np.int64)
        pos, found = self.layout.ordinals(svs)
        out = np.where(found, self.root_map_at(ts)[pos], 0)
        return out.astype(np.int64)

    def is_latest(self, ids: Iterable[int], ts: int) -> np.ndarray:
        """Whether each id is a root that is current at ``ts`` (unknown ids: ``False``)."""
        return np.array([(r := self.roots.get(int(i))) is not None and r.is_latest(ts) for i in ids], dtype=bool)

    def unknown(self, ids: Iterable[int]) -> list[int]:
        """The ids that are not roots of this graph (at any time)."""
        return [int(i) for i in ids if int(i) not in self.roots]

    def created(self, ids: Iterable[int]) -> list[float]:
        """Creation times in epoch seconds (call :meth:`unknown` first)."""
        return [to_epoch_seconds(self.roots[int(i)].created) for i in ids]

    def supervoxels_of_root(self, root_id: int) -> np.ndarray:
        """The supervoxel ids of a root (fixed for the root's lifetime)."""
        return self.layout.sv_ids[np.sort(self.roots[int(root_id)].sv_ordinals)]

    def root_at(self, root_or_sv: int, ts: int) -> int | None:
        """Root of a supervoxel at ``ts``; a root id current at ``ts`` maps to itself; else ``None``."""
        pos, found = self.layout.ordinals(np.array([root_or_sv], dtype=np.int64))
        if found[0]:
            return int(self.root_map_at(ts)[pos[0]])
        info = self.roots.get(int(root_or_sv))
        if info is not None and info.is_latest(ts):
            return info.id
        return None

    def current_roots(self, ts: int) -> np.ndarray:
        """Every root current at ``ts``, ascending."""
        return np.array(sorted(r.id for r in self.roots.values() if r.is_latest(ts)), dtype=np.int64)

    # --- lineage -------------------------------------------------------------------------------------------

    def lineage_graph(self, root_ids: Iterable[int], ts_past: int, ts_future: int) -> nx.DiGraph:
        """PyChunkedGraph's lineage graph: edges old root -> new root.

        Going back from each root, predecessors are followed while a node was
        created at or after ``ts_past``; going forward, successors are followed
        while a node was created at or before ``ts_future``. Node attributes:
        ``timestamp`` (creation, epoch seconds) and, for retired roots,
        ``operation_id`` (the operation that retired them).
        """
        graph = nx.DiGraph()

        def add(info: RootInfo) -> None:
            attrs = {"timestamp": to_epoch_seconds(info.created)}
            if info.superseded_by is not None:
                attrs["operation_id"] = info.superseded_by
            graph.add_node(info.id, **attrs)

        past = [self.roots[int(i)] for i in root_ids]
        future = list(past)
        while past or future:
            next_past = []
            for info in past:
                add(info)
                if info.created < ts_past or not info.parents:
                    continue
                for parent in info.parents:
                    if parent not in graph:
                        next_past.append(self.roots[parent])
                    graph.add_edge(parent, info.id)
            next_future = []
            for info in future:
                add(info)
                if info.created > ts_future or not info.children:
                    continue
                for child in info.children:
                    if child not in graph:
                        next_future.append(self.roots[child])
                    graph.add_edge(info.id, child)
            for node in graph.nodes:  # parents/children added only as edge ends still need attributes
                if "timestamp" not in graph.nodes[node]:
                    add(self.roots[node])
            past = list({r.id: r for r in next_past}.values())
            future = list({r.id: r for r in next_future}.values())
        return graph

    def past_future_id_mapping(self, root_ids: Iterable[int], ts_past: int, ts_future: int
                               ) -> tuple[dict[int, list[int]], dict[int, int]]:
        """PyChunkedGraph's ``past_id_mapping``.

        ``past_id_map[root]`` lists the roots at the start of ``root``'s lineage
        (as far back as ``ts_past``), or ``[root]`` if it has no recorded history.
        ``future_id_map[past]`` is the single root a past root became when it
        was only merged (never split) along the way; past roots that were split
        are left out.
        """
        roots = [int(r) for r in root_ids]
        graph = self.lineage_graph(roots, ts_past, ts_future)
        past_map: dict[int, list[int]] = {}
        for root in roots:
            ancestors = nx.ancestors(graph, root)
            if not ancestors:
                past_map[root] = [root]
            else:
                past_map[root] = sorted(a for a in ancestors if graph.in_degree(a) == 0)
        future_map: dict[int, int] = {}
        for past in sorted({p for ps in past_map.values() for p in ps}):
            family = nx.descendants(graph, past) | {past}
            leaves = [d for d in family if graph.out_degree(d) == 0]
            if len(leaves) != 1:
                continue
            split = any(graph.out_degree(d) > 1 or
                        (graph.out_degree(d) == 1 and graph.in_degree(next(iter(graph.successors(d)))) == 1)
                        for d in family if graph.out_degree(d) >= 1)
            if not split:
                future_map[past] = leaves[0]
        return past_map, future_map

    def delta_roots(self, ts_past: int, ts_future: int) -> tuple[list[int], list[int]]:
        """Roots retired and created by operations with ``ts_past <= t < ts_future`` (each list unique, sorted)."""
        old: set[int] = set()
        new: set[int] = set()
        for op in self.operations:
            if ts_past <= op.timestamp < ts_future:
                old.update(op.inputs)
                new.update(op.outputs)
        return sorted(old), sorted(new)

    def label_ids(self) -> Mapping[str, int]:
        """Root ids of the labelled operation outputs of the edit script."""
        return dict(self.labels)
