"""Benchmark: connectomix against connecto, neuprint-python and fafbseg, on the same emulators, in one command.

For both emulators (CAVE and neuPrint, SYNTHETIC data), four questions -- connectivity (total
weights), connectivity per ROI, synapses, neuron lookup -- for 10, 100 and 1,000 query neurons at
0, 20 and 100 ms of latency the emulator adds to every request. Every client runs unmodified,
configured through its public API (see ``peers_cave.py`` and ``peers_neuprint.py``), in this one
process, one after another (never concurrently with each other). Reported per row: wall time
(best of up to 3 runs on different neuron sets of the same size, see ``_peers.py``), requests and
bytes the emulator saw in the first run, the physical minimum of requests (rows ÷ the server's
row cap, rounded up, per query the server needs; metadata requests are not counted because every
client's session is warmed by an untimed call first), connectomix's warm cache (the second
identical call in the same session, and a new process reading the warm disk cache), connecto's
warm cache where it has one, and whether each peer's whole answer equals connectomix's after
mapping its columns -- "incomplete" says how many rows the peer lost or duplicated.

It prints the Markdown tables that go into README.md, then checks issue 11's targets and names
every row that misses one.

    python benchmarks/peers.py                    # the full grid (~45 minutes on 2 shared cores)
    python benchmarks/peers.py --quick            # 10 and 100 neurons at 20 ms
    python benchmarks/peers.py --only cave --query synapses --neurons 100 --latency 20
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _peers import (QUERIES, Row, Run, best_of, check_targets, complete, counts_option, id_sets,  # noqa: E402
                    markdown, quiet)

CLIENTS = ("connectomix", "connecto", "neuprint-python", "fafbseg")
REPEATS = 3
HERE = Path(__file__).resolve().parent


def _skipped(backend: str, query: str, client: str, n: int, latency: float) -> str | None:
    """Why a peer's run is left out of the default grid (``--all-slow`` runs it), or None."""
    if backend == "neuPrint" and query == "synapses" and client != "connectomix":
        if n >= 1000:
            return "not run: over 10 minutes per run (--all-slow runs it)"
        if n >= 100 and latency != 20:
            return "not run: minutes per run, measured at 20 ms only (--all-slow runs it)"
    if backend == "CAVE" and query == "connectivity_roi" and client == "fafbseg" and n >= 1000:
        return ("not run: get_synapse_areas over ~40,000 synapse ids ran for over 3 minutes and 4 GB "
                "before it was stopped (--all-slow runs it)")
    return None


def measure(bench, queries, neurons, latencies, clients, *, all_slow: bool, fresh_process: bool,
            seed: int, save=None) -> list[Row]:
    """Every row of one backend."""
    rng = np.random.default_rng(seed)
    rows = []
    # Warm every session (datastack info, versions, table metadata): untimed, on ids not used later.
    warmup = [int(bench.pool[-1])]
    for client in clients:
        for query in queries:
            if query in bench.clients.get(client, {}):
                try:
                    with quiet():
                        bench.clients[client][query][1](warmup)
                except Exception:  # noqa: BLE001 - reported in the timed run
                    pass
    cached = bench.open_connectomix(cache=True)
    for n in neurons:
        sets = id_sets(rng, bench.pool[:-1], n, REPEATS)
        for latency in latencies:
            bench.set_latency(latency)
            for query in queries:
                row = Row(bench.name, query, n, latency)
                ours = None
                for client in clients:
                    if query not in bench.clients.get(client, {}):
                        continue
                    call, fn = bench.clients[client][query]
                    run = Run(client, call)
                    row.runs.append(run)
                    skipped = None if all_slow else _skipped(bench.name, query, client, n, latency)
                    if skipped:
                        run.answer = skipped
                        continue
                    os.environ["CONNECTO_NO_CACHE"] = "1"
                    try:
                        answer, run.seconds, run.requests, run.bytes = best_of(
                            fn, sets, count=bench.count, reset=bench.reset)
                    except Exception as exc:  # noqa: BLE001 - a failing peer is a row, not a crash
                        run.error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
                        run.answer = f"failed: {run.error}"
                        if client == "connectomix":
                            traceback.print_exc()
                        continue
                    finally:
                        os.environ.pop("CONNECTO_NO_CACHE", None)
                    run.rows = len(answer)
                    if client == "connectomix":
                        ours = answer
                        run.answer = "reference"
                        row.minimum, row.minimum_note = bench.minimum(query, ours, sets[0])
                        _warm_connectomix(bench, cached, query, sets[0], run, fresh_process and latency == 20)
                    else:
                        run.answer = _verdict(bench, query, client, answer, ours, sets[0])
                        if client == "connecto":
                            _warm_connecto(bench, query, sets[0], run)
                rows.append(row)
                if save is not None:
                    save(row)
                print(f"  {bench.name} {query} {n} neurons {latency:g} ms: "
                      + ", ".join(f"{r.client} {r.seconds:.2f}s/{r.requests}req" for r in row.runs if r.ran)
                      + f" (min {row.minimum})", file=sys.stderr, flush=True)
    return rows


