"""Issue 12 item 1 and its naming papercuts: habits from neuprint-python and fafbseg carry over.

* ``NC(type="DA1_lPN.*")`` guesses a regex exactly as neuprint-python does (checked against
  neuprint-python's own ``NeuronCriteria`` on the same strings, and against neuprint-python's answer
  from the neuPrint emulator);
* neuprint-python's criteria spellings are aliases (``bodyId`` ...) or precise hints, other clients'
  method arguments give hints, never a raw ``TypeError``;
* a misspelled type/instance warns with did-you-mean (release, neuPrint emulator, CAVE emulator); a
  literal read as a pattern, or a pattern matched literally, says so;
* a misspelled ROI raises with did-you-mean and every valid ROI;
* one name outside the primary ROIs: ``"NotPrimary"`` in synapse tables too, and in the demo.

Expected values come from the release files with pandas, never from the code under test.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix import errors

SAMPLE = Path(__file__).resolve().parents[1] / "backends" / "connectomix_release" / "data" / "sample"


@pytest.fixture(scope="module")
def files():
    return {t: pd.read_parquet(SAMPLE / f"{t}.parquet") for t in ("neurons", "synapses")}


@pytest.fixture(scope="module")
def sample():
    with connectomix.open("sample", cache=False) as ds:
        yield ds


def _ids_of_type(files, pattern: str) -> list[int]:
    n = files["neurons"]
    n = n[n["type"].notna() & n["is_neuron"]] if "is_neuron" in n.columns else n[n["type"].notna()]
    return sorted(int(i) for i, t in zip(n["id"], n["type"]) if re.fullmatch(pattern, t))


@contextlib.contextmanager
def _no_empty_result_warning():
    with warnings.catch_warnings():  # (getattr: on code without the class, the assertions after it still run)
        warnings.simplefilter("error", getattr(errors, "EmptyResultWarning", errors.ConnectomixWarning))
        yield


# -- regex guessing: neuprint-python's rule --------------------------------------------------------------

NEUPRINT_FIELDS = {"type": "type", "instance": "instance", "flywire_type": "flywireType",
                   "hemibrain_type": "hemibrainType", "manc_type": "mancType"}


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.text(alphabet="DA1_lPN+.*?[]^$\\(){}|- ", min_size=1, max_size=8),
       st.sampled_from(sorted(NEUPRINT_FIELDS)))
def test_regex_guess_is_neuprint_pythons(value, field):
    """The same string gets the same guess from neuprint-python's NeuronCriteria and from connectomix's."""
    neuprint = pytest.importorskip("neuprint")
    expected = neuprint.NeuronCriteria(**{NEUPRINT_FIELDS[field]: value}).regex
    try:
        got = NC(**{field: value}).regex
    except errors.InvalidRegexError as exc:  # guessed a pattern that does not compile (neuprint would send it)
        assert expected is True and "guesses like neuprint-python" in str(exc)
        return
    assert got is expected


@pytest.mark.parametrize("value, guessed", [("DA1_lPN.*", True), ("VP1m+VP2_lvPN2", True), ("MBON14(a3)_R", False),
                                            ("(KC|PN)", False), ("DA1_lPN", False), ("a\\d", True)])
def test_regex_guess_examples_and_visibility(value, guessed):
    neuprint = pytest.importorskip("neuprint")
    assert neuprint.NeuronCriteria(type=value).regex is guessed  # the reference
    crit = NC(type=value)
    assert crit.regex is guessed
    assert ("regex=True" in repr(crit)) is guessed
    assert (crit.regex_guessed is not None) is guessed
    assert NC(type=value, regex=False).regex is False and NC(type=value, regex=False).regex_guessed is None


def test_a_guess_in_one_field_reads_every_type_field_as_a_pattern_but_keeps_the_others_exact():
    crit = NC(type="DA1_.*", instance="x", class_="ascending neuron (AN)", status="Traced")
    assert crit.regex and crit.instance == ("x",)
    assert re.fullmatch(crit.class_[0], "ascending neuron (AN)") and not re.fullmatch(crit.class_[0], "ascending neuron AN")
    assert crit.status == ("Traced",)
    with pytest.raises(errors.InvalidArgumentError, match="side='L' is not a side"):
        NC(type="DA1_.*", side="L")  # sides are still checked under a guess


def test_regex_argument_values():
    assert NC(type="a.b", regex="guess").regex is True and NC(type="ab", regex=None).regex is False
    with pytest.raises(errors.InvalidArgumentError, match="regex must be True or False"):
        NC(type="a", regex="yes")


# -- neuprint-python and fafbseg spellings ------------------------------------------------------------------


def test_neuprint_criteria_spellings_are_aliases():
    assert NC(bodyId=[5, 3]) == NC(ids=[3, 5]) == NC([3, 5])
    assert NC(inputRois=["AL(R)"], outputRois="LH(R)") == NC(input_rois=["AL(R)"], output_rois=["LH(R)"])
    assert NC(flywireType="a", hemibrainType="b", mancType="c") == NC(flywire_type="a", hemibrain_type="b",
                                                                       manc_type="c")
    assert NC(type="KC", label="Neuron").label == "neuron" and NC(bodyId=[1], label="Segment").label == "segment"
    with pytest.raises(errors.InvalidArgumentError, match="not both"):
        NC(ids=[1], bodyId=[2])


@pytest.mark.parametrize("field, value, needle", [
    ("somaSide", "L", "side="),
    ("predictedNt", "gaba", "nt="),
    ("somaLocation", None, "no soma location"),
    ("cellBodyFiber", "AVM02", "neurons\\['cellBodyFiber'\\]"),
    ("client", object(), "not bound to a server"),
])
def test_neuprint_criteria_with_another_meaning_get_a_hint(field, value, needle):
    with pytest.raises(errors.InvalidArgumentError, match=f"neuprint-python's spelling; in connectomix use .*{needle}"):
        NC(**{field: value})


def test_a_name_where_ids_go_says_how_to_select_by_type(sample):
    """neuprint-python reads fetch_neurons('DA1_lPN') as NC(type=..., instance=...) (matching either)."""
    with pytest.raises(errors.InvalidIdError, match=r"write NeuronCriteria\(type='DA1_lPN'\)"):
        sample.fetch_neurons("DA1_lPN")
    with pytest.raises(errors.InvalidIdError, match=r"NeuronCriteria\(type='KC'\)"):
        sample.get_connectivity(sources=["KC", "PN"])


def test_neuprint_pythons_matchvar_gets_a_hint():
    with pytest.raises(errors.InvalidIdError, match="matchvar, the Cypher variable"):
        NC("n", type="DA1_lPN")


def test_fetch_neurons_takes_bodyId_too(sample):
    neurons, _ = sample.fetch_neurons(bodyId=[1734350788], omit_rois=True)
    assert neurons["id"].tolist() == [1734350788]


@pytest.mark.parametrize("call, needle", [
    (lambda ds: ds.get_synapses(1734350788, transmitters=True), "transmitter"),
    (lambda ds: ds.get_synapses(1734350788, neuropils=True), "roi column"),
    (lambda ds: ds.get_synapses(1734350788, filtered=False), r"connectomix.open\('flywire', filtered=False\)"),
    (lambda ds: ds.get_synapses(1734350788, dataset="public"), "connectomix.open"),
    (lambda ds: ds.get_connectivity(1734350788, min_total_weight=5), "min_weight="),
    (lambda ds: ds.get_connectivity(upstream_criteria=1734350788), "sources="),
    (lambda ds: ds.fetch_neurons(NC(type="KC"), client=None), "no client"),
    (lambda ds: ds.get_synapses(1734350788, min_scor=0.5), "did you mean 'min_score'"),
])
def test_other_clients_arguments_get_a_hint_not_a_type_error(sample, call, needle):
    with pytest.raises(errors.InvalidArgumentError, match=needle) as info:
        call(sample)
    assert not isinstance(info.value, TypeError)


# -- the examples on the sample --------------------------------------------------------------------


def test_a_regex_looking_type_finds_the_neurons(sample, files):
    expected = _ids_of_type(files, "DA1_lPN.*")
    assert len(expected) == 7
    with _no_empty_result_warning():
        neurons, _ = sample.fetch_neurons(NC(type="DA1_lPN.*"), omit_rois=True)
    assert neurons["id"].tolist() == expected


def test_a_misspelled_type_warns_with_did_you_mean(sample):
    with pytest.warns(errors.EmptyResultWarning, match="has no type 'DA1_lpn'; did you mean 'DA1_lPN'") as record:
        neurons, _ = sample.fetch_neurons(type="DA1_lpn", omit_rois=True)
    assert neurons.empty
    w = [r.message for r in record if isinstance(r.message, errors.EmptyResultWarning)][0]
    assert (w.field, w.value, w.suggestions) == ("type", "DA1_lpn", ["DA1_lPN"])
    with pytest.warns(errors.EmptyResultWarning, match="did you mean 'DA1_lPN_R'"):
        sample.fetch_neurons(instance="DA1_lPN_r", omit_rois=True)


def test_a_misspelled_type_in_connectivity_criteria_warns_too(sample):
    with pytest.warns(errors.EmptyResultWarning, match="has no type 'DA1_IPN'; did you mean .*'DA1_lPN'"):
        edges = sample.get_connectivity(sources=NC(type="DA1_IPN"), progress=False)  # I for l
    assert edges.empty


def test_one_misspelled_value_of_a_list_is_named(sample, files):
    with pytest.warns(errors.EmptyResultWarning, match="has no type 'DA2_lpn'.*the other values matched"):
        neurons, _ = sample.fetch_neurons(type=["DA1_lPN", "DA2_lpn"], omit_rois=True)
    assert neurons["id"].tolist() == _ids_of_type(files, "DA1_lPN")


def test_no_warning_when_the_values_exist(sample):
    with _no_empty_result_warning():
        sample.fetch_neurons(type="DA1_lPN", omit_rois=True)
        empty, _ = sample.fetch_neurons(type="DA1_lPN", min_pre=10**9, omit_rois=True)  # excluded by min_pre
        sample.fetch_neurons(type=[], omit_rois=True)
    assert empty.empty


def test_a_literal_read_as_a_pattern_says_so(sample, files):
    """'+' makes neuprint-python (and connectomix) guess a pattern, which does not match the type itself."""
    expected = sorted(int(i) for i in files["neurons"].loc[files["neurons"]["type"] == "VP1m+VP2_lvPN2", "id"])
    assert expected
    with pytest.warns(errors.EmptyResultWarning, match=r"guessed to be one because it contains '\+'.*regex=False"):
        sample.fetch_neurons(type="VP1m+VP2_lvPN2", omit_rois=True)
    with _no_empty_result_warning():
        neurons, _ = sample.fetch_neurons(type="VP1m+VP2_lvPN2", regex=False, omit_rois=True)
    assert neurons["id"].tolist() == expected


def test_an_exact_string_that_looks_like_a_regex_warns(sample):
    with pytest.warns(errors.EmptyResultWarning, match="looks like a regular expression: pass regex=True"):
        sample.fetch_neurons(type="DA1_lPN.*", regex=False, omit_rois=True)
    with pytest.warns(errors.EmptyResultWarning, match="looks like a regular expression"):  # '|' is not guessed
        sample.fetch_neurons(type="(DA1_lPN|DA2_lPN)", omit_rois=True)


def test_a_pattern_that_matches_no_type_warns(sample):
    with pytest.warns(errors.EmptyResultWarning, match="matches the pattern type='DA9_.*'"):
        sample.fetch_neurons(type="DA9_.*", omit_rois=True)


# -- ROIs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda ds: ds.fetch_neurons(rois=["lh(r)"]),
    lambda ds: ds.get_connectivity(1734350788, rois="lh(r)"),
    lambda ds: ds.get_synapses(1734350788, rois=["lh(r)"]),
])
def test_a_misspelled_roi_raises_with_did_you_mean_and_every_valid_roi(sample, call):
    with pytest.raises(errors.UnknownROIError, match=r"Unknown ROI 'lh\(r\)' in dataset 'sample'; "
                                                     r"did you mean 'LH\(R\)'\?") as info:
        call(sample)
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    for roi in manifest["primary_rois"]:
        assert repr(roi) in str(info.value)
    assert info.value.suggestions == ["LH(R)"] and set(manifest["primary_rois"]) <= set(info.value.valid)


def test_a_long_roi_list_is_wrapped_and_complete():
    valid = [f"ROI_{i:03d}(R)" for i in range(200)]
    message = str(errors.UnknownROIError("ROI_07(R)", valid, "big"))
    lines = message.splitlines()
    assert all(len(line) <= 88 for line in lines[1:]) and len(lines) > 10
    assert all(repr(v) in message for v in valid) and "The 200 valid ROIs are" in lines[0]


# -- one name outside the primary ROIs ----------------------------------------------------------------------


def test_synapse_tables_name_the_rest_not_primary(sample, files):
    body = 1734350788
    syn = sample.get_synapses(body, post=False)
    s = files["synapses"]
    rows = s[(s["pre"] == body) & (s["post"] != body)]
    assert syn["roi"].notna().all()
    assert set(syn["roi"]) <= set(sample.primary_rois) | {"NotPrimary"}
    assert int((syn["roi"] == "NotPrimary").sum()) == int(rows["roi"].isna().sum()) > 0
    by_roi = sample.get_connectivity(body, by_roi=True)
    assert "NotPrimary" in set(by_roi["roi"])


def test_the_demo_uses_the_same_name(capsys):
    from connectomix.demo import run_demo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_demo("sample")
    out = capsys.readouterr().out
    assert "(no primary ROI)" not in out and "NotPrimary" in out


# -- the same on the neuPrint and CAVE emulators (the sample served as hemibrain) ---------------------------


NEUPRINT_TOKEN = "habits-token"
CAVE_TOKEN = "habits-cave-token"


def _open_cave(emu):
    """The sample's CAVE emulator opened with the settings of a datastack outside the catalogue."""
    primary = json.loads((SAMPLE / "manifest.json").read_text())["primary_rois"]
    with pytest.warns(UserWarning, match="not in the connectomix catalogue"):
        return connectomix.open(
            f"cave://{emu.datastack}", server=emu.url, token=CAVE_TOKEN, materialization=1,
            filtered=False, connection_view=None, score_column="cleft_score", neuropil_column="neuropil",
            neuron_table="cell_types", type_column="cell_type", instance_column="instance",
            annotation_map="side=side,class=class", primary_rois=",".join(primary), cache=False)


