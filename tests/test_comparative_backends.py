"""compare_types across backends: the sample through the neuPrint emulator and a FlyWire-shaped CAVE emulator.

Expected values come from the release files with pandas (never from connectomix.comparative).
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

import connectomix
from connectomix_release.plugin import SAMPLE_DIR

DA1 = "DA1_lPN"


@pytest.fixture(scope="module")
def files():
    return {t: pd.read_parquet(SAMPLE_DIR / f"{t}.parquet") for t in ("neurons", "connections")}


def test_neuprint_and_release_give_the_same_profiles(files):
    pytest.importorskip("kuzu")
    from connectomix_neuprint.emulator.testing import running_emulator

    with running_emulator(SAMPLE_DIR, token="t", dataset="hemibrain:v1.2.1") as emu:
        host = emu.url.split("://", 1)[1]
        with connectomix.open(f"neuprint://{host}/hemibrain:v1.2.1", token="t", verify=str(emu.cert_path),
                              cache=False) as hb:
            c = connectomix.compare_types({"np": hb, "rel": "sample"}, type=DA1, by="neuron", min_weight=5)
    n, con = files["neurons"], files["connections"]
    da1 = sorted(n.loc[n["type"] == DA1, "id"].astype("int64"))
    con = con[con["pre"] != con["post"]]  # autapses never count
    expected_in = con[con["post"].isin(da1)].groupby("post")["weight"].sum()
    expected_out = con[con["pre"].isin(da1)].groupby("pre")["weight"].sum()
    for label in ("np", "rel"):
        got = c.neurons[c.neurons["dataset"] == label].set_index("id")
        assert got.index.tolist() == da1
        assert got["total_input"].tolist() == expected_in.reindex(da1, fill_value=0).tolist()
        assert got["total_output"].tolist() == expected_out.reindex(da1, fill_value=0).tolist()
    # the same data through two backends: identical profiles, so every neuron's two copies have cosine 1
    key = ["direction", "partner_type", "partner_side", "weight", "n_partners", "total"]
    p = c.profiles.assign(neuron=c.profiles["query"].str.split(":").str[1])
    a = p[p["dataset"] == "np"].sort_values(["neuron"] + key)[["neuron"] + key].reset_index(drop=True)
    b = p[p["dataset"] == "rel"].sort_values(["neuron"] + key)[["neuron"] + key].reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    s = c.similarity
    pairs = s[(s["dataset_a"] == "np") & (s["dataset_b"] == "rel")
              & (s["query_a"].str[3:] == s["query_b"].str[4:])].set_index("query_a")["cosine"]
    with_profile = sorted(set(p["neuron"]))
    assert [pairs[f"np:{i}"] for i in with_profile] == pytest.approx([1.0] * len(with_profile))
    assert c.unmatched.empty


@pytest.fixture(scope="module")
def flywire_shaped(tmp_path_factory):
    """A FlyWire-shaped CAVE emulator serving the sample with SYNTHETIC renames (type + '_fw')."""
    from connectomix_cave.emulator import CaveEmulator, profile

    folder = tmp_path_factory.mktemp("fw") / "flywire-shaped"
    shutil.copytree(SAMPLE_DIR, folder, ignore=shutil.ignore_patterns("skeletons"))
    neurons = pd.read_parquet(folder / "neurons.parquet")
    neurons["hemibrain_type"] = neurons["type"].astype("string")
    neurons["type"] = (neurons["type"] + "_fw").astype("string")
    neurons.loc[neurons["type"] == "LN (synthetic)_fw", "hemibrain_type"] = pd.NA  # one type left unlinked
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["synthetic"]["neurons.type"] = "renamed SYNTHETICALLY (test)"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with CaveEmulator(folder, **profile("flywire_fafb_public").emulator_kwargs()) as emu:
        with connectomix.open("cave://flywire_fafb_public", server=emu.url, token=emu.token, materialization=1,
                              cache=False) as fw:
            yield fw


def test_flywire_shaped_cave_matches_through_hemibrain_type(flywire_shaped, files):
    c = connectomix.compare_types({"hb": "sample", "fw": flywire_shaped}, type=DA1, min_weight=5)
    n = files["neurons"]
    da1 = sorted(n.loc[n["type"] == DA1, "id"].astype("int64"))
    fw = c.neurons[c.neurons["dataset"] == "fw"]
    assert sorted(fw["id"]) == da1 and set(fw["type"]) == {"DA1_lPN_fw"}  # found by hemibrain_type
    assert c.attrs["datasets"]["fw"]["family"] == "flywire" and c.attrs["datasets"]["hb"]["family"] == "hemibrain"
    m = c.mapping.set_index(["dataset", "type"])
    assert m.loc[("fw", "KC (synthetic)_fw"), "matched_type"] == "KC (synthetic)"
    assert "hemibrain_type of fw" in m.loc[("fw", "KC (synthetic)_fw"), "evidence"]
    assert sorted(map(tuple, c.unmatched[["dataset", "type"]].values.tolist())) == [
        ("fw", "LN (synthetic)_fw"), ("hb", "LN (synthetic)")]
    # FlyWire's CAVE annotations have no side: every fw partner side is unknown, the query has no side suffix
    assert set(c.profiles.loc[c.profiles["dataset"] == "fw", "partner_side"]) == {"unknown"}
    fixed = connectomix.compare_types({"hb": "sample", "fw": flywire_shaped}, type=DA1, min_weight=5,
                                      synonyms={"fw:LN (synthetic)_fw": "LN (synthetic)"})
    assert fixed.unmatched.empty
    s = fixed.similarity
    cosine = s[(s["query_a"] == "hb:DA1_lPN_R") & (s["query_b"] == "fw:DA1_lPN")]["cosine"].iloc[0]
    assert 0.99 < cosine <= 1.0  # the same sample, through CAVE's filtered synapse view
