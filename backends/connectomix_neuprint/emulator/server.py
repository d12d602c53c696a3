"""The emulator's HTTPS server: neuPrintHTTP's API on 127.0.0.1.

:class:`NeuprintEmulator` serves one or more release folders. Routes (all
also under ``/api/v1[...]/``, like neuPrintHTTP):

===========================================  =====================================================
``GET  /api/serverinfo``, ``/api/version``   ``{"IsPublic": true, "Version": "1.9.2"}``,
                                             ``{"Version": "1.9.2"}`` (no token needed)
``GET  /api/dbmeta/datasets``                ``{"<dataset>:<tag>": {"last-mod", "uuid", "ROIs", ...}}``
``GET  /api/dbmeta/version``                 ``{"Version": "<kuzu version>"}``
``GET  /api/dbmeta/database``                ``{"Location", "Description"}``
``GET  /api/available``                      the routes below
``GET  /profile``                            ``{"Email", "AuthLevel"}``
``POST /api/custom/custom`` (GET + body)     ``{"cypher", "dataset"}`` -> ``{"columns", "data", "debug"}``
``POST /api/custom/arrow`` (GET + body)      the same, as an Arrow IPC stream
``GET  /api/skeletons/skeleton/{ds}/{id}``   SWC (``?format=swc``) or ``{"columns", "data"}``, voxels
``GET  /api/npexplorer/nglayers/{ds}.json``  the neuroglancer state naming the segmentation layer
``GET  /precomputed/{ds}/segmentation/...``  the release's meshes and skeletons as a precomputed
                                             layer (no token: it stands in for a public bucket;
                                             see :mod:`.morphology`)
===========================================  =====================================================

Errors follow neuPrintHTTP: ``401 {"message": "invalid or expired token"}``
(Echo's format) for a missing, unknown or expired token; ``403 {"message":
"insufficient permissions for dataset"}`` for a token that is valid but not
for that dataset; ``404 {"error": "dataset \\"x\\" not available in stores"}``;
``400 {"error": "<engine message>"}`` for Cypher errors;
``400 {"error": "not authorized to modify the database"}`` for writes;
``400 {"error": "Timeout experienced..."}`` when the server's query timeout
expires. Tokens are accepted from ``Authorization: Bearer``, the
``dsg_token`` cookie or ``?dsg_token=``, and never logged (request logs omit
query strings).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connectomix.config import Secret
from connectomix.errors import InvalidArgumentError

from .engine import ENGINE_NAME, CypherError, EngineError, KuzuEngine, QueryTimeout, WriteQueryError
from .faults import TIMEOUT_MESSAGE, Fault, FaultInjector, RequestStats
from . import morphology
from .model import GraphModel, build_model, skeleton_swc
from .tls import TlsFiles, make_certificates, server_context
from .values import ARROW_CONTENT_TYPE, QueryResult, encode_arrow, encode_json

__all__ = ["NeuprintEmulator", "SERVER_VERSION"]

log = logging.getLogger("connectomix_neuprint.emulator")

#: The neuPrintHTTP version the emulator claims (>= 1.7.3: neuprint-python may use the arrow endpoint).
SERVER_VERSION = "1.9.2"
_UNAUTHORIZED = {"message": "invalid or expired token"}
_FORBIDDEN = {"message": "insufficient permissions for dataset"}
_ROUTES = ["/api/serverinfo", "/api/version", "/api/available", "/api/dbmeta/datasets", "/api/dbmeta/version",
           "/api/dbmeta/database", "/api/custom/custom", "/api/custom/arrow",
           "/api/skeletons/skeleton/:dataset/:id", "/api/npexplorer/nglayers/:dataset", "/profile"]
_VERSIONED = re.compile(r"^/api/v(\d+)(?:\.\d+)*(/.*)$")


class _Dataset:
    def __init__(self, model: GraphModel, engine: KuzuEngine, segmentation: str | None = None):
        self.model = model
        self.engine = engine
        self.segmentation = segmentation  # the precomputed layer's source URL, if the release has morphology


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, handler, emulator: NeuprintEmulator, context: ssl.SSLContext | None):
        self.emulator = emulator
        self.ssl_context = context
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def finish_request(self, request, client_address):  # runs in the connection's thread
        sock = request
        try:  # headers and body go out as separate writes: without this, Nagle + delayed ACKs add 40 ms a request
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                sock = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.debug("TLS handshake with %s failed: %s", client_address, exc)
                request.close()
                return
        with self.sockets_lock:
            self.open_sockets.add(sock)
        self.emulator.stats.connection_opened()
        try:
            self.RequestHandlerClass(sock, client_address, self)
        except OSError as exc:
            log.debug("connection from %s ended: %s", client_address, exc)
        finally:
            with self.sockets_lock:
                self.open_sockets.discard(sock)
            try:
                sock.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):  # pragma: no cover - logged, not printed
        log.debug("error while serving %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.sockets_lock:
            socks = list(self.open_sockets)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "neuPrintHTTP-emulator/" + SERVER_VERSION
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    server: _HttpServer

    # -- plumbing --------------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        log.debug("%s " + format, self.client_address[0], *args)

    def log_request(self, code="-", size="-") -> None:
        pass  # logged by _dispatch without the query string (it may hold dsg_token)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        started = time.perf_counter()
        url = urlsplit(self.path)
        path = unquote(url.path)
        self._status = 0
        self._bytes_out = 0
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        endpoint = f"{method} {_endpoint_name(path)}"
        emu._enter()
        try:
            if emu.faults.latency_ms:
                emu._stop_event.wait(emu.faults.latency_ms / 1000.0)
            fault = emu.faults.take(path)
            if fault is not None and fault.kind in ("status", "timeout"):
                if fault.kind == "timeout":
                    self._json(400, {"error": TIMEOUT_MESSAGE})
                else:
                    payload = fault.body if fault.body is not None else json.dumps(
                        {"error": f"injected fault: HTTP {fault.status}"}).encode()
                    self._send(fault.status, payload, "application/json; charset=UTF-8")
            else:
                self._fault = fault
                self._route(method, path, parse_qs(url.query), body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError) as exc:
            log.debug("client went away during %s: %s", endpoint, exc)
            self.close_connection = True
        except Exception:  # a bug in the emulator: answer 500, keep serving
            log.exception("internal error while handling %s", endpoint)
            if not self._status:
                self._json(500, {"error": "internal error in the neuPrint emulator (see its log)"})
        finally:
            seconds = time.perf_counter() - started
            emu.stats.record(endpoint, status=self._status, bytes_in=len(body), bytes_out=self._bytes_out,
                             seconds=seconds)
            emu._leave()  # after the record: once wait_idle() returns, every answered request is counted
            log.info("%s %s -> %s (%d bytes, %.1f ms)", method, url.path, self._status, self._bytes_out,
                     seconds * 1000)

    def _send(self, status: int, payload: bytes, content_type: str, headers: Mapping[str, str] | None = None):
        fault: Fault | None = getattr(self, "_fault", None)
        self._fault = None
        self._status = status
        cut = fault.cut(payload) if fault is not None and self.command != "HEAD" else len(payload)
        if fault is not None and cut < 0:  # before the status line
            if fault.kind == "stall":
                self.server.emulator._stop_event.wait(fault.seconds)
                fault, cut = None, len(payload)
            elif fault.kind == "reset":
                return self._reset_connection()
            elif fault.kind == "close":
                self.close_connection = True
                return None
            else:
                cut = 0
        kind = fault.kind if fault is not None else None
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(cut if kind == "lie" else len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return None
        if kind is None:
            self.wfile.write(payload)
            self._bytes_out += len(payload)
            return None
        if kind == "chunked":  # a whole-looking chunked body with only the first ``cut`` bytes
            part = payload[:cut]
            self.wfile.write((f"{len(part):x}\r\n".encode() + part + b"\r\n") if part else b"")
            self.wfile.write(b"0\r\n\r\n")
            self._bytes_out += len(part)
            return None
        if kind == "lie":  # the announced length is wrong; what follows it is discarded with the connection
            self.wfile.write(payload)
            self._bytes_out += len(payload)
            self.close_connection = True
            return None
        cut = min(cut, len(payload))
        self.wfile.write(payload[:cut])
        self.wfile.flush()
        self._bytes_out += cut
        if kind == "reset":
            return self._reset_connection()
        if kind == "close":
            self.close_connection = True
            return None
        self.server.emulator._stop_event.wait(fault.seconds)  # stall
        self.wfile.write(payload[cut:])
        self._bytes_out += len(payload) - cut
        return None

    def _reset_connection(self) -> None:
        """Abort the TCP connection with a reset (SO_LINGER 0, then close) mid-response."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        for f in (self.wfile, self.rfile):  # their references keep the socket open otherwise
            try:
                f.close()
            except OSError:
                pass
        try:
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True
        self.wfile = BytesIO()  # the handler's final flush must not touch the dead socket
        self.rfile = BytesIO()

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=UTF-8")

    # -- auth ------------------------------------------------------------------------------------

    def _token(self, query: Mapping[str, list[str]]) -> str | None:
        auth = self.headers.get("Authorization")
        if auth is not None:
            fields = auth.split()
            if len(fields) == 2 and fields[0].lower() == "bearer":
                return fields[1]
            return None
        cookie_header = self.headers.get("Cookie")
        if cookie_header:
            cookie = SimpleCookie()
            try:
                cookie.load(cookie_header)
            except Exception:
                cookie = SimpleCookie()
            if "dsg_token" in cookie and cookie["dsg_token"].value:
                return cookie["dsg_token"].value
        values = query.get("dsg_token")
        return values[0] if values and values[0] else None

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: Mapping[str, list[str]], body: bytes) -> None:
        emu = self.server.emulator
        m = _VERSIONED.match(path)
        if m:
            if m.group(1) != SERVER_VERSION.split(".")[0]:
                return self._json(400, {"error": "Incompatible API version"})
            path = "/api" + m.group(2)
        path = path.rstrip("/") or "/"
        if path == "/api/serverinfo" and method == "GET":
            return self._json(200, {"IsPublic": True, "Version": emu.server_version})
        if path == "/api/version" and method == "GET":
            return self._json(200, {"Version": emu.server_version})
        if path.startswith(morphology.PRECOMPUTED_PREFIX) and method in ("GET", "HEAD"):
            return self._precomputed(path)
        known = path in ("/api/available", "/api/dbmeta/datasets", "/api/dbmeta/version", "/api/dbmeta/database",
                         "/profile", "/api/custom/custom", "/api/custom/arrow") \
            or path.startswith("/api/skeletons/skeleton/") or path.startswith("/api/npexplorer/nglayers/")
        if not known:
            return self._json(404, {"message": "Not Found"})
        token = self._token(query)
        if not emu._authenticated(token):
            return self._json(401, _UNAUTHORIZED)
        if path == "/api/dbmeta/datasets" and method == "GET":
            return self._json(200, emu._datasets_listing())
        if path == "/api/dbmeta/version" and method == "GET":
            return self._json(200, {"Version": emu._engine_version()})
        if path == "/api/dbmeta/database" and method == "GET":
            return self._json(200, {"Location": f"127.0.0.1 ({ENGINE_NAME}, embedded, read-only)",
                                    "Description": "connectomix neuPrint emulator"})
        if path == "/api/available" and method == "GET":
            return self._json(200, _ROUTES)
        if path == "/profile" and method == "GET":
            return self._json(200, {"Email": "emulator-user@localhost", "ImageURL": "", "AuthLevel": "readwrite"})
        if path in ("/api/custom/custom", "/api/custom/arrow") and method in ("GET", "POST"):
            return self._custom(token, body, arrow=path.endswith("arrow"))
        if path.startswith("/api/skeletons/skeleton/") and method == "GET":
            return self._skeleton(token, path, query)
        if path.startswith("/api/npexplorer/nglayers/") and method == "GET":
            return self._nglayers(token, path[len("/api/npexplorer/nglayers/"):])
        return self._json(405, {"message": "Method Not Allowed"})

    def _nglayers(self, token: str | None, filename: str) -> None:
        """``<dataset>.json``: the dataset's neuroglancer state (neuPrintHTTP serves it from its ng-dir)."""
        emu = self.server.emulator
        if not filename or "/" in filename:
            return self._json(400, {"message": "invalid neuroglancer layer name"})
        ds = emu._dataset(filename[:-len(".json")]) if filename.endswith(".json") else None
        if ds is not None and not emu._allowed(token, ds.model.name):
            return self._json(403, _FORBIDDEN)
        if ds is None or ds.segmentation is None or "nglayers" not in emu.publish_segmentation:
            return self._json(404, {"message": "Not Found"})
        return self._json(200, morphology.nglayers_state(ds.model.name, ds.segmentation))

    def _precomputed(self, path: str) -> None:
        """A file of a dataset's precomputed layer; 404 (as a bucket) for anything else."""
        from connectomix.precomputed import serve_range

        found = morphology.serve(self.server.emulator._layers, path)
        if found is None:
            return self._send(404, b"NoSuchKey", "text/plain; charset=UTF-8")
        status, body, content_range = serve_range(found[0], self.headers.get("Range"))  # shards are read by range
        return self._send(status, body, found[1], {"Content-Range": content_range} if content_range else None)

    def _custom(self, token: str | None, body: bytes, *, arrow: bool) -> None:
        emu = self.server.emulator
        try:
            req = json.loads(body.decode("utf-8")) if body else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("cypher", ""), str) \
                or not isinstance(req.get("dataset", ""), str):
            return self._json(400, {"error": "request object not formatted correctly"})
        cypher = req.get("cypher") or ""
        if not cypher.strip():
            return self._json(400, {"error": "missing required field 'cypher'"})
        name = req.get("dataset") or ""
        if not name:
            return self._json(400, {"error": "missing required field 'dataset'"})
        ds = emu._dataset(name)
        if ds is None:
            return self._json(404, {"error": f'dataset "{name}" not available in stores'})
        if not emu._allowed(token, ds.model.name):
            return self._json(403, _FORBIDDEN)
        version = req.get("version")
        if version and str(version) not in ds.engine.version:
            return self._json(400, {"error": "neo4j data model version incompatible"})
        try:
            result = emu._run(ds, cypher)
        except WriteQueryError:
            return self._json(400, {"error": "not authorized to modify the database"})
        except QueryTimeout:
            return self._json(400, {"error": TIMEOUT_MESSAGE})
        except (CypherError, EngineError) as exc:
            message = str(exc)
            return self._json(400, {"error": ("cypher query failed: " + message) if arrow else message})
        if arrow:
            return self._send(200, encode_arrow(result.columns, result.rows, batch_rows=emu.arrow_batch_rows),
                              ARROW_CONTENT_TYPE)
        return self._send(200, encode_json(result.columns, result.rows, cypher), "application/json; charset=UTF-8")

    def _skeleton(self, token: str | None, path: str, query: Mapping[str, list[str]]) -> None:
        emu = self.server.emulator
        parts = path[len("/api/skeletons/skeleton/"):].split("/")
        if len(parts) != 2 or not all(parts):
            return self._json(400, {"error": "parameters not properly provided in uri"})
        name, body_id = parts
        if not re.fullmatch(r"-?\d+", body_id):
            return self._json(400, {"error": "body id should be an integer"})
        ds = emu._dataset(name)
        if ds is None:
            return self._json(404, {"error": f'dataset "{name}" not available in stores'})
        if not emu._allowed(token, ds.model.name):
            return self._json(403, _FORBIDDEN)
        swc = skeleton_swc(ds.model, int(body_id))
        if swc is None:
            return self._json(400, {"error": f"no skeleton for body {body_id} in dataset {ds.model.name!r}"})
        if query.get("format", [""])[0] == "swc":
            return self._send(200, swc.encode("utf-8"), "text/plain; charset=UTF-8")
        # the SWC's numbers are already JSON numbers (model._num: fixed-point, no exponent); joined as text,
        # not parsed and dumped again (this process also runs the benchmarked client)
        rows = ",".join(f"[{int(f[0])},{f[2]},{f[3]},{f[4]},{f[5]},{int(f[6])}]"
                        for f in map(str.split, swc.splitlines()) if f and not f[0].startswith("#"))
        body = '{"columns": ["rowId", "x", "y", "z", "radius", "link"], "data": [' + rows + "]}"
        return self._send(200, body.encode("utf-8"), "application/json; charset=UTF-8")


