"""Comparative connectomics on constructed release folders with known answers.

Every expected number below is written by hand from the little wiring diagrams
in the tests (never computed with connectomix.comparative).
"""

import math
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.comparative import cluster, cosine_similarity, make_keys, match_types, parse_keys
from connectomix_release.writer import make_manifest, write_release

matplotlib.use("Agg")


def release(folder, name, neurons, edges):
    """A SYNTHETIC release folder: ``neurons`` = [(id, type, side, {extra columns})], ``edges`` = [(pre, post, w)].

    ``upstream``/``downstream`` are left out, so the release backend sums them from the edges (all of
    them, below any threshold too).
    """
    rows = []
    for nid, type_, side, extra in neurons:
        rows.append({"id": nid, "type": type_, "instance": None, "status": "Traced", "side": side, "pre": None,
                     "post": None, "is_neuron": True, **extra})
    df = pd.DataFrame(rows)
    cross = [c for c in ("hemibrain_type", "flywire_type") if c in df.columns]
    df = df.astype({"type": "string", "instance": "string", "status": "string", "side": "string", "pre": "Int64",
                    "post": "Int64", **{c: "string" for c in cross}})
    conns = pd.DataFrame(edges, columns=["pre", "post", "weight"]).assign(roi="NotPrimary")
    path = write_release(folder / name, manifest=make_manifest(name=name, version="v1",
                                                               synthetic={"*": "constructed test case"}),
                         neurons=df, connections=conns[["pre", "post", "roi", "weight"]])
    return f"release://{path}"


def pair(sim, a, b):
    """The cosine of queries ``a`` and ``b`` in a tidy similarity table."""
    hit = sim[(sim["query_a"] == a) & (sim["query_b"] == b)]
    assert len(hit) == 1, (a, b)
    return float(hit["cosine"].iloc[0])


# -- the wiring used by several tests -------------------------------------------------------------
# Q (id 1, right) -> P (10) weight 6, -> R (11) weight 4, -> T (12) weight 2 (below min_weight=3);
# S (13) -> Q weight 5; the autapse Q -> Q (weight 9) never counts.
# Total output of Q = 6 + 4 + 2 = 12, total input = 5.
BASE_NEURONS = [(1, "Q", "right", {}), (10, "P", "right", {}), (11, "R", "left", {}), (12, "T", "right", {}),
                (13, "S", None, {})]
