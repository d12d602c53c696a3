"""Benchmark (issue 15): SYNTHETIC releases of 10, 30, 100 million synapses on DuckDB, on Dask, and from S3.

    python benchmarks/scale.py --rows 10000000 [--rows 30000000 ...] [--ids 100] [--keep]

Every number in the generated releases is SYNTHETIC: the FlyWire-format
table of ``benchmarks/release_filter.py`` (100,000 listed neurons,
heavy-tailed synapse counts; generated and converted by its phases, i.e. the
real ``import_flywire`` importer, streaming), with 500 SYNTHETIC cell types
``T000``..``T499`` written into ``neurons.parquet``. For each size, each in
its own child process (peak memory = ``ru_maxrss`` of the child, and of each
Dask worker process, read by ``client.run``):

``duckdb-*``  ``connectomix.open("release://...")`` (engine ``duckdb``, this process only);
``dask-*``    ``engine="dask"`` on a fresh ``LocalCluster`` of 2 worker processes (1 thread each);
``s3-filter`` the release uploaded to moto's S3 server (127.0.0.1, in the child), opened as
              ``release://s3://...``: bytes fetched by s3fs's range reads vs the files' size.

Operations: ``filter`` = synapses of 100 random listed neurons (pre or post side);
``types`` = ``get_connectivity(NC(), NC(), by="type")`` over every neuron;
``profiles`` = ``partner_profiles("input")`` of every neuron. "bytes read" is
``rchar`` of ``/proc/<pid>/io`` (bytes the process read from files, page
cache included) summed over the processes that did the work. Answers are
compared between engines (an order-independent digest of the rows).
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import release_filter  # noqa: E402  (its generate/convert phases, reused as they are)

WORK = HERE / "_work" / "scale"
N_TYPES = 500
OPS = ("filter", "types", "profiles")


def _paths(rows: int) -> tuple[Path, Path]:
    base = WORK / f"{rows // 1_000_000}M"
    return base / "flywire-synthetic", base / "release"


def _rchar() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar")).split()[1])


def _peak_mb() -> int:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def _digest(df, columns) -> str:
    import pandas as pd

    rows = df[list(columns)].astype(str).agg("|".join, axis=1)
    return f"{len(df)}:{int(pd.util.hash_pandas_object(rows, index=False).sum()) % (2**61 - 1)}"


# -- phases (child processes) ---------------------------------------------------------------------------


def phase_build(args) -> dict:
    """Generate + convert with release_filter's phases, then give the neurons SYNTHETIC types."""
    import numpy as np
    import pandas as pd

    src, rel = _paths(args.rows)
    release_filter.SRC, release_filter.RELEASE = src, rel
    out = {**release_filter.phase_generate(args)}
    out.update(release_filter.phase_convert(args))
    shutil.rmtree(src, ignore_errors=True)  # the feather source is no longer needed
    neurons = pd.read_parquet(rel / "neurons.parquet")
    types = np.array([f"T{i:03d}" for i in range(N_TYPES)])
    neurons["type"] = pd.Series(types[neurons["id"].to_numpy() % N_TYPES], dtype="string")
    neurons.to_parquet(rel / "neurons.parquet", index=False)
    out["files_mb"] = {p.name: round(p.stat().st_size / 1e6) for p in rel.iterdir() if p.is_file()}
    return out


def _run_op(ds, op: str, ids) -> tuple[float, str, int]:
    from connectomix import NeuronCriteria as NC

    t0 = time.perf_counter()
    if op == "filter":
        df = ds.get_synapses(ids, progress=False, partner_types=False)
        key = ["synapse_id"]
    elif op == "types":
        df = ds.get_connectivity(NC(), NC(), by="type")
        key = ["pre_type", "post_type", "weight", "n_pre", "n_post", "n_pairs"]
    else:
        df = ds.partner_profiles("input")
        key = ["id", "partner_type", "weight", "n_partners"]
    return time.perf_counter() - t0, _digest(df, key), len(df)


def phase_duckdb(args) -> dict:
    import connectomix

    _, rel = _paths(args.rows)
    before = _rchar()
    with connectomix.open(f"release://{rel}", cache=False) as ds:
        assert ds.info.synthetic
        seconds, digest, n = _run_op(ds, args.op, release_filter._query_ids(args.ids))
    return {"s": round(seconds, 3), "digest": digest, "rows": n, "read_mb": round((_rchar() - before) / 1e6),
            "peak_mb": {"client": _peak_mb()}}


def phase_dask(args) -> dict:
    from distributed import Client, LocalCluster

    import connectomix

    _, rel = _paths(args.rows)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
        client.run(lambda: None)  # workers up and imported before the clock starts
        start = client.run(_rchar)
        before = _rchar()
        with connectomix.open(f"release://{rel}", cache=False, engine="dask", scheduler=client) as ds:
            seconds, digest, n = _run_op(ds, args.op, release_filter._query_ids(args.ids))
        end, peaks = client.run(_rchar), client.run(_peak_mb)
    read = sum(end[w] - start[w] for w in end) + _rchar() - before
    return {"s": round(seconds, 3), "digest": digest, "rows": n, "read_mb": round(read / 1e6),
            "peak_mb": {"client": _peak_mb(), **{f"worker{i}": v for i, v in enumerate(peaks.values())}}}


