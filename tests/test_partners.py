"""Partner type/instance columns of connectivity and synapse tables (issue 12, item 2).

The conformance suite checks the values on every backend against the toy release files; here: the sample
against its own files, the cache (the option on and off in either order), compare(), and the helper's edges.
"""

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import NC, errors
from connectomix.cache import ResultCache
from connectomix.partners import add_partner_columns

from cache_support import CountingRelease, make

COLUMNS = ["pre_type", "pre_instance", "post_type", "post_instance"]


@pytest.fixture(scope="module")
def sample_files():
    from connectomix_release.plugin import SAMPLE_DIR

    return pd.read_parquet(SAMPLE_DIR / "neurons.parquet").set_index("id")


def _expected(ids, table, label):
    return [None if i not in table.index or pd.isna(table.at[i, label]) else table.at[i, label] for i in ids]


def _values(column):
    return [None if pd.isna(v) else v for v in column]


def test_sample_tables_name_the_partners_from_the_release_files(sample_files):
    ds = connectomix.open("sample", cache=False)
    da1 = ds.fetch_neurons(type="DA1_lPN", omit_rois=True)[0]["id"]
    edges = ds.get_connectivity(sources=da1, min_weight=5)
    syn = ds.get_synapses(da1[:2], min_score=0.9)
    for table in (edges, syn):
        assert list(table.columns[-4:]) == COLUMNS
        for side in ("pre", "post"):
            for label in ("type", "instance"):
                assert table[f"{side}_{label}"].dtype == "string"
                assert _values(table[f"{side}_{label}"]) == _expected(table[side].tolist(), sample_files, label)
    assert set(edges["pre_type"]) == {"DA1_lPN"} and edges["post_type"].notna().any()
    # the same rows as the ids-only table, in the same order
    plain = ds.get_connectivity(sources=da1, min_weight=5, partner_types=False)
    pd.testing.assert_frame_equal(edges.drop(columns=COLUMNS), plain)


def test_by_type_and_by_roi_keep_working():
    ds = connectomix.open("sample", cache=False)
    typed = ds.get_connectivity(sources=NC(type="DA1_lPN"), by="type")
    assert list(typed.columns) == ["pre_type", "post_type", "weight", "n_pre", "n_post", "n_pairs"]
    edges = ds.get_connectivity(sources=NC(type="DA1_lPN"))
    summed = (edges.assign(post_type=edges["post_type"].fillna("(untyped)"))
              .groupby(["pre_type", "post_type"])["weight"].sum().sort_index())
    assert summed.to_dict() == typed.set_index(["pre_type", "post_type"])["weight"].sort_index().to_dict()
    by_roi = ds.get_connectivity(sources=NC(type="DA1_lPN"), by_roi=True)
    assert list(by_roi.columns) == ["pre", "post", "roi", "weight", *COLUMNS]


def test_compare_keeps_the_partner_columns_as_strings():
    both = connectomix.compare({"a": "sample", "b": "sample"}, "get_connectivity",
                               sources=NC(type="DA1_lPN"), min_weight=20)
    assert list(both.columns) == ["dataset", "pre", "post", "weight", *COLUMNS]
    assert all(both[c].dtype == "string" for c in COLUMNS) and both["weight"].dtype == "int64"
    a, b = (both[both["dataset"] == k].drop(columns="dataset").reset_index(drop=True) for k in "ab")
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("first", [True, False])
def test_the_cache_serves_each_option_its_own_columns(toy_release, tmp_path, first):
    cache = ResultCache(tmp_path / "cache")
    ds = make(toy_release, cache)
    answers = {}
    for option in (first, not first, first, not first):
        df = ds.get_synapses([101], partner_types=option)
        assert (list(df.columns[-4:]) == COLUMNS) is option and (("pre_type" in df.columns) is option)
        answers.setdefault(option, df)
        pd.testing.assert_frame_equal(df, answers[option])
        conn = ds.get_connectivity(sources=[101, 102], partner_types=option)
        assert ("post_type" in conn.columns) is option
    calls = CountingRelease.calls
    ds.get_synapses([101])
    ds.get_connectivity(sources=[101, 102])
    assert CountingRelease.calls == calls  # the tables and the partners' neuron table: all cache hits


def test_the_partner_lookup_is_one_query_of_the_ids_in_the_result(toy_release):
    seen = []

    class Recording(CountingRelease):
        def fetch_neurons(self, criteria, materialization=None):
            seen.append(criteria.ids)
            return super().fetch_neurons(criteria, materialization)

    ds = make(toy_release, False, Recording)
    edges = ds.get_connectivity(sources=[101], partner_types=True)
    assert len(seen) == 1 and set(seen[0]) == set(edges["pre"]) | set(edges["post"])


def test_unlabelled_and_unknown_ids_get_na_and_no_row_is_dropped():
    edges = pd.DataFrame({"pre": np.array([5, 5, 7], dtype="int64"), "post": np.array([6, 8, 5], dtype="int64"),
                          "weight": [3, 2, 1]})
    edges.attrs["table"] = "connectivity"
    table = pd.DataFrame({"id": [5, 6], "type": ["A", None], "instance": ["A_L", "B_R"]})  # no rows for 7 and 8
    asked = []
    out = add_partner_columns(edges, lambda ids: asked.append(ids.tolist()) or table)
    assert asked == [[5, 6, 7, 8]]
    assert _values(out["pre_type"]) == ["A", "A", None] and _values(out["post_type"]) == [None, None, "A"]
    assert _values(out["post_instance"]) == ["B_R", None, "A_L"]
    assert out[["pre", "post", "weight"]].equals(edges[["pre", "post", "weight"]]) and out.attrs == edges.attrs


def test_an_empty_table_gets_typed_empty_columns_without_a_lookup():
    empty = pd.DataFrame({"pre": np.array([], dtype="int64"), "post": np.array([], dtype="int64")})
    out = add_partner_columns(empty, lambda ids: pytest.fail("no lookup for an empty table"))
    assert list(out.columns) == ["pre", "post", *COLUMNS] and all(out[c].dtype == "string" for c in COLUMNS)


def test_a_neuron_table_with_repeated_ids_is_refused_not_guessed():
    edges = pd.DataFrame({"pre": np.array([1], dtype="int64"), "post": np.array([2], dtype="int64")})
    twice = pd.DataFrame({"id": [2, 2], "type": ["A", "B"], "instance": ["a", "b"]})
    with pytest.raises(errors.SchemaError, match="repeated ids"):
        add_partner_columns(edges, lambda ids: twice)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_the_option_is_a_real_bool(bad):
    ds = connectomix.open("sample", cache=False)
    with pytest.raises(errors.InvalidArgumentError, match="partner_types"):
        ds.get_connectivity(sources=1734350788, partner_types=bad)
    with pytest.raises(errors.InvalidArgumentError, match="partner_types"):
        ds.get_synapses(1734350788, partner_types=bad)
