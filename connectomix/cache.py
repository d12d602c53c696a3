"""A persistent on-disk cache of query results that cannot serve a wrong table.

Only answers whose data cannot change unnoticed are cached: the backend gives
a *cache identity* of the data it serves (a CAVE materialization with its
version metadata, a neuPrint dataset with its ``last-mod``/``uuid`` stamps, a
release folder with its file fingerprints) and returns ``None`` for live data.
Keys are SHA-256 digests of that identity and of every query field that
changes the answer (fetch knobs such as ``progress`` are left out); they never
contain tokens.

Every entry is self-checking. It holds a header (the key, the row count and
the Arrow schema), the table's ``attrs`` as JSON and the table as an Arrow IPC
stream -- never a pickle -- behind a SHA-256 digest of all of it. A read
verifies the digest *before* any byte reaches pyarrow, decodes the stream with
:func:`connectomix.wire.read_arrow_stream` (so a cut stream is refused) and
compares the decoded table with the header. A bad entry is deleted, reported
with one :class:`~connectomix.errors.CacheWarning`, and the caller recomputes
the answer.

A cache that cannot be used (read-only or missing directory, unwritable home,
corrupt index, full disk, locked database) turns itself off with one
:class:`~connectomix.errors.CacheWarning`: queries keep working, uncached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

from .errors import CacheWarning, ConnectomixError, IncompleteResponseError
from .wire import read_arrow_stream

__all__ = ["ResultCache", "IdentityMemo", "CheckedIds", "DiskRecords", "check_identity_ttl", "default_cache_dir", "query_key", "file_fingerprints", "CorruptEntryError"]

DEFAULT_SIZE_LIMIT = 2 * 1024**3  # 2 GiB

#: Bumped when the entry layout or the key payload changes, so older entries are never looked up.
KEY_FORMAT = 3  # 3: SHA-256 entry digests (were BLAKE2b: SHA-256 has CPU instructions, about twice as fast here)
_MAGIC = b"CXRC"  # connectomix result cache
_DIGEST_SIZE = 32
_PERSON = b"connectomix-res"  # hashed before the body: digests of this format only


def default_cache_dir() -> Path:
    """``$CONNECTOMIX_CACHE_DIR``, else the user cache directory."""
    env = os.environ.get("CONNECTOMIX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("connectomix")) / "results"


_PLAIN = (int, str, float)  # exactly these types (not bool, not numpy scalars) key as they are


def _normalise(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _normalise(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iufb":  # tolist() gives Python ints, floats, bools: as the same list would key
            return value.tolist()
        return [_normalise(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        if all(type(v) in _PLAIN for v in value):  # ids: thousands of plain ints, taken as they are
            return list(value)
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in sorted(value.items())}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


#: Query fields that change how a result is fetched, not what it is (only these are left out of keys).
# knobs that change how a table is fetched, not the table (``check_ids``: the backend checks the ids in its
# own query and raises, or returns the same table the core's check would have let through)
_IGNORED = frozenset({"max_workers", "progress", "batch_size", "check_ids"})


def query_key(identity: dict, method: str, query: Any) -> str:
    """A stable digest of (data identity, method, query) without fetch-only knobs.

    Every other field of ``query`` is part of the key, so two queries that can
    have different answers never share an entry.

    Examples
    --------
    >>> a = query_key({"server": "h", "version": 3}, "get_synapses", {"ids": np.array([1, 2]), "progress": True})
    >>> a == query_key({"version": 3, "server": "h"}, "get_synapses", {"ids": [1, 2], "progress": False})
    True
    >>> a == query_key({"server": "h", "version": 3}, "get_synapses", {"ids": [1, 2], "min_score": 0.5})
    False
    """
    q = _normalise(query)
    if isinstance(q, dict):
        q = {k: v for k, v in q.items() if k not in _IGNORED}
    payload = json.dumps({"format": KEY_FORMAT, "identity": _normalise(identity), "method": method, "query": q},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def file_fingerprints(folder: str | os.PathLike, names: Any) -> dict[str, list[int] | None]:
    """``{name: [size, mtime_ns, ctime_ns, inode]}`` of files in ``folder`` (``None`` if absent).

    A cheap identity of files for cache keys: a file rewritten, replaced or
    copied over (even with its old mtime, which moves its ctime) gets a new
    fingerprint. Only ``stat`` is called; nothing is read.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp()); _ = (d / "a").write_bytes(b"x")
    >>> fp = file_fingerprints(d, ["a", "b"]); fp["a"][0], fp["b"]
    (1, None)
    """
    out: dict[str, list[int] | None] = {}
    for name in names:
        try:
            st = os.stat(Path(folder) / name)
        except FileNotFoundError:
            out[name] = None
        else:
            out[name] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    return out


def check_identity_ttl(value: Any) -> float:
    """A backend's ``identity_ttl`` option: seconds >= 0 (ASCII decimals from a URI are read); else raise.

    Examples
    --------
    >>> check_identity_ttl("0"), check_identity_ttl(300)
    (0.0, 300.0)
    >>> check_identity_ttl(-1)
    Traceback (most recent call last):
    ...
    connectomix.errors.InvalidArgumentError: identity_ttl must be a number of seconds >= 0 (0: ask for the data's identity on every cached query); got -1
    """
    from .errors import InvalidArgumentError

    number = float("nan")
    if isinstance(value, str) and re.fullmatch(r"[0-9]+(\.[0-9]*)?|\.[0-9]+", value.strip()):
        number = float(value.strip())
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        number = float(value)
    if not 0 <= number < float("inf"):
        raise InvalidArgumentError("identity_ttl must be a number of seconds >= 0 (0: ask for the data's identity "
                                   f"on every cached query); got {value!r}")
    return number


class IdentityMemo:
    """Cache identities of data versions, remembered for a bounded time; safe to share between threads.

    :class:`connectomix.Dataset` asks its backend's
    :meth:`~connectomix.backend.Backend.cache_identity` through one of these.
    An identity is remembered for ``ttl`` seconds (the backend's
    ``identity_ttl``), so warm cache hits on a remote dataset send no request;
    with ``ttl`` 0 (release folders: a few ``stat`` calls) it is asked every
    time. ``fresh=True`` always asks (and remembers the answer): the check
    after a cache miss that the data did not change while it was fetched.

    Parameters
    ----------
    clock
        Seconds, monotonic (tests pass their own).
    size
        Versions remembered at most (the oldest is forgotten first).

    Examples
    --------
    >>> asked = []
    >>> memo = IdentityMemo(clock=lambda: now)
    >>> now = 0.0
    >>> def identity(version):
    ...     asked.append(version)
    ...     return {"version": version, "stamp": len(asked)}
    >>> memo.get(3, identity, ttl=60)["stamp"], memo.get(3, identity, ttl=60)["stamp"]
    (1, 1)
    >>> now = 61.0
    >>> memo.get(3, identity, ttl=60)["stamp"]   # older than ttl: asked again
    2
    >>> memo.get(3, identity, ttl=0)["stamp"], memo.get(3, identity, ttl=60, fresh=True)["stamp"]
    (3, 4)
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, size: int = 64):
        self._clock = clock
        self._size = int(size)
        self._lock = threading.Lock()
        self._known: dict[str, tuple[float, Any]] = {}

    def get(self, version: Any, ask: Callable[[Any], Any], ttl: float, *, fresh: bool = False,
            disk: DiskRecords | None = None) -> Any:
        """``ask(version)``, or its answer from less than ``ttl`` seconds ago.

        ``disk``: where answers are also kept for new processes (:class:`DiskRecords`): an answer
        written there less than ``ttl`` seconds ago is taken (and remembered here for what is left of
        ``ttl``) instead of asking; every answer asked is written there.
        """
        key = json.dumps(_normalise(version), sort_keys=True, default=str)
        asked_at = self._clock()
        if not fresh and ttl > 0:
            with self._lock:
                known = self._known.get(key)
            if known is not None and 0 <= asked_at - known[0] < ttl:
                return known[1]
            found = disk.get("identity " + key, ttl) if disk is not None else None
            if found is not None:
                identity, age = found
                self._put(key, asked_at - age, identity)  # as old as the record: trusted for ttl in all
                return identity
        identity = ask(version)  # not under the lock: a request; two threads may both ask once
        if disk is not None:
            identity = _json_form(identity)  # as a record reads back, so both compare equal
        if ttl > 0:
            self._put(key, asked_at, identity)  # timed from before the request: never too young
            if disk is not None and identity is not None:  # None (live data) costs nothing to ask again
                disk.put("identity " + key, identity)
        return identity

    def _put(self, key: str, asked_at: float, identity: Any) -> None:
        with self._lock:
            self._known.pop(key, None)
            self._known[key] = (asked_at, identity)
            while len(self._known) > self._size:
                del self._known[next(iter(self._known))]


