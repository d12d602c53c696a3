"""The emulator counts ``weight`` as FlyEM's neuPrint builder does, not as neuprint-python filters synapses.

janelia-flyem/flyem-snapshot (the tool that built male-cns:v0.9, janelia-flyem/male-cns docs/download.md,
and whose :Meta schema says "for MANC we used 0.4") counts a connection in ``weight`` when its PSD
confidence is ``>= postHighAccuracyThreshold``; the T-bar is not filtered at that threshold
(flyem_snapshot/outputs/neuprint/segment.py:96-98, 638-672 at b7c8db8). neuprint-python's default synapse
filter is ``confidence > postHighAccuracyThreshold`` on both sites (neuprint/queries/synapsecriteria.py),
so it can count fewer synapses than ``weight``. The catalogue records the rule as
``connectivity.weight_rule`` of the MANC and male CNS entries.
"""

from __future__ import annotations

import pandas as pd

from connectomix_neuprint.emulator.model import _thresholded_connections

T = 0.5


def _synapses(rows):
    """Synapse rows ``(pre, post, pre_score, post_score)``, each at its own T-bar position."""
    frame = pd.DataFrame(rows, columns=["pre", "post", "pre_score", "post_score"])
    n = len(frame)
    frame["synapse_id"] = range(1, n + 1)
    for axis, base in (("x", 100.0), ("y", 200.0), ("z", 300.0)):
        frame[f"pre_{axis}"] = [base + 10 * i for i in range(n)]
        frame[f"post_{axis}"] = [base + 10 * i + 1 for i in range(n)]
    frame["score"] = frame[["pre_score", "post_score"]].min(axis=1)
    frame["roi"] = "FB"
    return frame


def test_weight_counts_psds_at_or_above_the_threshold_whatever_the_tbar():
    syn = _synapses([
        (1, 2, 0.3, 0.5),           # PSD exactly at the threshold, weak T-bar: counted
        (1, 2, 0.5, 0.9),           # T-bar exactly at the threshold: counted (T-bars are not cut at it)
        (1, 2, 0.9, 0.49),          # PSD below: not counted
        (1, 2, 0.9, float("nan")),  # no PSD confidence: not counted
        (3, 4, 0.1, 0.2),           # nothing passes: the pair keeps no weight row
    ])
    connections = pd.DataFrame({"pre": [1, 3], "post": [2, 4], "roi": ["FB", "FB"], "weight": [4, 1]})
    got = _thresholded_connections(connections, syn, T)
    assert got[["pre", "post", "roi", "weight"]].to_dict("records") == [
        {"pre": 1, "post": 2, "roi": "FB", "weight": 2}]


def test_pairs_without_synapses_keep_the_release_weight():
    syn = _synapses([(1, 2, 0.9, 0.9)])
    connections = pd.DataFrame({"pre": [1, 5], "post": [2, 6], "roi": ["FB", "EB"], "weight": [7, 3]})
    got = _thresholded_connections(connections, syn, T).sort_values(["pre", "post"])
    assert got[["pre", "post", "roi", "weight"]].to_dict("records") == [
        {"pre": 1, "post": 2, "roi": "FB", "weight": 1}, {"pre": 5, "post": 6, "roi": "EB", "weight": 3}]
