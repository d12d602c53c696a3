"""Benchmark (issue 15): SYNTHETIC releases of 10, 30, 100 million synapses on DuckDB, on Dask, and from S3.

    python benchmarks/scale.py --rows 10000000 [--rows 30000000 ...] [--ids 100] [--ops filter ...] [--keep]

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

Operations (``--ops``, default all): ``filter`` = synapses of 100 random listed neurons (pre or
post side): time of the first query after opening (footers read then) and of the same query again;
``types`` = ``get_connectivity(NC(), NC(), by="type")`` over every neuron;
``profiles`` = ``partner_profiles("input")`` of every neuron. "bytes read" is
``rchar`` of ``/proc/<pid>/io`` (bytes the process read from files, page
cache included) summed over the processes that did the work. Answers are
compared between engines (an order-independent digest of the rows). From S3,
the bytes fetched by the filter are split into footers and row groups and set
beside the compressed size of the row groups the filter selects (pyarrow
statistics of the local copy) and the size of the two synapse files.
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
    """An order-independent digest of the rows: the same rows give the same digest whatever the dtypes.

    Integers are hashed as int64, floats as float64 and anything else as its text, one vectorised row
    hash per row (the 100 M ``profiles`` answer has tens of millions of rows).
    """
    import pandas as pd

    def canonical(s):
        if pd.api.types.is_integer_dtype(s.dtype):
            return s.astype("int64")
        if pd.api.types.is_float_dtype(s.dtype):
            return s.astype("float64")
        return s.astype(str).astype(object)

    frame = pd.DataFrame({c: canonical(df[c]) for c in columns})
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return f"{len(df)}:{int(hashes.sum(dtype='uint64')) % (2**61 - 1)}"


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


def _run_op(ds, op: str, cpu=time.process_time) -> dict:
    """One whole-dataset operation: wall and CPU seconds (``cpu()``, as in ``_filter``), digest, rows."""
    from connectomix import NeuronCriteria as NC

    c0, t0 = cpu(), time.perf_counter()
    if op == "types":
        df = ds.get_connectivity(NC(), NC(), by="type")
        key = ["pre_type", "post_type", "weight", "n_pre", "n_post", "n_pairs"]
    else:
        df = ds.partner_profiles("input")
        key = ["id", "partner_type", "weight", "n_partners"]
    seconds, cpu_s = round(time.perf_counter() - t0, 3), round(cpu() - c0, 3)
    return {"s": seconds, "cpu_s": cpu_s, "digest": _digest(df, key), "rows": len(df)}


def _group_rows(rel: Path) -> int:
    """Rows per row group of the release's synapse file (the layout a filter reads)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(rel / "synapses.parquet").metadata.row_group(0).num_rows


def _filter(ds, ids, cpu=time.process_time, between=lambda: None, again: bool = True) -> dict:
    """The id filter twice: the first query after opening (footers parsed then) and the same again.

    Wall seconds and CPU seconds (``cpu()``: of the processes doing the work; on a shared machine the
    CPU time is what the query costs, the wall time what it waited too).
    """
    out = {}
    for label in ("", "again_")[:2 if again else 1]:
        c0, t0 = cpu(), time.perf_counter()
        df = ds.get_synapses(ids, progress=False, partner_types=False)
        out[f"{label}s"], out[f"{label}cpu_s"] = round(time.perf_counter() - t0, 3), round(cpu() - c0, 3)
        digest = _digest(df, ["synapse_id"])
        assert out.setdefault("digest", digest) == digest
        if not label:
            between()
    return {**out, "rows": len(df)}


def phase_duckdb(args) -> dict:
    import connectomix

    _, rel = _paths(args.rows)
    before = _rchar()
    t0 = time.perf_counter()
    limit = {"memory_limit": args.query_memory_limit} if args.query_memory_limit else {}
    with connectomix.open(f"release://{rel}", cache=False, **limit) as ds:
        opened = time.perf_counter() - t0
        assert ds.info.synthetic
        if args.op == "filter":
            out = _filter(ds, release_filter._query_ids(args.ids))
        else:
            out = _run_op(ds, args.op)
    return {**out, "open_s": round(opened, 3), "read_mb": round((_rchar() - before) / 1e6),
            "peak_mb": {"client": _peak_mb()}, "row_group_rows": _group_rows(rel)}


def phase_dask(args) -> dict:
    from distributed import Client, LocalCluster

    import connectomix

    _, rel = _paths(args.rows)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster, set_as_default=False) as client:
        client.run(lambda: None)  # workers up and imported before the clock starts
        start = client.run(_rchar)
        before = _rchar()
        t0 = time.perf_counter()
        with connectomix.open(f"release://{rel}", cache=False, engine="dask", scheduler=client) as ds:
            opened = time.perf_counter() - t0
            cpu = lambda: time.process_time() + sum(client.run(time.process_time).values())  # noqa: E731
            if args.op == "filter":
                out = _filter(ds, release_filter._query_ids(args.ids), cpu=cpu)
            else:
                out = _run_op(ds, args.op, cpu=cpu)
        end, peaks = client.run(_rchar), client.run(_peak_mb)
    read = sum(end[w] - start[w] for w in end) + _rchar() - before
    return {**out, "open_s": round(opened, 3), "read_mb": round(read / 1e6), "row_group_rows": _group_rows(rel),
            "peak_mb": {"client": _peak_mb(), **{f"worker{i}": v for i, v in enumerate(peaks.values())}}}


