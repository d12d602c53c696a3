"""Reading selected row groups of a Parquet file, locally or from object storage; what Dask workers run.

:mod:`connectomix_release.rowgroups` selects the row groups of a synapse file
that can hold some ids (from the footer it keeps); this module reads them.
A local file is read by pyarrow. From object storage the byte ranges of the
selected column chunks are fetched concurrently (:data:`FETCH_CONCURRENCY`
requests in flight, a window of :data:`GROUPS_PER_READ` row groups ahead of
the one being decoded) and pyarrow decodes them from memory, so a filter
costs a few round trips to the store instead of one per row group, and
fetches exactly the bytes of the selected column chunks. A range that comes
back short is asked again and then raises
:class:`~connectomix.errors.IncompleteResponseError`: a table is never
shorter than the file.

It imports only numpy and pyarrow (fsspec for remote files; connectomix's
errors when one is raised): a Dask worker runs :func:`read_task` without
importing connectomix, DuckDB or pandas (measured: importing connectomix
took a worker 0.6 CPU seconds, more than reading a query's row groups).
"""

from __future__ import annotations

import bisect
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["byte_ranges", "open_checked", "read_groups", "read_task"]

#: Row groups decoded at a time: bounds the memory of a filter on many ids (8,192-row groups: ~25 MB).
GROUPS_PER_READ = 32
#: Byte-range requests in flight at once per file read from object storage. 0 reads the file through
#: pyarrow one range after another instead (how connectomix read before; ``benchmarks/scale_http.py``).
FETCH_CONCURRENCY = 16
#: Attempts at a byte range that comes back shorter than asked before IncompleteResponseError.
RANGE_ATTEMPTS = 3
#: Adjacent column chunks are fetched as one range up to this many bytes (a larger chunk is one range of its own).
MAX_RANGE_BYTES = 8 * 2**20


def _raise(kind: str, message: str, **kwargs: Any) -> NoReturn:
    """Raise ``connectomix.errors.<kind>`` (imported here, not above: workers import this module without it)."""
    from connectomix import errors

    raise getattr(errors, kind)(message, **kwargs)


# -- opening, with the identity the footer was read at ---------------------------------------------------------


def open_checked(fs: Any, url: str, identity: tuple | list | None = None) -> Any:
    """``url`` opened for reading (``fs`` None: a local path), refused if it is no longer the file of ``identity``.

    ``identity`` is the file's fingerprint when its footer was read
    (:meth:`Location.fingerprints <connectomix_release.storage.Location.fingerprints>`):
    ``[size, mtime_ns, ...]`` locally, ``[size, ETag, modified]`` on object
    storage. A file replaced since then is a ``DataFormatError``: its row
    groups are not where the footer says. Every range request then carries
    ``If-Match: <ETag>`` (s3fs sends the ETag it opened with; over HTTP it is
    added here), so a file replaced during the read fails with ``412``
    (``DataFormatError`` naming it) instead of mixing two files' bytes.
    """
    if fs is None:
        source = open(url, "rb")
        stat = os.fstat(source.fileno())
        if identity is not None and [stat.st_size, stat.st_mtime_ns] != list(identity[:2]):
            source.close()
            _raise("DataFormatError", f"{url!r} changed while it was being read (size or modification time differ "
                                      "from when its footer was read); query again")
        return source
    # no read-ahead: only the byte ranges asked for are fetched
    etag = str(identity[1] or "") if identity is not None else ""
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if etag and "http" in protocols:  # every range asked If-Match that ETag (a server answers 412 after a change)
        source = fs.open(url, "rb", cache_type="none", headers={"If-Match": etag})
    else:
        source = fs.open(url, "rb", cache_type="none")
    if identity is not None:
        size = identity[0]
        details = getattr(source, "details", None) or {}
        now = str(details.get("ETag") or details.get("etag") or details.get("md5Hash") or "")
        if getattr(source, "size", size) != size or (etag and now and now != etag):
            source.close()
            _raise("DataFormatError", f"{url!r} changed while it was being read (size or ETag differ from the "
                                      "listing's); query again")
    return source


# -- reading --------------------------------------------------------------------------------------------------