BASE_EDGES = [(1, 10, 6), (1, 11, 4), (1, 12, 2), (13, 1, 5), (1, 1, 9)]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The BASE wiring as one release folder (shared: the tests only read it)."""
    return release(tmp_path_factory.mktemp("base"), "base", BASE_NEURONS, BASE_EDGES)


def test_identical_wiring_similarity_one_and_profile_values(tmp_path, base):
    a = base
    b = release(tmp_path, "b", BASE_NEURONS, BASE_EDGES)  # a separate copy: two datasets, identical wiring
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=3)
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(1.0)
    prof = c.profiles[c.profiles["dataset"] == "a"].set_index(["direction", "partner_type"])
    # outputs: P 6/12, R 4/12; T's weight 2 is below the threshold in both datasets; input S 5/5
    assert prof.loc[("output", "P"), "weight"] == 6 and prof.loc[("output", "P"), "fraction"] == pytest.approx(0.5)
    assert prof.loc[("output", "R"), "fraction"] == pytest.approx(4 / 12)
    assert ("output", "T") not in prof.index
    assert prof.loc[("input", "S"), "fraction"] == pytest.approx(1.0)
    assert prof.loc[("output", "P"), "total"] == 12 and prof.loc[("input", "S"), "total"] == 5
    # sides: Q right; P right -> ipsi, R left -> contra, S without side -> unknown
    assert prof.loc[("output", "P"), "partner_side"] == "ipsi"
    assert prof.loc[("output", "R"), "partner_side"] == "contra"
    assert prof.loc[("input", "S"), "partner_side"] == "unknown"
    assert c.profiles.attrs["min_weight"] == 3 and c.profiles.attrs["threshold_op"] == ">="
    assert set(c.profiles.attrs["datasets"]) == {"a", "b"}
    assert "before the threshold" in c.profiles.attrs["normalisation"]
    assert c.neurons.set_index("key").loc["a:1", ["total_input", "total_output"]].tolist() == [5, 12]
    assert c.unmatched.empty


def test_disjoint_partners_similarity_zero(tmp_path):
    neurons = [(1, "Q", "right", {}), (10, "P", "right", {}), (11, "R", "right", {})]
    # a: Q -> P and R -> Q;  b: Q -> R and P -> Q. P and R are in both, so they are matched,
    # but the features (output P, input R) and (output R, input P) share nothing.
    a = release(tmp_path, "a", neurons, [(1, 10, 5), (11, 1, 5)])
    b = release(tmp_path, "b", neurons, [(1, 11, 5), (10, 1, 5)])
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1)
    assert c.mapping["matched"].all()
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(0.0)
    assert pair(c.similarity, "a:Q_R", "a:Q_R") == pytest.approx(1.0)


def test_partial_overlap_known_cosine(tmp_path):
    # a: Q -> P 6, Q -> R 4 (fractions .6, .4);  b: Q -> P 6 only (fraction 1); R is in b too, as an input
    # of Q (so it is matched), and only outputs are compared
    a = release(tmp_path, "a", [(1, "Q", "right", {}), (10, "P", "right", {}), (11, "R", "right", {})],
                [(1, 10, 6), (1, 11, 4)])
    b = release(tmp_path, "b", [(1, "Q", "right", {}), (10, "P", "right", {}), (11, "R", "right", {})],
                [(1, 10, 6), (11, 1, 1)])
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1, partners="outputs")
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(0.6 / math.sqrt(0.6 ** 2 + 0.4 ** 2))
    w = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1, partners="outputs", value="weight")
    assert pair(w.similarity, "a:Q_R", "b:Q_R") == pytest.approx(6 / math.sqrt(36 + 16))


def test_renamed_type_matched_through_the_cross_type_column(tmp_path, base):
    hb = base
    # the "FlyWire" side names every type differently and records the hemibrain name (as FlyWire's hemibrain_type)
    renamed = [(i, t.lower() + "_fw", s, {"hemibrain_type": t}) for i, t, s, _ in BASE_NEURONS]
    fw = release(tmp_path, "fw", renamed, BASE_EDGES)
    c = connectomix.compare_types({"hb": hb, "fw": fw}, type="Q", min_weight=3,
                                  families={"hb": "hemibrain", "fw": "flywire"})
    # the query type is found in fw through hemibrain_type (fw has no neuron of type "Q")
    assert c.neurons.set_index("key").loc["fw:1", "type"] == "q_fw"
    row = c.mapping.set_index(["dataset", "type"]).loc[("fw", "p_fw")]
    assert row["matched_type"] == "P" and bool(row["matched"]) and "hemibrain_type of fw" in row["evidence"]
    assert pair(c.similarity, "hb:Q_R", "fw:Q_R") == pytest.approx(1.0)
    assert c.unmatched.empty
    # without the families the cross column points nowhere: nothing is matched, nothing compared
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", errors.ConnectomixWarning)
        d = connectomix.compare_types({"hb": hb, "fw": fw}, type=["Q", "q_fw"], min_weight=3,
                                      families={"hb": None, "fw": None})
    assert not d.mapping["matched"].any()
    assert math.isnan(pair(d.similarity, "hb:Q_R", "fw:q_fw_R"))


def test_renamed_type_matched_through_user_synonyms_many_to_one(tmp_path, base):
    hb = base
    # b splits P into two types Pa and Pb (3 + 3 = hb's 6) and calls R "Arr"
    neurons = [(1, "Q", "right", {}), (10, "Pa", "right", {}), (14, "Pb", "right", {}), (11, "Arr", "left", {}),
               (12, "T", "right", {}), (13, "S", None, {})]
    edges = [(1, 10, 3), (1, 14, 3), (1, 11, 4), (1, 12, 2), (13, 1, 5)]
    b = release(tmp_path, "b", neurons, edges)
    plain = connectomix.compare_types({"hb": hb, "b": b}, type="Q", min_weight=3)
    assert set(plain.unmatched["type"]) == {"P", "R", "Pa", "Pb", "Arr"}
    # only S is matched: the profiles compare on the input from S alone
    assert pair(plain.similarity, "hb:Q_R", "b:Q_R") == pytest.approx(1.0)
    assert plain.similarity.attrs["left_out"]["hb:Q_R"] == pytest.approx(6 / 12 + 4 / 12)
    table = pd.DataFrame({"dataset": ["b", "b", "b"], "type": ["Pa", "Pb", "Arr"], "matched_type": ["P", "P", "R"]})
    for synonyms in (table, {"b:Pa": "P", "b:Pb": "P", "Arr": "R"}):
        c = connectomix.compare_types({"hb": hb, "b": b}, type="Q", min_weight=3, synonyms=synonyms)
        assert c.unmatched.empty
        prof = c.profiles[c.profiles["dataset"] == "b"].set_index(["direction", "partner_type"])
        assert prof.loc[("output", "P"), "weight"] == 6 and prof.loc[("output", "P"), "n_partners"] == 2
        assert pair(c.similarity, "hb:Q_R", "b:Q_R") == pytest.approx(1.0)


def test_type_present_in_one_dataset_is_reported_and_kept(tmp_path, base):
    a = release(tmp_path, "a", BASE_NEURONS + [(20, "ONLY_A", "right", {})], BASE_EDGES + [(1, 20, 3)])
    b = base
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=3)
    un = c.unmatched
    assert un[["dataset", "type"]].values.tolist() == [["a", "ONLY_A"]]
    assert un["n_neurons"].tolist() == [1] and un["n_datasets"].tolist() == [1]
    row = c.profiles[(c.profiles["dataset"] == "a") & (c.profiles["partner_type"] == "ONLY_A")]
    assert len(row) == 1 and not row["matched"].iloc[0] and row["fraction"].iloc[0] == pytest.approx(3 / 15)
    # left out of the similarity only, and said so
    assert c.similarity.attrs["left_out"]["a:Q_R"] == pytest.approx(3 / 15)
    # a's outputs P 6/15, R 4/15 and input 1; b's P 6/12, R 4/12 and input 1: proportional outputs, not equal
    va = np.array([1.0, 6 / 15, 4 / 15])
    vb = np.array([1.0, 6 / 12, 4 / 12])
    expected = va @ vb / (np.sqrt(va @ va) * np.sqrt(vb @ vb))
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(expected)
    everything = cosine_similarity(c.profiles, matched_only=False)
    assert everything.attrs["left_out"]["a:Q_R"] == 0


def test_query_type_in_one_dataset_only_warns_and_is_named(tmp_path, base):
    a = base
    b = release(tmp_path, "b", [(2, "Other", "right", {}), (10, "P", "right", {})], [(2, 10, 5)])
    with pytest.warns(errors.ConnectomixWarning, match=r"no query neurons in dataset\(s\) \['b'\]"):
        c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=3)
    assert c.attrs["no_query_neurons"] == ["b"]
    assert set(c.profiles["dataset"]) == {"a"}
    with pytest.raises(errors.InvalidArgumentError, match="no query neurons"):
        connectomix.compare_types({"a": a, "b": b}, type="Nope", min_weight=3)


def test_keys_and_by_neuron(tmp_path):
    a = release(tmp_path, "a", BASE_NEURONS + [(2, "Q", "right", {})], BASE_EDGES + [(2, 10, 6), (2, 11, 4)])
    c = connectomix.compare_types({"a": a, "b": a}, ids="a:1, a:2 b:1", by="neuron", min_weight=3)
    assert c.neurons["key"].tolist() == ["a:1", "a:2", "b:1"]
    # 1 has the input from S, 2 has not: outputs equal (P .5, R 1/3 of 12 and of 10: .6, .4 -> not equal)
    v1 = np.array([1.0, 6 / 12, 4 / 12])
    v2 = np.array([0.0, 6 / 10, 4 / 10])
    assert pair(c.similarity, "a:1", "a:2") == pytest.approx(v1 @ v2 / np.sqrt((v1 @ v1) * (v2 @ v2)))
    assert pair(c.similarity, "a:1", "b:1") == pytest.approx(1.0)
    linkage, order = cluster(c.similarity)
    assert linkage.shape == (2, 4) and set(order) == {"a:1", "a:2", "b:1"}
    # a:1 and b:1 (identical) are joined first, at distance 0
    assert {order[0], order[1]} == {"a:1", "b:1"} or {order[1], order[2]} == {"a:1", "b:1"}
    assert linkage[0, 2] == pytest.approx(0.0)


def test_parse_keys():
    assert {k: v.tolist() for k, v in parse_keys(["hb:5", "fw:7", "hb:5", "hb:6"]).items()} == {"hb": [5, 6],
                                                                                                  "fw": [7]}
    assert make_keys("hb", np.array([5, 6])) == ["hb:5", "hb:6"]
    for bad in ("hb5", "hb:-1", "hb:abc", "hb:0", ":5", "hb:99999999999999999999"):
        with pytest.raises(errors.InvalidIdError, match="label"):
            parse_keys([bad])
    with pytest.raises(errors.InvalidArgumentError, match=r"the datasets are \['hb'\]"):
        parse_keys("fw:1", labels=["hb"])


def test_match_types_conflicting_synonyms_and_comma_types():
    hb = pd.DataFrame({"type": ["PS008", "PS009", "X"]})
    fw = pd.DataFrame({"type": ["PS008_fw"], "hemibrain_type": ["PS008,PS009"]})
    m = match_types({"hb": hb, "fw": fw}, families={"hb": "hemibrain", "fw": "flywire"}, match_names=False)
    got = dict(zip(m["type"], m["matched_type"]))
    assert got == {"PS008": "PS008,PS009", "PS009": "PS008,PS009", "PS008_fw": "PS008,PS009", "X": "X"}
    with pytest.raises(errors.InvalidArgumentError, match="one name per group"):
        match_types({"hb": hb, "fw": fw}, families={"hb": "hemibrain", "fw": "flywire"},
                    synonyms={"hb:PS008": "A", "hb:PS009": "B"})
    with pytest.raises(errors.InvalidArgumentError, match="the datasets are"):
        match_types({"hb": hb}, synonyms=pd.DataFrame({"dataset": ["zz"], "type": ["X"], "matched_type": ["Y"]}))
    with pytest.raises(errors.InvalidArgumentError, match="family of 'hb'"):
        match_types({"hb": hb}, families={"hb": "hemibrian"})


def test_bad_arguments(tmp_path, base):
    a = base
    for kwargs, match in (({"by": "cell"}, "by must be"), ({"min_weight": 0}, "min_weight"),
                          ({"partners": "in"}, "partners must be"), ({"type": {"zz": "Q"}}, "names dataset"),
                          ({"type": None}, "give type= and/or ids=")):
        args = {"type": "Q", **kwargs}
        with pytest.raises(errors.InvalidArgumentError, match=match):
            connectomix.compare_types({"a": a}, **args)
    with pytest.raises(errors.InvalidArgumentError, match="labels must be identifiers"):
        connectomix.compare_types({"a b": a}, type="Q")


def test_plots_are_labelled(tmp_path, base):
    from connectomix import plot

    a = base
    b = release(tmp_path, "b", [(i, t, None, x) for i, t, _, x in BASE_NEURONS], BASE_EDGES)  # b knows no sides
    c = connectomix.compare_types({"a": a, "b": b}, ids="a:1 b:1", by="neuron", min_weight=3)
    fig = c.heatmap()
    texts = " ".join(t.get_text() for ax in fig.axes for t in [ax.title, ax.xaxis.label, ax.yaxis.label]
                     + ax.get_xticklabels() + ax.get_yticklabels())
    assert "cosine similarity" in texts and "a:1" in texts and "b:1" in texts and "dataset" in texts
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["dataset: a", "dataset: b", "side: right", "side: unknown"]
    ax = plot.partner_profiles(c.profiles, direction="output")
    assert "fraction of" in ax.get_xlabel() and ">= 3" in ax.get_xlabel()
    assert {t.get_text() for t in ax.get_yticklabels()} == {"P", "R"}
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"a:1", "b:1"}
    fig.savefig(tmp_path / "heatmap.png")
    ax.figure.savefig(tmp_path / "profiles.png")


def test_compare_keeps_integer_columns_integer(tmp_path):
    """Issue 12 papercut: a native integer column without values in one dataset turned the stack into floats."""
    def rel(name, values):
        neurons = pd.DataFrame({"id": [1, 2], "type": ["A", "B"], "instance": None, "status": None, "pre": None,
                                "post": None, "is_neuron": True, "n_arbors": pd.array(values, dtype="Int64")})
        neurons = neurons.astype({"type": "string", "instance": "string", "status": "string", "pre": "Int64",
                                  "post": "Int64"})
        conns = pd.DataFrame({"pre": [1], "post": [2], "roi": ["NotPrimary"], "weight": [3]})
        return "release://" + str(write_release(tmp_path / name, manifest=make_manifest(
            name=name, version="v1", synthetic={"*": "test"}), neurons=neurons, connections=conns))

    t = connectomix.compare({"a": rel("a", [3, 4]), "b": rel("b", [None, None])}, "fetch_neurons", omit_rois=True)
    assert t["n_arbors"].dtype == "Int64"
    assert t["n_arbors"].tolist()[:2] == [3, 4] and t["n_arbors"].isna().tolist() == [False, False, True, True]
    assert t["id"].dtype == "int64"


def test_type_elsewhere_in_a_dataset_is_matched_with_weight_zero(tmp_path):
    """A partner type of one dataset that the other has, but not as a partner, is matched (cocoa's 'existing')."""
    neurons = [(1, "Q", "right", {}), (10, "P", "right", {}), (11, "R", "right", {}), (12, "U", "right", {})]
    a = release(tmp_path, "a", neurons[:3], [(1, 10, 5)])                 # Q -> P; R unconnected
    b = release(tmp_path, "b", neurons, [(1, 11, 5), (1, 12, 5)])       # Q -> R, Q -> U; P unconnected
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1)
    m = c.mapping.set_index(["dataset", "type"])
    assert m.loc[("a", "R"), "matched"] and m.loc[("b", "P"), "matched"]
    # U is in b only: reported, and left out of the similarity
    assert c.unmatched[["dataset", "type"]].values.tolist() == [["b", "U"]]
    # features (output P, output R): a = (1, 0), b = (0, 1/2) -> 0 (before the look-up: P and R unmatched, NaN)
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(0.0)
    assert c.similarity.attrs["left_out"]["b:Q_R"] == pytest.approx(0.5)


