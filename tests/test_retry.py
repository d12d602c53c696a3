"""One budgeted retry loop (:meth:`RetryPolicy.run`) for every remote request.

neuPrint's :class:`~connectomix.http.HttpClient` and the CAVE transport
(:class:`~connectomix_cave.transport.CheckedAdapter`) each used to run their own
loop around the policy; both now hand their single attempt to ``run``. Here:
the loop's budget on a fake clock (attempts, waits, timeouts, ``Retry-After``,
what is raised), and both clients going through it against a real server on
127.0.0.1.
"""

import pytest
import requests

from connectomix import errors, http
from connectomix.http import HttpClient, RetryPolicy, Transient

from test_http import script, server  # noqa: F401 - a fixture: a real HTTP server answering a script


class FakeTime:
    """``time`` for :mod:`connectomix.http`: a clock that moves only when slept on or told to."""

    def __init__(self):
        self.now = 0.0
        self.slept = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = FakeTime()
    monkeypatch.setattr(http, "time", fake)
    return fake


def failing(clock, error, *, spend=0.0, retry_after=None, cause=None):
    """An attempt that records its timeout, spends ``spend`` seconds, and fails transiently."""
    timeouts = []

    def attempt(timeout):
        timeouts.append(timeout)
        clock.now += spend
        raise Transient(error, retry_after=retry_after, cause=cause)

    return attempt, timeouts


def test_attempts_are_counted_and_the_last_error_says_so(clock):
    attempt, timeouts = failing(clock, errors.ServerError("HTTP 503: busy", status=503, url="https://h/x"))
    with pytest.raises(errors.ServerError) as info:
        RetryPolicy(max_attempts=4, base_delay=1.0, max_delay=1.0).run(attempt)
    assert len(timeouts) == 4 and len(clock.slept) == 3  # no wait after the last attempt
    assert all(0 <= s <= 1.0 for s in clock.slept)
    error = info.value
    assert str(error).startswith("HTTP 503: busy -- gave up after 4 attempt(s)")
    assert "4 attempts" in str(error) and "retry budget 120s" in str(error)
    assert (error.status, error.server_message, error.url) == (503, None, "https://h/x")


def test_the_total_budget_bounds_timeouts_and_stops_retries(clock):
    attempt, timeouts = failing(clock, errors.RequestTimeoutError("no answer", url="https://h/x"), spend=4.0)
    policy = RetryPolicy(max_attempts=100, base_delay=0.5, max_delay=0.5, total_timeout=10.0, request_timeout=6.0)
    with pytest.raises(errors.RequestTimeoutError, match="gave up after 3 attempt.*retry budget 10s"):
        policy.run(attempt)
    assert timeouts[0] == 6.0  # the request timeout while the budget allows it ...
    assert 10.0 - 4.0 - 0.5 <= timeouts[1] <= 6.0  # ... then what is left of the budget
    assert timeouts[2] <= 10.0 - 8.0
    assert clock.now <= 10.0 + 4.0  # no attempt started after the budget was spent


def test_retry_after_is_honoured_up_to_max_delay(clock):
    attempt, _ = failing(clock, errors.ServerError("HTTP 429", status=429), retry_after="2")
    with pytest.raises(errors.ServerError):
        RetryPolicy(max_attempts=3, max_delay=5.0).run(attempt)
    assert clock.slept == [2.0, 2.0]
    attempt, _ = failing(clock, errors.ServerError("HTTP 429", status=429), retry_after="3600")
    clock.slept.clear()
    with pytest.raises(errors.ServerError):
        RetryPolicy(max_attempts=2, max_delay=5.0).run(attempt)
    assert clock.slept == [5.0]


def test_other_exceptions_are_raised_at_once(clock):
    calls = []

    def attempt(timeout):
        calls.append(timeout)
        raise errors.AuthenticationError("HTTP 401", status=401)

    with pytest.raises(errors.AuthenticationError):
        RetryPolicy().run(attempt)
    assert len(calls) == 1 and clock.slept == []


def test_a_success_after_failures_is_returned(clock):
    answers = [Transient(errors.ServerError("HTTP 502")), Transient(errors.ServerError("HTTP 502")), "table"]

    def attempt(timeout):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert RetryPolicy(max_attempts=3).run(attempt) == "table"
    assert len(clock.slept) == 2


def test_the_raised_error_carries_only_the_cause_it_was_given(clock):
    secret_carrier = requests.ConnectionError("connection to https://h/x with Authorization: Bearer SECRET")
    attempt, _ = failing(clock, errors.ServerError("dropped"), cause=secret_carrier)
    with pytest.raises(errors.ServerError) as info:
        RetryPolicy(max_attempts=2).run(attempt)
    assert info.value.__cause__ is secret_carrier
    attempt, _ = failing(clock, errors.ServerError("dropped"))  # the CAVE transport gives no cause
    with pytest.raises(errors.ServerError) as info:
        RetryPolicy(max_attempts=2).run(attempt)
    assert info.value.__cause__ is None and info.value.__context__ is None  # no requests exception chained


# --- both clients go through the one loop -----------------------------------------------------------------


class CountingPolicy(RetryPolicy):
    """A policy that counts the loops run with it and the attempts made in them."""

    def run(self, attempt):
        type(self).loops += 1

        def counted(timeout):
            type(self).attempts += 1
            return attempt(timeout)

        return super().run(counted)


@pytest.fixture
def counting():
    CountingPolicy.loops = CountingPolicy.attempts = 0
    return CountingPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)


def test_neuprint_http_client_retries_through_the_policy(server, counting):
    script((503, {"error": "busy"}))
    client = HttpClient(server, service="test", retry=counting)
    with pytest.raises(errors.ServerError, match="HTTP 503.*busy.*gave up after 3 attempt") as info:
        client.request("GET", "/x")
    assert (CountingPolicy.loops, CountingPolicy.attempts) == (1, 3)
    assert info.value.status == 503 and info.value.url == f"{server}/x"


def test_cave_transport_retries_through_the_policy(server, counting):
    from connectomix_cave.transport import harden

    script((503, {"error": "busy"}))
    session = requests.Session()
    harden(session, lambda: counting)
    with pytest.raises(errors.ServerError, match=r"CAVE failed on GET .*/x: HTTP 503.*gave up after 3 attempt") as info:
        session.get(f"{server}/x?token=SECRET")
    assert (CountingPolicy.loops, CountingPolicy.attempts) == (1, 3)
    assert info.value.status == 503 and info.value.url == f"{server}/x"  # never the query string
    assert info.value.__cause__ is None and info.value.__context__ is None
    session.close()