class CheckedIds:
    """Outcomes of id-existence checks (the missing ids, often none), by key; bounded and thread-safe.

    :class:`connectomix.Dataset` keeps one, keyed by :func:`query_key` of the
    data's identity and the ids, so a repeated query does not ask the backend
    again whether its ids exist, and ids found missing raise again without a
    request. It lives in memory only: result entries on disk stay answers to
    queries, and a new Dataset checks once more.

    Examples
    --------
    >>> checked = CheckedIds(size=2)
    >>> checked.put("a", np.array([], dtype="int64")); checked.put("b", np.array([7])); checked.put("c", np.array([]))
    >>> checked.get("a") is None, checked.get("b").tolist()   # "a" was the oldest
    (True, [7])
    """

    def __init__(self, size: int = 4096):
        self._size = int(size)
        self._lock = threading.Lock()
        self._known: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        """The missing ids recorded for ``key`` (a copy), or ``None`` if never checked (or forgotten)."""
        with self._lock:
            missing = self._known.get(key)
            if missing is not None:
                self._known.move_to_end(key)
        return None if missing is None else missing.copy()

    def put(self, key: str, missing: np.ndarray) -> None:
        with self._lock:
            self._known[key] = np.array(missing, dtype="int64")
            self._known.move_to_end(key)
            while len(self._known) > self._size:
                self._known.popitem(last=False)


