"""The CAVE side of the peer benchmark: connectomix, connecto and fafbseg on one CAVE emulator.

The emulator serves a SYNTHETIC release as ``flywire_fafb_public`` (fafbseg's public datastack,
with FlyWire's table and view names: ``valid_synapses_nt_np_v6``, ``valid_connection_v2``,
``cell_types``), materialization 1. Each client is configured, never patched:

* connectomix: ``connectomix.open("cave://flywire_fafb_public", server=..., token=..., row_limit=<cap>)``:
  told the emulator's row cap (``--cave-row-cap``), as the catalogue tells it FlyWire's 500,000 for the
  real server (without it, the first capped answer of a process teaches it the cap, one request
  thrown away);
* connecto 0.3: ``connecto.FlyWire(backend="cave", version=1)`` (its curated FlyWire spec) for
  connectivity and synapses, and ``connecto.CAVE("flywire_fafb_public", version=1)`` (a spec
  probed from the server) for the neuron lookup, because the curated spec's annotation sources are
  neuPrint, GitHub and FlyTable, none of which is the emulator. The server comes from caveclient's
  datastack-to-server map in ``HOME`` and the token from ``$CONNECTO_CAVE_TOKEN``;
* fafbseg: the same ``HOME`` (see ``connectomix_cave.emulator.home``). fafbseg has no neuron
  lookup against CAVE (its annotations come from GitHub and FlyTable), so it answers the counts
  question only.

Questions asked (the same for every client): outgoing connectivity of the query neurons (total, and
per ROI), every synapse with a query neuron on either side, a neuron lookup (ids and types) and
per-neuron synapse counts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from _peers import compare, count_compare, counts_option, cx_counts, pages, weight_compare
from _synthetic import make_synthetic_release

TOKEN = "bench-token"
DATASTACK = "flywire_fafb_public"
MAT = 1


class CaveBench:
    """Start the emulator and every client; ``queries[client][query] = (call, fn(ids) -> table)``."""

    name = "CAVE"

    def __init__(self, work: Path, n_bodies: int, row_cap: int):
        from connectomix_cave.emulator import CaveEmulator, use_client_home

        self.work = work
        self.row_cap = row_cap
        self.n_bodies = n_bodies
        release = make_synthetic_release(work / "cave-release", n_bodies=n_bodies)
        self.emu = CaveEmulator(release, token=TOKEN, row_limit=row_cap).start()
        home = work / "cave-home"
        self.emu.write_client_home(home)
        self._home = use_client_home(home)
        self._home.__enter__()
        os.environ["CONNECTO_CAVE_TOKEN"] = TOKEN
        self.pool = np.arange(10_001, 10_001 + n_bodies)
        self.cache_dir = work / "cx-cache-cave"
        self.clients = self._clients()

    def close(self) -> None:
        self._home.__exit__(None, None, None)
        self.emu.stop()

    # --- counting --------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.emu.stats.reset()

    def count(self) -> tuple[int, int]:
        snap = self.emu.stats.snapshot()
        return self.emu.stats.requests(), sum(v.get("bytes_out", 0) for v in snap.values())

    def set_latency(self, ms: float) -> None:
        self.emu.faults.latency_ms = ms

    # --- clients ---------------------------------------------------------------------------------------------
    def open_connectomix(self, cache: bool):
        import connectomix

        return connectomix.open(f"cave://{DATASTACK}", server=self.emu.url, token=TOKEN, row_limit=self.row_cap,
                                cache=str(self.cache_dir) if cache else False)

    def child_spec(self) -> dict:
        """How a new process opens the same cached connectomix dataset (see ``peers.py --child``)."""
        return {"uri": f"cave://{DATASTACK}", "options": {"server": self.emu.url, "token": TOKEN,
                                                          "row_limit": self.row_cap, "cache": str(self.cache_dir)},
                "materialization": MAT}

    def _clients(self) -> dict:
        import connecto
        import fafbseg.flywire as flywire

        cx = self.open_connectomix(cache=False)
        fw = connecto.FlyWire(backend="cave", version=MAT)
        probed = connecto.CAVE(DATASTACK, version=MAT)
        self.connecto_neurons = probed
        return {
            "connectomix": {
                "connectivity": ("get_connectivity(ids, partner_types=False)", lambda ids: cx_edges(cx, ids, False)),
                "connectivity_roi": ("get_connectivity(ids, by_roi=True, partner_types=False)",
                                     lambda ids: cx_edges(cx, ids, True)),
                "synapses": ("get_synapses(ids, partner_types=False)", lambda ids: cx_synapses(cx, ids)),
                "neurons": ("fetch_neurons(ids)", lambda ids: cx_neurons(cx, ids)),
                "counts": (f"fetch_neurons(ids{', counts=True' if counts_option(cx) else ''})",
                           lambda ids: cx_counts(cx, ids, materialization=MAT)),
            },
            "connecto": {
                "connectivity": ("FlyWire(backend='cave').connectivity.edges(ids, upstream=False)",
                                 lambda ids: co_edges(fw, ids, False)),
                "connectivity_roi": ("edges(ids, upstream=False, by_roi=True)", lambda ids: co_edges(fw, ids, True)),
                "synapses": ("connectivity.synapses(ids)", lambda ids: co_synapses(fw, ids)),
                "neurons": ("CAVE('flywire_fafb_public').annotations.get(ids)",
                            lambda ids: co_neurons(probed, ids)),
                "counts": ("connectivity.synapse_counts(ids)", lambda ids: co_counts(fw, ids)),
            },
            "fafbseg": {
                "connectivity": ("get_connectivity(ids, upstream=False)",
                                 lambda ids: fs_edges(flywire, ids, False)),
                "connectivity_roi": ("get_connectivity(ids, upstream=False, neuropils=True)",
                                     lambda ids: fs_edges(flywire, ids, True)),
                "synapses": ("get_synapses(ids)", lambda ids: fs_synapses(flywire, ids)),
                "counts": ("get_synapse_counts(ids)", lambda ids: fs_counts(flywire, ids)),
            },
        }

    def warm_connecto(self, query: str):
        """connecto's second identical call, or None where connecto has no cache for the query."""
        import connecto

        if query in ("connectivity", "connectivity_roi"):
            fw = connecto.FlyWire(backend="cave", version=MAT)
            return lambda ids: co_edges(fw, ids, query == "connectivity_roi", cache=True)
        if query == "neurons":
            probed = connecto.CAVE(DATASTACK, version=MAT)
            return lambda ids: co_neurons(probed, ids)
        return None

    # --- answers -------------------------------------------------------------------------------------------
    def verdict(self, query: str, client: str, theirs, ours, ids) -> str:
        if query == "connectivity_roi" and client == "fafbseg":
            totals = [df.groupby(["pre", "post"], as_index=False)["weight"].sum() for df in (theirs, ours)]
            verdict = weight_compare(*totals, ["pre", "post"])
            return (f"pair totals {verdict}; neuropils not comparable: fafbseg labels synapses by id from its "
                    "bundled FlyWire table (get_synapse_areas), not from the view's neuropil column")
        if query in ("connectivity", "connectivity_roi"):
            keys = ["pre", "post"] + (["roi"] if query == "connectivity_roi" else [])
            return weight_compare(theirs, ours, keys)
        if query == "counts":
            return count_compare(theirs, ours)
        if query == "synapses":
            keys = ["synapse_id", "pre", "post"] if client == "fafbseg" else \
                ["synapse_id", "pre", "post", "pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]
            return compare(theirs, ours, keys, what="synapses")
        return compare(theirs, ours, ["id", "type"], what="neurons")

    def minimum(self, query: str, ours: pd.DataFrame, ids) -> tuple[int, str]:
        cap = f"{self.row_cap:,}-row cap"
        if query == "connectivity":
            return pages(len(ours), self.row_cap), f"connectivity: pairs ÷ {cap} of one view query"
        if query == "connectivity_roi":
            return (pages(int(ours["weight"].sum()), self.row_cap),
                    f"per ROI: synapse rows ÷ {cap} (CAVE has no per-neuropil edge view)")
        if query == "synapses":
            ids = set(ids)
            out = int(ours["pre"].isin(ids).sum())
            into = int((ours["post"].isin(ids) & ~ours["pre"].isin(ids)).sum())
            return (pages(out, self.row_cap) + pages(into, self.row_cap),
                    f"synapses: outgoing rows ÷ {cap} + incoming-only rows ÷ {cap} (one filter per query)")
        if query == "counts":  # the same rows as the synapses question: read from the emulator's view
            from connectomix_cave.settings import settings_for

            view = self.emu.dataset.table(settings_for(DATASTACK, {}).view_at(MAT), MAT)
            pre, post = view["pre_pt_root_id"].isin(ids), view["post_pt_root_id"].isin(ids)
            if int(pre.sum()) != int(ours["pre"].sum()):  # the view is what connectomix counted
                raise AssertionError(f"view rows {int(pre.sum())} != connectomix's outgoing {int(ours['pre'].sum())}")
            return (pages(int(pre.sum()), self.row_cap) + pages(int((post & ~pre).sum()), self.row_cap),
                    f"counts: outgoing rows ÷ {cap} + incoming-only rows ÷ {cap} (root ids only; one filter per "
                    "query), no count table")
        return pages(len(ours), self.row_cap), f"neurons: annotation rows ÷ {cap}"


# --- the calls, and each answer mapped to connectomix's columns ------------------------------------------------

# connectomix's tables are asked without its partner type/instance columns (partner_types=False): the
# peers' tables hold ids only, so every client answers the same question with the same columns.
def cx_edges(ds, ids, by_roi):
    df = ds.get_connectivity(sources=ids, by_roi=by_roi, materialization=MAT, progress=False, partner_types=False)
    return df[["pre", "post", "roi", "weight"] if by_roi else ["pre", "post", "weight"]]


def cx_synapses(ds, ids):
    return ds.get_synapses(ids, materialization=MAT, progress=False, partner_types=False)


def cx_neurons(ds, ids, **counts):
    df = ds.fetch_neurons(ids, materialization=MAT, **counts).neurons
    return df[["id", "type", "pre", "post"]]


def co_edges(ds, ids, by_roi, cache=False):
    df = ds.connectivity.edges(ids, upstream=False, by_roi=by_roi, cache=cache)
    return df[["pre", "post", "roi", "weight"] if by_roi else ["pre", "post", "weight"]]


def co_synapses(ds, ids):
    return ds.connectivity.synapses(ids).rename(columns={"id": "synapse_id"})


def co_neurons(ds, ids):
    fresh = ds.at(ds.version)  # a new handle: its annotation memo is empty
    ann = fresh.annotations.get(ids, verbose=False)
    return ann.rename(columns={"cell_type": "type"})[["id", "type"]]


def co_counts(ds, ids):
    return ds.connectivity.synapse_counts(ids)[["id", "pre", "post"]]


def fs_edges(flywire, ids, by_roi):
    df = flywire.get_connectivity(ids, upstream=False, downstream=True, materialization=MAT, progress=False,
                                  neuropils=True if by_roi else None)
    df = df.rename(columns={"neuropil": "roi"})
    return df[["pre", "post", "roi", "weight"] if by_roi else ["pre", "post", "weight"]]


def fs_synapses(flywire, ids):
    return flywire.get_synapses(ids, materialization=MAT, progress=False).rename(columns={"id": "synapse_id"})


def fs_counts(flywire, ids):
    df = flywire.get_synapse_counts(ids, materialization=MAT)
    return df.rename_axis("id").reset_index()[["id", "pre", "post"]]
