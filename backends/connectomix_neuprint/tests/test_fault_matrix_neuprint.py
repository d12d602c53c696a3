"""Fault matrix: every endpoint the neuPrint backend calls x every fault kind of the emulator.

Each case injects a bounded fault (a count of faulted responses, then
healthy ones) into one request of one operation and requires the answer to
equal the fault-free answer, whole table for whole table. Faults that outlast
the retry budget must raise a :class:`~connectomix.errors.ConnectomixError`
(never a shorter table).

Operations and the requests they make (checked by
``test_requests_per_operation``, so a change in the backend's request pattern
shows up here):

* ``open``: ``GET /api/dbmeta/datasets``, ``GET /api/version`` (Arrow only),
  ``POST /api/custom/custom`` (the ``:Meta`` query);
* ``fetch_neurons`` (with per-ROI counts, from the same answer): one JSON query (node properties can be
  null; see ``NeuprintBackend.run``);
* ``get_connectivity`` (total and by ROI, one side given): one query that also checks the ids, on
  ``/api/custom/arrow`` or ``/api/custom/custom``;
* ``get_synapses``: the id check and one query per side, all JSON;
* ``get_skeletons``: ``GET /api/skeletons/skeleton`` per neuron.

Fault kinds (see :mod:`connectomix_neuprint.emulator.faults`): bursts of HTTP
429/502/503/504; connection resets before the headers and mid-body; stalls
longer than the client's timeout before the headers and mid-body; a
connection closed mid-body; a Content-Length longer than the body; and bodies
that look whole but are cut -- by a short Content-Length ("lie") or a chunked
body ended early ("chunked") -- after the Arrow schema, after each record
batch, before the end-of-stream marker and inside each of these messages
(Arrow), or at the first byte, half-way and before the last byte (JSON).
"""

from __future__ import annotations

import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.testing import make_toy_release

TOKEN = "np-fault-matrix-token"
DATASET = "toy:v1"
#: Client request timeout for the stall cases (s); the stall is longer. Other cases use 30 s.
STALL_TIMEOUT = 0.3
STALL_SECONDS = 0.6
RETRY = {"max_attempts": 5, "base_delay": 0.001, "max_delay": 0.005, "total_timeout": 60}

ARROW_CUTS = ("schema", "batch:0", "batch:1", "eos", "in-schema", "in-batch:0", "in-batch:1", "in-eos")
JSON_CUTS = (0, "half", -1)
#: (kind, at or status, faulted responses in a row)
COMMON = (
    [("status", s, 2) for s in (429, 502, 503, 504)]
    + [("reset", "headers", 1), ("reset", "half", 1), ("stall", "headers", 1), ("stall", "half", 1),
       ("close", "half", 1), ("lie", "long", 1)]
)
BODY_KINDS = ("close", "lie", "chunked")
ARROW_KINDS = tuple(COMMON + [(kind, at, 1) for at in ARROW_CUTS for kind in ("lie", "chunked")])
JSON_KINDS = tuple(COMMON + [(kind, at, 1) for at in JSON_CUTS for kind in ("lie", "chunked")])

ARROW = "/api/custom/arrow"
CUSTOM = "/api/custom/custom"
SKELETON = "/api/skeletons/skeleton/"
DATASETS = "/api/dbmeta/datasets"
VERSION = "/api/version"

# partner_types=False: the tables' own requests (the partner columns' neuron lookup is a fetch_neurons query,
# the first operation)
OPERATIONS = {
    "fetch_neurons": lambda ds: ds.fetch_neurons(type="(KC|PN_a)", regex=True),
    "connectivity": lambda ds: ds.get_connectivity(sources=[101, 102, 103, 104], progress=False,
                                                   partner_types=False),
    "connectivity_by_roi": lambda ds: ds.get_connectivity(sources=[101, 102, 103, 104], by_roi=True,
                                                          progress=False, partner_types=False),
    "get_synapses": lambda ds: ds.get_synapses([101, 104], progress=False, partner_types=False),
    "get_skeletons": lambda ds: ds.get_skeletons([101, 102]),
}
#: transport -> operation -> {path: requests made to it}
REQUESTS = {
    "arrow": {"open": {DATASETS: 1, VERSION: 1, CUSTOM: 1},
              "fetch_neurons": {CUSTOM: 1}, "connectivity": {ARROW: 1}, "connectivity_by_roi": {ARROW: 1},
              "get_synapses": {CUSTOM: 3}, "get_skeletons": {SKELETON: 2}},
    # JSON transport: opening is the same as above without /api/version, skeletons do not depend on it
    "json": {"fetch_neurons": {CUSTOM: 1}, "connectivity": {CUSTOM: 1}, "connectivity_by_roi": {CUSTOM: 1},
             "get_synapses": {CUSTOM: 3}},
}


