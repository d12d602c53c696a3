"""The peer benchmark's verdicts on hand-written tables: a lost, duplicated or foreign row is reported, never hidden.

Run with ``python -m pytest -q benchmarks/test_peers_compare.py`` (not part of the default test paths).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _peers import Row, Run, check_targets, compare, count_compare, pages, weight_compare  # noqa: E402

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


COUNTS = pd.DataFrame({"id": [1, 2, 3], "pre": [5, 0, 2], "post": [4, 1, 0]})


def test_counts_identical_whatever_the_order_and_dtypes():
    theirs = COUNTS.iloc[::-1].astype({"pre": "int32", "post": "Int64"})
    assert count_compare(theirs, COUNTS) == "identical"
    # a neuron the peer leaves out because it has no synapse rows is no loss
    assert count_compare(COUNTS[COUNTS["id"] != 2].assign(post=[4, 0]), COUNTS.assign(post=[4, 0, 0])) == "identical"


def test_lower_counts_are_incomplete_with_the_lost_rows_counted():
    # what a peer counting from a capped edge query answers: every touched neuron lower, none higher
    theirs = COUNTS.assign(pre=[3, 0, 2], post=[4, 0, 0])
    assert count_compare(theirs, COUNTS) == \
        "incomplete: 2 of 7 pre synapse rows missing, 1 of 5 post synapse rows missing, 2 of 3 neurons undercounted"
    assert count_compare(COUNTS[COUNTS["id"] != 1], COUNTS) == \
        "incomplete: 5 of 7 pre synapse rows missing, 4 of 5 post synapse rows missing, 1 of 3 neurons " \
        "undercounted (1 left out)"


def test_higher_foreign_or_repeated_counts_differ():
    assert count_compare(COUNTS.assign(pre=[5, 1, 2]), COUNTS) == \
        "DIFFERS: 1 neurons with higher counts than connectomix's (e.g. id 2: pre 1 vs 0, post 1 vs 1)"
    foreign = pd.concat([COUNTS, pd.DataFrame({"id": [9], "pre": [1], "post": [1]})])
    assert count_compare(foreign, COUNTS) == "DIFFERS: 1 neurons not in connectomix's answer (e.g. 9)"
    assert count_compare(pd.concat([COUNTS, COUNTS.iloc[[0]]]), COUNTS) == "DIFFERS: 1 neurons listed more than once"
    assert count_compare(COUNTS, COUNTS.astype({"pre": "Int64"}).assign(pre=pd.array([1, None, 2], "Int64"))
                         ).startswith("DIFFERS: not comparable")
