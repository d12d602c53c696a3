"""The embedded sample: its real parts equal the real data, its synthetic parts are labelled, it rebuilds identically."""

import json
from pathlib import Path

import navis
import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix_release import build_sample
from connectomix_release.plugin import SAMPLE_DIR

PN_TABLE = build_sample.PN_TABLE


@pytest.fixture(scope="module")
def tables():
    return {name: pd.read_parquet(SAMPLE_DIR / f"{name}.parquet")
            for name in ("neurons", "synapses", "connections", "roi_counts")}


@pytest.fixture(scope="module")
def da1():
    return navis.example_neurons()


def test_every_real_site_equals_the_navis_connector_in_nm(tables, da1):
    syn = tables["synapses"]
    for n in da1:
        c = n.connectors
        for side in ("pre", "post"):
            real = c[c["type"] == side]
            rows = syn[(syn[side] == int(n.id)) & (syn["real_side"] == side)]
            got = np.unique(rows[[f"{side}_x", f"{side}_y", f"{side}_z"]].to_numpy(), axis=0)
            expected = np.unique(real[["x", "y", "z"]].to_numpy() * 8.0, axis=0)
            np.testing.assert_array_equal(got, expected)
            # one row per real PSD; T-bars may be polyadic (several rows, same site)
            if side == "post":
                assert len(rows) == len(real)
            assert set(np.round(rows["score"], 6)) == set(np.round(real["confidence"], 6))


def test_da1_totals_and_roi_counts_are_the_real_ones(tables, da1):
    pns = pd.read_csv(PN_TABLE).set_index("bodyid")
    neurons = tables["neurons"].set_index("id")
    rc = tables["roi_counts"]
    for n in da1:
        i = int(n.id)
        assert neurons.loc[i, "pre"] == pns.loc[i, "pre"] == (n.connectors.type == "pre").sum()
        assert neurons.loc[i, "post"] == pns.loc[i, "post"] == (n.connectors.type == "post").sum()
        mine = rc[rc.id == i].set_index("roi")
        real = n.connectors.assign(roi=n.connectors.roi.fillna("NotPrimary")).groupby(["roi", "type"]).size()
        for (roi, kind), count in real.items():
            assert mine.loc[roi, kind] == count


def test_pn_table_rows_are_carried_over(tables):
    pns = pd.read_csv(PN_TABLE)
    real = tables["neurons"][~tables["neurons"]["synthetic"]].set_index("id").loc[pns["bodyid"]]
    assert len(real) == 379
    assert (real["type"].to_numpy() == pns["cell.type"].to_numpy()).all()
    assert (real["instance"].fillna("").to_numpy() == pns["name"].fillna("").to_numpy()).all()


def test_connections_are_exactly_the_grouped_synapses(tables):
    syn = tables["synapses"]
    derived = (syn.assign(roi=syn.roi.fillna("NotPrimary")).groupby(["pre", "post", "roi"]).size()
               .rename("weight").reset_index())
    got = tables["connections"].sort_values(["pre", "post", "roi"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, derived.sort_values(["pre", "post", "roi"]).reset_index(drop=True),
                                  check_dtype=False)


def test_synthetic_parts_are_labelled_everywhere(tables):
    manifest = json.loads((SAMPLE_DIR / "manifest.json").read_text())
    assert set(manifest["synthetic"]) == {"synapses", "connections", "neurons", "roi_counts"}
    readme = (SAMPLE_DIR / "README.md").read_text()
    assert "SYNTHETIC" in readme and "Scheffer" in readme and "Schlegel" in readme
    fake = tables["neurons"][tables["neurons"]["synthetic"]]
    assert len(fake) == 175 and (fake["status"] == "synthetic").all()
    assert fake["type"].dropna().str.endswith("(synthetic)").all()
    assert (~fake["is_neuron"]).sum() == 25
    ds = connectomix.open("sample")
    assert ds.get_synapses(1734350788).attrs["synthetic"] == manifest["synthetic"]


def test_no_autapses_no_background_unique_ids(tables):
    syn, neurons = tables["synapses"], tables["neurons"]
    assert not (syn.pre == syn.post).any() and not ((syn.pre == 0) | (syn.post == 0)).any()
    assert syn.synapse_id.is_unique and neurons.id.is_unique and (neurons.id > 0).all()
    manifest = json.loads((SAMPLE_DIR / "manifest.json").read_text())
    assert set(syn.roi.dropna()) <= set(manifest["primary_rois"])


def test_skeletons_are_the_navis_ones_in_nm(da1):
    for n in da1:
        sk = navis.read_swc(SAMPLE_DIR / "skeletons" / f"{int(n.id)}.swc")
        assert len(sk.nodes) == len(n.nodes)
        for axis in ("x", "y", "z", "radius"):
            np.testing.assert_allclose(sk.nodes.sort_values("node_id")[axis].to_numpy(),
                                       n.nodes.sort_values("node_id")[axis].to_numpy() * 8, atol=0.01)


def test_builder_is_deterministic_and_matches_the_shipped_files(tmp_path):
    rebuilt = build_sample.build(tmp_path / "sample")
    for name in ("neurons", "synapses", "connections", "roi_counts"):
        pd.testing.assert_frame_equal(pd.read_parquet(rebuilt / f"{name}.parquet"),
                                      pd.read_parquet(SAMPLE_DIR / f"{name}.parquet"))
    assert (rebuilt / "manifest.json").read_text() == (SAMPLE_DIR / "manifest.json").read_text()
    assert sorted(p.name for p in (rebuilt / "skeletons").iterdir()) == sorted(
        p.name for p in (SAMPLE_DIR / "skeletons").iterdir())
