"""Benchmark (issue 15): the 100-id synapse filter from a release served over HTTP with a latency per request.

    python benchmarks/scale_http.py --rows 1000000 --work /tmp/scale-http [--latency 20 --latency 50] [--ids 100]
    python benchmarks/scale_http.py --release /path/to/release [--latency ...]     (an existing release folder)

Object storage is HTTP range requests: what a filter costs from a bucket is
mostly round trips, one per request that waits for the one before. This
serves a release folder from ``connectomix.testing.range_server`` on
127.0.0.1 (byte ranges, ETag/Last-Modified, every request delayed by
``--latency`` ms before it is answered, as a store's first byte is; requests
answered concurrently) and opens it as ``release://http://127.0.0.1:<port>/``
(fsspec's HTTP filesystem: the same fsspec file and ``_fetch_range`` path
as s3fs). moto's S3 server cannot time this: it copies the whole object to
answer each range request (``moto.s3.responses._handle_range_header``).

For each latency, two child processes run the same filter (synapses of
``--ids`` random listed neurons, pre or post side), the first query after
opening (footers read then) and the same query again:

``sequential``  ``connectomix_release.reads.FETCH_CONCURRENCY = 0``: pyarrow reads the file through
                fsspec one range after another, as connectomix did before;
``concurrent``  the default: the selected column chunks' byte ranges fetched 16 at a time.

Reported: wall and CPU seconds, the requests the server answered (range GETs
of the synapse files, and all), the bytes of those ranges beside the
compressed size of the row groups the filter selects (pyarrow statistics of
the local files) and the files' size, and whether the rows equal the local
DuckDB answer. ``--rows`` first builds a SYNTHETIC FlyWire-format release with
``benchmarks/release_filter.py``'s ``generate`` and ``convert`` phases (the
real ``import_flywire``) into ``--work``; every number in it is SYNTHETIC.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import release_filter  # noqa: E402  (its generate/convert phases and query ids, reused as they are)

SYNAPSE_FILES = ("synapses.parquet", "synapses_by_post.parquet")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _digest(df) -> str:
    return f"{len(df)}:{int(df['synapse_id'].astype('int64').sum() % (2**61 - 1))}"


# -- child processes ---------------------------------------------------------------------------------------------


def phase_build(args) -> dict:
    src, rel = Path(args.work) / "flywire-synthetic", Path(args.work) / "release"
    release_filter.SRC, release_filter.RELEASE = src, rel
    out = {**release_filter.phase_generate(args), **release_filter.phase_convert(args)}
    shutil.rmtree(src, ignore_errors=True)
    return out


def phase_local(args) -> dict:
    """The answer from the local folder (DuckDB), and the bytes of the row groups the filter selects."""
    import numpy as np
    import pyarrow.parquet as pq

    import connectomix
    from connectomix_release.rowgroups import RowGroupIndex

    ids = np.asarray(release_filter._query_ids(args.ids), dtype="int64")
    with connectomix.open(f"release://{args.release}", cache=False) as ds:
        df = ds.get_synapses(ids.tolist(), progress=False, partner_types=False)
    selected, sizes = {}, {}
    for name, column in zip(SYNAPSE_FILES, ("pre", "post")):
        meta = pq.read_metadata(Path(args.release) / name)
        groups = RowGroupIndex.from_metadata(meta, column).select(ids)
        selected[name] = sum(meta.row_group(int(g)).column(c).total_compressed_size
                             for g in groups for c in range(meta.num_columns))
        sizes[name] = (Path(args.release) / name).stat().st_size
    return {"digest": _digest(df), "rows": len(df), "selected": selected, "sizes": sizes}


def phase_query(args) -> dict:
    """Open the served release and run the filter twice (the parent's server counts the requests)."""
    import connectomix
    from connectomix_release import reads

    if args.mode == "sequential":
        reads.FETCH_CONCURRENCY = 0
    ids = release_filter._query_ids(args.ids)
    out = {}
    c0, t0 = _cpu(), time.perf_counter()
    ds = connectomix.open(f"release://{args.url}", cache=False)
    out["open_s"], out["open_cpu_s"] = time.perf_counter() - t0, _cpu() - c0
    _mark(args, "opened")
    for label in ("first", "again"):
        c0, t0 = _cpu(), time.perf_counter()
        df = ds.get_synapses(ids, progress=False, partner_types=False)
        out[f"{label}_s"], out[f"{label}_cpu_s"] = time.perf_counter() - t0, _cpu() - c0
        _mark(args, label)
    out["digest"], out["rows"] = _digest(df), len(df)
    ds.close()
    return out


def _mark(args, label: str) -> None:
    """Tell the parent a step ended (it splits its request log there)."""
    print(f"MARK {label}", flush=True)
    sys.stdin.readline()  # wait until the parent has taken the log


PHASES = {"build": phase_build, "local": phase_local, "query": phase_query}


# -- parent ---------------------------------------------------------------------------------------------------------


def run_child(args, phase: str, **extra) -> dict:
    out = Path(args.work) / f".{phase}.json"
    cmd = [sys.executable, __file__, "--phase", phase, "--rows", str(args.rows), "--ids", str(args.ids),
           "--work", str(args.work), "--release", str(args.release), "--memory-limit", args.memory_limit,
           "--result", str(out)] + [x for k, v in extra.items() for x in (f"--{k}", str(v))]
    subprocess.run(cmd, check=True)
    result = json.loads(out.read_text())
    out.unlink()
    return result


def run_query(args, server, mode: str) -> dict:
    """One child querying the server; the server's requests split by step (open, first, again)."""
    out = Path(args.work) / ".query.json"
    cmd = [sys.executable, __file__, "--phase", "query", "--ids", str(args.ids), "--work", str(args.work),
           "--release", str(args.release), "--url", server.url, "--mode", mode, "--result", str(out)]
    server.clear()
    steps = {}
    with subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
        for line in child.stdout:
            if line.startswith("MARK "):
                steps[line.split()[1]] = (list(server.requests), server.max_in_flight)
                server.clear()
                child.stdin.write("\n")
                child.stdin.flush()
    if child.returncode:
        raise SystemExit(f"the {mode} query failed with exit code {child.returncode}")
    result = json.loads(out.read_text())
    out.unlink()
    for step, (log, in_flight) in steps.items():
        ranges = [r for r in log if r.start is not None and r.path.lstrip("/") in SYNAPSE_FILES]
        result[f"{step}_requests"] = len(log)
        result[f"{step}_ranges"] = len(ranges)
        result[f"{step}_range_bytes"] = sum(r.sent for r in ranges)
        result[f"{step}_in_flight"] = in_flight
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=0, help="build a SYNTHETIC release of this many synapses first")
    ap.add_argument("--release", default="", help="serve this release folder (default: WORK/release)")
    ap.add_argument("--work", default="/tmp/connectomix-scale-http", help="folder for the built release")
    ap.add_argument("--latency", type=float, action="append", help="ms added to every request (default 20, 50)")
    ap.add_argument("--ids", type=int, default=100, help="neurons to fetch synapses for (default 100)")
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory limit of the converter (default 1GB)")
    ap.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=["sequential", "concurrent"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.release = args.release or str(Path(args.work) / "release")
    if args.phase:
        Path(args.result).write_text(json.dumps(PHASES[args.phase](args)))
        return
    from connectomix.testing.range_server import RangeServer

    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.rows:
        print(f"building a SYNTHETIC {args.rows:,}-row release in {args.work} ...", flush=True)
        print(run_child(args, "build"), flush=True)
    local = run_child(args, "local")
    rows = []
    for latency in args.latency or [20.0, 50.0]:
        with RangeServer(args.release, latency_ms=latency) as server:
            for mode in ("sequential", "concurrent"):
                result = run_query(args, server, mode)
                result.update(latency=latency, mode=mode, load=os.getloadavg()[0],
                              same=result["digest"] == local["digest"])
                rows.append(result)
                print(json.dumps(result), flush=True)
    report(rows, local, args)


def report(rows: list[dict], local: dict, args) -> None:
    selected, sizes = sum(local["selected"].values()), sum(local["sizes"].values())
    print(f"\nSYNTHETIC release {args.release}: synapses of {args.ids} neurons ({local['rows']:,} rows), served over "
          f"HTTP on 127.0.0.1 with a latency per request; selected row groups {selected / 1e6:,.1f} MB of the "
          f"two synapse files' {sizes / 1e6:,.1f} MB\n")
    print("| latency ms | fetch | first query s (CPU) | again s (CPU) | range requests | range MB | "
          "most in flight | all requests (open; first; again) | same rows | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['latency']:g} | {r['mode']} | {r['first_s']:.2f} ({r['first_cpu_s']:.2f}) | "
              f"{r['again_s']:.2f} ({r['again_cpu_s']:.2f}) | {r['again_ranges']} | "
              f"{r['again_range_bytes'] / 1e6:,.1f} | {r['again_in_flight']} | "
              f"{r['opened_requests']}; {r['first_requests']}; {r['again_requests']} | "
              f"{'yes' if r['same'] else 'NO'} | {r['load']:.1f} |")
    assert all(r["same"] for r in rows), "a served query returned other rows than the local folder"
    for r in rows:  # exactly the selected column chunks, whatever the fetch mode
        assert r["again_range_bytes"] <= selected * 1.02 + 4096, (r["mode"], r["again_range_bytes"], selected)


if __name__ == "__main__":
    main()
