"""Edit scripts, supervoxels and the emulated root history (no HTTP)."""

from __future__ import annotations

import copy
import json
import re

import numpy as np
import pandas as pd
import pytest

from connectomix.errors import DataFormatError
from connectomix_cave.emulator import EditScript, build_dataset, default_script_for_release, load_edit_script
from connectomix_cave.emulator.release import read_release
from connectomix_cave.emulator.supervoxels import assign_supervoxels
from connectomix_cave.emulator.testing import sample_release_path
from connectomix_cave.emulator.timeutil import parse_iso

from cave_emulator_support import A1, A2, AD, BC, BC1, BC2, EDITS, F1, F2, FG


def _script(**changes) -> dict:
    data = copy.deepcopy(EDITS)
    data.update(changes)
    return data


def test_json_and_toml_scripts_parse_to_the_same_thing(tmp_path, emulator_edits_file):
    lines = ['format = "connectomix-cave-edits"', "format_version = 1", 'genesis = "2023-12-01T00:00:00"',
             'description = "SYNTHETIC test history"']
    for v in EDITS["versions"]:
        lines += ["[[versions]]"] + [f"{k} = {json.dumps(val)}" for k, val in v.items()]
    for op in EDITS["operations"]:
        lines += ["[[operations]]"] + [f"{k} = {json.dumps(val)}" for k, val in op.items()]
    toml = tmp_path / "edits.toml"
    toml.write_text("\n".join(lines), encoding="utf-8")
    a, b = load_edit_script(emulator_edits_file), load_edit_script(toml)
    assert a == b
    assert [op.kind for op in a.operations] == ["split", "merge", "merge", "split", "merge", "split"]
    assert EditScript.from_dict(a.to_dict()) == a  # round trip


@pytest.mark.parametrize("change, message", [
    ({"format": "other"}, "format must be"),
    ({"synthetic": False}, "'synthetic' must be true"),
    ({"versions": []}, "non-empty list"),
    ({"genesis": "2024-06-01T00:00:00"}, "must be before the first version"),
    ({"typo": 1}, "unknown key(s) ['typo']"),
    ({"supervoxels_per_body": 100}, "supervoxels_per_body"),
])
def test_script_structure_errors_name_the_problem(change, message):
    with pytest.raises(DataFormatError, match=re.escape(message)):
        EditScript.from_dict(_script(**change))


def test_operation_errors(emulator_release):
    ops = copy.deepcopy(EDITS["operations"])
    ops[2]["roots"] = ["@nope", 104]
    with pytest.raises(DataFormatError, match="'@nope' refers to a label"):
        EditScript.from_dict(_script(operations=ops))
    ops = copy.deepcopy(EDITS["operations"])
    ops[0]["timestamp"] = EDITS["versions"][1]["time_stamp"]
    with pytest.raises(DataFormatError, match="equals a version's time_stamp"):
        EditScript.from_dict(_script(operations=ops))
    ops = copy.deepcopy(EDITS["operations"])
    ops[0]["timestamp"] = "2023-12-31T00:00:00"
    with pytest.raises(DataFormatError, match="must be after the first version"):
        EditScript.from_dict(_script(operations=ops))
    # semantic errors are found when the history is built
    ops = copy.deepcopy(EDITS["operations"])
    ops[2]["roots"] = [101, 104]  # 101 was split by operation 1
    with pytest.raises(DataFormatError, match="root 101 is not current"):
        build_dataset(emulator_release, _script(operations=ops))
    ops = copy.deepcopy(EDITS["operations"])
    ops[0]["move_supervoxels"] = [12345]
    with pytest.raises(DataFormatError, match=r"move_supervoxels \[12345\] are not supervoxels of root 101"):
        build_dataset(emulator_release, _script(operations=ops))
    ops = copy.deepcopy(EDITS["operations"])
    ops[1]["new_root_id"] = 104
    with pytest.raises(DataFormatError, match="already a root or supervoxel id"):
        build_dataset(emulator_release, _script(operations=ops))


