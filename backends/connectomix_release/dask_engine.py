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

from connectomix import schema
from connectomix.backend import ConnectivityQuery, SynapseQuery
from connectomix.criteria import COUNT_FIELDS, STRING_FIELDS, NeuronCriteria
from connectomix.errors import DataFormatError, InvalidArgumentError, InvalidRegexError, InvalidURIError

from .rowgroups import read_on_cluster
from .writer import POST_COPY

__all__ = ["DaskEngine"]


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


def _with_types(df: pd.DataFrame, types: pd.Series) -> pd.DataFrame:
    return df.assign(pre_type=df["pre"].map(types).fillna(schema.UNTYPED).astype(object),
                     post_type=df["post"].map(types).fillna(schema.UNTYPED).astype(object))


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

    def _read(self, name: str, columns: list[str] | None = None, filters: list | None = None) -> Any:
        import dask
        import dask.dataframe as dd

        with dask.config.set({"dataframe.convert-string": False}):
            return dd.read_parquet(self._loc.url(name), columns=columns, filters=filters or None,
                                   storage_options=self._loc.storage_options or None)

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
        """
        key = self._loc.fingerprints(["neurons.parquet", "connections.parquet"])
        if self._neuron_memo is not None and self._neuron_memo[0] == key:
            return self._neuron_memo[1]
        neurons = self._compute(self._read("neurons.parquet"))
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

    def _types(self) -> pd.Series:
        return self._neurons().set_index("id")["type"]

    def type_connectivity(self, *, by_roi: bool, rois: list | None, min_weight: int,
                          include_autapses: bool) -> pd.DataFrame:
        c = self._connections(pre_neurons=True, post_neurons=True, autapses=include_autapses, rois=rois)
        # (with rois and not by_roi, the pair totals within rois are the pairs' weights, as in the core)
        pairs = self._pairs(c, keep_roi=by_roi, min_weight=max(int(min_weight), 1))
        typed = pairs.map_partitions(_with_types, self._types(),
                                     meta={**pairs._meta.dtypes.to_dict(), "pre_type": object, "post_type": object})
        keys = ["pre_type", "post_type"] + (["roi"] if by_roi else [])
        weight = typed.groupby(keys)["weight"].agg(["sum", "count"])
        n_pre = typed[keys + ["pre"]].drop_duplicates().groupby(keys).size()
        n_post = typed[keys + ["post"]].drop_duplicates().groupby(keys).size()
        weight, n_pre, n_post = self._compute([weight, n_pre, n_post])
        return pd.DataFrame({"weight": weight["sum"], "n_pre": n_pre, "n_post": n_post,
                             "n_pairs": weight["count"]}).reset_index()

    def partner_profiles(self, *, direction: str, min_weight: int, include_autapses: bool) -> pd.DataFrame:
        c = self._connections(pre_neurons=True, post_neurons=True, autapses=include_autapses)
        pairs = self._pairs(c, keep_roi=False, min_weight=max(int(min_weight), 1))
        typed = pairs.map_partitions(_with_types, self._types(),
                                     meta={**pairs._meta.dtypes.to_dict(), "pre_type": object, "post_type": object})
        me, partner_type = ("post", "pre_type") if direction == "input" else ("pre", "post_type")
        agg = typed.groupby([me, partner_type])["weight"].agg(["sum", "count"], split_out=True)
        out = self._compute(agg).reset_index()
        return out.rename(columns={me: "id", partner_type: "partner_type", "sum": "weight", "count": "n_partners"})

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
