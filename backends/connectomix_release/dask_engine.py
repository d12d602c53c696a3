"""The Dask engine of the release backend: the same queries as DuckDB's, run on a ``dask.distributed`` cluster.

``connectomix.open("release:///data/flywire-783", engine="dask")`` starts a
2-worker ``LocalCluster`` (worker processes) on first use;
``scheduler="tcp://host:8786"`` connects to a running scheduler, and a
``Client`` or cluster object (``LocalCluster``, dask-jobqueue's
``SLURMCluster``/``LSFCluster``, ...) is used as given. The workers read the
release's Parquet files themselves (from a shared folder or object storage),
with the id filters pushed into the Parquet reader (row groups whose min/max
exclude the ids are skipped), and only the answer comes back to this
process. Every query follows the release backend's DuckDB SQL rule by rule
(same files, same query description); the conformance suite runs on both.

Workers must be able to import ``connectomix_release`` (install connectomix in
their environment) and to read the release's location.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from connectomix import schema
from connectomix.backend import ConnectivityQuery, SynapseQuery
from connectomix.criteria import COUNT_FIELDS, STRING_FIELDS, NeuronCriteria
from connectomix.errors import DataFormatError, InvalidArgumentError, InvalidRegexError, InvalidURIError

from .reads import open_checked
from .rowgroups import read_on_cluster
from .writer import POST_COPY

__all__ = ["DaskEngine"]

#: rows of connections.parquet per partition of a whole-dataset aggregate (whole row groups; ~40 MB of columns)
PARTITION_ROWS = 1_000_000
#: partial states combined per task of the tree reduction
SPLIT_EVERY = 8


def _client_for(scheduler: Any) -> tuple[Any, list]:
    """A ``distributed.Client`` for ``scheduler`` and the objects this engine must close."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InvalidArgumentError("engine='dask' needs dask.distributed: pip install 'connectomix[dask]'") from None
    if scheduler is None:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
        client = Client(cluster, set_as_default=False)
        return client, [client, cluster]
    if isinstance(scheduler, Client):
        return scheduler, []
    if isinstance(scheduler, str) or hasattr(scheduler, "scheduler_address"):
        try:
            client = Client(scheduler, set_as_default=False, timeout="30s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise InvalidArgumentError(f"cannot connect to the Dask scheduler {scheduler!r}: "
                                       f"{type(exc).__name__}: {exc}") from None
        return client, [client]
    raise InvalidArgumentError("scheduler must be a scheduler address ('tcp://host:8786'), a distributed.Client "
                               f"or a cluster object; got {type(scheduler).__name__}")


# -- partition functions (run on the workers; module-level so they pickle by reference) -------------------


def _keep_connections(df: pd.DataFrame, neuron_ids: np.ndarray | None, pre_neurons: bool, post_neurons: bool,
                      autapses: bool, rois: list | None) -> pd.DataFrame:
    keep = (df["pre"] != 0) & (df["post"] != 0)
    if pre_neurons:
        keep &= df["pre"].isin(neuron_ids)
    if post_neurons:
        keep &= df["post"].isin(neuron_ids)
    if not autapses:
        keep &= df["pre"] != df["post"]
    if rois is not None:
        keep &= df["roi"].isin(rois)
    return df[keep]


def _keep_synapses(df: pd.DataFrame, not_pre: np.ndarray | None, autapses: bool, min_score: float | None,
                   rois: list | None) -> pd.DataFrame:
    keep = (df["pre"] != 0) & (df["post"] != 0)
    if not_pre is not None:
        keep &= ~df["pre"].isin(not_pre)
    if not autapses:
        keep &= df["pre"] != df["post"]
    if min_score is not None:
        keep &= (df["score"] >= min_score).fillna(False).astype(bool)
    if rois is not None:
        keep &= df["roi"].isin(rois)
    return df[keep]


