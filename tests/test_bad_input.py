"""Every bad input raises a ConnectomixError; the command line answers in one line with status 2.

Property tests (hypothesis, bounded: about 100 examples each, no deadline)
throw odd values at the public API -- ``connectomix.open``, the
:class:`~connectomix.Dataset` methods, :class:`~connectomix.NeuronCriteria`,
``compare`` -- and at ``connectomix.cli.main``, all on the toy release. An
input either gives a correct answer or raises a ConnectomixError; never a
raw Python/DuckDB/pyarrow exception, never a silent coercion (``2.5``
workers, ``'١٢٣'`` read as 123). Expected values come from the toy release
files and from rules written out here, never from the code under test.

The deterministic tests at the top are the escapes found before the fix.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix import errors
from connectomix.cli import main
from connectomix.criteria import parse_ids
from connectomix.hints import guess_regex

INT64_MAX = 2**63 - 1
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@pytest.fixture(scope="module")
def toy_ds(toy_release):
    with connectomix.open(f"release://{toy_release}", cache=False) as ds:
        yield ds


@pytest.fixture(scope="module")
def toy_tables(toy_release):
    return {t: pd.read_parquet(toy_release / f"{t}.parquet") for t in ("neurons", "connections", "synapses")}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(tmp_path / "cache"))


# -- escapes found before the fix ------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["١٢٣", "１２３", "²", "1_000", "0x10", "12\u0663"])
def test_non_ascii_and_python_only_digits_are_not_ids(text):
    with pytest.raises(errors.InvalidIdError, match=re.escape(repr(text))):
        parse_ids(text)
    with pytest.raises(errors.InvalidIdError):
        NC(ids=[101, text])


@pytest.mark.parametrize("pattern", ["K{,3}C", "[[:upper:]]C", "K[:C]"])
def test_patterns_read_differently_by_python_and_re2_are_refused(toy_ds, pattern):
    """Python reads 'K{,3}C' as 0-3 K's, RE2 (DuckDB, neuPrint's RE2-like subset) as the literal text."""
    with pytest.raises(errors.InvalidRegexError, match=re.escape(repr(pattern))):
        toy_ds.fetch_neurons(type=pattern, regex=True)


def test_zero_dimensional_arrays_and_mappings(toy_ds):
    assert parse_ids(np.array(5)).tolist() == [5]
    with pytest.raises(errors.InvalidIdError, match="mapping"):
        parse_ids({101: "a"})


@pytest.mark.parametrize("workers", [2.5, "2.5", "٢", True, 0, -1, None, "many"])
def test_max_workers_must_be_a_positive_integer(toy_release, workers):
    with pytest.raises(errors.InvalidArgumentError, match="max_workers"):
        connectomix.open(f"release://{toy_release}", max_workers=workers, cache=False)
    with pytest.raises(errors.InvalidArgumentError, match="max_workers"):
        connectomix.compare(["sample"], "fetch_neurons", max_workers=workers)


def test_max_workers_from_a_uri_string(toy_release):
    with connectomix.open(f"release://{toy_release}?max_workers=3", cache=False) as ds:
        assert ds.max_workers == 3


@pytest.mark.parametrize("version", ["١", "１", "²", 2.0, True, -1, 2**64, "latest!", [1]])
def test_materialization_is_a_word_or_ascii_digits(toy_ds, version):
    with pytest.raises(errors.InvalidArgumentError, match="materialization"):
        toy_ds.fetch_neurons(type="KC", materialization=version)
    with pytest.raises(errors.InvalidArgumentError, match="materialization"):
        toy_ds.get_connectivity([101], materialization=version)


def test_materialization_option_of_a_uri_is_read_the_same_way(toy_release):
    """CAVE read '١' (Arabic-Indic one) in ``?materialization=`` as version 1."""
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(toy_release, token="t", datastack="toy_stack") as emu:
        for bad in ("١", "１", "1.0"):
            with pytest.raises(errors.InvalidArgumentError, match="materialization"):
                connectomix.open(f"cave://toy_stack?materialization={bad}", server=emu.url, token="t", cache=False)
        # options shared by the backends are read once, by the core (CAVE took '١٠' as 10 and raised a raw
        # ValueError for batch_size=2.5)
        for query, name in (("batch_size=2.5", "batch_size"), ("batch_size=١٠", "batch_size"),
                            ("row_limit=١٠", "row_limit"), ("timeout=nan", "timeout")):
            with pytest.raises(errors.InvalidArgumentError, match=name):
                connectomix.open(f"cave://toy_stack?{query}", server=emu.url, token="t", cache=False)
        with connectomix.open("cave://toy_stack?materialization=1", server=emu.url, token="t", cache=False,
                              filtered=False, connection_view=None, neuron_table="cell_types",
                              type_column="cell_type") as ds:
            assert ds.version == 1


def test_neuprint_options_are_read_strictly(toy_release):
    """neuPrint took arrow=perhaps as true, timeout=nan or -1 and batch_size=١٠ as given."""
    from connectomix_neuprint.emulator import NeuprintEmulator

    with NeuprintEmulator(toy_release, token="t", dataset="toy:v1") as emu:
        host = emu.url.split("://", 1)[1]
        for query, name in (("arrow=perhaps", "arrow"), ("timeout=nan", "timeout"), ("timeout=-1", "timeout"),
                            ("batch_size=١٠", "batch_size"), ("batch_size=0", "batch_size")):
            with pytest.raises(errors.InvalidArgumentError, match=name):
                connectomix.open(f"neuprint://{host}/toy:v1?{query}", token="t", verify=str(emu.cert_path),
                                 cache=False)
        with connectomix.open(f"neuprint://{host}/toy:v1?arrow=false&timeout=30&batch_size=50", token="t",
                              verify=str(emu.cert_path), cache=False) as ds:
            assert ds.backend.use_arrow is False


@pytest.mark.parametrize("call, match", [
    (lambda ds: ds.get_connectivity([101], by_roi="no"), "by_roi"),  # was read as True
    (lambda ds: ds.get_connectivity([101], include_autapses=1), "include_autapses"),
    (lambda ds: ds.get_synapses([101], pre="False"), "pre"),
    (lambda ds: ds.fetch_neurons(type="KC", omit_rois="yes"), "omit_rois"),
    (lambda ds: ds.fetch_neurons(typ="KC"), r"unknown criteria field\(s\) \['typ'\]; did you mean 'type'"),
    (lambda ds: ds.get_connectivity([101], rois=5), "rois"),
    (lambda ds: ds.get_synapses(None), "None"),
    (lambda ds: ds.get_skeletons(None), "None"),
    (lambda ds: ds.fetch_neurons(min_pre=2**64), "min_pre"),
    (lambda ds: ds.get_connectivity([101], min_weight=2**64), "min_weight"),
    (lambda ds: ds.get_connectivity([101], batch_size=2.0), "batch_size"),
    (lambda ds: ds.get_synapses([101], min_score=float("nan")), "min_score"),
    (lambda ds: ds.get_synapses([101], min_score=np.inf), "min_score"),
    (lambda ds: ds.get_synapses([101], min_score=10**400), "min_score"),  # was a raw OverflowError
    (lambda ds: ds.get_synapses([101], attach=True, max_distance=10**400), "max_distance"),
    (lambda ds: ds.get_synapses([101], attach=True, max_distance=float("nan")), "max_distance"),
    (lambda ds: ds.get_connectivity([101], by=["type"]), "by"),
])
def test_bad_arguments_are_named(toy_ds, call, match):
    with pytest.raises(errors.InvalidArgumentError, match=match):
        call(toy_ds)


@pytest.mark.parametrize("name", [5, None, b"sample", "", "  ", ["sample"]])
def test_open_needs_a_name_or_uri(name):
    with pytest.raises(errors.InvalidArgumentError, match="dataset name or URI"):
        connectomix.open(name)


@pytest.mark.parametrize("options, match", [({"threads": "x"}, "threads"), ({"threads": 2.5}, "threads"),
                                            ({"memory_limit": "lots"}, "memory_limit"),
                                            ({"memory_limit": 5}, "memory_limit")])
def test_release_options_are_checked(toy_release, options, match):
    with pytest.raises(errors.InvalidArgumentError, match=match):
        connectomix.open(f"release://{toy_release}", cache=False, **options)


def test_compare_refuses_what_is_not_a_dataset(toy_ds):
    for datasets in (5, "sample", [5], {"a": 5}, {1: toy_ds}):
        with pytest.raises(errors.InvalidArgumentError, match="dataset"):
            connectomix.compare(datasets, "fetch_neurons")
    with pytest.raises(errors.InvalidArgumentError, match="method"):
        connectomix.compare([toy_ds], ["fetch_neurons"])


# -- configuration ----------------------------------------------------------------------------------------


def test_broken_config_only_breaks_configured_names(config_file, toy_release):
    config_file('[datasets.mine]\nuri = "release://%s"\n\n[datasets.broken]\nurl = "x"\n' % toy_release)
    with pytest.raises(errors.ConfigError, match=r"config\.toml \(line 4\): \[datasets\.broken\] needs"):
        connectomix.open("broken")
    with connectomix.open("mine", cache=False) as ds:  # the good entry still opens
        assert ds.name == "mine"
    with connectomix.open("sample", cache=False) as ds:
        assert ds.backend_name == "release"


def test_unreadable_config_still_opens_builtin_names(config_file):
    path = config_file("[datasets.x\nuri = 'release:///a'\n")
    with pytest.warns(RuntimeWarning, match=r"not valid TOML.*line 1"):
        with connectomix.open("sample", cache=False) as ds:
            assert ds.backend_name == "release"
    with pytest.raises(errors.ConfigError, match=re.escape(str(path)) + r".*line 1"):
        connectomix.open("x")
    assert main(["neurons", "x"]) == 2


def test_broken_config_overriding_a_builtin_name_raises(config_file):
    config_file('[datasets.sample]\nuri = "release:///a"\nthreads = \n')
    with pytest.raises(errors.ConfigError, match="not valid TOML"):
        connectomix.open("sample")


# -- command line -----------------------------------------------------------------------------------------


def run_cli(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("connectomix: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("argv, needle", [
    (["connectivity", "{toy}", "--sources", "101", "--min-weight", "١٢"], "'١٢'"),
    (["connectivity", "{toy}", "--sources", "101", "--min-weight", "abc"], "--min-weight"),
    (["synapses", "{toy}", "101", "--min-score", "nan"], "'nan'"),
    (["synapses", "{toy}", "101", "--min-score", "０.５"], "'０.５'"),
    (["synapses", "{toy}", "١٠١"], "'١٠١'"),
    (["neurons", "{toy}", "--max-rows", "-3"], "--max-rows"),
    (["neurons", "{toy}", "--bogus"], "--bogus"),
    (["frobnicate"], "frobnicate"),
    ([], "required"),
])
def test_cli_unreadable_arguments_are_one_line(toy_release, argv, needle):
    argv = [a.replace("{toy}", f"release://{toy_release}") for a in argv]
    assert_one_line_error(*run_cli(argv)[::2], needle)


def test_cli_bad_output_is_refused_before_the_query(toy_release, tmp_path, monkeypatch):
    def no_query(*args, **kwargs):
        raise AssertionError("the query ran before the output path was checked")

    monkeypatch.setattr(connectomix.Dataset, "get_connectivity", no_query)
    (tmp_path / "afile").write_text("")
    # (a missing folder is created when the table is written: tests/test_cli_papercuts.py)
    for target, needle in ((tmp_path / "afile" / "e.csv", "is a file"), (tmp_path, "is a folder"),
                           (tmp_path / "e.xlsx", ".parquet")):
        code, _, err = run_cli(["connectivity", f"release://{toy_release}", "--sources", "101", "-o", str(target)])
        assert_one_line_error(code, err, needle)


def test_cli_help_and_version_return_zero():
    assert run_cli(["--version"])[0] == 0
    code, out, _ = run_cli(["neurons", "--help"])
    assert code == 0 and "--min-pre" in out


# -- properties: the public API ---------------------------------------------------------------------------

ODD_TEXT = st.sampled_from(["١٢٣", "１２３", "²", "1_000", " 12 ", "0x10", "1e3", "+5", "-1", "", " ", "nan",
                            "inf", "9" * 25, "abc", "101", "101,102", "\x00", "type=KC", "PN_a", "KC", "A", "B",
                            "C(R)", "NotPrimary", "Traced", "auto", "latest", "live", "neuron", "segment", "all"])
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 5, 101, 104, 424242, INT64_MAX, INT64_MAX + 1, -(2**63), 2.5, -0.0, 1e300,
                     float("nan"), float("inf"), np.int64(101), np.float64(102.0), np.uint64(2**64 - 1),
                     np.float32(0.5), Decimal("5"), Fraction(3, 1), 1 + 0j, np.bool_(True)]),
    st.floats(),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, ODD_TEXT, st.text(max_size=6), st.binary(max_size=3))
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.tuples(SCALARS, SCALARS),
    st.dictionaries(ODD_TEXT, SCALARS, max_size=2),
    st.lists(SCALARS, max_size=3).map(lambda xs: np.array(xs, dtype=object)),
    st.sampled_from([NC(), NC(type=[]), NC(ids=[101]), NC(type="KC"), NC(ids=[424242]), object(), np.array(5),
                     np.zeros((2, 2)), pd.Series([101, 102]), pd.DataFrame({"id": [101]}), pd.DataFrame({"x": [1]}),
                     {101}, range(100, 103), np.array([101, 102], dtype="uint64"), pd.Series([1.5])]),
)


def expected_id(v):
    """The id ``v`` stands for, or None when it is not a valid id (the documented rules, written out)."""
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    if isinstance(v, str):
        s = v.strip()
        if not s or any(c not in "0123456789" for c in s):
            return None
        v = int(s)
    elif isinstance(v, (int, np.integer)):
        v = int(v)
    elif isinstance(v, (float, np.floating, Fraction)):
        if v != v or v in (float("inf"), float("-inf")) or v != int(v):
            return None
        v = int(v)
    else:
        return None
    return v if 0 <= v <= INT64_MAX else None


@PROPERTY
@given(st.one_of(SCALARS, st.lists(SCALARS, max_size=5)))
def test_parse_ids_accepts_exactly_the_valid_ids(x):
    items = x if isinstance(x, list) else [x]
    wanted = [expected_id(v) for v in items]
    if None in wanted:
        first_bad = items[wanted.index(None)]
        with pytest.raises(errors.InvalidIdError) as info:
            parse_ids(x)
        assert repr(first_bad) in str(info.value) or repr(first_bad.decode("latin-1")) in str(info.value)
    else:
        assert parse_ids(x).tolist() == sorted(set(wanted))


CRITERIA_FIELDS = ["type", "instance", "status", "regex", "rois", "input_rois", "output_rois", "roi_req",
                   "min_roi_inputs", "min_roi_outputs", "min_pre", "min_post", "label", "typ", "bodyId",
                   "omit_rois", "materialization"]


def neuron_oracle(neurons: pd.DataFrame, kwargs: dict) -> list[int] | None:
    """Expected ids for the plain exact-match criteria, or None when the oracle does not cover ``kwargs``."""
    n = neurons[(neurons.id != 0) & neurons.is_neuron]
    for key, value in kwargs.items():
        if key in ("type", "instance", "status"):
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
                return None
            if key != "status" and any(guess_regex([v]) for v in values):  # regex=None reads these as patterns
                return None
            n = n[n[key].isin(values)]
        elif key in ("min_pre", "min_post") and type(value) is int and 0 <= value <= INT64_MAX:
            n = n[n[key.split("_")[1]] >= value]
        elif key == "omit_rois" and isinstance(value, bool):
            continue
        else:
            return None
    return sorted(n["id"])


@PROPERTY
@given(st.dictionaries(st.sampled_from(CRITERIA_FIELDS), VALUES, max_size=3))
def test_fetch_neurons_answers_or_raises(toy_ds, toy_tables, kwargs):
    try:
        neurons, roi_counts = toy_ds.fetch_neurons(**kwargs)
    except errors.ConnectomixError:
        return
    assert neurons["id"].dtype == "int64" and (neurons["id"] != 0).all()
    expected = neuron_oracle(toy_tables["neurons"], kwargs)
    if expected is not None:
        assert neurons["id"].tolist() == expected


@PROPERTY
@given(st.text(alphabet="()[]{}*+?.|^$\\dwsbpPLN-aAK0,:<>=!_", max_size=8), st.sampled_from(["type", "instance"]))
def test_regex_criteria_answer_or_raise(toy_ds, toy_tables, pattern, field):
    """A pattern either selects what Python's full match selects (RE2 and Python agree there) or is refused."""
    try:
        neurons, _ = toy_ds.fetch_neurons(**{field: pattern}, regex=True)
    except errors.ConnectomixError:
        return
    n = toy_tables["neurons"]
    n = n[(n.id != 0) & n.is_neuron & n[field].notna()]
    expected = sorted(n.loc[[re.fullmatch(pattern, v) is not None for v in n[field]], "id"])
    assert neurons["id"].tolist() == expected