def phase_s3(args) -> dict:
    import pyarrow.parquet as pq
    import s3fs
    import s3fs.core
    from connectomix_release.rowgroups import RowGroupIndex
    from moto.server import ThreadedMotoServer

    import connectomix

    _, rel = _paths(args.rows)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        options = {"endpoint_url": f"http://{host}:{port}", "key": "bench", "secret": "bench"}
        # the upload waits for moto to join the parts of GB-sized files: a client time-out and retry of the
        # completion made moto fail ('seek of closed file', its parts already consumed)
        fs = s3fs.S3FileSystem(**options, config_kwargs={"read_timeout": 3600, "retries": {"max_attempts": 1}})
        fs.mkdir("bench")
        fs.put(str(rel), "bench/release", recursive=True)
        size = sum(p.stat().st_size for p in rel.iterdir() if p.is_file())
        fetched: list[tuple[str, int, int]] = []
        original = s3fs.core.S3File._fetch_range

        def counting(self, start, end):
            data = original(self, start, end)
            fetched.append((self.path.rsplit("/", 1)[-1], start, len(data)))
            return data

        s3fs.core.S3File._fetch_range = counting
        ids = release_filter._query_ids(args.ids)
        t0 = time.perf_counter()
        with connectomix.open("release://s3://bench/release", cache=False, storage_options=options) as ds:
            opened = time.perf_counter() - t0
            at_open = sum(n for _, _, n in fetched)
            fetched.clear()
            first: list[tuple[str, int, int]] = []
            # once: moto answers each range request by copying the whole object (moto.s3.responses
            # _handle_range_header slices the full value), so its times say nothing of S3; the bytes do
            out = _filter(ds, ids, between=lambda: (first.extend(fetched), fetched.clear()), again=False)
    finally:
        server.stop()
    # what the filter had to read: the footers and the selected row groups of the two synapse files
    footers = selected = synapse_files = 0
    for name, column in (("synapses.parquet", "pre"), ("synapses_by_post.parquet", "post")):
        meta = pq.ParquetFile(rel / name).metadata
        groups = RowGroupIndex.from_metadata(meta, column).select(ids)
        selected += sum(meta.row_group(int(g)).column(c).total_compressed_size for g in groups
                        for c in range(meta.num_columns))
        footers += meta.serialized_size
        synapse_files += (rel / name).stat().st_size
    got = sum(n for _, _, n in first)  # the first query (its footers were read when the release was opened)
    return {**out, "open_s": round(opened, 3), "fetched_mb": round(got / 1e6, 1),
            "open_fetched_mb": round(at_open / 1e6, 1), "selected_mb": round(selected / 1e6, 1),
            "footers_mb": round(footers / 1e6, 1), "synapse_files_mb": round(synapse_files / 1e6),
            "range_requests": len(first), "row_group_rows": _group_rows(rel),
            "release_mb": round(size / 1e6), "peak_mb": {"process": _peak_mb()}}


PHASES = {"build": phase_build, "duckdb": phase_duckdb, "dask": phase_dask, "s3": phase_s3}


def run(phase: str, args, rows: int, op: str = "") -> dict:
    out = WORK / f".{phase}-{op}.json"
    cmd = [sys.executable, __file__, "--phase", phase, "--op", op or "filter", "--rows", str(rows), "--ids",
           str(args.ids), "--memory-limit", args.memory_limit, "--result", str(out)]
    if args.query_memory_limit and phase == "duckdb":
        cmd += ["--query-memory-limit", args.query_memory_limit]
    t0, load = time.perf_counter(), os.getloadavg()[0]
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"phase {phase} {op} ({rows:,} rows) failed")
    result = json.loads(out.read_text())
    out.unlink()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["load"] = [round(load, 1), round(os.getloadavg()[0], 1)]  # 1-minute load average before / after
    if phase == "build":  # the converter's peak memory (DuckDB spills its sorts beyond --memory-limit)
        result["peak_mb"] = {"converter": round(usage.ru_maxrss / 1024)}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="synthetic synapse rows (repeat; default 10,000,000)")
    ap.add_argument("--ids", type=int, default=100)
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of the converter")
    ap.add_argument("--query-memory-limit", help="DuckDB memory_limit= of the queried release (default DuckDB's, "
                    "80%% of RAM); the result is stored under its own key, e.g. duckdb-types@2GB")
    ap.add_argument("--ops", choices=OPS, action="append", help="operations to run (repeat; default all)")
    ap.add_argument("--engines", choices=("duckdb", "dask", "s3"), action="append",
                    help="engines to run (repeat; default all; s3 = the filter from the local S3 server)")
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
    ops = [op for op in OPS if op in (args.ops or OPS)]
    WORK.mkdir(parents=True, exist_ok=True)
    store = WORK / "results.json"  # kept across runs: each size and operation is measured on its own
    results = {int(k): v for k, v in json.loads(store.read_text()).items()} if store.is_file() else {}
    for rows in sizes:
        r = results.setdefault(rows, {})
        if not (_paths(rows)[1] / "manifest.json").is_file():
            r["build"] = run("build", args, rows)
            print(json.dumps({rows: r["build"]}), flush=True)
        engines = args.engines or ("duckdb", "dask", "s3")
        for op in ops:
            for engine in ("duckdb", "dask", "s3"):
                if engine not in engines or (engine == "s3" and op != "filter"):
                    continue
                key = f"{engine}-{op}" + (f"@{args.query_memory_limit}"
                                          if args.query_memory_limit and engine == "duckdb" else "")
                r[key] = run(engine, args, rows, op)
                print(json.dumps({rows: {key: r[key]}}), flush=True)
                store.write_text(json.dumps(results, indent=1))
        if not args.keep:
            shutil.rmtree(_paths(rows)[1].parent, ignore_errors=True)
    report(results, args)


