"""The command line as good as the API (issue 12, item 6): one test per papercut of the issue.

Each failed on the code before the fix: options without help, ``--rois`` swallowing the dataset name,
``-o`` into a missing folder, formats only .csv/.csv.gz/.parquet, lines wider than the terminal,
``convert --check`` needing dummy arguments, no by-type connectivity.
"""

import argparse
import json
import warnings

import pandas as pd
import pytest

from connectomix.cli import _build_parser, main
from connectomix.testing.conformance import ToyTruth


@pytest.fixture
def uri(toy_release):
    return f"release://{toy_release}"


def _parsers(parser, name="connectomix"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_and_command_has_help():
    missing = []
    for name, parser in _parsers(_build_parser()):
        for action in parser._actions:
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{name}: {'/'.join(action.option_strings) or action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                missing += [f"{name} {a.dest}" for a in action._choices_actions if not a.help]
    assert not missing, missing
    assert len(list(_parsers(_build_parser()))) >= 10


@pytest.mark.parametrize("argv", [
    ["neurons", "--rois", "A", "{uri}"],
    ["neurons", "--rois", "A,B", "{uri}"],
    ["neurons", "{uri}", "--rois", "A", "--rois", "B"],
])
def test_rois_do_not_swallow_the_dataset_name(uri, toy_release, tmp_path, argv):
    out = tmp_path / "n.csv"
    assert main([a.format(uri=uri) for a in argv] + ["-o", str(out)]) == 0
    rois = {"A"} if argv.count("--rois") == 1 and "A,B" not in argv else {"A", "B"}
    truth = ToyTruth(toy_release)
    counts = truth.roi_counts
    in_rois = set(counts[counts["roi"].isin(rois) & ((counts["pre"] > 0) | (counts["post"] > 0))]["id"])
    neurons = set(truth.neurons[truth.neurons["is_neuron"]]["id"])  # criteria without ids match neurons only
    assert in_rois - neurons and sorted(pd.read_csv(out)["id"]) == sorted(in_rois & neurons)


def test_rois_then_dataset_as_in_the_issue(tmp_path):
    from connectomix_release.plugin import SAMPLE_DIR

    out = tmp_path / "al.csv"
    assert main(["neurons", "--rois", "AL(R)", "sample", "-o", str(out)]) == 0
    counts = pd.read_parquet(SAMPLE_DIR / "roi_counts.parquet")
    neurons = pd.read_parquet(SAMPLE_DIR / "neurons.parquet")
    in_al = set(counts[(counts["roi"] == "AL(R)") & ((counts["pre"] > 0) | (counts["post"] > 0))]["id"])
    expected = in_al & set(neurons[neurons["is_neuron"]]["id"])
    assert expected and sorted(pd.read_csv(out)["id"]) == sorted(expected)


def test_rois_lists_and_repeats_are_parsed_into_one_list():
    from connectomix.cli import _roi_arg  # (imported here: the rest of this file also runs on the old CLI)

    args = _build_parser().parse_args(["synapses", "--rois", "A", "--rois", "B,C(R)", "ds", "101"])
    assert (args.dataset, args.neurons, _roi_arg(args.rois)) == ("ds", "101", ["A", "B", "C(R)"])
    args = _build_parser().parse_args(["connectivity", "--rois", "A(L)", "ds", "--sources", "1"])
    assert (args.dataset, _roi_arg(args.rois)) == ("ds", ["A(L)"])


def test_rois_error_is_one_line(uri, capsys):
    assert main(["neurons", uri, "--rois", "A,"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ROI names separated by commas" in err


def test_output_into_missing_folders_creates_them(uri, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "kc.csv"
    assert main(["neurons", uri, "--type", "KC", "-o", str(out)]) == 0
    assert pd.read_csv(out)["id"].tolist() == [104, 105, 106]
    # created only when a table is written: a query that fails leaves no folder behind
    assert main(["neurons", uri, "--rois", "Nope", "-o", str(tmp_path / "other" / "x.csv")]) == 2
    assert not (tmp_path / "other").exists()


def test_output_below_a_file_is_a_clean_error(uri, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert main(["neurons", uri, "--type", "KC", "-o", str(tmp_path / "afile" / "kc.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("connectomix: error: ") and "is a file, not a folder" in err and "Traceback" not in err


def _read(path):
    name = path.name.lower()
    if name.endswith((".parquet",)):
        return pd.read_parquet(path)
    if ".json" in name:
        return pd.read_json(path, lines=".jsonl" in name, dtype=False)
    return pd.read_csv(path, sep="\t" if ".tsv" in name else ",")


@pytest.mark.parametrize("name", ["e.csv", "e.csv.gz", "e.tsv", "e.tsv.gz", "e.json", "e.json.gz", "e.jsonl",
                                  "e.jsonl.gz", "e.parquet", "E.JSON"])
def test_output_format_comes_from_the_ending(uri, toy_release, tmp_path, name):
    out = tmp_path / name
    assert main(["connectivity", uri, "--sources", "type=PN_a", "-o", str(out)]) == 0
    df = _read(out)
    exp = ToyTruth(toy_release).edges([101, 102, 103])
    assert sorted(zip(df.pre, df.post, df.weight)) == sorted(zip(exp.pre, exp.post, exp.weight))
    assert {"pre_type", "post_type"} <= set(df.columns)
    raw = out.read_bytes()
    gzipped = raw[:2] == b"\x1f\x8b"
    assert gzipped == name.lower().endswith(".gz")
    if name.lower().endswith(".json"):
        assert isinstance(json.loads(raw), list)  # a list of row objects


@pytest.mark.parametrize("name", ["e.xlsx", "e.gz", "e", "e.csv.bz2", ".csv"])
def test_an_unknown_ending_names_the_valid_ones(uri, tmp_path, capsys, name):
    assert main(["neurons", uri, "--type", "KC", "-o", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(e in err for e in (".csv", ".csv.gz", ".json", ".json.gz", ".parquet"))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [
    ["neurons", "{uri}"],
    ["connectivity", "{uri}", "--sources", "101,102,103,104"],
    ["synapses", "{uri}", "101,104", "--max-rows", "8"],
    ["connectivity", "{uri}", "--sources", "type=PN_a", "--by", "type"],
])
@pytest.mark.parametrize("columns", [80, 60])
def test_printed_tables_fit_the_terminal(uri, capsys, monkeypatch, argv, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    assert main([a.format(uri=uri) for a in argv]) == 0
    out = capsys.readouterr().out
    too_wide = [line for line in out.splitlines() if len(line) > columns]
    assert not too_wide, too_wide
    header_words = set(out.split())
    if argv[0] == "synapses":
        assert {"synapse_id", "pre_x", "post_z", "score", "roi", "post_instance"} <= header_words  # wrapped, kept
    if argv[0] == "neurons":
        assert {"id", "type", "upstream", "downstream"} <= header_words


@pytest.mark.parametrize("argv", [["demo"], ["demo", "{uri}", "--type", "PN_a"], ["backends"], ["datasets"],
                                  ["neurons", "sample", "--type", "DA1_lPN"]])
def test_every_command_fits_80_columns_warnings_included(uri, capsys, monkeypatch, argv):
    monkeypatch.setenv("COLUMNS", "80")
    assert main([a.format(uri=uri) for a in argv]) == 0
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).splitlines()
    too_wide = [line for line in lines if len(line) > 80 and " " in line.strip()]  # (a lone URI is never cut)
    assert not too_wide, too_wide


def test_warnings_are_one_wrapped_message_without_source_lines(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # (shown once per process; earlier tests in this one may have seen it)
        assert main(["neurons", "sample", "--type", "DA1_lPN", "--roi-counts"]) == 0  # 2 PNs lack per-ROI counts
    err = capsys.readouterr().err
    assert err.startswith("connectomix: MissingDataWarning: ") and "1765040289" in err
    assert ".py:" not in err and "fetch_neurons(" not in err  # no file:line, no echoed source line


def test_long_text_is_cut_when_printed_but_whole_in_files(uri, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["neurons", uri, "--ids", "110"]) == 0
    printed = capsys.readouterr().out
    out = tmp_path / "n.csv"
    assert main(["neurons", uri, "--ids", "110", "-o", str(out)]) == 0
    long_type = pd.read_csv(out)["type"].iloc[0]
    assert len(long_type) > 24 and long_type not in printed and long_type[:10] in printed


def test_convert_check_takes_just_the_folder(toy_release, capsys):
    from connectomix_release.plugin import SAMPLE_DIR

    assert main(["convert", "--check", str(SAMPLE_DIR)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("OK")
    assert main(["convert", "--check", "--deep", str(SAMPLE_DIR)]) == 0
    assert main(["convert", "neuprint-csv", "unused", str(SAMPLE_DIR), "--check"]) == 0  # the older spelling
    capsys.readouterr()
    assert main(["convert", "--check", str(toy_release)]) == 2  # the toy keeps a background row (id 0) on purpose
    assert "ids must be positive integers" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["convert", "--check", "a", "b"], "takes one release folder"),
    (["convert", "flywire", "src"], "convert needs FORMAT SOURCE DEST"),
    (["convert"], "convert needs FORMAT SOURCE DEST"),
    (["convert", "flywire", "a", "b", "--deep"], "--deep applies to"),
])
def test_convert_argument_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_connectivity_by_type(uri, toy_release, tmp_path):
    out = tmp_path / "t.csv"
    assert main(["connectivity", uri, "--sources", "type=PN_a", "--by", "type", "-o", str(out)]) == 0
    got = pd.read_csv(out, keep_default_na=False)
    truth = ToyTruth(toy_release)  # expected from the release files with pandas
    edges = truth.edges([101, 102, 103])
    types = truth.neurons.set_index("id")["type"]
    edges = edges.assign(pre_type=edges["pre"].map(types).fillna("(untyped)"),
                         post_type=edges["post"].map(types).fillna("(untyped)"))
    exp = edges.groupby(["pre_type", "post_type"]).agg(weight=("weight", "sum"), n_pairs=("weight", "size"))
    assert list(got.columns) == ["pre_type", "post_type", "weight", "n_pre", "n_post", "n_pairs"]
    assert len(got) > 1 and got["weight"].is_monotonic_decreasing  # strongest type pairs first
    got = got.set_index(["pre_type", "post_type"]).sort_index()
    assert got["weight"].to_dict() == exp["weight"].to_dict()
    assert got["n_pairs"].to_dict() == exp["n_pairs"].to_dict()


def test_partner_columns_on_and_off(uri, toy_release, tmp_path):
    on, off = tmp_path / "on.csv", tmp_path / "off.csv"
    assert main(["synapses", uri, "101", "--no-post", "-o", str(on)]) == 0
    assert main(["synapses", uri, "101", "--no-post", "--no-partner-types", "-o", str(off)]) == 0
    with_types, ids_only = pd.read_csv(on), pd.read_csv(off)
    assert list(with_types.columns[-4:]) == ["pre_type", "pre_instance", "post_type", "post_instance"]
    assert "pre_type" not in ids_only.columns
    types = ToyTruth(toy_release).neurons.set_index("id")["type"]
    assert with_types["pre_type"].eq(types[101]).all()
    expected = [None if pd.isna(types.get(i)) else types.get(i) for i in with_types["post"]]
    assert [None if pd.isna(v) else v for v in with_types["post_type"]] == expected
