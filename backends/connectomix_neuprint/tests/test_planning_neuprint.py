"""neuPrint request planning (issue 11 item 1): batches sized from expected rows, not fixed id counts.

A SYNTHETIC release of 1,100 bodies is served by the emulator. The backend
knows each body's ``upstream``/``downstream`` connection counts from the
core's id check (or asks once), and packs ids into queries of about
:data:`~connectomix_neuprint.backend.ROWS_PER_QUERY` expected rows. Checked:
how many requests 10, 100 and 1,000 neurons take, that no query goes over its
row budget when it is made small, that the planned tables equal the
fixed-small-batch tables row for row, and that wrong or missing counts change
only the number of queries, never the answer.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix_neuprint import backend as np_backend
from connectomix_neuprint.backend import SizeMemo, plan_batches

TOKEN = "np-planning-token"
DATASET = "planning:v1"
ROIS = ["AL(R)", "LH(R)", "CA(R)"]
FIRST_ID, N_BODIES = 10_001, 1_100


def write_release(folder):
    """1,100 SYNTHETIC bodies, about 8 synapses out of each, random partners; counts consistent with the rows."""
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True)
    ids = np.arange(FIRST_ID, FIRST_ID + N_BODIES, dtype="int64")
    n = N_BODIES * 8
    pre, post = ids[rng.integers(0, N_BODIES, n)], ids[rng.integers(0, N_BODIES, n)]
    keep = pre != post
    pre, post, n = pre[keep], post[keep], int(keep.sum())
    xyz = rng.integers(100, 30_000, size=(n, 3)) * 8
    roi = pd.Series(rng.choice(np.array(ROIS + [None], dtype=object), n), dtype="string")
    syn = pd.DataFrame({
        "synapse_id": np.arange(1, n + 1, dtype="int64"), "pre": pre, "post": post,
        "pre_x": xyz[:, 0] * 1.0, "pre_y": xyz[:, 1] * 1.0, "pre_z": xyz[:, 2] * 1.0,
        "post_x": xyz[:, 0] + 16.0, "post_y": xyz[:, 1] + 8.0, "post_z": xyz[:, 2] + 8.0,
        "score": np.round(rng.uniform(0.3, 1.0, n), 3), "roi": roi,
    })
    bucket = syn["roi"].fillna("NotPrimary")
    conn = (syn.assign(roi=bucket).groupby(["pre", "post", "roi"], as_index=False).size()
            .rename(columns={"size": "weight"}))
    pre_c = syn.assign(roi=bucket).groupby(["pre", "roi"]).size().rename("pre")
    post_c = syn.assign(roi=bucket).groupby(["post", "roi"]).size().rename("post")
    pre_c.index.names = post_c.index.names = ["id", "roi"]
    rc = pd.concat([pre_c, post_c], axis=1).fillna(0).astype("int64").reset_index()
    out_n = syn.groupby("pre").size().reindex(ids).fillna(0).astype("int64").to_numpy()
    in_n = syn.groupby("post").size().reindex(ids).fillna(0).astype("int64").to_numpy()
    types = np.array([f"T{i % 20:02d}" for i in range(N_BODIES)])
    neurons = pd.DataFrame({"id": ids, "type": pd.Series(types, dtype="string"),
                            "instance": pd.Series([f"{t}_R" for t in types], dtype="string"),
                            "status": pd.Series(["Traced"] * N_BODIES, dtype="string"),
                            "pre": out_n, "post": in_n, "upstream": in_n, "downstream": out_n,
                            "is_neuron": True})
    manifest = {"format": "connectomix-release", "format_version": 1, "name": "planning", "version": "v1",
                "description": "SYNTHETIC planning test connectome (random); not real data.",
                "voxel_size_nm": [8, 8, 8], "rois": ROIS, "primary_rois": ROIS, "score_name": "confidence",
                "synthetic": {"*": "every table is synthetic (test data)"}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conn.astype({"roi": "string"}).to_parquet(folder / "connections.parquet", index=False)
    rc.astype({"roi": "string"}).to_parquet(folder / "roi_counts.parquet", index=False)
    syn.to_parquet(folder / "synapses.parquet", index=False)
    return folder, neurons.set_index("id")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from connectomix_neuprint.emulator import NeuprintEmulator

    folder, neurons = write_release(tmp_path_factory.mktemp("planning") / "release")
    with NeuprintEmulator(folder, token=TOKEN, dataset=DATASET) as emu:
        yield emu, neurons


def open_ds(emu, **options):
    host = emu.url.split("://", 1)[1]
    return connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emu.cert_path), cache=False,
                            **options)


def query_ids(n):
    rng = np.random.default_rng(n)
    return np.sort(rng.choice(np.arange(FIRST_ID, FIRST_ID + N_BODIES), n, replace=False))


class Recorder:
    """Wraps ``backend.run``: the rows every data query returned (the id checks are told apart by their text)."""

    def __init__(self, backend):
        self.backend, self.run, self.queries, self.checks = backend, backend.run, [], 0

    def __call__(self, text, **kwargs):
        df = self.run(text, **kwargs)
        if "n.upstream AS upstream, n.downstream AS downstream" in text and "ConnectsTo" not in text:
            self.checks += 1
        else:
            self.queries.append(len(df))
        return df


def recorded(ds):
    rec = Recorder(ds.backend)
    ds.backend.run = rec
    return rec


def sent(emu, call):
    emu.wait_idle()
    emu.stats.reset()
    out = call()
    emu.wait_idle()
    return out, emu.stats.requests()


CALLS = {
    "connectivity": lambda ds, ids: ds.get_connectivity(sources=ids, targets=connectomix.NC(), by_roi=True,
                                                        progress=False, partner_types=False),
    "synapses": lambda ds, ids: ds.get_synapses(ids, progress=False, partner_types=False),
}


@pytest.mark.parametrize("n", [10, 100, 1000])
def test_requests_for_10_100_1000_neurons(served, n):
    emu, neurons = served
    ids = query_ids(n)
    with open_ds(emu) as ds:
        edges, requests = sent(emu, lambda: CALLS["connectivity"](ds, ids))
        # one query that also checks the ids; above one default batch of unknown counts, the count query
        # the plan needs comes first and is the id check
        assert requests == (1 if n <= np_backend.DEFAULT_BATCH["connectivity"] else 2)
        syn, requests = sent(emu, lambda: CALLS["synapses"](ds, ids))
        assert requests == 3  # the id check and one query per side (rows: pre side + post side)
        expected_rows = int(neurons.loc[ids, "downstream"].sum() + neurons.loc[ids, "upstream"].sum())
        assert len(syn) <= expected_rows <= np_backend.ROWS_PER_QUERY["synapses"] * 2
        assert len(edges) > 0


@pytest.mark.parametrize("kind", ["connectivity", "synapses"])
def test_small_row_budgets_split_queries_by_expected_rows(served, monkeypatch, kind):
    emu, neurons = served
    budget = {"connectivity": 900, "synapses": 700}[kind]
    monkeypatch.setitem(np_backend.ROWS_PER_QUERY, kind, budget)
    ids = query_ids(1000)
    with open_ds(emu) as ds:
        rec = recorded(ds)
        df, requests = sent(emu, lambda: CALLS[kind](ds, ids))
    counts = {"connectivity": ["downstream"], "synapses": ["downstream", "upstream"]}[kind]
    expected = sum(int(neurons.loc[ids, c].sum()) for c in counts)
    minimum = sum(math.ceil(neurons.loc[ids, c].sum() / budget) for c in counts)
    assert rec.checks == 1 and requests == rec.checks + len(rec.queries)
    assert minimum <= len(rec.queries) <= 1.5 * minimum + 2  # the target: near rows / budget
    assert max(rec.queries) <= budget  # every query within its budget (the counts bound the rows)
    rows = len(df[["pre", "post"]].drop_duplicates()) if kind == "connectivity" else len(df)  # one row per pair
    assert sum(rec.queries) >= rows and expected >= rows


@pytest.mark.parametrize("kind", ["connectivity", "synapses"])
def test_planned_tables_equal_the_small_batch_tables(served, monkeypatch, kind):
    emu, _ = served
    ids = query_ids(120)
    with open_ds(emu) as ds:
        planned = CALLS[kind](ds, ids)
    with open_ds(emu, batch_size=7) as ds:  # fixed batches of 7 ids, as a user may still ask
        rec = recorded(ds)
        small = CALLS[kind](ds, ids)
        assert len(rec.queries) == math.ceil(120 / 7) * (2 if kind == "synapses" else 1)
    pd.testing.assert_frame_equal(planned, small)
    monkeypatch.setitem(np_backend.ROWS_PER_QUERY, kind, 150)  # several planned queries: still the same table
    with open_ds(emu) as ds:
        pd.testing.assert_frame_equal(CALLS[kind](ds, ids), small)


def test_unknown_counts_are_asked_once_then_planned(served):
    emu, _ = served
    ids = query_ids(1000)
    with open_ds(emu) as ds:
        backend = ds.backend
        rec = recorded(ds)
        query = connectomix.backend.ConnectivityQuery(sources=ids, targets=None)
        _, requests = sent(emu, lambda: backend.get_connectivity(query))  # the backend alone: no id check before
        assert rec.checks == 1 and len(rec.queries) == 1 and requests == 2
        _, requests = sent(emu, lambda: backend.get_connectivity(query))
        assert requests == 1  # counts known now
        few = ids[:np_backend.DEFAULT_BATCH["connectivity"]]
        fresh = open_ds(emu)
        rec = recorded(fresh)
        fresh.backend.get_connectivity(connectomix.backend.ConnectivityQuery(sources=few, targets=None))
        assert rec.checks == 0 and len(rec.queries) == 1  # few enough for one default batch: nothing asked
        fresh.close()


def test_neuron_tables_bring_the_counts(served):
    emu, _ = served
    with open_ds(emu) as ds:
        neurons = ds.backend.fetch_neurons(connectomix.NC(type=["T01", "T02", "T03", "T04", "T05"]))
        ids = neurons["id"].to_numpy()
        assert len(ids) > np_backend.DEFAULT_BATCH["connectivity"]  # more than one default batch
        rec = recorded(ds)
        ds.backend.get_connectivity(connectomix.backend.ConnectivityQuery(sources=ids, targets=None))
        assert rec.checks == 0 and len(rec.queries) == 1  # the neuron rows carried the counts


@pytest.mark.parametrize("poison", [0.0, 1e12, np.nan])
def test_wrong_counts_change_the_number_of_queries_not_the_answer(served, poison):
    emu, _ = served
    ids = query_ids(12)
    with open_ds(emu, batch_size=5) as ds:
        expected = {k: call(ds, ids) for k, call in CALLS.items()}
    with open_ds(emu) as ds:
        for kind, call in CALLS.items():
            ds.backend._sizes.remember(ids, {c: np.full(len(ids), poison) for c in ("pre", "post", "upstream",
                                                                                    "downstream")})
            ds.backend.missing_ids = lambda found, materialization=None: found[:0]  # keep the poisoned counts
            pd.testing.assert_frame_equal(call(ds, ids), expected[kind])


def test_plan_batches_packs_consecutive_ids_up_to_the_budget():
    ids = np.arange(1, 9)
    rows = np.array([30, 30, 30, 150, 10, 10, 95, 1])
    # 30+30+30 = 90 fits 100; 150 alone (over the budget by itself); 10+10 (+95 would be 115); 95+1
    assert [b.tolist() for b in plan_batches(ids, rows, 100, 10)] == [[1, 2, 3], [4], [5, 6], [7, 8]]
    assert [b.tolist() for b in plan_batches(ids, np.zeros(8), 100, 3)] == [[1, 2, 3], [4, 5, 6], [7, 8]]
    assert plan_batches(ids[:0], rows[:0], 100, 3) == []
    assert sum(len(b) for b in plan_batches(ids, rows * 7, 100, 10)) == 8  # every id once


def test_size_memo_falls_back_from_upstream_to_post_and_says_unknown():
    memo = SizeMemo()
    memo.remember(np.array([1, 2]), {"pre": np.array([5.0, 6.0]), "post": np.array([7.0, 8.0]),
                                     "upstream": np.array([np.nan, 9.0]), "downstream": np.array([np.nan, 4.0])})
    assert memo.get(np.array([1, 2, 3]), "upstream")[:2].tolist() == [7.0, 9.0]
    down = memo.get(np.array([1, 2, 3]), "downstream")
    assert np.isnan(down[0]) and down[1] == 4.0 and np.isnan(down[2])


def test_roi_info_decoded_by_arrow_equals_json_loads(monkeypatch):
    """The column-wise Arrow decoding of roiInfo gives the rows json.loads gives (order within a row aside)."""
    from connectomix_neuprint.backend import _primary_counts, split_roi_info

    rng = np.random.default_rng(5)
    names = ["AL(R)", "LH(R)", 'odd "name"', "not primary"]
    infos = []
    for _ in range(2000):
        picked = rng.choice(names, rng.integers(0, 4), replace=False)
        infos.append(json.dumps({str(r): {k: int(rng.integers(0, 4)) for k in ("pre", "post") if rng.random() < 0.8}
                                 for r in picked}))
    info = pd.Series(infos, dtype=object)
    fields = {"pre": ("pre", pd.Series(rng.integers(0, 12, 2000))), "post": ("post", pd.Series(rng.integers(0, 12, 2000)))}
    primary = {"AL(R)", "LH(R)", 'odd "name"'}
    assert _primary_counts(info, ["pre", "post"], primary) is not None  # the Arrow path is taken
    fast = split_roi_info(info, fields, primary)
    monkeypatch.setattr(np_backend, "_primary_counts", lambda *args: None)
    slow = split_roi_info(info, fields, primary)
    keys = ["row", "roi"]
    pd.testing.assert_frame_equal(fast.sort_values(keys).reset_index(drop=True),
                                  slow.sort_values(keys).reset_index(drop=True))
    assert len(fast) > 2000


@pytest.mark.parametrize("values", [['{"A": {"post": 1.5}}'], ['{"A": 3}'], ['{"A": {"post": 1}}', None],
                                    ['{"A":\n {"post": 1}}'], ['not json']])
def test_roi_info_the_arrow_path_cannot_take_goes_through_json_loads(values):
    from connectomix_neuprint.backend import _primary_counts

    assert _primary_counts(pd.Series(values, dtype=object), ["post"], {"A"}) is None