def memo_key(*parts: Any) -> str:
    """A short key for :class:`TableMemo` from plain values and id arrays (hashed by their bytes, not per id)."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(b"a" + str(part.dtype).encode() + part.tobytes())
        else:
            h.update(b"v" + json.dumps(part, sort_keys=True, default=repr).encode())
        h.update(b"\0")
    return h.hexdigest()


class TableMemo:
    """Finished tables kept in memory by key: the in-session front of the result cache; bounded and thread-safe.

    :class:`connectomix.Dataset` keeps one for the tables it returns, keyed by
    :func:`memo_key` of the method, the data's identity (as remembered for
    ``identity_ttl``) and the normalised arguments, so repeating a query in a
    notebook costs a dictionary lookup and a copy: no request, no decoding, no
    re-sorting. Tables are stored and handed out as copies, so a caller who
    edits a returned table never changes a later answer. It holds at most
    ``max_cells`` table cells (rows x columns; the oldest are forgotten first).

    Examples
    --------
    >>> memo = TableMemo(max_cells=5)
    >>> memo.put("a", pd.DataFrame({"x": [1, 2]})); memo.put("b", pd.DataFrame({"x": [1, 2, 3, 4]}))
    >>> memo.get("a") is None, memo.get("b")["x"].tolist()   # "a" forgotten: 2 + 4 cells > 5
    (True, [1, 2, 3, 4])
    >>> t = memo.get("b"); t.loc[0, "x"] = 99; memo.get("b")["x"].tolist()[0]   # a copy each time
    1
    """

    def __init__(self, max_cells: int = 20_000_000):
        self._max = int(max_cells)
        self._lock = threading.Lock()
        self._known: OrderedDict[str, pd.DataFrame] = OrderedDict()
        self._cells = 0

    def get(self, key: str) -> pd.DataFrame | None:
        """A copy of the table stored under ``key``, or ``None``."""
        with self._lock:
            df = self._known.get(key)
            if df is not None:
                self._known.move_to_end(key)
        return None if df is None else df.copy()

    def put(self, key: str, df: pd.DataFrame) -> None:
        cells = df.size
        if cells > self._max:
            return
        df = df.copy()
        with self._lock:
            old = self._known.pop(key, None)
            self._cells -= 0 if old is None else old.size
            self._known[key] = df
            self._cells += cells
            while self._cells > self._max:
                _, dropped = self._known.popitem(last=False)
                self._cells -= dropped.size


# --- entries -------------------------------------------------------------------------------------------


class CorruptEntryError(ConnectomixError):
    """A cache entry failed its checks (digest, layout, key, decoded table)."""


def _digest(body: bytes | memoryview) -> bytes:
    h = hashlib.sha256(_PERSON)
    h.update(body)
    return h.digest()


def _schema_of(table: pa.Table) -> list[list[str]]:
    return [[field.name, str(field.type)] for field in table.schema]


def encode_entry(key: str, df: pd.DataFrame) -> bytes:
    """Serialise ``df`` for ``key``: magic, SHA-256 digest, then header, attrs and Arrow stream.

    Examples
    --------
    >>> blob = encode_entry("k", pd.DataFrame({"id": [1, 2]}))
    >>> decode_entry("k", blob)["id"].tolist()
    [1, 2]
    >>> bad = bytearray(blob); bad[-20] ^= 1
    >>> decode_entry("k", bytes(bad))
    Traceback (most recent call last):
    ...
    connectomix.cache.CorruptEntryError: digest mismatch (the stored bytes changed)
    """
    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    arrow = sink.getvalue().to_pybytes()
    attrs = json.dumps(df.attrs, default=str).encode()
    header = json.dumps({"key": key, "rows": table.num_rows, "schema": _schema_of(table),
                         "attrs_bytes": len(attrs), "arrow_bytes": len(arrow)}).encode()
    body = len(header).to_bytes(4, "little") + header + attrs + arrow
    return _MAGIC + _digest(body) + body


def decode_entry(key: str, blob: bytes) -> pd.DataFrame:
    """The DataFrame stored in ``blob`` for ``key``, or :class:`CorruptEntryError`.

    The digest is checked before anything is parsed; the Arrow stream must be
    whole (:func:`~connectomix.wire.read_arrow_stream`), and the decoded table
    must have the rows and schema the header records.
    """
    if not isinstance(blob, (bytes, bytearray)):
        raise CorruptEntryError(f"stored value is a {type(blob).__name__}, not bytes")
    start = len(_MAGIC) + _DIGEST_SIZE
    if len(blob) < start + 4 or blob[: len(_MAGIC)] != _MAGIC:
        raise CorruptEntryError("not a connectomix cache entry (bad magic or too short)")
    body = memoryview(blob)[start:]
    if _digest(body) != bytes(blob[len(_MAGIC):start]):
        raise CorruptEntryError("digest mismatch (the stored bytes changed)")
    try:
        n = int.from_bytes(body[:4], "little")
        header = json.loads(bytes(body[4 : 4 + n]))
        a_end = 4 + n + int(header["attrs_bytes"])
        if a_end + int(header["arrow_bytes"]) != len(body):
            raise CorruptEntryError("entry length does not match its header")
        attrs = json.loads(bytes(body[4 + n : a_end]))
        rows, schema, stored_key = int(header["rows"]), header["schema"], header["key"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptEntryError(f"unreadable header ({exc})") from None
    if stored_key != key:
        raise CorruptEntryError("entry belongs to another key")
    try:
        table = read_arrow_stream(body[a_end:], what="cache entry")
    except IncompleteResponseError as exc:
        raise CorruptEntryError(str(exc)) from None
    if table.num_rows != rows or _schema_of(table) != schema:
        raise CorruptEntryError("decoded table differs from the header (rows or columns)")
    df = table.to_pandas()
    if len(df) != rows or list(map(str, df.columns)) != [name for name, _ in schema]:
        raise CorruptEntryError("decoded DataFrame differs from the header (rows or columns)")
    df.attrs.update(attrs)
    return df


# --- the store -----------------------------------------------------------------------------------------


def _bytes_disk():
    """A diskcache ``Disk`` that stores and returns only bytes: nothing is ever pickled or unpickled."""
    import diskcache
    from diskcache.core import MODE_BINARY, MODE_RAW

    class BytesDisk(diskcache.Disk):
        def store(self, value, read, key=diskcache.core.UNKNOWN):
            if type(value) is not bytes:
                raise TypeError("the result cache stores bytes only")
            return super().store(value, read, key=key)

        def fetch(self, mode, filename, value, read):
            if mode not in (MODE_RAW, MODE_BINARY) or (mode == MODE_RAW and not isinstance(value, bytes)):
                raise CorruptEntryError(f"stored value has mode {mode!r}, not bytes")
            return super().fetch(mode, filename, value, read)

    return BytesDisk


def _store_errors() -> tuple[type[BaseException], ...]:
    import diskcache

    return (OSError, sqlite3.Error, diskcache.Timeout)


class ResultCache:
    """Size-limited persistent cache of DataFrames with self-checking entries.

    If the directory cannot be used, the cache is *unusable*: it warns once
    (:class:`~connectomix.errors.CacheWarning`), :attr:`problem` says why,
    :meth:`get` returns ``None`` and :meth:`put` does nothing.

    Parameters
    ----------
    directory
        Where to keep it (default :func:`default_cache_dir`).
    size_limit
        Bytes; least-recently-used entries are evicted beyond it.

    Examples
    --------
    >>> import tempfile
    >>> cache = ResultCache(tempfile.mkdtemp(), size_limit=10**7)
    >>> df = cache.get_or_compute("k", lambda: pd.DataFrame({"a": [1, 2]}))
    >>> cache.get_or_compute("k", lambda: 1 / 0)["a"].tolist()   # served from disk
    [1, 2]
    """

    def __init__(self, directory: str | os.PathLike | None = None, *, size_limit: int = DEFAULT_SIZE_LIMIT):
        import diskcache

        self.directory = Path(directory) if directory is not None else default_cache_dir()
        #: Why the cache is unusable (``None`` while it works).
        self.problem: str | None = None
        self._lock = threading.Lock()
        self._store = None
        try:
            self._store = diskcache.Cache(str(self.directory), size_limit=int(size_limit),
                                          eviction_policy="least-recently-used", disk=_bytes_disk())
        except _store_errors() as exc:
            self._give_up("cannot be opened", exc)

    def __repr__(self) -> str:
        if self.problem is not None:
            return f"ResultCache({str(self.directory)!r}, unusable: {self.problem})"
        return f"ResultCache({str(self.directory)!r}, entries={len(self)}, bytes={self.volume()})"

    @property
    def usable(self) -> bool:
        """Whether the cache is in use (see :attr:`problem`)."""
        return self.problem is None

    def _give_up(self, doing: str, exc: BaseException) -> None:
        with self._lock:
            if self.problem is not None:
                return
            self.problem = f"{doing}: {type(exc).__name__}: {exc}"
            store, self._store = self._store, None
        warnings.warn(
            f"the result cache at {str(self.directory)!r} {self.problem}; queries run without it. "
            "Set $CONNECTOMIX_CACHE_DIR or cache='<dir>' to a writable folder, or delete this one.",
            CacheWarning, stacklevel=4)
        if store is not None:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - it is already broken; closing is best effort
                pass

    def get(self, key: str) -> pd.DataFrame | None:
        """The table stored for ``key``, or ``None`` (missing, corrupt -- then deleted -- or cache unusable)."""
        store = self._store
        if store is None:
            return None
        try:
            blob = store.get(key)
            if blob is None:
                return None
            return decode_entry(key, blob)
        except CorruptEntryError as exc:
            self._discard(key, exc)
            return None
        except _store_errors() as exc:
            self._give_up("cannot be read", exc)
            return None

    def _discard(self, key: str, exc: CorruptEntryError) -> None:
        warnings.warn(f"discarded a corrupt entry of the result cache at {str(self.directory)!r} ({exc}); "
                      "the result is fetched again", CacheWarning, stacklevel=4)
        store = self._store
        try:
            if store is not None:
                store.delete(key)
        except _store_errors() as err:
            self._give_up("cannot delete a corrupt entry", err)

    def put(self, key: str, df: pd.DataFrame) -> None:
        """Store ``df`` under ``key`` (nothing happens if the cache is unusable)."""
        store = self._store
        if store is None:
            return
        try:
            blob = encode_entry(key, df)
        except (pa.ArrowException, TypeError, ValueError) as exc:  # not representable in Arrow: keep it uncached
            warnings.warn(f"a result could not be stored in the result cache ({type(exc).__name__}: {exc}); "
                          "it is returned uncached", CacheWarning, stacklevel=3)
            return
        try:
            store.set(key, blob)
        except _store_errors() as exc:
            self._give_up("cannot be written", exc)

    def get_or_compute(self, key: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        hit = self.get(key)
        if hit is not None:
            return hit
        df = compute()
        self.put(key, df)
        return df

    def volume(self) -> int:
        """Bytes used on disk (0 if unusable)."""
        store = self._store
        try:
            return int(store.volume()) if store is not None else 0
        except _store_errors() as exc:
            self._give_up("cannot be read", exc)
            return 0

    def __len__(self) -> int:
        store = self._store
        try:
            return len(store) if store is not None else 0
        except _store_errors() as exc:
            self._give_up("cannot be read", exc)
            return 0

    def clear(self) -> int:
        """Remove every entry; returns how many were removed (0 if unusable)."""
        store = self._store
        try:
            return int(store.clear()) if store is not None else 0
        except _store_errors() as exc:
            self._give_up("cannot be cleared", exc)
            return 0

    def close(self) -> None:
        store = self._store
        if store is not None:
            store.close()


def _json_form(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists); as it is if JSON cannot hold it."""
    try:
        return json.loads(json.dumps(_normalise(value), sort_keys=True))
    except (TypeError, ValueError):
        return value


