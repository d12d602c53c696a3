"""Issue 11 (CAVE): batches planned from expected rows, the connection view, neuron lookups without synapse pulls.

One SYNTHETIC release of 1,200 bodies (uneven sizes) served in FlyWire's shape by the CAVE
emulator. Requests are counted by the emulator (``emu.stats``: every HTTP request it answered).
Expected tables come from the whole view read with plain caveclient under a large row cap and
aggregated here with pandas, never from the backend under test.
"""

from __future__ import annotations

import inspect
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import NeuronCriteria
from connectomix_cave.emulator import CaveEmulator, profile
from connectomix_cave.emulator.testing import make_client
from connectomix_cave.planning import minimum_requests
from connectomix_cave.settings import settings_for

TOKEN = "planning-token"
STACK = "flywire_fafb_public"
N_BODIES = 1200
CAP = 4000  # the emulator's row cap in the request-count tests (announced, as MaterializationEngine does)
#: Synapses and connections are views on FlyWire; annotation tables are tables.
QUERY = ("view_query",)


def write_release(folder: Path, *, n_bodies: int = N_BODIES, seed: int = 11) -> Path:
    """A SYNTHETIC release: bodies 1001.. with lognormal sizes (a few much bigger than the rest)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.arange(1001, 1001 + n_bodies, dtype=np.int64)
    size = rng.lognormal(0.0, 0.8, n_bodies)
    p = size / size.sum()
    n = 25 * n_bodies
    pre, post = rng.choice(ids, size=n, p=p), rng.choice(ids, size=n, p=rng.permutation(p))
    keep = pre != post
    pre, post, n = pre[keep], post[keep], int(keep.sum())
    xyz = rng.integers(1_000, 50_000, size=(n, 6)).astype("float64") * np.array([4, 4, 40, 4, 4, 40])
    rois = np.array(["AL_R", "LH_R", "MB_CA_R"], dtype=object)[rng.integers(0, 3, n)]
    rois[rng.random(n) < 0.05] = None
    syn = pd.DataFrame({"synapse_id": np.arange(1, n + 1, dtype=np.int64) * 10, "pre": pre, "post": post,
                        "pre_x": xyz[:, 0], "pre_y": xyz[:, 1], "pre_z": xyz[:, 2],
                        "post_x": xyz[:, 3], "post_y": xyz[:, 4], "post_z": xyz[:, 5],
                        "score": np.round(rng.uniform(0.3, 1.0, n), 3), "roi": pd.array(rois, dtype="string")})
    types = np.array([f"T{i % 40}" for i in range(n_bodies)], dtype=object)
    types[::7] = None
    neurons = pd.DataFrame({
        "id": ids, "type": pd.array(types, dtype="string"),
        "instance": pd.array([f"{t}_R" if t else None for t in types], dtype="string"),
        "status": pd.array(["Traced"] * n_bodies, dtype="string"),
        "pre": syn["pre"].value_counts().reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
        "post": syn["post"].value_counts().reindex(ids, fill_value=0).to_numpy(dtype=np.int64),
        "is_neuron": np.ones(n_bodies, dtype=bool)})
    conn = (syn.assign(roi=syn["roi"].fillna("NotPrimary")).groupby(["pre", "post", "roi"], as_index=False)
            .size().rename(columns={"size": "weight"}))
    conn["roi"] = conn["roi"].astype("string")
    manifest = {"format": "connectomix-release", "format_version": 1, "name": "planning", "version": "v1",
                "description": "SYNTHETIC release for the CAVE planning tests", "source": "generated",
                "license": "CC0", "citation": "none", "voxel_size_nm": [4, 4, 40], "rois": ["AL_R", "LH_R", "MB_CA_R"],
                "primary_rois": ["AL_R", "LH_R", "MB_CA_R"], "score_name": "confidence",
                "synthetic": {"neurons": "all rows", "synapses": "all rows", "connections": "all rows"}}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conn.to_parquet(folder / "connections.parquet", index=False)
    syn.sort_values(["pre", "synapse_id"]).to_parquet(folder / "synapses.parquet", index=False)
    return folder


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    release = write_release(tmp_path_factory.mktemp("planning") / "release")
    with CaveEmulator(release, token=TOKEN, **profile(STACK).emulator_kwargs()) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def truth(emu):
    """The whole filtered synapse view and connection view at version 1, read with plain caveclient."""
    settings = settings_for(STACK, {})
    client = make_client(emu)
    emu.row_limit = 10_000_000
    try:
        syn = client.materialize.query_view(settings.synapse_view, materialization_version=1, split_positions=True)
        conn = client.materialize.query_view(settings.connection_view, materialization_version=1)
    finally:
        emu.row_limit = CAP
    assert len(syn) > 15 * N_BODIES and len(conn) > 10 * N_BODIES  # the test data is not trivially small
    return syn, conn


@pytest.fixture
def counted(emu):
    emu.row_limit = CAP
    emu.stats.reset()
    yield emu
    emu.faults.clear()
    emu.row_limit = CAP


def open_ds(emu, **options):
    """A dataset that knows the emulator's row cap, as the catalogue knows FlyWire's (500,000)."""
    options.setdefault("cache", False)
    options.setdefault("row_limit", emu.row_limit)
    ds = connectomix.open(f"cave://{STACK}", server=emu.url, token=TOKEN, materialization=1, **options)
    ds.backend.client  # noqa: B018 - connect now (built on first use): the tests count the queries' requests
    return ds


def query_ids(n: int) -> np.ndarray:
    return np.arange(1001, 1001 + N_BODIES, dtype=np.int64)[:: N_BODIES // n][:n]


def connectivity(ds, **kw) -> pd.DataFrame:
    """``get_connectivity`` without the partner-type lookup where that option exists (it asks for neurons too)."""
    if "partner_types" in inspect.signature(ds.get_connectivity).parameters:
        kw["partner_types"] = False
    return ds.get_connectivity(progress=False, **kw)


def data_requests(emu) -> int:
    snap = emu.stats.snapshot()
    return sum(snap.get(name, {}).get("requests", 0) for name in QUERY)


def other_requests(emu) -> dict[str, int]:
    return {k: v["requests"] for k, v in emu.stats.snapshot().items() if k not in QUERY}


def within_target(sent: int, minimum: int) -> bool:
    return sent <= 1.5 * minimum + 2


def expected_synapses(syn: pd.DataFrame, ids: np.ndarray) -> pd.DataFrame:
    rows = syn[syn["pre_pt_root_id"].isin(ids) | syn["post_pt_root_id"].isin(ids)]
    return pd.DataFrame({"synapse_id": rows["id"].to_numpy("int64"), "pre": rows["pre_pt_root_id"].to_numpy("int64"),
                         "post": rows["post_pt_root_id"].to_numpy("int64")}).sort_values("synapse_id",
                                                                                         ignore_index=True)


# -- 1. planned batches: request counts near the physical minimum ------------------------------------

@pytest.mark.parametrize("n", [10, 100, 1000])
def test_synapses_take_about_rows_over_cap_requests_and_lose_nothing(counted, truth, n):
    syn, _ = truth
    ids = query_ids(n)
    ds = open_ds(counted)
    counted.stats.reset()
    got = ds.get_synapses(ids, progress=False)
    sent = data_requests(counted)
    want = expected_synapses(syn, ids)
    assert len(got) == len(want) > 0
    assert got.sort_values("synapse_id", ignore_index=True)[["synapse_id", "pre", "post"]].equals(want)
    # one query per side at least: CAVE filters are AND-ed, so pre and post rows come from separate queries
    minimum = sum(minimum_requests(int(syn[f"{side}_pt_root_id"].isin(ids).sum()), CAP) for side in ("pre", "post"))
    print(f"synapses of {n} neurons: {sent} data requests, physical minimum {minimum}")
    assert within_target(sent, minimum), (n, sent, minimum)
    metadata = {k: v for k, v in other_requests(counted).items()
                if k not in ("table_query", "join_query")}  # (partner lookups)
    assert sum(metadata.values()) <= 3, metadata  # versions, roots, view metadata


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_connectivity_from_the_connection_view_in_about_rows_over_cap_requests(counted, truth, n):
    _, conn = truth
    ids = query_ids(n)
    ds = open_ds(counted)
    counted.stats.reset()
    got = connectivity(ds, sources=ids)
    snap = counted.stats.snapshot()
    assert snap.get("view_query", {}).get("requests", 0) == data_requests(counted)  # the view, no synapse pull
    rows = conn[conn["pre_pt_root_id"].isin(ids)]
    want = rows[(rows["pre_pt_root_id"] != rows["post_pt_root_id"]) & (rows["post_pt_root_id"] != 0)]
    want = want.groupby(["pre_pt_root_id", "post_pt_root_id"], as_index=False)["n_syn"].sum()
    assert len(got) == len(want) > 0
    assert set(zip(got["pre"], got["post"], got["weight"])) == set(
        zip(want["pre_pt_root_id"], want["post_pt_root_id"], want["n_syn"]))
    print(f"connectivity of {n} neurons: {data_requests(counted)} data requests, "
          f"physical minimum {minimum_requests(len(rows), CAP)}")
    assert within_target(data_requests(counted), minimum_requests(len(rows), CAP)), (n, data_requests(counted))


def test_connection_view_total_equals_the_synapse_aggregate(counted, truth):
    """The view is used only where it gives what counting the filtered synapses gives."""
    syn, _ = truth
    ids = query_ids(100)
    ds = open_ds(counted)
    from_view = connectivity(ds, sources=ids)
    per_roi = connectivity(ds, sources=ids, by_roi=True)  # never the view (it has no neuropil)
    rows = syn[syn["pre_pt_root_id"].isin(ids) & (syn["pre_pt_root_id"] != syn["post_pt_root_id"])]
    counted_here = rows.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    assert dict(zip(zip(from_view["pre"], from_view["post"]), from_view["weight"])) == {
        (int(a), int(b)): int(w) for (a, b), w in counted_here.items()}
    assert per_roi.groupby(["pre", "post"])["weight"].sum().to_dict() == {
        (int(a), int(b)): int(w) for (a, b), w in counted_here.items()}


def test_a_second_query_plans_from_rows_per_id_learnt_before(counted, truth):
    """Nothing learnt: 100 ids are counted first. Rows per id learnt: the next 100 ids go in one request."""
    ids = query_ids(1000)
    ds = open_ds(counted)
    counted.stats.reset()
    first = ds.get_synapses(ids[::2][:100], progress=False)
    assert data_requests(counted) == 2 * 2  # per side: one count, one batch (about 1,700 rows < 0.8 x cap)
    counted.stats.reset()
    second = ds.get_synapses(ids[1::2][:100], progress=False)
    assert data_requests(counted) == 2  # per side: one batch, no count
    for got, chosen in ((first, ids[::2][:100]), (second, ids[1::2][:100])):
        assert got.sort_values("synapse_id", ignore_index=True)[["synapse_id", "pre", "post"]].equals(
            expected_synapses(truth[0], chosen))


# -- row caps: planning never costs a row -------------------------------------------------------------

@pytest.mark.parametrize("announce", [True, False])
def test_identical_to_one_id_per_request_under_small_caps(counted, truth, announce):
    ids = query_ids(100)
    counted.row_limit = 300
    counted.announce_caps = announce
    try:
        ds = open_ds(counted, row_limit=300)  # a silent cap must be known to be detected
        planned = ds.get_synapses(ids, progress=False).sort_values("synapse_id", ignore_index=True)
        one_by_one = ds.get_synapses(ids, progress=False, batch_size=1).sort_values("synapse_id", ignore_index=True)
        edges = connectivity(ds, sources=ids).sort_values(["pre", "post"], ignore_index=True)
        edges_one = connectivity(ds, sources=ids, batch_size=1).sort_values(["pre", "post"], ignore_index=True)
    finally:
        counted.announce_caps = True
    want = expected_synapses(truth[0], ids)
    assert len(planned) == len(want) and planned[["synapse_id", "pre", "post"]].equals(want)
    pd.testing.assert_frame_equal(planned, one_by_one)
    pd.testing.assert_frame_equal(edges, edges_one)
    assert edges["weight"].sum() == int(truth[0]["pre_pt_root_id"].isin(ids).sum()
                                        - (truth[0]["pre_pt_root_id"] == truth[0]["post_pt_root_id"]).sum())


def test_a_user_batch_size_still_wins(counted):
    ids = query_ids(100)
    ds = open_ds(counted)
    counted.stats.reset()
    ds.get_synapses(ids, progress=False, batch_size=25)
    assert data_requests(counted) == 2 * 4  # 4 batches per side, nothing planned


def test_count_answer_in_an_unknown_shape_falls_back_to_halving(counted, truth, monkeypatch):
    from connectomix_cave.backend import CaveBackend

    ids = query_ids(1000)
    ds = open_ds(counted)
    monkeypatch.setattr(CaveBackend, "_count", lambda self, *a, **k: None)
    got = ds.get_synapses(ids, progress=False)
    assert got.sort_values("synapse_id", ignore_index=True)[["synapse_id", "pre", "post"]].equals(
        expected_synapses(truth[0], ids))


# -- 3. neuron lookups without synapse pulls ----------------------------------------------------------

def test_neuron_lookup_sends_no_synapse_query_and_says_counts_are_not_computed(counted, tmp_path):
    ids = query_ids(1000)
    ds = open_ds(counted, cache=str(tmp_path / "cache"))
    counted.stats.reset()
    with pytest.warns(UserWarning, match="counts=True") as caught:
        neurons, roi_counts = ds.fetch_neurons(ids)
    assert len([w for w in caught if "counts=True" in str(w.message)]) == 1
    snap = counted.stats.snapshot()
    assert data_requests(counted) == 0  # no synapse (or connection) view asked
    # the annotation table joined with its reference target on the server, whole: one request per cap
    assert "table_query" not in snap and snap["join_query"]["requests"] == 1
    assert len(neurons) == 1000 and neurons["id"].tolist() == ids.tolist()
    for column in ("pre", "post", "upstream", "downstream"):
        assert str(neurons[column].dtype) == "Int64" and neurons[column].isna().all()  # <NA>, never 0
    assert neurons.attrs["counts"] == "not computed; pass counts=True"
    assert roi_counts.empty and roi_counts.attrs["counts"] == "not computed; pass counts=True"
    # a second lookup, other criteria: no annotation request at all (the table is cached per version)
    counted.stats.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning came once per dataset, not per call
        typed, _ = ds.fetch_neurons(type="T3")
    assert "table_query" not in counted.stats.snapshot() and data_requests(counted) == 0
    assert set(typed["type"]) == {"T3"} and len(typed) == len([i for i in range(N_BODIES) if i % 40 == 3 and i % 7])


def test_counts_true_and_criteria_compute_exactly_what_is_needed(counted, truth):
    syn, _ = truth
    ids = query_ids(100)
    ds = open_ds(counted)
    neurons, roi_counts = ds.fetch_neurons(ids, counts=True)
    down = syn["pre_pt_root_id"].value_counts().reindex(ids, fill_value=0)
    up = syn["post_pt_root_id"].value_counts().reindex(ids, fill_value=0)
    assert neurons["downstream"].tolist() == down.tolist() and neurons["upstream"].tolist() == up.tolist()
    assert neurons["post"].tolist() == up.tolist() and neurons["pre"].isna().all()
    assert "counts" not in neurons.attrs and len(roi_counts) > 0
    assert roi_counts.groupby("id")["post"].sum().reindex(ids, fill_value=0).tolist() == up.tolist()
    # a criterion on upstream counts only the post side; downstream stays <NA> and says so
    counted.stats.reset()
    with pytest.warns(UserWarning, match="counts=True"):
        some, none_roi = open_ds(counted).fetch_neurons(NeuronCriteria(ids=ids, min_upstream=30))
    assert some["id"].tolist() == [int(i) for i in up[up >= 30].index]
    assert some["upstream"].tolist() == up[up >= 30].tolist() and some["downstream"].isna().all()
    assert some.attrs["counts"].startswith("post, upstream computed for the criteria, downstream not computed")
    assert none_roi.empty
    # counts=False: nothing computed, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skipped, _ = open_ds(counted).fetch_neurons(ids, counts=False)
    assert skipped["upstream"].isna().all() and skipped.attrs["counts"] == "not computed; pass counts=True"
    with pytest.raises(connectomix.errors.InvalidArgumentError, match="counts must be None, True or False"):
        ds.fetch_neurons(ids, counts="yes")


def test_roi_criteria_compute_roi_counts_once(counted, truth):
    syn, _ = truth
    ids = query_ids(100)
    ds = open_ds(counted, primary_rois="AL_R,LH_R,MB_CA_R")
    counted.stats.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        neurons, roi_counts = ds.fetch_neurons(NeuronCriteria(ids=ids, input_rois=["AL_R"], min_roi_inputs=10))
    rows = syn[syn["post_pt_root_id"].isin(ids) & (syn["neuropil"] == "AL_R")]
    per = rows["post_pt_root_id"].value_counts()
    assert neurons["id"].tolist() == sorted(int(i) for i in per[per >= 10].index)
    assert neurons["upstream"].notna().all() and neurons["downstream"].notna().all()
    assert len(roi_counts) > 0 and set(roi_counts["id"]) == set(neurons["id"])
    snap = counted.stats.snapshot()
    assert snap["view_query"]["requests"] <= 2 * 2  # per side: one count, one batch (about 1,700 rows)
    assert snap["join_query"]["requests"] == 1  # the annotation table joined with its target, filtered by id
    assert "table_query" not in snap


def test_a_connection_view_the_server_lacks_falls_back_to_counting_synapses(counted, truth):
    syn, _ = truth
    ids = query_ids(100)
    ds = open_ds(counted, connection_view="valid_connection_v9")  # no such view on this server (404)
    got = connectivity(ds, sources=ids)
    rows = syn[syn["pre_pt_root_id"].isin(ids) & (syn["pre_pt_root_id"] != syn["post_pt_root_id"])]
    want = rows.groupby(["pre_pt_root_id", "post_pt_root_id"]).size()
    assert len(got) == len(want) > 0
    assert dict(zip(zip(got["pre"], got["post"]), got["weight"])) == {
        (int(a), int(b)): int(w) for (a, b), w in want.items()}
    assert counted.stats.snapshot()["view_query"]["status"].get(404) == 1  # asked once, then remembered
    counted.stats.reset()
    connectivity(ds, sources=ids[:10])
    assert 404 not in counted.stats.snapshot()["view_query"]["status"]


@pytest.mark.parametrize("criteria", [
    {"type": "T3"}, {"type": ["T1", "T22"]}, {"type": "T1.*", "regex": True}, {"type": "T(1|2)$", "regex": True},
    {"ids": list(range(1001, 1200, 3)), "type": "T.*", "regex": True}, {"ids": list(range(1001, 1100, 2))},
])
def test_lookups_from_the_cached_annotation_table_equal_filtered_queries(counted, tmp_path, criteria):
    """The whole table kept in the cache, filtered here, gives what the server's filters give."""
    cached_ds = open_ds(counted, cache=str(tmp_path / "cache"))
    remote_ds = open_ds(counted)  # no cache: the filters go to the server
    crit = NeuronCriteria(**criteria)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cached_ds.fetch_neurons(NeuronCriteria(type="T0"))  # the table is now in the cache
        counted.stats.reset()
        cached, _ = cached_ds.fetch_neurons(crit)
        assert "table_query" not in counted.stats.snapshot()
        remote, _ = remote_ds.fetch_neurons(crit)
    assert len(remote) > 0
    pd.testing.assert_frame_equal(cached, remote)


