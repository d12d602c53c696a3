"""Request planning of the CAVE backend: batches sized from expected rows, not fixed id counts.

A MaterializationEngine answers at most its row cap per request, so the
fewest requests a query can take is ``ceil(rows / cap)`` (plus the metadata
it cannot avoid). The backend gets close to that without knowing per-neuron
sizes in advance:

1. **One request for all ids** of a side when rows per id learnt from earlier
   answers of the same table say they fit under the cap, or, with nothing
   learnt yet, for a few ids (:data:`SMALL_QUERY`; a fly neuron has at most
   some 10^5 synapses, so a few rarely pass a 200,000/500,000 row cap).
2. **Batches planned from learnt rows** when they do not fit but rows per id
   were learnt from at least :data:`SMALL_QUERY` ids: ``ceil(expected /
   (FILL * cap))`` batches of about equal id count, sent at once, with no
   count first (the physical minimum when the estimate holds).
3. Otherwise -- or if a single request came back (possibly) capped -- one **count query**
   (caveclient's ``query_table``/``query_view(get_counts=True)``, sent as
   ``count=True``; CAVEconnectome/CAVEclient:caveclient/materializationengine.py,
   read in the installed 8.2.1) gives the total, and the ids are cut into
   ``ceil(total / (FILL * cap))`` batches of about equal id count, run
   concurrently. Single requests, planned batches and count queries of
   different sides run concurrently with each other.
4. A batch that still hits the cap (its neurons were bigger than average) is
   split further by the backend's row-cap logic, so planning never costs a row:
   a wrong estimate only costs requests.

A count query answered in another shape than one integer (the real server's
shape of it is unverified; the emulator sends one ``count`` column) is not an
error: the ids are then halved instead, as before planning existed.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["FILL", "SMALL_QUERY", "RowRates", "plan_batches", "minimum_requests"]

#: Fraction of the row cap a planned batch aims at: room for neurons bigger than the average.
FILL = 0.8
#: With no rows per id learnt yet, this many ids or fewer go in one request without a count first.
#: Counting first costs one small request; guessing wrong costs a capped answer thrown away.
SMALL_QUERY = 16


def minimum_requests(rows: int, cap: int) -> int:
    """The fewest data requests that can return ``rows`` rows under a row cap of ``cap`` (at least 1).

    Examples
    --------
    >>> minimum_requests(0, 100), minimum_requests(100, 100), minimum_requests(101, 100)
    (1, 1, 2)
    """
    return max(1, math.ceil(rows / cap))


def plan_batches(ids: np.ndarray, expected_rows: float, cap: int, fill: float = FILL) -> list[np.ndarray]:
    """Cut ``ids`` into consecutive batches of about equal size that each expect at most ``fill * cap`` rows.

    Examples
    --------
    >>> [len(b) for b in plan_batches(np.arange(10), expected_rows=250, cap=100)]
    [3, 3, 2, 2]
    >>> [len(b) for b in plan_batches(np.arange(3), expected_rows=10_000, cap=100)]
    [1, 1, 1]
    """
    n = min(len(ids), max(1, math.ceil(expected_rows / (fill * cap))))
    return [b for b in np.array_split(np.asarray(ids), n) if len(b)] if len(ids) else []


class RowRates:
    """Rows per id seen so far, per (table, id column): what the next query of the same kind expects."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[int, int]] = {}

    def learn(self, table: str, column: str, rows: int, ids: int) -> None:
        if ids <= 0:
            return
        with self._lock:
            total_rows, total_ids = self._seen.get((table, column), (0, 0))
            self._seen[(table, column)] = (total_rows + rows, total_ids + ids)

    def expected(self, table: str, column: str, ids: int, *, min_ids: int = 1) -> float | None:
        """Expected rows for ``ids`` ids, or ``None`` if rows of fewer than ``min_ids`` ids were seen yet."""
        with self._lock:
            seen = self._seen.get((table, column))
        if seen is None or seen[1] < max(1, min_ids):
            return None
        return seen[0] / seen[1] * ids
