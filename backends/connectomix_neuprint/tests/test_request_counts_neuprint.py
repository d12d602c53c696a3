"""Issue 11: a neuPrint neuron lookup and a one-sided connectivity query take one request each.

On the real emulator over loopback (the toy release, caching off so every call goes to the server):

* ``fetch_neurons(ids)``: the per-ROI counts come from the ``roiInfo`` of the lookup's own answer
  (:class:`~connectomix_neuprint.backend.RoiInfoMemo`), not from a second query;
* ``get_connectivity(ids)`` (one side given): the ids are checked by the edge query itself
  (``ConnectivityQuery.check_ids``, :func:`~connectomix_neuprint.cypher.connections_query` ``check``)
  instead of a separate id check first; above one default batch of ids whose counts are unknown, the
  count query the plan needs is the id check (2 requests).

And the guarantees that must not move: missing ids raise :class:`IdsNotFoundError` naming them (the
same message as the core's own check), ``:Segment`` ids (not neurons) are valid sources, a target side
of "every neuron" stays ``:Neuron``, ids reach the Cypher text only as validated integers, and every
table equals the one the old two-request path returns (the same backend with the core's id check,
``checks_connectivity_ids = False``, and ``identity_ttl=0``, which makes the lookup ask its ROI counts).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import NC
from connectomix.errors import IdsNotFoundError
from connectomix.testing import make_toy_release
from connectomix_neuprint import backend as np_backend
from connectomix_neuprint import cypher

TOKEN = "np-request-count-token"
DATASET = "toy:v1"
NEURONS = [101, 102, 103, 104, 105, 106, 107, 108, 109, 110]
SEGMENTS = [901, 902]  # bodies of the toy that are segments, not neurons


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def emu(toy):
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(toy, token=TOKEN, dataset=DATASET) as emu:
        yield emu


def open_np(emu, **options):
    host = emu.url.split("://", 1)[1]
    return connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emu.cert_path), cache=False,
                            **options)


def old_path(emu):
    """The same backend answering as before: the core checks ids first, ROI counts asked separately."""
    ds = open_np(emu, identity_ttl=0)
    ds.backend.checks_connectivity_ids = False
    return ds


class Queries:
    """Every Cypher text the backend sends (wraps ``backend.run``)."""

    def __init__(self, ds):
        self.texts, self._run = [], ds.backend.run
        ds.backend.run = self

    def __call__(self, text, **kwargs):
        self.texts.append(text)
        return self._run(text, **kwargs)


def sent(emu, call):
    """``(call(), requests the emulator answered)``, after the connection metadata is known."""
    emu.wait_idle()
    emu.stats.reset()
    out = call()
    emu.wait_idle()
    return out, emu.stats.requests()


def edges(ds, **kwargs):
    return ds.get_connectivity(progress=False, partner_types=False, **kwargs)


def test_lookup_sends_one_request_and_equals_the_two_request_answer(emu):
    with open_np(emu) as ds, old_path(emu) as old:
        ds.info, old.info  # connect first: metadata is not what is counted
        for ids in (NEURONS[:3], NEURONS + SEGMENTS):
            (neurons, roi_counts), requests = sent(emu, lambda: ds.fetch_neurons(ids))
            assert requests == 1
            (neurons_old, roi_old), requests_old = sent(emu, lambda: old.fetch_neurons(ids))
            assert requests_old == 2  # the lookup, then the ROI counts query
            pd.testing.assert_frame_equal(neurons, neurons_old)
            pd.testing.assert_frame_equal(roi_counts, roi_old)
            assert set(roi_counts["id"]) == set(ids) - {0}


def test_lookup_roi_counts_only_from_an_answer_holding_every_id(emu):
    with open_np(emu) as ds:
        ds.info
        ds.fetch_neurons(NEURONS[:2], omit_rois=True)
        backend = ds.backend
        rows, requests = sent(emu, lambda: backend.fetch_roi_counts(np.array(NEURONS[:3])))
        assert requests == 1  # 103 was not in the last answer: asked
        rows2, requests = sent(emu, lambda: backend.fetch_roi_counts(np.array(NEURONS[:2])))
        assert requests == 0  # both were
        pd.testing.assert_frame_equal(rows2, rows[rows["id"].isin(NEURONS[:2])].reset_index(drop=True))
    with open_np(emu, identity_ttl=0) as ds:  # nothing trusted: always asked
        ds.info
        _, requests = sent(emu, lambda: ds.fetch_neurons(NEURONS[:2]))
        assert requests == 2


@pytest.mark.parametrize("side", ["sources", "targets"])
@pytest.mark.parametrize("by_roi", [False, True])
def test_one_sided_connectivity_sends_one_request_and_equals_the_checked_answer(emu, side, by_roi):
    with open_np(emu) as ds, old_path(emu) as old:
        ds.info, old.info
        for ids in ([101], NEURONS[:4], NEURONS + SEGMENTS + [0]):
            new, requests = sent(emu, lambda: edges(ds, **{side: ids}, by_roi=by_roi))
            assert requests == 1
            before, requests_old = sent(emu, lambda: edges(old, **{side: ids}, by_roi=by_roi))
            assert requests_old == 2  # the core's id check, then the query
            pd.testing.assert_frame_equal(new, before)
            assert len(new) > 0


def test_partner_side_of_every_neuron_stays_neurons(emu, toy):
    conn = pd.read_parquet(toy / "connections.parquet")
    with open_np(emu) as ds, old_path(emu) as old:
        ds.info
        got, requests = sent(emu, lambda: edges(ds, sources=SEGMENTS + [101], targets=NC()))
        assert requests == 1
        assert not set(got["post"]) & set(SEGMENTS)  # :Neuron targets only
        assert set(got["pre"]) >= set(SEGMENTS)  # :Segment sources are valid
        pd.testing.assert_frame_equal(got, edges(old, sources=SEGMENTS + [101], targets=NC()))
        expected = (conn[conn["pre"].isin(SEGMENTS + [101]) & conn["post"].isin(NEURONS)  # 0: background, dropped
                    & (conn["pre"] != conn["post"])].groupby(["pre", "post"])["weight"].sum())
        assert got.set_index(["pre", "post"])["weight"].sort_index().to_dict() == expected.to_dict()


def test_ids_without_edges_are_not_missing(emu):
    with open_np(emu) as ds:
        assert edges(ds, sources=[0]).empty  # body 0 exists and has no outgoing edge
        assert edges(ds, sources=[101], min_weight=10_000).empty  # none heavy enough: not an error either


@pytest.mark.parametrize("side", ["sources", "targets"])
def test_missing_ids_raise_naming_them_as_before(emu, side):
    with open_np(emu) as ds, old_path(emu) as old:
        ds.info
        with pytest.raises(IdsNotFoundError) as new:
            edges(ds, **{side: [101, 424242, 102, 7]})
        with pytest.raises(IdsNotFoundError) as before:
            edges(old, **{side: [101, 424242, 102, 7]})
        assert sorted(new.value.ids) == [7, 424242]
        assert str(new.value) == str(before.value) and new.value.ids == before.value.ids
        assert str(new.value).startswith(f"{side}: 2 id(s) not found")
        with pytest.raises(IdsNotFoundError, match="424242"):  # every id missing: still named
            edges(ds, **{side: [424242]}, by_roi=True)


def test_above_one_batch_of_unknown_counts_the_plan_query_is_the_check(emu, monkeypatch):
    monkeypatch.setitem(np_backend.DEFAULT_BATCH, "connectivity", 3)
    with open_np(emu) as ds, old_path(emu) as old:
        ds.info
        queries = Queries(ds)
        got, requests = sent(emu, lambda: edges(ds, sources=NEURONS))
        assert requests == 2 and "ConnectsTo" not in queries.texts[0]  # counts (and ids), then the edges
        assert "OPTIONAL MATCH" not in queries.texts[1]  # the ids are checked already: the plain query
        pd.testing.assert_frame_equal(got, edges(old, sources=NEURONS))
        _, requests = sent(emu, lambda: edges(ds, sources=NEURONS))
        assert requests == 1  # counts known now: the query checks the ids itself
        with pytest.raises(IdsNotFoundError) as missing:
            edges(ds, sources=[*NEURONS[:5], 424242])
        assert missing.value.ids == [424242] and str(missing.value).startswith("sources: 1 id(s) not found")


def test_ids_reach_cypher_only_as_integers(emu):
    with open_np(emu) as ds:
        queries = Queries(ds)
        edges(ds, sources=np.array(NEURONS[:3], dtype="uint16"))
        edges(ds, targets=[np.int64(101), 102])
    for text in queries.texts:
        for listed in re.findall(r"IN \[([^\]]*)\]", text):
            assert all(re.fullmatch(r"\d+", item.strip()) for item in listed.split(","))
    with pytest.raises(ValueError):
        cypher.connections_query([1], None, check="targets")  # no ids on the checked side
    with pytest.raises(ValueError):
        cypher.connections_query([1], None, check="sources`) DETACH DELETE n //")
    with pytest.raises(ValueError):
        cypher.connections_query([1], None, targets_label="Neuron) DETACH DELETE n //", check="sources")
