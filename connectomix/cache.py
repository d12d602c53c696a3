"""A persistent on-disk cache of query results, keyed by dataset and *immutable* version.

Only answers that cannot change are cached: a CAVE materialization number, a
neuPrint dataset tag together with its ``lastDatabaseEdit`` stamp. ``'live'``
and unresolved ``'latest'``/``'auto'`` are never cached (the backend returns
no cache identity for them). Tables are stored as Arrow IPC bytes with their
``attrs`` as JSON -- never pickled -- in a size-limited `diskcache
<https://grantjenks.com/docs/diskcache/>`_ store. Keys are SHA-256 digests of
the dataset identity and the normalised query; they never contain tokens.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["ResultCache", "default_cache_dir", "query_key"]

DEFAULT_SIZE_LIMIT = 2 * 1024**3  # 2 GiB


def default_cache_dir() -> Path:
    """``$CONNECTOMIX_CACHE_DIR``, else the user cache directory."""
    env = os.environ.get("CONNECTOMIX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("connectomix")) / "results"


def _normalise(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _normalise(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return [int(v) if np.issubdtype(value.dtype, np.integer) else v for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in sorted(value.items())}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


#: Query fields that change how a result is fetched, not what it is.
_IGNORED = frozenset({"max_workers", "progress", "batch_size"})


def query_key(identity: dict, method: str, query: Any) -> str:
    """A stable digest of (dataset identity, method, query) without fetch-only knobs.

    Examples
    --------
    >>> a = query_key({"server": "h", "version": 3}, "get_synapses", {"ids": np.array([1, 2]), "progress": True})
    >>> a == query_key({"version": 3, "server": "h"}, "get_synapses", {"ids": [1, 2], "progress": False})
    True
    """
    q = _normalise(query)
    if isinstance(q, dict):
        q = {k: v for k, v in q.items() if k not in _IGNORED}
    payload = json.dumps({"identity": _normalise(identity), "method": method, "query": q},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _to_bytes(df: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(df, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    attrs = json.dumps(df.attrs, default=str).encode()
    return len(attrs).to_bytes(8, "little") + attrs + sink.getvalue().to_pybytes()


def _from_bytes(blob: bytes) -> pd.DataFrame:
    n = int.from_bytes(blob[:8], "little")
    attrs = json.loads(blob[8 : 8 + n])
    df = pa.ipc.open_stream(pa.py_buffer(blob[8 + n :])).read_all().to_pandas()
    df.attrs.update(attrs)
    return df


class ResultCache:
    """Size-limited persistent cache of DataFrames.

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
        self._store = diskcache.Cache(str(self.directory), size_limit=int(size_limit),
                                      eviction_policy="least-recently-used")

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r}, entries={len(self._store)}, bytes={self.volume()})"

    def get(self, key: str) -> pd.DataFrame | None:
        blob = self._store.get(key)
        return None if blob is None else _from_bytes(blob)

    def put(self, key: str, df: pd.DataFrame) -> None:
        self._store.set(key, _to_bytes(df))

    def get_or_compute(self, key: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        hit = self.get(key)
        if hit is not None:
            return hit
        df = compute()
        self.put(key, df)
        return df

    def volume(self) -> int:
        """Bytes used on disk."""
        return int(self._store.volume())

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> int:
        """Remove every entry; returns how many were removed."""
        return int(self._store.clear())

    def close(self) -> None:
        self._store.close()
