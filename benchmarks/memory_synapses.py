"""Benchmark: memory of fetching millions of synapse rows, with every backend.

Target (issue 6): fetching 5 million synapse rows stays within 3x the size of the resulting DataFrame.

The parent writes a SYNTHETIC release (``--rows`` synapses). The release backend reads it directly;
for CAVE and neuPrint the parent starts that backend's emulator **as its own process**
(``python -m connectomix_<name>.emulator``) serving it. The client always runs in a process of its
own, so its peak RSS contains nothing but the client: imports, ``connectomix.open``, then
``get_synapses(<every body>, post=False)``, which returns every synapse (CAVE: every synapse of its
default filtered view). The client reports its resident set before the fetch (the baseline), its
peak (``VmHWM``) and the deep size of the returned DataFrame (``memory_usage(deep=True)``).

    python benchmarks/memory_synapses.py [--rows 5000000] [--backends release cave neuprint] [--keep]

"Within 3x" is checked on what the fetch adds: ``peak - baseline <= 3 x DataFrame size``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

TOKEN = "memory-bench-token"
SYNAPSES_PER_BODY = 1000
TARGET = 3.0
EMULATOR_START_TIMEOUT = 1800  # building a 5M-synapse neuPrint graph takes minutes on 2 cores


def _status_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak) of this process, from /proc/self/status.

    Not ``ru_maxrss``: Linux carries the parent's peak over fork and exec into it, and the parent
    here has just built the whole synthetic table.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1e3  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def client(backend: str, url: str, extra: str, n_bodies: int) -> None:
    """The measured process: open the dataset, fetch every synapse once, print one JSON line."""
    import numpy as np

    import connectomix

    host = url.split("://", 1)[-1]
    if backend == "release":
        ds = connectomix.open(f"release://{url}", cache=False)
    elif backend == "cave":
        ds = connectomix.open("cave://flywire_fafb_public", server=url, token=TOKEN, cache=False,
                              materialization=1)
    else:
        ds = connectomix.open(f"neuprint://{host}/synthetic:v1", token=TOKEN, verify=extra, cache=False)
    ids = np.arange(10_001, 10_001 + n_bodies, dtype="int64")
    ds.get_synapses(ids[:1], post=False, progress=False)  # connections and metadata warm, as in a notebook
    baseline = _status_mb("VmRSS")
    t0 = time.perf_counter()
    df = ds.get_synapses(ids, post=False, progress=False)
    seconds = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    print(json.dumps({"rows": len(df), "df_mb": df.memory_usage(deep=True).sum() / 1e6, "baseline_mb": baseline,
                      "peak_mb": peak, "seconds": seconds}))


def _start_emulator(backend: str, release: Path) -> tuple[subprocess.Popen, str, str]:
    module = f"connectomix_{backend}.emulator"
    cmd = [sys.executable, "-m", module, "--release", str(release), "--token", TOKEN]
    if backend == "neuprint":
        cmd += ["--dataset", "synthetic:v1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = cert = ""
    deadline = time.monotonic() + EMULATOR_START_TIMEOUT
    for line in proc.stdout:  # type: ignore[union-attr]
        if m := re.search(r"(https?://127\.0\.0\.1:\d+)", line):
            url = url or m.group(1)
        if m := re.search(r"cert:\s+(\S+)", line):
            cert = m.group(1)
        if url and (backend == "cave" or cert):
            return proc, url, cert
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"the {backend} emulator did not start:\n{proc.stdout.read() if proc.stdout else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5_000_000, help="synapses in the synthetic release")
    ap.add_argument("--backends", nargs="+", default=["release", "cave", "neuprint"],
                    choices=["release", "cave", "neuprint"])
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--client", nargs=4, metavar=("BACKEND", "URL", "EXTRA", "BODIES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        backend, url, extra, bodies = args.client
        client(backend, url, extra, int(bodies))
        return

    from _synthetic import make_synthetic_release

    n_bodies = max(2, args.rows // SYNAPSES_PER_BODY)
    work = Path(tempfile.mkdtemp(prefix="cx-mem-bench-"))
    try:
        t0 = time.perf_counter()
        release = make_synthetic_release(work / "release", n_bodies=n_bodies, synapses_per_body=SYNAPSES_PER_BODY)
        print(f"SYNTHETIC release: {n_bodies:,} bodies, ~{args.rows:,} synapses "
              f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        results = []
        for backend in args.backends:
            proc, url, cert = None, str(release), ""
            if backend != "release":
                t0 = time.perf_counter()
                proc, url, cert = _start_emulator(backend, release)
                print(f"{backend} emulator up in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            try:
                out = subprocess.run([sys.executable, __file__, "--client", backend, url, cert or "-", str(n_bodies)],
                                     capture_output=True, text=True, check=False)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=60)
            if out.returncode != 0:
                raise SystemExit(f"{backend} client failed:\n{out.stderr}")
            results.append((backend, json.loads(out.stdout.strip().splitlines()[-1])))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(f"Memory of get_synapses (SYNTHETIC data, {args.rows:,} synapses; CAVE and neuPrint via their emulators)")
    print(f"{'backend':<10}{'rows':>11}{'DataFrame MB':>14}{'baseline MB':>13}{'peak MB':>9}"
          f"{'added/DF':>10}{'seconds':>9}  within {TARGET:g}x")
    for backend, r in results:
        added = (r["peak_mb"] - r["baseline_mb"]) / r["df_mb"]
        print(f"{backend:<10}{r['rows']:>11,}{r['df_mb']:>14.0f}{r['baseline_mb']:>13.0f}{r['peak_mb']:>9.0f}"
              f"{added:>9.2f}x{r['seconds']:>9.1f}  {'yes' if added <= TARGET else 'NO'}")


if __name__ == "__main__":
    main()
