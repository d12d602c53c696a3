"""Materialization versions and their resolution for a set of root ids.

``'auto'`` follows fafbseg's ``find_mat_version`` exactly: walk the valid
versions newest first and take the first at which *all* query ids are latest
roots (``is_latest_roots(ids, timestamp=<version time>)``); if none, use
``'live'`` when every id is current now and the datastack allows live
queries; otherwise raise, naming the ids that exist at no version.

Unlike fafbseg, a pinned version (an int or ``'latest'``) at which some ids did
not exist raises :class:`~connectomix.errors.MaterializationError` instead of
printing a warning and returning an empty table.

The version list comes from one ``get_versions_metadata`` call and is cached
until the earliest version expires or an hour has passed (fafbseg rebuilds its
whole client for the same reason).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np

from connectomix import hints
from connectomix.errors import InvalidArgumentError, MaterializationError, UnsupportedOperation

__all__ = ["Version", "VersionResolver", "LIVE"]

LIVE = "live"
_REFRESH_SECONDS = 3600.0


@dataclass(frozen=True)
class Version:
    """One materialization: its number, snapshot time and expiry."""

    version: int
    timestamp: datetime
    expires_on: datetime | None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc)


class VersionResolver:
    """Resolve ``materialization=`` values against one CAVE datastack.

    Parameters
    ----------
    client
        A ``caveclient.CAVEclient`` (only ``materialize.get_versions_metadata``
        and ``chunkedgraph.is_latest_roots`` / ``get_root_timestamps`` are used).
    live_allowed
        Whether ``'live'`` may be used (FlyWire public: no).
    announce
        Called with the message the first time a version is used; by default
        :func:`connectomix.hints.announce` (an ``INFO`` log line on the
        ``"connectomix"`` logger, once per process, server and datastack).
    """

    def __init__(self, client: Any, *, live_allowed: bool, announce: Callable[[str], None] | None = None,
                 datastack: str = ""):
        self.client = client
        self.live_allowed = live_allowed
        self.datastack = datastack
        where = f"{getattr(client, 'server_address', None) or ''}/{datastack}"
        self._announce = announce or (lambda msg: hints.announce(where, msg))  # INFO log, once per process
        self._announced: set = set()
        self._lock = threading.Lock()
        self._versions: list[Version] | None = None
        self._fetched_at = 0.0
        # Whether ids were roots at a *past* version time never changes, so answers are memoised:
        # (version numbers, ids) -> the version 'auto' chose; (version, ids) -> checked OK.
        self._known: OrderedDict = OrderedDict()

    # -- version list --------------------------------------------------------------------

    def versions(self) -> list[Version]:
        """Valid (unexpired) versions, newest first."""
        with self._lock:
            now = datetime.now(timezone.utc)
            stale = (
                self._versions is None
                or time.monotonic() - self._fetched_at > _REFRESH_SECONDS
                or any(v.expires_on is not None and v.expires_on <= now for v in self._versions)
            )
            if stale:
                meta = self.client.materialize.get_versions_metadata(expired=False)
                versions = [
                    Version(int(m["version"]), _utc(m["time_stamp"]), _utc(m.get("expires_on")))
                    for m in meta
                    if m.get("valid", True)
                ]
                self._versions = sorted(versions, key=lambda v: v.version, reverse=True)
                self._fetched_at = time.monotonic()
            return list(self._versions)

    def version(self, number: int) -> Version:
        for v in self.versions():
            if v.version == number:
                return v
        valid = [v.version for v in self.versions()]
        raise InvalidArgumentError(
            f"materialization {number} is not available on datastack {self.datastack!r} (it may have expired); "
            f"available versions: {sorted(valid)}, or use 'auto', 'latest' or 'live'"
        )

    def timestamp(self, version: int | str) -> datetime:
        if version == LIVE:
            return datetime.now(timezone.utc)
        return self.version(int(version)).timestamp

    # -- resolution -----------------------------------------------------------------------

    def resolve(self, ids: np.ndarray | None, requested: Any) -> int | str:
        """Return the concrete version (an int, or ``'live'``) to query ``ids`` at."""
        if isinstance(requested, str) and requested.isdigit():
            requested = int(requested)
        if requested == "auto":
            result = self._auto(ids) if ids is not None and len(ids) else self.versions()[0].version
        elif requested == "latest":
            result = self.versions()[0].version
            self._check_at(ids, result)
        elif requested == LIVE:
            if not self.live_allowed:
                raise UnsupportedOperation(
                    f"datastack {self.datastack!r} does not allow live queries; use 'auto', 'latest' or a version"
                )
            self._check_live(ids)
            result = LIVE
        elif isinstance(requested, (int, np.integer)) and not isinstance(requested, bool):
            result = int(requested)
            self._check_at(ids, result)
        else:
            raise InvalidArgumentError(
                f"materialization must be 'auto', 'latest', 'live' or a version number; got {requested!r}"
            )
        self.announce(result)
        return result

    def announce(self, result: int | str) -> None:
        """Say which version is used (the ``announce`` callback), the first time ``result`` is used."""
        if result not in self._announced:
            self._announced.add(result)
            self._announce(f"Using materialization version {result}." if result != LIVE
                           else "Using live (un-materialized) data.")

    def _remember(self, key, value) -> None:
        with self._lock:
            self._known[key] = value
            self._known.move_to_end(key)
            while len(self._known) > 1024:
                self._known.popitem(last=False)

    def _recall(self, key):
        with self._lock:
            return self._known.get(key)

    def checked_at(self, ids: np.ndarray, version: int) -> bool:
        """Whether ``ids`` were already found to be roots at ``version`` (remembered; no request)."""
        return bool(self._recall(("at", version, np.asarray(ids, dtype="int64").tobytes())))

    def _auto(self, ids: np.ndarray) -> int | str:
        cg = self.client.chunkedgraph
        versions = self.versions()
        key = ("auto", tuple(v.version for v in versions), ids.tobytes())
        known = self._recall(key)
        if known is not None:
            return known
        for v in versions:
            if np.all(cg.is_latest_roots(ids, timestamp=v.timestamp)):
                self._remember(key, v.version)
                return v.version
        latest_now = np.asarray(cg.is_latest_roots(ids), dtype=bool)
        if latest_now.all() and self.live_allowed:
            return LIVE
        never = ids[~latest_now] if not latest_now.all() else ids
        detail = (
            f"{len(never)} id(s) are outdated (no longer current): {_show(never)}; map them to current ids "
            "with ds.update_ids(ids)"
            if not latest_now.all()
            else f"they are all current, but datastack {self.datastack!r} allows no live queries and no "
            "materialization has them all yet; wait for the next materialization"
        )
        raise MaterializationError(
            f"The root ids do not (co-)exist in any available materialization version of "
            f"{self.datastack!r} (including live): {detail}",
            ids=never,
        )

    def _check_at(self, ids: np.ndarray | None, version: int) -> None:
        if ids is None or not len(ids):
            self.version(version)
            return
        v = self.version(version)
        key = ("at", version, np.asarray(ids, dtype="int64").tobytes())
        if self._recall(key):
            return
        cg = self.client.chunkedgraph
        ok = np.asarray(cg.is_latest_roots(ids, timestamp=v.timestamp), dtype=bool)
        if ok.all():
            self._remember(key, True)
            return
        bad = ids[~ok]
        created = self._creation_times(bad)
        unknown = bad[np.isnan(created)]
        if len(unknown):
            raise MaterializationError(
                f"{len(unknown)} id(s) are not root ids of datastack {self.datastack!r} at all (never existed, "
                f"or supervoxel ids): {_show(unknown)}",
                ids=unknown,
            )
        too_new = bad[created > v.timestamp.timestamp()]
        outdated = bad[created <= v.timestamp.timestamp()]
        parts = []
        if len(too_new):
            parts.append(f"{len(too_new)} id(s) were created after materialization {version} "
                         f"({v.timestamp:%Y-%m-%d %H:%M} UTC): {_show(too_new)}; use a newer version or 'auto'")
        if len(outdated):
            parts.append(f"{len(outdated)} id(s) had already been replaced by edits at materialization "
                         f"{version}: {_show(outdated)}; use an older version, or map them with "
                         f"ds.update_ids(ids, materialization={version})")
        raise MaterializationError(
            f"materialization {version} of {self.datastack!r} does not contain all query ids: " + "; ".join(parts),
            ids=bad,
        )

    def _creation_times(self, ids: np.ndarray) -> np.ndarray:
        """Epoch seconds at which each root id was created; NaN for ids the chunkedgraph does not know."""
        import requests

        cg = self.client.chunkedgraph
        try:
            return np.asarray([t.timestamp() for t in _as_datetimes(cg.get_root_timestamps(ids))], dtype=float)
        except requests.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 400 or len(ids) > 200:
                raise
        out = np.full(len(ids), np.nan)
        for i, root in enumerate(ids):  # find which ids the server rejects
            try:
                out[i] = _as_datetimes(cg.get_root_timestamps([int(root)]))[0].timestamp()
            except requests.HTTPError as exc:
                if exc.response is None or exc.response.status_code != 400:
                    raise
        return out

    def _check_live(self, ids: np.ndarray | None) -> None:
        if ids is None or not len(ids):
            return
        ok = np.asarray(self.client.chunkedgraph.is_latest_roots(ids), dtype=bool)
        if not ok.all():
            raise MaterializationError(
                f"{int((~ok).sum())} id(s) are outdated (not current in live data): {_show(ids[~ok])}; "
                "map them to current ids with ds.update_ids(ids)",
                ids=ids[~ok],
            )


def _as_datetimes(values) -> list[datetime]:
    return [_utc(v) if not isinstance(v, (int, float)) else datetime.fromtimestamp(v, timezone.utc) for v in values]


def _show(ids: np.ndarray, n: int = 10) -> str:
    ids = [int(i) for i in ids]
    more = f" and {len(ids) - n} more" if len(ids) > n else ""
    return ", ".join(map(str, ids[:n])) + more
