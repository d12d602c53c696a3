"""Benchmark: connectomix vs unmodified fafbseg ``get_synapses`` on the same CAVE emulator.

For 10, 100 and 1,000 query neurons and 0, 20 and 100 ms of injected latency per request, both tools
fetch the synapses of the same SYNTHETIC neurons at materialization 1. Reported: wall time (best of
up to 3 runs, see ``_peers.py``), round trips and bytes served by the emulator in one run, the
ratio, and whether the tables are identical (same synapse ids, partners and nm positions).
connectomix runs with its on-disk cache off (a warm-cache run is shown separately); both tools keep
what they memoise in memory between runs, as they would in a notebook.

    python benchmarks/peers_cave.py [--neurons 10 100 1000] [--latency 0 20 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _synthetic import make_synthetic_release  # noqa: E402
from _peers import best_of, markdown_table  # noqa: E402

TOKEN = "bench-token"


def measure(neurons: list[int], latencies: list[float]) -> list[dict]:
    """One row per (neurons, latency): wall time, round trips and bytes of both tools, and whether equal."""
    import fafbseg.flywire as flywire

    import connectomix
    from connectomix_cave.emulator import CaveEmulator, use_client_home

    work = Path(tempfile.mkdtemp(prefix="cx-bench-"))
    release = make_synthetic_release(work / "release", n_bodies=max(neurons) * 2)
    emu = CaveEmulator(release, token=TOKEN).start()
    home = work / "home"
    emu.write_client_home(home)
    rng = np.random.default_rng(1)
    all_ids = np.arange(10_001, 10_001 + max(neurons) * 2)
    rows = []
    try:
        with use_client_home(home):
            ds = connectomix.open("cave://flywire_fafb_public", server=emu.url, token=TOKEN, cache=False)
            cached = connectomix.open("cave://flywire_fafb_public", server=emu.url, token=TOKEN,
                                      cache=str(work / "cache"))
            for n in neurons:
                ids = sorted(rng.choice(all_ids, n, replace=False).tolist())
                for latency in latencies:
                    emu.faults.latency_ms = latency
                    result = {}
                    for name, run in (
                        ("peer", lambda: flywire.get_synapses(ids, materialization=1, progress=False)),
                        ("connectomix", lambda: ds.get_synapses(ids, materialization=1, progress=False)),
                    ):
                        emu.stats.reset()
                        df, seconds, (trips, snap) = best_of(
                            run, after_first=lambda: (emu.stats.requests(), emu.stats.snapshot()))
                        result[name] = (df, seconds, trips, sum(v.get("bytes_out", 0) for v in snap.values()))
                    (theirs, t_f, r_f, b_f), (ours, t_c, r_c, b_c) = result["peer"], result["connectomix"]
                    same = (sorted(theirs["id"]) == sorted(ours["synapse_id"]) and
                            sorted(zip(theirs.pre, theirs.post)) == sorted(zip(ours.pre, ours.post)))
                    cached.get_synapses(ids, materialization=1, progress=False)  # fill
                    t0 = time.perf_counter()
                    cached.get_synapses(ids, materialization=1, progress=False)
                    rows.append({"query": "get_synapses", "neurons": n, "latency_ms": latency,
                                 "peer_s": t_f, "connectomix_s": t_c, "peer_trips": r_f, "connectomix_trips": r_c,
                                 "peer_bytes": b_f, "connectomix_bytes": b_c,
                                 "warm_s": time.perf_counter() - t0, "same": same, "rows": len(ours)})
                    print(f"  done: {n} neurons, {latency:g} ms", file=sys.stderr)
    finally:
        emu.stop()
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a Markdown table."""
    title = "connectomix vs fafbseg get_synapses on the CAVE emulator (SYNTHETIC data, materialization 1)"
    return markdown_table(title, "fafbseg", rows, extra={"warm cache s": "{warm_s:.3f}"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--latency", type=float, nargs="+", default=[0, 20, 100])
    args = ap.parse_args()
    print(table(measure(args.neurons, args.latency)))


if __name__ == "__main__":
    main()
