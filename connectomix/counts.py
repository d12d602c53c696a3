"""Per-neuron synapse counts a backend may leave uncomputed: ``Dataset.fetch_neurons(counts=...)``.

Counting is free where a dataset stores counts (release files, neuPrint
properties) and expensive where it does not (CAVE: every synapse row of the
neurons). Backends of the second kind declare
:attr:`~connectomix.backend.Backend.optional_counts` and take ``counts``:
``None`` (default) counts only what a criterion needs, ``True`` counts
everything, ``False`` nothing beyond the criteria. Counts left out are
``<NA>`` (never zeros), ``df.attrs["counts"]`` says so on ``neurons`` and
``roi_counts``, and each :class:`~connectomix.Dataset` warns once.
"""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from .errors import InvalidArgumentError

__all__ = ["check_counts", "query_of", "fetch", "note_of", "mark"]


def check_counts(counts: Any) -> bool | None:
    """``counts`` as given, or :class:`InvalidArgumentError` if it is not ``None``, ``True`` or ``False``."""
    if counts is not None and not isinstance(counts, bool):
        raise InvalidArgumentError(f"counts must be None, True or False; got {counts!r}")
    return counts


def query_of(backend: Any, criteria: Any, counts: bool | None) -> Any:
    """The result-cache query of a neuron lookup: ``counts`` is part of it only where it changes the answer."""
    return (criteria, counts) if backend.optional_counts else criteria


def fetch(backend: Any, criteria: Any, version: Any, counts: bool | None) -> pd.DataFrame:
    """``backend.fetch_neurons``, with ``counts`` where the backend takes it."""
    if backend.optional_counts:
        return backend.fetch_neurons(criteria, version, counts=counts)
    return backend.fetch_neurons(criteria, version)


def note_of(raw: Any) -> str | None:
    """What a backend's neuron table says about counts it did not compute (``None``: all computed)."""
    return raw.attrs.get("counts") if isinstance(raw, pd.DataFrame) else None


def mark(dataset: Any, neurons: pd.DataFrame, roi_counts: pd.DataFrame, note: str | None,
         counts: bool | None) -> None:
    """Record ``note`` in both tables' ``attrs["counts"]``; warn once per dataset unless ``counts=False``."""
    if not note:
        return
    neurons.attrs["counts"] = note
    roi_counts.attrs["counts"] = note
    if counts is None and not dataset.__dict__.get("_counts_warned"):
        dataset.__dict__["_counts_warned"] = True
        warnings.warn(
            f"dataset {dataset.name!r} ({dataset.backend_name}) has no table of per-neuron synapse counts, so "
            f"fetch_neurons did not count synapses: pre/post/upstream/downstream are <NA> (not zero) where no "
            f"criterion needed them, and roi_counts is empty ({note}; counts=False skips this warning)",
            UserWarning, stacklevel=4)
