"""The connectomix command line, run in-process and as the installed script."""

import shutil
import subprocess

import pandas as pd
import pytest

from connectomix.cli import main, parse_neuron_spec
from connectomix.errors import InvalidArgumentError
from connectomix.testing.conformance import ToyTruth


@pytest.fixture
def uri(toy_release):
    return f"release://{toy_release}"


def test_neurons_to_csv(uri, tmp_path, capsys):
    out = tmp_path / "n.csv"
    assert main(["neurons", uri, "--type", "KC", "-o", str(out)]) == 0
    df = pd.read_csv(out)
    assert df["id"].tolist() == [104, 105, 106]


def test_roi_counts_output(uri, capsys):
    assert main(["neurons", uri, "--ids", "101", "--roi-counts"]) == 0
    text = capsys.readouterr().out
    assert "NotPrimary" in text and "C(R)" in text


def test_connectivity_with_type_spec_and_parquet(uri, toy_release, tmp_path):
    out = tmp_path / "e.parquet"
    assert main(["connectivity", uri, "--sources", "type=PN_a", "--min-weight", "5", "-o", str(out)]) == 0
    df = pd.read_parquet(out)
    expected = ToyTruth(toy_release).edges([101, 102, 103], min_weight=5)  # PN_a, from the files with pandas
    assert len(expected) > 0
    assert sorted(zip(df.pre, df.post, df.weight)) == sorted(zip(expected.pre, expected.post, expected.weight))


def test_synapses_printed(uri, toy_release, tmp_path, capsys):
    assert main(["synapses", uri, "101", "--no-post", "--min-score", "0.9"]) == 0
    assert "synapse_id" in capsys.readouterr().out
    out = tmp_path / "s.csv"
    assert main(["synapses", uri, "101", "--no-post", "--min-score", "0.9", "-o", str(out)]) == 0
    rows = ToyTruth(toy_release).synapse_rows([101], post=False)
    expected = rows[rows.score >= 0.9]
    assert len(expected) > 0
    assert sorted(pd.read_csv(out)["synapse_id"]) == sorted(expected["synapse_id"])


def test_errors_are_one_line_and_exit_2(uri, capsys):
    assert main(["neurons", uri, "--rois", "Nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("connectomix: error: Unknown ROI 'Nope'") and "Traceback" not in err
    assert main(["synapses", uri, "x,y"]) == 2
    assert main(["neurons", "no-such-dataset"]) == 2


def test_bad_output_suffix(uri, tmp_path, capsys):
    assert main(["neurons", uri, "--type", "KC", "-o", str(tmp_path / "x.xlsx")]) == 2


def test_demo_runs_on_any_dataset(uri, capsys):
    assert main(["demo", uri, "--type", "PN_a"]) == 0
    out = capsys.readouterr().out
    assert "strongest downstream partner types" in out and "coordinates in nm" in out


def test_backends_and_datasets_listing(capsys):
    assert main(["backends"]) == 0 and main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "release://" in out and "neuprint://" in out and "sample" in out


@pytest.mark.parametrize("spec, field, value, regex", [
    ("1,2", "ids", (1, 2), False), ("type=KC", "type", ("KC",), False), ("instance~KC_.*", "instance", ("KC_.*",), True),
])
def test_parse_neuron_spec(spec, field, value, regex):
    crit = parse_neuron_spec(spec)
    assert getattr(crit, field) == value and crit.regex is regex


@pytest.mark.parametrize("spec", ["", "abc", "status~x", "1,b"])
def test_bad_neuron_spec(spec):
    with pytest.raises(InvalidArgumentError):
        parse_neuron_spec(spec)


def test_installed_script(uri):
    exe = shutil.which("connectomix")
    assert exe, "the connectomix console script is installed"
    result = subprocess.run([exe, "neurons", uri, "--type", "MBON"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "109" in result.stdout
