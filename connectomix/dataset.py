"""The user-facing :class:`Dataset` handle and :func:`open`.

:class:`Dataset` is where the meaning of every query lives. It validates
input, asks the backend, then validates the schema, re-applies the defining
filters (thresholds ``>=``, autapses, background id 0, ROI restrictions,
pre/post side) and records provenance in ``df.attrs``. Backends stay thin and
every backend answers the same question the same way.
"""

from __future__ import annotations

import functools
import math
import numbers
import os
import re
import threading
import warnings
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from . import frames, hints, schema
from .backend import Backend, Capability, ConnectivityQuery, DatasetInfo, SynapseQuery
from . import counts as _counts
from . import gaps
from .cache import ResultCache, TableMemo, default_cache_dir, memo_key, query_key
from .config import configured_dataset, parse_uri, protect_options, scrub_exception
from .criteria import COUNT_FIELDS, STRING_FIELDS, NeuronCriteria, parse_ids, to_criteria
from .errors import (
    DatasetNotFoundError,
    IdsNotFoundError,
    InvalidArgumentError,
    UnknownROIError,
    UnsupportedOperation,
    suggest,
)
from .parallel import DEFAULT_MAX_WORKERS
from .registry import get_registry

__all__ = ["Dataset", "NeuronTables", "open"]


class NeuronTables(NamedTuple):
    """Result of :meth:`Dataset.fetch_neurons`: unpack it or use the attributes."""

    neurons: pd.DataFrame
    roi_counts: pd.DataFrame