@pytest.fixture(scope="module")
def served():
    """The sample through the release backend and the neuPrint and CAVE emulators (as hemibrain)."""
    pytest.importorskip("kuzu")
    pytest.importorskip("caveclient")
    from connectomix_cave.emulator import CaveEmulator
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(SAMPLE, token=NEUPRINT_TOKEN, dataset="hemibrain:v1.2.1") as np_emu, \
            CaveEmulator(SAMPLE, token=CAVE_TOKEN, datastack="sample_stack") as cave_emu:
        host = np_emu.url.split("://", 1)[1]
        cave = _open_cave(cave_emu)
        with connectomix.open("sample", cache=False) as release, \
                connectomix.open(f"neuprint://{host}/hemibrain:v1.2.1", token=NEUPRINT_TOKEN,
                                 verify=str(np_emu.cert_path), cache=False) as neuprint, cave:
            yield {"release": release, "neuprint": neuprint, "cave": cave, "neuprint_emulator": np_emu}


@pytest.mark.parametrize("backend", ["release", "neuprint", "cave"])
def test_the_habits_on_every_backend(served, files, backend):
    ds = served[backend]
    with _no_empty_result_warning():
        neurons, _ = ds.fetch_neurons(NC(type="DA1_lPN.*"), omit_rois=True)
    assert neurons["id"].tolist() == _ids_of_type(files, "DA1_lPN.*")
    with pytest.warns(errors.EmptyResultWarning, match="did you mean 'DA1_lPN'"):
        assert ds.fetch_neurons(type="DA1_lpn", omit_rois=True).neurons.empty
    with pytest.raises(errors.UnknownROIError, match="did you mean 'LH\\(R\\)'"):
        ds.get_connectivity(1734350788, rois="lh(r)")
    syn = ds.get_synapses(1734350788, post=False, progress=False)
    assert syn["roi"].notna().all() and (syn["roi"] == "NotPrimary").any()


