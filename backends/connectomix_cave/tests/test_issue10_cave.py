"""Issue 10 (CAVE): catalogue settings, annotations with one meaning, emulators in the real shapes.

Each emulator is configured from the catalogue (``emulator.profile(datastack)``); the
expected values come from the toy release (``connectomix.testing.toy``), never from the
backend under test.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix import errors
from connectomix.testing.toy import make_toy_release
from connectomix_cave.backend import _pivot
from connectomix_cave.emulator import CaveEmulator, profile
from connectomix_cave.emulator.testing import make_client
from connectomix_cave.settings import settings_for

TOKEN = "issue10-cave-token"
STACKS = ("flywire_fafb_public", "minnie65_public", "brain_and_nerve_cord_public", "fanc_production_mar2021")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    folder = make_toy_release(tmp_path_factory.mktemp("toy") / "toy")
    return folder, pd.read_parquet(folder / "neurons.parquet")


@pytest.fixture(scope="module")
def emulators(release):
    started = {}
    try:
        for stack in STACKS:
            started[stack] = CaveEmulator(release[0], token=TOKEN, **profile(stack).emulator_kwargs()).start()
        yield started
    finally:
        for emu in started.values():
            emu.stop()


def open_stack(emulators, stack, **options):
    return connectomix.open(f"cave://{stack}", server=emulators[stack].url, token=TOKEN, materialization=1,
                            cache=False, **options)


def typed(neurons):
    return neurons[(neurons["id"] != 0) & neurons["type"].notna()].sort_values("id")


# -- settings from the catalogue ------------------------------------------------------------

def test_flywire_view_per_version_and_threshold():
    s = settings_for("flywire_fafb_public", {})
    assert s.view_at(630) == "valid_synapses_nt_np" and s.view_at(783) == "valid_synapses_nt_np_v6"
    assert (s.score_column, s.score_recommended, s.score_op) == ("cleft_score", 51, ">")
    assert s.neuron_table == "hierarchical_neuron_annotations" and s.annotation_reference == "proofread_neurons"
    assert s.live is False and s.row_limit == 500_000


def test_fanc_and_banc_defaults():
    fanc = settings_for("fanc_production_mar2021", {})
    assert (fanc.synapse_table, fanc.score_column, fanc.score_recommended) == ("synapses_nov2022", "score", 13)
    assert (fanc.neuron_table, fanc.annotation_key_column, fanc.annotation_value_column) == (
        "neuron_information", "tag2", "tag")
    for stack in ("brain_and_nerve_cord_public", "brain_and_nerve_cord"):
        banc = settings_for(stack, {})
        assert (banc.synapse_table, banc.score_column, banc.score_recommended, banc.synapse_unit) == (
            "synapses_v2", "size", 5, "nm")
        assert banc.neuron_table == "codex_annotations"
    assert settings_for("brain_and_nerve_cord_public", {}).live is False
    micro = settings_for("minnie65_phase3_v1", {})
    assert micro.synapse_table == "synapses_pni_2" and micro.live is False


def test_a_users_own_wide_table_and_threshold(release):
    truth = typed(release[1])
    with CaveEmulator(release[0], token=TOKEN, datastack="my_stack") as emu:  # serves a wide cell_types table
        with pytest.warns(UserWarning, match="not in the connectomix catalogue"):
            ds = connectomix.open("cave://my_stack", server=emu.url, token=TOKEN, materialization=1, cache=False,
                                  neuron_table="cell_types", type_column="cell_type", score_column="cleft_score",
                                  annotation_map="side=side,class=class,nt=nt,hemibrain_type=hemibrain_type",
                                  score_recommended="7")
        with ds:
            neurons = ds.fetch_neurons(nt="acetylcholine", omit_rois=True).neurons
            assert ds.info.score.recommended == 7.0 and "unverified" in ds.info.score.source
    expected = truth[truth["nt"] == "acetylcholine"]
    assert neurons["id"].tolist() == expected["id"].tolist()
    assert neurons["hemibrain_type"].tolist() == expected["hemibrain_type"].tolist()


def test_unknown_datastack_warns_and_allows_no_live():
    with pytest.warns(UserWarning, match="not in the connectomix catalogue.*unverified"):
        s = settings_for("somebody_elses_stack", {})
    assert s.live is False and s.neuron_table is None and s.synapse_view is None


# -- annotations with one meaning ---------------------------------------------------------------

def test_flywire_type_is_the_cell_type_not_the_tag(emulators, release):
    truth = typed(release[1])
    with open_stack(emulators, "flywire_fafb_public") as ds:
        neurons = ds.fetch_neurons(truth["id"].tolist(), omit_rois=True).neurons
        tags = make_client(emulators["flywire_fafb_public"], "flywire_fafb_public").materialize.query_table(
            "neuron_information_v2", materialization_version=1)
    assert neurons["type"].tolist() == truth["type"].tolist()
    assert not set(neurons["type"]) & set(tags["tag"])  # the emulator's tags differ from the types
    assert neurons["class"].tolist() == truth["class"].tolist()
    assert neurons["hemibrain_type"].tolist() == truth["hemibrain_type"].tolist()


def test_microns_fetch_neurons_through_the_reference_table(emulators, release):
    truth = typed(release[1])
    client = make_client(emulators["minnie65_public"], "minnie65_public")
    raw = client.materialize.query_table("aibs_metamodel_celltypes_v661", merge_reference=False,
                                         materialization_version=1)
    assert "pt_root_id" not in raw.columns and "target_id" in raw.columns  # the real unmerged shape
    merged = client.materialize.query_table("aibs_metamodel_celltypes_v661", materialization_version=1)
    assert {"pt_root_id", "id_ref", "target_id"} <= set(merged.columns)  # merge_reference=True (caveclient default)
    assert sorted(merged["pt_root_id"]) == truth["id"].tolist()
    with open_stack(emulators, "minnie65_public") as ds:
        neurons = ds.fetch_neurons(type="KC", omit_rois=True).neurons
        assert neurons["id"].tolist() == truth[truth["type"] == "KC"]["id"].tolist()
        assert (neurons["class"] == neurons["classification_system"]).all()
        with pytest.raises(errors.UnsupportedOperation, match="side"):
            ds.fetch_neurons(side="left", omit_rois=True)


def test_banc_long_reference_table_side_and_cross_types(emulators, release):
    truth = typed(release[1])
    with open_stack(emulators, "brain_and_nerve_cord_public") as ds:
        neurons = ds.fetch_neurons(side="left", omit_rois=True).neurons
        assert neurons["id"].tolist() == truth[truth["side"] == "left"]["id"].tolist()
        assert neurons["flywire_type"].tolist() == neurons["type"].tolist()


def test_fanc_long_table_soma_sides_normalised(emulators, release):
    truth = typed(release[1])
    with open_stack(emulators, "fanc_production_mar2021") as ds:
        neurons = ds.fetch_neurons(truth["id"].tolist(), omit_rois=True).neurons
    assert neurons["side"].tolist() == truth["side"].tolist()
    assert set(neurons["soma side"].dropna()) <= {"left soma", "right soma", "midline soma"}


def test_pre_is_na_and_counts_are_connections(emulators, release):
    syn = pd.read_parquet(release[0] / "synapses.parquet")  # one table row per release synapse (no view)
    with open_stack(emulators, "minnie65_public") as ds:
        neurons = ds.fetch_neurons([101], omit_rois=True, counts=True).neurons
        assert neurons["pre"].isna().all()
        assert int(neurons["downstream"].iloc[0]) == int((syn["pre"] == 101).sum())
        assert int(neurons["upstream"].iloc[0]) == int(neurons["post"].iloc[0]) == int((syn["post"] == 101).sum())
        with pytest.raises(errors.UnsupportedOperation, match="min_downstream"):
            ds.fetch_neurons(min_pre=1, omit_rois=True)


def test_several_values_of_one_key_are_joined_sorted():
    long = pd.DataFrame({"id": [5, 5, 5, 7], "key": ["cell_type", "cell_type", "side", "cell_type"],
                         "value": ["b", "a", "L", "c"]})
    out = _pivot(long, [("type", "cell_type"), ("side", "side")])
    assert out["type"].tolist() == ["a;b", "c"] and out["side"].tolist()[0] == "left"
    shuffled = _pivot(long.iloc[::-1], [("type", "cell_type"), ("side", "side")])
    pd.testing.assert_frame_equal(out, shuffled)


# -- units, scores, live ------------------------------------------------------------------------

def test_banc_nm_table_and_microns_voxel_table_give_the_same_nm(emulators, release):
    syn = pd.read_parquet(release[0] / "synapses.parquet")
    expected = syn[syn["pre"] == 101].sort_values("synapse_id")
    for stack in ("brain_and_nerve_cord_public", "minnie65_public"):
        with open_stack(emulators, stack) as ds:
            got = ds.get_synapses([101], post=False).sort_values("synapse_id")
        expected = expected[expected["synapse_id"].isin(got["synapse_id"])]  # background partners dropped
        assert len(got) == len(expected) and len(got)
        meta = make_client(emulators[stack], stack).materialize.get_table_metadata(
            settings_for(stack, {}).synapse_table, version=1)
        unit = tuple(float(v) for v in meta["voxel_resolution"])
        assert (unit == (1.0, 1.0, 1.0)) == (stack.startswith("brain"))
        np.testing.assert_allclose(got["pre_x"].to_numpy(), expected["pre_x"].to_numpy(), atol=unit[0] / 2)
        np.testing.assert_allclose(got["pre_z"].to_numpy(), expected["pre_z"].to_numpy(), atol=unit[2] / 2)


def test_catalogue_unit_disagreeing_with_table_metadata_is_refused(emulators):
    with open_stack(emulators, "minnie65_public", synapse_unit="nm") as ds:
        with pytest.raises(errors.DataFormatError, match="voxel_resolution"):
            ds.get_synapses([101])


def test_recommended_score_flywire_is_strictly_above_50(emulators):
    with open_stack(emulators, "flywire_fafb_public", filtered=False) as ds:
        got = ds.get_synapses([101, 102], min_score="recommended")
        all_rows = ds.get_synapses([101, 102])
    assert got.attrs["score"]["recommended"] == 51
    assert set(got["synapse_id"]) == set(all_rows[all_rows["score"] > 50]["synapse_id"])


def test_public_stacks_refuse_live(emulators):
    for stack in ("flywire_fafb_public", "minnie65_public", "brain_and_nerve_cord_public"):
        with open_stack(emulators, stack) as ds:
            with pytest.raises(errors.UnsupportedOperation, match="live"):
                ds.get_synapses([101], materialization="live")
    client = make_client(emulators["minnie65_public"], "minnie65_public")
    with pytest.raises(Exception, match="403|live"):
        client.materialize.live_live_query("synapses_pni_2", pd.Timestamp.now(tz="UTC").to_pydatetime(),
                                           filter_equal_dict={"synapses_pni_2": {"pre_pt_root_id": 101}})


# -- end to end: type criteria, by="type", compare ----------------------------------------------

@pytest.mark.parametrize("stack", ["flywire_fafb_public", "minnie65_public"])
def test_type_queries_end_to_end(emulators, release, stack):
    truth = typed(release[1])
    with open_stack(emulators, stack) as ds:
        pns = ds.fetch_neurons(type="PN_a", omit_rois=True).neurons
        assert pns["id"].tolist() == truth[truth["type"] == "PN_a"]["id"].tolist()
        by_type = ds.get_connectivity(connectomix.NeuronCriteria(type="PN_a"), by="type", progress=False)
        by_neuron = ds.get_connectivity(pns["id"].tolist(), progress=False)
    types = dict(zip(truth["id"], truth["type"]))
    expect = by_neuron.assign(pre_type=by_neuron["pre"].map(types),
                              post_type=by_neuron["post"].map(types).fillna("(untyped)"))
    expect = expect.groupby(["pre_type", "post_type"])["weight"].sum()
    got = by_type.set_index(["pre_type", "post_type"])["weight"]
    assert len(got) and {k: int(v) for k, v in got.items()} == {k: int(v) for k, v in expect.items()}


def test_compare_flywire_and_microns_shaped(emulators, release):
    truth = typed(release[1])
    with open_stack(emulators, "flywire_fafb_public") as fw, open_stack(emulators, "minnie65_public") as mi:
        both = connectomix.compare({"flywire": fw, "microns": mi}, "fetch_neurons", type="KC", omit_rois=True)
    kcs = truth[truth["type"] == "KC"]["id"].tolist()
    for label in ("flywire", "microns"):
        assert sorted(both[both["dataset"] == label]["id"]) == kcs


# -- fafbseg's id functions: root ids whose layer bits match n_layers -------------------------------

FLYWIRE_BASE = 720_575_940_600_000_000  # FlyWire-like root ids: layer 10 in the top byte
HEX_TOKEN = "0123456789abcdef0123456789abcdef"  # cloud-volume accepts only hex or base64 tokens


@pytest.fixture(scope="module")
def layered(release, tmp_path_factory):
    """The toy release with FlyWire-like ids, served with fafbseg's HOME and default server redirected."""
    folder = tmp_path_factory.mktemp("layered") / "toy"
    folder.mkdir()
    for name in ("manifest.json", "neurons.parquet", "synapses.parquet"):
        (folder / name).write_bytes((release[0] / name).read_bytes())
    for name, cols in (("neurons.parquet", ["id"]), ("synapses.parquet", ["pre", "post"])):
        frame = pd.read_parquet(folder / name)
        for col in cols:
            frame[col] = np.where(frame[col] != 0, frame[col] + FLYWIRE_BASE, 0).astype("int64")
        frame.to_parquet(folder / name)
    home = tmp_path_factory.mktemp("layered-home")
    with CaveEmulator(folder, token=HEX_TOKEN) as emu:
        emu.write_client_home(home)
        ids = pd.read_parquet(folder / "neurons.parquet")["id"]
        yield emu, home, ids[ids != 0].to_numpy()


