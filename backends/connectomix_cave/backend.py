"""The CAVE backend: FlyWire, FANC, BANC and MICrONS through ``caveclient``.

URI: ``cave://<datastack>[?server=<global server URL>&materialization=...&<setting>=...]``;
the settings are the fields of :class:`~.settings.CaveSettings`.
Token: option ``token``, else caveclient's own secret files
(``~/.cloudvolume/secrets/``).

Every query asks for one materialization version, resolved by
:class:`~.versions.VersionResolver`; id batches are planned from expected rows
so that each request returns close to, but under, the row cap (:mod:`.planning`:
rows per id learnt from earlier answers, else one count query), and batches
whose row count may have hit a row cap (judged from row counts, whatever the
headers say) are split until complete; positions are converted to nm with the
table's own voxel resolution. Total weights come from the datastack's
connection view where it equals the synapse aggregate
(:meth:`CaveBackend._connection_view_usable`).
Every request caveclient makes goes through :mod:`.transport`: a timeout
(option ``timeout``, seconds per request, default 60), whole-body checks and
retries of transient failures on every endpoint.

Settings come from the dataset catalogue (:mod:`.settings`). Units: positions
are converted with the table metadata's ``voxel_resolution`` (what caveclient's
``desired_resolution`` relies on: BANC ``synapses_v2`` reports 1, 1, 1 because it
stores nm, the other tables their voxel size); where the catalogue names the
synapse table's unit, metadata that disagrees raises :class:`DataFormatError`
rather than guessing.

Neurons (:meth:`CaveBackend.fetch_neurons`) come from the datastack's annotation
table, in its real shape: a *long* table (one row per neuron and key: FlyWire
``hierarchical_neuron_annotations``, BANC ``codex_annotations``, FANC
``neuron_information``) is pivoted to one row per neuron; a *reference table*
(FlyWire, BANC, MICrONS ``aibs_metamodel_celltypes_v661``) has ``target_id``
instead of root ids, which are taken from its target table (``proofread_neurons``,
``cell_representative_point``, ``nucleus_detection_v0``) -- the same rows
``merge_reference=True`` gives, asked as the same server-side join in one request
(:class:`Join`; split under the row cap like any query; two plain queries where a
server refuses the join). Several values of one key for one neuron (several rows) are
joined, sorted and unique, with ``";"``: nothing is dropped and the answer does
not depend on row order (a criterion ``type="A"`` then does not match ``"A;B"``).
Sides are mapped to left/right/center (:data:`SIDE_VALUES`), transmitters to full
lowercase names (:data:`NT_VALUES`); unknown spellings become ``<NA>`` while the
native column keeps them. Each key (long) or column (wide) is also kept as a
native extra column under its own name. At an integer materialization with a
result cache, the whole annotation table is fetched once and kept there.
``pre`` is ``<NA>`` (CAVE fly synapse tables list connections, not T-bars);
``downstream``/``upstream`` count the rows with the neuron as pre/post, and
``post`` = ``upstream`` (one PSD per row) -- computed only with ``counts=True``
or where a criterion needs them (no CAVE table holds them; counting pulls every
synapse row), else ``<NA>`` with ``attrs["counts"]`` saying so.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import requests

from connectomix import frames, schema
from connectomix.cache import IdentityMemo, query_key
from connectomix.backend import (Backend, Capability, ConnectivityQuery, DatasetInfo, ParsedURI, ScoreInfo,
                                 SynapseQuery)
from connectomix.cache import check_identity_ttl
from connectomix.config import Secret
from connectomix.criteria import NeuronCriteria
from connectomix.errors import (
    AuthenticationError,
    AuthorizationError,
    ConnectomixError,
    DataFormatError,
    DatasetNotFoundError,
    IncompleteResponseError,
    InvalidArgumentError,
    QueryError,
    RequestTimeoutError,
    ServerError,
    TruncatedResultError,
    UnsupportedOperation,
)
from connectomix.http import RETRY_STATUSES, RetryPolicy, Transient
from connectomix.parallel import batched, map_batches

from . import planning
from .settings import CaveSettings, settings_for
from .transport import harden
from .versions import LIVE, VersionResolver

__all__ = ["CaveBackend"]

DEFAULT_SERVER = "https://global.daf-apis.com"
#: Row caps of deployed MaterializationEngines: QUERY_LIMIT_SIZE of ME's default config (200,000;
#: github.com/CAVEconnectome/MaterializationEngine, materializationengine/config.py) and
#: FlyWire's 500,000 (the catalogue's row_cap, from the FlyConnectome CAVE tutorial). A page of exactly that
#: many rows is split even if our own row_limit is higher and the server did not say it capped.
KNOWN_SERVER_CAPS = frozenset({200_000, 500_000})
_LIMIT_WARNING = re.compile(r"Limited query to (\d+) rows")
#: Seconds an open Dataset trusts a materialization's version metadata before asking again (option
#: ``identity_ttl``): within it a warm cache hit sends no request.
DEFAULT_IDENTITY_TTL = 300.0
_MAX_ID = np.iinfo("int64").max


def _after_id_checks(method: Callable) -> Callable:
    """A query method that returns (or raises) only after the root-id checks its call started.

    :meth:`CaveBackend.resolve_materialization` sends the check of new ids at a pinned version beside
    the query; a failed check replaces the query's answer (or its error) with the check's error.
    """
    @functools.wraps(method)
    def wrapper(self: CaveBackend, *args: Any, **kwargs: Any) -> Any:
        try:
            out = method(self, *args, **kwargs)
        except BaseException:
            self._settle_checks()  # a failed check explains a failed query better than the query's error
            raise
        self._settle_checks()
        return out

    return wrapper


class _CapRecorder:
    """Records, per thread, whether the last response said the server capped the rows."""

    def __init__(self):
        self._local = threading.local()

    def hook(self, response, *args, **kwargs):
        m = _LIMIT_WARNING.search(response.headers.get("Warning", ""))
        if m:
            self._local.cap = int(m.group(1))
        return response

    def reset(self) -> None:
        self._local.cap = None

    @property
    def cap(self) -> int | None:
        return getattr(self._local, "cap", None)


class CaveBackend(Backend):
    """CAVE datastacks (materialized tables and views, chunkedgraph) through caveclient."""

    name = "cave"
    schemes = ("cave",)
    description = "CAVE datastacks (FlyWire, FANC, BANC, MICrONS) via caveclient, with materialization resolution"
    capabilities = frozenset(
        {Capability.SYNAPSES, Capability.SYNAPSE_SCORES, Capability.ROIS, Capability.MATERIALIZATION,
         Capability.ID_UPDATES, Capability.MESHES}
    )
    OPTIONS = ("token", "server", "batch_size", "timeout", "identity_ttl") + CaveSettings.option_names()
    #: Retries and timeouts of every request (option ``timeout`` replaces its ``request_timeout``).
    default_retry = RetryPolicy()
    #: Connecting makes about eight requests in a row, so it may take this many request timeouts.
    CONNECT_TIMEOUTS = 3

    def __init__(self, datastack: str, *, settings: CaveSettings, server: str = DEFAULT_SERVER,
                 token: Secret | None = None, batch_size: int | None = None, timeout: float | None = None,
                 identity_ttl: float = DEFAULT_IDENTITY_TTL):
        self.datastack = datastack
        self.identity_ttl = check_identity_ttl(identity_ttl)
        self.settings = settings
        self.server = server.rstrip("/")
        self.batch_size = batch_size
        self.retry = (self.default_retry if timeout is None
                      else dataclasses.replace(self.default_retry, request_timeout=timeout))
        self._caps = _CapRecorder()
        self._announced_caps: dict[str, int] = {}
        self._lock = threading.Lock()
        self._token = token
        self._client = None  # built on first use (:attr:`client`)
        self._client_lock = threading.Lock()
        self._datastack_synapse_table: str | None = None
        self._no_join: set = set()  # tables whose join with their reference target the server refused
        self.resolver = VersionResolver(_LazyClient(self), live_allowed=settings.live, datastack=datastack)
        self._resolution: dict[tuple, np.ndarray] = {}
        self._rates = planning.RowRates()
        self._no_connection_view: set = set()  # versions at which the connection view answered 404
        self._roi_memo: tuple[Any, np.ndarray, pd.DataFrame] | None = None
        self._identities = IdentityMemo()  # of the annotation tables kept in the result cache
        self._thread_state = threading.local()  # root-id checks running beside this thread's query
        self._check_pool: concurrent.futures.ThreadPoolExecutor | None = None

    @property
    def client(self):
        """The ``caveclient.CAVEclient``, built (about a dozen requests) the first time a request needs it.

        Nothing is asked at construction: a new process answering from a warm result cache at an
        integer materialization never builds it (what it needs from the server was kept in the cache,
        :meth:`identity_scope`).
        """
        with self._client_lock:
            if self._client is None:
                self._client = self._connect(self._token)
            return self._client

    @property
    def synapse_table(self) -> str | None:
        """The synapse table: the settings' (catalogue, option), else the datastack info's.

        The datastack info's answer is kept in the result cache for ``identity_ttl`` seconds, so a new
        process need not connect to learn it.
        """
        if self.settings.synapse_table:
            return self.settings.synapse_table
        if self._client is None:
            records = self.records()
            found = records.get("datastack", self.identity_ttl) if records is not None else None
            if found is not None and isinstance(found[0], dict):
                return found[0].get("synapse_table")
        self.client  # noqa: B018 - connecting reads the datastack info
        return self._datastack_synapse_table

    def identity_scope(self) -> dict[str, Any]:
        """What this backend's cache identities depend on besides the server's answers (no token).

        :class:`~connectomix.Dataset` keys the records it keeps in the result cache with it
        (:class:`~connectomix.cache.DiskRecords`): identities of versions, id checks; the backend
        keeps the datastack info's synapse table and the versions and ids checked at a pinned
        materialization there. Each is trusted for :attr:`identity_ttl` seconds after it was asked,
        in any process, so a warm hit in a new process sends nothing, and a server re-deployed with
        other data is noticed within ``identity_ttl`` (as an open Dataset notices it).
        """
        settings = {k: v for k, v in dataclasses.asdict(self.settings).items() if k != "materialization"}
        return {"server": self.server, "datastack": self.datastack, "settings": settings}

    def _connect(self, token: Secret | None):
        """Build the caveclient client, retried like any request, within a few request timeouts.

        caveclient makes its first requests (API-version probes, server versions, datastack and
        aligned-volume info) while its service clients are being built, before their sessions can get a
        :class:`~.transport.CheckedAdapter`, and some of them without a timeout. So the whole
        construction runs in a helper thread that may take at most :attr:`CONNECT_TIMEOUTS` request
        timeouts, and is repeated on transient failures. Afterwards every session is hardened
        (:func:`.transport.harden`).
        """
        policy = self.retry

        def attempt(_timeout: float):
            try:
                with self._map_errors("connecting to CAVE"):
                    return _within(policy.request_timeout * self.CONNECT_TIMEOUTS, lambda: self._build_client(token),
                                   f"connecting to CAVE datastack {self.datastack!r} at {self.server}")
            except ConnectomixError as exc:
                if not _transient(exc):
                    raise
                raise Transient(exc) from None

        return policy.run(attempt)

    def _build_client(self, token: Secret | None):
        import caveclient
        import caveclient.endpoints as endpoints

        client = caveclient.CAVEclient(
            self.datastack, server_address=self.server, auth_token=token.reveal() if token else None,
            write_server_cache=False, pool_maxsize=32, pool_block=True,
            max_retries=0,  # connecting is retried as a whole by _connect, later requests by the transport
        )
        info = client.info.get_datastack_info()
        self._datastack_synapse_table = info.get("synapse_table")
        records = self.records()
        if records is not None:
            records.put("datastack", {"synapse_table": self._datastack_synapse_table})
        for service in (client.info, client.materialize, client.chunkedgraph):
            harden(service.session, lambda: self.retry, pool_maxsize=32, pool_block=True)
        probes = ((client.materialize, endpoints.materialization_common, endpoints.materialization_api_versions),
                  (client.chunkedgraph, endpoints.chunkedgraph_endpoints_common, endpoints.chunkedgraph_api_versions))
        for service, common, known in probes:
            # caveclient's API-version probe bypasses the session and silently falls back to an older
            # API when it fails; ask again through the hardened session and rebuild if it guessed wrong.
            url = common["get_api_versions"].format_map(service.default_url_mapping)
            offered = service.session.get(url)
            if offered.ok:
                best = max(set(known) & set(offered.json()), default=service.api_version)
                if best != service.api_version:
                    raise IncompleteResponseError(
                        f"caveclient chose API v{service.api_version} at {url} though the server offers "
                        f"v{best} (its version probe failed)", url=url)
        client.materialize.session.hooks["response"].append(self._caps_hook)
        return client

    def _caps_hook(self, response, *args, **kwargs):
        return self._caps.hook(response)

    # -- construction --------------------------------------------------------------------

    @classmethod
    def from_uri(cls, uri: ParsedURI, options: Mapping[str, Any]) -> CaveBackend:
        cls.check_options(options)
        datastack = uri.location.strip("/")
        if not datastack or "/" in datastack:
            raise InvalidArgumentError(f"{uri.raw!r}: expected cave://<datastack>, e.g. cave://flywire_fafb_public")
        token = options.get("token")
        batch = options.get("batch_size")
        backend = cls(
            datastack, settings=settings_for(datastack, dict(options)),
            server=str(options.get("server", DEFAULT_SERVER)),
            token=Secret(token) if token is not None and not isinstance(token, Secret) else token,
            batch_size=int(batch) if batch is not None else None,
            timeout=_seconds("timeout", options["timeout"]) if options.get("timeout") is not None else None,
            identity_ttl=options.get("identity_ttl", DEFAULT_IDENTITY_TTL),
        )
        backend.skeleton_source = options.get("skeleton_source")
        return backend

    def __repr__(self) -> str:
        return f"CaveBackend(datastack={self.datastack!r}, server={self.server!r})"

    def close(self) -> None:
        if self._check_pool is not None:
            self._check_pool.shutdown(wait=False)
            self._check_pool = None
        client = self._client
        if client is None:
            return
        for service in (client.info, client.materialize, client.chunkedgraph):
            with contextlib.suppress(Exception):
                service.session.close()

    # -- errors --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _map_errors(self, doing: str) -> Iterator[None]:
        """Translate caveclient/requests/pyarrow errors into connectomix errors (the transport has already
        retried the transient ones)."""
        try:
            yield
        except ConnectomixError:
            raise
        except Exception as exc:
            error = self._translate(exc, doing)
            if error is None:
                raise
            raise error from exc

    def _translate(self, exc: Exception, doing: str) -> ConnectomixError | None:
        if isinstance(exc, requests.HTTPError):
            status = _status(exc)
            text = _strip_content(str(exc))
            kwargs = {"status": status, "server_message": text}
            if status == 401:
                return AuthenticationError(
                    f"CAVE rejected the token while {doing} (HTTP 401): it is missing, invalid or expired. "
                    f"Get a new one with caveclient's CAVEclient().auth.get_new_token() and save it with "
                    f"auth.save_token(), or pass token=...", **kwargs)
            if status == 403:
                return AuthorizationError(
                    f"CAVE accepted the token but denied access while {doing} (HTTP 403): your account lacks "
                    f"permission for datastack {self.datastack!r} (e.g. a missing group or unsigned terms of "
                    f"service); a new token will not help. Server said: {text}", **kwargs)
            if status == 404:
                return DatasetNotFoundError(f"CAVE has no such resource while {doing}: {text}")
            if status is not None and status < 500 and status not in RETRY_STATUSES:
                return QueryError(f"CAVE rejected the request while {doing} (HTTP {status}): {text}", **kwargs)
            return ServerError(f"CAVE failed while {doing} (HTTP {status}): {text}", **kwargs)
        if isinstance(exc, requests.RequestException):
            return ServerError(f"could not talk to CAVE while {doing}: {type(exc).__name__}: {exc}")
        if isinstance(exc, pa.ArrowException):
            return ServerError(f"CAVE sent a broken Arrow table while {doing}: {exc}")
        if type(exc).__name__ == "ServerIncompatibilityError":
            return ServerError(f"CAVE server too old for caveclient while {doing}: {exc}")
        return None

    # -- metadata --------------------------------------------------------------------------------

    def info(self) -> DatasetInfo:
        s = self.settings
        rois = tuple(s.primary_rois)
        score = None
        if s.score_column:
            score = ScoreInfo(s.score_column, s.score_scale or "unverified", s.score_recommended, s.score_op,
                              s.score_source or "unverified")
        annotated = [c for c, _ in self._annotation_map()]
        columns = ("id", *[c for c in NEURON_CORE if c in annotated], "post", "upstream", "downstream",
                   *[c for c in schema.CROSS_TYPES if c in annotated])
        return DatasetInfo(
            name=self.datastack,
            version=s.materialization,
            rois=rois,
            primary_rois=rois,
            description=f"CAVE datastack {self.datastack} on {self.server}",
            extra={"server": self.server, "synapse_table": self.synapse_table,
                   "synapse_view": s.synapse_view if s.filtered else None, "catalogue": s.catalogue,
                   "neuron_table": s.neuron_table, "annotation_shape": s.annotation_shape,
                   "annotation_reference": s.annotation_reference, "annotation_map": dict(self._annotation_map())},
            score=score,
            neuron_columns=columns,
        )

    def dataset_capabilities(self) -> frozenset[Capability]:
        caps = set(self.capabilities)
        if self.settings.score_column is None:
            caps.discard(Capability.SYNAPSE_SCORES)
        if self.settings.neuropil_column is None:
            caps.discard(Capability.ROIS)
        return frozenset(caps)

    def cache_identity(self, version: Any) -> Mapping[str, Any] | None:
        """The datastack and version with that version's metadata as the server reports it *now*.

        A materialization is immutable on one deployment, but a server
        re-deployed at the same address can serve other data under the same
        number; its version metadata then differs (``time_stamp`` is when the
        snapshot was taken, ``id`` the row of the deployment's AnalysisVersion
        table). So ``GET .../version/{v}`` (one small request) is asked, and an
        open Dataset trusts the answer for :attr:`identity_ttl` seconds (option
        ``identity_ttl``, default :data:`DEFAULT_IDENTITY_TTL`; 0 asks on every
        cached query): repeated queries at an integer materialization send no
        request within it, and a re-deployed server is noticed within it.
        ``'live'`` is never cached; ``'auto'``/``'latest'`` are resolved to a
        number first.
        """
        if not isinstance(version, (int, np.integer)) or isinstance(version, bool):
            return None  # 'live' data changes; never cache it
        with self._map_errors(f"reading the metadata of materialization {int(version)}"):
            meta = self.client.materialize.get_version_metadata(int(version))
        stamps = {k: str(meta.get(k)) for k in ("time_stamp", "id")}
        settings = {k: v for k, v in dataclasses.asdict(self.settings).items() if k != "materialization"}
        return {"server": self.server, "datastack": self.datastack, "materialization": int(version),
                "version_metadata": stamps, "synapse_table": self.synapse_table, "settings": settings}

    def resolve_materialization(self, ids: np.ndarray | None, materialization: Any) -> Any:
        """The concrete version to query ``ids`` at (:class:`~.versions.VersionResolver`).

        At an integer materialization the outcome is also kept in the result cache: the version's
        time stamp and expiry for :attr:`identity_ttl` seconds, and that ``ids`` were roots at that
        time stamp (which never changes). A new process then resolves the same ids at the same
        version without a request while the version record is younger than ``identity_ttl`` and the
        version has not expired.

        At a pinned version (a number or ``'latest'``), ids not checked before are checked *while*
        the query runs: the version number is returned at once (an unavailable version still raises
        here) and the root-id check (``is_latest_roots``) is sent concurrently; the backend's query
        methods wait for it before they return and raise its :class:`MaterializationError` instead
        of their answer if it fails (:meth:`_settle_checks`), so no table is ever returned for ids
        that were not roots at that version.
        """
        requested = self.settings.materialization if materialization is None else materialization
        if isinstance(requested, str) and requested.isdigit():
            requested = int(requested)
        pinned = isinstance(requested, (int, np.integer)) and not isinstance(requested, bool)
        records = self.records() if pinned else None
        # Checks of earlier calls of this thread that no query waited for belong to calls that are over
        # (their table came from a cache, for ids checked when it was filled, or was empty without a
        # query): they are not this call's, so they are dropped rather than raised here.
        self._pending_checks().clear()
        if records is not None and self._checked_before(records, ids, int(requested)):
            self.resolver.announce(int(requested))
            return int(requested)
        if (pinned or requested == "latest") and ids is not None and len(ids):
            with self._map_errors("resolving the materialization version"):
                number = self.resolver.versions()[0].version if requested == "latest" else int(requested)
                self.resolver.version(number)  # an unavailable version raises now, before any query
            if not self.resolver.checked_at(ids, number):
                ids = np.array(ids, dtype="int64")
                check = self._checker().submit(self._check_ids, ids, number, records)
                self._pending_checks().append((number, np.unique(ids), check))
                self.resolver.announce(number)
                return number
        with self._map_errors("resolving the materialization version"):
            result = self.resolver.resolve(ids, requested)
            if records is not None:
                self._record_check(records, int(result), ids)
        return result

    def _check_ids(self, ids: np.ndarray, version: int, records: Any) -> None:
        """The root-id check of ``ids`` at ``version`` (run beside the query, see :meth:`resolve_materialization`)."""
        with self._map_errors(f"checking root ids at materialization {version}"):
            self.resolver.resolve(ids, version)
            if records is not None:
                self._record_check(records, version, ids)

    def _record_check(self, records: Any, version: int, ids: np.ndarray | None) -> None:
        stamp = self.resolver.version(version)
        meta = {"time_stamp": stamp.timestamp.isoformat(),
                "expires_on": stamp.expires_on.isoformat() if stamp.expires_on else None}
        records.put(f"version {version}", meta)
        if ids is not None and len(ids):
            records.put(_ids_record(version, meta, ids), True)

    def _pending_checks(self) -> list:
        """The root-id checks this thread started and no query has waited for yet."""
        pending = getattr(self._thread_state, "checks", None)
        if pending is None:
            pending = self._thread_state.checks = []
        return pending

    def _checker(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._check_pool is None:
                self._check_pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=4, thread_name_prefix="connectomix-cave-ids")
            return self._check_pool

    def _settle_checks(self, ids: np.ndarray | None = None, version: Any = None) -> None:
        """Wait for the root-id checks this thread started (only those of exactly ``ids`` at ``version``
        if given); raise the first that failed."""
        pending = self._pending_checks()
        if ids is None:
            mine = list(pending)
        else:
            wanted = np.unique(np.asarray(ids, dtype="int64"))
            mine = [p for p in pending if p[0] == version and np.array_equal(p[1], wanted)]
        pending[:] = [p for p in pending if not any(p is m for m in mine)]
        for _, _, check in mine:
            check.result()

    def settle_checks(self, ids: np.ndarray, version: Any) -> None:
        if isinstance(version, (int, np.integer)) and not isinstance(version, bool):
            self._settle_checks(np.asarray(ids, dtype="int64"), int(version))

    def _checked_before(self, records: Any, ids: np.ndarray | None, version: int) -> bool:
        """Whether the records say ``version`` is available and ``ids`` were roots at it (no request)."""
        found = records.get(f"version {version}", self.identity_ttl)
        if found is None or not isinstance(found[0], dict):
            return False
        meta = found[0]
        expires = meta.get("expires_on")
        if expires is not None and datetime.fromisoformat(expires) <= datetime.now(timezone.utc):
            return False
        if ids is None or not len(ids):
            return True
        return records.get(_ids_record(version, meta, ids), math.inf) is not None

    def missing_ids(self, ids: np.ndarray, materialization: Any = None) -> np.ndarray:
        # Root ids are checked by resolve_materialization, which says *why* an id
        # is unusable (outdated, too new, never co-existing) -- more than "missing".
        # Where the core asks this after resolving without a query (criteria that match nothing),
        # the check started for exactly these ids at this version is waited for here.
        requested = self.settings.materialization if materialization is None else materialization
        if isinstance(requested, str) and requested.isdigit():
            requested = int(requested)
        if isinstance(requested, (int, np.integer)) and not isinstance(requested, bool):
            self._settle_checks(ids, int(requested))
        return ids[:0]

    # -- low-level querying ------------------------------------------------------------------

    def _resolution_of(self, table: str, version: Any, is_view: bool) -> np.ndarray:
        key = (table, version, is_view)
        with self._lock:
            if key in self._resolution:
                return self._resolution[key]
        mat = self.client.materialize
        v = None if version == LIVE else int(version)
        with self._map_errors(f"reading the metadata of {table!r}"):
            if is_view:
                meta = mat.get_view_metadata(table, materialization_version=v, log_warning=False)
            else:
                meta = mat.get_table_metadata(table, version=v, log_warning=False)
        res = meta.get("voxel_resolution") or [meta.get(f"voxel_resolution_{a}") for a in "xyz"]
        if res is None or any(r is None for r in res):
            raise ServerError(f"CAVE table {table!r} has no voxel resolution in its metadata; cannot convert to nm")
        arr = np.asarray(res, dtype="float64")
        unit = self.settings.synapse_unit
        if unit is not None and table in (self.synapse_table, self.settings.synapse_view,
                                          *(v for _, v in self.settings.view_versions)):
            in_nm = bool(np.all(arr == 1.0))
            if in_nm != (unit == "nm"):
                raise DataFormatError(
                    f"CAVE table {table!r} of datastack {self.datastack!r} reports voxel_resolution {arr.tolist()}, "
                    f"but the catalogue says its positions are in {unit}; refusing to guess the unit (set "
                    f"synapse_unit=none to trust the table metadata)")
        with self._lock:
            self._resolution[key] = arr
        return arr

    def _source(self, version: Any, filtered: bool) -> tuple[str, bool]:
        view = self.settings.view_at(version)
        if filtered and view:
            if version == LIVE:
                raise UnsupportedOperation(
                    f"live queries cannot use the filtered view {view!r}; "
                    "pass filtered=False in the dataset options, or use a materialized version"
                )
            return view, True
        if not self.synapse_table:
            raise UnsupportedOperation(f"datastack {self.datastack!r} names no synapse table; set synapse_table")
        return self.synapse_table, False

    def _query(self, table: str, is_view: bool, version: Any, filters: dict[str, dict], columns: list[str],
               doing: str, split_column: str | None = None,
               first: tuple[pd.DataFrame, bool] | None = None) -> pd.DataFrame:
        """One logical query, split until no part may have hit the server's row cap.

        A capped answer is an arbitrary subset of the rows, so it is never used
        as a result: the id list in ``filter_in_dict[split_column]`` is halved
        first; a single id is split by ranges of a column that is unique among
        its rows (the table's ``id``; on a view without one, the partner root id
        of a ``pre``/``post`` split, unique per pair in a connection view). ``first`` is the answer to
        this very query when it was already asked (rows, may be capped).
        """
        df, capped = first if first is not None else self._query_once(table, is_view, version, filters, columns,
                                                                       doing)
        if not capped:
            return df
        values = (filters.get("filter_in_dict") or {}).get(split_column) if split_column else None
        if values is not None and len(values) > 1:
            half = len(values) // 2
            parts = []
            for chunk in (values[:half], values[half:]):
                sub = {k: dict(v) for k, v in filters.items()}
                sub["filter_in_dict"][split_column] = chunk
                parts.append(self._query(table, is_view, version, sub, columns, doing, split_column))
            return pd.concat(parts, ignore_index=True)
        partner = {"pre_pt_root_id": "post_pt_root_id", "post_pt_root_id": "pre_pt_root_id"}.get(split_column or "")
        key = "id" if "id" in columns else partner if partner in columns else None
        if key is None:
            raise TruncatedResultError(
                f"CAVE capped the rows of {table!r} at {len(df)} while {doing}, and the query has no column "
                f"that is unique among its rows to split it by (columns {columns})")
        return self._split_by_range(table, is_view, version, filters, columns, doing, key, 0, _MAX_ID, df)

    def _query_once(self, table, is_view, version, filters, columns, doing):
        """One request (the transport retries transient failures): its rows, and whether they may be capped."""
        return self._request(table, is_view, version, filters, columns, doing)

    def _request(self, table, is_view, version, filters, columns, doing):
        mat = self.client.materialize
        kw = {k: v for k, v in filters.items() if v}
        limit = self.settings.row_limit
        self._caps.reset()
        with self._map_errors(doing):
            if version == LIVE:
                df = mat.live_live_query(
                    table, datetime.now(timezone.utc), select_columns={table: columns}, split_positions=True,
                    metadata=False, limit=limit, log_warning=False,
                    **{k: {table: v} for k, v in kw.items()},
                )
            elif isinstance(table, Join):
                df = table.rows(mat.join_query(
                    table.tables(), select_columns=table.select(columns), suffixes=table.suffixes(),
                    split_positions=True, metadata=False, materialization_version=int(version), limit=limit,
                    log_warning=False, **{k: table.filters(v) for k, v in kw.items()}))
            elif is_view:
                df = mat.query_view(table, select_columns=columns, split_positions=True, metadata=False,
                                    materialization_version=int(version), limit=limit, **kw)
            else:
                df = mat.query_table(table, select_columns=columns, split_positions=True, metadata=False,
                                     merge_reference=False, materialization_version=int(version), limit=limit,
                                     log_warning=False, **kw)
        return df, self._may_be_capped(table, len(df), self._caps.cap)

    def _may_be_capped(self, table: str, rows: int, announced: int | None) -> bool:
        """Whether a page of ``rows`` rows of ``table`` may be cut short by a row cap.

        From the row count alone, whatever the headers say: a page is suspect if
        it reaches our own ``row_limit`` or the smallest cap the server ever
        announced for this table (``Warning: ... Limited query to N rows``,
        remembered for the backend's lifetime), or has exactly a known server cap
        (:data:`KNOWN_SERVER_CAPS`). Splitting a complete page only costs
        requests; keeping a capped one loses rows.
        """
        with self._lock:
            if announced is not None:
                self._announced_caps[table] = min(announced, self._announced_caps.get(table, announced))
            floor = min(self.settings.row_limit, self._announced_caps.get(table, self.settings.row_limit))
        return announced is not None or rows >= floor or rows in KNOWN_SERVER_CAPS

    def _split_by_range(self, table, is_view, version, filters, columns, doing, key, lo, hi,
                        capped_rows) -> pd.DataFrame:
        """Rows with ``lo <= key < hi`` (``key`` unique among the rows), split at the median ``key`` of a
        capped sample until no part may be capped."""
        if hi - lo < 2:  # one value of a column unique among the rows: at most one row, so nothing was cut
            if len(capped_rows) <= 1:
                return capped_rows
            raise TruncatedResultError(
                f"CAVE returned {len(capped_rows)} rows of {table!r} for the single value {key}={lo} while "
                f"{doing}, although {key!r} should be unique among them; the result cannot be split further")
        values = np.sort(capped_rows[key].to_numpy(dtype="int64"))
        values = values[(values >= lo) & (values < hi)]
        mid = int(values[len(values) // 2]) if len(values) else lo + (hi - lo) // 2
        mid = min(max(mid, lo + 1), hi - 1)
        parts = []
        for a, b in ((lo, mid), (mid, hi)):
            sub = {k: dict(v) for k, v in filters.items()}
            sub.setdefault("filter_greater_equal_dict", {})[key] = int(a)
            sub.setdefault("filter_less_dict", {})[key] = int(b)
            df, capped = self._query_once(table, is_view, version, sub, columns, doing)
            parts.append(self._split_by_range(table, is_view, version, filters, columns, doing, key, a, b, df)
                         if capped else df)
        return pd.concat(parts, ignore_index=True)

    def _cap(self, table: str) -> int:
        """The row cap a request to ``table`` runs into: our ``row_limit``, or a smaller cap the server announced."""
        with self._lock:
            return min(self.settings.row_limit, self._announced_caps.get(table, self.settings.row_limit))

    def _count(self, table: str, is_view: bool, version: Any, filters: dict[str, dict], doing: str) -> int | None:
        """Rows a query would return, from one count query; ``None`` where no count can be asked or read.

        caveclient's ``query_table``/``query_view(get_counts=True)`` sends ``count=True``
        (CAVEconnectome/CAVEclient:caveclient/materializationengine.py, installed 8.2.1). Live queries
        have no count. An answer that is not one non-negative integer gives ``None`` (the caller then
        halves instead): the count only sizes batches, it never decides which rows a table has.
        """
        if version == LIVE:
            return None
        mat = self.client.materialize
        kw = {k: v for k, v in filters.items() if v}
        with self._map_errors(doing):
            if is_view:
                df = mat.query_view(table, metadata=False, materialization_version=int(version), get_counts=True,
                                    **kw)
            else:
                df = mat.query_table(table, metadata=False, merge_reference=False, materialization_version=int(version),
                                     get_counts=True, log_warning=False, **kw)
        if not isinstance(df, pd.DataFrame) or df.shape != (1, 1):
            return None
        value = df.iloc[0, 0]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
            return None
        return int(value)

    def _fetch_by_ids(self, table: str, is_view: bool, version: Any, jobs: list[tuple[str, np.ndarray, dict]],
                      columns: list[str], doing: str, *, batch_size: int | None, max_workers: int, progress: bool,
                      desc: str, convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> list[pd.DataFrame]:
        """The rows of every job ``(id column, ids, other filters)``, converted batch by batch.

        With ``batch_size``, fixed batches of that many ids. Otherwise batches are planned from expected
        rows (:mod:`.planning`), from the rows per id learnt from earlier answers of the same table, id
        column and kind of filter: all of a job's ids in one request where that fits under the row cap
        (or, with nothing learnt yet, for at most ``SMALL_QUERY`` ids); ``ceil(expected / (FILL * cap))``
        batches where rows per id were learnt from at least ``SMALL_QUERY`` ids; otherwise one count
        query first. The single requests, the batches planned from learnt rows and the count queries all
        run concurrently; a single request that came back (possibly) capped is counted and planned
        afterwards. Every batch is split further by :meth:`_query` wherever it may still be capped, so no
        plan can lose a row: a wrong estimate only costs requests.
        """
        convert = convert or (lambda df: df)
        jobs = [(column, np.asarray(ids, dtype="int64"), base) for column, ids, base in jobs if len(ids)]

        def one(item) -> pd.DataFrame:
            column, chunk, base, expected = item
            filters = _with_ids(base, column, chunk)
            df, capped = self._query_once(table, is_view, version, filters, columns, doing)
            if not capped:
                self._rates.learn(table, _rate_key(column, base), len(df), len(chunk))
            elif expected is not None and len(chunk) > 1:
                # more rows than planned (bigger neurons, or a smaller cap than we knew): plan this batch
                # again for at least a full cap's worth of rows
                again = planning.plan_batches(chunk, max(expected, self._cap(table)), self._cap(table))
                if len(again) > 1:
                    share = max(expected, self._cap(table)) / len(chunk)
                    parts = map_batches(one, [(column, b, base, share * len(b)) for b in again],
                                        max_workers=max_workers)
                    return pd.concat(parts, ignore_index=True)
            return convert(self._query(table, is_view, version, filters, columns, doing, split_column=column,
                                       first=(df, capped)))

        def run(func, items):
            return map_batches(func, items, max_workers=max_workers, progress=progress and len(items) > 1, desc=desc)

        if batch_size:
            return run(one, [(column, b, base, None) for column, ids, base in jobs for b in batched(ids, batch_size)])

        def whole(job) -> pd.DataFrame | None:
            column, ids, base = job
            filters = _with_ids(base, column, ids)
            df, capped = self._query_once(table, is_view, version, filters, columns, doing)
            if not capped:
                self._rates.learn(table, _rate_key(column, base), len(df), len(ids))
                return convert(df)
            if len(ids) == 1:  # one neuron over the cap: split by ranges, starting from this page
                return convert(self._query(table, is_view, version, filters, columns, doing,
                                           split_column=column, first=(df, True)))
            return None  # (possibly) capped: counted and planned below

        def count(job) -> int | None:
            return self._count(table, is_view, version, _with_ids(job[2], job[0], job[1]), doing)

        def batches(job, total: int | None) -> list[tuple]:
            column, ids, base = job
            if total is None:  # no count could be read: halve, as before planning existed
                return [(column, b, base, None) for b in batched(ids, max(1, -(-len(ids) // 2)))]
            return [(column, b, base, total * len(b) / len(ids))
                    for b in planning.plan_batches(ids, total, self._cap(table))]

        tasks: list[tuple[Callable, Any]] = []
        for job in jobs:
            column, ids, base = job
            cap = self._cap(table)
            expected = self._rates.expected(table, _rate_key(column, base), len(ids))
            trusted = self._rates.expected(table, _rate_key(column, base), len(ids), min_ids=planning.SMALL_QUERY)
            if len(ids) == 1 or (expected <= planning.FILL * cap if expected is not None
                                 else len(ids) <= planning.SMALL_QUERY):
                tasks.append((whole, job))
            elif trusted is not None:
                tasks += [(one, item) for item in batches(job, math.ceil(trusted))]
            else:
                tasks.append((count, job))
        out, work, capped = [], [], []
        for (func, item), result in zip(tasks, run(lambda task: task[0](task[1]), tasks)):
            if func is count:
                work += batches(item, result)
            elif result is None:  # a single request that may have been capped
                capped.append(item)
            else:
                out.append(result)
        for job, total in zip(capped, run(count, capped)):
            work += batches(job, total)
        return out + run(one, work)

    # -- synapses -------------------------------------------------------------------------------

    def _synapse_columns(self, positions: bool) -> list[str]:
        cols = ["id", "pre_pt_root_id", "post_pt_root_id"]
        if positions:
            cols += ["pre_pt_position", "post_pt_position"]
        if self.settings.score_column:
            cols.append(self.settings.score_column)
        if self.settings.neuropil_column:
            cols.append(self.settings.neuropil_column)
        return cols

    def _synapse_rows(self, ids: np.ndarray, sides: list[str], version: Any, *, positions: bool,
                      batch_size: int | None, max_workers: int, progress: bool, extra_filters: dict | None = None,
                      desc: str = "CAVE synapses",
                      convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> pd.DataFrame:
        """Synapse rows of ``ids`` on ``sides``, each synapse once (a synapse between two query ids is
        returned by both its pre and its post query). ``batch_size=None`` plans batches from expected
        rows (:meth:`_fetch_by_ids`). With both sides at a materialized version, the post side asks only
        for rows whose pre is *not* a query id (``filter_out_dict``, sent as ``filter_notin_dict``): the
        pre side already returns the others, so no row is moved twice.

        ``convert`` turns each batch's raw rows into the caller's table as the batch arrives, so raw
        rows never pile up (it must keep the ``id`` column, which de-duplicates)."""
        table, is_view = self._source(version, self.settings.filtered)
        cols = self._synapse_columns(positions)
        base = {key: dict(value) for key, value in (extra_filters or {}).items()}
        jobs = [(f"{side}_pt_root_id", ids, base) for side in sides]
        if set(sides) == {"pre", "post"} and version != LIVE:  # (live queries send filters another way)
            incoming = {key: dict(value) for key, value in base.items()}
            incoming.setdefault("filter_out_dict", {})["pre_pt_root_id"] = np.asarray(ids, dtype="int64").tolist()
            jobs = [(column, side_ids, incoming if column == "post_pt_root_id" else side_base)
                    for column, side_ids, side_base in jobs]
        parts = [p for p in self._fetch_by_ids(table, is_view, version, jobs, cols, f"querying {table!r}",
                                               batch_size=batch_size, max_workers=max_workers, progress=progress,
                                               desc=desc, convert=convert) if len(p)]
        if not parts:
            names = [name for c in cols  # positions arrive split into _x, _y, _z columns
                     for name in ((f"{c}_x", f"{c}_y", f"{c}_z") if c.endswith("_position") else (c,))]
            empty = pd.DataFrame({name: pd.Series(dtype="int64") for name in names})
            return convert(empty) if convert else empty
        return frames.drop_duplicates(frames.concat(parts), "id")

    @_after_id_checks
    def get_synapses(self, query: SynapseQuery) -> pd.DataFrame:
        sides = [s for s, wanted in (("pre", query.pre), ("post", query.post)) if wanted]
        extra = {}
        if query.min_score is not None and self.settings.score_column:
            extra["filter_greater_equal_dict"] = {self.settings.score_column: query.min_score}
        table, is_view = self._source(query.materialization, self.settings.filtered)
        res = self._resolution_of(table, query.materialization, is_view)
        score, npil = self.settings.score_column, self.settings.neuropil_column

        def to_schema(raw: pd.DataFrame) -> pd.DataFrame:
            n = len(raw)
            out = {"id": raw["id"].to_numpy(dtype="int64"),
                   "pre": raw["pre_pt_root_id"].to_numpy(dtype="int64"),
                   "post": raw["post_pt_root_id"].to_numpy(dtype="int64")}
            for side in ("pre", "post"):
                for i, axis in enumerate("xyz"):
                    out[f"{side}_{axis}"] = raw[f"{side}_pt_position_{axis}"].to_numpy(dtype="float64") * res[i]
            out["score"] = raw[score].to_numpy(dtype="float64") if score else np.full(n, np.nan)
            out["roi"] = self._roi(raw[npil]).array if npil else pd.array([None] * n, dtype="string")
            return frames.from_columns(out)

        rows = self._synapse_rows(
            query.ids, sides, query.materialization, positions=True,
            batch_size=query.batch_size or self.batch_size,
            max_workers=query.max_workers, progress=query.progress, extra_filters=extra, convert=to_schema,
        )
        rows.columns = ["synapse_id", *rows.columns[1:]]
        return rows

    @staticmethod
    def _roi(values: pd.Series) -> pd.Series:
        roi = values.astype("string")
        return roi.mask(roi.isin(["", "NA", "UNASGD", "None"]))

    # -- connectivity ----------------------------------------------------------------------------

    @_after_id_checks
    def get_connectivity(self, query: ConnectivityQuery) -> pd.DataFrame:
        per_roi = query.by_roi or query.rois is not None
        if per_roi and not self.settings.neuropil_column:
            raise UnsupportedOperation(f"datastack {self.datastack!r} has no neuropil column configured, so "
                                       "connectivity cannot be split by ROI")
        version = query.materialization
        src, tgt = query.sources, query.targets
        batch_sources = tgt is None or (src is not None and len(src) <= len(tgt))
        side, ids = ("pre", src) if batch_sources else ("post", tgt)
        other = {"post_pt_root_id": [int(i) for i in tgt]} if batch_sources and tgt is not None else (
            {"pre_pt_root_id": [int(i) for i in src]} if not batch_sources and src is not None else {})
        size = query.batch_size or self.batch_size
        if self._connection_view_usable(per_roi, version):
            view = self.settings.connection_view
            base = {"filter_in_dict": other} if other else {}
            try:
                parts = self._fetch_by_ids(view, True, version, [(f"{side}_pt_root_id", ids, base)],
                                           ["pre_pt_root_id", "post_pt_root_id", "n_syn"], f"querying {view!r}",
                                           batch_size=size, max_workers=query.max_workers, progress=query.progress,
                                           desc="CAVE connectivity")
            except DatasetNotFoundError:  # this materialization has no such view: count the synapses instead
                with self._lock:
                    self._no_connection_view.add(version)
            else:
                df = pd.concat(parts, ignore_index=True)
                df = df.rename(columns={"pre_pt_root_id": "pre", "post_pt_root_id": "post", "n_syn": "weight"})
                return df.groupby(["pre", "post"], as_index=False)["weight"].sum()
        raw = self._synapse_rows(
            ids, [side], version, positions=False, batch_size=size, max_workers=query.max_workers,
            progress=query.progress, extra_filters={"filter_in_dict": other} if other else None,
            desc="CAVE connectivity",
        )
        edges = pd.DataFrame({"pre": raw["pre_pt_root_id"].to_numpy(dtype="int64"),
                              "post": raw["post_pt_root_id"].to_numpy(dtype="int64")})
        if not per_roi:
            return edges.groupby(["pre", "post"], as_index=False).size().rename(columns={"size": "weight"})
        codes, names = _roi_codes(raw[self.settings.neuropil_column])
        edges["roi"] = codes  # grouped as integers; the codes follow the names' order
        out = edges.groupby(["pre", "post", "roi"], as_index=False).size().rename(columns={"size": "weight"})
        out["roi"] = names[out["roi"].to_numpy()]
        return out

    def _connection_view_usable(self, per_roi: bool, version: Any) -> bool:
        """Whether total weights may come from the pre-aggregated connection view.

        Only where its answer is the aggregate of the synapses we would count: FlyWire's
        ``valid_connection_v2`` has ``n_syn`` per (pre, post) of the filtered synapses (``cleft_score > 50``,
        de-duplicated) and no neuropil split, which is why fafbseg uses it only without neuropils and
        with ``min_score`` None or 50 (navis-org/fafbseg-py:fafbseg/flywire/synapses.py:1164-1190@d114e29;
        connecto does the same: schlegelp/connecto:connecto/backends/cave/dataset.py, ``_fetch_edges``).
        So: not per ROI, not live (views are materialized only), only with the filtered synapses, and
        only at versions whose filtered view is the default ``synapse_view`` (which view the connection
        view aggregates at other versions, e.g. FlyWire 630, is unverified). A version whose server
        answered 404 for the view falls back to counting synapses.
        """
        s = self.settings
        if per_roi or version == LIVE or not s.filtered or s.connection_view is None:
            return False
        if s.synapse_view is None or s.view_at(version) != s.synapse_view:
            return False
        with self._lock:
            return version not in self._no_connection_view

    # -- neurons ----------------------------------------------------------------------------------

    def _annotation_map(self) -> list[tuple[str, str]]:
        """``(connectomix column, key or column of the annotation table)`` pairs in effect."""
        s = self.settings
        pairs = dict(s.annotation_map)
        for field, column in (("type", s.type_column), ("instance", s.instance_column), ("status", s.status_column)):
            if column:
                pairs[field] = column
        return list(pairs.items())

    def _annotation_filters(self, criteria: NeuronCriteria) -> dict[str, tuple[str, list[str], bool]]:
        """Criteria on annotation fields: ``{column: (source key/column, values, regex)}``."""
        out = {}
        for column, source in self._annotation_map():
            values = getattr(criteria, _CRITERIA_FIELD.get(column, column), None)
            if values is not None:
                out[column] = (source, list(values), bool(criteria.regex))
        return out

    def _reference_roots(self, version: Any, *, ids: list[int] | None = None,
                         target_ids: list[int] | None = None) -> pd.DataFrame:
        """``target_id -> root id`` rows of the reference target table, by root ids or by target ids."""
        s = self.settings
        target, root = s.annotation_reference, s.neuron_id_column
        filters = ({"filter_in_dict": {root: ids}} if ids is not None else {"filter_in_dict": {"id": target_ids}})
        rows = self._query(target, False, version, filters, ["id", root], f"querying {target!r}",
                           split_column=root if ids is not None else "id")
        rows = rows[rows[root] != 0]  # an annotation point outside every segment has root id 0
        return pd.DataFrame({"target_id": rows["id"].to_numpy(dtype="int64"),
                             "root": rows[root].to_numpy(dtype="int64")})

    def _annotation_rows(self, version: Any, select: list[str], filters: dict[str, dict],
                         id_filter: list[int] | None) -> pd.DataFrame:
        """Rows of the annotation table with a ``root`` column, from the whole table where it is cached.

        At an immutable (integer) materialization with a usable result cache, the whole table (merged
        through its reference table) is fetched once and kept on disk (:meth:`_annotation_table`); the
        filters the server would apply are then applied here, so a repeated lookup sends no annotation
        request. Otherwise the filters go to the server (:meth:`_annotation_rows_remote`).
        """
        table = self._annotation_table(version, select)
        if table is None:
            return self._annotation_rows_remote(version, select, filters, id_filter)
        if id_filter is not None:
            table = table[table["root"].isin(id_filter)]
        return _filter_locally(table, filters).reset_index(drop=True)

    def _annotation_table(self, version: Any, select: list[str]) -> pd.DataFrame | None:
        """The whole annotation table at ``version`` from the result cache (fetched once), or ``None``.

        ``None`` for ``'live'`` and whenever no usable cache was handed over (``result_cache``): without
        a cache, a filtered query is cheaper than the whole table every time.
        """
        cache = self.result_cache
        if cache is None or not cache.usable or not isinstance(version, (int, np.integer)) or isinstance(
                version, bool):
            return None
        identity = self._identities.get(int(version), self.cache_identity, self.identity_ttl)
        if identity is None:
            return None
        s = self.settings
        key = query_key({"backend": self.name, "version": int(version), "data": dict(identity)},
                        "cave_annotation_table", {"table": s.neuron_table, "reference": s.annotation_reference,
                                                  "id_column": s.neuron_id_column, "columns": list(select)})
        rows = cache.get(key)
        if rows is None:
            rows = self._whole_annotation_rows(version, select)
            cache.put(key, rows)
        return rows

    def _whole_annotation_rows(self, version: Any, select: list[str]) -> pd.DataFrame:
        """Every row of the annotation table with its ``root`` (one join, or target and reference tables at once)."""
        s = self.settings
        if s.annotation_reference is None or self._join(version, select) is not None:
            return self._annotation_rows_remote(version, select, {}, None)
        table, target, root = s.neuron_table, s.annotation_reference, s.neuron_id_column
        asks = [lambda: self._query(table, False, version, {}, ["id", "target_id", *select], f"querying {table!r}"),
                lambda: self._query(target, False, version, {}, ["id", root], f"querying {target!r}")]
        rows, refs = map_batches(lambda ask: ask(), asks, max_workers=2)
        refs = refs[refs[root] != 0]  # an annotation point outside every segment has root id 0
        refs = pd.DataFrame({"target_id": refs["id"].to_numpy(dtype="int64"),
                             "root": refs[root].to_numpy(dtype="int64")})
        return rows.astype({"target_id": "int64"}).merge(refs, on="target_id", how="inner")

    def _annotation_rows_remote(self, version: Any, select: list[str], filters: dict[str, dict],
                                id_filter: list[int] | None) -> pd.DataFrame:
        """Rows of the annotation table with a ``root`` column (merged through the reference table)."""
        s = self.settings
        table = s.neuron_table
        if s.annotation_reference is None:
            f = {k: dict(v) for k, v in filters.items()}
            if id_filter is not None:
                f.setdefault("filter_in_dict", {})[s.neuron_id_column] = id_filter
            rows = self._query(table, False, version, f, ["id", s.neuron_id_column, *select], f"querying {table!r}",
                               split_column=s.neuron_id_column if id_filter is not None else None)
            return rows.rename(columns={s.neuron_id_column: "root"}) if s.neuron_id_column != "root" else rows
        # A reference table carries target_id (a row of the target table), not root ids: merge them in
        # through the target, as caveclient's merge_reference=True does on the server -- in one request
        # (the server's join), or as two plain queries where the server refuses the join.
        join = self._join(version, select)
        if join is not None:
            f = {k: dict(v) for k, v in filters.items()}
            if id_filter is not None:
                f.setdefault("filter_in_dict", {})[join.root] = id_filter
            try:
                rows = self._query(join, False, version, f, ["id", "target_id", *select, join.root],
                                   f"querying {table!r} joined with {join.target!r}",
                                   split_column=join.root if id_filter is not None else None)
            except QueryError:  # refused (HTTP 4xx): two plain queries; remembered if they are accepted
                rows = None
            if rows is not None:
                rows = rows[rows[join.root] != 0]  # an annotation point outside every segment has root id 0
                return rows.astype({"target_id": "int64"}).rename(columns={join.root: "root"})
            with self._lock:
                self._no_join.add(table)
            try:
                return self._annotation_rows_remote(version, select, filters, id_filter)
            except BaseException:
                with self._lock:
                    self._no_join.discard(table)
                raise
        refs = self._reference_roots(version, ids=id_filter) if id_filter is not None else None
        f = {k: dict(v) for k, v in filters.items()}
        if refs is not None:
            if refs.empty:
                return pd.DataFrame({"root": pd.Series([], dtype="int64"), "id": pd.Series([], dtype="int64"),
                                     **{c: pd.Series([], dtype="object") for c in select}})
            f.setdefault("filter_in_dict", {})["target_id"] = sorted(set(refs["target_id"].tolist()))
        rows = self._query(table, False, version, f, ["id", "target_id", *select], f"querying {table!r}",
                           split_column="target_id" if refs is not None else None)
        if refs is None:
            targets = sorted(set(rows["target_id"].astype("int64").tolist()))
            refs = self._reference_roots(version, target_ids=targets) if targets else pd.DataFrame(
                {"target_id": pd.Series([], dtype="int64"), "root": pd.Series([], dtype="int64")})
        return rows.astype({"target_id": "int64"}).merge(refs, on="target_id", how="inner")

    def _join(self, version: Any, select: list[str]) -> Join | None:
        """The annotation table joined with its reference target in one query, or ``None`` where not used.

        Used at materialized versions (caveclient's ``live_live_query`` joins differently, and the
        emulator does not join live) unless the server refused the join before, or the target's root
        column would clash with a selected column of the annotation table (the server would suffix it).
        """
        s = self.settings
        if s.annotation_reference is None or version == LIVE or s.neuron_id_column in ("id", "target_id", *select):
            return None
        with self._lock:
            if s.neuron_table in self._no_join:
                return None
        return Join(s.neuron_table, s.annotation_reference, s.neuron_id_column)

    def _annotations(self, criteria: NeuronCriteria, version: Any, ids: list[int] | None) -> pd.DataFrame:
        """One row per annotated neuron: ``id``, the mapped core/cross-type columns and native extras.

        Long tables (several rows per neuron, one per key) are pivoted; several values of one key for
        one neuron are joined, sorted and unique, with ``";"`` (nothing is dropped, and the result does
        not depend on row order). Wide tables with several rows per neuron are joined the same way.
        """
        s = self.settings
        mapping = self._annotation_map()
        wanted = self._annotation_filters(criteria)
        push: dict[str, dict] = {}
        if s.annotation_shape == "long":
            key, value = s.annotation_key_column, s.annotation_value_column
            if wanted:
                # neurons with a matching (key, value) row first, then all of their rows
                roots: set[int] | None = None
                for _, (source, values, regex) in wanted.items():
                    f = {"filter_equal_dict": {key: source}}
                    if regex:
                        f["filter_regex_dict"] = {value: "^(" + "|".join(f"(?:{v})" for v in values) + ")$"}
                    else:
                        f["filter_in_dict"] = {value: values}
                    hit = set(self._annotation_rows(version, [key, value], f, ids)["root"].tolist())
                    roots = hit if roots is None else roots & hit
                ids = sorted(roots or ())
                if not ids:
                    return _empty_annotations(mapping)
            rows = self._annotation_rows(version, [key, value], {}, ids)
            rows = rows[rows[value].notna()]
            long = pd.DataFrame({"id": rows["root"].to_numpy(dtype="int64"),
                                 "key": rows[key].astype(str).to_numpy(), "value": rows[value].astype(str).to_numpy()})
        else:
            sources = list(dict.fromkeys(src for _, src in mapping))
            for _, (source, values, regex) in wanted.items():
                if regex:
                    push.setdefault("filter_regex_dict", {})[source] = (
                        "^(" + "|".join(f"(?:{v})" for v in values) + ")$")
                else:
                    push.setdefault("filter_in_dict", {})[source] = values
            rows = self._annotation_rows(version, sources, push, ids)
            parts = [pd.DataFrame({"id": rows["root"].to_numpy(dtype="int64"), "key": src,
                                   "value": rows[src].astype("string").to_numpy()}) for src in sources]
            long = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["id", "key", "value"])
            long = long[long["value"].notna()]
            long = long.assign(value=long["value"].astype(str))
            if long.empty:  # neurons annotated with empty values still are annotated neurons
                long = pd.DataFrame({"id": rows["root"].to_numpy(dtype="int64"), "key": None, "value": None})
        return _pivot(long, mapping)

    #: The core may pass ``counts`` to :meth:`fetch_neurons`: no CAVE table holds per-neuron synapse counts.
    optional_counts = True

    @_after_id_checks
    def fetch_neurons(self, criteria: NeuronCriteria, materialization: Any = None,
                      counts: bool | None = None) -> pd.DataFrame:
        """Neurons of the annotation table, with synapse counts only where they are asked for.

        No CAVE datastack of the catalogue publishes a table of per-neuron synapse counts (none was found
        in the public FlyWire, FANC, BANC or MICrONS table lists; unverified for any other deployment), so
        counts need every synapse row of the neurons. ``counts=None`` (the default) computes only what
        the criteria need (``min_upstream``/``min_post``: rows as post; ``min_downstream``: rows as pre;
        ROI criteria: per-ROI counts, which give both totals); ``True`` computes all of them; ``False``
        what the criteria need. Counts not computed are ``<NA>`` and ``df.attrs["counts"]`` says so.
        """
        ids = np.asarray(criteria.ids, dtype="int64") if criteria.ids is not None else None
        version = materialization if materialization is not None else self.resolve_materialization(ids, None)
        id_list = ids.tolist() if ids is not None else None
        if self.settings.neuron_table is None and (criteria.ids is None or self._annotation_filters(criteria)):
            raise UnsupportedOperation(
                f"datastack {self.datastack!r} has no neuron table configured (neuron_table), so only "
                "neurons given by id can be fetched")
        # CAVE fly synapse tables list connections (one row per pre/post pair): rows with the neuron as pre
        # are outgoing connections (downstream), not T-bars; rows as post are connections, one PSD each.
        want = {"pre": counts is True or bool(criteria.min_downstream),
                "post": counts is True or bool(criteria.min_upstream or criteria.min_post)}
        by_roi = bool(criteria.all_rois) or (counts is True and bool(self.settings.neuropil_column))

        def annotations() -> pd.DataFrame:
            if self.settings.neuron_table is None:
                return _empty_annotations([])
            return self._annotations(criteria, version, id_list)

        def synapse_counts(found: np.ndarray) -> pd.DataFrame | None:
            if by_roi:  # both sides, per ROI: the totals are their sums
                return self._roi_counts(found, version)
            if want["pre"] or want["post"]:
                return self._synapse_counts(found, version, by_roi=False, sides=[s for s in want if want[s]])
            return None

        segments = criteria.label == "segment" and criteria.ids is not None and not self._annotation_filters(criteria)
        if segments and (by_roi or want["pre"] or want["post"]):
            # segments need no annotation row (ROI and count criteria apply to them too), so the counts of
            # the given ids do not wait for the annotations: both are asked at once
            annotated, counted = map_batches(lambda ask: ask(), [annotations, lambda: synapse_counts(ids)],
                                             max_workers=2)
            neurons = _rows_of(annotated, ids)
        else:
            neurons = annotations()
            if segments:
                neurons = _rows_of(neurons, ids)
            counted = synapse_counts(neurons["id"].to_numpy(dtype="int64"))
        totals = counted
        if by_roi:
            roi = counted
            if criteria.all_rois:
                keep = neurons["id"].isin(_roi_match(roi, criteria))
                neurons = neurons[keep]
                roi = roi[roi["id"].isin(neurons["id"])]
            totals = roi.groupby("id", as_index=False)[["pre", "post"]].sum()
            want = {"pre": True, "post": True}
        if totals is not None:
            neurons = neurons.merge(totals, on="id", how="left")
        n = len(neurons)
        columns = {c: neurons[c].array for c in neurons.columns if c not in ("pre", "post")}
        for side, column in (("pre", "downstream"), ("post", "upstream")):
            columns[column] = (pd.array(neurons[side].fillna(0).to_numpy(dtype="int64"), dtype="Int64")
                               if want[side] and side in neurons else
                               pd.array(np.zeros(n, dtype="int64"), dtype="Int64") if want[side] else _na_ints(n))
        columns["pre"] = _na_ints(n)
        columns["post"] = columns["upstream"].copy()
        core = ["id", *NEURON_CORE, "pre", "post", "upstream", "downstream"]
        no_text = pd.array(np.full(n, None, dtype=object), dtype="string")
        order = np.argsort(np.asarray(columns["id"], dtype="int64"), kind="stable")
        names = core + [c for c in columns if c not in core]
        out = frames.from_columns({c: columns[c].take(order) if c in columns else no_text.copy() for c in names})
        columns = {"post": ["post", "upstream"], "pre": ["downstream"]}
        done = [c for side in ("post", "pre") if want[side] for c in columns[side]]
        missing = [c for side in ("post", "pre") if not want[side] for c in columns[side]]
        if missing:
            out.attrs["counts"] = ("not computed; pass counts=True" if not done else
                                   f"{', '.join(done)} computed for the criteria, {', '.join(missing)} not "
                                   "computed; pass counts=True")
        return out

    def _roi_counts(self, ids: np.ndarray, version: Any) -> pd.DataFrame:
        """Per-ROI counts of ``ids``; the last answer at an immutable version is remembered for a subset.

        A lookup with ROI criteria or ``counts=True`` computes them, and the core then asks
        :meth:`fetch_roi_counts` for (a subset of) the same neurons: that must not pull the rows again.
        They are remembered with the version's identity (as remembered for :attr:`identity_ttl`), so a
        server re-deployed with other data under the same number is not answered with the old counts.
        """
        ids = np.asarray(ids, dtype="int64")
        tag = None  # (version, identity): which data the remembered counts are of
        if isinstance(version, (int, np.integer)) and not isinstance(version, bool):
            tag = (int(version), self._identities.get(int(version), self.cache_identity, self.identity_ttl))
        with self._lock:
            memo = self._roi_memo
        if tag is not None and memo is not None and memo[0] == tag and np.isin(ids, memo[1]).all():
            return memo[2][memo[2]["id"].isin(ids)].reset_index(drop=True)
        roi = self._synapse_counts(ids, version, by_roi=True)
        if tag is not None:
            with self._lock:
                self._roi_memo = (tag, np.unique(ids), roi)
        return roi

    def _synapse_counts(self, ids: np.ndarray, version: Any, *, by_roi: bool,
                        sides: list[str] | tuple[str, ...] = ("pre", "post")) -> pd.DataFrame:
        """Rows per neuron (and ROI) with the neuron on each of ``sides``: one column per side."""
        if not len(ids):  # the same columns as a non-empty answer, so ROI criteria see no rows, not no column
            empty = {"id": pd.Series([], dtype="int64"), "roi": pd.Series([], dtype="object"),
                     **{side: pd.Series([], dtype="int64") for side in sides}}
            return pd.DataFrame({k: v for k, v in empty.items() if by_roi or k != "roi"})
        raw = self._synapse_rows(ids, list(sides), version, positions=False, batch_size=self.batch_size,
                                 max_workers=8, progress=False, desc="CAVE synapse counts")
        keys = ["id", "roi"] if by_roi else ["id"]
        codes, names = _roi_codes(raw[self.settings.neuropil_column]) if by_roi else (None, None)
        parts = []
        for side in sides:
            column = raw[f"{side}_pt_root_id"].to_numpy(dtype="int64")
            keep = np.isin(column, ids)
            part = pd.DataFrame({"id": column[keep], **({"roi": codes[keep]} if by_roi else {})})
            parts.append(part.groupby(keys).size().rename(side))
        out = pd.concat(parts, axis=1).fillna(0).astype("int64").reset_index()
        if by_roi:  # grouped as integer codes, which follow the names' order
            out["roi"] = names[out["roi"].to_numpy()]
        return out

    @_after_id_checks
    def fetch_roi_counts(self, ids: np.ndarray, materialization: Any = None) -> pd.DataFrame:
        if self.settings.neuropil_column is None:
            raise UnsupportedOperation(f"datastack {self.datastack!r} has no neuropil column configured")
        version = materialization if materialization is not None else self.resolve_materialization(ids, None)
        return self._roi_counts(ids, version)

    # -- id updates ------------------------------------------------------------------------------

    def update_ids(self, ids: np.ndarray, materialization: Any = None) -> pd.DataFrame:
        """Map root ids to the ids current at ``materialization`` (default: now)."""
        cg = self.client.chunkedgraph
        when = None if materialization in (None, LIVE) else self.resolver.timestamp(
            self.resolver.versions()[0].version if materialization == "latest" else int(materialization))
        with self._map_errors("updating root ids"):
            latest = np.asarray(cg.is_latest_roots(ids, timestamp=when), dtype=bool)
            rows = []
            for old, ok in zip(ids, latest):
                if ok:
                    rows.append((int(old), int(old), False, 1.0))
                    continue
                candidates = np.asarray(cg.get_latest_roots(int(old), timestamp=when), dtype="int64")
                if len(candidates) == 1:
                    rows.append((int(old), int(candidates[0]), True, 1.0))
                else:
                    best, overlap = cg.suggest_latest_roots(int(old), timestamp=when, return_fraction_overlap=True)
                    rows.append((int(old), int(best), True, float(overlap)))
        return pd.DataFrame(rows, columns=["old_id", "new_id", "changed", "confidence"])

    # -- skeletons (:mod:`.morphology`) -------------------------------------------------------------------

    capabilities = capabilities | {Capability.SKELETONS}
    OPTIONS = OPTIONS + ("skeleton_source",)
    #: Option ``skeleton_source``: ``'service'``, ``'none'`` or a precomputed URL template with
    #: ``{materialization}``; ``None`` takes the catalogue's ``morphology.skeleton_source``.
    skeleton_source: str | None = None
    _skeleton_reader = None

    @_after_id_checks
    def get_skeletons(self, ids: np.ndarray) -> Any:
        """Skeletons (``TreeNeuron`` s in nm) of root ids at the materialization in effect.

        From the datastack's published source: see ``connectomix_cave.morphology``.
        """
        from .morphology import SkeletonReader

        if self._skeleton_reader is None:
            self._skeleton_reader = SkeletonReader(self, self.skeleton_source)
        return self._skeleton_reader.get(ids)

    # -- meshes ----------------------------------------------------------------------------------

    @_after_id_checks
    def get_meshes(self, ids: np.ndarray) -> Any:
        """Meshes of root ids at the materialization in effect, from the datastack's segmentation source.

        ``MeshNeuron`` s in nm; roots without a mesh raise ``IdsNotFoundError`` (see :mod:`.meshes`).
        """
        from .meshes import get_meshes

        return get_meshes(self, ids)


#: String core columns of the neuron table besides ``id`` (schema.NEURONS).
NEURON_CORE = ("type", "instance", "status", "side", "class", "superclass", "nt")
#: NeuronCriteria field of a neuron column when the names differ.
_CRITERIA_FIELD = {"class": "class_"}
#: Each dataset's side spelling -> connectomix's (FlyWire left/right/center, FANC 'left soma' ...,
#: MANC LHS/RHS/Midline, male CNS L/R/M); anything else is <NA> (the raw value stays in its native column).
SIDE_VALUES = {"left": "left", "l": "left", "lhs": "left", "left soma": "left",
               "right": "right", "r": "right", "rhs": "right", "right soma": "right",
               "center": "center", "centre": "center", "m": "center", "midline": "center",
               "midline soma": "center", "middle": "center"}
#: Transmitter spellings -> lowercase full names (FlyWire/fafbseg abbreviations ach, gaba, glut, oct, ser, da).
NT_VALUES = {"ach": "acetylcholine", "acetylcholine": "acetylcholine", "gaba": "gaba", "glut": "glutamate",
             "glu": "glutamate", "glutamate": "glutamate", "da": "dopamine", "dopamine": "dopamine",
             "ser": "serotonin", "5ht": "serotonin", "serotonin": "serotonin", "oct": "octopamine",
             "octopamine": "octopamine", "his": "histamine", "hist": "histamine", "histamine": "histamine"}


def _normalise(column: str, values: pd.Series) -> pd.Series:
    if column == "side":
        return values.str.lower().map(SIDE_VALUES).astype("string")
    if column == "nt":
        return values.str.lower().map(NT_VALUES).astype("string")
    return values


#: Neuropil values that name no neuropil (as :meth:`CaveBackend._roi` reads them).
_NO_ROI = ("", "NA", "UNASGD", "None")


def _roi_codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each row's neuropil as an integer code into sorted names (an object array of str).

    The names are :meth:`CaveBackend._roi`'s, with missing ones ``schema.NOT_PRIMARY``; the distinct
    raw values are few, so only they are converted, not every row.
    """
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)  # missing -> -1
    raw = pd.Series(uniques, dtype=object).astype("string")
    named = raw.mask(raw.isin(_NO_ROI)).fillna(schema.NOT_PRIMARY).to_numpy(dtype=object)
    names, inverse = np.unique(np.append(named, schema.NOT_PRIMARY).astype(str), return_inverse=True)
    return inverse[codes], names.astype(object)  # code -1 takes the appended NOT_PRIMARY