def _cases():
    """Every fault kind on the first request of each endpoint in each operation; body cuts on the later ones.

    Statuses, resets and stalls strike before any body reaches the backend and
    are handled alike for every request to an endpoint (and stalls cost a
    client timeout each), so the later requests of an operation get the kinds
    that hand the backend a body: the cuts.
    """
    for transport, ops in REQUESTS.items():
        for op, paths in ops.items():
            for path, count in paths.items():
                kinds = ARROW_KINDS if path == ARROW else JSON_KINDS
                for after in range(count):
                    for kind, at, n in kinds:
                        if after and kind not in BODY_KINDS:
                            continue  # see _cases' docstring
                        name = f"{transport}-{op}-{path.strip('/').replace('/', '.')}#{after}-{kind}-{at}"
                        yield pytest.param(transport, op, path, after, kind, at, n, id=name)


CASES = list(_cases())


# -- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from connectomix_neuprint.emulator import NeuprintEmulator

    toy = make_toy_release(tmp_path_factory.mktemp("toy-faults"))
    # 4 rows per record batch: the answers are streams of several batches, so there are boundaries to cut at
    with NeuprintEmulator(toy, token=TOKEN, dataset=DATASET, arrow_batch_rows=4) as emu:
        yield emu


def open_np(emu, transport: str, *, stalls: bool = False, **retry):
    host = emu.url.split("://", 1)[1]
    return connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emu.cert_path), cache=False,
                            arrow="true" if transport == "arrow" else "false",
                            timeout=STALL_TIMEOUT if stalls else 30.0, retry={**RETRY, **retry})


@pytest.fixture(scope="module")
def datasets(emu):
    """``(transport, stalls) -> Dataset``; the ``stalls`` ones have the short client timeout."""
    opened = {(t, s): open_np(emu, t, stalls=s) for t in ("arrow", "json") for s in (False, True)}
    yield opened
    for ds in opened.values():
        ds.close()


@pytest.fixture(scope="module")
def expected(emu, datasets):
    """The fault-free answers, per transport and operation."""
    emu.faults.clear()
    answers = {(t, op): run(datasets[(t, False)], op) for t in REQUESTS for op in OPERATIONS}
    answers.update({(t, "open"): (datasets[(t, False)].info, datasets[(t, False)].backend.use_arrow) for t in REQUESTS})
    return answers


@pytest.fixture(autouse=True)
def _no_leftover_faults(emu):
    emu.faults.clear()
    yield
    emu.faults.clear()


def run(ds, op: str):
    return OPERATIONS[op](ds)


def assert_same(got, want) -> None:
    """Whole-answer equality: every table frame-equal, every skeleton's node table frame-equal."""
    if isinstance(want, connectomix.dataset.NeuronTables):
        pd.testing.assert_frame_equal(got.neurons, want.neurons)
        pd.testing.assert_frame_equal(got.roi_counts, want.roi_counts)
    elif isinstance(want, pd.DataFrame):
        pd.testing.assert_frame_equal(got, want)
    else:  # navis NeuronList
        assert [int(n.id) for n in got] == [int(n.id) for n in want]
        for a, b in zip(got, want):
            pd.testing.assert_frame_equal(a.nodes, b.nodes)


def inject(emu, kind: str, at, n: int, path: str, after: int) -> None:
    from connectomix_neuprint.emulator import Fault

    if kind == "status":
        fault = Fault("status", status=at, path=path, after=after)
    else:
        fault = Fault(kind, at=at, path=path, after=after, seconds=STALL_SECONDS if kind == "stall" else 0.0)
    emu.faults.add(fault, n)


# -- the matrix -------------------------------------------------------------------------------------