def test_graph_reports_the_layer_of_its_root_ids(layered):
    emu, _, ids = layered
    client = make_client(emu)
    n_layers = client.chunkedgraph.segmentation_info["graph"]["n_layers"]
    assert n_layers == 10 == int(ids[0]) >> 56
    root = int(ids[0])
    l2 = client.chunkedgraph.get_leaves(root, stop_layer=2)
    assert len(l2) and all(int(i) >> 56 == 2 for i in l2)
    assert set(client.chunkedgraph.get_roots(l2, timestamp=client.materialize.get_timestamp(1)).tolist()) == {root}


def test_fafbseg_is_latest_root_and_update_ids(layered, monkeypatch):
    emu, home, ids = layered
    flywire = pytest.importorskip("fafbseg.flywire")
    import caveclient.frameworkclient
    import caveclient.infoservice

    from connectomix_cave.emulator import use_client_home

    # fafbseg lists datastacks with CAVEclient() (no datastack): point caveclient's global default at the emulator
    monkeypatch.setattr(caveclient.frameworkclient, "default_global_server_address", emu.url)
    monkeypatch.setattr(caveclient.infoservice, "default_global_server_address", emu.url)
    now = emu.dataset.history.is_latest(ids.tolist(), pd.Timestamp.now(tz="UTC").value // 1000)
    assert not now.all() and now.any()  # the default edit script outdates some version-1 roots
    with use_client_home(home), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        latest = flywire.is_latest_root(ids, progress=False, dataset=emu.datastack)
        updated = flywire.update_ids(ids, progress=False, dataset=emu.datastack)
        at_v1 = flywire.update_ids(ids, progress=False, dataset=emu.datastack, timestamp="mat_1")
    assert latest.tolist() == now.tolist()
    assert updated["changed"].tolist() == (~now).tolist()
    assert emu.dataset.history.is_latest(updated["new_id"].tolist(), pd.Timestamp.now(tz="UTC").value // 1000).all()
    assert (at_v1["new_id"].to_numpy() == ids).all()
    with connectomix.open(f"cave://{emu.datastack}", server=emu.url, token=HEX_TOKEN, cache=False) as ds:
        ours = ds.update_ids(ids)
    sure = updated["confidence"].to_numpy() == 1
    assert ours["new_id"].to_numpy()[sure].tolist() == updated["new_id"].to_numpy()[sure].tolist()


# -- every catalogue CAVE dataset against an emulator in its real shape --------------------------------

def _cave_catalogue_stacks():
    from connectomix import catalogue

    return sorted({e.dataset for e in catalogue.load().datasets.values() if e.backend == "cave"})


@pytest.mark.parametrize("stack", _cave_catalogue_stacks())
def test_catalogue_settings_match_an_emulator_in_the_real_shape(release, stack):
    """Table names, annotation shape (long/wide, reference target, key/value columns), units, live."""
    s = settings_for(stack, {})
    with CaveEmulator(release[0], token=TOKEN, **profile(stack).emulator_kwargs()) as emu:
        mat = make_client(emu, stack).materialize
        tables = mat.get_tables(version=1)
        assert s.synapse_table in tables and s.neuron_table in tables
        syn_meta = mat.get_table_metadata(s.synapse_table, version=1)
        if s.synapse_unit is not None:
            assert (list(map(float, syn_meta["voxel_resolution"])) == [1.0, 1.0, 1.0]) == (s.synapse_unit == "nm")
        if s.score_column:
            assert s.score_column in mat.query_table(s.synapse_table, limit=3, materialization_version=1).columns
        meta = mat.get_table_metadata(s.neuron_table, version=1)
        assert meta["reference_table"] == s.annotation_reference
        raw = mat.query_table(s.neuron_table, merge_reference=False, materialization_version=1)
        assert ("target_id" in raw.columns) == (s.annotation_reference is not None)
        if s.annotation_shape == "long":
            assert {s.annotation_key_column, s.annotation_value_column} <= set(raw.columns)
            assert raw.groupby("target_id" if "target_id" in raw else "pt_root_id").size().max() > 1  # long
            assert dict(s.annotation_map)["type"] in set(raw[s.annotation_key_column])
        else:
            assert {src for _, src in s.annotation_map} <= set(raw.columns)
        with connectomix.open(f"cave://{stack}", server=emu.url, token=TOKEN, materialization=1,
                              cache=False) as ds:
            neurons = ds.fetch_neurons(omit_rois=True).neurons
            assert neurons["type"].notna().all() and neurons["class"].notna().any()
            if not s.live:
                with pytest.raises(errors.UnsupportedOperation, match="live"):
                    ds.get_synapses([101], materialization="live")


def test_command_line_profile(release, capsys):
    import json

    from connectomix_cave.emulator.__main__ import main

    assert main(["--release", str(release[0]), "--profile", "brain_and_nerve_cord_public", "--describe"]) == 0
    tables = json.loads(capsys.readouterr().out)["tables"]
    assert {"synapses_v2", "codex_annotations", "cell_representative_point"} <= set(tables)
    assert main(["--release", str(release[0]), "--profile", "no_such_stack", "--describe"]) == 2
    assert "not a CAVE datastack of the connectomix catalogue" in capsys.readouterr().err