def test_supervoxels_partition_each_body_spatially(emulator_release):
    release = read_release(emulator_release)
    layout = assign_supervoxels(release.synapses, release.body_ids(), 4)
    syn = release.synapses
    sites = pd.DataFrame({"body": np.r_[syn["pre"], syn["post"]], "sv": np.r_[layout.pre_sv, layout.post_sv],
                          "x": np.r_[syn["pre_x"], syn["post_x"]]})
    per_body = sites.groupby("body")["sv"].nunique()
    assert (per_body == 4).all()  # every tiny body has >= 4 sites
    # supervoxels never span bodies, ids are unique to a body and above every body id
    assert (sites.groupby("sv")["body"].nunique() == 1).all()
    assert sites["sv"].min() > release.body_ids().max()
    # a deterministic function of the release
    again = assign_supervoxels(release.synapses, release.body_ids(), 4)
    assert np.array_equal(again.pre_sv, layout.pre_sv) and np.array_equal(again.sv_ids, layout.sv_ids)


def test_history_follows_the_script(emulator_release, emulator_edits_file):
    ds = build_dataset(emulator_release, emulator_edits_file)
    h = ds.history
    assert [op.outputs for op in h.operations] == [(A1, A2), (BC,), (AD,), (F1, F2), (FG,), (BC1, BC2)]
    t = {v.version: v.time_stamp for v in ds.script.versions}
    alive = {v: set(h.current_roots(ts).tolist()) for v, ts in t.items()}
    assert {101, 102, 103, 104, 105, 106}.issubset(alive[1]) and not {A1, BC} & alive[1]
    assert {A1, A2, BC, 104, 105, 106} <= alive[2] and not {101, 102, 103} & alive[2]
    assert {AD, A2, BC, F1, F2, 106} <= alive[3] and not {A1, 104, 105} & alive[3]
    assert {AD, A2, BC, FG, F2} <= alive[4] and not {F1, 106} & alive[4]
    now = h.current_roots(parse_iso("2030-01-01T00:00:00"))
    assert {BC1, BC2} <= set(now.tolist()) and BC not in now
    # a root is latest at T iff created at or before T and not retired by T (boundary inclusive)
    op1 = h.operations[0].timestamp
    assert h.is_latest([A1, 101], op1).tolist() == [True, False]
    assert h.is_latest([A1, 101], op1 - 1).tolist() == [False, True]
    assert h.is_latest([999], op1).tolist() == [False]
    # split: supervoxels divided, merge: united
    assert set(h.supervoxels_of_root(A1)) | set(h.supervoxels_of_root(A2)) == set(h.supervoxels_of_root(101))
    assert not set(h.supervoxels_of_root(A1)) & set(h.supervoxels_of_root(A2))
    assert set(h.supervoxels_of_root(BC)) == set(h.supervoxels_of_root(102)) | set(h.supervoxels_of_root(103))
    old, new = h.delta_roots(t[1], t[2])
    assert old == [101, 102, 103] and new == sorted([A1, A2, BC])


def test_default_script_for_the_tiny_release(emulator_release):
    release = read_release(emulator_release)
    script = default_script_for_release(release)
    assert [v.version for v in script.versions] == [1, 2, 3, 4]
    assert [v.valid for v in script.versions] == [True, True, False, True]
    assert len(script.operations) == 6
    assert "SYNTHETIC" in script.description
    ds = build_dataset(release)  # the default script builds
    labels = ds.history.label_ids()
    assert set(labels) == {"A_kept", "A_moved", "BC", "AD", "F_kept", "F_moved", "FG", "BC_kept", "BC_moved"}
    assert min(labels.values()) > max(release.body_ids())
    # the most connected bodies are edited
    counts = pd.concat([release.synapses["pre"], release.synapses["post"]]).value_counts()
    assert script.operations[0].inputs[0] == counts.index[0]


def test_default_script_for_the_embedded_sample():
    sample = sample_release_path()
    if sample is None:
        pytest.skip("the embedded sample release is not built")
    ds = build_dataset(sample)
    release = ds.release
    # version 1 is the release as-is: every body is a root with its release id
    v1 = ds.table("synapses_nt_v1", 1)
    assert np.array_equal(v1["pre_pt_root_id"].to_numpy(), release.synapses["pre"].to_numpy())
    assert np.array_equal(v1["post_pt_root_id"].to_numpy(), release.synapses["post"].to_numpy())
    v4 = ds.table("synapses_nt_v1", 4)
    assert not np.array_equal(v4["pre_pt_root_id"].to_numpy(), release.synapses["pre"].to_numpy())
    assert len(ds.history.operations) == 6