def _verdict(bench, query, client, theirs, ours, ids) -> str:
    if ours is None:
        return "not compared (connectomix failed)"
    try:
        return bench.verdict(query, client, theirs, ours, ids)
    except Exception as exc:  # noqa: BLE001 - a comparison that cannot be made is reported as such
        return f"DIFFERS: not comparable ({type(exc).__name__}: {str(exc)[:100]})"


def _warm_connectomix(bench, cached, query, ids, run: Run, fresh: bool) -> None:
    ids_only = {"progress": False, "partner_types": False, **_mat(bench)}  # the peers' tables: ids only
    fn = {"connectivity": lambda: cached.get_connectivity(sources=ids, **ids_only),
          "connectivity_roi": lambda: cached.get_connectivity(sources=ids, by_roi=True, **ids_only),
          "synapses": lambda: cached.get_synapses(ids, **ids_only),
          "neurons": lambda: cached.fetch_neurons(ids, **_mat(bench)),
          "counts": lambda: cached.fetch_neurons(ids, **_mat(bench), **counts_option(cached))}[query]
    with quiet():
        fn()  # fill the cache
        bench.reset()
        t0 = time.perf_counter()
        fn()
        run.warm_s = time.perf_counter() - t0
    run.warm_requests = bench.count()[0]
    if fresh:
        bench.reset()
        spec = dict(bench.child_spec(), query=query, ids=[int(i) for i in ids])
        out = subprocess.run([sys.executable, str(HERE / "peers.py"), "--child", json.dumps(spec)],
                             capture_output=True, text=True, timeout=300)
        if out.returncode == 0:
            run.fresh_s = float(out.stdout.strip().splitlines()[-1])
            run.fresh_requests = bench.count()[0]
        else:
            print(out.stderr[-2000:], file=sys.stderr)


def _warm_connecto(bench, query, ids, run: Run) -> None:
    fn = bench.warm_connecto(query)
    if fn is None:
        return
    try:
        with quiet():
            fn(ids)
            bench.reset()
            t0 = time.perf_counter()
            fn(ids)
            run.warm_s = time.perf_counter() - t0
        run.warm_requests = bench.count()[0]
    except Exception as exc:  # noqa: BLE001
        run.error = run.error or f"warm: {type(exc).__name__}"


def _mat(bench) -> dict:
    return {"materialization": 1} if bench.name == "CAVE" else {}


def child(spec_json: str) -> None:
    """A new process: open the cached dataset and time one query on the warm disk cache."""
    import connectomix

    spec = json.loads(spec_json)
    ds = connectomix.open(spec["uri"], **spec["options"])
    mat = {"materialization": spec["materialization"]} if spec["materialization"] is not None else {}
    ids = spec["ids"]
    ids_only = {"progress": False, "partner_types": False, **mat}  # the peers' tables: ids only
    fn = {"connectivity": lambda: ds.get_connectivity(sources=ids, **ids_only),
          "connectivity_roi": lambda: ds.get_connectivity(sources=ids, by_roi=True, **ids_only),
          "synapses": lambda: ds.get_synapses(ids, **ids_only),
          "neurons": lambda: ds.fetch_neurons(ids, **mat),
          "counts": lambda: ds.fetch_neurons(ids, **mat, **counts_option(ds))}[spec["query"]]
    t0 = time.perf_counter()
    fn()
    print(f"{time.perf_counter() - t0:.6f}")


