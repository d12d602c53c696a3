"""The core re-applies every defining filter to a backend's answer (README: "One meaning everywhere").

A backend that answers too much -- the whole connection or synapse table, background id 0,
autapses, duplicated synapses, rows below a threshold -- must not change what the user gets.
``SupersetRelease`` is the real release backend answering with everything it has; every
expected table is computed with pandas straight from the toy release files.
"""

import numpy as np
import pandas as pd
import pytest

from connectomix import NC, errors, schema
from connectomix.backend import Capability
from connectomix.dataset import Dataset
from connectomix.testing.conformance import ToyTruth, _keys
from connectomix_release.backend import ReleaseBackend


class SupersetRelease(ReleaseBackend):
    """The release backend, answering every query with a superset of the right rows."""

    resolved: list = []
    calls: list = []  # (primitive, materialization it was given[, criteria])

    def dataset_capabilities(self):
        # no "every neuron" pushdown: each side reaches the core as an id list it must apply
        return super().dataset_capabilities() - {Capability.NEURON_SIDES}

    def resolve_materialization(self, ids, materialization):
        type(self).resolved.append(None if ids is None else np.asarray(ids).tolist())
        if materialization == 7:  # a versioned backend's pinned version, to follow it through the core
            return 7
        return super().resolve_materialization(ids, materialization)

    def missing_ids(self, ids, materialization=None):
        type(self).calls.append(("missing_ids", materialization))
        return super().missing_ids(ids, materialization)

    def fetch_roi_counts(self, ids, materialization=None):
        type(self).calls.append(("fetch_roi_counts", materialization))
        return super().fetch_roi_counts(ids, materialization)

    def fetch_neurons(self, criteria, materialization=None):
        type(self).calls.append(("fetch_neurons", materialization, criteria))
        # the right rows (type, status, ROI conditions are the backend's job), plus every row the core
        # is responsible for dropping: id 0, counts below the thresholds, ids that were not asked for
        honest = super().fetch_neurons(criteria, materialization)
        every = pd.read_parquet(self.path / "neurons.parquet")
        junk = every[(every.id == 0) | (every.pre < criteria.min_pre) | (every.post < criteria.min_post)
                     | (~every.id.isin(criteria.ids) if criteria.ids is not None else False)]
        parts = [part for part in (junk.iloc[::-1], honest) if len(part)]
        return pd.concat(parts, ignore_index=True) if parts else honest

    def get_connectivity(self, query):
        type(self).calls.append(("get_connectivity", query.materialization))
        c = pd.read_parquet(self.path / "connections.parquet")
        c = pd.concat([c, pd.DataFrame({"pre": [0, 0], "post": [104, 105], "roi": ["A", "B"], "weight": [5, 9]})],
                      ignore_index=True)  # background as a presynaptic partner
        if query.by_roi or query.rois is not None:
            # plus rows of weight 0 (a pair in an ROI where it has no synapse), which the core drops
            zero = c.drop_duplicates(["pre", "post"]).assign(roi="B", weight=0)
            return pd.concat([c, zero], ignore_index=True)
        return c.groupby(["pre", "post"], as_index=False)["weight"].sum()

    def get_synapses(self, query):
        type(self).calls.append(("get_synapses", query.materialization))
        s = pd.read_parquet(self.path / "synapses.parquet")
        return pd.concat([s, s.iloc[::-1]], ignore_index=True)  # every synapse, twice


@pytest.fixture
def ds(toy_release):
    SupersetRelease.resolved = []
    SupersetRelease.calls = []
    with Dataset(SupersetRelease(toy_release), cache=False) as ds:
        yield ds


@pytest.fixture
def truth(toy_release):
    return ToyTruth(toy_release)


def triples(df):
    return sorted(zip(df.pre.tolist(), df.post.tolist(), df.weight.tolist()))


