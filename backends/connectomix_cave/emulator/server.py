"""HTTP plumbing: a threaded stdlib server, routing, authentication, faults and counters.

The endpoint logic lives in :mod:`.app`; this module turns requests into
:class:`Request` objects, checks the token, applies queued faults and writes
:class:`Response` objects back. Tokens are never logged: the access log shows
method, path (without query string) and status only.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .faults import FaultInjector
from .wire import json_bytes

__all__ = ["HttpError", "Request", "Response", "Route", "Router", "AuthPolicy", "EmulatorHTTPServer"]

logger = logging.getLogger("connectomix_cave.emulator")


class HttpError(Exception):
    """An error response: ``status`` with JSON body ``{"error": code, "message": message}``."""

    def __init__(self, status: int, message: str, *, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                             410: "gone"}.get(status, "error")

    def to_response(self) -> Response:
        return Response.json({"error": self.code, "message": self.message}, status=self.status)


@dataclass
class Request:
    """An incoming request (body already read)."""

    method: str
    path: str
    query: dict[str, str]
    headers: Any
    body: bytes
    token: str | None
    params: dict[str, str] = field(default_factory=dict)
    endpoint: str = "unknown"

    def json(self) -> Any:
        """The body parsed as JSON whatever the Content-Type (PyChunkedGraph clients send none)."""
        if not self.body:
            raise HttpError(400, f"{self.method} {self.path} needs a JSON body")
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"request body is not valid JSON: {exc}") from None


@dataclass
class Response:
    """An outgoing response."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    arrow: bool = False

    @classmethod
    def json(cls, value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status=status, body=json_bytes(value), headers=dict(headers or {}))


@dataclass(frozen=True)
class Route:
    """``methods`` + path regex -> handler; ``public`` routes need no token."""

    methods: frozenset[str]
    pattern: re.Pattern
    name: str
    handler: Callable[[Request], Response]
    public: bool = False


class Router:
    """Ordered list of routes; the first full match wins."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, methods: Iterable[str], pattern: str, name: str, handler: Callable[[Request], Response], *,
            public: bool = False) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "/?$"
        self.routes.append(Route(frozenset(methods), re.compile(regex), name, handler, public))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """The route, its path parameters, and whether the path exists for another method."""
        other_method = False
        for route in self.routes:
            m = route.pattern.match(path)
            if m:
                if method in route.methods:
                    return route, m.groupdict(), False
                other_method = True
        return None, {}, other_method


@dataclass
class AuthPolicy:
    """Which tokens may do what.

    ``tokens`` are accepted; ``forbidden_tokens`` are known but get 403 on
    every protected endpoint; everything else gets 401.
    """

    tokens: frozenset[str]
    forbidden_tokens: frozenset[str] = frozenset()

    def check(self, token: str | None) -> None:
        if not token:
            raise HttpError(401, "authentication required: send 'Authorization: Bearer <token>' or the "
                                 "middle_auth_token cookie")
        if any(hmac.compare_digest(token, t) for t in self.forbidden_tokens):
            raise HttpError(403, "this token does not have permission to view this resource")
        if not any(hmac.compare_digest(token, t) for t in self.tokens):
            raise HttpError(401, "invalid or expired token")


def _token(headers: Any) -> str | None:
    auth = headers.get("Authorization")
    if auth:
        parts = auth.split()
        if len(parts) == 2 and parts[0].lower() == "bearer":
            return parts[1]
    cookie = headers.get("Cookie")
    if cookie:
        jar = SimpleCookie()
        try:
            jar.load(cookie)
        except Exception:  # malformed cookie header: treat as no cookie
            return None
        if "middle_auth_token" in jar:
            return jar["middle_auth_token"].value
    return None


def _arrow_boundary(body: bytes, index: int) -> int:
    """Byte offset of Arrow IPC message boundary ``index`` of a stream (0: after the schema message; -1:
    after the last message before the end-of-stream marker; an index past the last message means -1)."""
    import pyarrow as pa

    source = pa.BufferReader(body)
    reader = pa.ipc.MessageReader.open_stream(source)
    ends = []
    while True:
        try:
            reader.read_next_message()
        except StopIteration:
            break
        ends.append(source.tell())
    return ends[min(index, len(ends) - 1)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # access logging happens in _dispatch without query strings or headers

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        app = self.server.app
        body = self._read_body()
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        route, params, other = app.router.match(self.command, url.path)
        request = Request(method=self.command, path=url.path, query=query, headers=self.headers, body=body,
                          token=_token(self.headers), params=params, endpoint=route.name if route else "unknown")
        faults: FaultInjector = app.faults
        if faults.latency_ms:
            time.sleep(faults.latency_ms / 1000.0)
        try:
            if route is None:
                if other:
                    raise HttpError(405, f"method {self.command} is not allowed for {url.path}",
                                    code="method_not_allowed")
                raise HttpError(404, f"no such endpoint: {self.command} {url.path}")
            fault = faults.take(request.endpoint, ("status",))
            if fault is not None:
                raise HttpError(fault.status, f"injected fault: HTTP {fault.status} (emulator fault injection)",
                                code="injected_fault")
            if not route.public:
                app.auth.check(request.token)
            response = route.handler(request)
        except HttpError as exc:
            response = exc.to_response()
        except Exception as exc:  # a bug in the emulator: report it like a server would
            logger.exception("emulator error on %s %s", self.command, url.path)
            response = Response.json({"error": "internal_error", "message": f"{type(exc).__name__}: {exc}"},
                                     status=500)
        self._send(request, response)

    def _send(self, request: Request, response: Response) -> None:
        app = self.server.app
        is_json = response.status == 200 and response.content_type == "application/json" and bool(response.body)
        fault = app.faults.take(request.endpoint, ("reset", "slow", "truncate", "cut_json", "stall", "lie"),
                                arrow=response.arrow, json=is_json)
        kind = fault.kind if fault is not None else None
        body = response.body
        if kind == "truncate":
            body = body[:_arrow_boundary(body, fault.boundary) if fault.boundary is not None
                        else int(len(body) * fault.fraction)]
        elif kind == "cut_json":
            body = body[: int(len(body) * fault.fraction)]
        logger.debug("%s %s -> %s (%d bytes)", request.method, request.path, response.status, len(body))
        app.stats.record(request.endpoint, response.status, len(request.body), len(body))
        if kind == "stall" and fault.where == "headers":
            time.sleep(fault.seconds)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body) + (fault.delta if kind == "lie" else 0)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.end_headers()
        if kind == "reset":
            self.wfile.write(body[: int(len(body) * fault.fraction)])
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if kind == "slow" and body:
            pieces = 10
            step = max(1, -(-len(body) // pieces))
            for start in range(0, len(body), step):
                self.wfile.write(body[start:start + step])
                self.wfile.flush()
                time.sleep(fault.seconds / pieces)
            return
        if kind == "stall" and fault.where == "body":
            half = len(body) // 2
            self.wfile.write(body[:half])
            self.wfile.flush()
            time.sleep(fault.seconds)
            self.wfile.write(body[half:])
            return
        self.wfile.write(body)
        if kind == "lie":  # the byte count no longer matches: this connection cannot carry another response
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):  # connection reset on purpose, or by the client
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server bound to one host/port, dispatching to ``app`` (an :class:`~.app.CaveApp`)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Any):
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Drop every open (keep-alive) connection, as a server that goes away does."""
        with self.sockets_lock:
            sockets, self.open_sockets = list(self.open_sockets), set()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection error from %s", client_address, exc_info=True)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                  name="connectomix-cave-emulator", daemon=True)
        thread.start()
        return thread

