"""Fault and latency injection, and request accounting, for the emulator.

Both are plain thread-safe objects on the running emulator
(``emu.faults``, ``emu.stats``), so tests and benchmarks change them while
the server runs::

    emu.faults.latency_ms = 50                 # every request waits 50 ms first
    emu.faults.fail_next(3, status=503)        # the next 3 requests answer 503
    emu.faults.reset_next()                    # the next response is cut off by a TCP reset
    emu.faults.stall_next(seconds=5)           # the next response stops half-way for 5 s
    emu.faults.timeout_next()                  # the next query answers neuPrint's timeout error
    emu.faults.cut_next(at="schema")           # the next body ends after its Arrow schema, looking whole
    emu.faults.cut_next(kind="chunked", at="batch:0")  # ... sent chunked, ended after the first batch
    emu.stats.snapshot()["endpoints"]["POST /api/custom/custom"]["requests"]

A fault applies to the next request whose path starts with its ``path``
(default: any path; ``timeout_next`` defaults to the Cypher endpoints),
after letting ``after`` such requests through healthy. Faults queue up in
the order they were added; each faults exactly one response, so ``n``
faults mean ``n`` faulted responses and then healthy ones.

Where a body is cut (``at``) is a byte offset (negative: from the end), or
a named position: ``"half"`` (default), ``"headers"`` (before the status
line: nothing is sent), or, for Arrow IPC streams, a message boundary --
``"schema"`` (after the schema message), ``"batch:K"`` (after record batch
``K``, from 0; past the last batch it means the last one), ``"eos"`` (every
message but the end-of-stream marker) -- or a point inside a message:
``"in-schema"``, ``"in-batch:K"``, ``"in-eos"``. Arrow names in a body that
is not an Arrow stream (e.g. a JSON error) mean ``"half"``.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from connectomix.testing.faults import LatencyInjector

__all__ = ["Fault", "FaultInjector", "RequestStats", "TIMEOUT_MESSAGE", "arrow_message_spans", "cut_offset"]

#: neuPrintHTTP's rewording of a neo4j transaction timeout.
TIMEOUT_MESSAGE = ("Timeout experienced.  This could be due to database traffic or to non-optimal database "
                   "queries.  Please try again later or simplify your query.")

FAULT_KINDS = ("status", "reset", "stall", "timeout", "close", "lie", "chunked")
_NAMED_CUT = re.compile(r"^(half|headers|schema|eos|in-schema|in-eos|(in-)?batch:\d+|long)$")


def arrow_message_spans(payload: bytes) -> list[tuple[int, int]] | None:
    """``(start, end)`` byte offsets of each Arrow IPC message in ``payload`` (schema first, no EOS).

    None if ``payload`` is not a whole Arrow IPC stream ending with the end-of-stream marker.
    """
    import pyarrow as pa

    from connectomix.wire import ARROW_EOS

    if not payload.endswith(ARROW_EOS):
        return None
    source = pa.BufferReader(payload)
    spans = []
    try:
        reader = pa.ipc.MessageReader.open_stream(source)
        while True:
            start = source.tell()
            try:
                reader.read_next_message()
            except StopIteration:
                break
            spans.append((start, source.tell()))
    except (pa.ArrowInvalid, OSError):
        return None
    return spans or None


def cut_offset(payload: bytes, at: int | str | None) -> int:
    """Where to cut ``payload`` for a fault at ``at`` (see the module docstring); -1 means before the headers.

    Examples
    --------
    >>> cut_offset(b"0123456789", None), cut_offset(b"0123456789", -1), cut_offset(b"0123456789", "headers")
    (5, 9, -1)
    """
    n = len(payload)
    if at is None or at == "half":
        return n // 2
    if at == "headers":
        return -1
    if at == "long":
        return n + 64
    if isinstance(at, int):
        return max(0, min(n, at if at >= 0 else n + at))
    spans = arrow_message_spans(payload)
    if spans is None:
        return n // 2
    if at == "eos":
        return n - 8
    if at == "in-eos":
        return n - 4
    inside = at.startswith("in-")
    name = at[3:] if inside else at
    k = 0 if name == "schema" else min(1 + int(name.split(":")[1]), len(spans) - 1)
    start, end = spans[k]
    return (start + end) // 2 if inside else end


@dataclass(frozen=True)
class Fault:
    """One injected fault.

    Attributes
    ----------
    kind
        ``"status"`` (answer ``status`` with ``body``), ``"timeout"`` (answer
        400 with neuPrint's timeout message), or one that sends the body up to
        ``at`` and then: ``"reset"`` resets the connection; ``"stall"`` waits
        ``seconds`` and sends the rest; ``"close"`` closes the connection (the
        Content-Length announced the whole body); ``"lie"`` announces
        Content-Length ``at`` (``"long"``: 64 bytes more than the body), sends
        the whole body and closes, so the client sees a short body that
        looks whole; ``"chunked"`` sends the body with chunked transfer
        encoding and ends it properly after ``at`` bytes (a streaming server
        whose writer failed half-way).
    path
        Only requests whose path starts with this are affected.
    at
        Where the body is cut (see the module docstring); default: half.
    after
        Matching requests let through healthy before this fault applies
        (given to :meth:`FaultInjector.add` with ``n`` > 1: before the first
        of the ``n`` faults, which then strike ``n`` requests in a row).
    """

    kind: str
    status: int = 503
    body: bytes | None = None
    seconds: float = 0.0
    path: str = "/"
    at: int | str | None = None
    after: int = 0

    def __post_init__(self):
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; valid: {FAULT_KINDS}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"HTTP status must be 100-599, got {self.status}")
        if self.seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {self.seconds}")
        if not (self.at is None or (isinstance(self.at, int) and not isinstance(self.at, bool))
                or (isinstance(self.at, str) and _NAMED_CUT.match(self.at))):
            raise ValueError(f"at must be a byte offset or a named position (see connectomix_neuprint.emulator."
                             f"faults), got {self.at!r}")
        if self.after < 0:
            raise ValueError(f"after must be >= 0, got {self.after}")

    def cut(self, payload: bytes) -> int:
        """The byte offset of ``payload`` where this fault strikes (-1: before the headers)."""
        return cut_offset(payload, self.at)


class FaultInjector(LatencyInjector):
    """Queued faults plus a fixed added latency; thread-safe."""

    def __init__(self, latency_ms: float = 0.0):
        super().__init__(latency_ms)
        self._queue: deque[Fault] = deque()

    def add(self, fault: Fault, n: int = 1) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        with self._lock:  # ``after`` delays the first of the n faults; the others follow it directly
            self._queue.extend([fault] + [replace(fault, after=0)] * (n - 1))

    def fail_next(self, n: int = 1, status: int = 503, *, body: bytes | str | dict | None = None,
                  path: str = "/") -> None:
        """The next ``n`` requests answer ``status`` (default body ``{"error": "..."}``)."""
        if isinstance(body, dict):
            import json

            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.add(Fault("status", status=status, body=body, path=path), n)

    def reset_next(self, n: int = 1, *, path: str = "/", at: int | str | None = None, after: int = 0) -> None:
        """The next ``n`` responses are cut off at ``at`` (default half-way) by a TCP reset."""
        self.add(Fault("reset", path=path, at=at, after=after), n)

    def stall_next(self, n: int = 1, seconds: float = 5.0, *, path: str = "/", at: int | str | None = None,
                   after: int = 0) -> None:
        """The next ``n`` responses stop at ``at`` (default: half-way; ``"headers"``: at once) for ``seconds``."""
        self.add(Fault("stall", seconds=seconds, path=path, at=at, after=after), n)

    def cut_next(self, n: int = 1, *, kind: str = "lie", at: int | str | None = None, path: str = "/",
                 after: int = 0) -> None:
        """The next ``n`` bodies end at ``at``: ``kind`` ``"lie"`` (a short Content-Length; looks whole),
        ``"chunked"`` (a properly ended chunked body; looks whole) or ``"close"`` (the connection closes)."""
        if kind not in ("lie", "chunked", "close"):
            raise ValueError(f"cut kind must be 'lie', 'chunked' or 'close', got {kind!r}")
        self.add(Fault(kind, path=path, at=at, after=after), n)

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
        """Remove and return the first queued fault that applies to ``path``.

        A fault still letting requests through (``after`` > 0) counts this
        request instead, and None is returned.
        """
        with self._lock:
            for k, fault in enumerate(self._queue):
                if path.startswith(fault.path):
                    if fault.after:
                        self._queue[k] = replace(fault, after=fault.after - 1)
                        return None
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
