"""Tokens given inside a URI (or reaching a request header) never show in messages, reprs, listings or chains."""

from __future__ import annotations

import contextlib
import io
import traceback

import pytest
import requests

import connectomix
from connectomix import errors
from connectomix.cli import main
from connectomix.config import Secret, parse_uri, redact, scrub_exception

TOKEN = "S3CRET-t0ken-value"


def _chain(exc: BaseException):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _everything_shown(exc: BaseException) -> str:
    """The traceback text plus the reprs of every chained exception and of its request/response."""
    parts = ["".join(traceback.format_exception(exc))]
    for e in _chain(exc):
        parts.append(repr(e))
        for holder in (getattr(e, "request", None), getattr(getattr(e, "response", None), "request", None)):
            if holder is not None:
                parts += [repr(getattr(holder, "headers", None)), str(getattr(holder, "url", ""))]
    return "\n".join(parts)


@pytest.mark.parametrize("uri", [
    f"neuprint://justahost?token={TOKEN}",  # backend: bad location, message quotes the URI
    f"neuprint://host:99999/ds?token={TOKEN}",  # parse_uri: bad port
    f"cave://?token={TOKEN}",  # parse_uri: nothing after the scheme
    f"cave://stack?token={TOKEN}#frag",
    f"cave://stack?token={TOKEN}&token=again",
    f"neuprint://user:{TOKEN}@host/ds?verify=maybe&x",
    f"nosuchscheme://x?auth_token={TOKEN}",
])
def test_tokens_in_uris_never_appear_in_errors(uri):
    with pytest.raises(errors.ConnectomixError) as info:
        connectomix.open(uri)
    assert TOKEN not in _everything_shown(info.value)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["neurons", uri]) == 2
    assert TOKEN not in err.getvalue() and err.getvalue().startswith("connectomix: error: ")


def test_parsed_uri_keeps_the_token_as_a_secret():
    p = parse_uri(f"neuprint://h/ds?token={TOKEN}&verify=false")
    assert TOKEN not in repr(p) and p.raw == "neuprint://h/ds?token=***&verify=false"
    assert isinstance(p.options["token"], Secret) and p.options["token"].reveal() == TOKEN


def test_datasets_listing_redacts_tokens(config_file):
    config_file(f'[datasets.np]\nuri = "neuprint://h/ds?token={TOKEN}"\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["datasets"]) == 0
    assert "np " in out.getvalue() and "token=***" in out.getvalue() and TOKEN not in out.getvalue()


def _request_error() -> requests.ConnectionError:
    prepared = requests.Request("GET", f"https://h/api?token={TOKEN}",
                                headers={"Authorization": f"Bearer {TOKEN}", "Cookie": f"s={TOKEN}"}).prepare()
    return requests.ConnectionError(f"connection reset while asking https://h/api?token={TOKEN}", request=prepared)


def test_request_headers_do_not_hang_off_errors_of_dataset_methods(toy, monkeypatch):
    def failing(query):
        try:
            raise _request_error()
        except requests.ConnectionError as exc:
            raise errors.ServerError("could not talk to the server", url=f"https://h/api?token={TOKEN}") from exc

    monkeypatch.setattr(toy.backend, "get_connectivity", failing)
    with pytest.raises(errors.ServerError) as info:
        toy.get_connectivity([101], progress=False)
    shown = _everything_shown(info.value)
    assert TOKEN not in shown
    cause = info.value.__cause__
    assert cause.request.headers["Authorization"] == "***" and cause.request.headers["Cookie"] == "***"


def test_scrub_exception_walks_causes_and_contexts():
    try:
        try:
            raise _request_error()
        except requests.ConnectionError:
            raise KeyError(f"Bearer {TOKEN}")  # context, not cause
    except KeyError as exc:
        scrubbed = scrub_exception(exc)
    assert TOKEN not in _everything_shown(scrubbed)


def test_scrub_exception_reaches_exceptions_inside_messages():
    """requests wraps urllib3's MaxRetryError (whose message has the URL) as an argument, not as a cause."""
    from urllib3.exceptions import MaxRetryError, NewConnectionError

    reason = NewConnectionError(None, f"Failed to connect to /api?token={TOKEN}")
    inner = MaxRetryError(None, f"/api?token={TOKEN}", reason)
    exc = requests.ConnectionError(inner, request=_request_error().request)
    assert TOKEN in str(exc)
    scrub_exception(exc)
    assert TOKEN not in _everything_shown(exc) and TOKEN not in str(exc) and TOKEN not in inner.url


@pytest.mark.parametrize("text, shown", [
    (f"https://h/x?a=1&token={TOKEN}&b=2", "https://h/x?a=1&token=***&b=2"),
    (f"{{'Authorization': 'Bearer {TOKEN}'}}", "{'Authorization': '***'}"),
    (f"middle_auth_token={TOKEN}", "middle_auth_token=***"),
    (f"https://me:{TOKEN}@host/x", "https://***@host/x"),
    ("nothing secret here: token_count=3", "nothing secret here: token_count=3"),
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_neuprint_errors_through_a_dead_server_carry_no_token(tmp_path, toy_release):
    """A real requests error (connection refused) with the Authorization header on its request."""
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(toy_release, token=TOKEN, dataset="toy:v1") as emu:
        host = emu.url.split("://", 1)[1]
        cert = tmp_path / "ca.pem"  # the emulator deletes its own copy when it stops
        cert.write_bytes(emu.cert_path.read_bytes())
        ds = connectomix.open(f"neuprint://{host}/toy:v1?token={TOKEN}", verify=str(cert), cache=False,
                              retry={"max_attempts": 1, "total_timeout": 5})
    with ds, pytest.raises(errors.RemoteError) as info:  # the emulator is gone
        ds.fetch_neurons([101])
    assert any(getattr(e, "request", None) is not None for e in _chain(info.value)), "the chain keeps the request"
    assert TOKEN not in _everything_shown(info.value)