def test_neurons_keep_only_the_asked_ids_above_the_thresholds_and_never_0(ds, truth):
    got, _ = ds.fetch_neurons([104, 901, 101])
    assert got["id"].tolist() == [101, 104, 901]
    n = truth.neurons.set_index("id")
    got, _ = ds.fetch_neurons(NC(ids=[101, 102, 103, 104, 105], min_pre=int(n.loc[102, "pre"])))
    assert got["id"].tolist() == sorted(i for i in [101, 102, 103, 104, 105] if n.loc[i, "pre"] >= n.loc[102, "pre"])
    assert 102 in got["id"].tolist()  # inclusive
    got, _ = ds.fetch_neurons(NC(ids=[101, 102, 103, 104, 105], min_post=int(n.loc[104, "post"])))
    assert got["id"].tolist() == sorted(i for i in [101, 102, 103, 104, 105] if n.loc[i, "post"] >= n.loc[104, "post"])
    assert 104 in got["id"].tolist()
    kcs, roi_counts = ds.fetch_neurons(type="KC")
    assert kcs["id"].tolist() == [104, 105, 106]  # sorted, without the junk rows
    assert set(roi_counts["id"]) == {104, 105, 106} and roi_counts["id"].is_monotonic_increasing


def test_connectivity_applies_sides_autapses_background_and_thresholds(ds, truth):
    assert triples(ds.get_connectivity(sources=[101, 104])) == triples(truth.edges([101, 104]))
    assert triples(ds.get_connectivity(targets=[104, 105])) == triples(truth.edges(targets=[104, 105]))
    assert triples(ds.get_connectivity([101, 102], [104, 105, 901])) == triples(
        truth.edges([101, 102], [104, 105, 901]))
    assert triples(ds.get_connectivity(sources=[101, 104], include_autapses=True)) == triples(
        truth.edges([101, 104], autapses=True))
    weights = truth.edges([101, 102, 103]).weight
    w = int(weights.median())
    got = ds.get_connectivity(sources=[101, 102, 103], min_weight=w)
    assert triples(got) == triples(truth.edges([101, 102, 103], min_weight=w)) and w in got.weight.tolist()
    # explicit zero threshold still drops nothing that exists and keeps the order
    got = ds.get_connectivity(sources=[101], min_weight=0)
    assert triples(got) == triples(truth.edges([101]))
    assert got.weight.is_monotonic_decreasing


def test_connectivity_rois_restrict_and_by_roi_partitions(ds, truth):
    got = ds.get_connectivity(sources=[101, 102, 103], rois=["A", "C(R)"], min_weight=2)
    assert list(got.columns) == ["pre", "post", "weight", "pre_type", "pre_instance", "post_type", "post_instance"]
    assert triples(got) == triples(truth.edges([101, 102, 103], rois=["A", "C(R)"], min_weight=2))
    by_roi = ds.get_connectivity(sources=[101, 102], by_roi=True)
    c = truth.connections
    exp = c[c.pre.isin([101, 102]) & (c.post != 0) & (c.pre != c.post)]
    assert sorted(zip(by_roi.pre, by_roi.post, by_roi.roi, by_roi.weight)) == sorted(
        zip(exp.pre, exp.post, exp.roi, exp.weight))
    # per ROI: a pair is kept whole when its total (within the ROIs) reaches min_weight
    by_roi = ds.get_connectivity(sources=[101], by_roi=True, rois=["A", "B"], min_weight=3)
    totals = truth.edges([101], rois=["A", "B"], min_weight=3)
    assert set(zip(by_roi.pre, by_roi.post)) == set(zip(totals.pre, totals.post))
    assert set(by_roi.roi) <= {"A", "B"}
    summed = by_roi.groupby(["pre", "post"])["weight"].sum()
    assert summed.sort_index().tolist() == totals.set_index(["pre", "post"]).weight.sort_index().tolist()


def test_connectivity_sorted_by_weight_then_ids(ds):
    got = ds.get_connectivity(sources=[101, 102, 103, 104])
    order = got.sort_values(["weight", "pre", "post"], ascending=[False, True, True])
    assert got[["pre", "post"]].values.tolist() == order[["pre", "post"]].values.tolist()
    by_roi = ds.get_connectivity(sources=[101, 102], by_roi=True)
    order = by_roi.sort_values(["weight", "pre", "post", "roi"], ascending=[False, True, True, True])
    assert by_roi[["pre", "post", "roi"]].values.tolist() == order[["pre", "post", "roi"]].values.tolist()


