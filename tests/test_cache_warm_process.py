"""A new process on a warm disk cache sends nothing; a changed server is noticed once ``identity_ttl`` has passed.

Each query is asked once in this process (filling the cache), then by a *new Python process* opening the
same dataset on the same cache folder: the emulator must see no request at all -- no connect requests
(caveclient's client is built only when a request is needed; neuPrint's dataset metadata is kept in the
cache), no version or identity request, no id check. Then the server is restarted on the same port with
other data: a new process within ``identity_ttl`` of the records is allowed the old answer (the documented
trade, as for an open Dataset), and after ``identity_ttl`` it must return the new data.
"""

import json
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

from cache_support import shifted_copy

TOKEN = "warm-process-token"

#: Run in a new process: open the dataset described on argv, ask one query, print the table as JSON.
CHILD = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import connectomix
    spec = json.loads(sys.argv[1])
    with connectomix.open(spec["uri"], **spec["options"]) as ds:
        q = spec["query"]
        if q == "connectivity":
            df = ds.get_connectivity(sources=[101, 102, 103])
        elif q == "synapses":
            df = ds.get_synapses([101, 104])
        elif q == "neurons":
            df = ds.fetch_neurons([101, 102]).neurons
        else:
            df = ds.get_connectivity(sources=[101, 102], by_roi=True)
    print(df.to_json(orient="split", date_format="iso"))
""")
QUERIES = ("connectivity", "connectivity by ROI", "synapses", "neurons")


def child(spec: dict) -> pd.DataFrame:
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr[-3000:]
    return pd.read_json(_last_line(out.stdout), orient="split")


def _last_line(text: str):
    from io import StringIO

    return StringIO(text.strip().splitlines()[-1])


def idle(emu):
    if hasattr(emu, "wait_idle"):
        assert emu.wait_idle()


def cave_spec(emu, cache, query, **options):
    return {"uri": f"cave://{emu.datastack}", "query": query, "options": {
        "server": emu.url, "token": TOKEN, "materialization": 1, "filtered": False, "connection_view": None,
        "score_column": "cleft_score", "neuropil_column": "neuropil", "neuron_table": "cell_types",
        "type_column": "cell_type", "primary_rois": "A,B,C(R)", "cache": cache, **options}}


def neuprint_spec(emu, cache, query, **options):
    host = emu.url.split("://", 1)[1]
    return {"uri": f"neuprint://{host}/toy:v1", "query": query,
            "options": {"token": TOKEN, "verify": str(emu.cert_path), "cache": cache, **options}}


def start_cave(release, port=0):
    from connectomix_cave.emulator import CaveEmulator

    return CaveEmulator(release, token=TOKEN, datastack="toy_stack", port=port).start()


def start_neuprint(release, port=0):
    from connectomix_neuprint.emulator import NeuprintEmulator

    return NeuprintEmulator(release, token=TOKEN, dataset="toy:v1", port=port).start()


FAMILIES = {"cave": (start_cave, cave_spec), "neuprint": (start_neuprint, neuprint_spec)}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_new_process_on_a_warm_cache_sends_nothing(family, toy_release, tmp_path):
    start, spec = FAMILIES[family]
    cache = str(tmp_path / "cache")
    emu = start(toy_release)
    try:
        for query in ("connectivity by ROI", "neurons"):  # the others in test_cache_warm (one process)
            first = child(spec(emu, cache, query))  # fills the cache (and the records of the server)
            idle(emu)
            emu.stats.reset()
            again = child(spec(emu, cache, query))
            idle(emu)
            assert emu.stats.requests() == 0, (query, emu.stats.snapshot() if hasattr(emu.stats, "snapshot")
                                               else None)
            pd.testing.assert_frame_equal(again, first)
            emu.stats.reset()
            child(spec(emu, cache, query, identity_ttl=0))  # identity_ttl=0: nothing recorded is trusted
            idle(emu)
            assert emu.stats.requests() > 0
    finally:
        emu.stop()


@pytest.fixture(scope="module")
def variant_release(toy_release, tmp_path_factory):
    """The toy release with every presynaptic x moved by 8 nm, file times kept (as ``cp -p`` would)."""
    return shifted_copy(toy_release, tmp_path_factory.mktemp("variant-process") / "toy")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_new_process_notices_a_changed_server_after_identity_ttl(family, toy_release, variant_release,
                                                                   tmp_path):
    start, spec = FAMILIES[family]
    cache, ttl = str(tmp_path / "cache"), 2.0
    emu = start(toy_release)
    port = int(emu.url.rsplit(":", 1)[1])
    try:
        old = child(spec(emu, cache, "synapses", identity_ttl=ttl))
        written = time.time()  # the records of the old server are at most this old
    finally:
        emu.stop()
    emu = start(variant_release, port)
    try:
        new = child(spec(emu, False, "synapses"))
        assert not new.equals(old)  # the restarted server really answers differently
        time.sleep(max(0.0, ttl - (time.time() - written)) + 0.1)
        idle(emu)
        emu.stats.reset()
        pd.testing.assert_frame_equal(child(spec(emu, cache, "synapses", identity_ttl=ttl)), new)
        idle(emu)
        assert emu.stats.requests() > 0  # it asked the server again
    finally:
        emu.stop()


def test_an_open_neuprint_dataset_renews_the_records_when_it_finds_the_data_unchanged(toy_release, tmp_path):
    """A session longer than ``identity_ttl`` asks the stamps again; unchanged, they renew the metadata record,
    so a new process started later still sends nothing (the benchmark found 3 requests there before)."""
    import connectomix

    cache, ttl = str(tmp_path / "cache"), 15.0  # longer than a loaded machine takes to start the child
    emu = start_neuprint(toy_release)
    try:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/toy:v1", token=TOKEN, verify=str(emu.cert_path), cache=cache,
                              identity_ttl=ttl) as ds:
            ds.get_synapses([101, 104])
            time.sleep(ttl + 0.2)  # every record of the server is now older than ttl
            ds.get_synapses([101, 104])  # a warm hit: the stamps are asked again, and are unchanged
        idle(emu)
        emu.stats.reset()
        child(neuprint_spec(emu, cache, "synapses", identity_ttl=ttl))
        idle(emu)
        assert emu.stats.requests() == 0
    finally:
        emu.stop()
