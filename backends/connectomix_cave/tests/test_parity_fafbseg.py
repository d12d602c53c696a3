"""connectomix and the unmodified fafbseg return the same synapses from the same CAVE emulator.

The emulator serves the embedded sample (real DA1 sites, synthetic partners, synthetic edits) as
``flywire_fafb_public``; fafbseg reaches it through a temporary HOME. Mapping (connectomix.schema):
``id -> synapse_id``, ``cleft_score -> score``, ``neuropil -> roi``. Both use the filtered view and
drop autapses and id 0. The view answers nm, as FlyWire's ``valid_synapses_nt_np_v6`` does
(seung-lab/FlyConnectome ``CAVE tutorial.ipynb``@9b1790b cell 49) and fafbseg assumes: fafbseg's
positions, unconverted, and connectomix's must both be the release's nm.
"""

import numpy as np
import pandas as pd
import pytest

import connectomix
from connectomix_release.plugin import SAMPLE_DIR

flywire = pytest.importorskip("fafbseg.flywire")

TOKEN = "parity-token"
DA1 = [722817260, 754534424, 754538881, 1734350788, 1734350908]


@pytest.fixture(scope="module")
def emu():
    from connectomix_cave.emulator import CaveEmulator

    with CaveEmulator(SAMPLE_DIR, token=TOKEN) as emu:  # datastack flywire_fafb_public
        yield emu


@pytest.fixture(scope="module")
def fafbseg_home(emu, tmp_path_factory):
    from connectomix_cave.emulator import use_client_home

    home = tmp_path_factory.mktemp("home")
    emu.write_client_home(home)
    with use_client_home(home):
        yield home


@pytest.fixture(scope="module")
def ds(emu):
    with connectomix.open("cave://flywire_fafb_public", server=emu.url, token=TOKEN, cache=False) as ds:
        yield ds


def both(ds, ids, materialization, **kwargs):
    theirs = flywire.get_synapses(ids, materialization=materialization, progress=False, **kwargs)
    ours = ds.get_synapses(ids, materialization=materialization, progress=False)
    return theirs, ours


def unedited(emu, n=3):
    """The best-connected bodies that no (synthetic) edit touches, so they exist at every version."""
    edited = {i for op in emu.dataset.script.operations for i in op.inputs if isinstance(i, int)}
    syn = pd.read_parquet(SAMPLE_DIR / "synapses.parquet", columns=["pre", "post"])
    counts = pd.concat([syn.pre, syn.post]).value_counts()
    return [int(i) for i in counts.index if i not in edited][:n]


@pytest.mark.parametrize("materialization, pick", [("auto", "da1"), (1, "da1"), ("latest", "stable"), ("auto", "stable")])
def test_same_synapses(fafbseg_home, ds, emu, materialization, pick):
    ids = DA1[:3] if pick == "da1" else unedited(emu)
    theirs, ours = both(ds, ids, materialization)
    assert theirs.attrs["materialization"] == ours.attrs["version"]
    t = theirs.set_index("id").sort_index()
    o = ours.set_index("synapse_id").sort_index()
    assert o.index.tolist() == t.index.tolist() and len(o) > 100
    assert (o["pre"] == t["pre"]).all() and (o["post"] == t["post"]).all()
    release = pd.read_parquet(SAMPLE_DIR / "synapses.parquet").set_index("synapse_id").loc[o.index]
    for side in ("pre", "post"):
        for axis in "xyz":
            col = f"{side}_{axis}"
            np.testing.assert_array_equal(o[col], t[col])  # fafbseg's positions as they come: nm
            np.testing.assert_allclose(t[col], release[col], atol=0.5)  # within half the view's 1 nm voxel
    np.testing.assert_array_equal(o["score"], t["cleft_score"])


def test_same_min_score_semantics(fafbseg_home, ds):
    theirs = flywire.get_synapses([1734350788], materialization=1, min_score=150, progress=False)
    ours = ds.get_synapses([1734350788], materialization=1, min_score=150, progress=False)
    assert sorted(ours["synapse_id"]) == sorted(theirs["id"]) and (ours["score"] >= 150).all()


def test_same_connectivity(fafbseg_home, ds):
    theirs = flywire.get_connectivity([1734350788], materialization=1, progress=False, clean=True)
    ours = ds.get_connectivity(sources=[1734350788], targets=None, materialization=1, progress=False)
    down = theirs[theirs["pre"] == 1734350788]
    assert sorted(zip(ours.post, ours.weight)) == sorted(zip(down.post, down.weight))