def test_criteria_sides_resolve_to_their_neurons(ds, truth):
    got = ds.get_connectivity(sources=NC(type="PN_a"), targets=NC(type="KC"))
    assert triples(got) == triples(truth.edges([101, 102, 103], [104, 105, 106]))
    got = ds.get_connectivity(sources=NC(type="KC"))
    assert triples(got) == triples(truth.edges([104, 105, 106]))
    assert ds.get_connectivity(sources=NC(type="no such type")).empty


def test_versions_are_resolved_for_the_ids_of_both_sides(ds):
    ds.get_connectivity([102, 101], [104, 101])
    assert SupersetRelease.resolved[-1] == [101, 102, 104]
    ds.get_connectivity(targets=[105])
    assert SupersetRelease.resolved[-1] == [105]
    ds.get_synapses([103, 101])
    assert SupersetRelease.resolved[-1] == [101, 103]


def test_synapses_apply_sides_background_autapses_score_rois_and_dedupe(ds, truth):
    got = ds.get_synapses([101, 104])
    exp = truth.synapse_rows([101, 104])
    assert _keys(got) == _keys(exp) and got.synapse_id.is_unique and got.synapse_id.is_monotonic_increasing
    assert _keys(ds.get_synapses([102], post=False)) == _keys(truth.synapse_rows([102], post=False))
    assert _keys(ds.get_synapses([102], pre=False)) == _keys(truth.synapse_rows([102], pre=False))
    assert _keys(ds.get_synapses([101], include_autapses=True)) == _keys(truth.synapse_rows([101], autapses=True))
    rows = truth.synapse_rows([101, 102, 103])
    got = ds.get_synapses([101, 102, 103], min_score=0.5)
    assert _keys(got) == _keys(rows[rows.score >= 0.5]) and (got.score == 0.5).any()
    got = ds.get_synapses([101, 102], rois=["B", "C(R)"])
    rows = truth.synapse_rows([101, 102])
    assert _keys(got) == _keys(rows[rows.roi.isin(["B", "C(R)"])])
    assert got.attrs["query"] == {"rois": ["B", "C(R)"]}
    assert ds.get_synapses(NC(type="no such type")).empty


def test_synapse_attrs_and_schema(ds):
    got = ds.get_synapses([101], min_score=0.5)
    assert list(got.columns[: len(schema.SYNAPSES.names)]) == list(schema.SYNAPSES.names)
    assert got.attrs["table"] == "synapses" and got.attrs["query"] == {"min_score": 0.5}


@pytest.mark.parametrize("call", [
    lambda d: d.get_connectivity(sources=[101], min_weight=-1),
    lambda d: d.get_connectivity(sources=[101], min_weight=1.5),
    lambda d: d.get_connectivity(sources=[101], min_weight=True),
    lambda d: d.get_connectivity(sources=[101], batch_size=0),
    lambda d: d.get_connectivity(sources=[101], batch_size=2.0),
    lambda d: d.get_connectivity(sources=[101], batch_size=False),
    lambda d: d.get_connectivity(sources=[101], rois=[]),
    lambda d: d.get_connectivity(sources=[101], rois=[3]),
    lambda d: d.get_synapses([101], min_score=float("nan")),
    lambda d: d.get_synapses([101], min_score=True),
    lambda d: d.get_synapses([101], min_score="0.5"),
])
def test_bad_arguments_are_refused(ds, call):
    with pytest.raises(errors.InvalidArgumentError):
        call(ds)


def test_valid_edge_values_are_accepted(ds, truth):
    assert triples(ds.get_connectivity(sources=[101], batch_size=1, min_weight=np.int64(2))) == triples(
        truth.edges([101], min_weight=2))
    got = ds.get_connectivity(sources=[101], rois="A")
    assert triples(got) == triples(truth.edges([101], rois=["A"]))
    got = ds.get_connectivity(sources=[101], rois=["A", "A", schema.NOT_PRIMARY], by_roi=True)
    assert set(got.roi) <= {"A", schema.NOT_PRIMARY} and schema.NOT_PRIMARY in set(got.roi)