def read_groups(source: Any, metadata: pq.FileMetaData, groups: np.ndarray, column: str, ids: np.ndarray,
                columns: list[str] | None = None, *, url: str = "") -> Iterator[pa.Table]:
    """Tables of the rows of ``groups`` whose ``column`` is in ``ids`` (at least one table, maybe empty).

    ``source`` is an open binary file (:func:`open_checked`), ``metadata`` its
    parsed footer and ``url`` its name in messages. A local file is read by
    pyarrow. A file on object storage (an fsspec file with ``_fetch_range``,
    the method fsspec's remote files fetch a byte range with) has the byte
    ranges of each window of :data:`GROUPS_PER_READ` row groups fetched
    concurrently (:func:`byte_ranges`; the next window's while this one is
    decoded, so at most two windows' bytes are held) and pyarrow decodes them
    from memory.
    """
    ids = np.ascontiguousarray(ids, dtype="int64")  # (pa.array of a numpy array imports pandas: 1.5 s on a worker)
    wanted = pa.Array.from_buffers(pa.int64(), len(ids), [None, pa.py_buffer(ids)])
    chunks = [[int(g) for g in groups[i:i + GROUPS_PER_READ]] for i in range(0, len(groups), GROUPS_PER_READ)]
    fetch = getattr(source, "_fetch_range", None)
    if fetch is None or FETCH_CONCURRENCY < 1:  # pyarrow reads the file (one range after another, remotely)
        parquet = pq.ParquetFile(source, metadata=metadata, pre_buffer=True)
        windows: Iterator[tuple[list[int], pq.ParquetFile]] = ((chunk, parquet) for chunk in chunks)
    else:
        parquet = pq.ParquetFile(_Parts(source.size, {}, None), metadata=metadata)  # (for its schema; reads nothing)
        windows = _fetched_windows(partial(_fetch_exact, fetch, url), source.size, metadata, chunks, columns)
    empty = pa.Table.from_batches([], schema=parquet.schema_arrow)  # (Schema.empty_table() imports pandas)
    yield empty if columns is None else empty.select(columns)
    for chunk, parquet in windows:
        table = parquet.read_row_groups(chunk, columns=columns, use_threads=True)
        yield table.filter(pc.is_in(table[column], value_set=wanted))


