"""The behavioural conformance suite every connectomix backend must pass.

Subclass :class:`ConformanceTests` in a test module and provide a
class-scoped ``dataset`` fixture: a :class:`connectomix.Dataset` whose backend
serves the toy release written to ``toy_release`` (the release backend reads
it directly; remote backends run their emulator over it). Every expectation
is computed here, independently, from the toy release's Parquet files with
pandas, so all backends are held to the same answers.

Tests of optional features are skipped when the dataset lacks the
:class:`~connectomix.Capability`, and the suite checks that such gaps raise
:class:`~connectomix.errors.UnsupportedOperation` instead of being ignored.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix import errors, schema
from connectomix.backend import Capability

from .toy import BACKGROUND_TYPE, HOSTILE_TYPE, make_toy_release

__all__ = ["ConformanceTests", "ToyTruth"]

PARTNER_COLUMNS = ("pre_type", "pre_instance", "post_type", "post_instance")  # written out, not imported

_POS = ["pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]


class ToyTruth:
    """Expected answers, computed with pandas straight from the toy release files."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        neurons = pd.read_parquet(self.folder / "neurons.parquet")
        self.neurons = neurons[neurons["id"] != 0].reset_index(drop=True)  # id 0 is background, never a neuron
        self.connections = pd.read_parquet(self.folder / "connections.parquet")
        self.roi_counts = pd.read_parquet(self.folder / "roi_counts.parquet")
        self.synapses = pd.read_parquet(self.folder / "synapses.parquet")

    def edges(self, sources=None, targets=None, *, rois=None, min_weight=1, autapses=False) -> pd.DataFrame:
        c = self.connections
        c = c[(c.pre != 0) & (c.post != 0)]
        if sources is not None:
            c = c[c.pre.isin(sources)]
        if targets is not None:
            c = c[c.post.isin(targets)]
        if not autapses:
            c = c[c.pre != c.post]
        if rois is not None:
            c = c[c.roi.isin(rois)]
        total = c.groupby(["pre", "post"], as_index=False)["weight"].sum()
        return total[total.weight >= min_weight].sort_values(["pre", "post"]).reset_index(drop=True)

    def synapse_rows(self, ids, *, pre=True, post=True, autapses=False) -> pd.DataFrame:
        s = self.synapses
        keep = np.zeros(len(s), bool)
        if pre:
            keep |= s.pre.isin(ids).to_numpy()
        if post:
            keep |= s.post.isin(ids).to_numpy()
        keep &= ((s.pre != 0) & (s.post != 0)).to_numpy()
        if not autapses:
            keep &= (s.pre != s.post).to_numpy()
        return s[keep]


def _keys(df: pd.DataFrame) -> list[tuple]:
    """Synapse identity independent of backend synapse ids."""
    cols = ["pre", "post"] + _POS
    return sorted(map(tuple, df[cols].astype("float64").round(3).to_numpy().tolist()))


