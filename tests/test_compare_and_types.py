"""Cross-dataset comparison, type-level connectivity and the comparison plot."""

import matplotlib
import pandas as pd
import pytest

import connectomix
from connectomix import NC, errors, schema
from connectomix.testing.conformance import ToyTruth

matplotlib.use("Agg")


@pytest.fixture
def uri(toy_release):
    return f"release://{toy_release}"


def test_type_connectivity_sums_neuron_weights(toy, toy_release):
    by_type = toy.get_connectivity(sources=NC(type="PN_a"), min_weight=2, by="type")
    assert list(by_type.columns) == list(schema.TYPE_CONNECTIVITY.names)
    # expected, straight from the release files with pandas (not with the code under test)
    truth = ToyTruth(toy_release)
    types = truth.neurons.set_index("id")["type"]
    edges = truth.edges([101, 102, 103], min_weight=2)
    edges["pre_type"] = edges["pre"].map(types).fillna(schema.UNTYPED)
    edges["post_type"] = edges["post"].map(types).fillna(schema.UNTYPED)
    expected = (edges.groupby(["pre_type", "post_type"], as_index=False)
                .agg(weight=("weight", "sum"), n_pre=("pre", "nunique"), n_post=("post", "nunique"),
                     n_pairs=("weight", "size")))
    got = by_type.sort_values(["pre_type", "post_type"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert by_type["weight"].is_monotonic_decreasing
    assert schema.UNTYPED in set(by_type.post_type)  # segments 901/902 have no type
    assert by_type.attrs["table"] == "type_connectivity"


def test_type_connectivity_by_roi(toy, toy_release):
    t = toy.get_connectivity(sources=[101, 102], by_roi=True, by="type")
    truth = ToyTruth(toy_release)
    c = truth.connections
    c = c[c.pre.isin([101, 102]) & (c.post != 0) & (c.pre != c.post)]
    types = truth.neurons.set_index("id")["type"]
    c = c.assign(pre_type=c.pre.map(types).fillna(schema.UNTYPED), post_type=c.post.map(types).fillna(schema.UNTYPED))
    expected = c.groupby(["pre_type", "post_type", "roi"])["weight"].sum()
    got = t.set_index(["pre_type", "post_type", "roi"])["weight"]
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_dtype=False, check_names=False)


def test_bad_by(toy):
    with pytest.raises(errors.InvalidArgumentError, match="by must be 'neuron' or 'type'"):
        toy.get_connectivity(sources=[101], by="cell")


def test_compare_labels_rows_and_keeps_provenance(uri, toy_release, config_file):
    config_file(f'[datasets.other]\nuri = "release://{toy_release}"\n')
    both = connectomix.compare({"first": uri, "second": "other"}, "fetch_neurons", type="KC")
    assert both["dataset"].tolist() == ["first"] * 3 + ["second"] * 3
    assert list(both.columns[:2]) == ["dataset", "id"]
    assert set(both.attrs["datasets"]) == {"first", "second"}
    single = connectomix.compare([uri], "get_synapses", [101])
    assert (single["dataset"] == uri).all()


def test_compare_raises_naming_the_failing_dataset(uri):
    with pytest.raises(errors.IdsNotFoundError) as err:
        connectomix.compare({"ok": uri, "bad": uri}, "get_connectivity", sources=[101, 999999])
    assert any("connectomix.compare" in note for note in err.value.__notes__)
    with pytest.raises(errors.InvalidArgumentError, match="method must be one of"):
        connectomix.compare([uri], "drop_everything")
    with pytest.raises(errors.InvalidArgumentError, match="unique"):
        connectomix.compare([uri, uri], "fetch_neurons")


def test_compare_partners_plot(uri):
    from connectomix.plot import compare_partners

    t = connectomix.compare({"a": uri, "b": uri}, "get_connectivity", sources=NC(type="PN_a"), by="type")
    ax = compare_partners(t, top=4)
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert len(labels) == 4 and labels[-1] == t.groupby("post_type")["weight"].sum().idxmax()
    widths = sorted(round(p.get_width(), 6) for p in ax.patches)
    assert pytest.approx(max(widths)) == (t[t.dataset == "a"].groupby("post_type")["weight"].sum()
                                         / t[t.dataset == "a"]["weight"].sum()).max()
    with pytest.raises(errors.InvalidArgumentError):
        compare_partners(pd.DataFrame({"x": [1]}))
