"""Benchmark: attach 1 million synapses to a 100,000-node skeleton.

connectomix.morphology.attach_synapses against navis's own approach (the one
fafbseg's get_synapses(attach=True) uses: navis.neuron2KDTree(n, data="nodes")
and a query per neuron, then building the connector table).

All data here is SYNTHETIC (a random-walk skeleton and jittered points).

    python benchmarks/attach_synapses.py [--nodes 100000] [--synapses 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import navis
import numpy as np
import pandas as pd

from connectomix.morphology import attach_synapses


def synthetic_skeleton(n_nodes: int, rng: np.random.Generator) -> navis.TreeNeuron:
    steps = rng.normal(0, 400, size=(n_nodes, 3))  # ~400 nm steps, in nm
    parents = np.maximum(0, np.arange(n_nodes) - rng.integers(1, 50, size=n_nodes))
    parents[0] = -1
    xyz = np.zeros((n_nodes, 3))
    for i in range(1, n_nodes):
        xyz[i] = xyz[parents[i]] + steps[i]
    nodes = pd.DataFrame({"node_id": np.arange(1, n_nodes + 1), "parent_id": np.where(parents < 0, -1, parents + 1),
                          "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "radius": 50.0})
    return navis.TreeNeuron(nodes, units="1 nm", id=1)


def synthetic_synapses(sk: navis.TreeNeuron, n: int, rng: np.random.Generator) -> pd.DataFrame:
    at = sk.nodes[["x", "y", "z"]].to_numpy()[rng.integers(0, len(sk.nodes), size=n)] + rng.normal(0, 300, (n, 3))
    pre = rng.random(n) < 0.3
    partner = rng.integers(2, 10**6, size=n)
    return pd.DataFrame({
        "synapse_id": np.arange(n), "pre": np.where(pre, 1, partner), "post": np.where(pre, partner, 1),
        "pre_x": at[:, 0], "pre_y": at[:, 1], "pre_z": at[:, 2],
        "post_x": at[:, 0], "post_y": at[:, 1], "post_z": at[:, 2],
        "score": rng.random(n), "roi": pd.Series([None] * n, dtype="string"),
    })


def navis_way(sk: navis.TreeNeuron, syn: pd.DataFrame) -> pd.DataFrame:
    """What fafbseg does for one neuron (fafbseg/flywire/synapses.py, attach=True)."""
    presyn = syn[syn.pre == sk.id][["pre_x", "pre_y", "pre_z", "score", "post"]].rename(
        columns={"pre_x": "x", "pre_y": "y", "pre_z": "z", "post": "partner_id"}).assign(type="pre")
    postsyn = syn[syn.post == sk.id][["post_x", "post_y", "post_z", "score", "pre"]].rename(
        columns={"post_x": "x", "post_y": "y", "post_z": "z", "pre": "partner_id"}).assign(type="post")
    con = pd.concat([presyn, postsyn], ignore_index=True)
    con["type"] = con["type"].astype("category")
    tree = navis.neuron2KDTree(sk, data="nodes")
    dist, ix = tree.query(con[["x", "y", "z"]].values)
    con = con[dist <= 10_000].copy()
    con["node_id"] = sk.nodes.node_id.values[ix[dist <= 10_000]]
    con.insert(0, "connector_id", np.arange(len(con)))
    return con


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--synapses", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    sk = synthetic_skeleton(args.nodes, rng)
    syn = synthetic_synapses(sk, args.synapses, rng)
    t_ours = best_of(lambda: attach_synapses(sk, syn), args.repeat)
    ours = attach_synapses(sk, syn)  # a new neuron; sk is not modified
    t_navis = best_of(lambda: navis_way(sk, syn), args.repeat)
    ref = navis_way(sk, syn)
    same = np.array_equal(ours.connectors["node_id"].to_numpy(), ref["node_id"].to_numpy())
    print(f"SYNTHETIC skeleton: {len(sk.nodes):,} nodes; {len(syn):,} synapses; best of {args.repeat}")
    print(f"{'method':<34}{'seconds':>10}")
    print(f"{'connectomix attach_synapses':<34}{t_ours:>10.3f}")
    print(f"{'navis neuron2KDTree (fafbseg way)':<34}{t_navis:>10.3f}")
    print(f"ratio navis/connectomix: {t_navis / t_ours:.2f}x; identical node ids: {same}")


if __name__ == "__main__":
    main()
