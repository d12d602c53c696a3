"""1,000 mixed queries from 10 concurrent callers against the CAVE emulator equal the serial answers."""

import pytest

import connectomix
from connectomix.testing import make_toy_release
from connectomix.testing.soak import mixed_queries, run_soak

TOKEN = "soak-token"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(make_toy_release(tmp_path_factory.mktemp("toy")), token=TOKEN, datastack="toy_stack") as emu:
        with connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=TOKEN, filtered=False,
                              connection_view=None, score_column="cleft_score", neuropil_column="neuropil",
                              neuron_table="cell_types", type_column="cell_type", primary_rois="A,B,C(R)",
                              materialization=1, cache=False) as ds:
            yield ds


def test_soak(ds, capsys):
    queries = mixed_queries(ds, [101, 102, 104, 106, 107, 109, 110], n=30, rois=("A",))
    assert run_soak(queries, calls=1000, workers=10) == 1000