def test_the_resolved_version_reaches_every_backend_call(ds):
    ds.get_connectivity(sources=NC(type="PN_a"), targets=[104, 105], by="type")
    ds.get_synapses(NC(type="KC"))
    ds.fetch_neurons([101, 102])
    assert {c[0] for c in SupersetRelease.calls} == {
        "missing_ids", "fetch_neurons", "get_connectivity", "get_synapses", "fetch_roi_counts"}
    # missing_ids is asked with the version as requested (None here), every other primitive with the resolved one
    assert all(c[1] == (None if c[0] == "missing_ids" else "v1") for c in SupersetRelease.calls)
    assert ds.version == "v1"


def test_criteria_sides_fetch_no_roi_counts_and_type_tables_ask_only_for_their_ids(ds):
    edges = ds.get_connectivity(sources=NC(type="PN_a"), targets=[104, 105, 901], by="type")
    assert "fetch_roi_counts" not in {c[0] for c in SupersetRelease.calls}
    asked = [c[2] for c in SupersetRelease.calls if c[0] == "fetch_neurons"]
    assert asked[0] == NC(type="PN_a")  # the criteria side
    assert set(asked[-1].ids) == {101, 102, 103, 104, 105, 901}  # the types of the edges' neurons only
    assert set(edges.post_type) == {"KC", schema.UNTYPED}


def test_type_table_order_and_empty_answer(ds, truth):
    t = ds.get_connectivity(sources=[101, 102, 103, 104, 105, 106, 107, 108], by="type")
    order = t.sort_values(["weight", "pre_type", "post_type"], ascending=[False, True, True])
    assert t[["pre_type", "post_type"]].values.tolist() == order[["pre_type", "post_type"]].values.tolist()
    assert t.weight.duplicated().any()  # ties exist, so the type order is tested
    empty = ds.get_connectivity(sources=NC(type="no such type"), by="type")
    assert empty.empty and list(empty.columns) == list(schema.TYPE_CONNECTIVITY.names)
    assert empty.attrs["table"] == "type_connectivity"


def test_missing_ids_are_named_with_their_side(ds):
    for call, side in ((lambda: ds.get_connectivity(sources=[101, 424242]), "sources"),
                       (lambda: ds.get_connectivity(targets=[424242]), "targets"),
                       (lambda: ds.get_synapses([424242, 101]), "x")):
        with pytest.raises(errors.IdsNotFoundError, match=f"^{side}: 1 id\\(s\\) not found in dataset 'toy'.*424242"):
            call()


def test_largest_thresholds_and_batches_are_accepted(ds, truth):
    top = np.iinfo("int64").max
    assert ds.get_connectivity(sources=[101], min_weight=top).empty
    assert triples(ds.get_connectivity(sources=[101], batch_size=top)) == triples(truth.edges([101]))
    assert triples(ds.get_connectivity(sources=[101], batch_size=1)) == triples(truth.edges([101]))
    for bad in (top + 1, -1):
        with pytest.raises(errors.InvalidArgumentError, match="min_weight"):
            ds.get_connectivity(sources=[101], min_weight=bad)
    with pytest.raises(errors.InvalidArgumentError, match="batch_size"):
        ds.get_connectivity(sources=[101], batch_size=top + 1)


def test_roi_arguments(ds, truth):
    got = ds.get_connectivity(sources=[101], rois="C(R)")  # one name, not its characters
    assert triples(got) == triples(truth.edges([101], rois=["C(R)"]))
    for bad in ([], [3], 5):
        with pytest.raises(errors.InvalidArgumentError, match="rois must be an ROI name or a non-empty list"):
            ds.get_connectivity(sources=[101], rois=bad)
    with pytest.raises(errors.UnknownROIError, match="'D'"):
        ds.get_connectivity(sources=[101], rois=["A", "D"])


def test_a_pinned_version_is_used_for_criteria_sides_too(ds):
    ds.get_connectivity(sources=NC(type="PN_a"), targets=[104, 105], materialization=7)
    ds.get_synapses(NC(type="KC"), materialization=7)
    assert {c[0] for c in SupersetRelease.calls} >= {"missing_ids", "fetch_neurons", "get_connectivity", "get_synapses"}
    assert all(c[1] == 7 for c in SupersetRelease.calls), SupersetRelease.calls
