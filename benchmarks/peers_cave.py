"""Benchmark: connectomix vs unmodified fafbseg ``get_synapses`` on the same CAVE emulator.

For 10, 100 and 1,000 query neurons and 0, 20 and 100 ms of injected latency per request, both tools
fetch the synapses of the same SYNTHETIC neurons at materialization 1. Reported: wall time, round trips
and bytes served by the emulator, the ratio, and whether the tables are identical (same synapse ids,
partners and nm positions). connectomix runs with its on-disk cache off (a warm-cache run is shown
separately).

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

TOKEN = "bench-token"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--neurons", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--latency", type=float, nargs="+", default=[0, 20, 100])
    args = ap.parse_args()

    import fafbseg.flywire as flywire

    import connectomix
    from connectomix_cave.emulator import CaveEmulator, use_client_home

    work = Path(tempfile.mkdtemp(prefix="cx-bench-"))
    release = make_synthetic_release(work / "release", n_bodies=max(args.neurons) * 2)
    emu = CaveEmulator(release, token=TOKEN).start()
    home = work / "home"
    emu.write_client_home(home)
    rng = np.random.default_rng(1)
    all_ids = np.arange(10_001, 10_001 + max(args.neurons) * 2)
    rows = []
    with use_client_home(home):
        ds = connectomix.open("cave://flywire_fafb_public", server=emu.url, token=TOKEN, cache=False)
        cached = connectomix.open("cave://flywire_fafb_public", server=emu.url, token=TOKEN,
                                  cache=str(work / "cache"))
        for n in args.neurons:
            ids = sorted(rng.choice(all_ids, n, replace=False).tolist())
            for latency in args.latency:
                emu.faults.latency_ms = latency
                result = {}
                for name, run in (("fafbseg", lambda: flywire.get_synapses(ids, materialization=1, progress=False)),
                                  ("connectomix", lambda: ds.get_synapses(ids, materialization=1, progress=False))):
                    emu.stats.reset()
                    t0 = time.perf_counter()
                    df = run()
                    seconds = time.perf_counter() - t0
                    snap = emu.stats.snapshot()
                    result[name] = (df, seconds, emu.stats.requests(),
                                    sum(v.get("bytes_out", 0) for v in snap.values()))
                (theirs, t_f, r_f, b_f), (ours, t_c, r_c, b_c) = result["fafbseg"], result["connectomix"]
                same = (sorted(theirs["id"]) == sorted(ours["synapse_id"]) and
                        sorted(zip(theirs.pre, theirs.post)) == sorted(zip(ours.pre, ours.post)))
                cached.get_synapses(ids, materialization=1, progress=False)  # fill
                t0 = time.perf_counter()
                cached.get_synapses(ids, materialization=1, progress=False)
                t_warm = time.perf_counter() - t0
                rows.append((n, latency, t_f, t_c, t_f / t_c, r_f, r_c, b_f, b_c, t_warm, same, len(ours)))
                print(f"  done: {n} neurons, {latency:g} ms", file=sys.stderr)
    emu.stop()
    print("connectomix vs fafbseg get_synapses on the CAVE emulator (SYNTHETIC data, materialization 1)")
    print(f"{'neurons':>8}{'latency ms':>11}{'fafbseg s':>11}{'connectomix s':>14}{'ratio':>7}"
          f"{'trips f/c':>12}{'MB f/c':>14}{'warm cache s':>13}{'same':>6}{'rows':>8}")
    for n, lat, tf, tc, ratio, rf, rc, bf, bc, tw, same, nrows in rows:
        print(f"{n:>8}{lat:>11g}{tf:>11.2f}{tc:>14.2f}{ratio:>6.1f}x{f'{rf}/{rc}':>12}"
              f"{f'{bf / 1e6:.1f}/{bc / 1e6:.1f}':>14}{tw:>13.3f}{str(same):>6}{nrows:>8}")


if __name__ == "__main__":
    main()