class ConformanceTests:
    """Behaviour shared by all backends. Subclasses provide the ``dataset`` fixture."""

    # -- fixtures ------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def toy_release(cls, tmp_path_factory) -> Path:
        return make_toy_release(tmp_path_factory.mktemp("toy_release"))

    @pytest.fixture(scope="class")
    @classmethod
    def truth(cls, toy_release) -> ToyTruth:
        return ToyTruth(toy_release)

    @pytest.fixture(scope="class")
    @classmethod
    def dataset(cls, toy_release):  # pragma: no cover - must be overridden
        raise NotImplementedError("subclasses provide a 'dataset' fixture serving toy_release")

    def _require(self, ds, cap: Capability):
        if cap not in ds.capabilities:
            pytest.skip(f"{ds.backend_name} dataset lacks {cap.value}")

    @staticmethod
    def _neurons_or_gap(ds, *args, **kwargs):
        """fetch_neurons, skipping the test where the backend *declares* the criterion unsupported.

        Raising UnsupportedOperation (instead of ignoring a criterion) is the
        contract; e.g. CAVE datastacks may have no instance or status column.
        """
        try:
            return ds.fetch_neurons(*args, **kwargs)
        except errors.UnsupportedOperation as exc:
            pytest.skip(f"declared gap of {ds.backend_name}: {exc}")

    # -- metadata ------------------------------------------------------------------------

    def test_metadata(self, dataset, truth):
        assert set(truth.manifest["primary_rois"]) <= set(dataset.primary_rois)
        assert "<connectomix.Dataset" in repr(dataset)

    # -- fetch_neurons -------------------------------------------------------------------

    def test_neurons_by_ids_include_segments(self, dataset, truth):
        ids = [101, 104, 901]
        neurons, _ = dataset.fetch_neurons(ids, counts=True)  # counts even where they are expensive (CAVE)
        assert neurons["id"].tolist() == ids
        assert list(neurons.columns[: len(schema.NEURONS.names)]) == list(schema.NEURONS.names)
        assert neurons["id"].dtype == "int64"
        expected = truth.neurons.set_index("id").loc[ids]
        for col in ("pre", "post"):  # sites: the truth, or <NA> where the dataset declares it has none
            if dataset.info.neuron_columns is None or col in dataset.info.neuron_columns:
                assert neurons[col].tolist() == expected[col].tolist()
            else:
                assert neurons[col].isna().all()
        assert neurons.attrs["backend"] == dataset.backend_name
        assert neurons.attrs["units"] == "nm"

    def test_criteria_without_ids_match_only_neurons(self, dataset, truth):
        neurons, _ = dataset.fetch_neurons(type="(PN_a|KC)", regex=True)
        assert 901 not in set(neurons["id"]) and 902 not in set(neurons["id"])
        neurons, _ = self._neurons_or_gap(dataset, status="Orphan")
        assert neurons.empty  # 901 is a mere segment
        neurons, _ = dataset.fetch_neurons(NC(status="Orphan", label="segment"))
        assert neurons["id"].tolist() == [901]

    def test_type_exact_and_regex(self, dataset, truth):
        exact, _ = dataset.fetch_neurons(type="KC")
        assert exact["id"].tolist() == truth.neurons.query("type == 'KC'")["id"].tolist()
        assert dataset.fetch_neurons(type="K").neurons.empty  # exact, not substring
        regex, _ = dataset.fetch_neurons(type="(KC|LN)", regex=True)
        assert regex["id"].tolist() == truth.neurons[truth.neurons.type.isin(["KC", "LN"])]["id"].tolist()
        assert dataset.fetch_neurons(type="K", regex=True).neurons.empty  # a full match, not a search

    def test_instance_regex(self, dataset):
        inst, _ = self._neurons_or_gap(dataset, instance=".*_L", regex=True)
        assert inst["id"].tolist() == [103, 106, 108]

    def test_hostile_type_is_data_not_code(self, dataset):
        neurons, _ = dataset.fetch_neurons(type=HOSTILE_TYPE)
        assert neurons["id"].tolist() == [110]
        assert neurons["type"].iloc[0] == HOSTILE_TYPE
        assert dataset.fetch_neurons(type=HOSTILE_TYPE[:5]).neurons.empty
        # the graph is still intact afterwards
        assert len(dataset.fetch_neurons(type="KC").neurons) == 3

    def test_background_id_0_is_never_a_neuron(self, dataset, truth, toy_release):
        # the backend's neuron table has a row for id 0, typed and labelled like a neuron
        raw = pd.read_parquet(toy_release / "neurons.parquet")
        assert raw.loc[raw["id"] == 0, "type"].tolist() == [BACKGROUND_TYPE]
        assert dataset.fetch_neurons(type=BACKGROUND_TYPE).neurons.empty
        every, roi_counts = dataset.fetch_neurons(type=".*", regex=True)
        assert every["id"].tolist() == truth.neurons[truth.neurons.is_neuron]["id"].tolist()
        assert 0 not in set(roi_counts["id"])
        assert 0 not in set(dataset.fetch_neurons(min_post=1, omit_rois=True).neurons["id"])
        segments, _ = dataset.fetch_neurons(NC(type=BACKGROUND_TYPE, label="segment"))
        assert segments.empty
        # nor a partner: not as "every neuron", nor through criteria that only id 0 matches
        edges = dataset.get_connectivity(sources=[101, 102], targets=NC())
        assert len(edges) and not (edges[["pre", "post"]] == 0).any(axis=None)
        assert dataset.get_connectivity(targets=NC(type=BACKGROUND_TYPE)).empty
        assert dataset.get_connectivity(sources=NC(), targets=NC(type=BACKGROUND_TYPE)).empty
        if Capability.SYNAPSES in dataset.capabilities:
            assert dataset.get_synapses(NC(type=BACKGROUND_TYPE)).empty
            syn = dataset.get_synapses([101, 102], include_autapses=True)
            assert len(syn) and not (syn[["pre", "post"]] == 0).any(axis=None)

    def test_min_counts_are_inclusive(self, dataset, truth):
        if not self._has_column(dataset, "pre", {"min_pre": 1}):
            pytest.skip(f"{dataset.backend_name} declares no site counts (see test_site_thresholds_where_...)")
        n = truth.neurons[truth.neurons.is_neuron]
        threshold = int(n["pre"].median())
        got, _ = dataset.fetch_neurons(min_pre=threshold)
        assert got["id"].tolist() == n[n.pre >= threshold]["id"].tolist()
        assert threshold in got["pre"].tolist()

    def test_status(self, dataset):
        got, _ = self._neurons_or_gap(dataset, status=["Anchor"])
        assert got["id"].tolist() == [106]

    def test_roi_criteria(self, dataset, truth):
        self._require(dataset, Capability.ROIS)
        rc = truth.roi_counts
        neurons = set(truth.neurons[truth.neurons.is_neuron]["id"])
        in_c = set(rc[(rc.roi == "C(R)") & (rc.pre + rc.post > 0)]["id"]) & neurons
        got, _ = dataset.fetch_neurons(rois=["C(R)"])
        assert set(got["id"]) == in_c
        inputs = set(rc[(rc.roi == "A") & (rc.post >= 12)]["id"]) & neurons
        got, _ = dataset.fetch_neurons(input_rois=["A"], min_roi_inputs=12)
        assert set(got["id"]) == inputs and inputs

    def test_roi_counts_sum_to_totals(self, dataset, truth):
        self._require(dataset, Capability.ROIS)
        neurons, roi_counts = dataset.fetch_neurons(type="PN_a", counts=True)
        sums = roi_counts.groupby("id")[["pre", "post"]].sum()
        n = neurons.set_index("id")
        # no site counts (CAVE pre): per-ROI counts count connections there
        totals = pd.DataFrame({"pre": n["pre"].fillna(n["downstream"]), "post": n["post"].fillna(n["upstream"])})
        pd.testing.assert_frame_equal(sums.sort_index(), totals.astype("int64").sort_index(), check_names=False)
        assert set(roi_counts["roi"]) <= set(dataset.primary_rois) | {schema.NOT_PRIMARY}

    # -- core columns and annotation criteria (one meaning on every backend) --------------

    @staticmethod
    def _has_column(ds, column: str, probe: dict) -> bool:
        """Whether the dataset declares ``column``; a declared gap must refuse ``probe`` criteria.

        The only way to skip an annotation test is the backend's declaration
        (``DatasetInfo.neuron_columns``); a criterion on an undeclared column
        must raise :class:`UnsupportedOperation`, never match silently.
        """
        declared = ds.info.neuron_columns
        if declared is None or column in declared:
            return True
        with pytest.raises(errors.UnsupportedOperation, match=repr(column)):
            ds.fetch_neurons(**probe)
        return False

    def test_core_columns_dtypes_and_counts(self, dataset, truth):
        neurons, _ = dataset.fetch_neurons(type=".*", regex=True, omit_rois=True, counts=True)
        assert list(neurons.columns[: len(schema.NEURONS.names)]) == list(schema.NEURONS.names)
        for col in schema.NEURONS.columns:
            assert str(neurons[col.name].dtype) == ("string" if col.dtype == "string" else col.dtype), col.name
        expected = truth.neurons.set_index("id").loc[neurons["id"]]
        # connections: every backend counts them the same way
        assert neurons["upstream"].tolist() == expected["upstream"].tolist()
        assert neurons["downstream"].tolist() == expected["downstream"].tolist()
        # sites: the truth, or <NA> everywhere where the dataset does not count sites (never another number)
        for col in ("pre", "post"):
            if neurons[col].isna().all():
                assert dataset.info.neuron_columns is not None and col not in dataset.info.neuron_columns
            else:
                assert neurons[col].tolist() == expected[col].tolist()

    @pytest.mark.parametrize("column", ["side", "class", "superclass", "nt", "hemibrain_type"])
    def test_annotation_columns_hold_the_release_values(self, dataset, truth, column):
        field = "class_" if column == "class" else column
        probe = {field: truth.neurons[column].dropna().iloc[0]}
        if not self._has_column(dataset, column, probe):
            pytest.skip(f"{dataset.backend_name} declares no {column!r} column")
        ids = truth.neurons["id"].tolist()
        neurons, _ = dataset.fetch_neurons(ids, omit_rois=True)
        expected = truth.neurons.set_index("id").loc[ids, column]
        assert neurons[column].astype(object).where(neurons[column].notna(), None).tolist() == \
            expected.astype(object).where(expected.notna(), None).tolist()

    @pytest.mark.parametrize("column", ["side", "class", "superclass", "nt", "hemibrain_type"])
    def test_annotation_criteria_exact_list_regex_empty(self, dataset, truth, column):
        field = "class_" if column == "class" else column
        n = truth.neurons[truth.neurons.is_neuron]
        values = sorted(n[column].dropna().unique())
        if not self._has_column(dataset, column, {field: values[0]}):
            pytest.skip(f"{dataset.backend_name} declares no {column!r} column")
        for value in values:  # exact
            got, _ = dataset.fetch_neurons(**{field: value}, omit_rois=True)
            assert got["id"].tolist() == n[n[column] == value]["id"].tolist(), value
        two = values[:2]  # a list is an OR
        got, _ = dataset.fetch_neurons(**{field: two}, omit_rois=True)
        assert got["id"].tolist() == n[n[column].isin(two)]["id"].tolist()
        assert dataset.fetch_neurons(**{field: []}, omit_rois=True).neurons.empty  # [] matches nothing
        # regex: a full match; <NA> never matches, not even '.*'
        got, _ = dataset.fetch_neurons(**{field: ".*"}, regex=True, omit_rois=True)
        assert got["id"].tolist() == n[n[column].notna()]["id"].tolist()
        prefix = values[0][:1]
        got, _ = dataset.fetch_neurons(**{field: f"{re.escape(prefix)}.*"}, regex=True, omit_rois=True)
        assert got["id"].tolist() == n[n[column].fillna("").str.startswith(prefix)]["id"].tolist()
        if column != "side":  # exact, not a prefix ('c' is refused as a side: only left/right/center exist)
            assert dataset.fetch_neurons(**{field: prefix}, omit_rois=True).neurons["id"].tolist() == \
                n[n[column] == prefix]["id"].tolist()

    def test_class_keyword_and_combined_criteria(self, dataset, truth):
        if not self._has_column(dataset, "class", {"class_": "KC"}):
            pytest.skip(f"{dataset.backend_name} declares no 'class' column")
        n = truth.neurons[truth.neurons.is_neuron]
        assert dataset.fetch_neurons(**{"class": "KC"}).neurons["id"].tolist() == n[n["class"] == "KC"]["id"].tolist()
        got, _ = dataset.fetch_neurons(NC(**{"class": ["KC", "ALPN"]}, type="KC"), omit_rois=True)
        assert got["id"].tolist() == n[(n["class"] == "KC") & (n["type"] == "KC")]["id"].tolist()
        if self._has_column(dataset, "side", {"side": "left"}):
            got, _ = dataset.fetch_neurons(side="left", class_="KC", omit_rois=True)
            assert got["id"].tolist() == n[(n.side == "left") & (n["class"] == "KC")]["id"].tolist() == [106]

    @pytest.mark.parametrize("field,column", [("min_upstream", "upstream"), ("min_downstream", "downstream")])
    def test_connection_count_thresholds_are_inclusive(self, dataset, truth, field, column):
        n = truth.neurons[truth.neurons.is_neuron]
        threshold = int(sorted(n[column])[len(n) // 2])  # a value some neuron has exactly
        got, _ = dataset.fetch_neurons(**{field: threshold}, omit_rois=True)
        assert got["id"].tolist() == n[n[column] >= threshold]["id"].tolist()
        assert threshold in got[column].tolist()

    def test_site_thresholds_where_sites_are_unknown(self, dataset):
        declared = dataset.info.neuron_columns
        for field, column, alternative in (("min_pre", "pre", "min_downstream"), ("min_post", "post", "min_upstream")):
            if declared is None or column in declared:
                assert not dataset.fetch_neurons(**{field: 1}, omit_rois=True).neurons.empty
            else:
                with pytest.raises(errors.UnsupportedOperation, match=alternative):
                    dataset.fetch_neurons(**{field: 1}, omit_rois=True)

    def test_recommended_min_score(self, dataset):
        self._require(dataset, Capability.SYNAPSES)
        if Capability.SYNAPSE_SCORES not in dataset.capabilities:
            with pytest.raises(errors.UnsupportedOperation):
                dataset.get_synapses([101], min_score="recommended")
            return
        score = dataset.info.score
        if score is None or score.recommended is None:
            with pytest.raises(errors.UnsupportedOperation, match="recommended"):
                dataset.get_synapses([101], min_score="recommended")
            return
        got = dataset.get_synapses([101, 102], min_score="recommended")
        numeric = dataset.get_synapses([101, 102], min_score=score.recommended)
        assert _keys(got) == _keys(numeric) and len(got)
        assert (got["score"] >= score.recommended).all()
        assert got.attrs["score"]["threshold"] == score.recommended
        assert got.attrs["score"]["threshold_is_recommended"] is True
        assert got.attrs["score"]["column"] == score.column
        with pytest.raises(errors.InvalidArgumentError, match="recommended"):
            dataset.get_synapses([101], min_score="recomended")

    # -- bad input -----------------------------------------------------------------------

    def test_bad_input_raises_clear_errors(self, dataset):
        with pytest.raises(errors.UnknownROIError, match="'D'"):
            dataset.fetch_neurons(rois=["D"])
        with pytest.raises(errors.UnknownROIError):
            dataset.get_connectivity(sources=[101], rois=["nope"])
        with pytest.raises(errors.InvalidRegexError):
            dataset.fetch_neurons(type="([", regex=True)
        with pytest.raises(errors.InvalidIdError, match="'abc'"):
            dataset.get_connectivity(sources=["abc"])
        with pytest.raises(errors.InvalidArgumentError, match="min_weight"):
            dataset.get_connectivity(sources=[101], min_weight=-1)
        with pytest.raises(errors.IdsNotFoundError, match="424242"):
            dataset.get_connectivity(sources=[101, 424242])
        with pytest.raises(errors.InvalidArgumentError):
            dataset.get_synapses([101], pre=False, post=False)

    # -- connectivity --------------------------------------------------------------------

    def test_connectivity_weights(self, dataset, truth):
        got = dataset.get_connectivity(sources=[101, 102, 103])
        assert list(got.columns) == ["pre", "post", "weight", *PARTNER_COLUMNS]
        expected = truth.edges([101, 102, 103])
        pd.testing.assert_frame_equal(
            got[["pre", "post", "weight"]].sort_values(["pre", "post"]).reset_index(drop=True), expected,
            check_dtype=False
        )
        assert got["weight"].is_monotonic_decreasing
        assert got.attrs["version"] is not None

    def test_connectivity_targets_only_and_both(self, dataset, truth):
        got = dataset.get_connectivity(targets=[104])
        exp = truth.edges(targets=[104])
        assert sorted(zip(got.pre, got.post, got.weight)) == sorted(zip(exp.pre, exp.post, exp.weight))
        both = dataset.get_connectivity([101, 102], [104, 105, 901])
        exp = truth.edges([101, 102], [104, 105, 901])
        assert sorted(zip(both.pre, both.post, both.weight)) == sorted(zip(exp.pre, exp.post, exp.weight))

    def test_min_weight_is_inclusive(self, dataset, truth):
        all_edges = truth.edges([101, 102, 103, 104])
        w = int(all_edges.weight.median())
        got = dataset.get_connectivity(sources=[101, 102, 103, 104], min_weight=w)
        assert w in got["weight"].tolist()
        assert len(got) == (all_edges.weight >= w).sum()

    def test_autapses_and_background(self, dataset, truth):
        got = dataset.get_connectivity(sources=[101, 104])
        assert not (got.pre == got.post).any()
        assert not (got.post == 0).any()
        with_auto = dataset.get_connectivity(sources=[101, 104], include_autapses=True)
        exp = truth.edges([101, 104], autapses=True)
        assert sorted(zip(with_auto.pre, with_auto.post, with_auto.weight)) == sorted(
            zip(exp.pre, exp.post, exp.weight)
        )
        assert ((with_auto.pre == 101) & (with_auto.post == 101)).any()

    def test_by_roi_partitions_total(self, dataset, truth):
        self._require(dataset, Capability.ROIS)
        by_roi = dataset.get_connectivity(sources=[101, 102], by_roi=True)
        assert list(by_roi.columns) == ["pre", "post", "roi", "weight", *PARTNER_COLUMNS]
        total = dataset.get_connectivity(sources=[101, 102])
        summed = by_roi.groupby(["pre", "post"], as_index=False)["weight"].sum()
        merged = total.merge(summed, on=["pre", "post"], suffixes=("", "_sum"))
        assert len(merged) == len(total) and (merged.weight == merged.weight_sum).all()
        assert set(by_roi.roi) <= set(dataset.primary_rois) | {schema.NOT_PRIMARY}

    def test_roi_restricted_weights(self, dataset, truth):
        self._require(dataset, Capability.ROIS)
        got = dataset.get_connectivity(sources=[101, 102, 103], rois=["A", "C(R)"], min_weight=2)
        exp = truth.edges([101, 102, 103], rois=["A", "C(R)"], min_weight=2)
        assert sorted(zip(got.pre, got.post, got.weight)) == sorted(zip(exp.pre, exp.post, exp.weight))

    def test_criteria_as_sources(self, dataset, truth):
        got = dataset.get_connectivity(sources=NC(type="PN_a"))
        exp = truth.edges([101, 102, 103])
        assert len(got) == len(exp) and got.weight.sum() == exp.weight.sum()

    def test_every_neuron_as_one_side(self, dataset, truth):
        neurons = truth.neurons[truth.neurons.is_neuron]["id"]
        got = dataset.get_connectivity(sources=[101, 102], targets=NC())
        exp = truth.edges([101, 102], neurons)
        assert sorted(zip(got.pre, got.post, got.weight)) == sorted(zip(exp.pre, exp.post, exp.weight))
        up = dataset.get_connectivity(sources=NC(), targets=[104])
        exp = truth.edges(neurons, [104])
        assert sorted(zip(up.pre, up.post, up.weight)) == sorted(zip(exp.pre, exp.post, exp.weight))

    def test_batching_does_not_change_results(self, dataset):
        ids = [101, 102, 103, 104, 105, 106, 107]
        a = dataset.get_connectivity(sources=ids)
        b = dataset.get_connectivity(sources=ids, batch_size=1, progress=False)
        pd.testing.assert_frame_equal(a, b)

    # -- synapses ------------------------------------------------------------------------

    def test_synapses_rows_and_units(self, dataset, truth):
        self._require(dataset, Capability.SYNAPSES)
        got = dataset.get_synapses([101, 104])
        assert list(got.columns[: len(schema.SYNAPSES.names)]) == list(schema.SYNAPSES.names)
        expected = truth.synapse_rows([101, 104])
        assert _keys(got) == _keys(expected)  # each connection once, positions in nm
        assert got.attrs["units"] == "nm" and got["synapse_id"].is_unique

    def test_synapses_sides(self, dataset, truth):
        self._require(dataset, Capability.SYNAPSES)
        pre_only = dataset.get_synapses([102], post=False)
        assert (pre_only.pre == 102).all() and _keys(pre_only) == _keys(truth.synapse_rows([102], post=False))
        post_only = dataset.get_synapses([102], pre=False)
        assert (post_only.post == 102).all() and _keys(post_only) == _keys(truth.synapse_rows([102], pre=False))

    def test_synapses_autapses_and_background(self, dataset, truth):
        self._require(dataset, Capability.SYNAPSES)
        got = dataset.get_synapses([101])
        assert not ((got.pre == got.post) | (got.pre == 0) | (got.post == 0)).any()
        with_auto = dataset.get_synapses([101], include_autapses=True)
        assert _keys(with_auto) == _keys(truth.synapse_rows([101], autapses=True))

    def test_min_score_is_inclusive(self, dataset):
        self._require(dataset, Capability.SYNAPSES)
        everything = dataset.get_synapses([101, 102, 103])
        if Capability.SYNAPSE_SCORES not in dataset.capabilities:
            with pytest.raises(errors.UnsupportedOperation):
                dataset.get_synapses([101], min_score=0.5)
            return
        t = float(everything["score"].round(6).mode().iloc[0])  # the toy data has many scores at 0.5
        got = dataset.get_synapses([101, 102, 103], min_score=t)
        assert (got["score"] >= t).all()
        assert len(got) == (everything["score"] >= t).sum()
        assert (got["score"] == t).any()

    def test_synapse_roi_filter(self, dataset, truth):
        self._require(dataset, Capability.SYNAPSES)
        self._require(dataset, Capability.ROIS)
        got = dataset.get_synapses([101, 102], rois=["B"])
        exp = truth.synapse_rows([101, 102])
        assert _keys(got) == _keys(exp[exp.roi == "B"])

    def test_partner_columns_come_from_the_neuron_table(self, dataset, truth):
        """pre/post type and instance on every row, from the release files; <NA> for unlabelled ids, no row lost."""
        declared = dataset.info.neuron_columns

        def expected(ids, label):
            if declared is not None and label not in declared:  # a column the dataset lacks is <NA>
                return [None] * len(ids)
            table = truth.neurons.set_index("id")[label]
            return [None if i not in table.index or pd.isna(table[i]) else table[i] for i in ids]

        edges = dataset.get_connectivity(sources=[101, 102, 103, 104], include_autapses=True)
        plain = dataset.get_connectivity(sources=[101, 102, 103, 104], include_autapses=True, partner_types=False)
        assert list(plain.columns) == ["pre", "post", "weight"]
        pd.testing.assert_frame_equal(edges[["pre", "post", "weight"]], plain)
        tables = [edges]
        if Capability.SYNAPSES in dataset.capabilities:
            tables.append(dataset.get_synapses([101, 104]))
        for got in tables:
            unlabelled = set(got.pre) | set(got.post)
            assert unlabelled - set(truth.neurons["id"][truth.neurons["type"].notna()]), "a partner without type"
            for side in ("pre", "post"):
                for label in ("type", "instance"):
                    column = got[f"{side}_{label}"]
                    assert column.dtype == "string"
                    values = [None if pd.isna(v) else v for v in column]
                    assert values == expected(got[side].tolist(), label), (side, label)
        assert dataset.get_connectivity(sources=[101], by="type").columns[0] == "pre_type"
        with pytest.raises(errors.InvalidArgumentError, match="partner_types"):
            dataset.get_connectivity(sources=[101], partner_types="no")

    def test_connectivity_matches_synapse_counts(self, dataset):
        self._require(dataset, Capability.SYNAPSES)
        syn = dataset.get_synapses([105], pre=False)
        counts = syn.groupby("pre").size()
        edges = dataset.get_connectivity(targets=[105]).set_index("pre")["weight"]
        pd.testing.assert_series_equal(counts.sort_index(), edges.sort_index(), check_names=False)

    # -- skeletons -----------------------------------------------------------------------

    def test_skeletons(self, dataset):
        if Capability.SKELETONS not in dataset.capabilities:
            with pytest.raises(errors.UnsupportedOperation):
                dataset.get_skeletons([101])
            return
        sk = dataset.get_skeletons([101, 102])
        assert len(sk) == 2 and sorted(int(i) for i in sk.id) == [101, 102]
        n = sk[0]
        assert str(n.units) in ("1 nanometer", "1.0 nanometer")
        assert len(n.nodes) == 20
        assert n.nodes["x"].max() == pytest.approx(20_000)

    # -- meshes ------------------------------------------------------------------------------

    @staticmethod
    def _toy_meshes(folder: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """The toy's meshes, decoded here from ``meshes.parquet`` (legacy precomputed fragments, nm)."""
        out = {}
        for row in pd.read_parquet(folder / "meshes.parquet").itertuples(index=False):
            n = int(np.frombuffer(row.fragment[:4], dtype="<u4")[0])
            vertices = np.frombuffer(row.fragment[4:4 + 12 * n], dtype="<f4").reshape(n, 3)
            faces = np.frombuffer(row.fragment[4 + 12 * n:], dtype="<u4").reshape(-1, 3)
            out[int(row.id)] = (vertices.astype("float64"), faces.astype("int64"))
        return out

    def test_meshes(self, dataset, toy_release):
        """MeshNeurons in nm, vertex for vertex the release's; neurons without a mesh are gaps, not errors."""
        if Capability.MESHES not in dataset.capabilities:
            with pytest.raises(errors.UnsupportedOperation):
                dataset.get_meshes([101])
            return
        expected = self._toy_meshes(toy_release)
        got = dataset.get_meshes([102, 101])
        assert [int(m.id) for m in got] == [101, 102]
        for m in got:
            vertices, faces = expected[int(m.id)]
            assert str(m.units) in ("1 nanometer", "1.0 nanometer")
            np.testing.assert_allclose(np.asarray(m.vertices, dtype="float64"), vertices, atol=1e-3)
            np.testing.assert_array_equal(np.asarray(m.faces), faces)
        with pytest.raises(errors.IdsNotFoundError, match="103") as info:
            dataset.get_meshes([101, 103])
        assert info.value.ids == [103]
        with pytest.warns(errors.MissingDataWarning, match="103") as caught:
            assert [int(m.id) for m in dataset.get_meshes([101, 103], missing="warn")] == [101]
        assert [w.message.what for w in caught if isinstance(w.message, errors.MissingDataWarning)] == ["mesh"]
        assert [int(m.id) for m in dataset.get_meshes([103, 102], missing="skip")] == [102]

    # -- one meaning per criterion (empty lists, None, missing ids) ------------------------------

    def _sides(self, dataset):
        """Every method that takes neurons, as ``name -> call(neurons)``, for this dataset's capabilities."""
        calls = {
            "fetch_neurons": lambda x: dataset.fetch_neurons(x)[0],
            "get_connectivity(sources)": lambda x: dataset.get_connectivity(x),
            "get_connectivity(targets)": lambda x: dataset.get_connectivity(targets=x),
            "get_connectivity(101, x)": lambda x: dataset.get_connectivity([101], x),
        }
        if Capability.SYNAPSES in dataset.capabilities:
            calls["get_synapses"] = lambda x: dataset.get_synapses(x)
        if Capability.SKELETONS in dataset.capabilities:
            calls["get_skeletons"] = lambda x: dataset.get_skeletons(x)
        if Capability.MESHES in dataset.capabilities:
            calls["get_meshes"] = lambda x: dataset.get_meshes(x)
        return calls

    def test_empty_alternatives_match_nothing_in_every_method(self, dataset):
        """``ids=[]``, ``type=[]``, ``instance=[]``, ``status=[]``: no neuron, on every backend, in every method."""
        empty = [[], NC(ids=[]), NC(type=[]), NC(instance=[]), NC(status=[]), NC(type=[], status="Traced"),
                 NC(ids=[101, 102], type=[])]
        for name, call in self._sides(dataset).items():
            for x in empty:
                assert len(call(x)) == 0, f"{name}({x!r}) returned rows"
        for field in ("type", "instance", "status"):
            neurons, roi_counts = dataset.fetch_neurons(**{field: []})
            assert neurons.empty and roi_counts.empty

    def test_empty_roi_lists_are_refused_everywhere(self, dataset):
        calls = [lambda: dataset.fetch_neurons(rois=[]), lambda: dataset.fetch_neurons(input_rois=[]),
                 lambda: dataset.fetch_neurons(output_rois=[]),
                 lambda: dataset.get_connectivity([101], rois=[])]
        if Capability.SYNAPSES in dataset.capabilities:
            calls.append(lambda: dataset.get_synapses([101], rois=[]))
        for call in calls:
            with pytest.raises(errors.InvalidArgumentError, match=r"rois"):
                call()

    def test_none_means_no_condition(self, dataset, truth):
        every = dataset.fetch_neurons()[0]
        assert every.equals(dataset.fetch_neurons(type=None, instance=None, status=None, rois=None)[0])
        n = truth.neurons
        assert sorted(every["id"]) == sorted(n.loc[n.is_neuron & (n.id != 0), "id"])
        assert dataset.get_connectivity([101], None).equals(dataset.get_connectivity([101]))
        for name, call in self._sides(dataset).items():
            if name != "fetch_neurons" and not name.startswith("get_connectivity"):
                with pytest.raises(errors.InvalidArgumentError, match="None"):
                    call(None)

    def test_missing_ids_raise_in_every_method(self, dataset):
        for name, call in self._sides(dataset).items():
            for x in ([424242], [101, 424242], NC(ids=[424242], type="KC")):
                with pytest.raises(errors.IdsNotFoundError, match="424242"):
                    call(x)
                    pytest.fail(f"{name}({x!r}) did not raise")

    def test_criteria_work_in_every_method(self, dataset, truth):
        """The same criteria select the same neurons in every method (skeletons: the ones that have them)."""
        crit = NC(ids=[101, 102, 104], type=["PN_a", "PN_b"])
        ids = sorted(dataset.fetch_neurons(crit)[0]["id"])
        n = truth.neurons
        assert ids == sorted(n.loc[n.id.isin([101, 102, 104]) & n.type.isin(["PN_a", "PN_b"]), "id"])
        assert set(dataset.get_connectivity(crit)["pre"]) <= set(ids)
        if Capability.SYNAPSES in dataset.capabilities:
            syn = dataset.get_synapses(crit, post=False)
            assert set(syn["pre"]) == set(ids) & set(truth.synapses["pre"])
        if Capability.SKELETONS in dataset.capabilities:
            assert sorted(int(i) for i in dataset.get_skeletons(NC(ids=[101, 102], type="PN_a")).id) == [101, 102]
        if Capability.MESHES in dataset.capabilities:
            assert sorted(int(i) for i in dataset.get_meshes(NC(ids=[101, 102], type="PN_a")).id) == [101, 102]

    def test_not_primary_means_the_same_for_synapses_and_connectivity(self, dataset, truth):
        """``rois="NotPrimary"``: synapses outside every primary ROI (roi ``"NotPrimary"`` in the synapse table
        too; the release files store <NA>), as in per-ROI weights."""
        self._require(dataset, Capability.SYNAPSES)
        rows = truth.synapse_rows([101], pre=True, post=False)
        got = dataset.get_synapses([101], post=False, rois="NotPrimary")
        assert len(got) > 0 and (got["roi"] == "NotPrimary").all()
        assert dataset.get_synapses([101], post=False)["roi"].notna().all()
        assert _keys(got) == _keys(rows[rows["roi"].isna()])
        edges = dataset.get_connectivity([101], rois="NotPrimary")
        assert int(edges["weight"].sum()) == len(got)
