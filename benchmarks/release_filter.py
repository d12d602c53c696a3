"""Benchmark: convert a 10-million-row SYNTHETIC synapse table and filter it by 100 neuron ids.

Phases run in separate child processes so each peak-RSS figure is honest:

1. generate  -- a SYNTHETIC FlyWire-format synapse table (``flywire_synapses_783.feather``) plus its
               ``connections.csv.gz``, written in chunks (never whole in memory);
2. convert   -- ``connectomix convert flywire`` (``import_flywire``) into a release folder;
3. filter    -- ``connectomix.open("release://...").get_synapses(<100 ids>)``;
4. pandas    -- the naive baseline: ``pd.read_parquet`` of the whole synapse table, then filter.

    python benchmarks/release_filter.py [--rows 10000000] [--ids 100] [--keep]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(__file__).parent / "_work" / "release_filter"
N_NEURONS = 50_000


def phase_generate(rows: int) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.feather  # noqa: F401

    src = WORK / "flywire"
    src.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    ids = 720575940000000000 + np.arange(1, N_NEURONS + 1, dtype="int64")
    schema = pa.schema([("id", pa.int64()), ("pre_pt_root_id", pa.int64()), ("post_pt_root_id", pa.int64()),
                        *[(f"{s}_{a}", pa.int64()) for s in ("pre", "post") for a in "xyz"],
                        ("cleft_score", pa.int64()), ("neuropil", pa.string())])
    neuropils = np.array(["AL_R", "AL_L", "LH_R", "LH_L", "MB_CA_R", "ME_R", "LO_R", "UNASGD"])
    chunk = 1_000_000
    with pa.OSFile(str(src / "flywire_synapses_783.feather"), "wb") as sink, pa.ipc.new_file(sink, schema) as w:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            pre = ids[rng.zipf(1.6, n) % N_NEURONS]
            post = ids[rng.integers(0, N_NEURONS, n)]
            xyz = rng.integers(0, 250_000, size=(n, 3))
            w.write_batch(pa.record_batch([
                pa.array(np.arange(start + 1, start + n + 1)), pa.array(pre), pa.array(post),
                *[pa.array(xyz[:, i]) for i in range(3)], *[pa.array(xyz[:, i] + 8) for i in range(3)],
                pa.array(rng.integers(0, 200, n)), pa.array(neuropils[rng.integers(0, len(neuropils), n)]),
            ], schema=schema))
    import duckdb

    con = duckdb.connect()
    import pyarrow.dataset as pads

    con.register("syn", pads.dataset(str(src / "flywire_synapses_783.feather"), format="ipc"))
    con.execute(f"COPY (SELECT pre_pt_root_id AS pre_root_id, post_pt_root_id AS post_root_id, neuropil, "
                f"count(*) AS syn_count FROM syn GROUP BY 1, 2, 3) TO '{src / 'connections.csv.gz'}' "
                f"(HEADER, COMPRESSION gzip)")
    return {"rows": rows}


def phase_convert() -> dict:
    from connectomix_release.importers import import_flywire

    dest = import_flywire(WORK / "flywire", WORK / "release", version="synthetic-bench", overwrite=True)
    return {"folder_mb": round(sum(p.stat().st_size for p in dest.rglob("*") if p.is_file()) / 1e6, 1)}


def _query_ids(n: int):
    import numpy as np

    rng = np.random.default_rng(3)
    return (720575940000000000 + rng.choice(np.arange(1, N_NEURONS + 1), n, replace=False)).tolist()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_filter(n_ids: int) -> dict:
    import connectomix

    ids = _query_ids(n_ids)
    before = _rss_mb()
    t0 = time.perf_counter()
    ds = connectomix.open(f"release://{WORK / 'release'}", cache=False)
    syn = ds.get_synapses(ids, progress=False)
    return {"rows_returned": len(syn), "query_s": round(time.perf_counter() - t0, 3),
            "rss_added_mb": round(_rss_mb() - before, 1)}


def phase_pandas(n_ids: int) -> dict:
    import pandas as pd

    ids = _query_ids(n_ids)
    before = _rss_mb()
    t0 = time.perf_counter()
    df = pd.read_parquet(WORK / "release" / "synapses.parquet")
    hit = df[(df.pre.isin(ids) | df.post.isin(ids)) & (df.pre != df.post)]
    return {"rows_returned": len(hit), "query_s": round(time.perf_counter() - t0, 3),
            "rss_added_mb": round(_rss_mb() - before, 1),
            "table_mb_in_memory": round(df.memory_usage(deep=True).sum() / 1e6, 1)}


def run_phase(name: str, *extra: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--phase", name, *extra], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--ids", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the generated files in benchmarks/_work")
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        fn = {"generate": lambda: phase_generate(args.rows), "convert": phase_convert,
              "filter": lambda: phase_filter(args.ids), "pandas": lambda: phase_pandas(args.ids)}[args.phase]
        result = fn()
        result["peak_rss_mb"] = round(_rss_mb(), 1)
        print(json.dumps(result))
        return
    if WORK.exists():
        shutil.rmtree(WORK)
    try:
        results = {
            "generate": run_phase("generate", "--rows", str(args.rows)),
            "convert": run_phase("convert"),
            "filter": run_phase("filter", "--ids", str(args.ids)),
            "pandas": run_phase("pandas", "--ids", str(args.ids)),
        }
    finally:
        if not args.keep and WORK.exists():
            shutil.rmtree(WORK)
    print(f"SYNTHETIC synapse table: {args.rows:,} rows; query: {args.ids} neuron ids (pre or post)")
    print(f"{'phase':<44}{'seconds':>9}{'peak RSS MB':>13}  notes")
    labels = {"generate": "generate FlyWire-format feather (synthetic)", "convert": "connectomix convert flywire",
              "filter": "connectomix get_synapses (DuckDB pushdown)", "pandas": "pandas: read whole table + filter"}
    for key, r in results.items():
        notes = {k: v for k, v in r.items() if k not in ("seconds", "peak_rss_mb")}
        print(f"{labels[key]:<44}{r['seconds']:>9.2f}{r['peak_rss_mb']:>13.1f}  {notes}")
    f, p = results["filter"], results["pandas"]
    assert f["rows_returned"] == p["rows_returned"], "connectomix and pandas disagree"
    print(f"same {f['rows_returned']:,} rows. Query alone: connectomix {f['query_s']:.2f}s, pandas {p['query_s']:.2f}s "
          f"({p['query_s'] / f['query_s']:.1f}x). Memory added by the query: connectomix {f['rss_added_mb']:.0f} MB "
          f"= {f['rss_added_mb'] / p['table_mb_in_memory']:.2f}x the whole table ({p['table_mb_in_memory']:.0f} MB "
          f"in pandas); pandas {p['rss_added_mb']:.0f} MB")


if __name__ == "__main__":
    main()