def byte_ranges(metadata: pq.FileMetaData, groups: Iterable[int], columns: list[str] | None = None
                ) -> list[tuple[int, int]]:
    """``[start, end)`` byte ranges of the column chunks of ``groups`` (only ``columns``; None: all), ascending.

    A column chunk starts at its dictionary page (if any) and spans its
    ``total_compressed_size`` bytes, as pyarrow reads it; chunks that touch
    are merged into ranges of at most :data:`MAX_RANGE_BYTES`.

    Examples
    --------
    >>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.parquet"
    >>> pq.write_table(pa.table({"a": list(range(40)), "b": [0.5] * 40}), path, row_group_size=10)
    >>> meta = pq.read_metadata(path)
    >>> one, three, gap = byte_ranges(meta, [1]), byte_ranges(meta, [1, 2, 3]), byte_ranges(meta, [0, 2])
    >>> len(one), len(three), three[0][0] == one[0][0], three[0][1] > one[0][1], len(gap)
    (1, 1, True, True, 2)
    >>> byte_ranges(meta, [1], ["b"])[0][0] > one[0][0]
    True
    """
    names = [metadata.schema.column(i).path.split(".")[0] for i in range(metadata.num_columns)]
    leaves = [i for i, name in enumerate(names) if columns is None or name in columns]
    spans = []
    for g in groups:
        group = metadata.row_group(int(g))
        for i in leaves:
            chunk = group.column(i)
            start = chunk.data_page_offset
            if chunk.has_dictionary_page and chunk.dictionary_page_offset is not None and (
                    0 < chunk.dictionary_page_offset < start):
                start = chunk.dictionary_page_offset
            spans.append((start, start + chunk.total_compressed_size))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] and max(end, merged[-1][1]) - merged[-1][0] <= MAX_RANGE_BYTES:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _fetch_exact(fetch: Callable[[int, int], bytes], url: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` from ``fetch`` (a remote file's ``_fetch_range``): all of them, or an error."""
    data = b""
    for _ in range(RANGE_ATTEMPTS):
        try:
            data = fetch(start, end)
        except Exception as exc:  # s3fs, gcsfs, aiohttp... each raise their own; the file is named here
            _raise("DataFormatError", f"cannot read bytes {start}-{end - 1} of {url!r}: {type(exc).__name__}: {exc}")
        if len(data) == end - start:
            return data
    _raise("IncompleteResponseError",
           f"bytes {start}-{end - 1} of {url!r} came back with {len(data):,} of {end - start:,} bytes "
           f"({RANGE_ATTEMPTS} attempts): the object is shorter than its footer says, or changed while being read",
           url=url)


def _fetched_windows(fetch: Callable[[int, int], bytes], size: int, metadata: pq.FileMetaData,
                     chunks: list[list[int]], columns: list[str] | None) -> Iterator[tuple[list[int], pq.ParquetFile]]:
    """For each window of row groups, a ParquetFile over its fetched byte ranges (the next window's in flight)."""
    if not chunks:
        return
    pool = ThreadPoolExecutor(FETCH_CONCURRENCY, thread_name_prefix="connectomix-ranges")

    def submit(chunk: list[int]) -> list[tuple[int, Any]]:
        return [(start, pool.submit(fetch, start, end)) for start, end in byte_ranges(metadata, chunk, columns)]

    try:
        pending = submit(chunks[0])
        for k, chunk in enumerate(chunks):
            parts = {start: future.result() for start, future in pending}
            pending = submit(chunks[k + 1]) if k + 1 < len(chunks) else []
            yield chunk, pq.ParquetFile(_Parts(size, parts, fetch), metadata=metadata, pre_buffer=False)
            del parts
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class _Parts(io.RawIOBase):
    """A remote file as pyarrow reads it: the byte ranges fetched for it, served from memory.

    pyarrow, given the footer, reads each selected column chunk as one range
    (:func:`byte_ranges` computes the same ranges); a read outside the
    fetched ranges (a writer whose chunks pyarrow pads) is fetched with
    ``fetch``, exactly.
    """

    def __init__(self, size: int, parts: dict[int, bytes], fetch: Callable[[int, int], bytes] | None):
        super().__init__()
        self._size, self._parts, self._fetch, self._pos = size, parts, fetch, 0
        self._starts = sorted(parts)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence] + offset
        return self._pos

    def read(self, n: int | None = -1) -> bytes | memoryview:
        start = self._pos
        end = self._size if n is None or n < 0 else min(self._size, start + n)
        if end <= start:
            return b""
        i = bisect.bisect_right(self._starts, start) - 1
        if i >= 0 and end <= self._starts[i] + len(self._parts[self._starts[i]]):
            first = self._starts[i]
            data = memoryview(self._parts[first])[start - first:end - first]  # (pyarrow takes it without a copy)
        elif self._fetch is not None:
            data = self._fetch(start, end)
        else:
            raise OSError(f"bytes {start}-{end - 1} were not fetched")
        self._pos = end
        return data


# -- on a Dask worker ---------------------------------------------------------------------------------------------

#: parsed footers on a Dask worker, by (file, identity): a worker reads each file's footer once
_WORKER_FOOTERS: OrderedDict[tuple, pq.FileMetaData] = OrderedDict()
_WORKER_LOCK = threading.Lock()


def read_task(fs: Any, url: str, identity: tuple, groups: np.ndarray, column: str, ids: np.ndarray) -> pa.Table:
    """(On a Dask worker) the rows of ``groups`` of ``url`` whose ``column`` is in ``ids``.

    ``fs`` is the release's fsspec filesystem (None: a local path). The
    footer is read once per worker and file identity; a file that is no
    longer the one of ``identity`` is refused (:func:`open_checked`).
    """
    key = (url, tuple(identity))
    with open_checked(fs, url, identity) as source:
        with _WORKER_LOCK:
            metadata = _WORKER_FOOTERS.get(key)
        if metadata is None:
            metadata = pq.read_metadata(source)
            with _WORKER_LOCK:
                _WORKER_FOOTERS[key] = metadata
                while len(_WORKER_FOOTERS) > 8:
                    _WORKER_FOOTERS.popitem(last=False)
        return pa.concat_tables(read_groups(source, metadata, groups, column, ids, url=url))


# -- HTTP(S) ------------------------------------------------------------------------------------------------------


def http_filesystem(options: dict[str, Any]) -> Any:
    """fsspec's HTTP filesystem with the ``modified()`` DuckDB asks of every file it reads (``Last-Modified``)."""
    return __getattr__("ReleaseHTTPFileSystem")(**options)


def __getattr__(name: str) -> Any:
    # ReleaseHTTPFileSystem is made on first use (importing fsspec's HTTP support, i.e. aiohttp, costs 0.2 CPU
    # seconds that local and S3 releases do not need); a module attribute, so it pickles to Dask workers by name
    if name != "ReleaseHTTPFileSystem":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fsspec.implementations.http import HTTPFileSystem

    async def _info(self: Any, url: str, **kwargs: Any) -> dict:
        # one HEAD per file until the next invalidate_cache(): DuckDB asks a file's size and modification time
        # several times per query (12 HEADs of neurons.parquet per filter); Location.fingerprints invalidates
        # on every query, as s3fs's listing cache is refreshed by its listing
        memo = self.__dict__.setdefault("_connectomix_infos", {})
        if url not in memo:
            memo[url] = await HTTPFileSystem._info(self, url, **kwargs)
        return dict(memo[url])

    def invalidate_cache(self: Any, path: str | None = None) -> None:
        self.__dict__.get("_connectomix_infos", {}).clear()
        HTTPFileSystem.invalidate_cache(self, path)

    def modified(self: Any, path: str) -> Any:
        from email.utils import parsedate_to_datetime

        stamp = self.info(path).get("Last-Modified")
        if not stamp:
            _raise("DataFormatError", f"{path!r}: the server sends no Last-Modified header, which reading a "
                                      "release over HTTP needs (to notice a file replaced in place)")
        return parsedate_to_datetime(stamp)

    cls = type(name, (HTTPFileSystem,), {
        "_info": _info, "invalidate_cache": invalidate_cache, "modified": modified, "__module__": __name__,
        "__qualname__": name, "__doc__": "fsspec's HTTPFileSystem with modified() (Last-Modified), HEADs kept until "
                                         "invalidate_cache()."})
    globals()[name] = cls
    return cls
