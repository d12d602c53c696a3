"""pytest helpers: an emulator fixture factory, a tiny SYNTHETIC release, and client shortcuts.

In a test module or ``conftest.py``::

    from connectomix_cave.emulator.testing import cave_emulator_fixture

    cave = cave_emulator_fixture(release_fixture="my_release_dir", row_limit=50)

    def test_versions(cave):
        client = make_client(cave)
        assert client.materialize.get_versions() == cave.valid_versions

The fixture yields a started :class:`~.emulator.CaveEmulator` and stops it
afterwards; with ``scope="function"`` (the default) every test gets a fresh
emulator (fresh faults, counters and row limit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .emulator import CaveEmulator

__all__ = ["cave_emulator_fixture", "make_client", "write_tiny_release", "sample_release_path", "TINY_VOXEL_NM"]

#: Voxel size of :func:`write_tiny_release` (FlyWire's).
TINY_VOXEL_NM = (4, 4, 40)


def sample_release_path() -> Path | None:
    """The embedded sample release of ``connectomix_release``, if it is installed and complete."""
    try:
        import connectomix_release
    except ImportError:
        return None
    path = Path(connectomix_release.__file__).parent / "data" / "sample"
    needed = ("manifest.json", "neurons.parquet", "synapses.parquet")
    return path if all((path / n).is_file() for n in needed) else None


def make_client(emulator: CaveEmulator, datastack: str | None = None, **kwargs: Any):
    """An unmodified ``CAVEclient`` for the emulator (never writes the user's server cache)."""
    from caveclient import CAVEclient

    kwargs.setdefault("write_server_cache", False)
    return CAVEclient(datastack or emulator.datastack, server_address=emulator.url, auth_token=emulator.token,
                      **kwargs)


def cave_emulator_fixture(release: str | Path | None = None, *, release_fixture: str | None = None,
                          scope: str = "function", name: str | None = None, **options: Any) -> Callable:
    """Create a pytest fixture yielding a started :class:`CaveEmulator`.

    Parameters
    ----------
    release
        Release folder to serve, or ``None`` with ``release_fixture``.
    release_fixture
        Name of another fixture that returns the release folder (e.g. one that
        writes :func:`write_tiny_release` into ``tmp_path_factory``).
    scope, name
        pytest fixture scope and (optional) fixture name.
    **options
        Passed to :class:`CaveEmulator` (``edits=``, ``row_limit=``, ``token=`` ...).
        A callable ``edits`` is called with the pytest ``request`` first (to
        build a script from other fixtures).
    """
    import pytest

    if (release is None) == (release_fixture is None):
        raise ValueError("give exactly one of release= or release_fixture=")

    @pytest.fixture(scope=scope, name=name)
    def _fixture(request):
        folder = release if release is not None else request.getfixturevalue(release_fixture)
        kwargs = dict(options)
        if callable(kwargs.get("edits")):
            kwargs["edits"] = kwargs["edits"](request)
        with CaveEmulator(folder, **kwargs) as emu:
            yield emu

    return _fixture


def write_tiny_release(folder: str | Path, *, seed: int = 7, n_synapses: int = 600) -> Path:
    """Write a small, fully SYNTHETIC release folder (``connectomix_release/FORMAT.md``).

    Twelve bodies (ids 101-112; some untyped), ``n_synapses`` synapses plus a
    few near-duplicates (same partners, post site 4 nm away, lower score) so
    de-duplication can be tested, confidences from 0.3 to 1.0 (some at or
    below 0.5), positions on the (4, 4, 40) nm voxel grid, three ROIs.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = np.arange(101, 113, dtype=np.int64)
    types = ["PN_a", "PN_a", "PN_b", "LN", "KC", "KC", "KC", None, "MBON", None, "LHN", "LHN"]
    weight = np.linspace(3.0, 1.0, len(ids))
    weight /= weight.sum()
    pre = rng.choice(ids, size=n_synapses, p=weight)
    post = rng.choice(ids, size=n_synapses, p=weight[::-1])
    centers = rng.integers(1_000, 20_000, size=(len(ids), 3)) * np.array([10, 10, 1])
    voxel = np.array(TINY_VOXEL_NM)

    def sites(bodies: np.ndarray) -> np.ndarray:
        offset = rng.integers(-400, 400, size=(len(bodies), 3)) * np.array([4, 4, 1])
        return (centers[bodies - 101] + offset) * voxel

    pre_xyz, post_xyz = sites(pre), sites(post)
    score = np.round(rng.uniform(0.3, 1.0, size=n_synapses), 3)
    rois = np.array(["AL_R", "LH_R", "MB_CA_R"])
    roi = rois[(post_xyz[:, 0] // (voxel[0] * 70_000)) % 3].astype(object)
    roi[rng.random(n_synapses) < 0.05] = None
    syn = pd.DataFrame({"synapse_id": np.arange(1, n_synapses + 1, dtype=np.int64) * 10, "pre": pre, "post": post,
                        "pre_x": pre_xyz[:, 0], "pre_y": pre_xyz[:, 1], "pre_z": pre_xyz[:, 2],
                        "post_x": post_xyz[:, 0], "post_y": post_xyz[:, 1], "post_z": post_xyz[:, 2],
                        "score": score, "roi": roi})
    dup_src = syn.sample(n=12, random_state=seed)
    dups = dup_src.assign(synapse_id=dup_src["synapse_id"] + 1, post_x=dup_src["post_x"] + 4.0,
                          score=np.round(dup_src["score"] - 0.01, 3))
    syn = pd.concat([syn, dups], ignore_index=True)
    syn = syn[syn["pre"] != syn["post"]].copy()
    for c in ("pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z", "score"):
        syn[c] = syn[c].astype("float64")
    syn["roi"] = syn["roi"].astype("string")
    syn = syn.sort_values(["pre", "synapse_id"]).reset_index(drop=True)
    pre_counts = syn["pre"].value_counts()
    post_counts = syn["post"].value_counts()
    neurons = pd.DataFrame({
        "id": ids,
        "type": pd.array(types, dtype="string"),
        "instance": pd.array([f"{t}_R" if t else None for t in types], dtype="string"),
        "status": pd.array(["Traced"] * len(ids), dtype="string"),
        "pre": np.array([int(pre_counts.get(i, 0)) for i in ids], dtype=np.int64),
        "post": np.array([int(post_counts.get(i, 0)) for i in ids], dtype=np.int64),
        "is_neuron": np.ones(len(ids), dtype=bool),
    })
    conn = (syn.assign(roi=syn["roi"].fillna("NotPrimary"))
            .groupby(["pre", "post", "roi"], as_index=False).size().rename(columns={"size": "weight"}))
    conn["weight"] = conn["weight"].astype(np.int64)
    conn["roi"] = conn["roi"].astype("string")
    manifest = {
        "format": "connectomix-release", "format_version": 1, "name": "cave-emulator-tiny", "version": "v1",
        "description": "A tiny SYNTHETIC release for CAVE emulator tests.", "source": "generated",
        "license": "CC0", "citation": "none", "voxel_size_nm": list(TINY_VOXEL_NM),
        "rois": list(rois), "primary_rois": list(rois), "score_name": "confidence",
        "synthetic": {"neurons": "all rows", "synapses": "all rows", "connections": "all rows"},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    conn.sort_values(["pre", "post", "roi"]).to_parquet(folder / "connections.parquet", index=False)
    syn.to_parquet(folder / "synapses.parquet", index=False)
    return folder