def _versions() -> str:
    from importlib.metadata import version

    names = ["connectomix", "connecto", "neuprint-python", "fafbseg", "caveclient"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def _commit() -> str:
    """The commit of the connectomix that was measured (the checkout it is imported from)."""
    import connectomix

    root = Path(connectomix.__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "connectomix", "backends"],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"unknown ({root} is not a git checkout)"
    return sha + (" plus uncommitted changes in connectomix/ or backends/" if dirty else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10 and 100 neurons at 20 ms only")
    ap.add_argument("--only", choices=["cave", "neuprint"], nargs="+", help="backends to run (default both)")
    ap.add_argument("--query", choices=QUERIES, nargs="+", help="questions to ask (default all)")
    ap.add_argument("--client", choices=CLIENTS[1:], nargs="+", help="peers to run (default all)")
    ap.add_argument("--neurons", type=int, nargs="+")
    ap.add_argument("--latency", type=float, nargs="+")
    ap.add_argument("--all-slow", action="store_true",
                    help="also run neuPrint peers' 1,000-neuron synapse queries at 0 and 100 ms (adds ~30 min)")
    ap.add_argument("--no-fresh-process", action="store_true", help="skip the new-process warm-cache runs")
    ap.add_argument("--cave-row-cap", type=int, default=20_000,
                    help="the CAVE emulator's rows per query (default 20,000: see benchmarks/README.md)")
    ap.add_argument("--neuprint-rows-per-query", type=int, default=100_000,
                    help="rows one neuPrint query may return, for the physical minimum (default 100,000)")
    ap.add_argument("--save", type=Path, help="also append every measured row to this JSON-lines file")
    ap.add_argument("--render", type=Path, nargs="+",
                    help="measure nothing: print the tables and targets of rows saved with --save")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    if args.render:
        header, rows = load(args.render)
        report(rows, header)
        return
    neurons = args.neurons or ([10, 100] if args.quick else [10, 100, 1000])
    latencies = args.latency or ([20] if args.quick else [0, 20, 100])
    backends = args.only or ["cave", "neuprint"]
    queries = args.query or list(QUERIES)
    clients = ["connectomix", *(args.client or CLIENTS[1:])]

    work = Path(tempfile.mkdtemp(prefix="cx-peers-"))
    os.environ["CONNECTO_CACHE_DIR"] = str(work / "connecto-cache")  # read by connecto at import
    os.environ["CONNECTO_CONFIG"] = str(work / "connecto.toml")
    started = time.perf_counter()
    load_before = os.getloadavg()[1]
    rows = []
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)

    def save(row: Row) -> None:
        if args.save:
            with args.save.open("a") as f:
                f.write(json.dumps({"row": dataclasses.asdict(row)}) + "\n")
    try:
        for backend in backends:
            if backend == "cave":
                from peers_cave import CaveBench
                bench = CaveBench(work, n_bodies=max(neurons) * 2 + 1, row_cap=args.cave_row_cap)
            else:
                from peers_neuprint import NeuprintBench
                bench = NeuprintBench(work, n_bodies=max(neurons) * 2 + 1,
                                      rows_per_query=args.neuprint_rows_per_query)
            try:
                rows += measure(bench, queries, neurons, latencies, clients, all_slow=args.all_slow,
                                fresh_process=not args.no_fresh_process, seed=1, save=save)
            finally:
                bench.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    minutes = (time.perf_counter() - started) / 60
    command = "python benchmarks/peers.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    header = {"date": f"{dt.date.today():%Y-%m-%d}", "commit": _commit(), "cores": os.cpu_count(),
              "minutes": minutes, "versions": _versions(), "command": command,
              "load": max(load_before, os.getloadavg()[1])}
    if args.save:
        with args.save.open("a") as f:
            f.write(json.dumps({"header": header}) + "\n")
    report(rows, header)


def load(paths) -> tuple[list[dict], list[Row]]:
    """Rows and run headers saved by ``--save`` (several files: their rows together)."""
    headers, rows = [], []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            item = json.loads(line)
            if "header" in item:
                headers.append(item["header"])
            else:
                data = item["row"]
                data["runs"] = [Run(**r) for r in data["runs"]]
                rows.append(Row(**data))
    return headers, rows


def report(rows: list[Row], headers) -> None:
    """Print the README block: when and what was measured, the tables, and every missed target."""
    headers = headers if isinstance(headers, list) else [headers]
    for h in headers:
        print(f"{'- ' if len(headers) > 1 else ''}Measured on {h['date']}, commit {h['commit']}, {h['cores']} shared cores (load average "
              f"{h['load']:.1f} over 5 minutes), {h['minutes']:.0f} minutes: `{h['command']}`; {h['versions']}. "
              "SYNTHETIC data.")
    print()
    for backend, title, order in (("CAVE", "CAVE emulator", ["connectomix", "connecto", "fafbseg"]),
                                  ("neuPrint", "neuPrint emulator", ["connectomix", "connecto", "neuprint-python"])):
        table = markdown(rows, order, backend=backend, title=title)
        if table:
            print(table, end="\n\n")
    missed = check_targets(rows)
    print(f"Targets: {len(rows)} rows checked; " + ("all met." if not missed else
                                                    f"{len(missed)} misses, by query and kind (rows as neurons/ms):"))
    groups: dict[tuple[str, str], list[str]] = {}
    for line in missed:
        where, _, what = line.partition(": ")
        backend, query, n, _, ms = where.split()[:5]
        kind = " ".join(re.sub(r"[0-9][0-9.,]*x?", "#", what).split()[:4])
        groups.setdefault((f"{backend} {query}", kind), []).append(f"{n}/{ms}: {what}")
    for (where, _), items in groups.items():
        print(f"- MISSED {where}: " + "; ".join(items))
    seen = set()
    for r in rows:
        for run in r.runs:
            key = (r.backend, r.query, run.client, run.answer.split(":")[0])
            if run.client == "connectomix" or not run.ran or complete(run.answer) \
                    or run.answer.startswith("identical") or key in seen:
                continue
            if not seen:
                print()
                print("Where a peer's answer is not connectomix's (first affected row of each kind):")
            seen.add(key)
            print(f"- {r.backend} {r.query}, {run.client}, {r.neurons:,} neurons: {run.answer}")


if __name__ == "__main__":
    main()
