"""The pytest fixture factory of ``connectomix_cave.emulator.testing``, on the tiny and the embedded sample release."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectomix_cave.emulator.testing import cave_emulator_fixture, make_client, sample_release_path

small_cave = cave_emulator_fixture(release_fixture="emulator_release", row_limit=10, token="fixture-token")
sample_cave = cave_emulator_fixture(release=sample_release_path() or "/nonexistent", scope="module")


def test_fixture_factory_serves_the_release(small_cave, release_rows):
    assert small_cave.token == "fixture-token" and small_cave.url.startswith("http://127.0.0.1:")
    cave_client = make_client(small_cave)
    df = cave_client.materialize.query_table("synapses_nt_v1", materialization_version=1)
    assert len(df) == 10 and set(df["id"]) <= set(release_rows["synapse_id"])
    # the default edit script is in effect: its labelled roots exist in the newest version
    newest = cave_client.materialize.most_recent_version()
    when = cave_client.materialize.get_timestamp(newest)
    assert cave_client.chunkedgraph.is_latest_roots([small_cave.labels["AD"]], timestamp=when).tolist() == [True]


def test_fixture_factory_needs_exactly_one_source():
    with pytest.raises(ValueError, match="exactly one"):
        cave_emulator_fixture()


@pytest.mark.skipif(sample_release_path() is None, reason="the embedded sample release is not built")
def test_embedded_sample_at_version_1(sample_cave):
    release = sample_cave.dataset.release
    syn = release.synapses
    body = int(syn["pre"].value_counts().index[0])  # a real DA1 lPN
    cave_client = make_client(sample_cave)
    df = cave_client.materialize.query_table("synapses_nt_v1", filter_in_dict={"pre_pt_root_id": [body]},
                                        materialization_version=1, split_positions=True)
    rel = syn[syn["pre"] == body].set_index("synapse_id").sort_index()
    df = df.set_index("id").sort_index()
    assert df.index.equals(rel.index)
    res = np.asarray(release.voxel_size_nm)
    assert np.array_equal(df[["pre_pt_position_x", "pre_pt_position_y", "pre_pt_position_z"]].to_numpy() * res,
                          rel[["pre_x", "pre_y", "pre_z"]].to_numpy())
    assert (df["post_pt_root_id"] == rel["post"]).all()
    types = cave_client.materialize.query_table("cell_types", filter_in_dict={"pt_root_id": [body]},
                                           materialization_version=1)
    expected = release.neurons.set_index("id").loc[body, "type"]
    assert types["cell_type"].tolist() == ([expected] if not pd.isna(expected) else [])