def _scrubbed(func):
    """Remove tokens from every exception leaving ``func`` (see :func:`connectomix.config.scrub_exception`)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            scrub_exception(exc)
            if isinstance(exc, TypeError):  # a wrong keyword (often another client's): a precise hint instead
                hints.raise_for_call(func, args, kwargs)
            raise

    return wrapper


@_scrubbed
def open(name_or_uri: str, **options: Any) -> Dataset:  # noqa: A001 - mirrors builtins.open on purpose
    """Open a dataset by configured/built-in name or by URI.

    Parameters
    ----------
    name_or_uri
        A name from the TOML config (see :mod:`connectomix.config`), a
        built-in name such as ``"sample"``, or a URI like
        ``"release:///path/to/folder"``,
        ``"neuprint://neuprint.janelia.org/hemibrain:v1.2.1"`` or
        ``"cave://flywire_fafb_public?materialization=783"``.
    **options
        Backend options; they override options from the URI or the config.
        Secrets (``token``) are wrapped so they are never printed.

    Raises
    ------
    DatasetNotFoundError
        An unknown name (the message lists the valid ones).
    InvalidURIError, BackendNotFoundError
        A malformed URI, or one whose scheme no installed backend handles.

    Examples
    --------
    >>> import connectomix
    >>> ds = connectomix.open("sample")
    >>> ds.backend_name
    'release'
    """
    if not isinstance(name_or_uri, str) or not name_or_uri.strip():
        raise InvalidArgumentError(
            f"expected a dataset name or URI (a non-empty string); got {name_or_uri!r}; "
            "see connectomix.datasets() for the names"
        )
    registry = get_registry()
    core = {k: options.pop(k) for k in CORE_OPTIONS if k in options}
    if "://" in name_or_uri:
        name, uri, base = None, name_or_uri, {}
    else:
        entry = configured_dataset(name_or_uri, builtin=name_or_uri in registry.datasets)
        if entry is not None:
            name, uri, base = name_or_uri, entry.uri, dict(entry.options)
        elif name_or_uri in registry.datasets:
            name, uri, base = name_or_uri, registry.datasets[name_or_uri], {}
        else:
            from .config import load_config

            valid = sorted(set(load_config()) | set(registry.datasets))
            raise DatasetNotFoundError(
                f"Unknown dataset {name_or_uri!r}; {suggest(name_or_uri, valid)}. "
                "Add it to the config file (connectomix config-path) or pass a URI such as "
                "'release:///path/to/folder'."
            )
    parsed = parse_uri(uri)
    merged = {**parsed.options, **base, **protect_options(options)}
    if "materialization" in merged:  # one reading for every backend: ASCII digits or a word ('١' is not 1)
        merged["materialization"] = _check_materialization(merged["materialization"])
    for key, read in _SHARED_OPTIONS.items():  # strings from URIs and configs, read once for every backend
        if key in merged and merged[key] is not None:
            merged[key] = read(merged[key], key)
    core.update({k: merged.pop(k) for k in CORE_OPTIONS if k in merged and k not in core})
    cls = registry.backend_for_scheme(parsed.scheme)
    backend = cls.from_uri(parsed, merged)
    return Dataset(backend, name=name, **core)


#: Options handled by the core rather than the backend.
CORE_OPTIONS = ("cache", "max_workers")


def _cache_spec(cache: Any) -> bool | ResultCache | str:
    """Validate the ``cache`` option: True (default store), False, a directory or a ResultCache."""
    if cache is None or cache is True or (isinstance(cache, str) and cache.lower() in ("true", "1", "yes")):
        return True
    if cache is False or (isinstance(cache, str) and cache.lower() in ("false", "0", "no")):
        return False
    if isinstance(cache, ResultCache):
        return cache
    if isinstance(cache, (str, os.PathLike)):
        return os.fspath(cache)
    raise InvalidArgumentError(f"cache must be True, False, a directory or a ResultCache; got {cache!r}")


def _cache_place(spec: bool | ResultCache | str) -> str | None:
    """The directory a validated ``cache`` option keeps results in (resolved), ``None`` for no cache."""
    if spec is False:
        return None
    directory = default_cache_dir() if spec is True else spec.directory if isinstance(spec, ResultCache) else spec
    return os.path.realpath(directory)


_caches: dict[str, ResultCache] = {}
_caches_lock = threading.Lock()


def _default_cache() -> ResultCache:
    """The default store, one per directory and process (so an unusable one warns once)."""
    directory = str(default_cache_dir())
    with _caches_lock:
        if directory not in _caches:
            _caches[directory] = ResultCache(directory)
        return _caches[directory]


class Dataset:
    """One connectome dataset, reached through one backend.

    Obtain it with :func:`connectomix.open`. Methods return pandas DataFrames
    in the schema of :mod:`connectomix.schema`. A ``Dataset`` is a context
    manager and safe to use from several threads.

    Results are kept in an on-disk cache (:class:`~connectomix.cache.ResultCache`)
    when the backend can identify the data it serves (an immutable version with
    its metadata, last-edit stamps, release file fingerprints; never live data);
    ``connectomix.open(..., cache=False)`` turns that off, ``cache="<dir>"``
    moves it. A corrupt entry is fetched again and an unusable cache is
    bypassed, each with a :class:`~connectomix.errors.CacheWarning`.

    Examples
    --------
    >>> import connectomix
    >>> with connectomix.open("sample") as ds:
    ...     neurons, roi_counts = ds.fetch_neurons(type="DA1_lPN")
    >>> neurons["id"].tolist()[:3]
    [722817260, 754534424, 754538881]
    """

    def __init__(self, backend: Backend, *, name: str | None = None, max_workers: int | str = DEFAULT_MAX_WORKERS,
                 cache: Any = True):
        self._backend = backend
        self._cache_spec = _cache_spec(cache)
        self._cache: ResultCache | None = None
        # the backend keeps its own tables and what it learns from its server (:class:`~.cache.DiskRecords`)
        # in this Dataset's cache, opened when first needed; a backend serves one cache (else this raises)
        backend.bind_result_cache(_cache_place(self._cache_spec), lambda: self.cache)
        self._info: DatasetInfo = backend.info()
        self.name = name or self._info.name
        self.max_workers = _positive_int(max_workers, "max_workers")

    @property
    def cache(self) -> ResultCache | None:
        """The on-disk result cache (opened on first use), or ``None`` if caching is off.

        A cache that cannot be used (see :attr:`ResultCache.problem
        <connectomix.cache.ResultCache.problem>`) has warned once and is bypassed.
        """
        if self._cache is None and self._cache_spec is not False:
            spec = self._cache_spec
            if isinstance(spec, ResultCache):
                self._cache = spec
            elif spec is True:
                self._cache = _default_cache()
            else:
                with _caches_lock:
                    if self._cache is None:
                        self._cache = ResultCache(spec)
        return self._cache

    def _cached(self, method: str, version: Any, query: Any, compute):
        """``compute()``, served from or stored in the result cache when the backend identifies its data.

        The backend's :meth:`~connectomix.backend.Backend.cache_identity` is
        part of the key, so release files changed in place, or a server
        re-deployed with other data at the same address, never get an older
        answer. It is remembered for the backend's ``identity_ttl`` seconds
        (:meth:`_identity`): release folders (0) are looked at on every call,
        remote versions are asked once per ``identity_ttl``, so a warm hit
        there sends no request. After a miss the identity is asked afresh and
        the answer is stored only if it is unchanged (the data did not change
        while it was being fetched); if it changed, the query's ids are checked
        again at the new data (their earlier check may be of the old data).
        """
        cache = self.cache
        if cache is None or not cache.usable:
            return compute()
        identity = self._identity(version)
        if identity is None:
            return compute()
        key = query_key({"backend": self.backend_name, "version": version, "data": identity}, method, query)
        hit = cache.get(key)
        if hit is not None:
            return hit
        df = compute()
        if self._identity(version, fresh=True) == identity:
            cache.put(key, df)
        elif isinstance(query, (ConnectivityQuery, SynapseQuery)):
            for what, field in (("sources", "sources"), ("targets", "targets"), ("x", "ids")):
                ids = getattr(query, field, None)
                if ids is not None:
                    self._raise_missing(ids, what, version)
        return df

    def _identity(self, version: Any, *, fresh: bool = False) -> Any:
        """The backend's cache identity of ``version``, remembered per Dataset for ``backend.identity_ttl`` s.

        ``None`` stands for the one fixed version of a backend without
        materializations. ``fresh``: ask now (and remember the answer).
        """
        from .cache import IdentityMemo

        memo = self.__dict__.get("_identities")
        if memo is None:
            with _caches_lock:
                memo = self.__dict__.setdefault("_identities", IdentityMemo())
        if version is None and Capability.MATERIALIZATION not in self.capabilities:
            version = self._info.version
        return memo.get(version, self._backend.cache_identity, self._backend.identity_ttl, fresh=fresh,
                        disk=self._backend.records())

    def _tables(self) -> TableMemo:
        """Finished tables of this Dataset kept in memory (the in-session front of the result cache)."""
        memo = self.__dict__.get("_finished")
        if memo is None:
            with _caches_lock:
                memo = self.__dict__.setdefault("_finished", TableMemo())
        return memo

    def _memo_key(self, method: str, version: Any, *arguments: Any) -> str | None:
        """The :class:`~connectomix.cache.TableMemo` key of a finished table, or ``None`` when not to keep it.

        Only where the result cache would serve the query (caching on and
        usable, the data identified): the key holds the data's identity as
        remembered for ``identity_ttl`` (:meth:`_identity`), so a table is
        reused exactly while a cached entry would be, and never across data
        that changed. ``arguments`` are the normalised ones (ids checked).
        """
        cache = self.cache
        if cache is None or not cache.usable:
            return None
        identity = self._identity(version)
        if identity is None:
            return None
        return memo_key(self.backend_name, method, version, identity, *arguments)

    # -- metadata ----------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        """The backend object (an escape hatch for backend-specific features)."""
        return self._backend

    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def info(self) -> DatasetInfo:
        return self._info

    @property
    def version(self) -> Any:
        """The dataset's default version (a neuPrint tag, a materialization, a release version)."""
        return self._info.version

    @property
    def rois(self) -> tuple[str, ...]:
        """Every ROI name the dataset knows."""
        return self._info.rois

    @property
    def primary_rois(self) -> tuple[str, ...]:
        """The non-overlapping ROIs used for per-ROI counts and weights."""
        return self._info.primary_rois

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._backend.dataset_capabilities()

    def __repr__(self) -> str:
        return f"<connectomix.Dataset {self.name!r} backend={self.backend_name!r} version={self.version!r}>"

    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- neurons ---------------------------------------------------------------------

    @_scrubbed
    def fetch_neurons(self, criteria: Any = None, /, *, omit_rois: bool = False, materialization: Any = None,
                      counts: bool | None = None, **fields: Any) -> NeuronTables:
        """Find neurons and their per-ROI synapse counts.

        Parameters
        ----------
        criteria
            A :class:`NeuronCriteria`, or ids. Alternatively give the criteria
            fields as keyword arguments (``type=``, ``instance=``, ``regex=``,
            ``status=``, ``side=``, ``class_=`` or ``**{"class": ...}``,
            ``superclass=``, ``nt=``, ``hemibrain_type=``, ``rois=``,
            ``min_pre=``, ``min_upstream=``, ...). A criterion on a column the
            dataset does not have (see :attr:`info`\\ ``.neuron_columns``)
            raises :class:`~connectomix.errors.UnsupportedOperation`.
        omit_rois
            Skip the per-ROI counts (faster on remote backends).
        materialization
            Version to query, for versioned backends (see :meth:`get_connectivity`).
        counts
            Per-neuron synapse counts (``pre``/``post``/``upstream``/``downstream``
            and ``roi_counts``). ``None`` (default): where the dataset holds
            them (release files, neuPrint: always); on CAVE, which has no such
            table, only what a criterion needs (``min_upstream``, ``rois``, ...),
            the rest ``<NA>`` with ``attrs["counts"]`` saying so and one warning
            per dataset. ``True``: always, however expensive (CAVE pulls every
            synapse row). ``False``: as ``None`` without the warning (datasets
            that hold counts return them anyway).

        Returns
        -------
        NeuronTables
            ``(neurons, roi_counts)``; see :data:`connectomix.schema.NEURONS`
            (the same core columns on every dataset: ``pre``/``post`` are
            synaptic sites, ``upstream``/``downstream`` connections; native
            columns follow) and :data:`connectomix.schema.ROI_COUNTS`.

        Examples
        --------
        >>> import connectomix
        >>> ds = connectomix.open("sample")
        >>> neurons, roi_counts = ds.fetch_neurons(type="DA1_.*", regex=True, min_pre=700)
        >>> neurons[["id", "type", "pre"]].to_string(index=False)
        '        id    type  pre\\n 722817260 DA1_lPN  701\\n1734350908 DA1_lPN  725\\n1765040289 DA1_lPN  702'
        """
        hints.refuse_foreign_arguments("fetch_neurons", fields)  # client=, dataset=: other clients' habits
        if criteria is not None and fields:
            raise InvalidArgumentError("give either a NeuronCriteria/ids or keyword criteria, not both")
        _check_bool(omit_rois, "omit_rois")
        counts = _counts.check_counts(counts)
        materialization = _check_materialization(materialization)
        crit = to_criteria(self._unkey(criteria)) if criteria is not None else _criteria_from_fields(fields)
        self._check_rois(crit.all_rois)
        if crit.all_rois and Capability.ROIS not in self.capabilities:
            raise UnsupportedOperation(
                f"dataset {self.name!r} ({self.backend_name}) has no per-ROI synapse counts, so the ROI "
                f"criteria {list(crit.all_rois)} cannot be applied")
        if self._info.neuron_columns is not None and not crit.matches_nothing:  # nothing matches [] anywhere
            self._check_criteria_columns(crit, self._info.neuron_columns)
        version = self._backend.resolve_materialization(
            np.asarray(crit.ids, dtype="int64") if crit.ids is not None else None, materialization)
        note = None
        if crit.matches_nothing:  # no query; the columns the dataset's tables have (optional ones included)
            neurons = schema.NEURONS.empty()
            declared = self._info.neuron_columns or ()
            for col in schema.NEURONS.optional:
                if col.name in declared:
                    neurons[col.name] = pd.Series([], dtype=col.dtype)
        else:
            raw = self._cached("fetch_neurons", version, _counts.query_of(self._backend, crit, counts),
                               lambda: _counts.fetch(self._backend, crit, version, counts))
            note = _counts.note_of(raw)  # counts the backend did not compute
            neurons = self._neuron_table(raw, crit)
        keep = _criteria_mask(neurons, crit, self.name)
        if crit.ids is not None:
            self._raise_missing(np.setdiff1d(np.asarray(crit.ids, dtype="int64"), neurons["id"].to_numpy()),
                                "ids", version, checked=crit.is_ids_only)
        neurons = neurons[keep].sort_values("id", kind="stable").reset_index(drop=True)
        hints.warn_unmatched(self, crit, neurons, version)  # misspelled types, patterns read literally, ...
        if not omit_rois and Capability.ROIS not in self.capabilities:
            warnings.warn(f"dataset {self.name!r} ({self.backend_name}) has no per-ROI synapse counts; "
                          "roi_counts is empty (pass omit_rois=True to skip this warning)", UserWarning, stacklevel=3)
        if omit_rois or Capability.ROIS not in self.capabilities or neurons.empty or (note and not crit.all_rois):
            roi_counts = schema.ROI_COUNTS.empty()
        else:
            ids = neurons["id"].to_numpy()
            roi_counts = schema.ROI_COUNTS.validate(self._cached(
                "fetch_roi_counts", version, ids, lambda: self._backend.fetch_roi_counts(ids, version)))
            roi_counts = roi_counts.sort_values(["id", "roi"], kind="stable").reset_index(drop=True)
        self._label(neurons, "neurons", version, criteria=repr(crit))
        self._label(roi_counts, "roi_counts", version, criteria=repr(crit))
        _counts.mark(self, neurons, roi_counts, note, counts)
        gaps.warn_roi_gaps(self, crit, neurons, version, omit_rois=omit_rois)  # neurons a release cannot place in ROIs
        return NeuronTables(neurons, roi_counts)

    # -- connectivity -----------------------------------------------------------------

    @_scrubbed
    def get_connectivity(
        self,
        sources: Any = None,
        targets: Any = None,
        *,
        by_roi: bool = False,
        rois: str | Iterable[str] | None = None,
        min_weight: int = 1,
        include_autapses: bool = False,
        materialization: Any = None,
        batch_size: int | None = None,
        progress: bool = True,
        by: str = "neuron",
        partner_types: bool = True,
    ) -> pd.DataFrame:
        """Neuron-to-neuron (or type-to-type) connection weights.

        Parameters
        ----------
        sources, targets
            Presynaptic / postsynaptic neurons (ids or :class:`NeuronCriteria`).
            ``None`` means any neuron or segment; give at least one side.
        by_roi
            One row per (pre, post, roi) instead of per pair; per-ROI weights
            of a pair sum to its total.
        rois
            Count only connections in these ROIs.
        min_weight
            Keep pairs whose weight (within ``rois``) is ``>=`` this.
        include_autapses
            Keep connections of a neuron onto itself (dropped by default).
        materialization
            Version to query, for versioned backends (``'auto'``, ``'latest'``,
            ``'live'`` or an int); ``None`` uses the dataset default.
        batch_size, progress
            Request batching and the progress bar for large queries.
        by
            ``"neuron"`` (default) or ``"type"``: sum the neuron-level weights
            (each pair already ``>= min_weight``) over cell types, so datasets
            can be compared type by type.
        partner_types
            Append ``pre_type, pre_instance, post_type, post_instance``
            (``string``; ``<NA>`` for ids without a type or instance, such as
            fragments) from the dataset's neuron table at the same version:
            one extra (cached) neuron query for the ids in the result. Ignored
            with ``by="type"``.

        Returns
        -------
        pandas.DataFrame
            :data:`connectomix.schema.CONNECTIVITY` (or ``CONNECTIVITY_BY_ROI``,
            or ``TYPE_CONNECTIVITY`` with ``by="type"``, plus ``roi`` if ``by_roi``),
            then the partner columns (:data:`connectomix.partners.PARTNER_COLUMNS`).

        Examples
        --------
        >>> import connectomix
        >>> ds = connectomix.open("sample")
        >>> edges = ds.get_connectivity(sources=1734350788, min_weight=5)
        >>> list(edges.columns), bool((edges["weight"] >= 5).all())
        (['pre', 'post', 'weight', 'pre_type', 'pre_instance', 'post_type', 'post_instance'], True)
        """
        if sources is None and targets is None:
            raise InvalidArgumentError("give sources or targets (or both); None/None would fetch the whole graph")
        if not isinstance(by, str) or by not in ("neuron", "type"):
            raise InvalidArgumentError(f"by must be 'neuron' or 'type'; got {by!r}")
        for flag, name in ((by_roi, "by_roi"), (include_autapses, "include_autapses"), (progress, "progress"),
                           (partner_types, "partner_types")):
            _check_bool(flag, name)
        materialization = _check_materialization(materialization)
        roi_list = self._roi_list(rois)
        min_weight = _non_negative_int(min_weight, "min_weight")
        batch_size = _optional_batch_size(batch_size)
        if by == "type" and _all_neurons(sources) and _all_neurons(targets) and hasattr(self._backend, "type_connectivity"):
            # the whole dataset: its engine aggregates (DuckDB or Dask), no pair rows reach this process
            return self._whole("type_connectivity", "type_connectivity", materialization, by_roi=by_roi,
                               rois=list(roi_list) if roi_list else None, min_weight=min_weight,
                               include_autapses=include_autapses)
        # "every neuron" on one side is pushed into the backend's query where it can (no id list)
        pushdown = Capability.NEURON_SIDES in self.capabilities
        # (only opposite a given side: with the other side None the backend would get no ids at all)
        src_neurons = pushdown and _all_neurons(sources) and targets is not None and not _all_neurons(targets)
        tgt_neurons = pushdown and _all_neurons(targets) and sources is not None and not src_neurons
        # a backend that checks ids with its own query gets the one side given unchecked (no round trip first)
        defer = None
        if self._backend.checks_connectivity_ids:
            defer = ("sources" if targets is None or tgt_neurons else
                     "targets" if sources is None or src_neurons else None)
        src = None if src_neurons else self._resolve_ids(sources, "sources", materialization, check=defer != "sources")
        tgt = None if tgt_neurons else self._resolve_ids(targets, "targets", materialization, check=defer != "targets")
        deferred = (src if defer == "sources" else tgt) if defer is not None else None
        if deferred is not None and len(deferred):  # missing ids found before (same data) raise with no request
            known = self._missing_ids(deferred, materialization, ask=lambda: None)
            if known is not None and len(known):
                self._raise_missing(known, defer, materialization, checked=True)
        gaps.warn_partial_synapses(self, _concat(src, tgt))  # ids whose synapses the dataset holds only in part
        version = self._backend.resolve_materialization(_concat(src, tgt), materialization)
        arguments = (src, tgt, by_roi, roi_list, min_weight, include_autapses, src_neurons, tgt_neurons,
                     partner_types, by)
        memo = self._memo_key("get_connectivity", version, *arguments)
        if memo is not None and (hit := self._tables().get(memo)) is not None:
            return hit
        table = schema.CONNECTIVITY_BY_ROI if (by_roi or roi_list is not None) else schema.CONNECTIVITY
        if (src is not None and src.size == 0) or (tgt is not None and tgt.size == 0):
            self._backend.settle_checks(_concat(src, tgt), version)  # no query: its ids' check must still pass
            df = table.empty()
        else:
            query = ConnectivityQuery(
                sources=src, targets=tgt, by_roi=by_roi, rois=roi_list, min_weight=min_weight,
                include_autapses=include_autapses, materialization=version, batch_size=batch_size,
                max_workers=self.max_workers, progress=progress,
                sources_neurons_only=src_neurons, targets_neurons_only=tgt_neurons, check_ids=defer is not None,
            )

            def compute() -> pd.DataFrame:
                try:
                    return self._backend.get_connectivity(query)
                except IdsNotFoundError as exc:  # the backend's check of the deferred side: the core's message
                    if defer is not None and type(exc) is IdsNotFoundError and exc.ids:
                        missing = np.asarray(exc.ids, dtype="int64")
                        self._missing_ids(deferred, materialization, ask=lambda: missing)  # remembered, as a check
                        self._raise_missing(missing, defer, materialization, checked=True)
                    raise

            df = table.validate(self._cached("get_connectivity", version, query, compute))
        df = _filter_connectivity(df, src, tgt, roi_list, min_weight, include_autapses)
        if not by_roi and "roi" in df.columns:
            df = df.groupby(["pre", "post"], as_index=False, sort=False)["weight"].sum()
        sort = ["weight", "pre", "post"] + (["roi"] if "roi" in df.columns else [])
        df = df.sort_values(sort, ascending=[False] + [True] * (len(sort) - 1), kind="stable").reset_index(drop=True)
        table_name = "connectivity_by_roi" if by_roi else "connectivity"
        if partner_types and by == "neuron":
            from .partners import add_partner_columns, neuron_lookup

            df = add_partner_columns(df, neuron_lookup(self, version))
        if by == "type":
            df, table_name = self._by_type(df, version), "type_connectivity"
        df = self._label(df, table_name, version, min_weight=min_weight,
                         rois=list(roi_list) if roi_list else None, by=by)
        if memo is not None and memo == self._memo_key("get_connectivity", version, *arguments):
            self._tables().put(memo, df)  # not if the data changed while it was fetched (its identity did)
        return df

    def _by_type(self, edges: pd.DataFrame, version: Any) -> pd.DataFrame:
        ids = np.unique(np.concatenate([edges["pre"].to_numpy(), edges["post"].to_numpy()]))
        types = pd.Series(dtype="string")
        if ids.size:
            neurons = self._neuron_table(self._backend.fetch_neurons(NeuronCriteria(ids=ids), version))
            types = neurons.set_index("id")["type"]
        keys = ["pre_type", "post_type"] + (["roi"] if "roi" in edges.columns else [])
        typed = edges.assign(
            pre_type=edges["pre"].map(types).fillna(schema.UNTYPED).astype("string"),
            post_type=edges["post"].map(types).fillna(schema.UNTYPED).astype("string"),
        )
        out = (typed.groupby(keys, as_index=False, sort=False)
               .agg(weight=("weight", "sum"), n_pre=("pre", "nunique"), n_post=("post", "nunique"),
                    n_pairs=("weight", "size")))
        out = out.sort_values(["weight"] + keys, ascending=[False] + [True] * len(keys), kind="stable")
        cols = list(schema.TYPE_CONNECTIVITY.names) + (["roi"] if "roi" in keys else [])
        return schema.TYPE_CONNECTIVITY.validate(out.reset_index(drop=True))[cols]

    def partner_profiles(self, direction: str = "input", *, min_weight: int = 1, include_autapses: bool = False,
                         materialization: Any = None) -> pd.DataFrame:
        """Every neuron's input (or output) weight by partner type, computed where the data is.

        Parameters
        ----------
        direction
            ``"input"`` (weights from each presynaptic type) or ``"output"``.
        min_weight
            Count only neuron pairs of weight ``>=`` this.
        include_autapses
            Count connections of a neuron onto itself.
        materialization
            Version, for versioned backends.

        Returns
        -------
        pandas.DataFrame
            ``id, partner_type, weight, n_partners, fraction`` (``fraction`` of
            the neuron's total input/output weight among those pairs).

        Examples
        --------
        >>> import connectomix
        >>> prof = connectomix.open("sample").partner_profiles("input")
        >>> list(prof.columns)
        ['id', 'partner_type', 'weight', 'n_partners', 'fraction']
        """
        _check_bool(include_autapses, "include_autapses")
        return self._whole("partner_profiles", "partner_profiles", materialization, direction=direction,
                           min_weight=_non_negative_int(min_weight, "min_weight"), include_autapses=include_autapses)

    def roi_totals(self, *, include_autapses: bool = False, materialization: Any = None) -> pd.DataFrame:
        """Per ROI: connection weight and pairs over every body, and synaptic sites, computed where the data is.

        Returns
        -------
        pandas.DataFrame
            ``roi, weight, n_pairs, pre, post`` (``pre``/``post``: summed
            per-ROI site counts, ``<NA>`` where the dataset has none).

        Examples
        --------
        >>> import connectomix
        >>> list(connectomix.open("sample").roi_totals().columns)
        ['roi', 'weight', 'n_pairs', 'pre', 'post']
        """
        _check_bool(include_autapses, "include_autapses")
        return self._whole("roi_totals", "roi_totals", materialization, include_autapses=include_autapses)

    def _whole(self, method: str, table: str, materialization: Any, **params: Any) -> pd.DataFrame:
        """A whole-dataset aggregate the backend computes (the release backend: DuckDB or Dask)."""
        compute = getattr(self._backend, method, None)
        if compute is None:
            raise UnsupportedOperation(f"dataset {self.name!r} ({self.backend_name}) does not compute {method} over "
                                       "the whole dataset; use a release folder (release:// or release://s3://...)")
        version = self._backend.resolve_materialization(None, _check_materialization(materialization))
        return self._label(compute(**params), table, version, **params)

    # -- synapses --------------------------------------------------------------------

    @_scrubbed
    def get_synapses(
        self,
        x: Any,
        *,
        pre: bool = True,
        post: bool = True,
        min_score: float | str | None = None,
        rois: str | Iterable[str] | None = None,
        include_autapses: bool = False,
        materialization: Any = None,
        batch_size: int | None = None,
        progress: bool = True,
        attach: bool = False,
        max_distance: float | None = 10_000,
        clean: bool = True,
        partner_types: bool = True,
    ) -> pd.DataFrame:
        """Synaptic connections of neurons, with positions (nm) and scores.

        Parameters
        ----------
        x
            Neurons: ids, a :class:`NeuronCriteria`, or navis neurons.
        pre, post
            Include connections where ``x`` is presynaptic / postsynaptic.
        min_score
            Keep synapses with ``score >= min_score`` (in the dataset's own
            unit: hemibrain confidence 0-1, FlyWire ``cleft_score`` ...), or
            ``"recommended"``: the threshold the dataset's authors publish
            (:attr:`DatasetInfo.score <connectomix.backend.DatasetInfo>`),
            so the same code means the same on every dataset.
            ``df.attrs["score"]`` names the score column, its scale and the
            threshold applied.
        rois
            Keep synapses whose postsynaptic site is in these ROIs.
        include_autapses, materialization, batch_size, progress
            As in :meth:`get_connectivity`.
        attach
            If ``x`` are navis neurons, also return copies of them with
            ``.connectors``: one row per synaptic site (T-bar ``"pre"``, PSD
            ``"post"``) with its partners, mapped to the nearest node/vertex
            (see :func:`connectomix.morphology.attach_synapses`). The neurons
            passed in are not modified.
        max_distance, clean
            With ``attach``: drop connectors farther than ``max_distance`` nm
            from the neuron when ``clean`` (the returned table keeps them).
        partner_types
            Append ``pre_type, pre_instance, post_type, post_instance``, as in
            :meth:`get_connectivity`.

        Returns
        -------
        pandas.DataFrame
            :data:`connectomix.schema.SYNAPSES`, then the partner columns;
            each synaptic connection once. With ``attach=True`` an
            :class:`~connectomix.morphology.AttachedSynapses` ``(synapses,
            neurons)`` instead: ``syn, neurons = ds.get_synapses(neurons,
            attach=True)``.

        Examples
        --------
        >>> import connectomix
        >>> ds = connectomix.open("sample")
        >>> syn = ds.get_synapses(1734350788, post=False)
        >>> len(syn) >= 621, syn.attrs["units"]
        (True, 'nm')
        """
        for flag, name in ((pre, "pre"), (post, "post"), (include_autapses, "include_autapses"),
                           (progress, "progress"), (attach, "attach"), (clean, "clean"),
                           (partner_types, "partner_types")):
            _check_bool(flag, name)
        if not (pre or post):
            raise InvalidArgumentError("pre and post are both False: nothing to fetch; set at least one to True")
        materialization = _check_materialization(materialization)
        if max_distance is not None and not (_finite(max_distance) and max_distance >= 0):
            raise InvalidArgumentError(f"max_distance must be a finite number of nm >= 0, or None; got {max_distance!r}")
        if Capability.SYNAPSES not in self.capabilities:
            raise UnsupportedOperation(f"dataset {self.name!r} ({self.backend_name}) has no synapse-level data")
        score_attrs = None
        if min_score is not None:
            if not (_finite(min_score) or (isinstance(min_score, str) and min_score == "recommended")):
                raise InvalidArgumentError(
                    f"min_score must be a finite number (a synapse score) or 'recommended'; got {min_score!r}")
            if Capability.SYNAPSE_SCORES not in self.capabilities:
                raise UnsupportedOperation(
                    f"dataset {self.name!r} has no synapse scores, so min_score={min_score!r} cannot be applied"
                )
            min_score, score_attrs = self._score_threshold(min_score)
        roi_list = self._roi_list(rois)
        batch_size = _optional_batch_size(batch_size)
        ids = self._resolve_ids(to_criteria(self._unkey(x)), "x", materialization)  # to_criteria refuses None
        gaps.warn_partial_synapses(self, ids)  # ids whose synapses the dataset holds only in part
        version = self._backend.resolve_materialization(ids, materialization)
        if ids.size == 0:
            df = schema.SYNAPSES.empty()
        else:
            query = SynapseQuery(
                # backends give roi <NA> outside every primary ROI: "NotPrimary" is filtered (and named) here
                ids=ids, pre=pre, post=post, min_score=min_score,
                rois=None if roi_list is not None and schema.NOT_PRIMARY in roi_list else roi_list,
                include_autapses=include_autapses, materialization=version, batch_size=batch_size,
                max_workers=self.max_workers, progress=progress,
            )
            df = schema.SYNAPSES.validate(self._cached("get_synapses", version, query,
                                                       lambda: self._backend.get_synapses(query)))
        keep = np.zeros(len(df), dtype=bool)
        if pre:
            keep |= df["pre"].isin(ids).to_numpy()
        if post:
            keep |= df["post"].isin(ids).to_numpy()
        keep &= ((df["pre"] != 0) & (df["post"] != 0)).to_numpy()
        if not include_autapses:
            keep &= (df["pre"] != df["post"]).to_numpy()
        if min_score is not None:
            keep &= (df["score"] >= min_score).fillna(False).to_numpy()
        if roi_list is not None:
            keep &= df["roi"].fillna(schema.NOT_PRIMARY).isin(roi_list).to_numpy()
        # the kept rows, each synapse once (its first occurrence), ordered by synapse_id; column by column
        rows = np.flatnonzero(keep)
        _, first = np.unique(df["synapse_id"].to_numpy()[rows], return_index=True)
        df = frames.take(df, rows[first])
        df["roi"] = df["roi"].fillna(schema.NOT_PRIMARY)  # one name outside the primary ROIs, as in every table
        if partner_types:
            from .partners import add_partner_columns, neuron_lookup

            df = add_partner_columns(df, neuron_lookup(self, version))
        df = self._label(df, "synapses", version, min_score=min_score, rois=list(roi_list) if roi_list else None)
        df.attrs["score"] = score_attrs or self._score_attrs(None, recommended=False)
        if attach:
            from .morphology import AttachedSynapses, attach_synapses

            if not hasattr(x, "nodes") and not hasattr(x, "vertices") and not hasattr(x, "neurons"):
                raise InvalidArgumentError("attach=True needs navis neurons (TreeNeuron, MeshNeuron or NeuronList)")
            return AttachedSynapses(df, attach_synapses(x, df, max_distance=max_distance, clean=clean,
                                                        pre=pre, post=post))
        return df

    # -- skeletons -------------------------------------------------------------------

    @_scrubbed
    def get_skeletons(self, x: Any, *, missing: str = "raise") -> Any:
        """Skeletons as a navis ``NeuronList`` of ``TreeNeuron`` s in nm.

        Parameters
        ----------
        x
            Neurons: ids, a :class:`NeuronCriteria`, or navis neurons.
        missing
            What to do with neurons the dataset has but holds no skeleton for
            (as navis's ``fetch_skeletons(missing_swc=...)``): ``"raise"``
            (default) an :class:`~connectomix.errors.IdsNotFoundError` naming
            them; ``"warn"`` leave them out with a
            :class:`~connectomix.errors.MissingDataWarning` naming them;
            ``"skip"`` leave them out silently. Ids the dataset does not have
            at all always raise.

        Examples
        --------
        >>> import connectomix
        >>> sk = connectomix.open("sample").get_skeletons(1734350788)
        >>> str(sk[0].units)
        '1 nanometer'
        """
        from .gaps import check_missing, skeletons_with_gaps

        missing = check_missing(missing)
        if Capability.SKELETONS not in self.capabilities:
            raise UnsupportedOperation(f"dataset {self.name!r} ({self.backend_name}) has no skeletons")
        crit = to_criteria(self._unkey(x))
        ids = np.asarray(crit.ids, dtype="int64") if crit.is_ids_only else self._resolve_ids(crit, "x", None)
        return skeletons_with_gaps(self._backend.get_skeletons, ids, missing, dataset=self.name,
                                   not_in_dataset=lambda gone: self._backend.missing_ids(gone, None))

    @_scrubbed
    def get_meshes(self, x: Any, *, missing: str = "raise") -> Any:
        """Meshes (neuron surfaces) as a navis ``NeuronList`` of ``MeshNeuron`` s in nm.

        Parameters
        ----------
        x
            Neurons: ids, a :class:`NeuronCriteria`, ``'label:id'`` keys, or navis neurons (their ids).
        missing
            What to do with neurons the dataset has but holds no mesh for, as in
            :meth:`get_skeletons`: ``"raise"`` (default) an
            :class:`~connectomix.errors.IdsNotFoundError` naming them; ``"warn"`` leave them out with a
            :class:`~connectomix.errors.MissingDataWarning` naming them (``what="mesh"``); ``"skip"``
            leave them out silently. Ids the dataset does not have at all always raise.

        Returns
        -------
        navis.NeuronList
            One ``MeshNeuron`` per neuron, in id order as :meth:`get_skeletons` (``units="1 nanometer"``,
            ``id`` the neuron id). ``.attrs``
            records the provenance (``table="meshes"``, ``backend``, ``dataset``, ``version``,
            ``units``); each neuron has ``dataset`` and ``version`` attributes.
            ``get_synapses(meshes, attach=True)`` attaches synapses to the nearest vertices.

        Raises
        ------
        UnsupportedOperation
            The dataset has no meshes (:attr:`capabilities` lacks ``MESHES``).

        Examples
        --------
        >>> import connectomix
        >>> ds = connectomix.open("sample")
        >>> meshes = ds.get_meshes(connectomix.NeuronCriteria(type="DA1_lPN"), missing="skip")  # 5 of 7 have one
        >>> len(meshes), str(meshes[0].units), meshes.attrs["table"]
        (5, '1 nanometer', 'meshes')
        >>> syn, attached = ds.get_synapses(meshes, attach=True)   # each site at its nearest vertex
        >>> "vertex_id" in attached[0].connectors.columns
        True
        """
        from .gaps import check_missing, morphology_with_gaps
        from .morphology import label_neurons

        missing = check_missing(missing)
        if Capability.MESHES not in self.capabilities:
            raise UnsupportedOperation(f"dataset {self.name!r} ({self.backend_name}) has no meshes")
        crit = to_criteria(self._unkey(x))
        ids = np.asarray(crit.ids, dtype="int64") if crit.is_ids_only else self._resolve_ids(crit, "x", None)
        meshes = morphology_with_gaps(self._backend.get_meshes, pd.unique(ids), missing, dataset=self.name,
                                      not_in_dataset=lambda gone: self._backend.missing_ids(gone, None),
                                      what="mesh")
        return label_neurons(meshes, table="meshes", backend=self.backend_name, dataset=self.name,
                             version=self._info.version)

    # -- ids that change -----------------------------------------------------------

    @_scrubbed
    def update_ids(self, x: Any, *, materialization: Any = None) -> pd.DataFrame:
        """Map outdated ids (e.g. CAVE root ids after proofreading) to current ones.

        Parameters
        ----------
        x
            Ids (or navis neurons).
        materialization
            Map to the ids valid at this version (``None``: now).

        Returns
        -------
        pandas.DataFrame
            ``old_id, new_id, changed, confidence`` (``confidence`` is the
            fraction of the old object in the new one after a split).
        """
        if Capability.ID_UPDATES not in self.capabilities:
            raise UnsupportedOperation(
                f"ids of dataset {self.name!r} ({self.backend_name}) do not change over time; nothing to update"
            )
        materialization = _check_materialization(materialization)
        ids = parse_ids(self._unkey(x))
        df = self._backend.update_ids(ids, materialization)
        return self._label(df, "id_updates", materialization)

    # -- helpers ---------------------------------------------------------------------

    def _label(self, df: pd.DataFrame, table: str, version: Any, **query: Any) -> pd.DataFrame:
        return schema.provenance(
            df, table=table, backend=self.backend_name, dataset=self.name, version=version,
            synthetic=dict(self._info.synthetic), query={k: v for k, v in query.items() if v is not None},
        )

    def _score_attrs(self, threshold: float | None, *, recommended: bool) -> dict[str, Any]:
        """``df.attrs["score"]``: the score column, its scale and the threshold applied (``>=``)."""
        info = self._info.score
        described = info.as_dict() if info is not None else {"column": None, "scale": None, "recommended": None,
                                                             "op": None, "source": None}
        return {**described, "threshold": threshold, "threshold_op": ">=" if threshold is not None else None,
                "threshold_is_recommended": recommended}

    def _score_threshold(self, min_score: Any) -> tuple[float, dict[str, Any]]:
        """A numeric ``>=`` threshold for ``min_score`` (resolving ``'recommended'``) and its attrs."""
        if isinstance(min_score, str):
            info = self._info.score
            if info is None or info.recommended is None:
                raise UnsupportedOperation(
                    f"dataset {self.name!r} ({self.backend_name}) publishes no recommended synapse score "
                    f"threshold{'' if info is None else f' for its {info.column!r}'}, so "
                    "min_score='recommended' cannot be applied; give a number in the dataset's own unit")
            return info.recommended, self._score_attrs(info.recommended, recommended=True)
        return min_score, self._score_attrs(min_score, recommended=False)

    def _check_criteria_columns(self, crit: NeuronCriteria, columns: Iterable[str]) -> None:
        """Refuse criteria on neuron columns the dataset does not have (naming the ones it has)."""
        columns = tuple(columns)
        asked = [(f, c) for f, c in STRING_FIELDS.items() if getattr(crit, f)]  # [] matches nothing anywhere
        asked += [(f, c) for f, c in COUNT_FIELDS.items() if getattr(crit, f) > 0]
        for field_name, column in asked:
            if column in columns:
                continue
            advice = {"pre": " (it counts connections, not sites: use min_downstream)",
                      "post": " (it counts connections, not sites: use min_upstream)"}.get(column, "")
            raise UnsupportedOperation(
                f"dataset {self.name!r} ({self.backend_name}) has no {column!r} neuron column, so "
                f"{field_name}= cannot be applied{advice}; its neuron columns are {list(columns)}")

    def _neuron_table(self, raw: pd.DataFrame, crit: NeuronCriteria | None = None) -> pd.DataFrame:
        """Validate a backend's neuron table; nullable core columns it lacks are added as ``<NA>``.

        A criterion on such a column (or on a column of the backend's answer that
        the dataset declares it lacks) raises :class:`UnsupportedOperation`.
        """
        if isinstance(raw, pd.DataFrame):
            absent = [c.name for c in schema.NEURONS.columns if c.nullable and c.name not in raw.columns]
            if absent:
                raw = raw.assign(**{c: pd.Series(pd.NA, index=raw.index, dtype="string" if c not in (
                    "pre", "post") else "Int64") for c in absent})
            if crit is not None and self._info.neuron_columns is None:
                self._check_criteria_columns(crit, [c for c in raw.columns if c not in absent])
        neurons = schema.NEURONS.validate(raw)
        for column in neurons.columns:  # native text columns as pandas strings (<NA>, not None), like the core ones
            values = neurons[column]
            if values.dtype == object and values.map(lambda v: isinstance(v, str) or v is None or v is pd.NA).all():
                neurons[column] = values.astype("string")
        return neurons

    def _check_rois(self, rois: Iterable[str]) -> None:
        valid = set(self._info.rois) | set(self._info.primary_rois)
        for roi in rois:
            if roi not in valid:
                raise UnknownROIError(roi, valid, self.name)

    def _roi_list(self, rois: str | Iterable[str] | None) -> tuple[str, ...] | None:
        if rois is None:
            return None
        try:
            items = (rois,) if isinstance(rois, str) else tuple(rois)
        except TypeError:
            items = ()
        if not items or not all(isinstance(r, str) for r in items):
            raise InvalidArgumentError(f"rois must be an ROI name or a non-empty list of names; got {rois!r}")
        valid = set(self._info.primary_rois) | {schema.NOT_PRIMARY}
        for roi in items:
            if roi not in valid:
                raise UnknownROIError(roi, valid, self.name)
        return tuple(dict.fromkeys(items))

    def _unkey(self, x: Any) -> Any:
        """Ids from cross-dataset keys ``"<label>:<id>"`` labelled with this dataset's name; other input unchanged.

        Keys are coconatfly's convention (:func:`connectomix.parse_keys`); here
        the label must name this dataset (the name it was opened by, or its
        release name), so a key of another dataset is refused, never read as
        an id of this one.
        """
        if isinstance(x, str):
            items = x  # parse_keys splits one string of keys at commas and white space
            keyed = ":" in x
        elif isinstance(x, (list, tuple, pd.Series, pd.Index, np.ndarray)) and getattr(x, "ndim", 1) == 1 \
                and len(x) and all(isinstance(v, str) for v in x):  # (a 0-d array has no len())
            items = list(x)
            keyed = any(":" in v for v in items)
        else:
            return x
        if not keyed:
            return x
        from .comparative import parse_keys

        keyed = parse_keys(items, labels=sorted({self.name, self._info.name}))
        return np.concatenate(list(keyed.values()))

    def _resolve_ids(self, x: Any, what: str, materialization: Any, *, check: bool = True) -> np.ndarray | None:
        """Ids for one side of a query; criteria are resolved through fetch_neurons.

        Given ids are checked to exist (:meth:`_raise_missing`; the outcome is
        remembered, so a repeated query asks nothing), unless ``check`` is false
        (the backend checks them in its own query: ``ConnectivityQuery.check_ids``).
        """
        if x is None:
            return None
        crit = to_criteria(self._unkey(x)) if not isinstance(x, NeuronCriteria) else x
        if crit is not x or crit.is_ids_only:  # plain ids give ids-only criteria (no second parse to tell)
            ids = np.asarray(crit.ids, dtype="int64")
            if check:
                self._raise_missing(ids, what, materialization)
            return ids
        neurons, _ = self.fetch_neurons(crit, omit_rois=True, materialization=materialization)
        return neurons["id"].to_numpy(dtype="int64")

    def _raise_missing(self, ids: np.ndarray, what: str, materialization: Any, *, checked: bool = False) -> None:
        """Raise :class:`IdsNotFoundError` for the ``ids`` the dataset does not have (any segment).

        ``checked``: ``ids`` are already known to be missing (e.g. not returned
        for ids-only criteria), so the backend is not asked again. Otherwise
        the backend's answer is remembered under the identity of the data
        (:meth:`_missing_ids`): a repeated query asks nothing, and ids found
        missing raise again without a request.
        """
        if not len(ids):
            return
        missing = ids if checked else self._missing_ids(np.asarray(ids, dtype="int64"), materialization)
        if len(missing):
            shown = ", ".join(str(i) for i in list(missing)[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise IdsNotFoundError(
                f"{what}: {len(missing)} id(s) not found in dataset {self.name!r} "
                f"(version {self.version!r}): {shown}{more}",
                ids=missing,
            )

    def _missing_ids(self, ids: np.ndarray, materialization: Any, *, ask: Any = None) -> np.ndarray | None:
        """``backend.missing_ids(ids, materialization)``, remembered by this Dataset for the same data.

        The outcome -- the missing ids, or none -- is keyed by the data's
        identity (:meth:`_identity`) and the ids, so it is only reused while
        the data is the same; without an identity (live data, cache off) the
        backend is asked every time. ``ask()`` gives the outcome when none is
        remembered instead of the backend's ``missing_ids`` (a query that checked
        the ids itself); it may return ``None``: not known, nothing remembered.
        """
        from .cache import CheckedIds

        if ask is None:
            def ask():
                return self._backend.missing_ids(ids, materialization)
        cache = self.cache
        identity = self._identity(materialization) if cache is not None and cache.usable else None
        if identity is None:
            return ask()
        checked = self.__dict__.get("_checked")
        if checked is None:
            with _caches_lock:
                checked = self.__dict__.setdefault("_checked", CheckedIds())
        key = query_key({"backend": self.backend_name, "version": materialization, "data": identity},
                        "missing_ids", ids)
        missing = checked.get(key)
        if missing is None:
            # an outcome kept on disk by another process is as good: the key holds the data's identity
            records = self._backend.records()
            found = records.get("missing_ids " + key, math.inf) if records is not None else None
            if found is not None:
                missing = np.asarray(found[0], dtype="int64")
            else:
                missing = ask()
                if missing is None:
                    return None
                missing = np.asarray(missing, dtype="int64")
                if records is not None:
                    records.put("missing_ids " + key, missing.tolist())
            checked.put(key, missing)
        return missing


def _all_neurons(side: Any) -> bool:
    """True for a criteria that selects every neuron (``NC()``)."""
    return isinstance(side, NeuronCriteria) and side == NeuronCriteria()


def _criteria_mask(neurons: pd.DataFrame, crit: NeuronCriteria, dataset: str) -> np.ndarray:
    """Rows of a validated neuron table that meet ``crit``'s id, string and count conditions.

    The backend has pushed these down already (where it can); applying them
    again here makes their meaning the same on every backend: exact or full
    regex match, a list is an OR, ``<NA>`` never matches, counts are ``>=``.
    A count threshold on a column that is ``<NA>`` for a candidate row raises
    :class:`UnsupportedOperation` rather than silently dropping the row.
    """
    keep = (neurons["id"] != 0).to_numpy()
    if crit.ids is not None:
        keep &= neurons["id"].isin(crit.ids).to_numpy()
    for field_name, column in STRING_FIELDS.items():
        values = getattr(crit, field_name)
        if values is None or (not len(neurons) and column not in neurons.columns):
            continue
        if column not in neurons.columns:
            raise UnsupportedOperation(f"dataset {dataset!r} returned no {column!r} neuron column, so "
                                       f"{field_name}= cannot be applied; its columns are {list(neurons.columns)}")
        col = neurons[column].astype("string")
        if crit.regex:
            hit = np.zeros(len(col), dtype=bool)
            for pattern in values:
                hit |= col.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
        else:
            hit = col.isin(values).fillna(False).to_numpy(dtype=bool)
        keep &= hit
    for field_name, column in COUNT_FIELDS.items():
        minimum = getattr(crit, field_name)
        if not minimum:
            continue
        counts = neurons[column]
        if counts.isna().to_numpy()[keep].any():
            alternative = {"pre": "min_downstream", "post": "min_upstream"}.get(column)
            raise UnsupportedOperation(
                f"dataset {dataset!r} has no {column!r} count for some neurons ({column} is <NA>), so "
                f"{field_name}={minimum} cannot be applied"
                + (f"; {column} counts synaptic sites, use {alternative} to threshold connections"
                   if alternative else ""))
        keep &= (counts >= minimum).fillna(False).to_numpy(dtype=bool)
    return keep


def _filter_connectivity(df, src, tgt, rois, min_weight, include_autapses) -> pd.DataFrame:
    keep = ((df["pre"] != 0) & (df["post"] != 0)).to_numpy()
    if src is not None:
        keep &= df["pre"].isin(src).to_numpy()
    if tgt is not None:
        keep &= df["post"].isin(tgt).to_numpy()
    if not include_autapses:
        keep &= (df["pre"] != df["post"]).to_numpy()
    if rois is not None:
        keep &= df["roi"].isin(rois).to_numpy()
    df = df[keep]
    if len(df):
        total = df.groupby(["pre", "post"], sort=False)["weight"].transform("sum")
        df = df[(total >= max(min_weight, 1)).to_numpy() & (df["weight"] > 0).to_numpy()]
    return df.reset_index(drop=True)


_INT64_MAX = int(np.iinfo("int64").max)
_ASCII_INT = re.compile(r"[0-9]+")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _non_negative_int(value: Any, name: str) -> int:
    if not _is_int(value) or not 0 <= value <= _INT64_MAX:
        raise InvalidArgumentError(
            f"{name} must be a non-negative integer (a synapse count); got {value!r} (valid: 0 to {_INT64_MAX})")
    return int(value)


def _positive_int(value: Any, name: str) -> int:
    """A positive integer; strings of ASCII digits (from URIs and config files) are read, nothing else is."""
    if isinstance(value, str) and _ASCII_INT.fullmatch(value.strip()):
        value = int(value.strip())
    if not _is_int(value) or not 1 <= value <= _INT64_MAX:
        raise InvalidArgumentError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _optional_batch_size(value: Any) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or not 1 <= value <= _INT64_MAX:
        raise InvalidArgumentError(f"batch_size must be a positive integer or None; got {value!r}")
    return int(value)


def _finite(value: Any) -> bool:
    """True for a real number (not a bool) that is finite as a float (``10**400`` is not)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    try:
        return math.isfinite(float(value))
    except (OverflowError, ValueError):
        return False


def _bool_option(value: Any, name: str) -> bool:
    """A yes/no backend option: a bool, or 'true'/'false'/'1'/'0'/'yes'/'no' from a URI; nothing else."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise InvalidArgumentError(f"{name} must be true or false; got {value!r}")


def _seconds_option(value: Any, name: str) -> float:
    """A positive, finite number of seconds; strings must be ASCII decimals ('nan', '١٠' are refused)."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", value.strip()):
        value = float(value.strip())
    if not (_finite(value) and value > 0):
        raise InvalidArgumentError(f"{name} must be a positive number of seconds; got {value!r}")
    return float(value)


#: Backend options with the same meaning on every backend, read by :func:`open` (None means the default).
_SHARED_OPTIONS = {
    "batch_size": _positive_int,
    "row_limit": _positive_int,
    "threads": _positive_int,
    "timeout": _seconds_option,
    "arrow": _bool_option,
    "filtered": _bool_option,
    "live": _bool_option,
}


def _check_bool(value: Any, name: str) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidArgumentError(f"{name} must be True or False; got {value!r}")


_VERSION_WORDS = ("auto", "latest", "live")


def _check_materialization(value: Any) -> Any:
    """``None``, ``'auto'``/``'latest'``/``'live'`` or a version number (ASCII digits in strings); else raise."""
    if value is None or (isinstance(value, str) and value in _VERSION_WORDS):
        return value
    if isinstance(value, str) and _ASCII_INT.fullmatch(value):
        value = int(value)
    if _is_int(value) and 0 <= value <= _INT64_MAX:
        return int(value)
    raise InvalidArgumentError(
        f"materialization must be None, 'auto', 'latest', 'live' or a version number; got {value!r}")


def _criteria_from_fields(fields: dict[str, Any]) -> NeuronCriteria:
    """``NeuronCriteria(**fields)``; unknown names are refused there, other clients' spellings hinted at."""
    if "ids" in fields:
        raise InvalidArgumentError("ids= is not a keyword criterion: pass the ids (or a NeuronCriteria) as the "
                                   "first argument")
    return NeuronCriteria(**fields)


def _concat(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    parts = [p for p in (a, b) if p is not None]
    return np.unique(np.concatenate(parts)) if parts else None
