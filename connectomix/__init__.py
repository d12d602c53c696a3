"""connectomix: one API over connectome datasets.

>>> import connectomix
>>> ds = connectomix.open("sample")            # embedded, offline
>>> neurons, roi_counts = ds.fetch_neurons(type="DA1_lPN")
>>> edges = ds.get_connectivity(sources=neurons["id"], min_weight=5)
>>> synapses = ds.get_synapses(neurons["id"][:1])

See :mod:`connectomix.schema` for the columns, dtypes and units of every table.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from . import errors, schema
from .backend import Backend, Capability
from .compare import compare
from .comparative import TypeComparison, compare_types, match_types, parse_keys
from .criteria import NeuronCriteria
from .dataset import Dataset, NeuronTables, open
from .errors import ConnectomixError
from .registry import BackendInfo, get_registry

try:
    __version__ = _version("connectomix")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

NC = NeuronCriteria  # the short name neuprint-python users type

__all__ = [
    "open",
    "compare",
    "compare_types",
    "match_types",
    "parse_keys",
    "TypeComparison",
    "datasets",
    "backends",
    "Dataset",
    "NeuronTables",
    "NeuronCriteria",
    "NC",
    "Backend",
    "Capability",
    "BackendInfo",
    "ConnectomixError",
    "errors",
    "schema",
]


def datasets() -> dict[str, str]:
    """Dataset names usable with :func:`open`: configured ones, then built-in ones, with URIs.

    Examples
    --------
    >>> import connectomix
    >>> "sample" in connectomix.datasets()
    True
    """
    from .config import load_config

    out = dict(get_registry().datasets)
    out.update({name: entry.uri for name, entry in load_config().items()})
    return out


def backends() -> dict[str, BackendInfo]:
    """Installed backends by name.

    Examples
    --------
    >>> import connectomix
    >>> "release" in connectomix.backends()
    True
    """
    return dict(get_registry().backends)