def _rows_of(annotated: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    """One row per id of ``ids`` (in their order) with ``annotated``'s columns, ``<NA>`` where it has no row.

    A left merge on ``id``, done by position: ``annotated`` (one row per id, sorted, as :func:`_pivot`
    gives it) is looked up with ``searchsorted`` and each column taken once. Other tables are merged.
    """
    known = annotated["id"].to_numpy(dtype="int64")
    if len(known) > 1 and not (np.diff(known) > 0).all():
        return pd.DataFrame({"id": ids}).merge(annotated, on="id", how="left")
    at = np.minimum(np.searchsorted(known, ids), max(len(known) - 1, 0))
    rows = np.where(known[at] == ids, at, -1) if len(known) else np.full(len(ids), -1)
    columns = {"id": np.asarray(ids, dtype="int64")}
    for name in annotated.columns:
        if name != "id":
            columns[name] = annotated[name].array.take(rows, allow_fill=True)
    return frames.from_columns(columns)


def _na_ints(n: int) -> pd.api.extensions.ExtensionArray:
    """``n`` missing ``Int64`` values (without a Python list of ``pd.NA``)."""
    return pd.arrays.IntegerArray(np.zeros(n, dtype="int64"), np.ones(n, dtype=bool))


def _empty_annotations(mapping: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame({"id": pd.Series([], dtype="int64"),
                         **{c: pd.Series([], dtype="string") for c, _ in mapping}})


def _pivot(long: pd.DataFrame, mapping: list[tuple[str, str]]) -> pd.DataFrame:
    """``(id, key, value)`` rows -> one row per id: mapped columns, then one native column per key.

    Several values of one key for one neuron become their sorted unique values joined with ``";"``.
    A native column whose name is a connectomix column (BANC's key ``side``) is not repeated.
    Vectorised: each (neuron, key) cell is one slot of a flat array; only cells with several rows are
    grouped (most neurons have one value per key).
    """
    id_codes, ids = pd.factorize(long["id"].to_numpy(dtype="int64"), sort=True)
    keyed = long["key"].notna().to_numpy(dtype=bool)
    key_codes, keys = pd.factorize(long["key"].to_numpy(dtype=object)[keyed], sort=True)
    n, k = len(ids), len(keys)
    cells = id_codes[keyed].astype("int64") * k + key_codes
    values = long["value"].to_numpy(dtype=object)[keyed]
    grid = np.full(n * k, None, dtype=object)
    if len(cells):
        single = np.bincount(cells, minlength=n * k)[cells] == 1
        grid[cells[single]] = values[single]
        if not single.all():
            several = (pd.DataFrame({"cell": cells[~single], "value": values[~single]}).drop_duplicates()
                       .sort_values(["cell", "value"]).groupby("cell", sort=False)["value"].agg(";".join))
            grid[several.index.to_numpy()] = several.to_numpy(dtype=object)
    grid = grid.reshape(n, k)
    column_of = {key: grid[:, j] for j, key in enumerate(keys)}
    out: dict[str, Any] = {"id": ids}
    for column, source in mapping:
        text = pd.array(column_of[source] if source in column_of else np.full(n, None, dtype=object), dtype="string")
        out[column] = _normalise(column, pd.Series(text, copy=False)).array if column in ("side", "nt") else text
    taken = set(out) | set(schema.NEURONS.names) | {"pre", "post", "upstream", "downstream"}
    for key in keys:
        if key not in taken and key not in NEURON_CORE:  # pandas strings, as native text columns everywhere
            out[key] = pd.array(column_of[key], dtype="string")
    return pd.DataFrame(out)


def _roi_match(roi: pd.DataFrame, c: NeuronCriteria) -> set[int]:
    ids = set(roi["id"])
    if c.rois:
        has = [set(roi[(roi.roi == r) & (roi.pre + roi.post > 0)]["id"]) for r in c.rois]
        ids &= set.intersection(*has) if c.roi_req == "all" else set.union(*has)
    for r in c.input_rois or ():
        ids &= set(roi[(roi.roi == r) & (roi.post >= c.min_roi_inputs)]["id"])
    for r in c.output_rois or ():
        ids &= set(roi[(roi.roi == r) & (roi.pre >= c.min_roi_outputs)]["id"])
    return ids


def _filter_locally(rows: pd.DataFrame, filters: dict[str, dict]) -> pd.DataFrame:
    """``rows`` that pass the materialization filters ``filters`` (equal, in, regex search like Postgres ``~``)."""
    keep = np.ones(len(rows), dtype=bool)
    for kind, spec in filters.items():
        for column, value in spec.items():
            values = rows[column]
            if kind == "filter_equal_dict":
                hit = values == value
            elif kind == "filter_in_dict":
                hit = values.isin(list(value))
            elif kind == "filter_regex_dict":
                try:
                    pattern = re.compile(value)
                except re.error as exc:
                    raise InvalidArgumentError(f"invalid regular expression {value!r}: {exc}") from None
                hit = values.map(lambda v: isinstance(v, str) and pattern.search(v) is not None)
            else:
                raise ValueError(f"no local form of the CAVE filter {kind!r}")
            keep &= hit.fillna(False).to_numpy(dtype=bool)
    return rows[keep]


def _rate_key(column: str, base: Mapping[str, Mapping[str, Any]]) -> str:
    """What rows per id are learnt under: the id column and which columns the other filters constrain.

    Rows per id differ with the filters (incoming rows from outside the query set are fewer than all
    incoming rows), so each kind of query learns its own rate.
    """
    others = sorted(f"{kind}:{name}" for kind, spec in base.items() if spec for name in spec)
    return "|".join([column, *others])


def _with_ids(base: dict[str, dict], column: str, ids: np.ndarray) -> dict[str, dict]:
    """A copy of the filters ``base`` that also asks for ``column`` in ``ids``."""
    filters = {k: dict(v) for k, v in base.items()}
    filters.setdefault("filter_in_dict", {})[column] = [int(i) for i in ids]
    return filters


@dataclasses.dataclass(frozen=True)
class Join:
    """A reference table joined with its target table in one query, as caveclient's ``merge_reference=True``.

    caveclient 8.2.1 sends ``query_table(..., merge_reference=True)`` as a join query (``POST
    .../version/{v}/query`` with ``"tables": [[table, "target_id"], [target, "id"]]`` and ``suffix_map``
    ``{table: "", target: "_ref"}``; CAVEconnectome/CAVEclient:caveclient/materializationengine.py
    ``_resolve_merge_reference`` and ``_format_query_components``), after reading the table's metadata for
    its reference table. Here the join is asked directly (``join_query``: the same request without the
    metadata read), with filters keyed by the table that owns each column, so that ids can filter the
    target's root column -- which ``query_table`` cannot (it puts every filter on the annotation table).
    Columns of the target that also exist in the table come back with the target's suffix (the
    FlyConnectome CAVE tutorial's merged output: ``id_ref``, ``valid_ref``); only the target's root column
    is selected, and it is read back under either name.
    """

    table: str
    target: str
    root: str  #: the target's root id column

    def tables(self) -> list[list[str]]:
        return [[self.table, "target_id"], [self.target, "id"]]

    def suffixes(self) -> dict[str, str]:
        return {self.table: "", self.target: "_ref"}

    def _owner(self, column: str) -> str:
        return self.target if column == self.root else self.table

    def select(self, columns: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for column in columns:
            out.setdefault(self._owner(column), []).append(column)
        return out

    def filters(self, flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for column, value in flat.items():
            out.setdefault(self._owner(column), {})[column] = value
        return out

    def rows(self, df: pd.DataFrame) -> pd.DataFrame:
        suffixed = self.root + "_ref"
        if self.root not in df.columns and suffixed in df.columns:
            df = df.rename(columns={suffixed: self.root})
        return df


class _LazyClient:
    """Stands for the backend's ``CAVEclient`` until something is asked of it (then it is built)."""

    def __init__(self, backend: CaveBackend):
        self._backend = backend
        self.server_address = backend.server

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend.client, name)


def _ids_record(version: int, meta: Mapping[str, Any], ids: np.ndarray) -> str:
    """The name of the record saying ``ids`` were root ids at ``version`` (with ``meta``'s time stamp)."""
    digest = hashlib.sha256(np.unique(np.asarray(ids, dtype="int64")).tobytes()).hexdigest()
    return f"ids at {version} {meta.get('time_stamp')} {digest}"


def _within(seconds: float, build: Callable[[], Any], doing: str) -> Any:
    """``build()`` in a helper thread, or :class:`RequestTimeoutError` if it takes longer than ``seconds``.

    A stalled helper thread is left behind (a daemon; it ends when the server answers or drops the
    connection): requests made without a timeout cannot be interrupted from outside.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = build()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=run, name="connectomix-cave-connect", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise RequestTimeoutError(f"CAVE did not answer in time while {doing} (timeout {seconds:g}s)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _transient(exc: ConnectomixError) -> bool:
    """Whether a failure may pass on a new try (timeouts, dropped connections, cut bodies, 429/502/503/504)."""
    if isinstance(exc, (RequestTimeoutError, IncompleteResponseError)):
        return True
    return type(exc) is ServerError and (exc.status is None or exc.status in RETRY_STATUSES)


def _seconds(name: str, value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds; got {value!r}")
    return seconds


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _strip_content(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
