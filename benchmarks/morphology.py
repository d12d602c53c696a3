"""Benchmark: skeletons and meshes of 100 neurons -- connectomix against connecto 0.3.0 and fafbseg, on the emulators.

Data: a SYNTHETIC release (``_synthetic.make_synthetic_release(morphology=...)``: random trees of 4,000 nodes
and deformed spheres of 10,242 vertices / 20,480 triangles, about the size of the sample's real DA1 lPNs),
served by the CAVE emulator (as ``flywire_fafb_public``, materialization 1) and by the neuPrint emulator.
Every client runs unmodified, configured through its public API, in this one process, one after another:

CAVE
  * connectomix: ``connectomix.open("cave://flywire_fafb_public", server=..., token=..., skeleton_source=
    "<emulator>/flyconnectome/flywire_skeletons_{materialization}")`` -- FlyWire's published precomputed
    skeletons, as the emulator serves them; meshes from the datastack's graphene segmentation source;
  * connecto 0.3.0: ``connecto.CAVE("flywire_fafb_public", version=1, skeleton_source="<emulator>/flyconnectome/
    flywire_skeletons_{version}")`` (a spec probed from the server; ``skeleton_source`` is a documented spec
    override -- its curated ``FlyWire`` spec names the real bucket and the real flat segmentation), server
    from caveclient's datastack map in ``HOME``, token from ``$CONNECTO_CAVE_TOKEN``;
  * the CAVE skeleton service (SkeletonService 0.23.11 as the emulator plays it): connectomix opened with
    ``skeleton_source="service"`` (its bulk route, 500 roots per request) beside caveclient 8.2.1's own
    ``client.skeleton.fetch_skeletons(ids)`` (the same route; connecto and fafbseg do not read the service
    for these ids);
  * fafbseg 3.2.3: meshes with ``flywire.get_mesh_neuron(ids, dataset="graphene://<emulator>/segmentation/table/
    ...")`` (fafbseg takes a segmentation URL as ``dataset``; token from ``HOME``). Its skeletons cannot be
    pointed at a server: ``flywire.get_skeletons`` reads ``SKELETON_BASE_URL`` (a module constant naming
    flyem.mrc-lmb.cam.ac.uk, fafbseg/flywire/skeletonize.py:38-41) for materializations 630 and 783 only.

neuPrint
  * connectomix: ``connectomix.open("neuprint://<emulator>/synthetic:v1", catalogue="none", ...)``;
  * connecto 0.3.0: ``connecto.NeuPrint("synthetic:v1", server=...)``;
  * fafbseg has no neuPrint client.

Timing and the client loop are ``_peers.py``'s (``warm_up``, ``run_client`` -> ``best_of``), as in ``peers.py``.
Reported per row: wall time (best of two runs on two different sets of 100 neurons), requests the
emulator saw in the first run, and whether the answer equals connectomix's (same ids in the same order,
the same vertices; skeletons: the same node positions within 0.01 nm). connectomix's warm row is a second
call through a disk cache (a new Dataset). Caches of the peers are off (``CONNECTO_NO_CACHE=1``;
fafbseg's CloudVolume has ``cache=False``). Each client's session is warmed first by an untimed call on
one neuron that is not measured (imports, connection set-up, datastack info).

    python benchmarks/morphology.py                       # 100 neurons, 0 and 20 ms, CAVE and neuPrint
    python benchmarks/morphology.py --neurons 10 --latency 0 --only cave
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _peers import Run, quiet, run_client, warm_up  # noqa: E402
from _synthetic import make_synthetic_release  # noqa: E402

CAVE_TOKEN = "b3c4a7e5e1"  # hexadecimal: cloud-volume's graphene client refuses other tokens
NP_TOKEN = "bench-morphology"
DATASTACK = "flywire_fafb_public"
NP_DATASET = "synthetic:v1"
FIRST = 10_001  # ids of the synthetic release
REPEATS = 2


def _same(kind: str, theirs, ours) -> str:
    """'equal' or what differs, comparing navis neuron lists of one kind."""
    a, b = [int(n.id) for n in theirs], [int(n.id) for n in ours]
    note = ""
    if a != b and sorted(a) == sorted(b) and len(set(a)) == len(a):
        by_id = {int(n.id): n for n in theirs}
        theirs, note = [by_id[i] for i in b], " (returned in another order)"
    elif a != b:
        return f"DIFFERS: ids {a[:3]}... vs {b[:3]}..."
    for t, o in zip(theirs, ours):
        if kind == "meshes":
            if not (np.array_equal(np.asarray(t.vertices, "float32"), np.asarray(o.vertices, "float32"))
                    and np.array_equal(np.asarray(t.faces), np.asarray(o.faces))):
                return f"DIFFERS: mesh {int(t.id)}"
        else:
            tn = np.sort(t.nodes[["x", "y", "z"]].to_numpy(dtype="float64") * float(t.units.to("nm").magnitude),
                         axis=0)
            on = np.sort(o.nodes[["x", "y", "z"]].to_numpy(dtype="float64") * float(o.units.to("nm").magnitude),
                         axis=0)
            if tn.shape != on.shape or not np.allclose(tn, on, rtol=0, atol=0.01):
                return f"DIFFERS: skeleton {int(t.id)} ({len(tn)} vs {len(on)} nodes)"
    return "equal" + note


# --- the two emulators and their clients ------------------------------------------------------------------------

class CaveSide:
    name = "CAVE"

    def __init__(self, release: Path, work: Path):
        from connectomix_cave.emulator import CaveEmulator, use_client_home

        self.emu = CaveEmulator(release, token=CAVE_TOKEN).start()
        self.emu.write_client_home(work / "home")
        self._home = use_client_home(work / "home")
        self._home.__enter__()
        os.environ["CONNECTO_CAVE_TOKEN"] = CAVE_TOKEN
        self.graphene = f"graphene://{self.emu.url}/segmentation/table/{self.emu.app.pcg_table}"

    def published(self, key: str) -> str:
        """The emulator's FlyWire-style published skeleton folders, a URL template with ``{key}``."""
        return f"{self.emu.url}/flyconnectome/flywire_skeletons_{{{key}}}"

    def close(self):
        try:
            self._home.__exit__(None, None, None)
        finally:
            self.emu.stop()

    def reset(self):
        self.emu.stats.reset()

    def count(self) -> tuple[int, int]:
        snap = self.emu.stats.snapshot()
        return self.emu.stats.requests(), sum(v.get("bytes_out", 0) for v in snap.values())

    def set_latency(self, ms):
        self.emu.faults.latency_ms = ms

    def connectomix(self, cache=False, skeleton_source=None):
        import connectomix

        return connectomix.open(f"cave://{DATASTACK}", server=self.emu.url, token=CAVE_TOKEN, materialization=1,
                                skeleton_source=skeleton_source or self.published("materialization"), cache=cache)

    def clients(self) -> dict:
        import connecto
        import fafbseg.flywire as flywire

        cx = self.connectomix()
        service = self.connectomix(skeleton_source="service")
        co = connecto.CAVE(DATASTACK, version=1, skeleton_source=self.published("version"))
        why = ("cannot: flywire.get_skeletons reads a fixed host (SKELETON_BASE_URL, "
               "fafbseg/flywire/skeletonize.py:38-41), materializations 630/783 only")
        return {
            "skeletons": {
                "connectomix": ("get_skeletons(ids)", lambda ids: cx.get_skeletons(ids)),
                "connecto": ("CAVE(...).skeletons.get(ids)", lambda ids: co.skeletons.get(ids, progress=False)),
                "fafbseg": (why, None),
            },
            "skeletons (service)": {
                "connectomix": ("get_skeletons(ids), skeleton_source='service'",
                                lambda ids: service.get_skeletons(ids)),
                "caveclient": ("client.skeleton.fetch_skeletons(ids)",
                               lambda ids: _service_neurons(service.backend.client.skeleton.fetch_skeletons(ids))),
            },
            "meshes": {
                "connectomix": ("get_meshes(ids)", lambda ids: cx.get_meshes(ids)),
                "connecto": ("CAVE(...).meshes.get(ids)", lambda ids: co.meshes.get(ids)),
                "fafbseg": ("flywire.get_mesh_neuron(ids, dataset=<graphene URL>)",
                            lambda ids: flywire.get_mesh_neuron(ids, dataset=self.graphene, progress=False)),
            },
        }


