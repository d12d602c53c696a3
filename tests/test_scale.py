"""Issue 15: the release backend's Dask engine and releases on object storage (moto's S3 server on 127.0.0.1).

One 2-worker ``LocalCluster`` of worker *processes* and one S3 server serve the
whole module. The conformance suite runs on the Dask engine and on a release
opened by its ``s3://`` URL; the whole-dataset aggregates are checked against
pandas computations straight from the toy release's files, on both engines.
"""

from __future__ import annotations

import pandas as pd
import pytest

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix.testing.conformance import ConformanceTests, ToyTruth
from connectomix.testing.toy import make_toy_release


@pytest.fixture(scope="module")
def dask_client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit="1GB")
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


class TestDaskConformance(ConformanceTests):
    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, toy_release, dask_client):
        with connectomix.open(f"release://{toy_release}", engine="dask", scheduler=dask_client) as ds:
            assert ds.backend._dask is not None
            yield ds