def test_requests_per_operation(emu, datasets):
    """The request pattern the matrix below targets (a fault aimed at a request that never comes proves nothing)."""
    for transport, ops in REQUESTS.items():
        for op, paths in ops.items():
            assert emu.wait_idle()
            emu.stats.reset()
            if op == "open":
                open_np(emu, transport).close()
            else:
                run(datasets[(transport, False)], op)
            assert emu.wait_idle()
            made = {k: v["requests"] for k, v in emu.stats.snapshot()["endpoints"].items()}
            want = {f"{'GET' if p in (DATASETS, VERSION, SKELETON) else 'POST'} {p.rstrip('/')}": c
                    for p, c in paths.items()}
            assert made == want, (transport, op)


@pytest.mark.parametrize("transport, op, path, after, kind, at, n", CASES)
def test_fault_gives_the_fault_free_answer(emu, datasets, expected, transport, op, path, after, kind, at, n):
    inject(emu, kind, at, n, path, after)
    if op == "open":
        with open_np(emu, transport, stalls=kind == "stall") as ds:
            assert emu.faults.pending == []  # the fault struck during the opening
            assert (ds.info, ds.backend.use_arrow) == expected[(transport, "open")]
    else:
        got = run(datasets[(transport, kind == "stall")], op)
        assert emu.faults.pending == []  # the fault struck
        assert_same(got, expected[(transport, op)])


@pytest.mark.parametrize("kind", ["lie", "chunked"])
@pytest.mark.parametrize("batch", range(11))
def test_cut_after_every_record_batch(emu, datasets, expected, kind, batch):
    """The connectivity answer (43 rows in 11 batches of 4) cut after each of its record batches."""
    inject(emu, kind, f"batch:{batch}", 1, ARROW, after=0)  # the one query (it checks the ids itself)
    got = run(datasets[("arrow", False)], "connectivity")
    assert emu.faults.pending == []
    assert_same(got, expected[("arrow", "connectivity")])


def test_the_connectivity_answer_has_eleven_batches(emu):
    import pyarrow as pa

    from connectomix_neuprint.emulator.faults import arrow_message_spans
    from connectomix_neuprint.emulator.values import encode_arrow

    rows = [[i] for i in range(43)]
    spans = arrow_message_spans(encode_arrow(["x"], rows, batch_rows=emu.arrow_batch_rows))
    assert len(spans) == 1 + 11  # schema + batches: test_cut_after_every_record_batch covers each
    assert pa.ipc.open_stream(encode_arrow(["x"], rows, batch_rows=4)).read_all().num_rows == 43


# -- faults beyond the retry budget -----------------------------------------------------------------


PERSISTENT = [
    # (transport, operation, fault, expected error)
    ("arrow", "connectivity", ("lie", "schema"), errors.IncompleteResponseError),
    ("arrow", "fetch_neurons", ("chunked", -1), errors.IncompleteResponseError),  # lookups read JSON
    ("arrow", "connectivity_by_roi", ("lie", "in-batch:0"), errors.IncompleteResponseError),
    ("json", "connectivity", ("lie", "half"), errors.IncompleteResponseError),
    ("json", "get_synapses", ("chunked", -1), errors.IncompleteResponseError),
    ("json", "get_skeletons", ("lie", -1), errors.IncompleteResponseError),
    ("arrow", "fetch_neurons", ("status", 503), errors.ServerError),
    ("json", "get_synapses", ("reset", "half"), errors.ServerError),
    ("arrow", "connectivity", ("close", "half"), errors.ServerError),
    ("arrow", "get_skeletons", ("stall", "headers"), errors.RequestTimeoutError),
]


@pytest.mark.parametrize("transport, op, fault, error", PERSISTENT)
def test_a_fault_beyond_the_retry_budget_raises(emu, expected, transport, op, fault, error):
    kind, at = fault
    path = {"get_skeletons": SKELETON, "get_synapses": CUSTOM, "fetch_neurons": CUSTOM}.get(
        op, ARROW if transport == "arrow" else CUSTOM)
    with open_np(emu, transport, stalls=kind == "stall", max_attempts=3) as ds:
        inject(emu, kind, at, 100, path, after=0)  # more than the operation's requests x 3 attempts
        with pytest.raises(error, match="gave up after 3 attempt") as info:
            run(ds, op)
        assert isinstance(info.value, errors.ConnectomixError)
        assert len(emu.faults.pending) < 100  # the faults struck
        emu.faults.clear()
        assert_same(run(ds, op), expected[(transport, op)])  # and the dataset still works afterwards


