"""A server re-deployed at the same address with other data never gets the previous data's cached answer.

Each emulator serves the toy release, is stopped, and is started again on the same port serving a copy of
the release whose synapse positions differ (same manifest, same file times: only the content changed). A
Dataset opened afterwards must return the new answer; so must one that was open across the restart, at once
with ``identity_ttl=0`` and once its ``identity_ttl`` has passed (an open Dataset trusts the identity of the
data it has seen for that long, and so does a new Dataset reading what the cache recorded of the server:
``DiskRecords``). Unchanged data is served from the cache with no request at all.
"""

import time
import warnings

import pandas as pd
import pytest

import connectomix
from cache_support import shifted_copy

TOKEN = "cache-identity-token"


@pytest.fixture(scope="module")
def variant_release(toy_release, tmp_path_factory):
    """The toy release with every presynaptic x moved by 8 nm, file times kept (as ``cp -p`` would)."""
    return shifted_copy(toy_release, tmp_path_factory.mktemp("variant") / "toy")


def _restart_test(start, open_ds, query, metadata_endpoint, query_endpoints, toy_release, variant_release,
                  tmp_path):
    cache_dir = str(tmp_path / "cache")
    emu = start(toy_release, 0)
    port = int(emu.url.rsplit(":", 1)[1])

    def queries():
        return sum(emu.stats.requests(e) for e in query_endpoints)

    ttl = 1.0  # seconds the survivor trusts the identity it has seen
    try:
        with open_ds(emu, cache=False) as ds:
            old = query(ds)
        with open_ds(emu, cache=cache_dir) as ds:
            pd.testing.assert_frame_equal(query(ds), old)
        # open across the restart: one asks for the identity on every query, one remembers it for ttl seconds
        eager = open_ds(emu, cache=cache_dir, survivor=True, identity_ttl=0)
        survivor = open_ds(emu, cache=cache_dir, survivor=True, identity_ttl=ttl)
        pd.testing.assert_frame_equal(query(eager), old)
        pd.testing.assert_frame_equal(query(survivor), old)
        seen = time.monotonic()  # the survivor's identity is this old at most
    finally:
        emu.stop()
    emu = start(variant_release, port)
    try:
        assert emu.url.endswith(f":{port}")
        with open_ds(emu, cache=False) as ds:
            new = query(ds)
        assert not new.equals(old)  # the restarted server really answers differently
        with open_ds(emu, cache=cache_dir, identity_ttl=0) as ds:
            pd.testing.assert_frame_equal(query(ds), new)  # a new Dataset that asks at once
        pd.testing.assert_frame_equal(query(eager), new)  # open across the restart, identity_ttl=0: at once
        time.sleep(max(0.0, ttl - (time.monotonic() - seen)) + 0.05)  # no timing is measured: ttl has passed
        with open_ds(emu, cache=cache_dir, identity_ttl=ttl) as ds:
            # a new Dataset (as in a new process): what the cache recorded of the old server is older than ttl
            pd.testing.assert_frame_equal(query(ds), new)
        pd.testing.assert_frame_equal(query(survivor), new)  # the identity is asked again: the new data
        eager.close()
        survivor.close()
        with open_ds(emu, cache=False) as ds:
            query(ds)
            idle(emu)
            emu.stats.reset()
            query(ds)
            idle(emu)
            assert queries() > 0  # uncached, the query is asked
        with open_ds(emu, cache=cache_dir) as ds:
            query(ds)
            idle(emu)
            emu.stats.reset()
            pd.testing.assert_frame_equal(query(ds), new)  # a warm hit sends nothing: no metadata request,
            idle(emu)
            assert emu.stats.requests(metadata_endpoint) == 0  # no id check, no query
            assert emu.stats.requests() == 0
    finally:
        emu.stop()


def idle(emu):
    """Wait until the emulator has counted every answered request (the neuPrint one counts after sending)."""
    if hasattr(emu, "wait_idle"):
        assert emu.wait_idle()


def test_neuprint_restarted_on_the_same_port_with_other_data(toy_release, variant_release, tmp_path):
    from connectomix_neuprint.emulator import NeuprintEmulator

    def start(release, port):
        return NeuprintEmulator(release, token=TOKEN, dataset="toy:v1", port=port).start()

    def open_ds(emu, cache, survivor=False, **options):
        host = emu.url.split("://", 1)[1]
        # the restarted emulator has a new certificate: a Dataset living through the restart cannot pin it
        verify = "false" if survivor else str(emu.cert_path)
        return connectomix.open(f"neuprint://{host}/toy:v1", token=TOKEN, verify=verify, cache=cache, **options)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's InsecureRequestWarning for the unpinned survivor
        _restart_test(start, open_ds, lambda ds: ds.get_synapses([101, 102]), "GET /api/dbmeta/datasets",
                      ["POST /api/custom/custom", "POST /api/custom/arrow"], toy_release, variant_release, tmp_path)


def test_cave_restarted_on_the_same_port_with_other_data(toy_release, variant_release, tmp_path):
    from connectomix_cave.emulator import CaveEmulator

    def start(release, port):
        return CaveEmulator(release, token=TOKEN, datastack="toy_stack", port=port).start()

    def open_ds(emu, cache, survivor=False, **options):
        return connectomix.open(
            f"cave://{emu.datastack}", server=emu.url, token=TOKEN, materialization=1, filtered=False,
            connection_view=None, score_column="cleft_score", neuropil_column="neuropil",
            neuron_table="cell_types", type_column="cell_type", primary_rois="A,B,C(R)", cache=cache, **options)

    _restart_test(start, open_ds, lambda ds: ds.get_synapses([101, 102]), "version", ["query"], toy_release,
                  variant_release, tmp_path)


def test_cave_emulator_version_metadata_tells_deployments_apart(toy_release, variant_release):
    from connectomix_cave.emulator.dataset import build_dataset

    a, a_again, b = build_dataset(toy_release), build_dataset(toy_release), build_dataset(variant_release)
    assert [v.time_stamp for v in a.script.versions] == [v.time_stamp for v in b.script.versions]
    assert a.version_row_id(1) == a_again.version_row_id(1)  # the same data: the same metadata
    assert a.version_row_id(1) != b.version_row_id(1) and a.version_row_id(1) != a.version_row_id(2)


def test_neuprint_emulator_stamps_tell_deployments_apart(toy_release, variant_release):
    from connectomix_neuprint.emulator.model import build_model

    a, b = build_model(toy_release, name="toy:v1"), build_model(variant_release, name="toy:v1")
    assert a.meta["uuid"] != b.meta["uuid"]
    assert build_model(toy_release, name="toy:v1").meta["uuid"] == a.meta["uuid"]