@PROPERTY
@given(VALUES)
def test_fetch_neurons_positional_answers_or_raises(toy_ds, toy_tables, x):
    try:
        neurons, _ = toy_ds.fetch_neurons(x)
    except errors.ConnectomixError:
        return
    known = set(toy_tables["neurons"]["id"]) - {0}
    assert set(neurons["id"]) <= known


def side_values():
    ids = st.lists(st.sampled_from([101, 102, 103, 104, 105, 109, 901, 424242, 0]), max_size=4)
    return st.one_of(st.none(), ids, VALUES)


CONNECTIVITY_KW = {"by_roi": VALUES, "rois": st.one_of(VALUES, st.lists(st.sampled_from(["A", "B", "C(R)"]))),
                   "min_weight": st.one_of(st.integers(0, 8), VALUES), "include_autapses": VALUES,
                   "materialization": VALUES, "batch_size": st.one_of(st.integers(1, 3), VALUES),
                   "progress": st.just(False), "by": st.one_of(st.sampled_from(["neuron", "type"]), VALUES)}


@PROPERTY
@given(side_values(), side_values(), st.fixed_dictionaries({}, optional=CONNECTIVITY_KW))
def test_get_connectivity_answers_or_raises(toy_ds, toy_tables, sources, targets, kwargs):
    try:
        df = toy_ds.get_connectivity(sources, targets, **kwargs)
    except errors.ConnectomixError:
        return
    if kwargs.get("by", "neuron") == "type":
        return
    min_weight = kwargs.get("min_weight", 1)
    assert (df["weight"] >= max(min_weight, 1)).all()
    plain = set(kwargs) <= {"min_weight", "batch_size", "progress", "by"} and kwargs.get("by", "neuron") == "neuron"
    if plain and all(isinstance(s, list) and all(type(i) is int for i in s) for s in (sources, targets)
                     if s is not None):
        c = toy_tables["connections"]
        c = c[(c.pre != 0) & (c.post != 0) & (c.pre != c.post)]
        if sources is not None:
            c = c[c.pre.isin(sources)]
        if targets is not None:
            c = c[c.post.isin(targets)]
        total = c.groupby(["pre", "post"])["weight"].sum()
        total = total[total >= max(min_weight, 1)]
        got = df.set_index(["pre", "post"])["weight"].sort_index()
        assert got.to_dict() == total.sort_index().to_dict()


