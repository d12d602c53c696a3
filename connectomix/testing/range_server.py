"""A folder served over HTTP on 127.0.0.1 with byte ranges, an added latency per request, and a request log.

What object storage does for a release read in place, with nothing else: a
``GET`` with ``Range: bytes=a-b`` answers ``206`` and those bytes, ``HEAD``
answers the size, an ``ETag`` and ``Last-Modified``, ``If-Match`` with another
ETag answers ``412``, and a folder URL answers an HTML index of its files
(what fsspec's ``HTTPFileSystem`` lists). A
release folder served here opens as ``release://http://127.0.0.1:<port>/``.
It exists to measure and test reads that are bound by round trips: every
request waits ``latency_ms`` before it is answered (as a store's first byte
does), requests are handled concurrently (one thread each), and each one is
logged with the bytes it sent. moto's S3 server cannot be used for that: it
copies the whole object to answer each range request.

Examples
--------
>>> import tempfile, pathlib, urllib.request
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "a.bin").write_bytes(bytes(range(100)))
>>> with RangeServer(folder, latency_ms=0) as server:
...     request = urllib.request.Request(server.url + "a.bin", headers={"Range": "bytes=10-19"})
...     with urllib.request.urlopen(request) as response:
...         print(response.status, list(response.read()))
...     print(server.requests[-1].path, server.requests[-1].sent)
206 [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
/a.bin 10
"""

from __future__ import annotations

import html
import re
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from connectomix.testing.faults import LatencyInjector

__all__ = ["RangeServer", "ServedRequest"]

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class ServedRequest:
    """One request the server answered: method, path, the range asked (``None``: whole file), bytes sent."""

    method: str
    path: str
    start: int | None
    end: int | None
    sent: int


class RangeServer:
    """Serve ``folder`` read-only over HTTP/1.1 on 127.0.0.1 (an OS-chosen port) until :meth:`close`.

    Parameters
    ----------
    folder : path-like
        The folder served (sub-folders too; nothing outside it).
    latency_ms : float
        Milliseconds every request waits before it is answered; settable at any time
        (``server.faults.latency_ms``).

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>/``.
    requests : list of ServedRequest
        Every answered request, in order (:meth:`clear` between measurements): a copy, taken once no
        request is being answered (a client has its answer before the server logs it).
    max_in_flight : int
        The most requests being answered at the same time so far.
    """

    def __init__(self, folder: str | Path, *, latency_ms: float = 0.0):
        self.folder = Path(folder).resolve()
        self.faults = LatencyInjector(latency_ms)
        self._requests: list[ServedRequest] = []
        self._short: list[int] = []  # bytes to leave out of the next range answers (see short_next)
        self._fail: list[int] = []  # statuses of the next range answers (see fail_next)
        self._lock = threading.Condition()
        self._in_flight = 0
        self.max_in_flight = 0
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = _Server(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="range-server", daemon=True)
        self._thread.start()

    def short_next(self, missing: int, times: int = 1) -> None:
        """The next ``times`` range answers leave out their last ``missing`` bytes.

        They stay well-formed (``206``, a ``Content-Length`` and
        ``Content-Range`` of what is sent): an object shorter than its footer
        says, which only the length of the answer shows.
        """
        with self._lock:
            self._short.extend([int(missing)] * int(times))

    def fail_next(self, times: int = 1, status: int = 503) -> None:
        """The next ``times`` range requests are answered with HTTP ``status`` (a failing store)."""
        with self._lock:
            self._fail.extend([int(status)] * int(times))

    def _take_fail(self) -> int:
        with self._lock:
            return self._fail.pop(0) if self._fail else 0

    def clear(self) -> None:
        """Forget the requests answered so far (and the most in flight), and faults not yet given."""
        with self._lock:
            self._requests.clear()
            self.max_in_flight = 0
            self._short.clear()
            self._fail.clear()

    @property
    def requests(self) -> list[ServedRequest]:
        """The requests answered so far (see the class's attributes)."""
        with self._lock:
            self._lock.wait_for(lambda: self._in_flight == 0, timeout=30)
            return list(self._requests)

    def _enter(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            self._lock.notify_all()

    def _take_short(self) -> int:
        with self._lock:
            return self._short.pop(0) if self._short else 0

    def _log(self, entry: ServedRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> RangeServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hangs up early is not an error
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: RangeServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._counted(head=True)

    def do_GET(self) -> None:
        self._counted(head=False)

    def _counted(self, *, head: bool) -> None:
        self.server_state._enter(+1)
        try:
            self._answer(head=head)
        finally:
            self.server_state._enter(-1)

    def _answer(self, *, head: bool) -> None:
        state = self.server_state
        time.sleep(state.faults.latency_ms / 1000)
        path = unquote(urlsplit(self.path).path)
        target = (state.folder / path.lstrip("/")).resolve()
        if (target != state.folder and state.folder not in target.parents) or not target.exists():
            return self._plain(HTTPStatus.NOT_FOUND, b"not found", head)
        if target.is_dir():
            links = "".join(f'<a href="{quote(p.name)}{"/" if p.is_dir() else ""}">{html.escape(p.name)}</a>\n'
                            for p in sorted(target.iterdir()))
            return self._plain(HTTPStatus.OK, f"<html><body>\n{links}</body></html>".encode(), head, "text/html")
        stat = target.stat()
        size = stat.st_size
        headers = {"ETag": f'"{stat.st_ino:x}-{size:x}-{stat.st_mtime_ns:x}"', "Accept-Ranges": "bytes",
                   "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
                   "Content-Type": "application/octet-stream"}
        match = self.headers.get("If-Match")
        if match is not None and match.strip() not in ("*", headers["ETag"]):  # (as S3 and nginx answer)
            return self._plain(HTTPStatus.PRECONDITION_FAILED, b"ETag differs", head)
        asked = _RANGE.match(self.headers.get("Range", ""))
        if asked is None:
            start, end, status = 0, size, HTTPStatus.OK
        else:
            failure = state._take_fail()
            if failure:
                return self._plain(HTTPStatus(failure), b"injected failure", head)
            start = int(asked.group(1))
            end = min(size, int(asked.group(2)) + 1) if asked.group(2) else size
            if start >= size:
                headers["Content-Range"] = f"bytes */{size}"
                return self._plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", head, extra=headers)
            end -= min(state._take_short(), end - start)
            status = HTTPStatus.PARTIAL_CONTENT
            headers["Content-Range"] = f"bytes {start}-{max(start, end - 1)}/{size}"
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        sent = 0
        if not head:
            with open(target, "rb") as fh:
                fh.seek(start)
                while sent < end - start:
                    block = fh.read(min(2**20, end - start - sent))
                    if not block:
                        break
                    self.wfile.write(block)
                    sent += len(block)
        state._log(ServedRequest(self.command, path, start if asked else None, end if asked else None, sent))

    def _plain(self, status: HTTPStatus, body: bytes, head: bool, content_type: str = "text/plain",
               extra: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.server_state._log(ServedRequest(self.command, unquote(urlsplit(self.path).path), None, None,
                                             0 if head else len(body)))
