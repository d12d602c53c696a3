"""What sits between caveclient and the network: timeouts, retries and whole-body checks.

caveclient owns one ``requests.Session`` per service client (``client.info``,
``client.materialize``, ``client.chunkedgraph``, ``client.auth``), sends its
requests without a timeout, retries only 502/503/504 (urllib3, three times) and
reads Arrow bodies with ``pa.ipc.open_stream(...).read_pandas()``, which takes a
stream cut right after a complete message for a valid, shorter one. The
:class:`CheckedAdapter` mounted on those sessions (:func:`harden`) therefore

* gives every request a timeout (:attr:`RetryPolicy.request_timeout
  <connectomix.http.RetryPolicy>`, bounded by what is left of the retry budget);
* reads every body whole before caveclient sees it and refuses an incomplete
  one: fewer bytes than ``Content-Length``, an Arrow stream (``Content-Type:
  data.arrow``) without its end-of-stream marker or with bytes left over
  (:func:`connectomix.wire.check_arrow_stream`), a JSON body that does not
  parse, a ``roots_binary`` answer without one root id per supervoxel id sent;
* retries HTTP 429/502/503/504, dropped or reset connections, timeouts and
  incomplete bodies with the policy's backoff (:meth:`RetryPolicy.run
  <connectomix.http.RetryPolicy.run>`, the loop neuPrint's requests use too),
  on every endpoint, and raises a
  :class:`~connectomix.errors.ServerError` (``RequestTimeoutError`` for
  timeouts, ``IncompleteResponseError`` for cut bodies) when the budget is
  spent. Exceptions are raised without the ``requests`` exception as their
  cause: that one carries the request and its token.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from connectomix.errors import IncompleteResponseError, RequestTimeoutError, ServerError
from connectomix.http import RETRY_STATUSES, RetryPolicy, Transient
from connectomix.wire import check_arrow_stream

__all__ = ["CheckedAdapter", "harden", "check_body"]

#: The Content-Type MaterializationEngine sends Arrow query results with (caveclient compares for equality).
ARROW_CONTENT_TYPE = "data.arrow"


def _where(url: str | None) -> str:
    """The URL without its query string (filters and ids can be long; never holds the token)."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else (url or "")


def check_body(response: requests.Response) -> None:
    """Raise :class:`IncompleteResponseError` unless ``response`` holds its whole body.

    Reads the body (``response.content``). Checked: the bytes received against
    ``Content-Length``; for a successful response, an Arrow stream's
    end-of-stream marker and exact length, that a JSON body parses, and that
    ``roots_binary`` returns one root id per supervoxel id sent.
    """
    body = response.content
    url = _where(response.url)
    declared = response.headers.get("Content-Length")
    received = response.raw.tell() if hasattr(response.raw, "tell") else len(body)
    if declared is not None and declared.isdigit() and int(declared) != received:
        raise IncompleteResponseError(
            f"incomplete response from {url}: {received} bytes received, Content-Length says {declared}",
            url=url)
    if not 200 <= response.status_code < 300:
        return  # error bodies are only read for their message
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type == ARROW_CONTENT_TYPE:
        check_arrow_stream(body, what=f"Arrow response from {url}", url=url)
    elif content_type == "application/octet-stream" and urlsplit(url).path.endswith("/roots_binary"):
        sent = response.request.body if isinstance(response.request.body, bytes) else None
        if sent is not None and len(body) != len(sent):  # one uint64 root per uint64 supervoxel sent
            raise IncompleteResponseError(
                f"incomplete response from {url}: {len(body) // 8} root ids for {len(sent) // 8} supervoxels",
                url=url)
    elif content_type == "application/json":
        try:
            json.loads(body)
        except ValueError:
            raise IncompleteResponseError(
                f"incomplete response from {url}: the JSON body ({len(body)} bytes) does not parse",
                url=url) from None


class CheckedAdapter(HTTPAdapter):
    """A transport adapter that adds a timeout, whole-body checks and retries to every request.

    Parameters
    ----------
    policy
        Called at each request for the :class:`~connectomix.http.RetryPolicy`
        to use (so a backend's policy can be changed after the client exists).
    pool_maxsize, pool_block
        Connection pool size and whether to block when it is exhausted.
    """

    def __init__(self, policy: Callable[[], RetryPolicy], *, pool_maxsize: int = 10, pool_block: bool = False):
        super().__init__(pool_maxsize=pool_maxsize, pool_block=pool_block, max_retries=0)
        self._policy = policy

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):  # noqa: D102
        url = _where(request.url)
        where = f"CAVE failed on {request.method} {url}"
        send = super().send

        def attempt(budgeted: float) -> requests.Response:
            limit = budgeted if timeout is None else timeout
            try:
                response = send(request, stream=stream, timeout=limit, verify=verify, cert=cert, proxies=proxies)
                if not stream:
                    check_body(response)
            except requests.Timeout:
                raise Transient(RequestTimeoutError(f"{where}: no answer within {limit:.1f}s", url=url)) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                raise Transient(ServerError(f"{where}: {type(exc).__name__}: {_short(exc)}", url=url)) from None
            except IncompleteResponseError as exc:
                raise Transient(exc) from None
            if response.status_code not in RETRY_STATUSES:
                return response
            text = response.text[:300]
            raise Transient(ServerError(f"{where}: HTTP {response.status_code}: {text}", status=response.status_code,
                                        server_message=text, url=url),
                            retry_after=response.headers.get("Retry-After"))

        return self._policy().run(attempt)  # a spent budget raises without the requests exception as cause


def harden(session: requests.Session, policy: Callable[[], RetryPolicy], *, pool_maxsize: int = 10,
           pool_block: bool = False) -> None:
    """Mount a :class:`CheckedAdapter` on ``session`` for ``http://`` and ``https://`` (replacing caveclient's)."""
    adapter = CheckedAdapter(policy, pool_maxsize=pool_maxsize, pool_block=pool_block)
    session.mount("https://", adapter)
    session.mount("http://", adapter)


def _short(exc: BaseException, limit: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."