SYNAPSE_KW = {"pre": VALUES, "post": VALUES, "min_score": st.one_of(st.floats(), st.integers(), VALUES),
              "rois": VALUES, "include_autapses": VALUES, "materialization": VALUES,
              "batch_size": VALUES, "progress": st.just(False), "attach": VALUES, "max_distance": VALUES,
              "clean": VALUES}


@PROPERTY
@given(side_values(), st.fixed_dictionaries({}, optional=SYNAPSE_KW))
def test_get_synapses_answers_or_raises(toy_ds, toy_tables, x, kwargs):
    try:
        df = toy_ds.get_synapses(x, **kwargs)
    except errors.ConnectomixError:
        return
    assert df["synapse_id"].is_unique and ((df["pre"] != 0) & (df["post"] != 0)).all()
    if kwargs.get("min_score") is not None:
        assert (df["score"] >= kwargs["min_score"]).all()
    if not kwargs and isinstance(x, list) and all(type(i) is int for i in x):
        s = toy_tables["synapses"]
        s = s[(s.pre.isin(x) | s.post.isin(x)) & (s.pre != 0) & (s.post != 0) & (s.pre != s.post)]
        assert sorted(df["synapse_id"]) == sorted(s["synapse_id"])


@PROPERTY
@given(side_values())
def test_get_skeletons_and_update_ids_answer_or_raise(toy_ds, x):
    try:
        skeletons = toy_ds.get_skeletons(x)
    except errors.ConnectomixError:
        pass
    else:
        assert {int(n.id) for n in skeletons} <= {101, 102}
    with pytest.raises(errors.ConnectomixError):  # release ids never change: always UnsupportedOperation
        toy_ds.update_ids(x)


