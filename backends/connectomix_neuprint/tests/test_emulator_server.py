"""The emulator's HTTP surface: auth, errors, read-only, concurrency, faults, arrow, skeletons, CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pyarrow as pa
import pytest
import requests

from connectomix_neuprint.emulator import NeuprintEmulator
from connectomix_neuprint.emulator.faults import TIMEOUT_MESSAGE
from connectomix_neuprint.emulator.testing import (
    emulator_fixture,
    forget_neuprint_cache,
    neuprint_client,
    running_emulator,
    synthetic_release,
)

neuprint = pytest.importorskip("neuprint")

FORBIDDEN = "token-valid-but-not-for-this-dataset"
# a query that would run for hours but needs no memory (only used with a time limit)
SLOW = ("MATCH (a:Synapse), (b:Synapse), (c:Synapse), (d:Synapse), (f:Synapse) "
        "WHERE a.confidence + b.confidence + c.confidence + d.confidence + f.confidence > 10 RETURN count(*) AS c")
EXPIRED = "token-that-expired"

emu = emulator_fixture(synthetic_release, scope="module", expired_tokens=[EXPIRED],
                       forbidden_tokens={"emulator-synthetic:v1": [FORBIDDEN]})


def session_for(e, token=None):
    """A requests session trusting the emulator's CA (trust_env=False: a REQUESTS_CA_BUNDLE in the
    environment would otherwise override ``session.verify``)."""
    s = requests.Session()
    s.trust_env = False
    s.verify = str(e.cert_path)
    s.headers["Authorization"] = f"Bearer {token or e.token.reveal()}"
    return s


@pytest.fixture
def http(emu):
    s = session_for(emu)
    yield s
    s.close()


def custom(http, emu, cypher, *, dataset=None, endpoint="custom"):
    return http.post(f"{emu.url}/api/custom/{endpoint}",
                     json={"cypher": cypher, "dataset": dataset or emu.dataset})


# ---------------------------------------------------------------------------------------------
# basics, naming, TLS
# ---------------------------------------------------------------------------------------------


def test_public_endpoints_and_naming(emu, http):
    assert emu.url.startswith("https://127.0.0.1:")
    assert requests.get(f"{emu.url}/api/version", verify=str(emu.cert_path)).json() == {"Version": "1.9.2"}
    assert requests.get(f"{emu.url}/api/serverinfo", verify=str(emu.cert_path)).json()["IsPublic"] is True
    datasets = http.get(f"{emu.url}/api/dbmeta/datasets").json()
    assert list(datasets) == ["emulator-synthetic:v1"]
    entry = datasets["emulator-synthetic:v1"]
    assert entry["superLevelROIs"] == ["AL(R)", "LH(R)", "MB(+ACA)(R)"] and entry["hidden"] is False
    assert "MB(R)" in entry["ROIs"]
    assert "/api/custom/custom" in http.get(f"{emu.url}/api/available").json()
    assert http.get(f"{emu.url}/api/dbmeta/version").json()["Version"]
    # neuPrintHTTP also serves every route under /api/v<major>...
    assert http.get(f"{emu.url}/api/v1/dbmeta/datasets").status_code == 200
    assert http.get(f"{emu.url}/api/v2/dbmeta/datasets").json() == {"error": "Incompatible API version"}
    assert http.get(f"{emu.url}/api/nothing/here").status_code == 404


def test_requests_ca_bundle_works_with_verify_true(emu, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.cert_path))
    forget_neuprint_cache(emu.url)
    client = neuprint.Client(emu.url, dataset=emu.dataset, token=emu.token.reveal(), verify=True)
    assert client.fetch_custom("MATCH (n:Meta) RETURN n.dataset AS d")["d"][0] == "emulator-synthetic"
    # and the certificate is refused without that CA
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emu.url}/api/version", verify=True)


def test_dataset_name_override_and_case_insensitive_lookup(tmp_path_factory):
    with running_emulator(synthetic_release(tmp_path_factory), dataset="hemibrain:v1.2.1") as e:
        s = session_for(e)
        assert list(s.get(f"{e.url}/api/dbmeta/datasets").json()) == ["hemibrain:v1.2.1"]
        r = custom(s, e, "MATCH (m:Meta) RETURN m.dataset AS d, m.tag AS t", dataset="HemiBrain:V1.2.1")
        assert r.status_code == 200 and r.json()["data"] == [["hemibrain", "v1.2.1"]]


def test_two_datasets_and_client_selection(tmp_path_factory):
    a = synthetic_release(tmp_path_factory)
    with running_emulator({"fly:v1": a, "fly:v2": a}) as e:
        assert sorted(e.datasets) == ["fly:v1", "fly:v2"]
        with pytest.raises(RuntimeError):  # more than one dataset: neuprint-python needs a name
            neuprint.Client(e.url, token=e.token.reveal(), verify=str(e.cert_path))
        c = neuprint_client(e, "fly:v2")
        assert c.fetch_custom("MATCH (m:Meta) RETURN m.tag AS t")["t"][0] == "v2"


# ---------------------------------------------------------------------------------------------
# auth
# ---------------------------------------------------------------------------------------------


def test_token_sources_and_401(emu):
    url = f"{emu.url}/api/dbmeta/datasets"
    v = str(emu.cert_path)
    token = emu.token.reveal()
    assert requests.get(url, verify=v, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert requests.get(url, verify=v, headers={"Authorization": f"bearer {token}"}).status_code == 200
    assert requests.get(url, verify=v, cookies={"dsg_token": token}).status_code == 200
    assert requests.get(url, verify=v, params={"dsg_token": token}).status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {EXPIRED}"},
                    {"Authorization": f"Token {token}"}, {"Authorization": f"Bearer {token} extra"}):
        r = requests.get(url, verify=v, headers=headers)
        assert r.status_code == 401 and r.json() == {"message": "invalid or expired token"}


def test_neuprint_client_401_and_403(emu):
    forget_neuprint_cache(emu.url)
    with pytest.raises(requests.HTTPError) as info:
        neuprint.Client(emu.url, dataset=emu.dataset, token=EXPIRED, verify=str(emu.cert_path))
    assert info.value.response.status_code == 401
    # a valid token without permission on the dataset: the listing works, queries get 403
    forget_neuprint_cache(emu.url)
    c = neuprint.Client(emu.url, dataset=emu.dataset, token=FORBIDDEN, verify=str(emu.cert_path))
    with pytest.raises(requests.HTTPError) as info:
        c.fetch_custom("MATCH (n:Meta) RETURN n.dataset")
    assert info.value.response.status_code == 403
    assert info.value.response.json() == {"message": "insufficient permissions for dataset"}
    r = requests.get(f"{emu.url}/api/skeletons/skeleton/{emu.dataset}/101?format=swc", verify=str(emu.cert_path),
                     headers={"Authorization": f"Bearer {FORBIDDEN}"})
    assert r.status_code == 403


def test_token_never_logged_or_shown(tmp_path_factory, caplog):
    secret = "s3cr3t-token-value"
    caplog.set_level("DEBUG", logger="connectomix_neuprint.emulator")
    with running_emulator(synthetic_release(tmp_path_factory), token=secret) as e:
        assert secret not in repr(e) and secret not in repr(e.token) and secret not in str(e.token)
        requests.get(f"{e.url}/api/dbmeta/datasets", params={"dsg_token": secret}, verify=str(e.cert_path))
        requests.get(f"{e.url}/api/dbmeta/datasets", params={"dsg_token": "wrong-" + secret},
                     verify=str(e.cert_path))
    assert "/api/dbmeta/datasets" in caplog.text
    assert secret not in caplog.text


# ---------------------------------------------------------------------------------------------
# errors of /api/custom/custom
# ---------------------------------------------------------------------------------------------


def test_unknown_dataset_404(emu, http):
    r = custom(http, emu, "MATCH (n) RETURN n", dataset="nope:v9")
    assert r.status_code == 404 and r.json() == {"error": 'dataset "nope:v9" not available in stores'}
    r = http.get(f"{emu.url}/api/skeletons/skeleton/nope:v9/101")
    assert r.status_code == 404


def test_cypher_errors_400(emu, http):
    for bad in ("MATCH (n:Segment RETURN n", "RETURN 'unterminated", "MATCH (n:Segment) RETURN m.bodyId",
                "MATCH (n:Segment) WHERE n.bodyId = $id RETURN n"):
        r = custom(http, emu, bad)
        assert r.status_code == 400, bad
        assert r.json()["error"], bad
    assert "parameters" in custom(http, emu, "MATCH (n:Segment) WHERE n.bodyId = $id RETURN n").json()["error"]
    r = http.post(f"{emu.url}/api/custom/custom", data=b"not json")
    assert r.status_code == 400 and r.json() == {"error": "request object not formatted correctly"}


def test_get_with_body_and_request_accounting(emu, http):
    emu.stats.reset()
    body = {"cypher": "MATCH (n:Neuron) RETURN count(n) AS c", "dataset": emu.dataset}
    r = http.request("GET", f"{emu.url}/api/custom/custom", json=body)  # neuPrintHTTP routes GET too
    assert r.status_code == 200 and r.json()["data"] == [[10]]
    emu.wait_idle()  # the server thread may still be finishing its accounting when the client has the body
    ep = emu.stats.snapshot()["endpoints"]["GET /api/custom/custom"]
    assert ep["requests"] == 1 and ep["bytes_in"] == len(r.request.body) and ep["bytes_out"] == len(r.content)
    assert emu.stats.snapshot()["queries"] == 1


def test_neuprint_client_reports_the_server_error(emu):
    c = neuprint_client(emu)
    with pytest.raises(requests.HTTPError) as info:
        c.fetch_custom("MATCH (n:Segment RETURN n")
    assert "Returned Error (400)" in str(info.value) and "Cypher was" in str(info.value)


@pytest.mark.parametrize("query", [
    "CREATE (n:Segment {bodyId: 5})",
    "MATCH (n:Segment) SET n.type = 'x'",
    "MATCH (n:Segment) DETACH DELETE n",
    "MATCH (n:Segment) REMOVE n.type",
    "MERGE (n:Segment {bodyId: 1})",
    "DROP TABLE Segment",
    "COPY Segment FROM '/tmp/x.parquet'",
    "LOAD FROM '/etc/passwd' RETURN *",
    "CALL show_tables() RETURN *",
    "INSTALL httpfs",
    "ATTACH '/tmp/x' AS y (dbtype kuzu)",
    "CALL apoc.cypher.runTimeboxed(\"CREATE (n:Segment {bodyId: 7}) RETURN 1 AS c\", {}, 1000) YIELD value "
    "RETURN value.c",
])
def test_writes_are_refused(emu, http, query):
    r = custom(http, emu, query)
    assert r.status_code == 400 and r.json() == {"error": "not authorized to modify the database"}
    assert custom(http, emu, "MATCH (n:Segment) RETURN count(n) AS c").json()["data"] == [[13]]


def test_write_words_inside_strings_and_properties_are_fine(emu, http):
    r = custom(http, emu, "MATCH (n:Segment) WHERE n.type <> 'CREATE (x)' RETURN count(n) AS c, 'set' AS `delete`")
    assert r.status_code == 200 and r.json()["data"] == [[9, "set"]]


def test_server_query_timeout(tmp_path_factory):
    with running_emulator(synthetic_release(tmp_path_factory), query_timeout_s=0.05) as e:
        s = session_for(e)
        r = custom(s, e, SLOW)
        assert r.status_code == 400 and r.json() == {"error": TIMEOUT_MESSAGE}


def test_timeboxed_query_returns_no_rows_when_out_of_time(emu, http):
    r = custom(http, emu, f'CALL apoc.cypher.runTimeboxed("{SLOW}", {{}}, 20) YIELD value RETURN value.c AS count')
    assert r.status_code == 200 and r.json()["columns"] == ["count"] and r.json()["data"] == []
    fast = 'MATCH (n:Segment) WHERE n.type = \\"KCg-m\\" RETURN count(n) AS c'
    r = custom(http, emu, f'CALL apoc.cypher.runTimeboxed("{fast}", {{}}, 5000) YIELD value RETURN value.c AS count')
    assert r.json()["data"] == [[2]]


# ---------------------------------------------------------------------------------------------
# value encoding, arrow
# ---------------------------------------------------------------------------------------------


def test_node_point_and_number_encoding(emu, http):
    r = custom(http, emu, "MATCH (s:Synapse) WHERE s.type = 'pre' RETURN s, s.location AS loc, "
                          "s.location.x AS x, 2.0 AS two, 2.5 AS half ORDER BY x LIMIT 1").json()
    node, loc, x, two, half = r["data"][0]
    assert set(node) >= {"type", "confidence", "location"} and not any(k.startswith("_") for k in node)
    assert node["location"]["type"] == "Point" and loc["type"] == "Point"
    assert loc["coordinates"][0] == x and isinstance(x, int)  # integral floats go out as ints (like Go)
    assert two == 2 and isinstance(two, int) and half == 2.5
    assert r["debug"].startswith("MATCH (s:Synapse)")
    rel = custom(http, emu, "MATCH (a:Segment)-[e:ConnectsTo]->(b:Segment) WHERE a.bodyId = 101 AND "
                            "b.bodyId = 401 RETURN e").json()["data"][0][0]
    assert rel["weight"] == 11 and rel["type"] == "ConnectsTo" and {"startNodeId", "endNodeId", "id"} <= set(rel)


def test_arrow_endpoint_matches_json(emu, http):
    q = ("MATCH (n:Segment) RETURN n.bodyId AS bodyId, n.type AS type, n.pre AS pre, n.`AL(R)` AS al, "
         "n.roiInfo AS roiInfo, toFloat(n.post) / 2 AS half ORDER BY bodyId")
    j = custom(http, emu, q).json()
    r = custom(http, emu, q, endpoint="arrow")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(pa.py_buffer(r.content)).read_all()
    assert table.column_names == j["columns"]
    assert table.schema.field("bodyId").type == pa.int64() and table.schema.field("al").type == pa.bool_()
    assert table.to_pylist() == [dict(zip(j["columns"], row)) for row in j["data"]]
    nodes = custom(http, emu, "MATCH (n:Neuron) RETURN n ORDER BY n.bodyId LIMIT 2", endpoint="arrow")
    t = pa.ipc.open_stream(pa.py_buffer(nodes.content)).read_all()
    assert t.schema.field("n").type == pa.map_(pa.string(), pa.string())  # like neuPrintHTTP
    empty = custom(http, emu, "MATCH (n:Segment) WHERE n.bodyId = -1 RETURN n.bodyId AS b", endpoint="arrow")
    assert pa.ipc.open_stream(pa.py_buffer(empty.content)).read_all().num_rows == 0


# ---------------------------------------------------------------------------------------------
# concurrency, faults, accounting
# ---------------------------------------------------------------------------------------------


def test_concurrent_requests(emu):
    c = neuprint_client(emu)
    queries = [f"MATCH (n:Segment)-[e:ConnectsTo]->(m:Segment) WHERE n.bodyId = {b} "
               f"RETURN m.bodyId AS post, e.weight AS w ORDER BY post" for b in (101, 102, 103, 201, 202, 203, 301,
                                                                              302, 401, 402, 9002, 9003)]
    serial = [c.fetch_custom(q).values.tolist() for q in queries]

    def worker(k):
        local = neuprint_client(emu)
        return [local.fetch_custom(q).values.tolist() for q in queries[k % 3:] + queries[:k % 3]]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    for k, res in enumerate(results):
        assert res == serial[k % 3:] + serial[:k % 3]


def test_fail_next_then_success_and_stats(emu, http):
    emu.stats.reset()
    emu.faults.fail_next(3, status=503)
    statuses = [http.get(f"{emu.url}/api/dbmeta/datasets").status_code for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    emu.wait_idle()  # the server thread may still be finishing its accounting when the client has the body
    snap = emu.stats.snapshot()
    ep = snap["endpoints"]["GET /api/dbmeta/datasets"]
    assert ep["requests"] == 4 and ep["status"] == {503: 3, 200: 1} and ep["bytes_out"] > 0
    assert emu.stats.requests("GET /api/dbmeta/datasets") == 4


def test_fault_path_filter_and_timeout_body(emu):
    c = neuprint_client(emu)
    emu.faults.timeout_next()
    # neuprint-python 0.6.4 means to raise NeuprintTimeoutError here, but tests ``if ex.response``,
    # which is False for any 4xx response, so a plain HTTPError carries neuPrint's message
    with pytest.raises(requests.HTTPError, match="Timeout experienced") as info:
        c.fetch_custom("MATCH (n:Meta) RETURN n.dataset")
    assert info.value.response.status_code == 400
    emu.faults.fail_next(1, status=502, path="/api/custom/")
    http = session_for(emu)
    assert http.get(f"{emu.url}/api/version").status_code == 200  # not a /api/custom/ path
    assert custom(http, emu, "MATCH (n:Meta) RETURN 1 AS one").status_code == 502
    assert custom(http, emu, "MATCH (n:Meta) RETURN 1 AS one").status_code == 200
    assert emu.faults.pending == []


def test_connection_reset_mid_response(emu, http):
    emu.faults.reset_next(path="/api/custom/")
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        custom(http, emu, "MATCH (n:Segment) RETURN n")
    assert custom(http, emu, "MATCH (n:Segment) RETURN count(n) AS c").json()["data"] == [[13]]


def test_stall_and_latency(emu, http):
    emu.faults.stall_next(seconds=3.0, path="/api/custom/")
    with pytest.raises(requests.exceptions.ConnectionError):  # read timeout while the body stalls
        http.post(f"{emu.url}/api/custom/custom", json={"cypher": "MATCH (n:Segment) RETURN n",
                                                        "dataset": emu.dataset}, timeout=0.5)
    emu.faults.latency_ms = 30
    try:
        started = time.perf_counter()
        assert http.get(f"{emu.url}/api/version").status_code == 200
        assert time.perf_counter() - started >= 0.03
    finally:
        emu.faults.latency_ms = 0


# ---------------------------------------------------------------------------------------------
# skeletons
# ---------------------------------------------------------------------------------------------


def test_skeleton_endpoint_in_voxels(emu, http):
    swc = http.get(f"{emu.url}/api/skeletons/skeleton/{emu.dataset}/101", params={"format": "swc"})
    assert swc.status_code == 200 and swc.headers["Content-Type"].startswith("text/plain")
    nm = pd.read_csv(emu.model().release_path / "skeletons" / "101.swc", sep=" ", comment="#", header=None)
    vox = pd.read_csv(io.StringIO(swc.text), sep=" ", comment="#", header=None)
    assert (vox[[2, 3, 4]].values * 8 == nm[[2, 3, 4]].values).all()
    assert (vox[6].values == nm[6].values).all()
    table = http.get(f"{emu.url}/api/skeletons/skeleton/{emu.dataset}/101").json()
    assert table["columns"] == ["rowId", "x", "y", "z", "radius", "link"] and len(table["data"]) == len(nm)
    missing = http.get(f"{emu.url}/api/skeletons/skeleton/{emu.dataset}/202", params={"format": "swc"})
    assert missing.status_code == 400
    assert http.get(f"{emu.url}/api/skeletons/skeleton/{emu.dataset}/abc").status_code == 400


def test_skeleton_loads_in_navis(emu):
    navis = pytest.importorskip("navis")
    from navis.interfaces import neuprint as nnp

    c = neuprint_client(emu)
    df = neuprint.fetch_skeleton(101, client=c)
    assert len(df) == 9 and (df["link"] == -1).sum() == 1
    nl = nnp.fetch_skeletons([101, 301], with_synapses=True, client=c, parallel=False)
    assert sorted(nl.id) == [101, 301]
    n101 = nl.idx[101]
    assert isinstance(n101, navis.TreeNeuron) and n101.n_nodes == 9 and n101.n_trees == 1
    assert n101.connectors is not None and len(n101.connectors) > 0


# ---------------------------------------------------------------------------------------------
# lifecycle and command line
# ---------------------------------------------------------------------------------------------


def test_context_manager_releases_everything(tmp_path_factory):
    e = NeuprintEmulator(synthetic_release(tmp_path_factory))
    with pytest.raises(RuntimeError):
        e.url  # noqa: B018 - not started
    with e:
        url, cert = e.url, e.cert_path
        assert cert.exists()
        assert e.run("MATCH (n:Neuron) RETURN count(n) AS c").rows == [[10]]
    assert not cert.exists()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/api/version", verify=False, timeout=2)


def test_command_line(tmp_path_factory):
    release = synthetic_release(tmp_path_factory)
    env = {**os.environ, "NEUPRINT_APPLICATION_CREDENTIALS": "cli-token"}
    proc = subprocess.Popen([sys.executable, "-m", "connectomix_neuprint.emulator", "--release", str(release),
                             "--dataset", "hemibrain:v1.2.1", "--latency-ms", "1", "--fail-next", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = {}
        deadline = time.time() + 60
        while "cert" not in lines and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            key, _, value = line.partition(":")
            lines[key.strip()] = value.strip()
        url = lines["url"]
        cert = lines["cert"].split()[0]
        assert "cli-token" not in "".join(lines.values())
        headers = {"Authorization": "Bearer cli-token"}
        assert requests.get(f"{url}/api/dbmeta/datasets", headers=headers, verify=cert).status_code == 503
        assert list(requests.get(f"{url}/api/dbmeta/datasets", headers=headers, verify=cert).json()) == \
            ["hemibrain:v1.2.1"]
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0
    forget_neuprint_cache(lines.get("url", ""))


def test_testing_helpers_clean_the_neuprint_cache(tmp_path_factory):
    with running_emulator(synthetic_release(tmp_path_factory)) as e:
        neuprint_client(e)
        assert e.url in neuprint.Client.DATASETS_CACHE
        url = e.url
    assert url not in neuprint.Client.DATASETS_CACHE


def test_threads_do_not_leak(tmp_path_factory):
    before = threading.active_count()
    with running_emulator(synthetic_release(tmp_path_factory)) as e:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: requests.get(f"{e.url}/api/version", verify=str(e.cert_path)), range(8)))
    deadline = time.time() + 10
    while threading.active_count() > before and time.time() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before
