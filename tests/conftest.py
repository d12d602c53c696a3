import pytest

from connectomix.testing import make_toy_release


@pytest.fixture(scope="session")
def toy_release(tmp_path_factory):
    """The synthetic toy release folder (written once per session)."""
    return make_toy_release(tmp_path_factory.mktemp("toy"))


@pytest.fixture
def toy(toy_release):
    import connectomix

    with connectomix.open(f"release://{toy_release}") as ds:
        yield ds


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    """Point CONNECTOMIX_CONFIG at a fresh file; returns a writer."""
    path = tmp_path / "config.toml"
    monkeypatch.setenv("CONNECTOMIX_CONFIG", str(path))

    def write(text: str):
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="module")
def dask_client():
    """A Dask LocalCluster of two worker *processes* on 127.0.0.1 (the scale tests' engine="dask")."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None, memory_limit="1GB")
    client = Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()