@PROPERTY
@given(VALUES, st.sampled_from(["type", "instance", "status", "rois", "input_rois", "output_rois", "roi_req",
                                "label", "regex", "min_pre", "min_roi_inputs"]))
def test_neuron_criteria_accepts_or_raises(value, field):
    try:
        crit = NC(**{field: value})
    except errors.ConnectomixError:
        return
    stored = getattr(crit, field)
    if field in ("type", "instance", "status", "rois", "input_rois", "output_rois") and stored is not None:
        assert isinstance(stored, tuple) and all(isinstance(v, str) and v for v in stored)
    if field in ("min_pre", "min_roi_inputs"):
        assert type(stored) is int and 0 <= stored <= INT64_MAX


URI_PARTS = st.sampled_from(["", "?", "?threads=1", "?threads=x", "?max_workers=2.5", "?max_workers=٢",
                             "?bogus=1", "?token=SECRET-T0KEN", "#frag", "?a=1&a=2", "?&", "?=x", "%3F", "%zz"])


@PROPERTY
@given(st.one_of(st.sampled_from(["toy", "sample", "nosuch", "release:///nonexistent", "release://", "://x",
                                  "Release://x", "1x://y", "nosuchscheme://x?token=SECRET-T0KEN"]), st.text(max_size=12)),
       URI_PARTS, st.fixed_dictionaries({}, optional={"max_workers": VALUES, "cache": st.sampled_from([False, None, 0]),
                                                       "threads": VALUES, "memory_limit": VALUES}))
