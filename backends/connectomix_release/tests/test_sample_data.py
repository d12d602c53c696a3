"""The embedded sample: its real parts equal the real data, its synthetic parts are labelled, it rebuilds identically.

Reads the files with pandas only (no release backend), compares them with ``navis.example_neurons()`` and
the PN table ``S5_hemibrain_ALPN_meta.csv``.
"""

import json
from pathlib import Path

import navis
import numpy as np
import pandas as pd
import pytest

from connectomix.errors import DataFormatError
from connectomix_release import build_sample as bs

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample"
TABLES = ("neurons", "synapses", "connections", "roi_counts")
DA1 = (722817260, 754534424, 754538881, 1734350788, 1734350908)
XYZ_PRE, XYZ_POST = ["pre_x", "pre_y", "pre_z"], ["post_x", "post_y", "post_z"]


@pytest.fixture(scope="module")
def tables():
    return {name: pd.read_parquet(SAMPLE_DIR / f"{name}.parquet") for name in TABLES}


@pytest.fixture(scope="module")
def manifest():
    return json.loads((SAMPLE_DIR / "manifest.json").read_text())


@pytest.fixture(scope="module")
def da1():
    return sorted(navis.example_neurons(), key=lambda n: int(n.id))


@pytest.fixture(scope="module")
def pns():
    return pd.read_csv(bs.PN_TABLE)


def _plain(series):
    """Values as a list with None for every kind of missing value (NaN, pd.NA)."""
    return [None if pd.isna(v) else v for v in series.astype(object)]


def _real(n, kind):
    """The navis connectors of one kind, in nm, as the sample stores them."""
    c = n.connectors[n.connectors["type"] == kind]
    return pd.DataFrame({"x": c["x"] * 8.0, "y": c["y"] * 8.0, "z": c["z"] * 8.0,
                         "confidence": c["confidence"].astype(float), "roi": _plain(c["roi"]),
                         "connector_id": c["connector_id"].astype("int64")}, index=c.index)


def _sorted(df):
    return df.sort_values(list(df.columns)).reset_index(drop=True)


# -- the real parts ---------------------------------------------------------------------------------------


def test_inputs_are_the_expected_real_data(da1, pns):
    assert tuple(int(n.id) for n in da1) == DA1
    assert sum(len(n.connectors) for n in da1) == 14_836
    assert len(pns) == 379 and pns["bodyid"].is_unique


def test_every_real_psd_is_one_row_with_its_real_position_roi_and_confidence(tables, da1):
    syn = tables["synapses"]
    for n in da1:
        real = _real(n, "post")
        rows = syn[syn["post"] == int(n.id)]
        assert set(rows["real_side"]) <= {"post", "both"}  # no invented PSD on a DA1 lPN
        got = pd.DataFrame({"x": rows["post_x"], "y": rows["post_y"], "z": rows["post_z"],
                            "confidence": rows["post_score"], "roi": _plain(rows["roi"])}, index=rows.index)
        pd.testing.assert_frame_equal(_sorted(got.fillna({"roi": "-"})),
                                      _sorted(real.drop(columns="connector_id").fillna({"roi": "-"})))
        # score is the real confidence; the smaller one where both sides are real
        one = rows["real_side"] == "post"
        np.testing.assert_array_equal(rows.loc[one, "score"], rows.loc[one, "post_score"])
        assert rows.loc[one, "pre_score"].isna().all()
        # synapse_id names the navis connector of the PSD on one-sided rows
        cid = (rows.loc[one, "synapse_id"] % bs.ID_NEURON) // bs.ID_CONNECTOR
        byid = real.set_index("connector_id")
        np.testing.assert_array_equal(byid.loc[cid, "x"].to_numpy(), rows.loc[one, "post_x"].to_numpy())


