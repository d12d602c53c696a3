"""Benchmark: convert a SYNTHETIC 10-million-row FlyWire-format synapse table, then filter it by 100 neurons.

    python benchmarks/release_filter.py [--rows 10000000] [--ids 100] [--keep]

Every number in the generated table is SYNTHETIC (random ids, positions,
scores and neuropils in the column layout of FlyWire's
``flywire_synapses_783.feather``); the release it produces says so in its
manifest. Phases, each in its own child process:

``baseline``  import connectomix and pandas, nothing else (the interpreter's own footprint);
``generate``  write the synthetic ``flywire_synapses_783.feather`` + ``neurons.csv.gz`` in 1M-row chunks;
``convert``   ``connectomix_release.importers.import_flywire`` -> release folder (the real importer);
``filter``    ``connectomix.open("release://...").get_synapses(<ids>)``;
``pandas``    the naive way: ``pd.read_parquet`` of the whole ``synapses.parquet``, then filter.

Peak memory is each child's own ``ru_maxrss``, read by the parent with
``os.wait4`` (DuckDB allocates outside Python, so ``tracemalloc`` would miss
it). Work files go to ``benchmarks/_work/release_filter`` and are deleted at
the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "release_filter"
SRC, RELEASE = WORK / "flywire-synthetic", WORK / "release"
N_NEURONS = 100_000
ROOT = 720575940600000000
CHUNK = 1_000_000  # rows generated at a time
BATCH = 65_536  # rows per Arrow record batch, as in the real file (~130M rows in ~1,985 batches)
NEUROPILS = ["AL_L", "AL_R", "LH_L", "LH_R", "MB_CA_L", "MB_CA_R", "FB", "EB", "ME_L", "ME_R", "LO_L", "LO_R",
             "SLP_L", "SLP_R", "GNG", "UNASGD"]
SYNTHETIC = {
    "synapses": "all rows SYNTHETIC (benchmarks/release_filter.py): random ids, positions, scores, neuropils",
    "neurons": "all rows SYNTHETIC", "connections": "derived from SYNTHETIC synapses",
    "roi_counts": "derived from SYNTHETIC synapses",
}


# -- phases (run in child processes) ---------------------------------------------------------------------


def phase_baseline(args) -> dict:
    import pandas  # noqa: F401

    import connectomix  # noqa: F401

    return {}


def phase_generate(args) -> dict:
    """Write the synthetic source files chunk by chunk (never the whole table in memory)."""
    import gzip

    import numpy as np
    import pyarrow as pa

    SRC.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240602)
    ids = ROOT + np.arange(1, N_NEURONS + 1, dtype="int64")
    # heavy-tailed synapse counts per neuron, like real connectomes; 2% of partners are unlisted fragments
    weight = rng.lognormal(0, 1.2, N_NEURONS)
    p = weight / weight.sum()
    fragments = ROOT + 10**7 + np.arange(50_000, dtype="int64")
    schema = pa.schema(
        [("id", pa.int64()), ("pre_pt_root_id", pa.int64()), ("post_pt_root_id", pa.int64()),
         ("connection_score", pa.float32()), ("cleft_score", pa.int32()),
         *[(nt, pa.float32()) for nt in ("gaba", "ach", "glut", "oct", "ser", "da")],
         *[(f"{s}_pt_position_{a}", pa.int64()) for s in ("pre", "post") for a in "xyz"],
         ("neuropil", pa.string())])
    names = np.array(NEUROPILS)
    with pa.OSFile(str(SRC / "flywire_synapses_783.feather"), "wb") as sink, pa.ipc.new_file(sink, schema) as out:
        for start in range(0, args.rows, CHUNK):
            n = min(CHUNK, args.rows - start)
            pre = ids[rng.choice(N_NEURONS, n, p=p)]
            post = np.where(rng.random(n) < 0.02, fragments[rng.integers(0, len(fragments), n)],
                            ids[rng.choice(N_NEURONS, n, p=p)])
            post[rng.random(n) < 0.001] = 0  # a few synapses onto the background, as in real data
            nt = rng.dirichlet(np.ones(6), n).astype("float32")
            xyz = np.column_stack([rng.integers(300_000, 800_000, n), rng.integers(100_000, 400_000, n),
                                   rng.integers(20_000, 270_000, n)])  # nm, FAFB-like extents
            cols = [np.arange(start + 1, start + n + 1, dtype="int64"), pre, post,
                    (rng.random(n) * 400).astype("float32"), rng.integers(0, 200, n).astype("int32"),
                    *nt.T, *xyz.T, *(xyz + rng.integers(-400, 400, (n, 3))).T,
                    names[rng.integers(0, len(names), n)]]
            out.write_table(pa.table([pa.array(c) for c in cols], schema=schema), max_chunksize=BATCH)
    with gzip.open(SRC / "neurons.csv.gz", "wt") as fh:  # FlyWire Codex neurons.csv header
        fh.write("root_id,group,nt_type,nt_type_score\n")
        for i in ids:
            fh.write(f"{i},SYNTHETIC,ACH,0.5\n")
    size = (SRC / "flywire_synapses_783.feather").stat().st_size
    return {"rows": args.rows, "feather_mb": round(size / 1e6)}


def phase_convert(args) -> dict:
    from connectomix_release.importers import import_flywire

    t0 = time.perf_counter()
    dest = import_flywire(SRC, RELEASE, name="flywire-synthetic-benchmark", overwrite=True, synthetic=SYNTHETIC,
                          memory_limit=args.memory_limit)
    seconds = time.perf_counter() - t0
    files = {p.name: p.stat().st_size for p in dest.iterdir() if p.is_file()}
    return {"convert_s": round(seconds, 2), "release_mb": round(sum(files.values()) / 1e6),
            "synapses_parquet_mb": round(files["synapses.parquet"] / 1e6)}


def _query_ids(n: int) -> list[int]:
    import numpy as np

    rng = np.random.default_rng(3)
    return (ROOT + rng.choice(np.arange(1, N_NEURONS + 1), n, replace=False)).tolist()


def phase_filter(args) -> dict:
    import connectomix

    ids = _query_ids(args.ids)
    t0 = time.perf_counter()
    ds = connectomix.open(f"release://{RELEASE}", cache=False)
    t1 = time.perf_counter()
    syn = ds.get_synapses(ids, progress=False)
    t2 = time.perf_counter()
    again = ds.get_synapses(ids, progress=False)
    t3 = time.perf_counter()
    assert len(again) == len(syn)
    assert ds.info.synthetic, "the benchmark release must be labelled synthetic"
    return {"rows_returned": len(syn), "open_s": round(t1 - t0, 3), "query_s": round(t2 - t1, 3),
            "query_again_s": round(t3 - t2, 3), "digest": _digest(syn)}


def phase_pandas(args) -> dict:
    import pandas as pd

    ids = _query_ids(args.ids)
    t0 = time.perf_counter()
    df = pd.read_parquet(RELEASE / "synapses.parquet")
    table_mb = df.memory_usage(deep=True).sum() / 1e6
    hit = df[(df["pre"].isin(ids) | df["post"].isin(ids)) & (df["pre"] != df["post"])]
    seconds = time.perf_counter() - t0
    return {"rows_returned": len(hit), "query_s": round(seconds, 3), "table_in_memory_mb": round(table_mb),
            "digest": _digest(hit)}


def _digest(df) -> int:
    """Order-independent checksum of the synapse ids (both methods must return the same rows)."""
    return int(df["synapse_id"].astype("int64").sum() % (2**61 - 1))


PHASES = {"baseline": phase_baseline, "generate": phase_generate, "convert": phase_convert,
          "filter": phase_filter, "pandas": phase_pandas}


# -- parent: one child per phase, peak RSS from os.wait4 ---------------------------------------------------


def run_phase(name: str, args) -> dict:
    out = WORK / f".{name}.json"
    cmd = [sys.executable, __file__, "--phase", name, "--rows", str(args.rows), "--ids", str(args.ids),
           "--memory-limit", args.memory_limit, "--result", str(out)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if child.returncode != 0:
        raise SystemExit(f"phase {name!r} failed with exit code {child.returncode}")
    result = json.loads(out.read_text())
    out.unlink()
    result["wall_s"] = round(seconds, 2)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024)  # Linux: KiB
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="synthetic synapse rows (default 10,000,000)")
    ap.add_argument("--ids", type=int, default=100, help="neurons to fetch synapses for (default 100)")
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of the converter (default 1GB)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files in benchmarks/_work")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        Path(args.result).write_text(json.dumps(PHASES[args.phase](args)))
        return
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    try:
        results = {name: run_phase(name, args) for name in PHASES}
    finally:
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    report(results, args)


def report(r: dict, args) -> None:
    f, p, c = r["filter"], r["pandas"], r["convert"]
    print(f"\nSYNTHETIC FlyWire-format synapse table: {args.rows:,} rows, {N_NEURONS:,} listed neurons; "
          f"query: synapses of {args.ids} neurons (pre or post)\n")
    rows = [
        ("python + connectomix + pandas imported", r["baseline"], ""),
        ("generate synthetic feather (1M-row chunks)", r["generate"], f"{r['generate']['feather_mb']:,} MB feather"),
        ("convert: import_flywire -> release", r["convert"],
         f"{c['convert_s']:.1f} s in the importer; release {c['release_mb']:,} MB "
         f"(synapses.parquet {c['synapses_parquet_mb']:,} MB); DuckDB limit {args.memory_limit}"),
        ("filter: connectomix get_synapses", r["filter"],
         f"{f['rows_returned']:,} rows; open {f['open_s']:.2f} s, query {f['query_s']:.2f} s "
         f"(again {f['query_again_s']:.2f} s)"),
        ("naive: pandas read_parquet + filter", r["pandas"],
         f"{p['rows_returned']:,} rows; {p['query_s']:.2f} s; whole table {p['table_in_memory_mb']:,} MB in pandas"),
    ]
    print(f"{'phase':<44}{'wall s':>9}{'peak RSS MB':>13}  notes")
    for label, res, note in rows:
        print(f"{label:<44}{res['wall_s']:>9.2f}{res['peak_rss_mb']:>13,}  {note}")
    same = f["rows_returned"] == p["rows_returned"] and f["digest"] == p["digest"]
    whole = p["table_in_memory_mb"]
    print(f"\nsame rows from both methods: {same}")
    print(f"query time: connectomix {f['query_s']:.2f} s vs pandas {p['query_s']:.2f} s "
          f"({p['query_s'] / max(f['query_s'], 1e-9):.1f}x)")
    print(f"peak RSS of the filter phase: {f['peak_rss_mb']:,} MB = {f['peak_rss_mb'] / whole:.2f} x the whole "
          f"table in pandas ({whole:,} MB); pandas phase {p['peak_rss_mb']:,} MB; interpreter alone "
          f"{r['baseline']['peak_rss_mb']:,} MB")
    assert same, "connectomix and pandas returned different synapses"
    if whole >= 1000:  # below ~1 GB the interpreter's fixed footprint dominates any comparison
        assert f["peak_rss_mb"] < 0.5 * whole, "the filter phase used more than half the memory of the whole table"
    else:
        print("(table under 1 GB in memory: too small for the memory assertion; run with the default --rows)")


if __name__ == "__main__":
    main()
