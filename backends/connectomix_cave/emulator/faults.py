"""Latency and fault injection, and per-endpoint request counters.

Faults are queued and consumed by the next matching request(s):

``fail_next(n, status=503)``
    the next ``n`` requests answer ``status`` (503, 502, 504, 429, ...) with a
    JSON ``{"error", "message"}`` body. caveclient retries 502/503/504 up to
    three times by itself, so a burst of three or fewer is invisible to it.
``reset_next(n)``
    the connection is reset (TCP RST) after part of the response body was sent.
``truncate_next(n, fraction=0.5)``
    the next ``n`` **Arrow** query responses are cut to ``fraction`` of their
    length; the HTTP message itself is complete (``Content-Length`` matches),
    so the client fails while decoding the Arrow stream.
``slow_next(n, seconds=1.0)``
    the response body is trickled out over ``seconds``.
``truncate_next(n, boundary=k)``
    the next ``n`` Arrow responses are cut exactly at Arrow IPC message
    boundary ``k`` (0: right after the schema; 1, 2, ...: after each record
    batch; -1: after the last batch, i.e. just before the end-of-stream
    marker). Such a stream still decodes, as a shorter one, unless the client
    checks for the end-of-stream marker.
``cut_json_next(n, fraction=0.5)``
    the next ``n`` successful **JSON** responses are cut to ``fraction`` of
    their bytes, with a matching ``Content-Length``.
``stall_next(n, seconds=5.0, where="body")``
    the response stalls for ``seconds`` (meant to exceed the client's
    timeout): before the status line (``where="headers"``) or after the
    headers and half of the body (``"body"``); then it is sent in full.
``lie_length_next(n, delta=-8)``
    ``Content-Length`` says ``len(body) + delta``; the whole body is written
    and the connection closed (so a short claim cuts the body, a long one
    leaves the client waiting for bytes that never come).
``announce_caps`` (on :class:`~.app.CaveApp` / the emulator)
    not a fault kind: ``False`` makes the server cap rows *silently* (no
    ``Warning`` header), like deployments that truncate without saying so.

Each takes ``endpoint=`` (an endpoint name such as ``"table_query"``, or the
group ``"query"`` for all three query endpoints); ``None`` matches any endpoint.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connectomix.errors import InvalidArgumentError
from connectomix.testing.faults import LatencyInjector

__all__ = ["Fault", "FaultInjector", "RequestStats", "ENDPOINT_GROUPS"]

#: Names usable as ``endpoint=`` besides single endpoint names.
ENDPOINT_GROUPS = {
    "query": frozenset({"table_query", "view_query", "live_live_query"}),
    "chunkedgraph": frozenset({"is_latest_roots", "root_timestamps", "roots_binary", "root", "past_id_mapping",
                               "lineage_graph", "delta_roots", "leaves", "leaves_many", "cg_info"}),
}
_FAIL_STATUSES = frozenset({400, 401, 403, 404, 408, 410, 429, 500, 502, 503, 504})


@dataclass
class Fault:
    """One queued fault (see the module docstring)."""

    kind: str
    remaining: int
    endpoint: str | None = None
    status: int = 503
    fraction: float = 0.5
    seconds: float = 1.0
    boundary: int | None = None
    where: str = "body"
    delta: int = 0

    def matches(self, endpoint: str) -> bool:
        if self.endpoint is None:
            return True
        return endpoint == self.endpoint or endpoint in ENDPOINT_GROUPS.get(self.endpoint, ())


class FaultInjector(LatencyInjector):
    """Thread-safe queue of faults plus a fixed added latency per request."""

    def __init__(self, latency_ms: float = 0.0):
        super().__init__(latency_ms)
        self._faults: list[Fault] = []

    def _add(self, fault: Fault) -> Fault:
        if fault.remaining < 1:
            raise InvalidArgumentError(f"the number of faulty requests must be >= 1, got {fault.remaining}")
        if not 0.0 <= fault.fraction < 1.0:
            raise InvalidArgumentError(f"fraction must be in [0, 1), got {fault.fraction}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(self, n: int = 1, *, status: int = 503, endpoint: str | None = None) -> Fault:
        """Answer the next ``n`` matching requests with HTTP ``status``."""
        if status not in _FAIL_STATUSES:
            raise InvalidArgumentError(f"status must be one of {sorted(_FAIL_STATUSES)}, got {status}")
        return self._add(Fault("status", n, endpoint, status=status))

    def reset_next(self, n: int = 1, *, endpoint: str | None = None, fraction: float = 0.5) -> Fault:
        """Reset the connection after ``fraction`` of the next ``n`` matching response bodies."""
        return self._add(Fault("reset", n, endpoint, fraction=fraction))

    def truncate_next(self, n: int = 1, *, endpoint: str | None = None, fraction: float = 0.5,
                      boundary: int | None = None) -> Fault:
        """Cut the next ``n`` matching Arrow responses to ``fraction`` of their bytes, or exactly at Arrow
        message boundary ``boundary`` (see the module docstring)."""
        if boundary is not None and (not isinstance(boundary, int) or isinstance(boundary, bool)):
            raise InvalidArgumentError(f"boundary must be an integer message index, got {boundary!r}")
        return self._add(Fault("truncate", n, endpoint, fraction=fraction, boundary=boundary))

    def cut_json_next(self, n: int = 1, *, endpoint: str | None = None, fraction: float = 0.5) -> Fault:
        """Cut the next ``n`` matching successful JSON responses to ``fraction`` of their bytes."""
        return self._add(Fault("cut_json", n, endpoint, fraction=fraction))

    def stall_next(self, n: int = 1, *, seconds: float = 5.0, endpoint: str | None = None,
                   where: str = "body") -> Fault:
        """Stall the next ``n`` matching responses for ``seconds`` before the headers or mid-body."""
        if seconds < 0:
            raise InvalidArgumentError(f"seconds must be >= 0, got {seconds}")
        if where not in ("headers", "body"):
            raise InvalidArgumentError(f"where must be 'headers' or 'body', got {where!r}")
        return self._add(Fault("stall", n, endpoint, seconds=seconds, where=where))

    def lie_length_next(self, n: int = 1, *, delta: int = -8, endpoint: str | None = None) -> Fault:
        """Send ``Content-Length: len(body) + delta`` on the next ``n`` matching responses."""
        if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
            raise InvalidArgumentError(f"delta must be a non-zero integer, got {delta!r}")
        return self._add(Fault("lie", n, endpoint, delta=delta))

    def slow_next(self, n: int = 1, *, seconds: float = 1.0, endpoint: str | None = None) -> Fault:
        """Trickle the next ``n`` matching response bodies out over ``seconds``."""
        if seconds < 0:
            raise InvalidArgumentError(f"seconds must be >= 0, got {seconds}")
        return self._add(Fault("slow", n, endpoint, seconds=seconds))

    def clear(self) -> None:
        """Drop every queued fault and the added latency."""
        with self._lock:
            self._faults.clear()
        self.latency_ms = 0.0

    def pending(self) -> list[dict[str, Any]]:
        """The queued faults (kind, remaining count, endpoint, parameters)."""
        with self._lock:
            return [dict(vars(f)) for f in self._faults]

    def take(self, endpoint: str, kinds: tuple[str, ...], *, arrow: bool = False, json: bool = False
             ) -> Fault | None:
        """Consume one matching fault of one of ``kinds`` (truncation only for Arrow responses, JSON cuts
        only for successful JSON responses)."""
        with self._lock:
            for fault in self._faults:
                if fault.kind not in kinds or not fault.matches(endpoint):
                    continue
                if (fault.kind == "truncate" and not arrow) or (fault.kind == "cut_json" and not json):
                    continue
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return dataclasses.replace(fault, remaining=1)
        return None


@dataclass
class _Counter:
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    status: Counter = field(default_factory=Counter)


class RequestStats:
    """Requests, bytes received/sent and status codes per endpoint name (for benchmarks)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, _Counter] = {}

    def record(self, endpoint: str, status: int, bytes_in: int, bytes_out: int) -> None:
        with self._lock:
            c = self._data.setdefault(endpoint, _Counter())
            c.requests += 1
            c.bytes_in += bytes_in
            c.bytes_out += bytes_out
            c.status[status] += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{endpoint: {"requests", "bytes_in", "bytes_out", "status": {code: n}}}``."""
        with self._lock:
            return {name: {"requests": c.requests, "bytes_in": c.bytes_in, "bytes_out": c.bytes_out,
                           "status": dict(c.status)} for name, c in sorted(self._data.items())}

    def requests(self, endpoint: str | None = None) -> int:
        """Requests seen for one endpoint (or group), or in total."""
        with self._lock:
            if endpoint is None:
                return sum(c.requests for c in self._data.values())
            names = ENDPOINT_GROUPS.get(endpoint, {endpoint})
            return sum(c.requests for n, c in self._data.items() if n in names)

    def reset(self) -> None:
        with self._lock:
            self._data.clear()
