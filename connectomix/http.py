"""HTTP for remote backends: one pooled session, retries with backoff, error mapping.

:class:`HttpClient` wraps one ``requests.Session`` per dataset (no global
client). It retries idempotent failures -- HTTP 429/502/503/504, dropped
connections, stalled responses and incomplete bodies -- with exponential
backoff and full jitter, within a total time budget, and translates
everything else into the
:class:`~connectomix.errors.ConnectomixError` hierarchy, keeping the server's
own message. The token lives in a :class:`~connectomix.config.Secret` and is
only ever placed in the ``Authorization`` header.

A body is *incomplete* when it is shorter or longer than its declared
``Content-Length``, or when the caller's ``decode`` function (see
:meth:`HttpClient.request`; e.g. :func:`json_body` or
:func:`connectomix.wire.read_arrow_stream`) raises
:class:`~connectomix.errors.IncompleteResponseError`: such a response is
retried like a dropped connection and never returned.
"""

from __future__ import annotations

import json
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

from .config import Secret
from .errors import (
    AuthenticationError,
    AuthorizationError,
    IncompleteResponseError,
    QueryError,
    RemoteError,
    RequestTimeoutError,
    ServerError,
)

__all__ = ["HttpClient", "RetryPolicy", "Transient", "RETRY_STATUSES", "json_body", "check_content_length"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
T = TypeVar("T")


def check_content_length(response: requests.Response) -> None:
    """Raise :class:`IncompleteResponseError` if the body disagrees with its declared ``Content-Length``.

    Only for bodies sent as they are (no ``Content-Encoding``: a compressed
    body's declared length is that of the compressed bytes).
    """
    declared = response.headers.get("Content-Length")
    if declared is None or response.request.method == "HEAD" \
            or response.headers.get("Content-Encoding", "identity").lower() != "identity":
        return
    try:
        expected = int(declared)
    except ValueError:
        raise IncompleteResponseError(f"incomplete response: Content-Length {declared!r} is not a number",
                                      status=response.status_code, url=_no_query(response.url)) from None
    if expected != len(response.content):
        raise IncompleteResponseError(
            f"incomplete response: {len(response.content)} bytes arrived, Content-Length said {expected}",
            status=response.status_code, url=_no_query(response.url))


def json_body(response: requests.Response) -> Any:
    """The response's JSON document, or :class:`IncompleteResponseError` if it does not parse whole.

    A document cut anywhere (an object or array without its closing bracket)
    does not parse, so a parsed document is a whole one.

    Examples
    --------
    >>> import requests
    >>> r = requests.Response(); r._content = b'{"columns": ["a"], "data": [[1]]}'
    >>> json_body(r)
    {'columns': ['a'], 'data': [[1]]}
    >>> r._content = b'{"columns": ["a"], "data": [[1]]'
    >>> json_body(r)
    Traceback (most recent call last):
    ...
    connectomix.errors.IncompleteResponseError: incomplete response: the body is not whole JSON (32 bytes; ...)
    """
    content = response.content
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise IncompleteResponseError(f"incomplete response: the body is not whole JSON ({len(content)} bytes; "
                                      f"{_short(exc, 200)})", status=response.status_code,
                                      url=_no_query(response.url)) from None


def _no_query(url: str | None) -> str | None:
    return url.split("?", 1)[0] if url else url


class Transient(Exception):
    """Raised by an attempt of :meth:`RetryPolicy.run`: it failed in a way worth retrying.

    Parameters
    ----------
    error
        What to raise if no attempt succeeds (with the budget spent added to its message).
    retry_after
        The server's ``Retry-After`` header, if it sent one.
    cause
        The exception ``error`` is raised from at the end (``None``: none, e.g. because the
        ``requests`` exception carries the request and its token).
    """

    def __init__(self, error: RemoteError, *, retry_after: str | None = None, cause: BaseException | None = None):
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
        self.cause = cause


@dataclass(frozen=True)
class RetryPolicy:
    """How remote requests are retried (:class:`HttpClient`, the CAVE transport): :meth:`run`.

    Attempt ``k`` (from 0) waits ``uniform(0, min(max_delay, base_delay * 2**k))``
    seconds ("full jitter"), or the server's ``Retry-After``, and no retry
    starts after ``total_timeout`` seconds since the first attempt.
    """

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 5.0
    total_timeout: float = 120.0
    request_timeout: float = 60.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), self.max_delay)
            except ValueError:
                pass
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))

    def run(self, attempt: Callable[[float], T]) -> T:
        """``attempt(timeout)``, repeated with backoff while it raises :class:`Transient`, within the budget.

        ``timeout`` is :attr:`request_timeout`, bounded by what is left of
        :attr:`total_timeout` (at least 0.1 s). Any other exception of
        ``attempt`` is raised at once. When :attr:`max_attempts` are spent, or
        the next wait would end after :attr:`total_timeout`, the last
        transient error is raised with the spent budget added to its message.

        Examples
        --------
        >>> answers = iter([Transient(ServerError("HTTP 503: busy")), "rows"])
        >>> def attempt(timeout):
        ...     answer = next(answers)
        ...     if isinstance(answer, Transient):
        ...         raise answer
        ...     return answer
        >>> RetryPolicy(base_delay=0.001).run(attempt)
        'rows'
        >>> RetryPolicy(max_attempts=2, base_delay=0.001).run(lambda timeout: 1 / 0)
        Traceback (most recent call last):
        ...
        ZeroDivisionError: division by zero
        >>> def busy(timeout):
        ...     raise Transient(ServerError("HTTP 503: busy", status=503))
        >>> RetryPolicy(max_attempts=2, base_delay=0.001).run(busy)
        Traceback (most recent call last):
        ...
        connectomix.errors.ServerError: HTTP 503: busy -- gave up after 2 attempt(s) in 0.0s (retry budget 120s, 2 attempts)
        """
        started, attempts = time.monotonic(), 0
        while True:
            remaining = self.total_timeout - (time.monotonic() - started)
            try:
                return attempt(max(0.1, min(self.request_timeout, remaining)))
            except Transient as failure:
                error, retry_after, cause = failure.error, failure.retry_after, failure.cause
            attempts += 1
            wait = self.delay(attempts - 1, retry_after)
            elapsed = time.monotonic() - started
            if attempts >= self.max_attempts or elapsed + wait > self.total_timeout:
                raise type(error)(
                    f"{error} -- gave up after {attempts} attempt(s) in {elapsed:.1f}s (retry budget "
                    f"{self.total_timeout:g}s, {self.max_attempts} attempts)", status=error.status,
                    server_message=error.server_message, url=error.url) from cause
            time.sleep(wait)


