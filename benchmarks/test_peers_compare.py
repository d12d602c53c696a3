"""The peer benchmark's verdicts on hand-written tables: a lost, duplicated or foreign row is reported, never hidden.

Run with ``python -m pytest -q benchmarks/test_peers_compare.py`` (not part of the default test paths).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _peers import Row, Run, check_targets, compare, pages, weight_compare  # noqa: E402

OURS = pd.DataFrame({"pre": [1, 1, 2], "post": [2, 3, 3], "roi": ["AL", "NotPrimary", "AL"], "weight": [4, 2, 1]})


def test_identical_whatever_the_order_and_dtypes():
    theirs = OURS.iloc[::-1].astype({"pre": "Int64", "weight": "float64"}).reset_index(drop=True)
    assert compare(theirs, OURS, ["pre", "post", "roi", "weight"]) == "identical"
    assert weight_compare(theirs, OURS, ["pre", "post", "roi"]) == "identical"


def test_dropped_rows_are_incomplete_with_the_lost_synapses_counted():
    theirs = OURS[OURS["roi"] != "NotPrimary"]  # what connecto's by-ROI groupby does to null neuropils
    assert weight_compare(theirs, OURS, ["pre", "post", "roi"]) == \
        "incomplete: 2 of 7 synapses missing, 1 edges absent"


def test_lighter_edges_are_incomplete():
    theirs = OURS.assign(weight=[4, 2, 0])
    assert weight_compare(theirs, OURS, ["pre", "post", "roi"]) == \
        "incomplete: 1 of 7 synapses missing, 1 edges lighter"


def test_heavier_or_foreign_rows_differ():
    heavier = OURS.assign(weight=[5, 2, 1])
    assert weight_compare(heavier, OURS, ["pre", "post", "roi"]).startswith("DIFFERS: 1 edges heavier")
    foreign = pd.concat([OURS, pd.DataFrame({"pre": [9], "post": [8], "roi": ["AL"], "weight": [1]})])
    assert compare(foreign, OURS, ["pre", "post", "roi", "weight"], what="edges").startswith(
        "DIFFERS: 1 edges not in connectomix's answer")


def test_duplicates_and_missing_rows_are_both_named():
    syn = pd.DataFrame({"synapse_id": [1, 2, 3], "pre": [1, 1, 2], "post": [2, 2, 1]})
    theirs = pd.concat([syn.iloc[[0, 1, 1]]])  # row 3 lost, row 2 twice
    assert compare(theirs, syn, ["synapse_id", "pre", "post"], what="synapses") == \
        "incomplete: 1 of 3 synapses missing, 1 synapses duplicated"


def test_missing_values_compare_as_missing_not_as_equal():
    ours = pd.DataFrame({"id": [1, 2], "type": pd.Series(["A", None], dtype="string")})
    assert compare(ours.assign(type=["A", "B"]), ours, ["id", "type"]).startswith("DIFFERS")
    assert compare(ours.astype({"type": object}), ours, ["id", "type"]) == "identical"


def test_pages():
    assert [pages(0, 10), pages(10, 10), pages(11, 10)] == [1, 1, 2]


def _row(cx_s, cx_req, peer, peer_s, *, minimum=1, latency=20, neurons=100, query="synapses", warm=None):
    row = Row("CAVE", query, neurons, latency, minimum=minimum)
    row.runs = [Run("connectomix", "c", seconds=cx_s, requests=cx_req, answer="reference", warm_s=warm,
                    warm_requests=0 if warm is not None else None),
                Run(peer, "p", seconds=peer_s, answer="identical")]
    return row


def test_targets_name_each_miss():
    assert check_targets([_row(0.1, 3, "fafbseg", 0.31)]) == []
    missed = check_targets([_row(0.2, 6, "fafbseg", 0.5)])
    assert missed == ["CAVE synapses 100 neurons 20 ms: only 2.5x faster than fafbseg (target 3x)",
                      "CAVE synapses 100 neurons 20 ms: 6 requests, more than 1.5 x 1 (physical minimum) + 2"]
    assert check_targets([_row(0.2, 1, "connecto", 0.1)]) == [
        "CAVE synapses 100 neurons 20 ms: slower than connecto (0.200 s vs 0.100 s)"]
    slow_warm = _row(0.1, 1, "connecto", 0.5, neurons=1000, query="connectivity", warm=0.02)
    assert check_targets([slow_warm]) == [
        "CAVE connectivity 1,000 neurons 20 ms: warm cache took 20.0 ms (target < 10 ms)"]


def test_zero_weight_rows_are_named_not_counted_as_lost():
    theirs = pd.concat([OURS, pd.DataFrame({"pre": [2], "post": [1], "roi": ["AL"], "weight": [0]})])
    assert weight_compare(theirs, OURS, ["pre", "post", "roi"]) == \
        "same weights, plus 1 zero-weight rows connectomix does not list"