def _endpoint_name(path: str) -> str:
    m = _VERSIONED.match(path)
    if m:
        path = "/api" + m.group(2)
    if path.startswith("/api/skeletons/skeleton/"):
        return "/api/skeletons/skeleton"
    if path.startswith(morphology.PRECOMPUTED_PREFIX):
        return "/precomputed"
    if path.startswith("/api/npexplorer/nglayers/"):
        return "/api/npexplorer/nglayers"
    return path.rstrip("/") or "/"


class NeuprintEmulator:
    """A local neuPrint server (HTTPS on 127.0.0.1) serving release folders.

    Parameters
    ----------
    release
        A release folder, or ``{dataset name: folder}`` to serve several.
    token
        The accepted token (default: a random one, see :attr:`token`).
    dataset
        Name of the dataset for a single folder, ``"<dataset>[:<tag>]"``
        (default ``"<manifest name>:<version>"``), e.g. ``"hemibrain:v1.2.1"``.
    port
        TCP port on 127.0.0.1; 0 picks a free one.
    expired_tokens
        Tokens answered like unknown ones (401), to test expiry handling.
    forbidden_tokens
        ``{dataset name: [tokens]}``: valid tokens that may list datasets but
        get 403 on these datasets' queries and skeletons.
    latency_ms
        Initial added latency per request (see :attr:`faults`).
    query_timeout_s
        Server-side query time limit (neuPrint answers 400 "Timeout
        experienced..."); None for no limit.
    voxel_size
        nm per voxel, overriding the manifests.
    post_high_accuracy_threshold
        ``:Meta.postHighAccuracyThreshold`` (neuprint-python's default
        synapse confidence filter); 0.0 means no default filter. Given, pairs
        with synapses get weights counted at it; None publishes the
        manifest's recommended score and keeps the release's weights (see
        :func:`~.model.build_model`).
    pool_size
        Queries that run at the same time per dataset.
    buffer_pool_mb
        Kuzu's buffer pool per dataset (default: sized to the release, see
        :class:`~.engine.KuzuEngine`).
    server_version
        Reported neuPrintHTTP version.
    arrow_batch_rows
        Rows per record batch of ``/api/custom/arrow`` answers (default: one
        batch, as neuPrintHTTP sends); small values give streams with many
        message boundaries, for fault tests.
    position_units
        ``"voxel"`` (default) or ``"nm"``: serve positions in nm while
        ``:Meta.voxelSize`` still gives the voxel size, like the FlyWire and
        BANC mirrors (see :func:`~.model.build_model`).
    meta_voxel_size
        False serves no ``:Meta.voxelSize``.
    side_values
        ``somaSide`` spellings of the release's ``side`` values (default
        ``{"left": "L", "right": "R", "center": "M"}``).
    publish_segmentation
        Where a release's meshes and skeletons, served as a precomputed layer under
        ``/precomputed/``, are advertised: ``"nglayers"`` (``/api/npexplorer/nglayers/<ds>.json``,
        as every real dataset) and/or ``"meta"`` (``:Meta.neuroglancerMeta``, as hemibrain); ``()``
        serves the layer but advertises it nowhere (see :mod:`.morphology`).
    mesh_format
        The layer's mesh layout, one of :data:`connectomix.precomputed.MESH_FORMATS`; ``None``
        (default) that of the real dataset each release plays
        (:func:`.morphology.profile_mesh_format`: multi-resolution sharded for hemibrain, MANC, male CNS).

    Examples
    --------
    >>> with NeuprintEmulator("release/") as emu:                      # doctest: +SKIP
    ...     client = neuprint.Client(emu.url, dataset=emu.dataset, token=emu.token.reveal(),
    ...                              verify=str(emu.cert_path))
    """

    def __init__(self, release: str | os.PathLike | Mapping[str, str | os.PathLike], *,
                 token: str | Secret | None = None, dataset: str | None = None, port: int = 0,
                 expired_tokens: Iterable[str] = (), forbidden_tokens: Mapping[str, Iterable[str]] | None = None,
                 latency_ms: float = 0.0, query_timeout_s: float | None = None,
                 voxel_size: Iterable[float] | None = None, post_high_accuracy_threshold: float | None = None,
                 pool_size: int = 4, buffer_pool_mb: int | None = None, server_version: str = SERVER_VERSION,
                 arrow_batch_rows: int | None = None, position_units: str = "voxel", meta_voxel_size: bool = True,
                 side_values: Mapping[str, str] | None = None,
                 publish_segmentation: Iterable[str] = morphology.PUBLISH_PLACES, mesh_format: str | None = None):
        if isinstance(release, Mapping):
            if dataset is not None:
                raise InvalidArgumentError("give dataset names as the keys of the release mapping, not dataset=")
            self._releases = {str(k): Path(v) for k, v in release.items()}
        else:
            self._releases = {dataset: Path(release)}  # type: ignore[dict-item]
        if not self._releases:
            raise InvalidArgumentError("NeuprintEmulator needs at least one release folder")
        if not 0 <= int(port) <= 65535:
            raise InvalidArgumentError(f"port must be 0-65535, got {port}")
        self._port = int(port)
        self.token = Secret(token) if token is not None else Secret(secrets.token_urlsafe(24))
        if not self.token.reveal() or any(c.isspace() for c in self.token.reveal()):
            raise InvalidArgumentError("token must be a non-empty string without whitespace")
        self._expired = {str(t) for t in expired_tokens}
        self._forbidden = {str(k).lower(): {str(t) for t in v} for k, v in (forbidden_tokens or {}).items()}
        self.faults = FaultInjector(latency_ms)
        self.stats = RequestStats()
        self.query_timeout_s = query_timeout_s
        self.server_version = server_version
        if arrow_batch_rows is not None and int(arrow_batch_rows) < 1:
            raise InvalidArgumentError(f"arrow_batch_rows must be >= 1, got {arrow_batch_rows}")
        self.arrow_batch_rows = int(arrow_batch_rows) if arrow_batch_rows is not None else None
        self._voxel_size = tuple(voxel_size) if voxel_size is not None else None
        self._threshold = None if post_high_accuracy_threshold is None else float(post_high_accuracy_threshold)
        self._model_options = {"position_units": position_units, "meta_voxel_size": bool(meta_voxel_size),
                               "side_values": side_values}
        self.publish_segmentation = morphology.check_places(publish_segmentation)
        self._mesh_format = mesh_format
        self._layers: dict[str, morphology.ReleaseLayer] = {}  # URL path -> precomputed layer
        self._pool_size = int(pool_size)
        self._buffer_pool_mb = buffer_pool_mb
        self._datasets: dict[str, _Dataset] = {}
        self._server: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._tmp: Path | None = None
        self._tls: TlsFiles | None = None
        self._stop_event = threading.Event()
        self._inflight = 0
        self._inflight_cv = threading.Condition()

    def __repr__(self) -> str:
        state = self.url if self._server else "stopped"
        return f"NeuprintEmulator({', '.join(self.datasets) or list(self._releases.values())!r}, {state})"

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> NeuprintEmulator:
        """Load the releases, create the certificates and start serving (returns immediately)."""
        if self._server is not None:
            return self
        try:
            self._tmp = Path(tempfile.mkdtemp(prefix="connectomix-neuprint-tls-"))
            self._tls = make_certificates(self._tmp)
            self._stop_event.clear()
            # bound (not yet serving) before the models are built: :Meta names the layers' loopback URL
            self._server = _HttpServer(("127.0.0.1", self._port), _Handler, self, server_context(self._tls))
            for name, folder in self._releases.items():
                model = build_model(folder, name=name, voxel_size=self._voxel_size,
                                    post_high_accuracy_threshold=self._threshold, **self._model_options)
                if model.name.lower() in self._datasets:
                    raise InvalidArgumentError(f"two releases are both served as dataset {model.name!r}")
                source = self._serve_morphology(model, folder)
                self._datasets[model.name.lower()] = _Dataset(model, KuzuEngine(model, pool_size=self._pool_size,
                                                                                    buffer_pool_mb=self._buffer_pool_mb),
                                                              source)
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                            name=f"neuprint-emulator:{self.port}", daemon=True)
            self._thread.start()
        except BaseException:
            self.stop()
            raise
        log.info("neuPrint emulator serving %s at %s", ", ".join(self.datasets), self.url)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, wait up to ``timeout`` s for running queries, release everything."""
        self._stop_event.set()
        if self._server is not None:
            if self._thread is not None:  # shutdown() waits for serve_forever, which may never have run
                self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout)
        with self._inflight_cv:
            self._inflight_cv.wait_for(lambda: self._inflight == 0, timeout)
            busy = self._inflight
        for ds in self._datasets.values():
            if busy:
                log.warning("a query is still running; leaving its database open")
            else:
                ds.engine.close()
        self._datasets.clear()
        self._layers.clear()
        self._server = None
        self._thread = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._tls = None

    close = stop

    def __enter__(self) -> NeuprintEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- what clients need -------------------------------------------------------------------------

    def _require_running(self) -> None:
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() or use it as a context manager")

    @property
    def port(self) -> int:
        self._require_running()
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``https://127.0.0.1:<port>`` (neuprint-python accepts it as the server)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert_path(self) -> Path:
        """The CA certificate to trust (``REQUESTS_CA_BUNDLE`` or ``verify=``)."""
        self._require_running()
        return self._tls.ca_path

    @contextlib.contextmanager
    def trusted(self):
        """Trust this emulator's certificate in this process while the block runs.

        Sets ``$REQUESTS_CA_BUNDLE`` (read by requests, so by neuprint-python, navis and
        cloud-volume, which has no ``verify`` option of its own) to :attr:`cert_path` and puts the
        previous value back afterwards -- the certificate is deleted when the emulator stops, and a
        variable left pointing at it would break every later HTTPS request of the process.

        Examples
        --------
        >>> with NeuprintEmulator(SAMPLE_DIR) as emu, emu.trusted():  # doctest: +SKIP
        ...     meshes = navis.interfaces.neuprint.fetch_mesh_neuron([1734350788], client=client)
        """
        saved = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.cert_path)
        try:
            yield self.cert_path
        finally:
            if saved is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = saved

    @property
    def datasets(self) -> list[str]:
        """Names of the served datasets."""
        return [ds.model.name for ds in self._datasets.values()]

    @property
    def dataset(self) -> str:
        """The dataset name when exactly one is served."""
        names = self.datasets
        if len(names) != 1:
            raise RuntimeError(f"the emulator serves {len(names)} datasets: {names}")
        return names[0]

    def model(self, dataset: str | None = None) -> GraphModel:
        """The graph model of a served dataset."""
        ds = self._dataset(dataset or self.dataset)
        if ds is None:
            raise InvalidArgumentError(f"no dataset {dataset!r}; served: {self.datasets}")
        return ds.model

    def run(self, cypher: str, dataset: str | None = None) -> QueryResult:
        """Run a query directly (no HTTP, no auth, no faults); handy for debugging."""
        ds = self._dataset(dataset or self.dataset)
        if ds is None:
            raise InvalidArgumentError(f"no dataset {dataset!r}; served: {self.datasets}")
        return self._run(ds, cypher)

    def segmentation_source(self, dataset: str | None = None) -> str | None:
        """The ``precomputed://https://127.0.0.1:<port>/...`` source of a dataset's meshes (None: it has none)."""
        ds = self._dataset(dataset or self.dataset)
        if ds is None:
            raise InvalidArgumentError(f"no dataset {dataset!r}; served: {self.datasets}")
        return ds.segmentation

    # -- internals used by the handler -------------------------------------------------------------

    def _serve_morphology(self, model: GraphModel, folder: Path) -> str | None:
        """Build the release's precomputed layer, advertise it per ``publish_segmentation``; its source or None."""
        if not morphology.ReleaseLayer.present(folder):
            return None
        path = morphology.layer_path(model.name)
        if path in self._layers:
            raise InvalidArgumentError(f"two datasets would serve their meshes at {path}; rename one")
        mesh_format = self._mesh_format or morphology.profile_mesh_format(model.name)
        self._layers[path] = morphology.ReleaseLayer(folder, model.voxel_size, mesh_format)
        source = f"precomputed://{self.url}{path}"
        morphology.publish(model, source, self.publish_segmentation)
        return source


    def _enter(self) -> None:
        with self._inflight_cv:
            self._inflight += 1

    def _leave(self) -> None:
        with self._inflight_cv:
            self._inflight -= 1
            self._inflight_cv.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is being handled (and every answered one is in :attr:`stats`).

        A client has its answer slightly before the emulator counts the
        request; call this before ``stats.reset()`` or ``stats.snapshot()``
        to count exactly. Returns False if requests are still running after
        ``timeout`` seconds.
        """
        with self._inflight_cv:
            return self._inflight_cv.wait_for(lambda: self._inflight == 0, timeout)

    def _dataset(self, name: str) -> _Dataset | None:
        return self._datasets.get(str(name).lower())

    def _engine_version(self) -> str:
        for ds in self._datasets.values():
            return ds.engine.version
        return ""

    def _authenticated(self, token: str | None) -> bool:
        if not token or token in self._expired:
            return False
        if secrets.compare_digest(token.encode(), self.token.reveal().encode()):
            return True
        return any(token in tokens for tokens in self._forbidden.values())

    def _allowed(self, token: str | None, dataset: str) -> bool:
        return token not in self._forbidden.get(dataset.lower(), set())

    def _run(self, ds: _Dataset, cypher: str) -> QueryResult:
        self.stats.query_run()
        timeout_ms = int(self.query_timeout_s * 1000) if self.query_timeout_s else None
        return ds.engine.run(cypher, timeout_ms=timeout_ms)

    def _datasets_listing(self) -> dict[str, Any]:
        out = {}
        for ds in self._datasets.values():
            meta = ds.model.meta
            out[ds.model.name] = {
                "last-mod": meta["lastDatabaseEdit"], "uuid": meta["uuid"] or "latest",
                "ROIs": sorted(json.loads(meta["roiInfo"])), "superLevelROIs": list(meta["superLevelRois"]),
                "info": meta["info"] or "N/A", "hidden": False, "logo": meta["logo"],
                "description": meta["description"],
            }
        return out
