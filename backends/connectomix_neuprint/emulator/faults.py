"""Fault and latency injection, and request accounting, for the emulator.

Both are plain thread-safe objects on the running emulator
(``emu.faults``, ``emu.stats``), so tests and benchmarks change them while
the server runs::

    emu.faults.latency_ms = 50                 # every request waits 50 ms first
    emu.faults.fail_next(3, status=503)        # the next 3 requests answer 503
    emu.faults.reset_next()                    # the next response is cut off by a TCP reset
    emu.faults.stall_next(seconds=5)           # the next response stops half-way for 5 s
    emu.faults.timeout_next()                  # the next query answers neuPrint's timeout error
    emu.stats.snapshot()["endpoints"]["POST /api/custom/custom"]["requests"]

A fault applies to the next request whose path starts with its ``path``
(default: any path; ``timeout_next`` defaults to the Cypher endpoints).
Faults queue up in the order they were added.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from connectomix.testing.faults import LatencyInjector

__all__ = ["Fault", "FaultInjector", "RequestStats", "TIMEOUT_MESSAGE"]

#: neuPrintHTTP's rewording of a neo4j transaction timeout.
TIMEOUT_MESSAGE = ("Timeout experienced.  This could be due to database traffic or to non-optimal database "
                   "queries.  Please try again later or simplify your query.")

FAULT_KINDS = ("status", "reset", "stall", "timeout")


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Attributes
    ----------
    kind
        ``"status"`` (answer ``status`` with ``body``), ``"reset"`` (send half
        the response, then reset the connection), ``"stall"`` (send half the
        response, wait ``seconds``, send the rest) or ``"timeout"`` (answer
        400 with neuPrint's timeout message).
    path
        Only requests whose path starts with this are affected.
    """

    kind: str
    status: int = 503
    body: bytes | None = None
    seconds: float = 0.0
    path: str = "/"

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; valid: {FAULT_KINDS}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"HTTP status must be 100-599, got {self.status}")
        if self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds}")


class FaultInjector(LatencyInjector):
    """Queued faults plus a fixed added latency; thread-safe."""

    def __init__(self, latency_ms: float = 0.0):
        super().__init__(latency_ms)
        self._queue: deque[Fault] = deque()

    def add(self, fault: Fault, n: int = 1) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:
            self._queue.extend([fault] * n)

    def fail_next(self, n: int = 1, status: int = 503, *, body: bytes | str | dict | None = None,
                  path: str = "/") -> None:
        """The next ``n`` requests answer ``status`` (default body ``{"error": "..."}``)."""
        if isinstance(body, dict):
            import json

            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.add(Fault("status", status=status, body=body, path=path), n)

    def reset_next(self, n: int = 1, *, path: str = "/") -> None:
        """The next ``n`` responses are cut off half-way by a TCP reset."""
        self.add(Fault("reset", path=path), n)

    def stall_next(self, n: int = 1, seconds: float = 5.0, *, path: str = "/") -> None:
        """The next ``n`` responses stop half-way for ``seconds``."""
        self.add(Fault("stall", seconds=seconds, path=path), n)

    def timeout_next(self, n: int = 1, *, path: str = "/api/custom/") -> None:
        """The next ``n`` queries answer ``400 {"error": "Timeout experienced..."}`` like neuPrint."""
        self.add(Fault("timeout", status=400, path=path), n)

    def clear(self) -> None:
        """Drop queued faults and set the latency to 0."""
        with self._lock:
            self._queue.clear()
        self._latency_ms = 0.0

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._queue)

    def take(self, path: str) -> Fault | None:
        """Remove and return the first queued fault that applies to ``path``."""
        with self._lock:
            for k, fault in enumerate(self._queue):
                if path.startswith(fault.path):
                    del self._queue[k]
                    return fault
        return None


@dataclass
class _Counter:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    status: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


class RequestStats:
    """Requests (round trips), bytes and status codes per endpoint, and TCP connections.

    Endpoints are route templates such as ``"POST /api/custom/custom"`` or
    ``"GET /api/skeletons/skeleton"``; bytes count request and response bodies.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Counter] = {}
        self._connections = 0
        self._queries = 0

    def record(self, endpoint: str, *, status: int, bytes_in: int, bytes_out: int, seconds: float) -> None:
        with self._lock:
            c = self._endpoints.setdefault(endpoint, _Counter())
            c.requests += 1
            c.bytes_in += bytes_in
            c.bytes_out += bytes_out
            c.status[status] = c.status.get(status, 0) + 1
            c.seconds += seconds

    def connection_opened(self) -> None:
        with self._lock:
            self._connections += 1

    def query_run(self) -> None:
        with self._lock:
            self._queries += 1

    def reset(self) -> None:
        with self._lock:
            self._endpoints.clear()
            self._connections = 0
            self._queries = 0

    def snapshot(self) -> dict[str, Any]:
        """``{"requests", "bytes_in", "bytes_out", "connections", "queries", "endpoints": {...}}``."""
        with self._lock:
            eps = {k: {"requests": c.requests, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                       "status": dict(c.status), "seconds": c.seconds}
                   for k, c in self._endpoints.items()}
            return {
                "requests": sum(c.requests for c in self._endpoints.values()),
                "bytes_in": sum(c.bytes_in for c in self._endpoints.values()),
                "bytes_out": sum(c.bytes_out for c in self._endpoints.values()),
                "connections": self._connections,
                "queries": self._queries,
                "endpoints": eps,
            }

    def requests(self, endpoint: str | None = None) -> int:
        """Requests to ``endpoint`` (e.g. ``"POST /api/custom/custom"``), or to all endpoints."""
        snap = self.snapshot()
        if endpoint is None:
            return snap["requests"]
        return snap["endpoints"].get(endpoint, {}).get("requests", 0)
