"""Fault injection, request counters and the command line of the CAVE emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest
import requests

from connectomix.errors import InvalidArgumentError


def _query(cave_client, **kwargs):
    return cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": [107]},
                                          materialization_version=1, **kwargs)


def test_a_short_503_burst_is_absorbed_by_caveclient_retries(emulator, cave_client):
    baseline = _query(cave_client)
    emulator.stats.reset()
    emulator.faults.fail_next(2, status=503, endpoint="table_query")
    again = _query(cave_client)
    assert again.sort_values("id").reset_index(drop=True).equals(baseline.sort_values("id").reset_index(drop=True))
    snap = emulator.stats.snapshot()["table_query"]
    assert snap["requests"] == 3 and snap["status"] == {503: 2, 200: 1}
    assert emulator.faults.pending() == []


@pytest.mark.parametrize("status", [502, 504])
def test_a_long_burst_surfaces_as_http_error(emulator, cave_client, status):
    emulator.faults.fail_next(5, status=status, endpoint="query")
    with pytest.raises(requests.HTTPError, match=str(status)) as err:
        _query(cave_client)
    assert "injected fault" in str(err.value)
    assert emulator.stats.requests("table_query") == 4  # 1 try + caveclient's 3 retries
    emulator.faults.clear()
    assert len(_query(cave_client)) > 0


def test_429_is_not_retried(emulator, cave_client):
    emulator.faults.fail_next(1, status=429, endpoint="is_latest_roots")
    with pytest.raises(requests.HTTPError, match="429"):
        cave_client.chunkedgraph.is_latest_roots([101])
    assert emulator.stats.snapshot()["is_latest_roots"]["status"] == {429: 1}
    assert cave_client.chunkedgraph.is_latest_roots([107]).tolist() == [True]


def test_connection_reset_mid_response(emulator, cave_client):
    emulator.faults.reset_next(1, endpoint="table_query", fraction=0.3)
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        _query(cave_client)
    assert len(_query(cave_client)) > 0  # the next request is fine


def test_truncated_arrow_stream(emulator, cave_client):
    emulator.faults.truncate_next(1, fraction=0.6)  # any endpoint: only Arrow responses are cut
    cave_client.materialize.get_versions()  # JSON: untouched, the fault stays queued
    assert emulator.faults.pending()[0]["kind"] == "truncate"
    with pytest.raises((pa.ArrowInvalid, OSError)):
        _query(cave_client)
    assert emulator.faults.pending() == []


def test_slow_response_and_latency_still_answer(emulator, cave_client):
    emulator.faults.slow_next(1, seconds=0.2, endpoint="table_query")
    emulator.faults.latency_ms = 20
    assert len(_query(cave_client)) > 0
    with pytest.raises(InvalidArgumentError, match="latency_ms must be >= 0"):
        emulator.faults.latency_ms = -1
    with pytest.raises(InvalidArgumentError, match="status must be one of"):
        emulator.faults.fail_next(1, status=299)


def test_counters_record_bytes_per_endpoint(emulator, cave_client):
    emulator.stats.reset()
    df = _query(cave_client)
    snap = emulator.stats.snapshot()
    assert snap["table_query"]["requests"] == 1 and snap["table_query"]["bytes_out"] > 0
    assert snap["table_query"]["bytes_in"] > 0 and snap["table_query"]["status"] == {200: 1}
    assert emulator.stats.requests("query") == 1 and len(df) > 0


def test_arrow_compression_follows_accept_encoding(emulator):
    url = f"{emulator.url}/materialize/api/v3/datastack/{emulator.datastack}/version/1/table/synapses_nt_v1/query"
    sizes = {}
    for enc in ("identity", "zstd", "lz4"):
        r = requests.post(url, params={"return_pyarrow": "True", "arrow_format": "True"},
                          data=json.dumps({"limit": 200}), headers={"Authorization": "Bearer tok-good",
                                                                    "Accept-Encoding": enc})
        assert r.status_code == 200 and r.headers["Content-Type"] == "data.arrow"
        assert r.headers["dataframe_resolution"] == "4.0, 4.0, 40.0"
        with pa.ipc.open_stream(r.content) as reader:
            assert reader.read_pandas().shape[0] == 200
        sizes[enc] = len(r.content)
    assert sizes["zstd"] < sizes["identity"] and sizes["lz4"] < sizes["identity"]
    # return_pyarrow=False: JSON records, gzip when asked
    r = requests.post(url, params={"return_pyarrow": "False"}, data=json.dumps({"limit": 3}),
                      headers={"Authorization": "Bearer tok-good", "Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip" and len(r.json()) == 3


def test_command_line(emulator_release, tmp_path):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "connectomix_cave.emulator", "--release", str(emulator_release),
                          "--write-default-edits", str(tmp_path / "default.json")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    script = json.loads((tmp_path / "default.json").read_text())
    assert script["synthetic"] is True and len(script["operations"]) == 6
    proc = subprocess.Popen([sys.executable, "-m", "connectomix_cave.emulator", "--release", str(emulator_release),
                             "--edits", str(tmp_path / "default.json"), "--token", "cli-token", "--row-limit", "5",
                             "--home", str(tmp_path / "home")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert first.startswith("CAVE emulator serving"), first + proc.stderr.read()
        url = first.strip().rsplit(" at ", 1)[1]
        assert url.startswith("http://127.0.0.1:")
        query = "/materialize/api/v3/datastack/flywire_fafb_public/version/1/table/synapses_nt_v1/query"
        r = requests.post(f"{url}{query}", data="{}", headers={"Authorization": "Bearer cli-token"})
        assert r.status_code == 200 and r.headers["Warning"] == '201 - "Limited query to 5 rows'
        mapping = json.loads((tmp_path / "home/.cloudvolume/secrets/cave_datastack_to_server_map.json").read_text())
        assert mapping == {"flywire_fafb_public": url}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "connectomix_cave.emulator", "--release", str(tmp_path / "nope")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