class HttpClient:
    """A pooled HTTP session for one remote dataset.

    Parameters
    ----------
    base_url
        ``https://host:port`` (no trailing slash).
    token
        Bearer token, or ``None``.
    verify
        TLS verification: ``True``, ``False`` or a CA bundle path.
    service
        Name used in messages (``"neuPrint"``, ``"CAVE"``).
    auth_help
        What to tell the user after a 401 (how to get a new token).
    retry
        The :class:`RetryPolicy`.
    pool_size
        Connections kept per host (>= the worker count of concurrent queries).
    """

    def __init__(self, base_url: str, *, token: Secret | None = None, verify: bool | str = True,
                 service: str = "server", auth_help: str = "", retry: RetryPolicy | None = None,
                 pool_size: int = 16):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.service = service
        self.auth_help = auth_help
        self.retry = retry or RetryPolicy()
        self.session = requests.Session()
        self.session.verify = verify
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.stats = {"requests": 0, "bytes": 0}

    def __repr__(self) -> str:
        return f"HttpClient({self.base_url!r}, token={'***' if self._token else None})"

    def close(self) -> None:
        self.session.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return headers

    def request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
                query_text: str | None = None, decode: Callable[[requests.Response], T] | None = None) -> Any:
        """Send a request with retries; return the successful response, or what ``decode`` makes of it.

        Parameters
        ----------
        method, path
            HTTP method and path below :attr:`base_url`.
        json_body, params
            JSON request body and query parameters.
        query_text
            Attached to :class:`QueryError` s (e.g. the Cypher).
        decode
            Called with each successful response; its result is returned. An
            :class:`IncompleteResponseError` it raises is retried like a
            dropped connection (and raised once the retry budget is spent).

        Raises
        ------
        RemoteError
            The server refused the request, or it failed (for transient
            failures: on every attempt the budget allowed).
        """
        url = f"{self.base_url}{path}"

        def attempt(timeout: float) -> Any:
            try:
                response = self.session.request(
                    method, url, json=json_body, params=params, headers=self._headers(), timeout=timeout,
                    # per request: requests lets $REQUESTS_CA_BUNDLE override Session.verify otherwise
                    verify=self.session.verify,
                )
                self.stats["requests"] += 1
                self.stats["bytes"] += len(response.content)
                if response.ok:
                    check_content_length(response)
                    return decode(response) if decode is not None else response
            except IncompleteResponseError as exc:  # transient: retried like a dropped connection
                exc.url = exc.url or url  # a decoder's error may not know where the body came from
                raise Transient(exc) from None
            except requests.exceptions.SSLError as exc:
                if _certificate_error(exc):
                    raise ServerError(
                        f"TLS verification of {self.base_url} failed ({_short(exc)}); pass verify=<CA bundle path> "
                        "for a server with its own certificate (e.g. the local emulators' cert_path), or "
                        "verify=false to skip verification", url=url) from exc
                # any other TLS failure (e.g. EOF on a connection the server closed) is a dropped connection
                raise Transient(ServerError(f"could not talk to {self.service} at {self.base_url} (TLS: "
                                            f"{_short(exc)})", url=url), cause=exc) from None
            except requests.Timeout as exc:
                raise Transient(RequestTimeoutError(f"{self.service} did not answer {method} {path} in time",
                                                    url=url), cause=exc) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                raise Transient(ServerError(f"could not talk to {self.service} at {self.base_url} "
                                            f"({type(exc).__name__}: {_short(exc)})", url=url), cause=exc) from None
            error = self._error(response, method, path, query_text)
            if response.status_code not in RETRY_STATUSES:
                raise error
            raise Transient(error, retry_after=response.headers.get("Retry-After"))

        return self.retry.run(attempt)

    def _error(self, response: requests.Response, method: str, path: str, query_text: str | None) -> RemoteError:
        status = response.status_code
        message = _server_message(response)
        where = f"{method} {path}"
        kwargs = {"status": status, "server_message": message, "url": f"{self.base_url}{path}"}
        if status == 401:
            return AuthenticationError(
                f"{self.service} rejected the token (HTTP 401: {message or 'unauthorized'}): it is missing, "
                f"invalid or expired. {self.auth_help}".strip(), **kwargs)
        if status == 403:
            return AuthorizationError(
                f"{self.service} accepted the token but denied access (HTTP 403: {message or 'forbidden'}): "
                "your account lacks permission for this dataset; ask its administrators for access "
                "(a new token will not help).", **kwargs)
        if "timeout" in message.lower():
            return RequestTimeoutError(
                f"{self.service} timed out on {where} (HTTP {status}): {message}. The query was too big or the "
                "server too busy: retry later, or pass a smaller batch_size", **kwargs)
        if status >= 500 or status in RETRY_STATUSES:
            return ServerError(f"{self.service} failed on {where} (HTTP {status}): {message}", **kwargs)
        if query_text is not None:
            return QueryError(f"{self.service} rejected the query (HTTP {status}): {message}\nQuery was:\n{query_text}",
                              query=query_text, **kwargs)
        return ServerError(f"{self.service} refused {where} (HTTP {status}): {message}", **kwargs)


def _certificate_error(exc: BaseException) -> bool:
    """Whether a TLS failure is the server's certificate being refused (not a dropped connection)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLCertVerificationError):
            return True
        todo += [*item.args, item.__cause__, item.__context__, getattr(item, "reason", None)]
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc)


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return _short(response.text)
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if body.get(key):
                return str(body[key])
    return _short(json.dumps(body))


def _short(value: Any, limit: int = 500) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."