class NeuprintSide:
    name = "neuPrint"

    def __init__(self, release: Path, work: Path):
        from connectomix_neuprint.emulator import NeuprintEmulator

        self.emu = NeuprintEmulator(release, token=NP_TOKEN, dataset=NP_DATASET).__enter__()
        self.host = self.emu.url.split("://", 1)[1]
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.emu.cert_path)  # requests and cloud-volume trust the emulator
        os.environ["CONNECTO_NEUPRINT_TOKEN"] = NP_TOKEN

    def close(self):
        self.emu.__exit__(None, None, None)

    def reset(self):
        self.emu.stats.reset()

    def count(self) -> tuple[int, int]:
        snap = self.emu.stats.snapshot()
        return snap["requests"], snap["bytes_out"]

    def set_latency(self, ms):
        self.emu.faults.latency_ms = ms

    def connectomix(self, cache=False):
        import connectomix

        return connectomix.open(f"neuprint://{self.host}/{NP_DATASET}", token=NP_TOKEN, verify=str(self.emu.cert_path),
                                catalogue="none", cache=cache)

    def clients(self) -> dict:
        import connecto

        cx = self.connectomix()
        co = connecto.NeuPrint(NP_DATASET, server=self.host)
        return {
            "skeletons": {
                "connectomix": ("get_skeletons(ids)", lambda ids: cx.get_skeletons(ids)),
                "connecto": ("NeuPrint(...).skeletons.get(ids)", lambda ids: co.skeletons.get(ids)),
            },
            "meshes": {
                "connectomix": ("get_meshes(ids)", lambda ids: cx.get_meshes(ids)),
                "connecto": ("NeuPrint(...).meshes.get(ids)", lambda ids: co.meshes.get(ids)),
            },
        }


