"""1,000 mixed queries from 10 concurrent callers against the neuPrint emulator equal the serial answers."""

import pytest

import connectomix
from connectomix.testing import make_toy_release
from connectomix.testing.soak import mixed_queries, run_soak

TOKEN = "soak-token"


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(make_toy_release(tmp_path_factory.mktemp("toy")), token=TOKEN, dataset="toy:v1") as emu:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/toy:v1", token=TOKEN, verify=str(emu.cert_path),
                              cache=False) as ds:
            yield ds


def test_soak(ds):
    queries = mixed_queries(ds, [101, 102, 104, 106, 107, 109, 110, 901], n=30, rois=("A",))
    assert run_soak(queries, calls=1000, workers=10) == 1000
