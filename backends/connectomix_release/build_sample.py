"""Build the embedded ``sample`` release folder from real hemibrain data (+ labelled synthetic partners).

Run ``python -m connectomix_release.build_sample [DEST]`` (default: the
package's ``data/sample``). Deterministic: the same inputs give the same tables.

Real inputs
-----------
* ``navis.example_neurons()``: five hemibrain v1.2.1 DA1 lPNs (skeletons and
  14,836 synapses with ROI and confidence, in 8 nm voxels).
* ``S5_hemibrain_ALPN_meta.csv`` of flyconnectome/hemibrain_olf_data (MIT;
  Schlegel et al. 2021): 379 hemibrain olfactory projection neurons. A copy
  ships beside this script (``data/hemibrain_olf_data``).

Synthetic parts
---------------
The real data gives each DA1 synapse's own site (position, ROI, confidence)
but not its partner. Partners and partner-side positions are invented here,
drawn per ROI from plausible populations, and every invented row or body is
labelled (``manifest.synthetic``, the ``synthetic`` neuron column, the
``real_side`` synapse column, the README).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).parent
PN_TABLE = HERE / "data" / "hemibrain_olf_data" / "S5_hemibrain_ALPN_meta.csv"
DEFAULT_DEST = HERE / "data" / "sample"
VOXEL_NM = 8
SEED = 1734350788
VERSION = "v1.2.1-sample.1"

#: Synthetic partner populations: name -> (count, first id, is_neuron).
POPULATIONS = {
    "ORN_DA1 (synthetic)": (40, 9_000_000_001, True),
    "LN (synthetic)": (20, 9_000_001_001, True),
    "KC (synthetic)": (60, 9_000_002_001, True),
    "LHN (synthetic)": (30, 9_000_003_001, True),
    None: (25, 9_000_009_001, False),  # small untyped fragments (mere segments)
}

#: Who the DA1 lPNs talk to, per ROI of the real site: (population, weight) lists.
#: "PN" means a real projection neuron from the PN table (other glomeruli); "DA1" another sample DA1 lPN.
INPUTS = {
    "AL(R)": [("ORN_DA1 (synthetic)", 0.70), ("LN (synthetic)", 0.15), ("PN", 0.06), ("DA1", 0.05), (None, 0.04)],
    "default": [("LN (synthetic)", 0.30), ("LHN (synthetic)", 0.40), ("PN", 0.15), (None, 0.15)],
}
OUTPUTS = {
    "AL(R)": [("LN (synthetic)", 0.80), (None, 0.20)],
    "CA(R)": [("KC (synthetic)", 0.90), (None, 0.10)],
    "LH(R)": [("LHN (synthetic)", 0.75), ("PN", 0.10), (None, 0.15)],
    "default": [("LHN (synthetic)", 0.70), (None, 0.30)],
}


def _population_ids() -> dict:
    return {name: np.arange(first, first + count, dtype="int64") for name, (count, first, _) in POPULATIONS.items()}


def _choose(rng, table, roi, pops, pn_ids, da1_ids, self_id):
    options = table.get(roi, table["default"])
    names = [o[0] for o in options]
    weights = np.array([o[1] for o in options])
    name = names[rng.choice(len(names), p=weights / weights.sum())]
    if name == "PN":
        return int(rng.choice(pn_ids))
    if name == "DA1":
        others = da1_ids[da1_ids != self_id]
        return int(rng.choice(others))
    return int(rng.choice(pops[name]))


def _partner_site(rng, pos: np.ndarray) -> np.ndarray:
    """A synthetic partner site 20-80 nm from a real one, on the 8 nm voxel grid like the real data."""
    step = rng.normal(0, 4, 3).round() + np.sign(rng.normal(size=3)) * 3
    return pos + step * VOXEL_NM


def build(dest: Path = DEFAULT_DEST) -> Path:
    import navis

    rng = np.random.default_rng(SEED)
    pns = pd.read_csv(PN_TABLE)
    da1 = navis.example_neurons()
    da1_ids = np.array([int(n.id) for n in da1], dtype="int64")
    pops = _population_ids()
    pn_ids = pns.loc[~pns["bodyid"].isin(da1_ids) & ~pns["cell.type"].str.startswith("DA1"), "bodyid"].to_numpy()

    rows = []
    real_counts = []
    for n in da1:
        nid = int(n.id)
        c = n.connectors.sort_values("connector_id")
        xyz = c[["x", "y", "z"]].to_numpy(dtype="float64") * VOXEL_NM
        for (cid, kind, roi, conf), pos in zip(c[["connector_id", "type", "roi", "confidence"]].itertuples(index=False), xyz):
            roi = None if pd.isna(roi) else str(roi)
            real_counts.append((nid, roi, kind))
            if kind == "pre":
                # one real T-bar, 1-4 synthetic PSDs on synthetic/real partners (polyadic)
                for _ in range(1 + min(int(rng.poisson(1.2)), 3)):
                    partner = _choose(rng, OUTPUTS, roi, pops, pn_ids, da1_ids, nid)
                    rows.append((nid, partner, *pos, *_partner_site(rng, pos), conf, roi, "pre"))
            else:
                partner = _choose(rng, INPUTS, roi, pops, pn_ids, da1_ids, nid)
                rows.append((partner, nid, *_partner_site(rng, pos), *pos, conf, roi, "post"))
    syn = pd.DataFrame(rows, columns=["pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z",
                                      "score", "roi", "real_side"])
    syn = syn[syn["pre"] != syn["post"]].reset_index(drop=True)
    syn.insert(0, "synapse_id", np.arange(1, len(syn) + 1, dtype="int64"))
    syn["roi"] = syn["roi"].astype("string")
    syn["real_side"] = syn["real_side"].astype("string")
    syn = syn.sort_values(["pre", "synapse_id"]).reset_index(drop=True)

    bucket = syn["roi"].fillna("NotPrimary")
    connections = (syn.assign(roi=bucket).groupby(["pre", "post", "roi"], as_index=False).size()
                   .rename(columns={"size": "weight"}).sort_values(["pre", "post", "roi"]))
    connections["weight"] = connections["weight"].astype("int64")
    connections["roi"] = connections["roi"].astype("string")

    # per-ROI counts: real for the five DA1 lPNs (their T-bars and PSDs), derived from rows for synthetic bodies
    real = pd.DataFrame(real_counts, columns=["id", "roi", "kind"]).fillna({"roi": "NotPrimary"})
    da1_rc = real.groupby(["id", "roi", "kind"]).size().unstack("kind", fill_value=0).reset_index()
    synthetic_ids = np.concatenate(list(pops.values()))
    parts = []
    for side in ("pre", "post"):
        s = syn.assign(roi=bucket)[[side, "roi"]].rename(columns={side: "id"})
        parts.append(s[s["id"].isin(synthetic_ids)].groupby(["id", "roi"]).size().rename(side))
    syn_rc = pd.concat(parts, axis=1).fillna(0).reset_index()
    roi_counts = pd.concat([da1_rc[["id", "roi", "pre", "post"]], syn_rc], ignore_index=True)
    roi_counts[["pre", "post"]] = roi_counts[["pre", "post"]].astype("int64")
    roi_counts["roi"] = roi_counts["roi"].astype("string")
    roi_counts = roi_counts.sort_values(["id", "roi"]).reset_index(drop=True)

    real_neurons = pd.DataFrame({
        "id": pns["bodyid"].astype("int64"), "type": pns["cell.type"], "instance": pns["name"],
        "status": pns["status"], "pre": pns["pre"].astype("int64"), "post": pns["post"].astype("int64"),
        "is_neuron": True, "synthetic": False, "class": pns["class"], "glomerulus": pns["glomerulus"],
        "side": pns["side"], "cellBodyFiber": pns["cellBodyFiber"], "soma": pns["soma"].astype(bool),
    })
    totals = roi_counts.groupby("id")[["pre", "post"]].sum()
    fake = []
    for name, ids in pops.items():
        for i in ids:
            fake.append({
                "id": int(i), "type": name, "instance": None if name is None else name.replace(" (synthetic)", "_R (synthetic)"),
                "status": "synthetic", "pre": int(totals["pre"].get(i, 0)), "post": int(totals["post"].get(i, 0)),
                "is_neuron": POPULATIONS[name][2], "synthetic": True,
            })
    neurons = pd.concat([real_neurons, pd.DataFrame(fake)], ignore_index=True).sort_values("id")
    for col in ("type", "instance", "status", "class", "glomerulus", "side", "cellBodyFiber"):
        neurons[col] = neurons[col].astype("string")
    neurons["soma"] = neurons["soma"].astype("boolean")

    primary = sorted(set(real["roi"]) - {"NotPrimary"})
    manifest = {
        "format": "connectomix-release",
        "format_version": 1,
        "name": "hemibrain-olfactory-sample",
        "version": VERSION,
        "description": (
            "Five real hemibrain v1.2.1 DA1 lPNs (skeletons, 14,836 synapse sites with ROI and confidence) and "
            "the 379 hemibrain olfactory projection neurons of Schlegel et al. 2021, with SYNTHETIC synapse "
            "partners. Connectivity is only meaningful for the five DA1 lPNs, and their partners are invented."
        ),
        "source": ("hemibrain v1.2.1 (Scheffer et al. 2020, eLife 9:e57443) via navis.example_neurons; "
                   "flyconnectome/hemibrain_olf_data S5_hemibrain_ALPN_meta.csv (Schlegel et al. 2021, eLife "
                   "10:e66018)"),
        "license": "hemibrain data CC BY 4.0; PN table MIT; synthetic parts CC0",
        "citation": "Scheffer et al. 2020 eLife 9:e57443; Schlegel et al. 2021 eLife 10:e66018",
        "voxel_size_nm": [VOXEL_NM] * 3,
        "rois": primary,
        "primary_rois": primary,
        "score_name": "confidence",
        "synthetic": {
            "synapses": "partner ids and partner-side positions are synthetic; the side named in real_side "
                        "(position, roi, score) is real",
            "connections": "derived from the synapses, so every weight involves a synthetic partner assignment",
            "neurons": "rows with synthetic=True (ids 9000000001 and up) are invented partner bodies",
            "roi_counts": "real for the five DA1 lPNs; derived from synthetic rows for synthetic bodies",
        },
    }

    tmp = Path(tempfile.mkdtemp(prefix="sample-", dir=dest.parent if dest.parent.exists() else None))
    tmp.chmod(0o755)
    try:
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        neurons.to_parquet(tmp / "neurons.parquet", index=False)
        connections.to_parquet(tmp / "connections.parquet", index=False)
        roi_counts.to_parquet(tmp / "roi_counts.parquet", index=False)
        syn.to_parquet(tmp / "synapses.parquet", index=False, row_group_size=131_072)
        (tmp / "skeletons").mkdir()
        for n in da1:
            _write_swc(n, tmp / "skeletons" / f"{int(n.id)}.swc")
        (tmp / "README.md").write_text(_readme(manifest, neurons, syn))
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return dest


def _write_swc(n, path: Path) -> None:
    nodes = n.nodes
    lines = [
        f"# hemibrain v1.2.1 body {int(n.id)} ({n.name}), from navis.example_neurons (Scheffer et al. 2020, CC BY 4.0)",
        "# units: nm (converted from 8 nm voxels); columns: node_id type x y z radius parent_id",
    ]
    for r in nodes[["node_id", "x", "y", "z", "radius", "parent_id"]].itertuples(index=False):
        lines.append(f"{int(r.node_id)} 0 {r.x * VOXEL_NM:.3f} {r.y * VOXEL_NM:.3f} {r.z * VOXEL_NM:.3f} "
                     f"{(r.radius if pd.notna(r.radius) else 0) * VOXEL_NM:.3f} {int(r.parent_id)}")
    path.write_text("\n".join(lines) + "\n")


def _readme(manifest: dict, neurons: pd.DataFrame, syn: pd.DataFrame) -> str:
    n_syn_neurons = int(neurons["synthetic"].sum())
    return f"""# {manifest['name']} ({manifest['version']})