def test_sides_split_queries_and_features(tmp_path):
    # a: Q (right) -> P (right) 4: ipsi.  b: Q (right) -> P (left) 4: contra.  Plus a left Q in a: Q2 -> P 2.
    a = release(tmp_path, "a", [(1, "Q", "right", {}), (2, "Q", "left", {}), (10, "P", "right", {})],
                [(1, 10, 4), (2, 10, 2)])
    b = release(tmp_path, "b", [(1, "Q", "right", {}), (10, "P", "left", {})], [(1, 10, 4)])
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1)
    assert sorted(c.profiles["query"].unique()) == ["a:Q_L", "a:Q_R", "b:Q_R"]
    sides = c.profiles.set_index("query")["partner_side"]
    assert sides["a:Q_R"] == "ipsi" and sides["a:Q_L"] == "contra" and sides["b:Q_R"] == "contra"
    # one feature (output P) when sides are not split: every profile is proportional -> 1
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(1.0)
    split = cosine_similarity(c.profiles, split_sides=True)
    assert pair(split, "a:Q_R", "b:Q_R") == pytest.approx(0.0)  # ipsi vs contra
    assert pair(split, "a:Q_L", "b:Q_R") == pytest.approx(1.0)  # both contra
    merged = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1, by_side=False)
    row = merged.profiles[merged.profiles["query"] == "a:Q"]
    assert row["n_query"].tolist() == [2, 2] and sorted(row["weight"].tolist()) == [2, 4]  # ipsi 4, contra 2
    assert row["total"].tolist() == [6, 6]