@pytest.mark.parametrize("field, value", [
    ("type", "DA1_lPN.*"), ("type", "DA1_lPN"), ("type", "D[AM]1_lPN"), ("type", "VP1m+VP2_lvPN2"),
    ("type", "(DA1_lPN|DA2_lPN)"), ("instance", "DA1_lPN_.*"), ("instance", "DA1_lPN_R"), ("type", "DA1_lpn"),
])
def test_neuprint_python_finds_the_same_neurons_with_the_same_string(served, field, value):
    """Differential: neuprint-python's own guess on the neuPrint emulator, and connectomix's, select the
    same neurons for the same string (also where the guess misses, as for a '+' in a type name)."""
    neuprint = pytest.importorskip("neuprint")
    emu = served["neuprint_emulator"]
    client = neuprint.Client(emu.url, dataset="hemibrain:v1.2.1", token=NEUPRINT_TOKEN, verify=str(emu.cert_path))
    theirs, _ = neuprint.fetch_neurons(neuprint.NeuronCriteria(**{field: value}), client=client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the misses warn (tested above)
        ours, _ = served["neuprint"].fetch_neurons(NC(**{field: value}), omit_rois=True)
    assert ours["id"].tolist() == sorted(int(i) for i in theirs["bodyId"])
    if value == "DA1_lPN.*":
        assert len(ours) == 7


# -- progress bars and version messages only where they are news ---------------------------------------


def test_progress_bars_only_for_work_that_takes_long(capfd, monkeypatch):
    from connectomix import parallel

    assert parallel.map_batches(lambda b: b * 2, [1, 2, 3], progress=True, desc="quick") == [2, 4, 6]
    assert "quick" not in capfd.readouterr().err  # three quick batches: no bar
    monkeypatch.setattr(parallel, "PROGRESS_DELAY", 0)
    parallel.map_batches(lambda b: b * 2, [1, 2, 3], progress=True, desc="slow")
    assert "slow" in capfd.readouterr().err  # work longer than the delay: a bar


def test_one_neuron_prints_nothing_and_the_version_is_logged_once(capfd, caplog):
    """Two Datasets on one CAVE datastack, queries for one neuron: nothing printed, one INFO line in all."""
    import logging

    pytest.importorskip("caveclient")
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(SAMPLE, token=CAVE_TOKEN, datastack="sample_stack") as emu:
        capfd.readouterr()
        with caplog.at_level(logging.INFO, logger="connectomix"):
            for _ in range(2):
                with _open_cave(emu) as ds:
                    ds.get_synapses(1734350788)
                    ds.fetch_neurons(1734350788)
                    ds.get_connectivity(1734350788)
        assert capfd.readouterr().err == ""  # no progress bar, no printed version line
    said = [r.getMessage() for r in caplog.records if "Using materialization version" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("sample_stack: Using materialization version 1.")