def phase_s3(args) -> dict:
    import s3fs
    import s3fs.core
    from moto.server import ThreadedMotoServer

    import connectomix

    _, rel = _paths(args.rows)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench"}
        fs = s3fs.S3FileSystem(**options)
        fs.mkdir("bench")
        fs.put(str(rel), "bench/release", recursive=True)
        size = sum(p.stat().st_size for p in rel.iterdir() if p.is_file())
        fetched = {"bytes": 0, "requests": 0}
        original = s3fs.core.S3File._fetch_range

        def counting(self, start, end):
            data = original(self, start, end)
            fetched["bytes"] += len(data)
            fetched["requests"] += 1
            return data

        s3fs.core.S3File._fetch_range = counting
        with connectomix.open("release://s3://bench/release", cache=False, storage_options=options) as ds:
            seconds, digest, n = _run_op(ds, "filter", release_filter._query_ids(args.ids))
    finally:
        server.stop()
    return {"s": round(seconds, 3), "digest": digest, "rows": n, "fetched_mb": round(fetched["bytes"] / 1e6, 1),
            "range_requests": fetched["requests"], "release_mb": round(size / 1e6), "peak_mb": {"process": _peak_mb()}}


PHASES = {"build": phase_build, "duckdb": phase_duckdb, "dask": phase_dask, "s3": phase_s3}


def run(phase: str, args, rows: int, op: str = "") -> dict:
    out = WORK / f".{phase}-{op}.json"
    cmd = [sys.executable, __file__, "--phase", phase, "--op", op or "filter", "--rows", str(rows), "--ids",
           str(args.ids), "--memory-limit", args.memory_limit, "--result", str(out)]
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"phase {phase} {op} ({rows:,} rows) failed")
    result = json.loads(out.read_text())
    out.unlink()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="synthetic synapse rows (repeat; default 10,000,000)")
    ap.add_argument("--ids", type=int, default=100)
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of the converter")
    ap.add_argument("--keep", action="store_true", help="keep the releases in benchmarks/_work/scale")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--op", choices=OPS, default="filter", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        args.rows = args.rows[0]
        Path(args.result).write_text(json.dumps(PHASES[args.phase](args)))
        return
    sizes = args.rows or [10_000_000]
    WORK.mkdir(parents=True, exist_ok=True)
    results = {}
    for rows in sizes:
        r = results[rows] = {}
        if not (_paths(rows)[1] / "manifest.json").is_file():
            r["build"] = run("build", args, rows)
            print(json.dumps({rows: r["build"]}), flush=True)
        for op in OPS:
            for engine in ("duckdb", "dask"):
                r[f"{engine}-{op}"] = run(engine, args, rows, op)
                print(json.dumps({rows: {f"{engine}-{op}": r[f"{engine}-{op}"]}}), flush=True)
        r["s3-filter"] = run("s3", args, rows)
        print(json.dumps({rows: {"s3-filter": r["s3-filter"]}}), flush=True)
        if not args.keep:
            shutil.rmtree(_paths(rows)[1].parent, ignore_errors=True)
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    report(results, args)


def report(results: dict, args) -> None:
    print(f"\nSYNTHETIC releases; filter = synapses of {args.ids} neurons; Dask = LocalCluster of 2 worker "
          "processes\n")
    print("| synapses | operation | engine | time s | peak MB per process | read MB | rows | same answer |")
    print("|---|---|---|---|---|---|---|---|")
    for rows, r in results.items():
        for op in OPS:
            duck, dask = r[f"duckdb-{op}"], r[f"dask-{op}"]
            same = duck["digest"] == dask["digest"]
            for name, res in (("duckdb", duck), ("dask", dask)):
                peaks = ", ".join(f"{k} {v:,}" for k, v in res["peak_mb"].items())
                print(f"| {rows / 1e6:.0f} M | {op} | {name} | {res['s']:.2f} | {peaks} | {res['read_mb']:,} | "
                      f"{res['rows']:,} | {'yes' if same else 'NO'} |")
            assert same, f"engines disagree on {op} at {rows:,} rows"
        s3 = r["s3-filter"]
        same = s3["digest"] == r["duckdb-filter"]["digest"]
        print(f"| {rows / 1e6:.0f} M | filter from S3 (moto) | duckdb | {s3['s']:.2f} | "
              f"{s3['peak_mb']['process']:,} | fetched {s3['fetched_mb']:,} of {s3['release_mb']:,} "
              f"({s3['range_requests']} range requests) | {s3['rows']:,} | {'yes' if same else 'NO'} |")
        assert same, "the S3 release answered differently"


if __name__ == "__main__":
    main()