def test_every_real_tbar_has_rows_at_its_real_position_and_rows_add_up_to_downstream(tables, da1, pns):
    syn = tables["synapses"]
    downstream = pns.set_index("bodyid")["downstream"]
    for rank, n in enumerate(da1, start=1):
        real = _real(n, "pre").set_index("connector_id")
        rows = syn[syn["pre"] == int(n.id)]
        assert set(rows["real_side"]) <= {"pre", "both"}  # no invented T-bar on a DA1 lPN
        assert len(rows) == downstream.loc[int(n.id)]  # polyadic T-bars: real number of connections
        assert (rows["synapse_id"] // bs.ID_NEURON == rank).all()
        cid = (rows["synapse_id"] % bs.ID_NEURON) // bs.ID_CONNECTOR
        assert set(cid) == set(real.index)  # every real T-bar, nothing else
        expected = real.loc[cid]
        for axis in ("x", "y", "z"):
            np.testing.assert_array_equal(rows[f"pre_{axis}"].to_numpy(), expected[axis].to_numpy())
        np.testing.assert_array_equal(rows["pre_score"].to_numpy(), expected["confidence"].to_numpy())
        one = (rows["real_side"] == "pre").to_numpy()
        np.testing.assert_array_equal(rows["score"].to_numpy()[one], expected["confidence"].to_numpy()[one])
        assert rows.loc[one, "post_score"].isna().all()
        roi = np.array(_plain(rows["roi"]), dtype=object)[one]
        assert (roi == expected["roi"].to_numpy()[one]).all()  # the T-bar's real ROI


def test_da1_totals_and_roi_counts_are_the_real_ones(tables, da1, pns):
    table = pns.set_index("bodyid")
    neurons = tables["neurons"].set_index("id")
    rc = tables["roi_counts"]
    for n in da1:
        i = int(n.id)
        kinds = n.connectors["type"].value_counts()
        for column in ("pre", "post", "upstream", "downstream"):
            assert neurons.loc[i, column] == table.loc[i, column]
        assert neurons.loc[i, "pre"] == kinds["pre"] and neurons.loc[i, "post"] == kinds["post"]
        mine = rc[rc["id"] == i].set_index("roi")[["pre", "post"]].sort_index()
        real = (n.connectors.assign(roi=n.connectors["roi"].fillna("NotPrimary")).groupby(["roi", "type"]).size()
                .unstack("type", fill_value=0)[["pre", "post"]].sort_index())
        np.testing.assert_array_equal(mine.to_numpy(), real.to_numpy())
        assert list(mine.index) == list(real.index)


def test_pn_table_rows_are_carried_over(tables, pns):
    real = tables["neurons"][~tables["neurons"]["synthetic"]].set_index("id")
    assert sorted(real.index) == sorted(pns["bodyid"])
    real = real.loc[pns["bodyid"]]
    pairs = {"type": "cell.type", "instance": "name", "status": "status", "pre": "pre", "post": "post",
             "upstream": "upstream", "downstream": "downstream", "class": "class", "glomerulus": "glomerulus",
             "side": "side", "cellBodyFiber": "cellBodyFiber", "soma": "soma"}
    for mine, theirs in pairs.items():
        assert _plain(real[mine]) == _plain(pns[theirs]), mine
    assert real["is_neuron"].all()


def test_skeletons_are_the_navis_ones_in_nm(da1):
    for n in da1:
        path = SAMPLE_DIR / "skeletons" / f"{int(n.id)}.swc"
        assert "nanometres" in path.read_text().split("\n", 4)[2]
        sk = navis.read_swc(path)
        assert len(sk.nodes) == len(n.nodes)
        mine, theirs = sk.nodes.sort_values("node_id"), n.nodes.sort_values("node_id")
        np.testing.assert_array_equal(mine["parent_id"].to_numpy(), theirs["parent_id"].to_numpy())
        for axis in ("x", "y", "z", "radius"):
            np.testing.assert_allclose(mine[axis].to_numpy(), theirs[axis].to_numpy(dtype=float) * 8, atol=0.01)
        assert sk.soma == n.soma  # label 1 kept (one neuron has no soma)


# -- the synthetic parts and the derived tables -----------------------------------------------------------------


def test_synthetic_parts_are_labelled_everywhere(tables, manifest):
    assert set(manifest["synthetic"]) == set(TABLES)
    assert "real_side" in manifest["synthetic"]["synapses"]
    readme = (SAMPLE_DIR / "README.md").read_text()
    for phrase in ("SYNTHETIC", "real_side", "Scheffer", "Schlegel", "CC BY 4.0", "MIT",
                   "only complete for the five DA1 lPNs"):
        assert phrase in readme, phrase
    neurons = tables["neurons"]
    fake = neurons[neurons["synthetic"]]
    assert len(fake) == sum(p[2] for p in bs.POPULATIONS.values())
    assert (fake["status"] == "synthetic").all() and (neurons.loc[~neurons["synthetic"], "status"] != "synthetic").all()
    typed = fake["type"].notna()
    assert fake.loc[typed, "type"].str.endswith("(synthetic)").all()
    assert fake.loc[typed, "instance"].str.endswith("(synthetic)").all()
    assert (~fake.loc[~typed, "is_neuron"]).all() and (~typed).sum() > 0 and fake.loc[typed, "is_neuron"].all()


def test_synthetic_body_totals_are_their_rows(tables):
    syn, neurons, rc = tables["synapses"], tables["neurons"], tables["roi_counts"]
    fake = neurons[neurons["synthetic"]].set_index("id")
    as_pre = syn["pre"].value_counts().reindex(fake.index, fill_value=0)
    as_post = syn["post"].value_counts().reindex(fake.index, fill_value=0)
    np.testing.assert_array_equal(fake["pre"], as_pre)
    np.testing.assert_array_equal(fake["post"], as_post)
    np.testing.assert_array_equal(fake["downstream"], as_pre)
    np.testing.assert_array_equal(fake["upstream"], as_post)
    sums = rc[rc["id"].isin(fake.index)].groupby("id")[["pre", "post"]].sum().reindex(fake.index, fill_value=0)
    np.testing.assert_array_equal(sums["pre"], fake["pre"])
    np.testing.assert_array_equal(sums["post"], fake["post"])
    # other real PNs have no per-ROI rows: the sample does not know their per-ROI counts
    others = set(neurons.loc[~neurons["synthetic"], "id"]) - set(DA1)
    assert not set(rc["id"]) & others


def test_connections_are_exactly_the_grouped_synapses(tables):
    syn = tables["synapses"]
    derived = (syn.assign(roi=syn["roi"].fillna("NotPrimary")).groupby(["pre", "post", "roi"]).size()
               .rename("weight").reset_index().astype({"roi": "string", "weight": "int64"}))
    got = tables["connections"]
    pd.testing.assert_frame_equal(got, derived.sort_values(["pre", "post", "roi"]).reset_index(drop=True))
    assert (got["weight"] > 0).all()
    assert got["weight"].sum() == len(syn)


def test_da1_lpns_connect_to_each_other_through_real_sites_only(tables):
    syn = tables["synapses"]
    among = syn[syn["pre"].isin(DA1) & syn["post"].isin(DA1)]
    assert (among["real_side"] == "both").all() and (syn["real_side"] == "both").sum() == len(among)
    assert among.groupby(["pre", "post"]).ngroups >= 10  # non-trivial connectivity among the five
    distance = np.linalg.norm(among[XYZ_PRE].to_numpy() - among[XYZ_POST].to_numpy(), axis=1)
    assert (distance <= bs.PAIR_MAX_NM).all()
    assert among["score"].equals(np.fmin(among["pre_score"], among["post_score"]))


def test_synthetic_partner_sites_are_a_synapse_width_away_on_the_voxel_grid(tables):
    syn = tables["synapses"]
    one = syn[syn["real_side"] != "both"]
    distance = np.linalg.norm(one[XYZ_PRE].to_numpy() - one[XYZ_POST].to_numpy(), axis=1)
    low, high = bs.OFFSET_NM
    assert distance.min() >= low - 7 and distance.max() <= high + 7
    assert (np.mod(one[XYZ_PRE + XYZ_POST].to_numpy(), 8) == 0).all()


def test_no_autapses_no_background_ids_unique_and_known(tables):
    syn, neurons, con, rc = (tables[t] for t in ("synapses", "neurons", "connections", "roi_counts"))
    assert not (syn["pre"] == syn["post"]).any() and not (con["pre"] == con["post"]).any()
    assert neurons["id"].is_unique and (neurons["id"] > 0).all()
    assert syn["synapse_id"].is_unique and (syn["synapse_id"] > 0).all()
    known = set(neurons["id"])
    for ids in (syn["pre"], syn["post"], con["pre"], con["post"], rc["id"]):
        assert (ids > 0).all() and set(ids) <= known
    assert not rc.duplicated(["id", "roi"]).any()


def test_manifest_and_roi_names(tables, manifest):
    assert manifest["format"] == "connectomix-release" and manifest["format_version"] == 1
    assert manifest["name"] == "hemibrain-olfactory-sample" and manifest["version"] == bs.VERSION
    assert manifest["voxel_size_nm"] == [8, 8, 8] and manifest["score_name"] == "confidence"
    assert {"AL(R)", "LH(R)", "CA(R)"} <= set(manifest["primary_rois"]) <= set(manifest["rois"])
    for key in ("source", "license", "citation", "description"):
        assert manifest[key]
    assert "CC BY 4.0" in manifest["license"]
    assert "Scheffer" in manifest["citation"] and "Schlegel" in manifest["citation"]
    assert set(tables["synapses"]["roi"].dropna()) == set(manifest["primary_rois"])
    for name in ("connections", "roi_counts"):
        assert set(tables[name]["roi"]) - {"NotPrimary"} <= set(manifest["primary_rois"])


def test_dtypes_and_sort_orders(tables):
    syn, neurons, con, rc = (tables[t] for t in ("synapses", "neurons", "connections", "roi_counts"))
    for df, cols in ((syn, ["synapse_id", "pre", "post"]), (neurons, ["id", "pre", "post"]),
                     (con, ["pre", "post", "weight"]), (rc, ["id", "pre", "post"])):
        assert all(df[c].dtype == "int64" for c in cols)
    assert all(syn[c].dtype == "float64" for c in XYZ_PRE + XYZ_POST + ["score", "pre_score", "post_score"])
    assert all(isinstance(df["roi"].dtype, pd.StringDtype) for df in (syn, con, rc))
    assert all(isinstance(neurons[c].dtype, pd.StringDtype) for c in ("type", "instance", "status"))
    assert neurons["is_neuron"].dtype == bool
    assert syn[["pre", "synapse_id"]].equals(syn[["pre", "synapse_id"]].sort_values(["pre", "synapse_id"]))
    assert con[["pre", "post", "roi"]].equals(con[["pre", "post", "roi"]].sort_values(["pre", "post", "roi"]))


def test_folder_is_small():
    total = sum(p.stat().st_size for p in SAMPLE_DIR.rglob("*") if p.is_file())
    assert total < 5_000_000


# -- the builder ----------------------------------------------------------------------------------------------


def test_builder_is_deterministic_and_matches_the_shipped_files(tmp_path):
    rebuilt = bs.build(tmp_path / "sample")
    for name in TABLES:
        pd.testing.assert_frame_equal(pd.read_parquet(rebuilt / f"{name}.parquet"),
                                      pd.read_parquet(SAMPLE_DIR / f"{name}.parquet"))
    for name in ("manifest.json", "README.md"):
        assert (rebuilt / name).read_text() == (SAMPLE_DIR / name).read_text()
    shipped = sorted((SAMPLE_DIR / "skeletons").iterdir())
    assert [p.name for p in sorted((rebuilt / "skeletons").iterdir())] == [p.name for p in shipped]
    for p in shipped:
        assert (rebuilt / "skeletons" / p.name).read_text() == p.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]  # no staging folder left behind


def test_builder_refuses_inputs_that_no_longer_match(tmp_path, pns):
    changed = pns.copy()
    changed.loc[changed["bodyid"] == 1734350788, "pre"] = 620
    path = tmp_path / "pns.csv"
    changed.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="1734350788.*pre=620"):
        bs.load_inputs(path)