def test_open_answers_or_raises(toy_release, name, tail, options):
    target = f"release://{toy_release}{tail}" if name == "toy" else name + tail
    try:
        ds = connectomix.open(target, **options)
    except errors.ConnectomixError as exc:
        assert "SECRET-T0KEN" not in str(exc)
        return
    with ds:
        assert isinstance(ds.max_workers, int) and ds.max_workers >= 1
        ds.fetch_neurons(NC(ids=[101]) if name == "toy" else NC(), omit_rois=True)


@PROPERTY
@given(st.sampled_from(["fetch_neurons", "get_connectivity", "get_synapses", "get_skeletons", 5]),
       st.lists(side_values(), max_size=2), st.fixed_dictionaries({}, optional={"max_workers": VALUES,
                                                                                  "min_weight": VALUES}))
def test_compare_answers_or_raises(toy_ds, method, args, kwargs):
    try:
        df = connectomix.compare({"a": toy_ds, "b": toy_ds}, method, *args, **kwargs)
    except errors.ConnectomixError:
        return
    assert list(df.columns[:1]) == ["dataset"] and set(df["dataset"]) <= {"a", "b"}


# -- properties: the command line -------------------------------------------------------------------------

CLI_VALUES = st.one_of(ODD_TEXT, st.text(max_size=6), st.sampled_from(["101", "101,102", "type=KC", "type~K.*",
                                                                      "status~x", "0.9", "5", "-5", "A", "C(R)"]))