@pytest.mark.parametrize("partners, expected", [("inputs", 1.0), ("outputs", 0.0)])
def test_partners_option(tmp_path, partners, expected):
    # both: S -> Q 5 (input S); a: Q -> P 5, b: Q -> R 5; P and R exist in both
    neurons = [(1, "Q", "right", {}), (10, "P", "right", {}), (11, "R", "right", {}), (13, "S", "right", {})]
    a = release(tmp_path, "a", neurons, [(13, 1, 5), (1, 10, 5)])
    b = release(tmp_path, "b", neurons, [(13, 1, 5), (1, 11, 5)])
    c = connectomix.compare_types({"a": a, "b": b}, type="Q", min_weight=1, partners=partners)
    assert pair(c.similarity, "a:Q_R", "b:Q_R") == pytest.approx(expected)
    both = cosine_similarity(c.profiles)
    assert pair(both, "a:Q_R", "b:Q_R") == pytest.approx(0.5)  # (1, 1, 0) . (1, 0, 1) / (sqrt 2 sqrt 2)


def test_cosine_properties():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    weights = st.lists(st.integers(0, 20), min_size=4, max_size=4)

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(st.lists(weights, min_size=2, max_size=5))
    def check(rows):
        types = ["A", "B", "C", "D"]
        records = [{"dataset": "d", "query": f"d:{i}", "direction": "output", "partner_type": t,
                    "partner_side": "unknown", "weight": w, "fraction": float(w), "matched": True}
                   for i, row in enumerate(rows) for t, w in zip(types, row) if w]
        if not records:
            return
        s = cosine_similarity(pd.DataFrame(records), value="weight")
        m = s.pivot(index="query_a", columns="query_b", values="cosine")
        values = m.to_numpy()
        finite = ~np.isnan(values)
        assert np.allclose(values[finite], values.T[finite])  # symmetric
        assert ((values[finite] >= -1e-12) & (values[finite] <= 1 + 1e-12)).all()  # non-negative weights
        assert np.allclose(np.diag(values), 1.0)  # every listed query has a non-zero profile here
        # scaling a profile does not change it (cosine of the weights, by hand for the first two queries)
        u, v = np.array(rows[0], float), np.array(rows[1], float)
        if u.any() and v.any() and "d:0" in m.index and "d:1" in m.index:
            assert m.loc["d:0", "d:1"] == pytest.approx(u @ v / np.sqrt((u @ u) * (v @ v)))

    check()