class DiskRecords:
    """Small JSON records kept in a :class:`ResultCache`, each with the wall-clock time it was written.

    What a remote backend learns by asking its server -- the dataset's metadata, a version's metadata,
    the identity of the data, which ids exist -- is kept here, so that a *new process* on a warm cache
    sends nothing. A record is taken only if it was written less than ``ttl`` seconds ago (the
    backend's ``identity_ttl``; ``math.inf`` for facts keyed by an identity, which never change); an
    older one, or one written "in the future" (the clock was set back), is asked again. Records are
    ordinary self-checking entries of the cache (one-row tables: ``written``, ``value`` as JSON), keyed
    by a digest of ``scope`` and the record's name; neither may hold a token.

    Parameters
    ----------
    cache
        The :class:`ResultCache` to keep them in (nothing is kept while it is unusable).
    scope
        What the records belong to: server address, dataset, settings (never credentials).
    clock
        Wall-clock seconds (records are compared across processes, so not a monotonic clock).

    Examples
    --------
    >>> import tempfile
    >>> now = 1000.0
    >>> records = DiskRecords(ResultCache(tempfile.mkdtemp()), {"server": "h"}, clock=lambda: now)
    >>> records.put("meta", {"voxelSize": [8, 8, 8]})
    >>> now = 1010.0
    >>> records.get("meta", ttl=60)
    ({'voxelSize': [8, 8, 8]}, 10.0)
    >>> records.get("meta", ttl=5) is None, records.get("other", ttl=60) is None   # too old; never written
    (True, True)
    """

    def __init__(self, cache: ResultCache, scope: Any, *, clock: Callable[[], float] = time.time):
        self._cache = cache
        self._scope = _normalise(scope)
        self._clock = clock

    def _key(self, name: str) -> str:
        return query_key({"records": self._scope}, "disk_record", name)

    def get(self, name: str, ttl: float) -> tuple[Any, float] | None:
        """``(value, age in seconds)`` of the record ``name`` if written less than ``ttl`` seconds ago, else ``None``."""
        if not ttl > 0 or not self._cache.usable:
            return None
        df = self._cache.get(self._key(name))
        if df is None or list(df.columns) != ["written", "value"] or len(df) != 1:
            return None
        age = self._clock() - float(df["written"].iloc[0])
        if not 0 <= age < ttl:
            return None
        try:
            return json.loads(df["value"].iloc[0]), age
        except (TypeError, ValueError):
            return None

    def put(self, name: str, value: Any) -> None:
        """Write the record ``name`` (JSON of ``value``; a value JSON cannot hold is not kept)."""
        try:
            text = json.dumps(_normalise(value), sort_keys=True)
        except (TypeError, ValueError):
            return
        self._cache.put(self._key(name), pd.DataFrame({"written": [float(self._clock())], "value": [text]}))
