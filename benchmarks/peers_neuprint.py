"""Benchmark: connectomix vs unmodified neuprint-python on the same neuPrint emulator.

For 10, 100 and 1,000 query neurons and 0, 20 and 100 ms of injected latency per request, both tools
answer the same questions on a SYNTHETIC release served by the emulator:

* ``fetch_adjacencies(sources, None)`` vs ``get_connectivity(sources, NC(), by_roi=True)`` (per-ROI
  weights to every :Neuron -- neuprint-python's default target side);
* ``fetch_synapse_connections(sources, None, SC(confidence=0))`` vs ``get_synapses(sources, post=False)``
  restricted to :Neuron partners.

Reported: wall time (best of up to 3 runs, see ``_peers.py``), round trips and bytes served in one
run, the ratio, and whether the answers are identical.

    python benchmarks/peers_neuprint.py [--neurons 10 100 1000] [--latency 0 20 100] [--skip-synapses-above 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import make_synthetic_release  # noqa: E402
from _peers import best_of, markdown_table  # noqa: E402

TOKEN = "bench-token"
DATASET = "synthetic:v1"
VOXEL_NM = 8.0  # the synthetic release's voxel size


def same_adjacencies(theirs, ours, n_bodies) -> bool:
    """Every (pre, post, roi, weight) row equal, NotPrimary included."""
    keys = ["pre", "post", "roi"]
    a = theirs.rename(columns={"bodyId_pre": "pre", "bodyId_post": "post"})[keys + ["weight"]]
    a, b = (df.sort_values(keys).reset_index(drop=True) for df in (a, ours[keys + ["weight"]]))
    return len(a) == len(b) and bool((a.astype(str).to_numpy() == b.astype(str).to_numpy()).all())


def same_synapses(theirs, ours, n_bodies) -> bool:
    """The same partners at the same sites (neuprint-python in voxels, connectomix in nm)."""
    ours = ours[ours["post"] <= 10_000 + n_bodies]  # neuprint-python's unspecified side is :Neuron only
    sites = ["pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]
    theirs_nm = theirs[["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]].to_numpy() * VOXEL_NM
    a = sorted(zip(theirs["bodyId_pre"], theirs["bodyId_post"], *theirs_nm.T))
    b = sorted(zip(ours["pre"], ours["post"], *ours[sites].to_numpy().T))
    return a == b


def measure(neurons: list[int], latencies: list[float], skip_synapses_above: int = 1000) -> list[dict]:
    """One row per (query, neurons, latency): wall time, round trips and bytes of both tools, and whether equal."""
    from neuprint import Client, NeuronCriteria as NC, SynapseCriteria as SC
    from neuprint import fetch_adjacencies, fetch_synapse_connections

    import connectomix
    from connectomix_neuprint.emulator import NeuprintEmulator

    work = Path(tempfile.mkdtemp(prefix="cx-np-bench-"))
    n_bodies = max(neurons) * 2
    release = make_synthetic_release(work / "release", n_bodies=n_bodies, synapses_per_body=30)
    rng = np.random.default_rng(2)
    rows = []
    with NeuprintEmulator(release, token=TOKEN, dataset=DATASET) as emu:
        Client.DATASETS_CACHE.clear()
        client = Client(emu.url, dataset=DATASET, token=TOKEN, verify=str(emu.cert_path), progress=False)
        host = emu.url.split("://", 1)[1]
        ds = connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emu.cert_path), cache=False)
        neurons_only = connectomix.NC()
        for n in neurons:
            ids = sorted(int(i) for i in rng.choice(np.arange(10_001, 10_001 + n_bodies), n, replace=False))
            for latency in latencies:
                emu.faults.latency_ms = latency
                tasks = [("fetch_adjacencies",
                          lambda: fetch_adjacencies(NC(bodyId=ids), None, client=client)[1],
                          lambda: ds.get_connectivity(sources=ids, targets=neurons_only, by_roi=True, progress=False),
                          same_adjacencies)]
                if n <= skip_synapses_above:
                    tasks.append(("fetch_synapse_connections",
                                  lambda: fetch_synapse_connections(NC(bodyId=ids), None, SC(confidence=0.0),
                                                                    client=client),
                                  lambda: ds.get_synapses(ids, post=False, progress=False),
                                  same_synapses))
                for what, theirs_fn, ours_fn, same_fn in tasks:
                    measured = []
                    for fn in (theirs_fn, ours_fn):
                        emu.stats.reset()
                        df, seconds, snap = best_of(fn, after_first=emu.stats.snapshot)
                        measured.append((df, seconds, snap["requests"], snap["bytes_out"]))
                    (theirs, t_n, r_n, b_n), (ours, t_c, r_c, b_c) = measured
                    rows.append({"query": what, "neurons": n, "latency_ms": latency, "peer_s": t_n,
                                 "connectomix_s": t_c, "peer_trips": r_n, "connectomix_trips": r_c,
                                 "peer_bytes": b_n, "connectomix_bytes": b_c, "same": same_fn(theirs, ours, n_bodies)})
                    print(f"  done: {what}, {n} neurons, {latency:g} ms", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    return markdown_table("connectomix vs neuprint-python on the neuPrint emulator (SYNTHETIC data)",
                          "neuprint-python", rows, by_query=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--latency", type=float, nargs="+", default=[0, 20, 100])
    ap.add_argument("--skip-synapses-above", type=int, default=1000,
                    help="skip the synapse comparison for more neurons than this (neuprint-python is slow)")
    args = ap.parse_args()
    print(table(measure(args.neurons, args.latency, args.skip_synapses_above)))


if __name__ == "__main__":
    main()