def test_fetch_keys(tmp_path, base):
    from connectomix.comparative import fetch_keys

    b = release(tmp_path, "b", [(1, "Q_b", "left", {"hemibrain_type": "Q"}), (7, "Z", None, {})], [(1, 7, 1)])
    t = fetch_keys({"a": base, "b": b}, "b:7, a:13 a:1 b:1")
    assert t[["dataset", "key", "id", "type"]].values.tolist() == [
        ["a", "a:13", 13, "S"], ["a", "a:1", 1, "Q"], ["b", "b:7", 7, "Z"], ["b", "b:1", 1, "Q_b"]]
    assert t["hemibrain_type"].isna().tolist() == [True, True, True, False]
    with pytest.raises(errors.IdsNotFoundError) as info:
        fetch_keys({"a": base}, ["a:999"])
    assert "dataset 'a'" in " ".join(getattr(info.value, "__notes__", []))
    with pytest.raises(errors.InvalidArgumentError, match="names dataset 'zz'"):
        fetch_keys({"a": base}, ["zz:1"])


def test_a_type_name_with_regex_characters_is_matched_exactly():
    """Type names come from the data: 'VP1m+VP2_lvPN2' (a real hemibrain type in the sample) is a name, not a
    pattern (neuprint-python's guess would read the '+' as a quantifier and match nothing)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = connectomix.compare_types({"a": "sample", "b": "sample"}, type="VP1m+VP2_lvPN2", min_weight=1)
    assert set(c.neurons["type"]) == {"VP1m+VP2_lvPN2"}
    assert (c.neurons["dataset"] == "a").sum() == (c.neurons["dataset"] == "b").sum() == 4
