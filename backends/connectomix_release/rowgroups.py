"""Read the rows of some ids from a Parquet file sorted by that id: only the row groups that can hold them.

A release's synapse files are sorted by ``pre`` (``synapses.parquet``) and by
``post`` (``synapses_by_post.parquet``), in row groups of 8,192 rows (16,384
in releases written before; FORMAT.md, "Layout for scale"). Each row group's
footer statistics give the smallest and largest id it holds, so the row groups that can hold any of a
set of ids are found from the footer alone (a binary search per row group),
and only those are read: about one row group per id, whatever the size of
the table. The same holds on object storage: the footer, then the byte ranges
of the selected row groups' column chunks, nothing else, fetched
concurrently (:mod:`connectomix_release.reads` reads the selected groups, here
and on Dask workers).

The parsed footer and its per-row-group ``[min, max]`` index are kept in
memory per file, keyed by the file's identity (``stat`` values locally, ETag /
size / modification time on object storage), so a file rewritten in place is
read afresh. Nothing is written to disk: pyarrow needs the parsed footer to
read any row group, so an index on disk would not spare reading the footer.

Examples
--------
>>> import tempfile, pathlib, pyarrow as pa, pyarrow.parquet as pq
>>> from connectomix_release.storage import Location
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> pq.write_table(pa.table({"pre": list(range(100)), "x": [0.5] * 100}), folder / "s.parquet", row_group_size=10)
>>> reader = RowGroupReader(Location(folder))
>>> reader.select("s.parquet", "pre", [3, 57]).tolist()
[0, 5]
>>> reader.read("s.parquet", "pre", [3, 57]).column("pre").to_pylist()
[3, 57]
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectomix.errors import DataFormatError

from . import reads
from .reads import GROUPS_PER_READ, open_checked, read_groups, read_task
from .storage import Location

__all__ = ["RowGroupIndex", "RowGroupReader", "read_on_cluster"]


@dataclass(frozen=True)
class RowGroupIndex:
    """The ``[low, high]`` range of one integer column in each row group of a Parquet file.

    A row group whose statistics are missing gets the widest range (it is
    always read), so a selection never misses a row.
    """

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def from_metadata(cls, metadata: pq.FileMetaData, column: str) -> RowGroupIndex:
        names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
        if column not in names:
            raise DataFormatError(f"the Parquet file has no column {column!r}; it has {names}")
        where = names.index(column)
        n = metadata.num_row_groups
        low = np.full(n, np.iinfo("int64").min, dtype="int64")
        high = np.full(n, np.iinfo("int64").max, dtype="int64")
        for i in range(n):
            stats = metadata.row_group(i).column(where).statistics
            if stats is not None and stats.has_min_max and isinstance(stats.min, (int, np.integer)):
                low[i], high[i] = stats.min, stats.max
        return cls(low, high)

    def select(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """Numbers of the row groups whose range holds at least one of ``ids`` (ascending).

        Examples
        --------
        >>> index = RowGroupIndex(np.array([0, 10, 20]), np.array([9, 19, 29]))
        >>> index.select([15, 29, 99]).tolist()
        [1, 2]
        """
        ids = np.unique(np.asarray(ids, dtype="int64"))
        if ids.size == 0 or self.low.size == 0:
            return np.zeros(0, dtype="int64")
        # the first id >= each group's low end; the group is selected when that id is <= its high end
        first = np.searchsorted(ids, self.low, side="left")
        inside = first < ids.size
        inside[inside] = ids[first[inside]] <= self.high[inside]
        return np.flatnonzero(inside)


class RowGroupReader:
    """Reads the rows of given ids from a release's Parquet files, row groups selected by footer statistics.

    Parameters
    ----------
    location : Location
        The release folder (local or on object storage).
    files : int
        Parsed footers kept in memory (least recently used are dropped).
    """

    def __init__(self, location: Location, *, files: int = 8):
        self._loc = location
        self._size = files
        self._memo: OrderedDict[tuple, tuple[pq.FileMetaData, dict[str, RowGroupIndex]]] = OrderedDict()
        self._lock = threading.Lock()
        #: footers parsed so far (a test counts them: a second query on an unchanged file parses none)
        self.footers_read = 0

    # -- the footer, once per file identity ----------------------------------------------------

    def _identity(self, name: str) -> tuple:
        (fingerprint,) = self._loc.fingerprints([name]).values()
        if fingerprint is None:
            raise DataFormatError(f"{self._loc.url(name)!r} does not exist (it was removed after the release "
                                  "was opened)")
        return name, tuple(fingerprint)

    def metadata(self, name: str) -> tuple[pq.FileMetaData, tuple]:
        """The parsed footer of ``name`` and the identity it was read at."""
        key = self._identity(name)
        with self._lock:
            if key in self._memo:
                self._memo.move_to_end(key)
                return self._memo[key][0], key
        with self._open(name) as source:
            try:
                metadata = pq.read_metadata(source)
            except (OSError, pa.ArrowException) as exc:
                raise DataFormatError(f"cannot read the Parquet footer of {self._loc.url(name)!r}: {exc}") from None
        with self._lock:
            self.footers_read += 1
            self._memo[key] = (metadata, {})
            while len(self._memo) > self._size:
                self._memo.popitem(last=False)
        return metadata, key

    def index(self, name: str, column: str, at: tuple[pq.FileMetaData, tuple] | None = None) -> RowGroupIndex:
        """The ``[min, max]`` of ``column`` per row group of ``name`` (from the memo when unchanged).

        ``at``: the ``(metadata, identity)`` :meth:`metadata` just returned (spares listing the files again).
        """
        metadata, key = at or self.metadata(name)
        with self._lock:
            indexes = self._memo[key][1] if key in self._memo else {}
            if column not in indexes:
                indexes[column] = RowGroupIndex.from_metadata(metadata, column)
            return indexes[column]

    def select(self, name: str, column: str, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """Row groups of ``name`` that can hold rows with ``column`` in ``ids``."""
        return self.index(name, column).select(ids)

    # -- rows -----------------------------------------------------------------------------------------

    def _open(self, name: str, identity: tuple | None = None) -> Any:
        """``name`` opened for reading, refused if it is no longer the file of ``identity`` (see open_checked)."""
        return open_checked(self._loc.fs, self._loc.url(name), identity)

    def read(self, name: str, column: str, ids: Iterable[int] | np.ndarray,
             columns: list[str] | None = None) -> pa.Table:
        """The rows of ``name`` whose ``column`` is one of ``ids``, in file order.

        Reads only the row groups :meth:`select` keeps, :data:`GROUPS_PER_READ`
        at a time (rows of other ids are dropped after each read, so memory
        stays bounded for any number of ids).
        """
        ids = np.unique(np.asarray(ids, dtype="int64"))
        metadata, key = self.metadata(name)
        groups = self.index(name, column, (metadata, key)).select(ids)
        with self._open(name, key[1]) as source:
            try:
                parts = list(read_groups(source, metadata, groups, column, ids, columns, url=self._loc.url(name)))
            except (OSError, pa.ArrowException) as exc:
                raise DataFormatError(f"cannot read {self._loc.url(name)!r}: {exc}") from None
        return pa.concat_tables(parts)

    def read_sides(self, sides: list[tuple[str, str]], ids: Iterable[int] | np.ndarray) -> list[pa.Table]:
        """:meth:`read` of each ``(file, column)`` of ``sides``; on object storage the files at the same time
        (their round trips overlap; not with ``reads.FETCH_CONCURRENCY = 0``), locally one after the other."""
        if self._loc.fs is None or len(sides) < 2 or reads.FETCH_CONCURRENCY < 1:
            return [self.read(name, column, ids) for name, column in sides]
        with ThreadPoolExecutor(len(sides), thread_name_prefix="connectomix-sides") as pool:
            return list(pool.map(lambda side: self.read(side[0], side[1], ids), sides))


# -- on a Dask cluster: the client selects the row groups, the workers read them ------------------------------

def read_on_cluster(client: Any, reader: RowGroupReader, sides: list[tuple[str, str]],
                    ids: Iterable[int] | np.ndarray) -> list[pa.Table]:
    """For each ``(file, column)`` of ``sides``, its rows whose ``column`` is in ``ids``, read by Dask workers.

    This process selects the row groups from the footer it keeps
    (:class:`RowGroupReader`); each worker task
    (:func:`~connectomix_release.reads.read_task`) reads
    :data:`~connectomix_release.reads.GROUPS_PER_READ` of them (footer parsed
    once per worker and file identity; a file changed since is refused) and
    returns only the matching rows. Every side's tasks run at once.
    """
    ids = np.unique(np.asarray(ids, dtype="int64"))
    futures = []
    for name, column in sides:
        metadata, key = reader.metadata(name)
        groups = reader.index(name, column, (metadata, key)).select(ids)
        chunks = [groups[i:i + GROUPS_PER_READ] for i in range(0, len(groups), GROUPS_PER_READ)] or [groups]
        # (read_task is in reads.py, which the workers import without connectomix)
        futures.append([client.submit(read_task, reader._loc.fs, reader._loc.url(name), key[1], chunk, column, ids,
                                      pure=False) for chunk in chunks])
    try:
        return [pa.concat_tables(client.gather(side)) for side in futures]
    except (OSError, pa.ArrowException) as exc:
        raise DataFormatError(f"release folder {reader._loc.root!r}: {type(exc).__name__}: {exc}") from None