# --- measuring ----------------------------------------------------------------------------------------------------

def measure(side, n: int, latencies, work: Path) -> list[tuple]:
    rows = []
    clients = side.clients()
    sets = [list(range(FIRST + k * n, FIRST + (k + 1) * n)) for k in range(REPEATS)]
    warm_up([fn for by_client in clients.values() for _, fn in by_client.values()], [FIRST + REPEATS * n])
    for latency in latencies:
        side.set_latency(latency)
        for kind, by_client in clients.items():
            ours = None
            results = []
            for client, (call, fn) in by_client.items():
                r = Run(client, call)
                results.append(r)
                if fn is None:
                    r.answer = call
                    continue
                answer, r.seconds, r.requests, r.bytes, r.error = run_client(fn, sets, count=side.count,
                                                                             reset=side.reset)
                if r.error:
                    r.answer = f"failed: {r.error[:100]}"
                elif client == "connectomix":
                    ours, r.answer = answer, "reference"
                else:
                    r.answer = _same(kind, answer, ours) if ours is not None else "no reference"
            if kind in CACHED:
                results.insert(1, _warm(side, kind, sets[0], work, latency, results[0].call, ours))
            rows.append((side.name, kind, n, latency, results))
    return rows


#: The kinds a warm disk cache row is measured for (the same ``get_*`` call on a new Dataset).
CACHED = ("skeletons", "meshes")