# -- whole-dataset aggregates: partial states per partition, combined in a tree ---------------------------
#
# connections.parquet is sorted by pre (FORMAT.md), so a neuron's rows are contiguous: a partition holds every
# row of each pre except, possibly, its smallest and largest pre, whose rows may continue in the neighbouring
# partitions. Those two neurons' rows are carried up the tree unaggregated and aggregated once, at the end,
# together; everything else is aggregated where it is read. Each partial state is then exact for a set of
# whole neurons (pre side), so weights, pair counts and n_pre simply add up; n_post (distinct post neurons per
# type pair) is kept as the set of (post neuron, pre type) keys, unioned up the tree. Neurons are positions in
# the sorted neuron ids (``lookup = (pd.Index(ids), codes)``, ``codes[i]`` the type code of ``ids[i]``); a
# (neuron, type) key is ``position * n_types + code``, a type pair ``pre code * n_types + post code``.
# Everything is sorting and run sums of int64 arrays.


def _reduce(keys: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct ``keys`` (sorted) and the sum of each of ``values`` per key."""
    if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():
        order = np.argsort(keys, kind="stable")  # (measured faster than quicksort, and merges sorted runs)
        keys, values = keys[order], tuple(v[order] for v in values)
    if not len(keys):
        return (keys, *values)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return (keys[starts], *(np.add.reduceat(v, starts) for v in values))


def _concat_reduce(parts: list[tuple]) -> tuple[np.ndarray, ...]:
    """The union of several ``(keys, sums...)`` results of :func:`_reduce`, sums added."""
    return _reduce(*(np.concatenate(column) for column in zip(*parts)))


def _neuron_rows(df: pd.DataFrame, ids: pd.Index, autapses: bool, rois: list | None) -> pd.DataFrame:
    """Connection rows between two neurons: ``pi``/``qi`` (positions of pre/post in ``ids``), weight[, roi]."""
    pre, post = df["pre"].to_numpy("int64"), df["post"].to_numpy("int64")
    pi, qi = ids.get_indexer(pre), ids.get_indexer(post)  # (-1: not a neuron)
    keep = (pi >= 0) & (qi >= 0) & (pre != 0) & (post != 0)
    if not autapses:
        keep &= pre != post
    if rois is not None:
        keep &= df["roi"].isin(rois).to_numpy(bool)
    out = pd.DataFrame({"pi": pi[keep], "qi": qi[keep], "weight": df["weight"].to_numpy("int64")[keep]})
    if "roi" in df.columns:
        out["roi"] = df["roi"].to_numpy(object)[keep]
    return out


def _split_carry(rows: pd.DataFrame, carry: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows of the neurons wholly in this partition, rows of its first and last pre) -- see above."""
    if not carry or rows.empty:
        return rows, rows.iloc[:0]
    pi = rows["pi"].to_numpy()
    edge = (pi == pi.min()) | (pi == pi.max())
    return rows[~edge], rows[edge]


def _pair_rows(rows: pd.DataFrame, n: int, by_roi: bool, min_weight: int) -> dict[Any, tuple]:
    """Neuron pairs (of complete rows) whose total weight is ``>= min_weight``, as ``{roi: (pi, qi, weight)}``:
    summed per pair under ``None``, or (``by_roi``) their rows under each ROI."""
    pi, qi, w = (rows[c].to_numpy("int64") for c in ("pi", "qi", "weight"))
    key, total = _reduce(pi * n + qi, w)  # (positions are < n: the pair key is exact)
    if not by_roi:
        keep = total >= min_weight
        return {None: (key[keep] // n, key[keep] % n, total[keep])}
    keep = np.isin(pi * n + qi, key[total >= min_weight])
    codes, rois = pd.factorize(rows["roi"].to_numpy(object)[keep])
    pi, qi, w = pi[keep], qi[keep], w[keep]
    return {roi: (pi[codes == r], qi[codes == r], w[codes == r]) for r, roi in enumerate(rois)}


def _type_state(rows: pd.DataFrame, codes: np.ndarray, n_types: int, by_roi: bool, min_weight: int) -> dict:
    """Per ROI (``None`` without ``by_roi``): ``types`` (type pairs, weight, n_pairs, n_pre) and ``post``
    (the distinct (post, pre type) keys)."""
    state = {}
    for roi, (pi, qi, w) in _pair_rows(rows, len(codes), by_roi, min_weight).items():
        pre_keys, weight, n_pairs = _reduce(pi * n_types + codes[qi], w, np.ones_like(w))  # per (pre, post type)
        type_pairs = codes[pre_keys // n_types] * n_types + pre_keys % n_types
        state[roi] = {"types": _reduce(type_pairs, weight, n_pairs, np.ones_like(type_pairs)),
                      "post": _reduce(qi * n_types + codes[pi])}
    return state


def _merge_type_states(states: list[dict]) -> dict:
    merged: dict = {}
    for state in states:
        for roi, part in state.items():
            merged.setdefault(roi, []).append(part)
    return {roi: {name: _concat_reduce([p[name] for p in parts]) for name in ("types", "post")}
            for roi, parts in merged.items()}


def _type_chunk(df: pd.DataFrame, lookup: tuple, p: dict) -> dict:
    rows = _neuron_rows(df, lookup[0], p["autapses"], p["rois"])
    whole, edge = _split_carry(rows, p["carry"])
    return {"types": _type_state(whole, lookup[1], p["n_types"], p["by_roi"], p["min_weight"]), "carry": edge}


def _type_combine(states: list[dict]) -> dict:
    return {"types": _merge_type_states([s["types"] for s in states]),
            "carry": pd.concat([s["carry"] for s in states], ignore_index=True)}


def _type_finish(state: dict, lookup: tuple, p: dict) -> pd.DataFrame:
    """Coded rows ``pt, qt[, roi], weight, n_pre, n_post, n_pairs`` (see aggregates.finish_type_connectivity)."""
    codes, n_types = lookup[1], p["n_types"]
    last = _type_state(state["carry"], codes, n_types, p["by_roi"], p["min_weight"])
    frames = []
    for roi, part in _merge_type_states([state["types"], last]).items():
        keys, weight, n_pairs, n_pre = part["types"]
        (posts,) = part["post"]
        post_keys, n_post = _reduce(posts % n_types * n_types + codes[posts // n_types], np.ones_like(posts))
        if not np.array_equal(keys, post_keys):
            raise RuntimeError("connectomix bug: the type pairs of the pre and post counts differ")
        frame = pd.DataFrame({"pt": keys // n_types, "qt": keys % n_types, "weight": weight, "n_pre": n_pre,
                              "n_post": n_post, "n_pairs": n_pairs})
        frames.append(frame.assign(roi=roi) if p["by_roi"] else frame)
    columns = ["pt", "qt", "weight", "n_pre", "n_post", "n_pairs"] + (["roi"] if p["by_roi"] else [])
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def _profile_state(rows: pd.DataFrame, codes: np.ndarray, n_types: int, direction: str,
                   min_weight: int) -> tuple[np.ndarray, ...]:
    """(neuron-and-partner-type keys, weight, n_partners)."""
    ((pi, qi, w),) = _pair_rows(rows, len(codes), False, min_weight).values()
    key = qi * n_types + codes[pi] if direction == "input" else pi * n_types + codes[qi]
    return _reduce(key, w, np.ones_like(w))


def _profile_chunk(df: pd.DataFrame, lookup: tuple, p: dict) -> dict:
    rows = _neuron_rows(df, lookup[0], p["autapses"], None)
    whole, edge = _split_carry(rows, p["carry"])
    return {"profiles": _profile_state(whole, lookup[1], p["n_types"], p["direction"], p["min_weight"]),
            "carry": edge}


def _profile_combine(states: list[dict]) -> dict:
    return {"profiles": _concat_reduce([s["profiles"] for s in states]),
            "carry": pd.concat([s["carry"] for s in states], ignore_index=True)}


def _profile_finish(state: dict, lookup: tuple, p: dict) -> dict[str, np.ndarray]:
    """Coded columns ``id, pc, weight, n_partners`` (see aggregates.finish_partner_profiles): a dict of arrays,
    not a DataFrame (which would copy them into one block; the answer has one row per neuron and partner type)."""
    n_types = p["n_types"]
    last = _profile_state(state["carry"], lookup[1], n_types, p["direction"], p["min_weight"])
    key, weight, n_partners = _concat_reduce([state["profiles"], last])
    return {"id": lookup[0].to_numpy()[key // n_types], "pc": key % n_types, "weight": weight,
            "n_partners": n_partners}


class DaskEngine:
    """Answers the release backend's queries with ``dask.dataframe`` on a ``distributed`` cluster.

    Parameters
    ----------
    backend : ReleaseBackend
        The opened release (its location, manifest, columns and checks).
    scheduler : None, str, distributed.Client or cluster
        See :class:`~connectomix_release.backend.ReleaseBackend`.
    """

    def __init__(self, backend: Any, scheduler: Any = None):
        self._b = backend
        self._loc = backend._loc
        if self._loc.path is not None and any(c in self._loc.root for c in "*?["):
            raise InvalidURIError(f"engine='dask' cannot read {self._loc.root!r}: Dask expands *, ? and [ in "
                                  "paths as globs; rename the folder or use engine='duckdb'")
        self._scheduler = scheduler
        self._client = None
        self._owned: list = []
        self._neuron_memo: tuple[Any, pd.DataFrame] | None = None

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` (connected, or the cluster started, on first use)."""
        if self._client is None:
            self._client, self._owned = _client_for(self._scheduler)
        return self._client

    def close(self) -> None:
        for obj in self._owned:
            obj.close()
        self._owned, self._client = [], None

    # -- reading ---------------------------------------------------------------------------------------

    def _read(self, name: str, columns: list[str] | None = None, filters: list | None = None,
              split_row_groups: Any = "infer") -> Any:
        import dask
        import dask.dataframe as dd

        with dask.config.set({"dataframe.convert-string": False}):
            return dd.read_parquet(self._loc.url(name), columns=columns, filters=filters or None,
                                   storage_options=self._loc.storage_options or None,
                                   split_row_groups=split_row_groups)

    def _compute(self, obj: Any) -> Any:
        import dask

        try:
            with dask.config.set({"dataframe.convert-string": False}):
                return self.client.gather(self.client.compute(obj))
        except (OSError, ValueError, KeyError) as exc:
            raise DataFormatError(f"release folder {self._loc.root!r}: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _ids(ids: Any) -> list[int]:
        return [int(i) for i in np.asarray(ids, dtype="int64")]

    # -- neurons ------------------------------------------------------------------------------------------

    def _neurons(self) -> pd.DataFrame:
        """``neurons.parquet`` with ``upstream``/``downstream`` (summed on the cluster when absent).

        The neuron table is small (one row per body: ~140,000 for FlyWire) and
        nearly every query needs it (criteria, partner labels, neuron sides), so
        it is read once and kept while its file, and that of connections, are
        unchanged (their fingerprints: ``stat``, or ETag/size/mtime remotely).
        It is read by this process (with pyarrow, as this process reads the
        synapse files' footers): through Dask it made the first query import
        ``dask.dataframe`` here and on a worker (~0.75 CPU s each) for a table
        that one read gives.
        """
        key = self._loc.fingerprints(["neurons.parquet", "connections.parquet"])
        if self._neuron_memo is not None and self._neuron_memo[0] == key:
            return self._neuron_memo[1]
        url = self._loc.url("neurons.parquet")
        try:
            with open_checked(self._loc.fs, url, key["neurons.parquet"]) as source:
                neurons = pq.read_table(source).to_pandas()
        except (OSError, pa.ArrowException) as exc:
            raise DataFormatError(f"cannot read {url!r}: {type(exc).__name__}: {exc}") from None
        if not {"upstream", "downstream"} <= set(neurons.columns):
            c = self._read("connections.parquet", columns=["pre", "post", "weight"])
            up, down = self._compute([c.groupby("post")["weight"].sum(), c.groupby("pre")["weight"].sum()])
            neurons = neurons.assign(upstream=neurons["id"].map(up).fillna(0).astype("int64"),
                                     downstream=neurons["id"].map(down).fillna(0).astype("int64"))
        self._neuron_memo = (key, neurons)
        return neurons

    def _neuron_ids(self) -> np.ndarray:
        """Ids of neurons (every body when the release has no ``is_neuron`` column)."""
        n = self._neurons()
        return n.loc[n["is_neuron"].fillna(False).astype(bool), "id"].to_numpy() if "is_neuron" in n else n["id"].to_numpy()

    def fetch_neurons(self, criteria: NeuronCriteria) -> pd.DataFrame:
        n = self._neurons()
        keep = (n["id"] != 0).to_numpy()
        if criteria.ids is not None:
            keep &= n["id"].isin(self._ids(criteria.ids)).to_numpy()
        if criteria.label == "neuron" and "is_neuron" in n.columns:
            keep &= n["is_neuron"].fillna(False).astype(bool).to_numpy()
        for field_name, column in STRING_FIELDS.items():
            values = getattr(criteria, field_name)
            if values is None or column not in n.columns:
                continue
            text = n[column].astype(object)
            if criteria.regex:
                patterns = [_compile(p, criteria) for p in values]
                keep &= text.map(lambda v: isinstance(v, str) and any(p.fullmatch(v) for p in patterns)).to_numpy(bool)
            else:
                keep &= text.isin(list(values)).to_numpy()
        for field_name, column in COUNT_FIELDS.items():
            minimum = getattr(criteria, field_name)
            if minimum:
                keep &= (n[column].isna() | (n[column] >= minimum)).to_numpy(bool)
        keep &= self._roi_mask(n["id"], criteria)
        return n[keep].sort_values("id", kind="stable").reset_index(drop=True)

    def _roi_mask(self, ids: pd.Series, c: NeuronCriteria) -> np.ndarray:
        if not c.all_rois:
            return np.ones(len(ids), bool)
        if not self._b._has("roi_counts"):
            raise DataFormatError(f"release folder {self._loc.root!r} has no roi_counts.parquet, so ROI criteria "
                                  "cannot be applied")
        wanted = sorted(set(c.rois or ()) | set(c.input_rois or ()) | set(c.output_rois or ()))
        rc = self._compute(self._read("roi_counts.parquet", filters=[("roi", "in", wanted)]))

        def having(roi: str, values: pd.Series, minimum: int) -> np.ndarray:
            return ids.isin(rc.loc[(rc["roi"] == roi) & (values >= minimum), "id"]).to_numpy()

        mask = np.ones(len(ids), bool)
        if c.rois:
            each = [having(r, rc["pre"] + rc["post"], 1) for r in c.rois]
            mask &= np.logical_and.reduce(each) if c.roi_req == "all" else np.logical_or.reduce(each)
        for roi in c.input_rois or ():
            mask &= having(roi, rc["post"], c.min_roi_inputs)
        for roi in c.output_rois or ():
            mask &= having(roi, rc["pre"], c.min_roi_outputs)
        return mask

    def fetch_roi_counts(self, ids: np.ndarray) -> pd.DataFrame:
        rc = self._compute(self._read("roi_counts.parquet", columns=["id", "roi", "pre", "post"],
                                      filters=[("id", "in", self._ids(ids))]))
        return rc[rc["id"].isin(self._ids(ids))].sort_values(["id", "roi"]).reset_index(drop=True)

    def missing_ids(self, ids: np.ndarray) -> np.ndarray:
        return np.setdiff1d(ids, self._neurons()["id"].to_numpy(dtype="int64"))

    # -- connectivity ----------------------------------------------------------------------------------------

    def _connections(self, *, sources=None, targets=None, pre_neurons=False, post_neurons=False,
                     autapses=False, rois=None) -> Any:
        filters = ([("pre", "in", self._ids(sources))] if sources is not None else []) + (
            [("post", "in", self._ids(targets))] if targets is not None else [])
        c = self._read("connections.parquet", columns=["pre", "post", "roi", "weight"], filters=filters)
        neuron_ids = self._neuron_ids() if (pre_neurons or post_neurons) else None
        if sources is not None:
            c = c[c["pre"].isin(self._ids(sources))]
        if targets is not None:
            c = c[c["post"].isin(self._ids(targets))]
        return c.map_partitions(_keep_connections, neuron_ids, pre_neurons, post_neurons, autapses,
                                list(rois) if rois is not None else None, meta=c._meta)

    @staticmethod
    def _pairs(c: Any, *, keep_roi: bool, min_weight: int) -> Any:
        """Rows of pairs whose total weight is ``>= min_weight``: per ROI (``keep_roi``) or summed per pair."""
        totals = c.groupby(["pre", "post"])["weight"].sum(split_out=True).rename("total").reset_index()
        if not keep_roi:
            return totals[totals["total"] >= min_weight].rename(columns={"total": "weight"})
        rows = c.merge(totals, on=["pre", "post"], how="inner")
        return rows[rows["total"] >= min_weight][["pre", "post", "roi", "weight"]]

    def get_connectivity(self, query: ConnectivityQuery) -> pd.DataFrame:
        c = self._connections(sources=query.sources, targets=query.targets, pre_neurons=query.sources_neurons_only,
                              post_neurons=query.targets_neurons_only, autapses=query.include_autapses,
                              rois=query.rois)
        keep_roi = bool(query.by_roi or query.rois is not None)
        df = self._compute(self._pairs(c, keep_roi=keep_roi, min_weight=max(int(query.min_weight), 1)))
        keys = ["pre", "post", "roi"] if keep_roi else ["pre", "post"]
        return df.astype({"weight": "int64"}).sort_values(keys).reset_index(drop=True)

    # -- synapses ----------------------------------------------------------------------------------------------

    def get_synapses(self, query: SynapseQuery) -> pd.DataFrame:
        ids = self._ids(query.ids)
        rest = (query.include_autapses, None if query.min_score is None else float(query.min_score),
                list(query.rois) if query.rois is not None else None)
        # each side from the file sorted by it (the post-sorted copy where the release has it): the workers read
        # only the row groups whose footer statistics can hold the ids (rowgroups.py), as the DuckDB engine does
        sides = ([("synapses.parquet", "pre")] if query.pre else []) + (
            [(POST_COPY if self._b._has(POST_COPY) else "synapses.parquet", "post")] if query.post else [])
        tables = read_on_cluster(self.client, self._b._rows, sides, ids)
        frames = [_keep_synapses(t.to_pandas(), np.asarray(ids) if column == "post" and query.pre else None, *rest)
                  for t, (_, column) in zip(tables, sides)]
        columns = list(self._b._synapse_columns)
        df = pd.concat([f[columns] for f in frames], ignore_index=True)
        return df.sort_values("synapse_id", kind="stable").reset_index(drop=True)

    # -- whole-dataset aggregates --------------------------------------------------------------------------------

    def _type_lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted neuron ids, their type codes, and the names (code -> type; untyped is schema.UNTYPED)."""
        n = self._neurons()
        if "is_neuron" in n.columns:
            n = n[n["is_neuron"].fillna(False).astype(bool)]
        n = n[n["id"] != 0].sort_values("id")
        codes, names = pd.factorize(n["type"].astype(object).where(n["type"].notna(), schema.UNTYPED))
        return n["id"].to_numpy("int64"), codes.astype("int64"), np.asarray(names, dtype=object)

    def _connection_layout(self) -> tuple[bool, int]:
        """(connections.parquet sorted by ``pre`` across row groups, row groups per partition).

        Read from the Parquet footer: the row groups' ``pre`` min/max must not
        decrease (FORMAT.md's order; a file without statistics counts as
        unsorted). Partitions hold about :data:`PARTITION_ROWS` rows.
        """
        with self._b._cursor() as cur:
            groups = cur.execute(
                "SELECT row_group_num_rows, TRY_CAST(stats_min_value AS BIGINT), TRY_CAST(stats_max_value AS BIGINT) "
                f"FROM parquet_metadata({self._loc.sql('connections.parquet')}) WHERE path_in_schema = 'pre' "
                "ORDER BY row_group_id").fetchall()
        bounds = [(lo, hi) for _, lo, hi in groups]
        ordered = all(lo is not None and hi is not None and lo <= hi for lo, hi in bounds) and all(
            a[1] <= b[0] for a, b in zip(bounds, bounds[1:]))
        largest = max((rows for rows, _, _ in groups), default=1) or 1
        return ordered, max(1, PARTITION_ROWS // largest)

    def _aggregate(self, columns: list[str], filters: list | None, chunk: Any, combine: Any, finish: Any,
                   params: dict) -> Any:
        """Run ``chunk`` on each partition of connections.parquet, ``combine`` states in a tree, ``finish`` once.

        Only ``columns`` are read; the neuron lookup is sent once to every
        worker. A file not sorted by ``pre`` is first shuffled by ``pre`` (so a
        neuron's rows meet in one partition); a sorted one is not shuffled.
        """
        from dask import delayed

        ids, codes, names = self._type_lookup()
        ordered, per_partition = self._connection_layout()
        c = self._read("connections.parquet", columns=columns, filters=filters, split_row_groups=per_partition)
        if not ordered:
            c = c.shuffle("pre")
        lookup = self.client.scatter((pd.Index(ids), codes), broadcast=True, hash=False)
        params = {**params, "n_types": len(names), "carry": ordered}
        states = [delayed(chunk, pure=True)(part, lookup, params) for part in c.to_delayed()]
        while len(states) > 1:
            states = [delayed(combine, pure=True)(states[i:i + SPLIT_EVERY])
                      for i in range(0, len(states), SPLIT_EVERY)]
        return self._compute(delayed(finish, pure=True)(states[0], lookup, params)), names

    def type_connectivity(self, *, by_roi: bool, rois: list | None, min_weight: int,
                          include_autapses: bool) -> tuple[pd.DataFrame, np.ndarray]:
        """Coded type connectivity and the type names (see :mod:`connectomix_release.aggregates`)."""
        columns = ["pre", "post", "weight"] + (["roi"] if by_roi or rois is not None else [])
        filters = [("roi", "in", list(rois))] if rois is not None else None
        return self._aggregate(columns, filters, _type_chunk, _type_combine, _type_finish,
                               {"by_roi": by_roi, "rois": list(rois) if rois is not None else None,
                                "min_weight": max(int(min_weight), 1), "autapses": include_autapses})

    def partner_profiles(self, *, direction: str, min_weight: int,
                         include_autapses: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Coded partner profiles and the type names (see :mod:`connectomix_release.aggregates`)."""
        return self._aggregate(["pre", "post", "weight"], None, _profile_chunk, _profile_combine, _profile_finish,
                               {"direction": direction, "min_weight": max(int(min_weight), 1),
                                "autapses": include_autapses})

    def roi_totals(self, *, include_autapses: bool) -> pd.DataFrame:
        c = self._connections(autapses=include_autapses)
        parts = [c.groupby("roi")["weight"].agg(["sum", "count"])]
        if self._b._has("roi_counts"):
            rc = self._read("roi_counts.parquet", columns=["id", "roi", "pre", "post"])
            parts.append(rc[rc["id"] != 0].groupby("roi")[["pre", "post"]].sum())
        computed = self._compute(parts)
        out = computed[0].rename(columns={"sum": "weight", "count": "n_pairs"})
        if len(computed) > 1:
            out = out.join(computed[1], how="left")
        return out.rename_axis("roi").reset_index()


def _compile(pattern: str, criteria: NeuronCriteria) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        patterns = [p for f in STRING_FIELDS for p in getattr(criteria, f) or ()]
        raise InvalidRegexError(f"pattern(s) {patterns} cannot be used: {exc}. connectomix patterns use the RE2 "
                                "subset that every backend supports") from None
