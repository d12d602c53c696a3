"""Cross-dataset comparison, type-level connectivity and the comparison plot."""

import matplotlib
import pandas as pd
import pytest

import connectomix
from connectomix import NC, errors, schema

matplotlib.use("Agg")


@pytest.fixture
def uri(toy_release):
    return f"release://{toy_release}"


def test_type_connectivity_sums_neuron_weights(toy):
    neuron_level = toy.get_connectivity(sources=NC(type="PN_a"), min_weight=2)
    by_type = toy.get_connectivity(sources=NC(type="PN_a"), min_weight=2, by="type")
    assert list(by_type.columns) == list(schema.TYPE_CONNECTIVITY.names)
    assert by_type["weight"].sum() == neuron_level["weight"].sum()
    types, _ = toy.fetch_neurons(NC(ids=neuron_level["post"].unique()), omit_rois=True)
    kc = types[types["type"] == "KC"]["id"]
    kc_edges = neuron_level[neuron_level["post"].isin(kc)]
    row = by_type[(by_type.pre_type == "PN_a") & (by_type.post_type == "KC")].iloc[0]
    assert row.weight == kc_edges.weight.sum() and row.n_post == kc_edges.post.nunique()
    assert row.n_pairs == len(kc_edges)
    assert schema.UNTYPED in set(by_type.post_type)  # segments 901/902 have no type
    assert by_type.attrs["table"] == "type_connectivity"


def test_type_connectivity_by_roi(toy):
    t = toy.get_connectivity(sources=[101, 102], by_roi=True, by="type")
    assert "roi" in t.columns
    assert t["weight"].sum() == toy.get_connectivity(sources=[101, 102])["weight"].sum()


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
