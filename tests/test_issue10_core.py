"""Issue 10 items 2, 3 (core side): neuron columns, annotation criteria and scores with one meaning.

Expected values come from the toy release's Parquet files read with pandas.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import NeuronCriteria as NC
from connectomix import errors, schema
from connectomix.dataset import Dataset
from connectomix.testing.toy import make_toy_release
from connectomix_release.backend import ReleaseBackend


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_release(tmp_path_factory.mktemp("issue10") / "toy")


@pytest.fixture(scope="module")
def ds(toy):
    with connectomix.open(f"release://{toy}", cache=False) as d:
        yield d


@pytest.fixture(scope="module")
def raw(toy):
    n = pd.read_parquet(toy / "neurons.parquet")
    return n[(n.id != 0) & n.is_neuron].reset_index(drop=True)


def _variant(toy, tmp_path, *, neurons=None, manifest=None):
    """A copy of the toy release with the neuron table and/or manifest changed."""
    import shutil

    dest = tmp_path / "variant"
    shutil.copytree(toy, dest)
    if neurons is not None:
        neurons(pd.read_parquet(dest / "neurons.parquet")).to_parquet(dest / "neurons.parquet", index=False)
    if manifest is not None:
        m = json.loads((dest / "manifest.json").read_text())
        manifest(m)
        (dest / "manifest.json").write_text(json.dumps(m))
    return dest


def test_core_columns_order_and_dtypes(ds):
    neurons, _ = ds.fetch_neurons(type="KC")
    assert list(neurons.columns[:12]) == ["id", "type", "instance", "status", "side", "class", "superclass", "nt",
                                          "pre", "post", "upstream", "downstream"]
    assert str(neurons["pre"].dtype) == "Int64" and str(neurons["upstream"].dtype) == "Int64"
    assert neurons["side"].dtype == "string" and neurons["lineage"].dtype == "string"  # native text too


def test_annotation_criteria_exact_regex_lists_and_class_keyword(ds, raw):
    got = ds.fetch_neurons(NC(side="left", class_="KC")).neurons
    assert got["id"].tolist() == raw[(raw.side == "left") & (raw["class"] == "KC")]["id"].tolist() == [106]
    got = ds.fetch_neurons(**{"class": ["ALLN", "MBON"]}).neurons
    assert got["id"].tolist() == raw[raw["class"].isin(["ALLN", "MBON"])]["id"].tolist()
    got = ds.fetch_neurons(nt="g.*", regex=True).neurons
    assert got["id"].tolist() == raw[raw.nt.fillna("").str.match("g.*$")]["id"].tolist()
    assert ds.fetch_neurons(superclass=[]).neurons.empty
    got = ds.fetch_neurons(hemibrain_type="KC.*", regex=True).neurons
    assert got["id"].tolist() == [104, 105]
    with pytest.raises(errors.InvalidArgumentError, match="'left', 'right', 'center'"):
        NC(side="L")
    with pytest.raises(errors.InvalidArgumentError, match="class_ or 'class'"):
        NC(class_="KC", **{"class": "KC"})


def test_connection_count_thresholds(ds, raw):
    value = int(sorted(raw.upstream)[3])
    got = ds.fetch_neurons(min_upstream=value).neurons
    assert got["id"].tolist() == raw[raw.upstream >= value]["id"].tolist() and value in got["upstream"].tolist()
    value = int(sorted(raw.downstream)[5])
    got = ds.fetch_neurons(min_downstream=value).neurons
    assert got["id"].tolist() == raw[raw.downstream >= value]["id"].tolist()


def test_a_column_the_dataset_lacks_is_refused_naming_its_columns(toy, tmp_path):
    folder = _variant(toy, tmp_path, neurons=lambda n: n.drop(columns=["nt"]))
    with connectomix.open(f"release://{folder}", cache=False) as d:
        assert "nt" not in d.info.neuron_columns
        with pytest.raises(errors.UnsupportedOperation, match=r"no 'nt' neuron column.*'superclass'"):
            d.fetch_neurons(nt="gaba")
        with pytest.raises(errors.UnsupportedOperation, match="'nt'"):
            d.get_connectivity(NC(nt="gaba"), None)
        assert d.fetch_neurons([101]).neurons["nt"].isna().all()  # <NA>, not a guess


def test_site_thresholds_refused_where_sites_are_unknown(toy, tmp_path):
    folder = _variant(toy, tmp_path, neurons=lambda n: n.assign(pre=pd.array([pd.NA] * len(n), dtype="Int64")))
    with connectomix.open(f"release://{folder}", cache=False) as d:
        with pytest.raises(errors.UnsupportedOperation, match="min_downstream"):
            d.fetch_neurons(min_pre=1)
        assert len(d.fetch_neurons(min_downstream=1).neurons)


def test_min_score_recommended(ds, toy, tmp_path):
    got = ds.get_synapses([101, 102], min_score="recommended", progress=False)
    numeric = ds.get_synapses([101, 102], min_score=0.5, progress=False)
    assert got["synapse_id"].tolist() == numeric["synapse_id"].tolist() and len(got)
    assert 0.5 in got["score"].tolist()  # the toy's threshold is >= 0.5: scores exactly at it are kept
    assert got.attrs["score"]["column"] == "confidence" and got.attrs["score"]["threshold"] == 0.5
    assert got.attrs["score"]["threshold_is_recommended"] is True
    assert numeric.attrs["score"]["threshold_is_recommended"] is False
    folder = _variant(toy, tmp_path, manifest=lambda m: m.pop("score"))
    with connectomix.open(f"release://{folder}", cache=False) as d:
        assert d.info.score is None
        with pytest.raises(errors.UnsupportedOperation, match="recommended"):
            d.get_synapses([101], min_score="recommended", progress=False)
        assert len(d.get_synapses([101], min_score=0.5, progress=False))  # native numbers still work
    with pytest.raises(errors.InvalidArgumentError, match="'recommended'"):
        ds.get_synapses([101], min_score="best")


def test_flywire_style_score_is_strictly_greater(toy, tmp_path):
    """A published ``> 50`` on integer scores is applied as ``>= 51`` (FlyWire's rule)."""
    def cleft(m):
        m["score_name"] = "cleft_score"
        m["score"] = {"column": "cleft_score", "scale": "integer", "recommended": 51, "op": ">", "source": "test"}
    folder = _variant(toy, tmp_path, manifest=cleft)
    syn = pd.read_parquet(folder / "synapses.parquet")
    syn["score"] = np.round(syn["score"] * 100)
    syn.to_parquet(folder / "synapses.parquet", index=False)
    with connectomix.open(f"release://{folder}", cache=False) as d:
        got = d.get_synapses([101], min_score="recommended", progress=False)
    assert got["score"].min() >= 51 and 50 not in got["score"].tolist()
    mine = syn[((syn.pre == 101) | (syn.post == 101)) & (syn.pre != syn.post) & (syn.pre != 0) & (syn.post != 0)]
    assert len(got) == int((mine.score > 50).sum())


def test_compare_keeps_integer_columns(toy, tmp_path):
    folder = _variant(toy, tmp_path, neurons=lambda n: n.assign(size=np.arange(len(n), dtype="int64")))
    out = connectomix.compare({"a": f"release://{folder}", "b": f"release://{toy}"}, "fetch_neurons", type="KC")
    assert str(out["size"].dtype) == "Int64" and str(out["upstream"].dtype) == "Int64"
    assert out.loc[out.dataset == "b", "size"].isna().all()
    assert str(out["pre"].dtype) == "Int64"


class _RecordingRelease(ReleaseBackend):
    queries: list = []

    def get_connectivity(self, query):
        type(self).queries.append(query)
        return super().get_connectivity(query)


def test_every_neuron_against_none_sends_ids(toy):
    """``get_connectivity(NC(), None)`` must not reach the backend as a query with no side at all."""
    with Dataset(_RecordingRelease(toy), cache=False) as d:
        d.get_connectivity(NC(), None, progress=False)
        d.get_connectivity(None, NC(), progress=False)
    assert _RecordingRelease.queries
    for q in _RecordingRelease.queries:
        assert q.sources is not None or q.targets is not None


def test_schema_neurons_columns():
    assert schema.NEURONS.names[4:12] == ("side", "class", "superclass", "nt", "pre", "post", "upstream",
                                          "downstream")
    assert [c.name for c in schema.NEURONS.optional][:4] == list(schema.CROSS_TYPES)