def _warm(side, kind: str, ids, work: Path, latency: float, call: str, ours) -> Run:
    """connectomix's second call through a disk cache, from a new Dataset."""
    warm = Run("connectomix (warm disk cache)", f"{call}, second call, new Dataset")
    try:
        cache = work / f"cache-{side.name}-{kind}-{latency}"
        getattr(side.connectomix(cache=str(cache)), f"get_{kind}")(ids)
        warm_fn = getattr(side.connectomix(cache=str(cache)), f"get_{kind}")
        side.reset()
        t0 = time.perf_counter()
        with quiet():
            again = warm_fn(ids)
        warm.seconds, warm.requests = time.perf_counter() - t0, side.count()[0]
        warm.answer = _same(kind, again, ours) if ours is not None else "no reference"
    except Exception as exc:  # noqa: BLE001
        warm.answer = f"failed: {type(exc).__name__}: {str(exc)[:100]}"
    return warm


def _service_neurons(skeletons: dict) -> list:
    """caveclient's ``{root id: flatdict}`` as navis TreeNeurons (nm; parents follow the ``[child, parent]`` edges)."""
    import navis
    import pandas as pd

    out = []
    for rid, sk in skeletons.items():
        xyz = np.asarray(sk["vertices"], dtype="float64")
        parent = np.full(len(xyz), -1, dtype="int64")
        edges = np.asarray(sk["edges"], dtype="int64").reshape(-1, 2)
        parent[edges[:, 0]] = edges[:, 1]
        nodes = pd.DataFrame({"node_id": np.arange(len(xyz)), "parent_id": parent,
                              "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
        out.append(navis.TreeNeuron(nodes, id=int(rid), units="1 nm"))
    return out


def markdown(rows) -> str:
    lines = ["| backend | kind | neurons | latency | client | call | seconds | requests | answer |",
             "|---|---|---:|---:|---|---|---:|---:|---|"]
    for backend, kind, n, latency, results in rows:
        for r in results:
            seconds = f"{r.seconds:.2f}" if r.ran else "-"
            requests = f"{r.requests:,}" if r.ran else "-"
            lines.append(f"| {backend} | {kind} | {n} | {latency:g} ms | {r.client} | `{r.call}` | {seconds} | "
                         f"{requests} | {r.answer} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neurons", type=int, default=100, help="neurons per question (default 100)")
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 20.0],
                        help="ms the emulator adds to every request (default 0 20)")
    parser.add_argument("--only", choices=["cave", "neuprint"], help="one emulator only")
    parser.add_argument("--work", type=Path, help="folder for the synthetic release and caches (default: temporary)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="cx-bench-morphology-"))
    load = [os.getloadavg()[1]]
    n = args.neurons
    t0 = time.perf_counter()
    release = make_synthetic_release(work / "release", n_bodies=max(300, (REPEATS + 1) * n + 50),
                                     synapses_per_body=10, morphology=REPEATS * n + 1)
    print(f"SYNTHETIC release with {REPEATS * n + 1} skeletons and meshes written in "
          f"{time.perf_counter() - t0:.0f} s: {release}", flush=True)
    rows = []
    sides = [s for s in (CaveSide, NeuprintSide) if args.only in (None, s.name.lower())]
    for make in sides:
        side = make(release, work)
        try:
            rows += measure(side, n, args.latency, work)
        finally:
            side.close()
        load.append(os.getloadavg()[1])
    import cloudvolume
    import connecto
    import fafbseg

    import caveclient

    command = "python benchmarks/morphology.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "")
    print(f"\n{dt.date.today()} · `{command}` · {platform.python_version()} · {os.cpu_count()} cores (shared), "
          f"load average {min(load):.1f}-{max(load):.1f} (5 min) · connecto {connecto.__version__} · fafbseg "
          f"{fafbseg.__version__} · caveclient {caveclient.__version__} · cloud-volume {cloudvolume.__version__}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