def _groups(res: dict) -> str:
    return f", {res['row_group_rows']:,}-row groups" if "row_group_rows" in res else ""


def _load(res: dict) -> str:
    return " to ".join(map(str, res["load"])) if "load" in res else "-"


def _peaks(res: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in res["peak_mb"].items())


def report(results: dict, args) -> None:
    """The table of every measurement in results.json, then how time and memory grow with the table."""
    print(f"\nSYNTHETIC releases; filter = synapses of {args.ids} neurons (first query after opening; again); "
          "Dask = LocalCluster of 2 worker processes\n")
    print("| synapses | operation | engine | time s | open s | peak MB per process | read MB | rows | same answer "
          "| load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for rows in sorted(results):
        r = results[rows]
        for op in OPS:
            if f"duckdb-{op}" not in r or f"dask-{op}" not in r:
                continue
            duck, dask = r[f"duckdb-{op}"], r[f"dask-{op}"]
            same = duck["digest"] == dask["digest"]
            for name, res in (("duckdb", duck), ("dask", dask)):
                again = (f" (again {res['again_s']:.2f}; CPU {res['cpu_s']:.2f} / {res['again_cpu_s']:.2f})"
                         if res.get("again_s") is not None else
                         f" (CPU {res['cpu_s']:.2f})" if res.get("cpu_s") is not None else "")
                print(f"| {rows / 1e6:.0f} M | {op}{_groups(res)} | {name} | {res['s']:.2f}{again} | "
                      f"{res.get('open_s', '-')} | {_peaks(res)} | {res['read_mb']:,} | {res['rows']:,} | "
                      f"{'yes' if same else 'NO'} | {_load(res)} |")
            assert same, f"engines disagree on {op} at {rows:,} rows"
            for key in sorted(k for k in r if k.startswith(f"duckdb-{op}@")):  # DuckDB under a memory_limit
                res = r[key]
                same = res["digest"] == duck["digest"]
                print(f"| {rows / 1e6:.0f} M | {op} | duckdb, memory_limit={key.split('@')[1]} | {res['s']:.2f} "
                      f"(CPU {res['cpu_s']:.2f}) | {res.get('open_s', '-')} | {_peaks(res)} | {res['read_mb']:,} | "
                      f"{res['rows']:,} | {'yes' if same else 'NO'} | {_load(res)} |")
                assert same, f"DuckDB under {key} answered differently"
        s3 = r.get("s3-filter")
        if s3 is not None and "selected_mb" in s3:
            same = s3["digest"] == r["duckdb-filter"]["digest"]
            print(f"| {rows / 1e6:.0f} M | filter from S3 (moto){_groups(s3)} | duckdb | {s3['s']:.2f} "
                  f"(CPU {s3['cpu_s']:.2f}; moto-bound) | {s3['open_s']} | {_peaks(s3)} | fetched "
                  f"{s3['fetched_mb']:,} in {s3['range_requests']} range requests (selected row groups "
                  f"{s3['selected_mb']:,}; the synapse files {s3['synapse_files_mb']:,}; at open "
                  f"{s3['open_fetched_mb']:,}, footers {s3['footers_mb']:,} of it) | {s3['rows']:,} | "
                  f"{'yes' if same else 'NO'} | {_load(s3)} |")
            assert same, "the S3 release answered differently"
    sizes = sorted(results)
    if len(sizes) > 1:
        small, big = sizes[0], sizes[-1]
        print(f"\nfrom {small / 1e6:.0f} M to {big / 1e6:.0f} M rows ({big / small:.0f}x):")
        for key in sorted(set(results[small]) & set(results[big]) - {"build"}):
            a, b = results[small][key], results[big][key]
            peak = max(b["peak_mb"].values()) / max(a["peak_mb"].values())
            cpu = f", CPU x{b['cpu_s'] / a['cpu_s']:.2f}" if "cpu_s" in a and "cpu_s" in b else ""
            print(f"  {key}: time x{b['s'] / a['s']:.2f}{cpu}, largest peak memory x{peak:.2f}")


if __name__ == "__main__":
    main()
