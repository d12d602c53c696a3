"""The neuPrint backend: Cypher over neuPrint's HTTP API (hemibrain, MANC, optic lobe, male CNS).

URI: ``neuprint://<host>[:port]/<dataset>[:<tag>]``, e.g.
``neuprint://neuprint.janelia.org/hemibrain:v1.2.1``. Always HTTPS.

Options: ``token`` (else ``$NEUPRINT_APPLICATION_CREDENTIALS``), ``verify``
(``true``/``false`` or a CA bundle path; default true), ``timeout`` (seconds
per request), ``batch_size`` (default ids per query), ``arrow`` (use the Arrow
endpoint when the server has it; default true), ``retry`` (a
:class:`~connectomix.http.RetryPolicy`, or a mapping of its fields, e.g.
``{"max_attempts": 3, "base_delay": 0.1}``), ``identity_ttl`` (seconds an open
Dataset -- or a new one, from the records kept in the result cache -- trusts the
dataset's ``last-mod``/``uuid`` stamps and ``:Meta``, default :data:`DEFAULT_IDENTITY_TTL`;
see :meth:`NeuprintBackend.cache_identity`, and ``_connect``: nothing is sent until a request is
needed), ``mesh_source``
(the precomputed segmentation to read meshes from, instead of the one the server publishes; see
:mod:`.morphology`), ``mesh_lod`` (the level of detail of a multi-resolution mesh source, 0 the finest
and the default; navis' ``fetch_mesh_neuron`` and connecto use 1 on FlyEM datasets; legacy sources have one).

Every answer is checked whole before it is used: Arrow streams must end with
their end-of-stream marker (:func:`connectomix.wire.read_arrow_stream`), JSON
must parse and every row of a ``{"columns", "data"}`` table must have one
value per column, and a body must match its ``Content-Length``. Incomplete
answers are retried like dropped connections (:class:`~connectomix.http.HttpClient`)
on every endpoint used (``/api/dbmeta/datasets``, ``/api/version``,
``/api/custom/custom``, ``/api/custom/arrow``, ``/api/skeletons/skeleton``),
then raise :class:`~connectomix.errors.IncompleteResponseError`.

Dataset settings come from the dataset catalogue (:mod:`connectomix.catalogue`)
when the dataset is a catalogue dataset (matched by its neuPrint name, e.g.
``hemibrain:v1.2.1``, on any server): the coordinate unit, where the side and
the predicted transmitter live, the score's scale. Options override them:
``units`` (``"voxel"`` or ``"nm"``) and ``catalogue`` (the catalogue name to
take the settings from, or ``"none"``).

Coordinates: datasets in voxels (hemibrain, MANC, male CNS, optic lobe) are
multiplied by the dataset's ``:Meta.voxelSize``, axis by axis, to give nm; a
voxel dataset without ``:Meta.voxelSize`` raises :class:`ServerError` (no
guessed 8 nm). Datasets stored in nm (the FlyWire and BANC mirrors,
``flywire-fafb:v783b``, ``banc:v888``) are not multiplied.
:meth:`NeuprintBackend.to_nm` is the one place that converts. Query building
lives in :mod:`.cypher` (pure); this module only executes and converts.

Neuron columns (``fetch_neurons``), from the ``:Neuron`` properties
(neuprint-python 0.6.4 ``neuprint/queries/neuroncriteria.py:165-195`` lists
them): ``type``, ``instance``, ``status``, ``pre``, ``post``, ``upstream``,
``downstream`` as they are; ``side`` from ``somaSide`` normalised with
:data:`SIDE_VALUES` (or from the instance suffix ``_L``/``_R`` where the
catalogue says the dataset has no side property: hemibrain, optic lobe);
``class``, ``superclass`` as they are; ``nt`` from ``predictedNt`` (or the
catalogue's property) normalised with :data:`NT_VALUES`; ``flywire_type``,
``hemibrain_type``, ``manc_type`` from ``flywireType``, ``hemibrainType``,
``mancType``. The dataset's other properties (``:Meta.neuronProperties``)
follow under their own names, the native ``somaSide``/``predictedNt`` among them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import requests

from connectomix import frames, schema
from connectomix.backend import Backend, Capability, ConnectivityQuery, DatasetInfo, ParsedURI, SynapseQuery
from connectomix.cache import check_identity_ttl
from connectomix.config import Secret
from connectomix.criteria import NeuronCriteria
from connectomix import backend as _core_backend
from connectomix.errors import (
    AuthenticationError,
    DatasetNotFoundError,
    IdsNotFoundError,
    IncompleteResponseError,
    InvalidArgumentError,
    InvalidURIError,
    RemoteError,
    ServerError,
    UnsupportedOperation,
    suggest,
)
from connectomix.http import RETRY_STATUSES, HttpClient, RetryPolicy, json_body
from connectomix.parallel import batched, map_batches
from connectomix.wire import read_arrow_stream

from . import cypher, morphology

__all__ = ["NeuprintBackend", "synapse_ids", "query_table"]

TOKEN_ENV = "NEUPRINT_APPLICATION_CREDENTIALS"
#: Ids per query when nothing is known of their sizes (and the most ids one query ever names).
DEFAULT_BATCH = {"connectivity": 200, "synapses": 10, "ids": 10_000}
#: Expected rows one planned query may cover. What bounds a neuPrint query is time, not rows:
#: neuPrintHTTP runs each query under its ``timeout`` setting (seconds; 60 unless configured:
#: connectome-neuprint/neuPrintHTTP config/config.go:18, config/stores.go:15-16; the public server's
#: value is unverified) and has no row cap. The budgets match what neuprint-python sends per query by
#: default, which is the size known to pass on the public servers: ``fetch_adjacencies`` 200 bodies
#: (neuprint/queries/connectivity.py:142), about 200,000 connections at the hemibrain's mean of about
#: 1,000 per traced body (unverified estimate); ``fetch_synapse_connections`` 10,000 neuron pairs
#: (neuprint/queries/synapses.py:458, "to avoid timeouts"), tens of thousands of synapses at a few
#: synapses per pair (unverified). Connectivity is planned from connection counts (``downstream`` of
#: sources, ``upstream`` of targets: an upper bound of the ``ConnectsTo`` rows), synapses from the
#: same counts of the side queried (one row per synaptic connection).
ROWS_PER_QUERY = {"connectivity": 200_000, "synapses": 50_000}
#: Seconds an open Dataset trusts the dataset's ``last-mod``/``uuid`` stamps before asking again (option
#: ``identity_ttl``; 0 asks on every cached query): within it a warm cache hit sends no request.
DEFAULT_IDENTITY_TTL = 300.0

#: somaSide spellings (lowercased) -> connectomix ``side``. MANC: ``LHS``/``RHS``/``Midline``
#: (neuprint-python 0.6.4 neuprint/queries/neuroncriteria.py:434-435); male CNS ``L``/``R``/``M``
#: (schlegelp/connecto connecto/datasets/janelia.py@0bae3a4, unverified against the server);
#: the emulator's and other spellings of the same words. Anything else becomes NA (the native
#: ``somaSide`` column keeps it).
SIDE_VALUES = {"l": "left", "lhs": "left", "left": "left", "r": "right", "rhs": "right", "right": "right",
               "m": "center", "midline": "center", "mid": "center", "center": "center", "centre": "center"}
#: predicted transmitter spellings (lowercased) -> connectomix ``nt`` (MANC/male CNS store full lowercase
#: names, survey quoting Takemura et al.; abbreviations as in FlyWire's ``top_nt``/Codex ``nt_type``).
NT_VALUES = {"acetylcholine": "acetylcholine", "ach": "acetylcholine", "gaba": "gaba",
             "glutamate": "glutamate", "glut": "glutamate", "glu": "glutamate",
             "dopamine": "dopamine", "da": "dopamine", "serotonin": "serotonin", "ser": "serotonin",
             "5ht": "serotonin", "5-ht": "serotonin", "octopamine": "octopamine", "oct": "octopamine",
             "oa": "octopamine", "histamine": "histamine", "his": "histamine", "hist": "histamine"}
#: core column -> neuPrint ``:Neuron`` property (neuroncriteria.py:174, 182-191 of neuprint-python 0.6.4).
PROPERTIES = {"side": "somaSide", "class": "class", "superclass": "superclass", "nt": "predictedNt",
              "flywire_type": "flywireType", "hemibrain_type": "hemibrainType", "manc_type": "mancType"}
#: Columns every neuPrint neuron table has (``side``, ``class``, ``superclass``, ``nt`` are NA where the
#: dataset has no such property); the cross-dataset type columns appear where the dataset has them.
CORE_COLUMNS = ("id", "type", "instance", "status", "side", "class", "superclass", "nt", "pre", "post",
                "upstream", "downstream")
CROSS_TYPES = ("flywire_type", "hemibrain_type", "manc_type", "malecns_type")
_NOT_EXTRA = {"bodyId", "roiInfo", "somaLocation", "location", "type", "instance", "status", "pre", "post",
              "upstream", "downstream", "class", "superclass", "flywireType", "hemibrainType", "mancType"}


def _spellings(mapping: Mapping[str, str], value: str) -> list[str]:
    """Every stored spelling (lower case; compared case-insensitively) of the normalised ``value``."""
    return [k for k, v in mapping.items() if v == value]


def normalise(values: pd.Series, mapping: Mapping[str, str]) -> pd.Series:
    """Map stored values through ``mapping`` (case-insensitive); others become NA."""
    lowered = values.map(lambda v: v.strip().lower() if isinstance(v, str) else None)
    return lowered.map(mapping).astype("string")


def _matches(column: pd.Series, values: Sequence[str], regex: bool) -> np.ndarray:
    """Rows of a normalised string column equal to one of ``values`` (full-match regexes if ``regex``)."""
    text = column.astype(object).where(column.notna(), None)
    if regex:
        patterns = [re.compile(v) for v in values]
        return np.array([t is not None and any(p.fullmatch(t) for p in patterns) for t in text], dtype=bool)
    return text.isin(list(values)).to_numpy(dtype=bool)


_DTYPES = {"string": "string", "int": "Int64", "integer": "Int64", "long": "Int64", "float": "Float64",
           "double": "Float64", "bool": "boolean", "boolean": "boolean"}


def _typed(values: pd.Series, kind: str | None) -> pd.Series:
    """A native property column in the nullable dtype its declared type names (as it came if unknown)."""
    dtype = _DTYPES.get(kind or "")
    if dtype is None:
        return values
    if values.dtype != object or dtype == "string":
        try:  # a typed Arrow column (NaN for nulls), or text: straight to the nullable dtype
            return values.astype(dtype)
        except (TypeError, ValueError):
            pass
    try:
        return values.astype(object).where(values.notna(), None).astype(dtype)
    except (TypeError, ValueError):
        return values  # a value that does not fit the declared type: keep what the server sent


def _first_word(value: Any) -> str | None:
    """``"somaSide (rootSide ...)"`` -> ``"somaSide"``; None for none/absent values."""
    if not isinstance(value, str) or not value.strip():
        return None
    word = value.split()[0]
    return None if word.lower() in ("none", "suffix") or not word.isidentifier() else word


def synapse_ids(coords: np.ndarray) -> np.ndarray:
    """Stable 63-bit ids from integer voxel coordinates ``(n, 6)`` of the pre and post sites.

    neuPrint has no synapse ids; a synaptic connection is identified by its two
    sites, so this hash (splitmix64 over the six coordinates) is the same for
    the same connection in every query of a dataset version.
    """
    h = np.full(len(coords), 0x9E3779B97F4A7C15, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(coords.shape[1]):
            h ^= coords[:, j].astype(np.int64).astype(np.uint64)
            h += np.uint64(0x9E3779B97F4A7C15)
            h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
    return (h >> np.uint64(1)).astype(np.int64)


def query_table(response: requests.Response) -> pd.DataFrame:
    """neuPrint's JSON table (``{"columns": [...], "data": [[...], ...]}``) as a DataFrame, checked whole.

    Raises
    ------
    IncompleteResponseError
        The body is not whole JSON, or a row does not have one value per
        column (transient: :class:`~connectomix.http.HttpClient` retries it).
    ServerError
        The JSON is whole but not a table.
    """
    try:
        payload = orjson.loads(response.content)
    except orjson.JSONDecodeError:  # not whole, or JSON orjson refuses (NaN): the stdlib reader decides
        payload = json_body(response)
    columns = payload.get("columns") if isinstance(payload, dict) else None
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(columns, list) or not isinstance(data, list):
        raise ServerError("neuPrint answered something that is not a query result (no 'columns' and 'data' lists): "
                          f"{str(payload)[:200]}", url=response.url)
    width = len(columns)
    if any(not isinstance(row, list) or len(row) != width for row in data):
        k, row = next((k, r) for k, r in enumerate(data) if not isinstance(r, list) or len(r) != width)
        raise IncompleteResponseError(
            f"incomplete response: row {k} of {len(data)} has {len(row) if isinstance(row, list) else 'no'} "
            f"values for {width} columns", status=response.status_code, url=response.url)
    return pd.DataFrame(data, columns=columns)


def _arrow_table(response: requests.Response) -> pd.DataFrame:
    return read_arrow_stream(response.content, what="neuPrint Arrow answer", url=response.url).to_pandas()


_SIZES = ("pre", "post", "upstream", "downstream")


def plan_batches(ids: np.ndarray, rows: np.ndarray, budget: float, max_ids: int) -> list[np.ndarray]:
    """Consecutive batches of ``ids`` whose expected ``rows`` add up to at most ``budget``.

    An id expected to exceed the budget alone gets a batch of its own; no
    batch has more than ``max_ids`` ids.

    Examples
    --------
    >>> [b.tolist() for b in plan_batches(np.array([1, 2, 3, 4, 5]), np.array([40, 50, 20, 90, 5]), 100, 10)]
    [[1, 2], [3], [4, 5]]
    >>> [b.tolist() for b in plan_batches(np.array([1, 2, 3]), np.array([500, 1, 1]), 100, 2)]
    [[1], [2, 3]]
    """
    # one step per batch, not per id: the batch ends where the running total would pass the budget
    total = np.concatenate([[0.0], np.cumsum(np.asarray(rows, dtype="float64"))])
    batches, start, n = [], 0, len(ids)
    while start < n:
        end = int(np.searchsorted(total, total[start] + budget, side="right")) - 1
        end = min(max(end, start + 1), start + max_ids, n)
        batches.append(ids[start:end])
        start = end
    return batches


class SizeMemo:
    """Synapse counts (``pre, post, upstream, downstream``) of bodies this backend has seen; thread-safe.

    Only used to size batches (a wrong or stale count changes how many
    queries are sent, never which rows come back). ``NaN``: not known.
    """

    def __init__(self, size: int = 1_000_000):
        self._size = size
        self._lock = threading.Lock()
        self._known: dict[int, tuple[float, float, float, float]] = {}

    def remember(self, ids: np.ndarray, counts: Mapping[str, np.ndarray]) -> None:
        rows = zip(ids.tolist(), *(np.asarray(counts[c], dtype="float64").tolist() for c in _SIZES))
        with self._lock:
            if len(self._known) + len(ids) > self._size:
                self._known.clear()
            self._known.update((i, tuple(v)) for i, *v in rows)

    def get(self, ids: np.ndarray, count: str) -> np.ndarray:
        """Expected rows per id for ``count`` (``upstream`` falls back to ``post``: one per PSD); NaN if unknown."""
        nan = (np.nan,) * len(_SIZES)
        with self._lock:
            known = [self._known.get(i, nan) for i in ids.tolist()]
        table = np.array(known, dtype="float64").reshape(len(known), len(_SIZES))
        out = table[:, _SIZES.index(count)]
        if count == "upstream":
            out = np.where(np.isnan(out), table[:, _SIZES.index("post")], out)
        return out


class RoiInfoMemo:
    """``bodyId, pre, post, roiInfo`` of the last neuron answer, for :meth:`NeuprintBackend.fetch_roi_counts`.

    A neuron lookup's per-ROI counts are asked by the core right after the lookup, and they came in
    its answer (the neuron query returns ``roiInfo``, ``pre``, ``post``): asking them again would cost a
    round trip, and could see other data than the lookup. The rows are used only for ids they all
    hold and within ``ttl`` seconds of the answer (the backend's ``identity_ttl``, which is how long
    an open Dataset trusts the dataset's stamps; 0: never), and replaced by every new neuron answer.
    Thread-safe (one tuple replaced whole).
    """

    def __init__(self):
        self._last: tuple[float, np.ndarray, pd.DataFrame] | None = None

    def keep(self, df: pd.DataFrame) -> None:
        rows = df[["bodyId", "pre", "post", "roiInfo"]].reset_index(drop=True)
        self._last = (time.monotonic(), np.unique(rows["bodyId"].to_numpy(dtype="int64")), rows)

    def get(self, ids: np.ndarray, ttl: float) -> pd.DataFrame | None:
        """The rows of ``ids`` (in the answer's order), or None if the last answer is older or lacks one."""
        last = self._last
        if last is None or ttl <= 0 or time.monotonic() - last[0] > ttl:
            return None
        ids = np.asarray(ids, dtype="int64")
        if not np.isin(ids, last[1]).all():
            return None
        rows = last[2]
        return rows[rows["bodyId"].isin(ids).to_numpy()].reset_index(drop=True)


def _retry_policy(value: Any, timeout: float) -> RetryPolicy:
    """A :class:`RetryPolicy` from ``value`` (a policy, a mapping of its fields, or None) and the request timeout."""
    if value is None:
        return RetryPolicy(request_timeout=timeout)
    if isinstance(value, RetryPolicy):
        return dataclasses.replace(value, request_timeout=timeout)
    fields = {f.name for f in dataclasses.fields(RetryPolicy)} - {"request_timeout"}
    if not isinstance(value, Mapping) or set(value) - fields:
        raise InvalidArgumentError(f"retry must be a RetryPolicy or a mapping of {sorted(fields)}; got {value!r} "
                                   "(the request timeout is the 'timeout' option)")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        minimum = 1 if key == "max_attempts" else 0
        try:
            number = float("nan") if isinstance(raw, bool) else float(raw)
        except (TypeError, ValueError):
            number = float("nan")
        if not minimum <= number < float("inf") or (key == "max_attempts" and not number.is_integer()):
            kind = "a whole number" if key == "max_attempts" else "a finite number"
            raise InvalidArgumentError(f"retry option {key!r} must be {kind} >= {minimum}; got {raw!r}")
        kwargs[key] = int(number) if key == "max_attempts" else number
    return RetryPolicy(request_timeout=timeout, **kwargs)


def parse_json_column(values: pd.Series) -> list[dict]:
    """Decode a column of JSON objects (neuPrint's ``roiInfo``): one ``json.loads`` for the whole column.

    Missing values become ``{}``; values already decoded (dicts, from Arrow) pass through.
    """
    items = values.tolist()
    if all(isinstance(v, str) for v in items):
        return json.loads("[" + ",".join(items) + "]") if items else []
    return [json.loads(v) if isinstance(v, str) else (v if isinstance(v, dict) else {}) for v in items]


def _primary_counts(roi_info: pd.Series, keys: Sequence[str],
                    primary: set[str]) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None:
    """``(row, roi, {key: counts})`` for every primary ROI a row's ``roiInfo`` JSON names, via Arrow's JSON reader.

    ``None`` when the column is not all one-line JSON objects of integer counts (the caller then
    decodes it with ``json.loads``). Within a row the ROIs come in name order.
    """
    import pyarrow.compute as pc
    import pyarrow.json as pa_json

    items = roi_info.tolist()
    if not items or not all(type(v) is str for v in items):
        return None
    data = "\n".join(items).encode()
    if data.count(b"\n") != len(items) - 1:  # a value spread over lines: not one row per value
        return None
    try:
        table = pa_json.read_json(pa.BufferReader(data), read_options=pa_json.ReadOptions(
            block_size=max(len(data) + 1, 1 << 20)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(items):
        return None
    rows, names, values = [], [], {key: [] for key in keys}
    for roi in sorted(primary & set(table.column_names)):
        column = table.column(roi).combine_chunks()
        if not pa.types.is_struct(column.type):
            return None
        present = column.is_valid().to_numpy(zero_copy_only=False)
        index = np.flatnonzero(present)
        rows.append(index)
        names.append(np.full(len(index), roi, dtype=object))
        for key in keys:
            if column.type.get_field_index(key) < 0:
                values[key].append(np.zeros(len(index), dtype="int64"))
                continue
            field = pc.struct_field(column, [column.type.get_field_index(key)])
            if not (pa.types.is_integer(field.type) or pa.types.is_null(field.type)):
                return None
            values[key].append(field.fill_null(0).to_numpy(zero_copy_only=False).astype("int64")[index])
    if not rows:
        empty = np.zeros(0, dtype="int64")
        return empty, np.zeros(0, dtype=object), {key: empty for key in keys}
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")  # by row; within a row, ROIs in name order
    return (row[order], np.concatenate(names)[order],
            {key: np.concatenate(v)[order] for key, v in values.items()})


def split_roi_info(roi_info: pd.Series, fields: Mapping[str, tuple[str, pd.Series]],
                   primary: set[str]) -> pd.DataFrame:
    """Spread neuPrint ``roiInfo`` maps into one row per primary ROI plus a :data:`~connectomix.schema.NOT_PRIMARY` row.

    ``fields`` maps each output column to ``(key in the roiInfo counts, total per input row)``; the
    NotPrimary row carries ``total - sum over primary ROIs`` (clipped at 0), which is how the schema
    accounts for synapses outside every primary ROI. Rows whose counts are all zero are dropped. The
    result has a ``row`` column (position in the input), ``roi`` and the output columns.

    JSON text is decoded by Arrow's JSON reader, column by column (:func:`_primary_counts`); anything
    it cannot take (decoded maps, missing values, non-integer counts) goes through ``json.loads``.
    """
    keys = [key for key, _ in fields.values()]
    hits = _primary_counts(roi_info, keys, primary)
    if hits is None:
        infos = parse_json_column(roi_info)
        found = [(i, roi, counts) for i, info in enumerate(infos) for roi, counts in info.items() if roi in primary]
        hits = (np.fromiter((h[0] for h in found), dtype="int64", count=len(found)),
                np.array([h[1] for h in found], dtype=object),
                {key: np.fromiter((int(h[2].get(key, 0)) for h in found), dtype="int64", count=len(found))
                 for key in keys})
    row, rois, counts = hits
    n = len(roi_info)
    # the primary ROIs' rows, then one NotPrimary row per input row; column-wise in numpy
    rows = np.concatenate([np.asarray(row, dtype="int64"), np.arange(n, dtype="int64")])
    names = np.concatenate([np.asarray(rois, dtype=object), np.full(n, schema.NOT_PRIMARY, dtype=object)])
    columns = {}
    for column, (key, totals) in fields.items():
        values = np.asarray(counts[key], dtype="int64")
        in_primary = np.bincount(row, weights=values, minlength=n).astype("int64")
        total = pd.to_numeric(totals).fillna(0).to_numpy(dtype="int64")
        columns[column] = np.concatenate([values, np.maximum(total - in_primary, 0)])
    nonzero = np.logical_or.reduce([v > 0 for v in columns.values()])
    order = np.flatnonzero(nonzero)[np.argsort(rows[nonzero], kind="stable")]  # by input row, stable
    return pd.DataFrame({"row": rows[order], "roi": names[order], **{c: v[order] for c, v in columns.items()}})


def _stamps(entry: Any) -> dict[str, Any]:
    """``last-mod`` and ``uuid`` of a dataset's entry in ``/api/dbmeta/datasets`` (``None`` where absent)."""
    entry = entry if isinstance(entry, dict) else {}
    return {"last-mod": entry.get("last-mod"), "uuid": entry.get("uuid")}


def _parse_bool_or_path(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    if os.path.isfile(text):
        return text
    raise InvalidArgumentError(f"verify must be true, false or the path of a CA bundle file; got {value!r}")


def _token_from_env() -> Secret | None:
    raw = os.environ.get(TOKEN_ENV)
    if not raw:
        return None
    if ":" in raw:  # neuprint-python accepts the JSON document the web page offers
        try:
            raw = json.loads(raw)["token"]
        except (ValueError, KeyError, TypeError):
            raise AuthenticationError(f"${TOKEN_ENV} contains ':' but is not JSON with a 'token' key") from None
    return Secret(raw.replace('"', ""))


class NeuprintBackend(Backend):
    """neuPrint servers, through their HTTP API (``/api/custom/custom``).

    Examples
    --------
    >>> import connectomix  # doctest: +SKIP
    >>> ds = connectomix.open("neuprint://neuprint.janelia.org/hemibrain:v1.2.1")  # doctest: +SKIP
    """

    name = "neuprint"
    schemes = ("neuprint",)
    description = "neuPrint servers (hemibrain, MANC, optic lobe, male CNS) via Cypher over HTTPS"
    capabilities = frozenset(
        {Capability.SYNAPSES, Capability.SYNAPSE_SCORES, Capability.ROIS, Capability.SKELETONS,
         Capability.NEURON_SIDES, Capability.MESHES}
    )
    OPTIONS = ("token", "verify", "timeout", "batch_size", "arrow", "retry", "units", "catalogue", "identity_ttl",
               "mesh_source", "mesh_lod")

    def __init__(self, server: str, dataset: str, *, token: Secret | str | None = None,
                 verify: bool | str = True, timeout: float = 60.0, batch_size: int | None = None,
                 arrow: bool = True, retry: RetryPolicy | Mapping[str, Any] | None = None,
                 units: str | None = None, catalogue: str | None = None,
                 identity_ttl: float = DEFAULT_IDENTITY_TTL, mesh_source: str | None = None,
                 mesh_lod: int | str | None = None):
        token = Secret(token) if token is not None and not isinstance(token, Secret) else token
        token = token or _token_from_env()
        host = server.split("/")[0]
        if not token:
            raise AuthenticationError(
                f"no neuPrint token: pass token=..., set ${TOKEN_ENV}, or add token to the dataset's config "
                f"entry. Get your token from https://{host}/account (log in, then 'Auth Token')."
            )
        self.server = server
        self.dataset = dataset
        self.batch_size = batch_size
        self.identity_ttl = check_identity_ttl(identity_ttl)
        self._sizes = SizeMemo()
        self._roi_rows = RoiInfoMemo()
        self._timeout = float(timeout)
        self._mesh_source = str(mesh_source) if mesh_source else None  # None: found on first get_meshes
        self._mesh_lod = morphology.check_lod(mesh_lod)
        self._mesh_lock = threading.Lock()
        self._arrow_wanted = bool(arrow)
        self._options = {"units": units, "catalogue": catalogue}
        self._connection: dict[str, Any] | None = None  # dataset name, Arrow endpoint, :Meta (see _connect)
        self._live = False  # whether _connection was asked of the server by this backend
        self._connect_lock = threading.RLock()
        self.http = HttpClient(
            f"https://{server}", token=token, verify=verify, service="neuPrint",
            auth_help=f"Get a new token from https://{host}/account and set ${TOKEN_ENV}.",
            retry=_retry_policy(retry, float(timeout)),
        )

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: ParsedURI, options: Mapping[str, Any]) -> NeuprintBackend:
        cls.check_options(options)
        server, _, dataset = uri.location.partition("/")
        if not server or not dataset or "/" in dataset:
            raise InvalidURIError(
                f"{uri.raw!r}: expected neuprint://<host>[:port]/<dataset>[:<tag>], "
                "e.g. neuprint://neuprint.janelia.org/hemibrain:v1.2.1"
            )
        kwargs: dict[str, Any] = {}
        for key in ("token", "retry", "units", "catalogue", "identity_ttl", "mesh_source", "mesh_lod"):
            if key in options:
                kwargs[key] = options[key]
        if "verify" in options:
            kwargs["verify"] = _parse_bool_or_path(options["verify"])
        if "arrow" in options:
            kwargs["arrow"] = str(options["arrow"]).lower() not in ("false", "0", "no")
        for key in ("timeout", "batch_size"):
            if key in options:
                try:
                    kwargs[key] = (float if key == "timeout" else int)(options[key])
                except (TypeError, ValueError):
                    raise InvalidArgumentError(f"{key} must be a number; got {options[key]!r}") from None
        return cls(server, dataset, **kwargs)

    def close(self) -> None:
        self.http.close()

    def __repr__(self) -> str:
        return f"NeuprintBackend(server={self.server!r}, dataset={self.dataset!r})"

    # -- connecting ------------------------------------------------------------------------

    def identity_scope(self) -> dict[str, Any]:
        """What this backend's cache identities depend on besides the server's answers (no token).

        :class:`~connectomix.Dataset` keys the records it keeps in the result cache with it
        (:class:`~connectomix.cache.DiskRecords`), and the backend keeps what it learns on connecting
        there (:meth:`_connect`).
        """
        return {"server": self.server, "dataset": self.dataset, "arrow": self._arrow_wanted}

    def _connect(self, *, live: bool = False) -> dict[str, Any]:
        """The dataset's name as the server spells it, whether it has the Arrow endpoint, its ``:Meta``.

        Asked of the server (``/api/dbmeta/datasets``, ``/api/version``, the ``:Meta`` query) the first
        time they are needed, and kept in the result cache (:class:`~connectomix.cache.DiskRecords`):
        a new backend takes them from there while they are younger than :attr:`identity_ttl`, so opening
        a dataset and answering from a warm cache sends nothing. ``live``: asked of the server by this
        backend (before the first request that needs them; the records only stand in while nothing is
        sent). Within ``identity_ttl`` a new Dataset may therefore show the metadata the server had when
        the records were written (the same trade as the cache's identities; ``identity_ttl=0`` asks at once).
        """
        with self._connect_lock:
            if self._connection is not None and (self._live or not live):
                return self._connection
            records = self.records()
            if not live and records is not None:
                found = records.get("connection", self.identity_ttl)
                if found is not None and isinstance(found[0], dict) and set(found[0]) == {"name", "arrow", "meta",
                                                                                          "stamps"}:
                    self._adopt(found[0])
                    return self._connection
            try:
                name, stamps = self._check_dataset()
                arrow = self._arrow_wanted and self._arrow_supported()
                connection = {"name": name, "arrow": arrow, "meta": self._fetch_meta(name), "stamps": stamps}
                self._adopt(connection)
            except BaseException:
                if self._connection is None:
                    self.http.close()
                raise
            self._live = True
            if records is not None:
                records.put("connection", connection)
            return self._connection

    def _adopt(self, connection: dict[str, Any]) -> None:
        """Take ``connection`` (see :meth:`_connect`) with the catalogue entry and units it implies."""
        before = self._connection
        self._connection = connection
        try:
            self._entry_value = self._catalogue_entry(self._options["catalogue"])
            self._units_value = self._units(self._options["units"])
        except BaseException:
            self._connection = before
            raise

    _dataset_name = property(lambda self: self._connect()["name"], doc="The dataset's name as the server spells it.")
    _meta = property(lambda self: self._connect()["meta"], doc="The dataset's ``:Meta`` node.")
    _entry = property(lambda self: (self._connect(), self._entry_value)[1], doc="The catalogue entry (or None).")
    units = property(lambda self: (self._connect(), self._units_value)[1], doc='``"voxel"`` or ``"nm"``.')

    @property
    def use_arrow(self) -> bool:
        """Whether queries go to ``/api/custom/arrow`` (the server has it and the ``arrow`` option allows it)."""
        return self._connect()["arrow"]

    # -- transport ------------------------------------------------------------------------

    def run(self, query: str, *, arrow: bool = True) -> pd.DataFrame:
        """Execute Cypher on the dataset; return the result as a DataFrame.

        Uses ``/api/custom/arrow`` (an Arrow IPC stream: less parsing, fewer bytes) when the server
        offers it (neuPrintHTTP >= 1.7.3) and ``arrow`` is true. Queries returning maps or lists must
        pass ``arrow=False``: neuPrintHTTP renders those as Go text in Arrow, but as JSON in
        ``/api/custom/custom``. So must queries whose columns can hold a null before a number or a
        boolean (node properties): neuPrintHTTP types each Arrow column by its first row and appends
        every value that does not fit as null (connectome-neuprint/neuPrintHTTP api/custom/arrow.go,
        ``convertToArrow``, v1.9.2), so a null first value would silently empty the column.
        """
        connection = self._connect(live=True)
        body = {"cypher": query, "dataset": connection["name"]}
        if arrow and connection["arrow"]:
            try:
                return self.http.request("POST", "/api/custom/arrow", json_body=body, query_text=query,
                                         decode=_arrow_table)
            except ServerError as exc:
                if exc.status != 500:
                    raise
                # neuPrintHTTP's arrow endpoint answers 500 for an empty result; JSON says so properly
        return self.http.request("POST", "/api/custom/custom", json_body=body, query_text=query, decode=query_table)

    def _arrow_supported(self) -> bool:
        """Whether the server has ``/api/custom/arrow`` (neuPrintHTTP >= 1.7.3).

        A server without ``/api/version`` (an HTTP error that is not transient)
        has no Arrow endpoint; a transient failure that outlasts the retries raises.
        """
        try:
            answer = self.http.request("GET", "/api/version", decode=json_body)
        except RemoteError as exc:
            if isinstance(exc, IncompleteResponseError) or exc.status is None or exc.status in RETRY_STATUSES:
                raise
            return False
        version = answer.get("Version", "0") if isinstance(answer, dict) else "0"
        try:
            parts = tuple(int(p) for p in str(version).split(".")[:3])
        except ValueError:
            return False
        return parts >= (1, 7, 3)

    def _check_dataset(self) -> tuple[str, dict[str, Any]]:
        """The dataset's name as the server spells it, and its ``last-mod``/``uuid`` stamps (see :meth:`cache_identity`)."""
        available = self.http.request("GET", "/api/dbmeta/datasets", decode=json_body)
        if not isinstance(available, (dict, list)) or not all(isinstance(name, str) for name in available):
            raise ServerError(f"neuPrint's dataset list is not a list of names: {str(available)[:200]}")
        by_lower = {name.lower(): name for name in available}
        if self.dataset.lower() not in by_lower:
            raise DatasetNotFoundError(
                f"neuPrint server {self.server!r} has no dataset {self.dataset!r}; {suggest(self.dataset, available)}"
            )
        name = by_lower[self.dataset.lower()]
        entry = available.get(name) if isinstance(available, dict) else None
        return name, _stamps(entry)

    def _fetch_meta(self, name: str) -> dict[str, Any]:
        body = {"cypher": cypher.meta_query(), "dataset": name}  # lists (primaryRois, voxelSize): JSON, not Arrow
        rows = self.http.request("POST", "/api/custom/custom", json_body=body, query_text=body["cypher"],
                                 decode=query_table)
        if rows.empty:
            raise ServerError(f"neuPrint dataset {self.dataset!r} has no :Meta node")
        meta = rows.iloc[0].to_dict()
        roi_info = meta.get("roiInfo")
        meta["roiInfo"] = json.loads(roi_info) if isinstance(roi_info, str) else (roi_info or {})
        return meta

    # -- metadata ---------------------------------------------------------------------------

    def _catalogue_entry(self, name: str | None):
        """The catalogue entry of this dataset: ``name`` if given (``"none"``: no entry), else by dataset tag."""
        from connectomix import catalogue

        if name is not None and str(name).lower() == "none":
            return None
        if name is not None:
            entry = catalogue.get(str(name))  # DatasetNotFoundError names the close matches
            if entry.backend != "neuprint":
                raise InvalidArgumentError(f"catalogue={name!r} is a {entry.backend} dataset, not a neuPrint one")
            return entry
        for entry in catalogue.load().datasets.values():
            if entry.backend == "neuprint" and str(entry.dataset).lower() == self._dataset_name.lower():
                return entry
        return None

    def _units(self, option: str | None) -> str:
        """``"voxel"`` or ``"nm"``: the ``units`` option, else the catalogue's, else voxels (neuPrint's usual)."""
        value = option if option is not None else (self._entry.units if self._entry is not None else "voxel")
        if value not in ("voxel", "nm"):
            where = "the units option" if option is not None else f"the catalogue entry {self._entry.name!r}"
            raise InvalidArgumentError(f"{where} gives units {value!r}; valid: 'voxel', 'nm'")
        return value

    @property
    def voxel_size(self) -> np.ndarray:
        """nm per voxel along x, y, z: the dataset's ``:Meta.voxelSize``.

        Raises
        ------
        ServerError
            The dataset has no usable ``:Meta.voxelSize`` (nothing is guessed).
        """
        size = self._meta.get("voxelSize")
        try:
            out = np.asarray(size, dtype="float64")
        except (TypeError, ValueError):
            out = np.zeros(0)
        if out.shape != (3,) or not np.all(np.isfinite(out)) or not np.all(out > 0):
            raise ServerError(f"neuPrint dataset {self._dataset_name!r} has no usable :Meta.voxelSize ({size!r}); "
                              "expected three positive numbers (nm per voxel along x, y, z). If its positions "
                              "are stored in nm, open it with units='nm'")
        return out

    def to_nm(self, positions: np.ndarray) -> np.ndarray:
        """Server coordinates -> nm, axis by axis: the backend's one unit conversion.

        ``positions`` has shape ``(n, 3k)``, columns ``x, y, z`` repeated ``k``
        times (e.g. pre and post sites). On a voxel dataset column ``j`` is
        multiplied by the voxel size of axis ``j % 3``; on an nm dataset
        (:attr:`units` ``"nm"``) the values are returned as they are.
        """
        positions = np.asarray(positions, dtype="float64")
        if self.units == "nm":
            return positions
        return positions * np.tile(self.voxel_size, positions.shape[1] // 3)

    # -- scores ------------------------------------------------------------------------------

    def recommended_min_score(self) -> float | None:
        """neuprint-python's default confidence filter as a connectomix ``>=`` threshold (None: no filter).

        neuprint-python 0.6.4 filters ``confidence > :Meta.postHighAccuracyThreshold`` on both the pre-
        and the postsynaptic site (``neuprint/queries/synapsecriteria.py:67-68, 97-98``;
        ``neuprint/queries/synapses.py:763-770``), "the same synapses that were counted in each
        neuron-neuron weight" (``synapsecriteria.py:34-38``), and nothing when the threshold is 0 or
        absent. That claim is neuprint-python's, not the datasets': FlyEM's builders count ``weight``
        differently (catalogue ``connectivity.weight_rule``: hemibrain every connection, MANC and the
        male CNS a PSD confidence ``>=`` the threshold with T-bars unfiltered), so the synapses this
        filter keeps can be fewer than a pair's ``weight``, never more. On floats ``> t`` is ``>= nextafter(t, inf)``. The server's ``:Meta`` value wins over the
        catalogue's (which is only read when the server does not say).
        """
        value = self._meta.get("postHighAccuracyThreshold")
        if value is None and self._entry is not None:
            value = self._entry.value("synapses.recommended_threshold_value")
        try:
            t = float(value)
        except (TypeError, ValueError):
            return None
        if not np.isfinite(t) or t <= 0:
            return None
        return float(np.nextafter(t, np.inf))

    def score_info(self) -> dict[str, Any]:
        """The score's column, scale, recommended ``>=`` threshold, operator and source, as a dict."""
        scale = self._entry.score_scale if self._entry is not None else None
        native = self._meta.get("postHighAccuracyThreshold")
        return {
            "column": "confidence",
            "scale": scale or "0.0-1.0 per synapse (pre and post sites separately)",
            "recommended": self.recommended_min_score(),
            "op": ">",
            "source": (f"confidence > :Meta.postHighAccuracyThreshold ({native!r}) as neuprint-python 0.6.4 "
                       "filters by default (neuprint/queries/synapsecriteria.py:67-68, 97-98), on both sites "
                       "(synapses.py:763-770); written here as >= the next larger float; none when 0 or absent"),
        }

    def info(self) -> DatasetInfo:
        m = self._meta
        primary = tuple(sorted(m.get("primaryRois") or ()))
        try:
            voxel = tuple(float(v) for v in self.voxel_size)
        except ServerError:
            voxel = None
        score = self.score_info()
        kwargs: dict[str, Any] = {}
        fields = {f.name for f in dataclasses.fields(DatasetInfo)}
        score_class = getattr(_core_backend, "ScoreInfo", None)
        if score_class is not None and "score" in fields:
            kwargs["score"] = score_class(**score)
        if "neuron_columns" in fields:
            mapping, side_from_instance, extras = self.neuron_columns()
            present = {"side"} if side_from_instance else set()
            present |= set(mapping)
            core = [c for c in CORE_COLUMNS if c not in ("side", "class", "superclass", "nt") or c in present]
            kwargs["neuron_columns"] = tuple(dict.fromkeys(
                [*core, *[c for c in CROSS_TYPES if c in mapping],
                 *[p for p in (mapping.get("side"), mapping.get("nt")) if p], *extras]))
        return DatasetInfo(
            name=self._dataset_name,
            version=self._dataset_name,
            rois=tuple(sorted(set(m["roiInfo"]) | set(primary))),
            primary_rois=primary,
            voxel_size_nm=voxel,
            description=f"neuPrint dataset {self._dataset_name} on {self.server}",
            extra={"server": self.server, "uuid": m.get("uuid"), "lastDatabaseEdit": m.get("lastDatabaseEdit"),
                   "units": self.units, "catalogue": self._entry.name if self._entry is not None else None,
                   "score": score},
            **kwargs,
        )

    def cache_identity(self, version: Any) -> Mapping[str, Any] | None:
        """The dataset with the stamps the server reports for it *now*: ``last-mod`` and ``uuid``.

        neuPrint has no immutable versions: live-curated datasets (male CNS)
        change under one tag, and a re-deployed server serves other data at the
        same address. The stamps (``:Meta.lastDatabaseEdit`` and ``:Meta.uuid``,
        see neuPrintHTTP's storage/neuprintneo4j/neuprintneo4j.go) come from
        ``GET /api/dbmeta/datasets``, one small request. What connectomix takes
        as "immutable" here: the data under these stamps, trusted by an open
        Dataset for :attr:`identity_ttl` seconds (option ``identity_ttl``,
        default :data:`DEFAULT_IDENTITY_TTL`) before the stamps are asked again.
        Within that time repeated queries are answered from the cache with no
        request at all; a server re-deployed with other data is noticed within
        ``identity_ttl`` (at once with ``identity_ttl=0``, which asks on every
        cached query). A server that reports neither stamp is not cached.
        """
        listing = self.http.request("GET", "/api/dbmeta/datasets", decode=json_body)  # whole JSON, or retried
        entry = listing.get(self._dataset_name) if isinstance(listing, dict) else None
        if not isinstance(entry, dict):
            return None  # the dataset's stamps are unknown: do not cache (the query itself reports a problem)
        stamps = _stamps(entry)
        if not any(stamps.values()):
            return None
        connection, records = self._connection, self.records()
        if connection is not None and records is not None and connection.get("stamps") == stamps:
            # the data is as it was when the metadata was asked: the record of it is good for identity_ttl more
            records.put("connection", connection)
        return {"server": self.server, "dataset": self._dataset_name, **stamps}

    # -- neurons ---------------------------------------------------------------------------------

    def _neuron_properties_meta(self) -> dict | list | None:
        """``:Meta.neuronProperties`` decoded (servers send a JSON string or a map), or None if unreadable."""
        raw = self._meta.get("neuronProperties")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                return None
        return raw if isinstance(raw, (dict, list)) else None

    def neuron_properties(self) -> set[str] | None:
        """The dataset's ``:Meta.neuronProperties`` names, or None if the server does not list them."""
        raw = self._neuron_properties_meta()
        return set(raw) if raw else None

    def _property_types(self) -> dict[str, str]:
        """``{property: declared type}`` from ``:Meta.neuronProperties`` (lower case; empty if untyped)."""
        raw = self._neuron_properties_meta()
        return {str(k): str(v).lower() for k, v in raw.items()} if isinstance(raw, dict) else {}

    def _scalar_properties(self) -> set[str] | None:
        """Properties ``:Meta.neuronProperties`` types as scalars (points and lists are left out: over
        Arrow neuPrintHTTP renders them as Go text); None when it gives no types."""
        raw = self._neuron_properties_meta()
        if not isinstance(raw, dict):
            return None
        scalar = {"string", "int", "integer", "long", "float", "double", "bool", "boolean"}
        return {name for name, kind in raw.items() if str(kind).lower() in scalar}

    def neuron_columns(self) -> tuple[dict[str, str], bool, list[str]]:
        """``({core column: property}, side from the instance suffix?, [native extra properties])``.

        The extras are the other scalar properties of ``:Meta.neuronProperties`` (not ROI flags, not
        ``roiInfo``, not points such as ``somaLocation``).

        Catalogue entries say where the side and the transmitter live (``annotations.side``,
        ``annotations.nt``); a dataset listing ``:Meta.neuronProperties`` has a column only where it
        lists the property (without the list, every mapped property is asked for: absent ones are null).
        """
        mapping = dict(PROPERTIES)
        known = self.neuron_properties()
        side_from_instance = False
        if self._entry is not None:
            for column in ("side", "class", "superclass", "nt"):
                text = self._entry.value(f"annotations.{column}")
                if column == "side" and isinstance(text, str) and "suffix of instance" in text:
                    side_from_instance = "somaSide" not in (known or ())
                    if side_from_instance:
                        mapping.pop("side")
                elif _first_word(text):
                    mapping[column] = _first_word(text)
                elif text is not None and known is None:  # the catalogue says none; the server lists nothing
                    mapping.pop(column)
            listed = self._entry.value("annotations.cross_types")
            if isinstance(listed, list) and known is None:  # the catalogue's cross-dataset type properties
                mapping = {c: p for c, p in mapping.items() if c not in CROSS_TYPES or p in listed}
        if known is not None:  # the server's list of properties decides which exist
            mapping = {column: prop for column, prop in mapping.items() if prop in known}
        rois = set(self._meta.get("roiInfo") or ()) | set(self._meta.get("primaryRois") or ())
        scalar = self._scalar_properties()
        extras = sorted(p for p in (known or ()) if p not in _NOT_EXTRA and p not in rois
                        and not p.startswith("__") and not p.endswith("Location")
                        and (scalar is None or p in scalar))
        return mapping, side_from_instance, extras

    def _check_criteria_columns(self, criteria: NeuronCriteria, available: set[str]) -> None:
        from .cypher import STRING_CRITERIA

        for field, column in STRING_CRITERIA.items():
            if getattr(criteria, field, None) is not None and column not in available:
                raise UnsupportedOperation(
                    f"neuPrint dataset {self._dataset_name!r} has no {column!r} column "
                    f"({field}= cannot be applied); its neuron columns are {sorted(available)}")

    def fetch_neurons(self, criteria: NeuronCriteria, materialization: Any = None) -> pd.DataFrame:
        mapping, side_from_instance, extras = self.neuron_columns()
        available = {"type", "instance", "status", *mapping} | ({"side"} if side_from_instance else set())
        self._check_criteria_columns(criteria, available)
        native = {}
        for column, table in (("side", SIDE_VALUES), ("nt", NT_VALUES)):
            values = getattr(criteria, "class_" if column == "class" else column, None)
            if values and column in mapping:
                native[column] = [form for v in values for form in _spellings(table, v.lower())]

        def fetch(c: NeuronCriteria) -> pd.DataFrame:  # JSON: property columns can be null (see run)
            return self.run(cypher.neurons_query(c, properties=mapping, native=native, extras=extras), arrow=False)

        if criteria.ids is not None and len(criteria.ids) > DEFAULT_BATCH["ids"]:
            parts = map_batches(fetch, [criteria.with_ids(b) for b in batched(np.asarray(criteria.ids),
                                                                               DEFAULT_BATCH["ids"])], max_workers=4)
            df = pd.concat(parts, ignore_index=True)
        else:
            df = fetch(criteria)
        self._sizes.remember(df["bodyId"].to_numpy(dtype="int64"),  # to plan later queries of these neurons
                             {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64") for c in _SIZES})
        self._roi_rows.keep(df)  # the per-ROI counts of these neurons came in the same answer (fetch_roi_counts)
        if criteria.input_rois or criteria.output_rois:
            info = df["roiInfo"].map(lambda s: json.loads(s) if isinstance(s, str) else {})
            keep = np.ones(len(df), dtype=bool)
            for roi in criteria.input_rois or ():
                keep &= info.map(lambda d, r=roi: d.get(r, {}).get("post", 0) >= criteria.min_roi_inputs).to_numpy(bool)
            for roi in criteria.output_rois or ():
                keep &= info.map(lambda d, r=roi: d.get(r, {}).get("pre", 0) >= criteria.min_roi_outputs).to_numpy(bool)
            df = df[keep]
        df = df.reset_index(drop=True)
        missing = pd.Series(pd.NA, index=df.index, dtype="string")
        cols: dict[str, Any] = {"id": df["bodyId"].to_numpy(dtype="int64")}  # built column-wise, one frame at the end
        for column in ("type", "instance", "status"):
            cols[column] = df[column].astype("string")
        if side_from_instance:  # hemibrain, optic lobe: 'DA1_lPN_R' -> right
            cols["side"] = normalise(df["instance"].str.extract(r"_([LR])$", expand=False), SIDE_VALUES)
        else:
            cols["side"] = normalise(df[mapping["side"]], SIDE_VALUES) if "side" in mapping else missing
        for column in ("class", "superclass"):
            cols[column] = df[mapping[column]].astype("string") if column in mapping else missing
        cols["nt"] = normalise(df[mapping["nt"]], NT_VALUES) if "nt" in mapping else missing
        for column in ("pre", "post"):
            cols[column] = pd.to_numeric(df[column]).fillna(0).astype("Int64")
        for column in ("upstream", "downstream"):
            cols[column] = pd.to_numeric(df[column]).fillna(0).astype("int64")
        for column in CROSS_TYPES:
            if column in mapping:
                cols[column] = df[mapping[column]].astype("string")
        types = self._property_types()
        for prop in dict.fromkeys([mapping.get("side"), mapping.get("nt"), *extras]):
            if prop and prop in df.columns and prop not in cols:
                cols[prop] = _typed(df[prop], types.get(prop))
        out = pd.DataFrame(cols, index=df.index)
        # normalised columns the query could not filter (regex, or the side from the instance suffix)
        for field, column in (("side", "side"), ("nt", "nt")):
            values = getattr(criteria, field, None)
            if values:
                out = out[_matches(out[column], values, criteria.regex)]
        return out.reset_index(drop=True)

    def _raise_missing(self, ids: np.ndarray, found: np.ndarray) -> None:
        """Raise :class:`IdsNotFoundError` naming the ``ids`` not among ``found`` (the segments that exist)."""
        missing = np.setdiff1d(ids, found)
        if len(missing):
            shown = ", ".join(str(i) for i in missing[:10].tolist()) + (" ..." if len(missing) > 10 else "")
            raise IdsNotFoundError(f"{len(missing)} id(s) are no segment of neuPrint dataset "
                                   f"{self._dataset_name!r}: {shown}", ids=missing.tolist())

    def missing_ids(self, ids: np.ndarray, materialization: Any = None) -> np.ndarray:
        """Ids that are no segment of the dataset; the others' synapse counts are kept to plan batches."""
        found = self._fetch_sizes(ids)
        return np.setdiff1d(ids, found["bodyId"].to_numpy(dtype="int64"))

    # -- planning ---------------------------------------------------------------------------------

    def _fetch_sizes(self, ids: np.ndarray) -> pd.DataFrame:
        """``bodyId, pre, post, upstream, downstream`` of the ``ids`` that exist (one query per 10,000), remembered."""
        found = map_batches(lambda b: self.run(cypher.sizes_query(b), arrow=False), batched(ids, DEFAULT_BATCH["ids"]),
                            max_workers=4)
        df = pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=["bodyId", *_SIZES])
        self._sizes.remember(df["bodyId"].to_numpy(dtype="int64"),
                             {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype="float64") if c in df
                              else np.full(len(df), np.nan) for c in _SIZES})
        return df

    def _batches(self, ids: np.ndarray, count: str, kind: str, fixed: int | None) -> list[np.ndarray]:
        """``ids`` in batches of about :data:`ROWS_PER_QUERY` expected rows, ``count`` giving each id's rows.

        Counts come from what this backend has seen (the core's id check, neuron tables), else from one
        :func:`~.cypher.sizes_query` for the ids it has not seen -- unless they are few enough for the
        default batch anyway. An id without the count gets an equal share of the default batch, so
        unknown sizes are batched as before. ``fixed`` (the ``batch_size`` option) keeps fixed batches.
        The counts only size the batches: every batch asks for every row of its ids.
        """
        if fixed:
            return batched(ids, fixed)
        budget, default = ROWS_PER_QUERY[kind], DEFAULT_BATCH[kind]
        rows = self._sizes.get(ids, count)
        unknown = np.isnan(rows)
        if unknown.any() and len(ids) > default:
            self._fetch_sizes(ids[unknown])
            rows = self._sizes.get(ids, count)
        return plan_batches(ids, np.where(np.isnan(rows), budget / default, rows), budget, DEFAULT_BATCH["ids"])

    def fetch_roi_counts(self, ids: np.ndarray, materialization: Any = None) -> pd.DataFrame:
        """Per-ROI counts from the ``roiInfo`` of ``ids``: from the neuron answer they came in (see
        :class:`RoiInfoMemo`), else one :func:`~.cypher.roi_info_query` per 10,000 ids."""
        df = self._roi_rows.get(ids, self.identity_ttl)
        if df is None:
            parts = map_batches(lambda b: self.run(cypher.roi_info_query(b), arrow=False),
                                batched(ids, DEFAULT_BATCH["ids"]), max_workers=4)
            df = pd.concat(parts, ignore_index=True)
        counts = split_roi_info(df["roiInfo"], {"pre": ("pre", df["pre"]), "post": ("post", df["post"])},
                                set(self.info().primary_rois))
        out = counts.pop("row")
        return pd.concat([pd.DataFrame({"id": df["bodyId"].to_numpy(dtype="int64")[out]}), counts], axis=1)

    # -- connectivity --------------------------------------------------------------------------

    #: get_connectivity checks the ids of a one-sided query itself (``ConnectivityQuery.check_ids``).
    checks_connectivity_ids = True

    def get_connectivity(self, query: ConnectivityQuery) -> pd.DataFrame:
        """Edges of ``query``, in batches planned from the ids' connection counts (:meth:`_batches`).

        With ``query.check_ids`` (one side given, its ids not checked by the core) the ids are checked
        without a request of their own: by the count query the plan needs anyway (more ids than one
        default batch, counts not known), else by the edge queries themselves (each id of the side
        gives a row, :func:`~.cypher.connections_query` ``check``). Missing ids raise
        :class:`IdsNotFoundError` naming them, before any edge is returned.
        """
        per_roi = query.by_roi or query.rois is not None
        fixed = query.batch_size or self.batch_size
        src, tgt = query.sources, query.targets
        batch_sources = tgt is None or (src is not None and len(src) <= len(tgt))
        side = src if batch_sources else tgt
        count = "downstream" if batch_sources else "upstream"
        check = bool(getattr(query, "check_ids", False))
        if check and src is not None and tgt is not None:
            raise ValueError("check_ids is for a query with one side given as ids")
        if check and not fixed and len(side) > DEFAULT_BATCH["connectivity"] \
                and np.isnan(self._sizes.get(side, count)).any():
            # the batches are planned from counts asked of the server anyway: that answer checks the ids
            self._raise_missing(side, self._fetch_sizes(side)["bodyId"].to_numpy(dtype="int64"))
            check = False
        checked = ("sources" if batch_sources else "targets") if check else None

        def fetch(batch: np.ndarray) -> tuple[np.ndarray | None, pd.DataFrame]:
            text = cypher.connections_query(
                batch if batch_sources else src, tgt if batch_sources else batch,
                min_weight=1 if per_roi else query.min_weight,
                include_autapses=query.include_autapses, with_roi_info=per_roi,
                sources_label="Neuron" if query.sources_neurons_only else "Segment",
                targets_label="Neuron" if query.targets_neurons_only else "Segment",
                check=checked,
            )
            df = self.run(text)
            if checked is None:
                return None, df
            # each id of the batch that exists gave a row; those without an edge have partner NO_PARTNER
            key, partner = ("pre", "post") if batch_sources else ("post", "pre")
            found = df[key].to_numpy(dtype="int64") if len(df) else np.zeros(0, dtype="int64")
            edges = df[key].notna() & (df[partner] != cypher.NO_PARTNER) if len(df) else df[key].notna()
            return found, df[edges.to_numpy(dtype=bool)].reset_index(drop=True)

        plan = self._batches(side, count, "connectivity", fixed)
        answers = map_batches(fetch, plan, max_workers=query.max_workers, progress=query.progress,
                              desc="neuPrint connectivity")
        if checked is not None:
            self._raise_missing(side, np.concatenate([found for found, _ in answers]))
        df = pd.concat([part for _, part in answers], ignore_index=True)
        if not per_roi:
            return df[["pre", "post", "weight"]]
        return self._split_by_roi(df)

    def _split_by_roi(self, df: pd.DataFrame) -> pd.DataFrame:
        weights = split_roi_info(df["roiInfo"], {"weight": ("post", df["weight"])}, set(self.info().primary_rois))
        row = weights.pop("row")
        pairs = pd.DataFrame({"pre": df["pre"].to_numpy(dtype="int64")[row],
                              "post": df["post"].to_numpy(dtype="int64")[row]})
        return pd.concat([pairs, weights], axis=1)

    # -- synapses ------------------------------------------------------------------------------

    def get_synapses(self, query: SynapseQuery) -> pd.DataFrame:
        fixed = query.batch_size or self.batch_size
        min_score = self.recommended_min_score() if query.min_score == "recommended" else query.min_score
        sides = [s for s, wanted in (("pre", query.pre), ("post", query.post)) if wanted]
        # one row per synaptic connection: the ids' downstream connections as 'pre', upstream as 'post'
        work = [(side, b) for side in sides
                for b in self._batches(query.ids, "downstream" if side == "pre" else "upstream", "synapses", fixed)]

        def fetch(item) -> pd.DataFrame:
            side, batch = item
            raw = self.run(cypher.synapse_connections_query(
                batch, side, min_score=min_score, rois=query.rois, include_autapses=query.include_autapses),
                arrow=False)  # returns a map column (post_info)
            return self._synapse_table(raw)  # per batch: only compact tables pile up, never decoded JSON

        tables = map_batches(fetch, work, max_workers=query.max_workers, progress=query.progress,
                             desc="neuPrint synapses")
        return frames.concat([t for t in tables if len(t)] or tables[:1])

    def _synapse_table(self, raw: pd.DataFrame) -> pd.DataFrame:
        if raw.empty:
            return schema.SYNAPSES.empty().assign(pre_score=pd.Series(dtype="float64"),
                                                  post_score=pd.Series(dtype="float64"))
        voxels = raw[["ux", "uy", "uz", "dx", "dy", "dz"]].to_numpy(dtype="int64")
        nm = self.to_nm(voxels)
        # ROI names as our own str objects (one per ROI shared by every row), not each batch's decoded keys
        primary = {roi: roi for roi in self.info().primary_rois}

        def roi_of(info: Any) -> Any:
            if not isinstance(info, dict):
                return None
            hits = [primary[k] for k, v in info.items() if k in primary and v]
            return hits[0] if hits else None

        out = frames.from_columns({
            "synapse_id": synapse_ids(voxels),
            "pre": raw["pre"].to_numpy(dtype="int64"),
            "post": raw["post"].to_numpy(dtype="int64"),
            "pre_x": nm[:, 0], "pre_y": nm[:, 1], "pre_z": nm[:, 2],
            "post_x": nm[:, 3], "post_y": nm[:, 4], "post_z": nm[:, 5],
            "score": np.minimum(raw["pre_score"].to_numpy(dtype="float64"), raw["post_score"].to_numpy(dtype="float64")),
            "roi": np.array([roi_of(info) for info in raw["post_info"]], dtype=object),
            "pre_score": raw["pre_score"].to_numpy(dtype="float64"),
            "post_score": raw["post_score"].to_numpy(dtype="float64"),
        })
        return frames.drop_duplicates(out, "synapse_id")

    # -- skeletons -------------------------------------------------------------------------------

    def _radius_scale(self) -> float:
        return 1.0 if self.units == "nm" else float(self.voxel_size[0])

    def get_skeletons(self, ids: np.ndarray) -> Any:
        """Skeletons in nm, from neuPrint's JSON node table (``rowId, x, y, z, radius, link``).

        The JSON table rather than SWC text: a JSON body cut anywhere does not
        parse, while SWC cut at a line end is a valid, smaller skeleton. The
        table has no SWC type column, so ``label`` is 0 ("undefined"), as in
        neuprint-python's ``fetch_skeleton``. Radii are converted with the x
        voxel size (as they are on an nm dataset).
        """
        import navis

        def fetch(body: int):
            path = f"/api/skeletons/skeleton/{quote(self._dataset_name, safe='')}/{int(body)}"
            try:
                table = self.http.request("GET", path, decode=morphology.skeleton_nodes)  # rowId x y z radius link
            except ServerError as exc:
                message = str(exc.server_message).lower()
                if exc.status == 404 or (exc.status == 400 and ("not found" in message or "no skeleton" in message)):
                    raise IdsNotFoundError(f"neuPrint has no skeleton for body {int(body)} in {self._dataset_name!r}",
                                           ids=[body]) from exc
                raise
            xyz = self.to_nm(table[:, 1:4])
            nodes = pd.DataFrame({
                "node_id": table[:, 0].astype("int64"),
                "label": np.zeros(len(table), dtype="int64"),
                "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
                "radius": table[:, 4] * self._radius_scale(),
                "parent_id": table[:, 5].astype("int64"),
            })
            n = navis.TreeNeuron(nodes, id=int(body), units="1 nm")
            n.dataset = self._dataset_name
            return n

        return navis.NeuronList(map_batches(fetch, list(ids), max_workers=8))

    # -- meshes ------------------------------------------------------------------------------------

    @property
    def mesh_source(self) -> str:
        """The precomputed segmentation this dataset's meshes are read from (found once, see :mod:`.morphology`)."""
        with self._mesh_lock:
            if self._mesh_source is None:
                catalogue = self._entry.value("morphology.mesh_source") if self._entry is not None else None
                published = morphology.published_sources(self.http, self.run, self._dataset_name)
                self._mesh_source = morphology.choose_source(published, catalogue, self._dataset_name, self.server)
            return self._mesh_source

    def get_meshes(self, ids: np.ndarray) -> Any:
        """Meshes in nm from the dataset's precomputed segmentation (cloud-volume), ``MESH_WORKERS`` reads at once.

        Raises
        ------
        IdsNotFoundError
            Naming every id the segmentation has no mesh for.
        ServerError, UnsupportedOperation
            The server and the catalogue name different sources, or none is named (see :mod:`.morphology`).
        """
        import navis

        source = self.mesh_source
        hint = (f"cloud-volume reads {source} with the system's certificates or $REQUESTS_CA_BUNDLE; set it to "
                f"{self.http.session.verify}") if isinstance(self.http.session.verify, str) else None
        cache, key_base = morphology.mesh_cache(self, source)
        neurons = morphology.read_meshes_concurrently(source, ids, timeout=self._timeout, tls_hint=hint,
                                                      cache=cache, key_base=key_base, lod=self._mesh_lod,
                                                      layer=morphology.shared_layer(self, source, key_base))
        for n in neurons:
            n.dataset = self._dataset_name
            n.mesh_source = source
        return navis.NeuronList(neurons)
