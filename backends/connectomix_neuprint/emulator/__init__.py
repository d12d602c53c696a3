"""A local neuPrint server for connectomix release folders.

The emulator speaks neuPrintHTTP's API (v1.9.2) over HTTPS on 127.0.0.1
closely enough that the **unmodified** neuprint-python client runs its own
query functions (``fetch_neurons``, ``fetch_adjacencies``,
``fetch_simple_connections``, ``fetch_synapses``,
``fetch_synapse_connections``, ``fetch_skeleton``, ``fetch_custom``...)
against a release folder. Use it for offline notebooks, for downstream CI,
and for testing code that talks to neuPrint without a token or a network.

Quick start::

    python -m connectomix_neuprint.emulator --release path/to/release --token mytoken

or from Python::

    from connectomix_neuprint.emulator import NeuprintEmulator
    import neuprint

    with NeuprintEmulator("path/to/release", dataset="hemibrain:v1.2.1") as emu:
        client = neuprint.Client(emu.url, dataset=emu.dataset, token=emu.token.reveal(),
                                 verify=str(emu.cert_path))
        neurons, roi_counts = neuprint.fetch_neurons(neuprint.NeuronCriteria(type="DA1.*"), client=client)

How it works: :mod:`.model` turns the release folder into neuPrint's property
graph (``:Segment``/``:Neuron``, ``ConnectsTo``, ``:SynapseSet``,
``:Synapse``, ``SynapsesTo``, ``:Meta``); :mod:`.engine` loads it into an
embedded, read-only Kuzu database and runs queries; :mod:`.rewrite` turns the
neo4j Cypher clients send into Kuzu's dialect (APOC calls, labels, points,
JSON maps...); :mod:`.server` is the HTTPS server with neuPrint's endpoints,
token checks, and fault/latency injection (:mod:`.faults`). Only
:mod:`.engine` imports Kuzu. See ``README.md`` next to this file for the data
model mapping, the rewrite table and the known differences from neuPrint.
"""

from .faults import Fault, FaultInjector, RequestStats
from .model import GraphModel, build_model
from .server import SERVER_VERSION, NeuprintEmulator
from .synthetic import write_synthetic_release

__all__ = [
    "NeuprintEmulator",
    "SERVER_VERSION",
    "Fault",
    "FaultInjector",
    "RequestStats",
    "GraphModel",
    "build_model",
    "write_synthetic_release",
]
