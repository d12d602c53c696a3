"""HttpClient against a real HTTP server on 127.0.0.1: retries, budgets, error mapping, secrecy."""

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectomix import errors
from connectomix.config import Secret
from connectomix.http import HttpClient, RetryPolicy

TOKEN = "tok-SECRET-123"


class Handler(BaseHTTPRequestHandler):
    script: list = []  # (status, body) answered in order; the last one repeats
    seen: list = []

    def log_message(self, *args):
        pass

    def _answer(self):
        Handler.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, body = Handler.script.pop(0) if len(Handler.script) > 1 else Handler.script[0]
        if status == "reset":
            self.connection.close()
            return
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def client(url, **retry):
    policy = RetryPolicy(base_delay=0.001, max_delay=0.01, **retry)
    return HttpClient(url, token=Secret(TOKEN), service="test", auth_help="Get a new token.", retry=policy)


def script(*answers):
    Handler.script = list(answers)
    Handler.seen = []


def test_retries_a_burst_of_503_then_succeeds(server):
    script((503, {"error": "busy"}), (503, {"error": "busy"}), (200, {"ok": 1}))
    r = client(server).request("GET", "/x")
    assert r.json() == {"ok": 1} and len(Handler.seen) == 3
    assert Handler.seen[0][2] == f"Bearer {TOKEN}"


def test_gives_up_after_max_attempts_with_a_clear_error(server):
    script((502, {"message": "bad gateway"}))
    with pytest.raises(errors.ServerError, match=r"HTTP 502.*bad gateway.*gave up after 3 attempt") as err:
        client(server, max_attempts=3).request("GET", "/x")
    assert err.value.status == 502 and len(Handler.seen) == 3


def test_dropped_connections_are_retried(server):
    script(("reset", None), (200, {"ok": 2}))
    assert client(server).request("POST", "/x", json_body={}).json() == {"ok": 2}


def test_401_and_403_give_different_advice_and_are_not_retried(server):
    script((401, {"message": "invalid or expired token"}))
    with pytest.raises(errors.AuthenticationError, match="missing, invalid or expired. Get a new token"):
        client(server).request("GET", "/x")
    assert len(Handler.seen) == 1
    script((403, {"error": "no access"}))
    with pytest.raises(errors.AuthorizationError, match="lacks permission.*a new token will not help"):
        client(server).request("GET", "/x")


def test_query_errors_keep_server_message_and_query(server):
    script((400, {"error": "Neo.ClientError.Statement.SyntaxError: Invalid input"}))
    with pytest.raises(errors.QueryError) as err:
        client(server).request("POST", "/api/custom/custom", json_body={}, query_text="MATCH (n) RETURN x")
    assert "SyntaxError" in err.value.server_message and err.value.query == "MATCH (n) RETURN x"


def test_total_time_budget(server):
    script((503, {"error": "busy"}))
    with pytest.raises(errors.ServerError, match="retry budget"):
        client(server, max_attempts=1000, total_timeout=0.05).request("GET", "/x")


def test_unreachable_server(server):
    with pytest.raises(errors.ServerError, match="could not talk to test"):
        client("http://127.0.0.1:9", max_attempts=2).request("GET", "/x")


def test_token_never_in_repr_errors_or_logs(server, caplog):
    caplog.set_level(logging.DEBUG)
    script((401, {"message": "nope"}), (500, {"message": "boom"}))
    c = client(server, max_attempts=1)
    texts = [repr(c)]
    for expected in (errors.AuthenticationError, errors.ServerError):
        with pytest.raises(expected) as exc:
            c.request("GET", "/x")
        texts += [str(exc.value), repr(exc.value)]
    texts.append(caplog.text)
    assert len(texts) == 6 and not any(TOKEN in t for t in texts)