CLI_OPTIONS = st.sampled_from(["--type", "--ids", "--instance", "--status", "--rois", "--min-pre", "--min-post",
                               "--sources", "--targets", "--min-weight", "--min-score", "--max-rows", "-o",
                               "--regex", "--by-roi", "--include-autapses", "--no-pre", "--no-post",
                               "--roi-counts", "--bogus", "--help"])


@PROPERTY
@given(st.sampled_from(["neurons", "connectivity", "synapses", "datasets", "backends", "config-path", "convert",
                        "bogus", "--version"]),
       st.sampled_from(["toy", "nosuch", "release:///nonexistent", "release://x?", "", "-x",
                        "cave://s?token=SECRET-T0KEN&x=1"]),
       st.lists(st.tuples(CLI_OPTIONS, CLI_VALUES), max_size=3),
       st.sampled_from([None, "missing/x.csv", ".", "x.xlsx", "out.csv", "out.parquet"]))
def test_cli_answers_or_says_one_line(toy_release, tmp_path_factory, command, dataset, options, output):
    out_dir = tmp_path_factory.mktemp("cli")
    argv = [command, f"release://{toy_release}" if dataset == "toy" else dataset]
    if command == "convert":  # never a real conversion: the source does not exist
        argv = ["convert", "neuprint-csv", str(out_dir / "no-source"), str(out_dir / "dest")]
    for flag, value in options:
        argv += [flag] if flag.startswith("--") and flag in ("--regex", "--by-roi", "--include-autapses",
                                                            "--no-pre", "--no-post", "--roi-counts",
                                                            "--help") else [flag, value]
    if output is not None:
        argv += ["-o", str(out_dir / output)]
    code, out, err = run_cli(argv)
    assert "SECRET-T0KEN" not in out + err
    assert "Traceback" not in err and "internal error" not in err, err
    if code != 0:
        assert_one_line_error(code, err)