def test_filter_locally_applies_equal_in_and_regex_search_like_the_server():
    from connectomix_cave.backend import _filter_locally

    rows = pd.DataFrame({"k": ["cell_type", "cell_type", "side", "cell_type"], "v": ["AB", "B", "left", None],
                         "root": [1, 2, 3, 4]})
    assert _filter_locally(rows, {"filter_equal_dict": {"k": "cell_type"}})["root"].tolist() == [1, 2, 4]
    assert _filter_locally(rows, {"filter_in_dict": {"v": ["B", "left"]}})["root"].tolist() == [2, 3]
    assert _filter_locally(rows, {"filter_regex_dict": {"v": "^((?:A.*)|(?:le))$"}})["root"].tolist() == [1]
    assert _filter_locally(rows, {"filter_regex_dict": {"v": "B"}})["root"].tolist() == [1, 2]  # a search
    both = {"filter_equal_dict": {"k": "cell_type"}, "filter_in_dict": {"v": ["B", "left"]}}
    assert _filter_locally(rows, both)["root"].tolist() == [2]
    with pytest.raises(connectomix.errors.InvalidArgumentError, match="invalid regular expression"):
        _filter_locally(rows, {"filter_regex_dict": {"v": "(["}})


@pytest.mark.parametrize("counts", [None, True, False])
def test_datasets_that_hold_counts_return_them_whatever_counts_says(counts):
    """Release files (and neuPrint) store counts: counts=False skips nothing there, and nothing warns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with connectomix.open("sample", cache=False) as ds:
            neurons, roi_counts = ds.fetch_neurons(type="DA1_lPN", counts=counts)
    assert not [w for w in caught if "counts=True" in str(w.message)]
    expected = pd.read_parquet(Path(ds.backend.path) / "neurons.parquet").set_index("id").loc[neurons["id"]]
    assert len(neurons) > 0 and neurons[["pre", "post", "upstream", "downstream"]].notna().all().all()
    assert (neurons["pre"] > 0).all() and "counts" not in neurons.attrs and len(roi_counts) > 0
    assert neurons["pre"].tolist() == expected["pre"].tolist()
    assert neurons["upstream"].tolist() == expected["upstream"].tolist()
