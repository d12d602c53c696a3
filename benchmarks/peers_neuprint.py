"""The neuPrint side of the peer benchmark: connectomix, connecto and neuprint-python on one neuPrint emulator.

The emulator serves a SYNTHETIC release as ``synthetic:v1`` over HTTPS with a self-signed
certificate. Each client is configured, never patched:

* connectomix: ``connectomix.open("neuprint://host:port/synthetic:v1", token=..., verify=<cert>)``;
* connecto 0.3: ``connecto.NeuPrint("synthetic:v1", server="host:port")`` (a spec probed from the
  server), with the token in ``$CONNECTO_NEUPRINT_TOKEN`` and the certificate in
  ``$REQUESTS_CA_BUNDLE`` (requests' own setting: connecto builds its neuprint-python ``Client``
  without a ``verify`` argument);
* neuprint-python: ``Client(url, dataset, token=..., verify=<cert>)``.

Questions (the same for every client): outgoing connectivity of the query neurons (total, and per
ROI), every synapse with a query neuron on either side, a neuron lookup, and per-neuron synapse counts
(neuprint-python's ``fetch_neurons`` returns them in the lookup, so it is not run twice). neuprint-python's
``fetch_synapse_connections(NC(bodyId=ids), None)`` answers the outgoing half only (asking for the
incoming half too would double its minutes-long runs), so its answer is compared with the outgoing
rows of connectomix's table, and its time with connectomix's time for both halves (conservative).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from _peers import compare, counts_option, cx_counts, pages, weight_compare
from _synthetic import make_synthetic_release

TOKEN = "bench-token"
DATASET = "synthetic:v1"
VOXEL_NM = 8.0  # the synthetic release's voxel size
SITES = ["pre_x", "pre_y", "pre_z", "post_x", "post_y", "post_z"]


class NeuprintBench:
    """Start the emulator and every client; ``clients[client][query] = (call, fn(ids) -> table)``."""

    name = "neuPrint"

    def __init__(self, work: Path, n_bodies: int, rows_per_query: int):
        from connectomix_neuprint.emulator import NeuprintEmulator

        self.work = work
        self.rows_per_query = rows_per_query
        release = make_synthetic_release(work / "np-release", n_bodies=n_bodies, synapses_per_body=30)
        self.emu = NeuprintEmulator(release, token=TOKEN, dataset=DATASET).__enter__()
        self.host = self.emu.url.split("://", 1)[1]
        os.environ["REQUESTS_CA_BUNDLE"] = str(self.emu.cert_path)
        os.environ["CONNECTO_NEUPRINT_TOKEN"] = TOKEN
        self.pool = np.arange(10_001, 10_001 + n_bodies)
        self.cache_dir = work / "cx-cache-np"
        self.clients = self._clients()

    def close(self) -> None:
        self.emu.__exit__(None, None, None)

    def reset(self) -> None:
        self.emu.stats.reset()

    def count(self) -> tuple[int, int]:
        snap = self.emu.stats.snapshot()
        return snap["requests"], snap["bytes_out"]

    def set_latency(self, ms: float) -> None:
        self.emu.faults.latency_ms = ms

    def open_connectomix(self, cache: bool):
        import connectomix

        return connectomix.open(f"neuprint://{self.host}/{DATASET}", token=TOKEN, verify=str(self.emu.cert_path),
                                cache=str(self.cache_dir) if cache else False)

    def child_spec(self) -> dict:
        return {"uri": f"neuprint://{self.host}/{DATASET}",
                "options": {"token": TOKEN, "verify": str(self.emu.cert_path), "cache": str(self.cache_dir)},
                "materialization": None}

    def _clients(self) -> dict:
        import connecto
        from neuprint import Client, NeuronCriteria as NC, SynapseCriteria as SC
        from neuprint import fetch_adjacencies, fetch_neurons, fetch_simple_connections, fetch_synapse_connections

        cx = self.open_connectomix(cache=False)
        co = connecto.NeuPrint(DATASET, server=self.host)
        Client.DATASETS_CACHE.clear()
        client = Client(self.emu.url, dataset=DATASET, token=TOKEN, verify=str(self.emu.cert_path), progress=False)

        def np_edges(ids, by_roi):
            if by_roi:
                df = fetch_adjacencies(NC(bodyId=ids, client=client), None, client=client)[1]
            else:
                df = fetch_simple_connections(NC(bodyId=ids, client=client), None, properties=[], client=client)
            df = df.rename(columns={"bodyId_pre": "pre", "bodyId_post": "post"})
            return df[["pre", "post", "roi", "weight"] if by_roi else ["pre", "post", "weight"]]

        def np_synapses(ids):
            df = fetch_synapse_connections(NC(bodyId=ids, client=client), None,
                                           SC(confidence=0.0, client=client), client=client)
            return voxel_sites(df)

        def np_neurons(ids):
            df = fetch_neurons(NC(bodyId=ids, client=client), client=client)[0]
            return df.rename(columns={"bodyId": "id"})[["id", "type", "pre", "post"]]

        return {
            "connectomix": {
                "connectivity": ("get_connectivity(ids, partner_types=False)", lambda ids: cx_edges(cx, ids, False)),
                "connectivity_roi": ("get_connectivity(ids, by_roi=True, partner_types=False)",
                                     lambda ids: cx_edges(cx, ids, True)),
                "synapses": ("get_synapses(ids, partner_types=False)",
                             lambda ids: cx.get_synapses(ids, progress=False, partner_types=False)),
                "neurons": ("fetch_neurons(ids)", lambda ids: cx_neurons(cx, ids)),
                "counts": (f"fetch_neurons(ids{', counts=True' if counts_option(cx) else ''})",
                           lambda ids: cx_counts(cx, ids)),
            },
            "connecto": {
                "connectivity": ("NeuPrint(...).connectivity.edges(ids, upstream=False)",
                                 lambda ids: co_edges(co, ids, False)),
                "connectivity_roi": ("edges(ids, upstream=False, by_roi=True)", lambda ids: co_edges(co, ids, True)),
                "synapses": ("connectivity.synapses(ids)", lambda ids: co.connectivity.synapses(ids)),
                "neurons": ("annotations.get(ids)", lambda ids: co_neurons(co, ids)),
                "counts": ("connectivity.synapse_counts(ids)",
                           lambda ids: co.connectivity.synapse_counts(ids)[["id", "pre", "post"]]),
            },
            "neuprint-python": {
                "connectivity": ("fetch_simple_connections(NC(bodyId=ids), None)", lambda ids: np_edges(ids, False)),
                "connectivity_roi": ("fetch_adjacencies(NC(bodyId=ids), None)", lambda ids: np_edges(ids, True)),
                "synapses": ("fetch_synapse_connections(NC(bodyId=ids), None, SC(confidence=0)) (outgoing only)",
                             np_synapses),
                "neurons": ("fetch_neurons(NC(bodyId=ids))", np_neurons),
            },
        }

    def warm_connecto(self, query: str):
        import connecto

        if query in ("connectivity", "connectivity_roi"):
            co = connecto.NeuPrint(DATASET, server=self.host)
            return lambda ids: co_edges(co, ids, query == "connectivity_roi", cache=True)
        if query == "neurons":
            co = connecto.NeuPrint(DATASET, server=self.host)
            return lambda ids: co_neurons(co, ids)
        return None

    def verdict(self, query: str, client: str, theirs, ours, ids) -> str:
        if query in ("connectivity", "connectivity_roi"):
            keys = ["pre", "post"] + (["roi"] if query == "connectivity_roi" else [])
            return weight_compare(theirs, ours, keys)
        if query == "synapses":
            if client == "neuprint-python":
                ours = ours[ours["pre"].isin(set(ids))]
            return compare(_rounded(theirs), _rounded(ours), ["pre", "post", *SITES], what="synapses")
        keys = ["id", "pre", "post"] if query == "counts" else ["id", "type", "pre", "post"]
        return compare(theirs, ours.fillna({"pre": -1, "post": -1}).astype({"pre": "int64", "post": "int64"}), keys, what="neurons")

    def minimum(self, query: str, ours: pd.DataFrame, ids) -> tuple[int, str]:
        per = f"{self.rows_per_query:,} rows per query"
        if query in ("connectivity", "connectivity_roi"):
            pairs = len(ours[["pre", "post"]].drop_duplicates())
            return pages(pairs, self.rows_per_query), f"connectivity: neuron pairs ÷ {per} (one ConnectsTo row per pair)"
        if query == "synapses":
            return pages(len(ours), self.rows_per_query), f"synapses: rows ÷ {per} (one query can match either side)"
        return pages(len(ours), self.rows_per_query), f"neurons: rows ÷ {per}"


def cx_neurons(ds, ids, **counts):
    return ds.fetch_neurons(ids, **counts).neurons[["id", "type", "pre", "post"]]


def cx_edges(ds, ids, by_roi):
    df = ds.get_connectivity(sources=ids, by_roi=by_roi, progress=False, partner_types=False)  # ids only, as the peers
    return df[["pre", "post", "roi", "weight"] if by_roi else ["pre", "post", "weight"]]


def co_edges(ds, ids, by_roi, cache=False):
    df = ds.connectivity.edges(ids, upstream=False, by_roi=by_roi, cache=cache)
    return df[["pre", "post", "roi", "weight"] if by_roi else ["pre", "post", "weight"]]


def co_neurons(ds, ids):
    fresh = ds.at(ds.version)  # a new handle: its annotation memo is empty
    return fresh.annotations.get(ids, verbose=False)[["id", "type", "pre", "post"]]


def voxel_sites(df: pd.DataFrame) -> pd.DataFrame:
    """neuprint-python's synapse table (voxels) in connectomix's columns (nm)."""
    out = pd.DataFrame({"pre": df["bodyId_pre"], "post": df["bodyId_post"]})
    for ours, theirs in zip(SITES, ["x_pre", "y_pre", "z_pre", "x_post", "y_post", "z_post"]):
        out[ours] = df[theirs].to_numpy() * VOXEL_NM
    return out


def _rounded(df: pd.DataFrame) -> pd.DataFrame:
    out = df[["pre", "post", *SITES]].copy()
    out[SITES] = out[SITES].astype("float64").round(1)
    return out
