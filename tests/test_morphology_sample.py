"""Issue 12 item 4: a sample a user can trust.

The README quickstart runs as written; the sample's gaps (neurons it has without a skeleton, per-ROI counts
or complete synapses) are declared in its manifest and reported the same way by every method that meets
them: a ``MissingDataWarning`` naming the ids, or ``IdsNotFoundError`` where the caller asked for that.
Expected values come from the inputs (the PN table shipped beside the builder, the folder's files), never
from the code under test.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix_release.plugin import SAMPLE_DIR

ROOT = Path(__file__).resolve().parents[1]
PN_CSV = ROOT / "backends" / "connectomix_release" / "data" / "hemibrain_olf_data" / "S5_hemibrain_ALPN_meta.csv"
FIVE = [722817260, 754534424, 754538881, 1734350788, 1734350908]  # navis.example_neurons(), with skeletons
TWO = [1765040289, 5813039315]  # the PN table's other DA1 lPNs: real totals only


@pytest.fixture(scope="module")
def ds():
    with connectomix.open("sample", cache=False) as ds:
        yield ds


def _gap_warnings(caught, what):
    return [w.message for w in caught if isinstance(w.message, errors.MissingDataWarning) and w.message.what == what]


def test_readme_quickstart_runs_as_written_and_names_the_gaps():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart: start.*?-->\s*```python\n(.*?)```\s*<!-- quickstart: end -->", readme, re.S)
    assert block, "README quickstart block not found"
    scope: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(block.group(1), "README.md", "exec"), scope)
    assert sorted(scope["neurons"]["id"]) == sorted(FIVE + TWO)
    assert sorted(int(n.id) for n in scope["skeletons"]) == FIVE
    (skeleton_gap,) = _gap_warnings(caught, "skeleton")
    assert sorted(skeleton_gap.ids.tolist()) == TWO and all(str(i) in str(skeleton_gap) for i in TWO)
    (roi_gap,) = _gap_warnings(caught, "roi_counts")
    assert sorted(roi_gap.ids.tolist()) == TWO
    synapse_gaps = _gap_warnings(caught, "synapses")  # get_connectivity and get_synapses
    assert len(synapse_gaps) == 2 and all(sorted(w.ids.tolist()) == TWO for w in synapse_gaps)
    # the ROI counts the quickstart returns: the five have rows, the two (named in the warning) none
    assert sorted(scope["roi_counts"]["id"].unique()) == FIVE


def test_get_skeletons_missing_modes(ds):
    ids = FIVE[:2] + TWO[:1] + FIVE[2:] + TWO[1:]
    with pytest.raises(errors.IdsNotFoundError, match="missing='warn' or 'skip'") as info:
        ds.get_skeletons(ids)  # the default: a gap is an error, as navis's fetch_skeletons(missing_swc='raise')
    assert sorted(info.value.ids) == TWO
    with pytest.warns(errors.MissingDataWarning, match="1765040289, 5813039315") as caught:
        got = ds.get_skeletons(ids, missing="warn")
    assert [int(n.id) for n in got] == FIVE  # the others, in the order asked
    assert sorted(_gap_warnings(caught, "skeleton")[0].ids.tolist()) == TWO
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [int(n.id) for n in ds.get_skeletons(ids, missing="skip")] == FIVE
        assert [int(n.id) for n in ds.get_skeletons(TWO, missing="skip")] == []
        assert [int(n.id) for n in ds.get_skeletons(FIVE[:1])] == FIVE[:1]


def test_ids_not_in_the_dataset_still_raise_whatever_missing_says(ds):
    for missing in ("raise", "warn", "skip"):
        with pytest.raises(errors.IdsNotFoundError, match="123456") as info:
            ds.get_skeletons([FIVE[0], 123456, TWO[0]], missing=missing)
        assert list(info.value.ids) == [123456] or missing == "raise"


@pytest.mark.parametrize("bad", ["ignore", "", None, True, ["skip"]])
def test_bad_missing_is_refused(ds, bad):
    with pytest.raises(errors.InvalidArgumentError, match="missing must be one of"):
        ds.get_skeletons(FIVE[:1], missing=bad)


def test_roi_filters_say_whom_they_cannot_place(ds):
    with pytest.warns(errors.MissingDataWarning, match="ROI criteria") as caught:
        neurons, _ = ds.fetch_neurons(type="DA1_lPN", rois="AL(R)")
    assert sorted(neurons["id"]) == FIVE
    assert sorted(_gap_warnings(caught, "roi_counts")[0].ids.tolist()) == TWO
    # only the ones that meet the other criteria are named (PN table: 1765040289 has pre=702, 5813039315 691)
    with pytest.warns(errors.MissingDataWarning) as caught:
        ds.fetch_neurons(type="DA1_lPN", rois="AL(R)", min_pre=700)
    assert _gap_warnings(caught, "roi_counts")[0].ids.tolist() == [1765040289]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.fetch_neurons(type="DA1_lPN", omit_rois=True)  # nothing left out, no ROI counts asked: no warning
        ds.fetch_neurons(connectomix.NC(FIVE, rois="AL(R)"))  # the five have per-ROI counts


def test_the_manifest_declares_what_is_partial_and_the_files_agree():
    manifest = json.loads((SAMPLE_DIR / "manifest.json").read_text())
    partial = manifest["partial"]
    pns = pd.read_csv(PN_CSV)["bodyid"].astype("int64")
    real_others = sorted(set(pns) - set(FIVE))
    assert sorted(partial["roi_counts"]["ids"]) == real_others == sorted(partial["synapses"]["ids"])
    assert set(TWO) <= set(real_others)
    neurons = pd.read_parquet(SAMPLE_DIR / "neurons.parquet")
    assert sorted(partial["skeletons"]["ids"]) == sorted(set(neurons["id"]) - set(FIVE))
    roi_ids = set(pd.read_parquet(SAMPLE_DIR / "roi_counts.parquet")["id"])
    assert not roi_ids & set(partial["roi_counts"]["ids"]) and set(FIVE) <= roi_ids
    swc = {int(p.stem) for p in (SAMPLE_DIR / "skeletons").glob("*.swc")}
    assert swc == set(FIVE) and not swc & set(partial["skeletons"]["ids"])
    for kind in ("roi_counts", "synapses", "skeletons"):
        assert partial[kind]["reason"]
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "What is partial" in readme and all(str(i) in readme for i in TWO)
    # the synapse rows of the two are few and all synthetic: far below their real totals
    syn = pd.read_parquet(SAMPLE_DIR / "synapses.parquet", columns=["pre", "post", "real_side"])
    rows = syn[syn["pre"].isin(TWO) | syn["post"].isin(TWO)]
    assert 0 < len(rows) < 100 and set(rows["real_side"]) <= {"pre", "post"}


def test_neuprint_reports_skeleton_gaps_the_same_way():
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(SAMPLE_DIR, token="gap-token", dataset="hemibrain:v1.2.1") as emu:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/hemibrain:v1.2.1", token="gap-token",
                              verify=str(emu.cert_path), cache=False) as np_ds:
            with pytest.raises(errors.IdsNotFoundError, match="missing='warn' or 'skip'"):
                np_ds.get_skeletons([FIVE[0], TWO[0]])
            with pytest.warns(errors.MissingDataWarning, match=str(TWO[0])):
                got = np_ds.get_skeletons([FIVE[0], TWO[0], FIVE[1]], missing="warn")
            assert [int(n.id) for n in got] == FIVE[:2]
            np.testing.assert_allclose(sorted(got[0].nodes["x"]),
                                       sorted(connectomix.open("sample").get_skeletons(FIVE[0])[0].nodes["x"]),
                                       atol=1e-3)


def test_partial_synapses_are_named_by_connectivity_and_synapses(ds):
    with pytest.warns(errors.MissingDataWarning, match="only part of the synapses") as caught:
        syn = ds.get_synapses(TWO[:1] + FIVE[:1], progress=False)
    assert _gap_warnings(caught, "synapses")[0].ids.tolist() == TWO[:1]
    assert 0 < int(((syn["pre"] == TWO[0]) | (syn["post"] == TWO[0])).sum()) < 100  # vs 702 real T-bars
    with pytest.warns(errors.MissingDataWarning, match="only part of the synapses") as caught:
        ds.get_connectivity(sources=FIVE[:1], targets=TWO, progress=False)
    assert sorted(_gap_warnings(caught, "synapses")[0].ids.tolist()) == TWO
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds.get_synapses(FIVE, progress=False)  # complete: no warning
        ds.get_connectivity(sources=FIVE, progress=False)