The embedded default dataset of connectomix (`connectomix.open("sample")`). Built by
`python -m connectomix_release.build_sample`.

## Real
* 379 hemibrain olfactory projection neurons (ids, types, instances, pre/post totals, class, glomerulus,
  side, cell body fibre): `S5_hemibrain_ALPN_meta.csv` from flyconnectome/hemibrain_olf_data (MIT),
  Schlegel et al. (2021) *eLife* 10:e66018.
* Five DA1 lPNs (1734350788, 1734350908, 722817260, 754534424, 754538881) from hemibrain v1.2.1
  (Scheffer et al. (2020) *eLife* 9:e57443, CC BY 4.0) as shipped with navis (`navis.example_neurons()`):
  skeletons (`skeletons/*.swc`, converted to nm) and all 14,836 of their synapse sites with position
  (8 nm voxels x 8 = nm), ROI and confidence. Their per-ROI counts in `roi_counts.parquet` are real.

## SYNTHETIC
* The partner of every DA1 synapse, and the partner-side position: hemibrain does not ship them with the
  example neurons, so they are drawn per ROI from plausible populations (ORNs and LNs in the antennal lobe,
  Kenyon cells in the calyx, LH neurons in the lateral horn, other real PNs, small fragments).
  Column `real_side` of `synapses.parquet` says which side of each row is real.
* {n_syn_neurons} partner bodies (ids from 9000000001, `synthetic=True`, type names ending in "(synthetic)";
  25 of them untyped fragments with `is_neuron=False`).
* `connections.parquet` is derived from the synapses, so every weight depends on the synthetic partners.
  Connectivity is only complete for the five DA1 lPNs; for the other PNs only their real totals are known.

{len(syn):,} synaptic connections in total. Licences: hemibrain data CC BY 4.0, PN table MIT, synthetic
parts CC0. Cite Scheffer et al. 2020 and Schlegel et al. 2021 when you use the real parts.
"""


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DEST))