@pytest.mark.parametrize("path", [DATASETS, VERSION, CUSTOM])
def test_opening_with_a_persistent_fault_raises(emu, path):
    inject(emu, "lie", "half", 3, path, after=0)
    with pytest.raises(errors.IncompleteResponseError, match="gave up after 3 attempt"):
        open_np(emu, "arrow", max_attempts=3)


def test_ragged_json_rows_are_incomplete():
    import requests

    from connectomix_neuprint.backend import query_table

    response = requests.Response()
    response.status_code = 200
    response._content = b'{"columns": ["a", "b"], "data": [[1, 2], [3]]}'
    with pytest.raises(errors.IncompleteResponseError, match="row 1 of 2 has 1 values for 2 columns"):
        query_table(response)
    response._content = b'{"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}'
    assert query_table(response).to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    response._content = b'{"error": "x"}'
    with pytest.raises(errors.ServerError, match="not a query result"):
        query_table(response)


def _response(content: bytes, headers: dict, method: str = "GET"):
    import requests

    response = requests.Response()
    response.status_code = 200
    response._content = content
    response.headers.update(headers)
    response.request = requests.Request(method, "https://127.0.0.1:1/api/x?token=t").prepare()
    response.url = response.request.url
    return response


def test_a_content_length_that_disagrees_with_the_body_is_incomplete():
    """urllib3 2 already refuses short bodies; the check also holds with clients that do not (urllib3 1.x)."""
    from connectomix.http import check_content_length

    with pytest.raises(errors.IncompleteResponseError, match="5 bytes arrived, Content-Length said 10") as info:
        check_content_length(_response(b"12345", {"Content-Length": "10"}))
    assert "token" not in str(info.value) and "token" not in str(info.value.url)
    with pytest.raises(errors.IncompleteResponseError, match="12 bytes arrived, Content-Length said 5"):
        check_content_length(_response(b"123456789012", {"Content-Length": "5"}))
    with pytest.raises(errors.IncompleteResponseError, match="not a number"):
        check_content_length(_response(b"12345", {"Content-Length": "five"}))
    check_content_length(_response(b"12345", {"Content-Length": "5"}))
    check_content_length(_response(b"12345", {}))  # chunked: nothing declared
    check_content_length(_response(b"12345", {"Content-Length": "3", "Content-Encoding": "gzip"}))  # compressed size
    check_content_length(_response(b"", {"Content-Length": "10"}, method="HEAD"))


def test_http_client_retries_a_short_body_then_raises():
    from connectomix.http import HttpClient, RetryPolicy

    answers = [_response(b"12345", {"Content-Length": "10"}), _response(b"1234567890", {"Content-Length": "10"})]
    client = HttpClient("https://127.0.0.1:1", retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001))
    client.session.request = lambda *a, **k: answers.pop(0)
    assert client.request("GET", "/api/x").content == b"1234567890"  # the short one was retried
    answers = [_response(b"12345", {"Content-Length": "10"}) for _ in range(3)]
    with pytest.raises(errors.IncompleteResponseError, match="gave up after 3 attempt"):
        client.request("GET", "/api/x")
    assert answers == []


def test_tls_eof_is_a_dropped_connection_but_a_refused_certificate_is_not(emu):
    """A TLS EOF (a server closing a kept-alive connection) is retried; a refused certificate raises at once."""
    import ssl

    import requests
    import urllib3

    from connectomix.http import HttpClient, RetryPolicy

    def tls_error(reason: Exception) -> requests.exceptions.SSLError:
        pool_error = urllib3.exceptions.MaxRetryError(None, "/api/x", urllib3.exceptions.SSLError(reason))
        return requests.exceptions.SSLError(pool_error)

    answers: list = [tls_error(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")), _response(b"{}", {})]

    def fake(*args, **kwargs):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = HttpClient("https://127.0.0.1:1", retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001))
    client.session.request = fake
    assert client.request("GET", "/api/x").content == b"{}" and answers == []
    # the emulator's own certificate is not in the system bundle: verification fails, with advice, and is not retried
    host = emu.url.split("://", 1)[1]
    emu.stats.reset()
    with pytest.raises(errors.ServerError, match="TLS verification of .* failed .* pass verify=<CA bundle path>"):
        connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify="true", cache=False)
