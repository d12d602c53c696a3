"""Benchmark: connectomix against neuprint-python and fafbseg, both on their emulators, in one command.

Runs :mod:`peers_cave` (fafbseg ``get_synapses``) and :mod:`peers_neuprint` (neuprint-python
``fetch_adjacencies`` and ``fetch_synapse_connections``) for 10, 100 and 1,000 query neurons at 0, 20
and 100 ms of injected latency per request, prints both Markdown tables and checks the issue's target:
at least 3x faster than the peer at 20 ms for 100+ neurons, with identical results. All data is
SYNTHETIC. The whole grid takes about an hour on 2 cores, nearly all of it neuprint-python's
per-neuron synapse queries; ``--quick`` runs 10 and 100 neurons at 20 ms only.

    python benchmarks/peers.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import peers_cave  # noqa: E402
import peers_neuprint  # noqa: E402

TARGET = 3.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 and 100 neurons at 20 ms only")
    args = ap.parse_args()
    neurons, latencies = ([10, 100], [20]) if args.quick else ([10, 100, 1000], [0, 20, 100])
    cave = peers_cave.measure(neurons, latencies)
    neuprint = peers_neuprint.measure(neurons, latencies)
    print(peers_cave.table(cave), end="\n\n")
    print(peers_neuprint.table(neuprint), end="\n\n")
    checked = [r for r in cave + neuprint if r["neurons"] >= 100 and r["latency_ms"] == 20]
    missed = [r for r in checked if r["peer_s"] / r["connectomix_s"] < TARGET or not r["same"]]
    all_same = all(r["same"] for r in cave + neuprint)
    print(f"target (>= {TARGET:g}x at 20 ms for 100+ neurons, identical): "
          + ("met" if checked and not missed else f"MISSED in {len(missed)} of {len(checked)} rows")
          + f"; identical results in every row: {'yes' if all_same else 'NO'}")
    for r in missed:
        print(f"  missed: {r['query']} {r['neurons']} neurons: {r['peer_s'] / r['connectomix_s']:.1f}x"
              f"{'' if r['same'] else ', results differ'}")


if __name__ == "__main__":
    main()
