"""Run the same query on several datasets and get one long table back.

Cross-dataset comparison is the main use of connectomix in notebooks::

    import connectomix
    from connectomix import NC

    edges = connectomix.compare(
        ["hemibrain", "flywire"], "get_connectivity",
        sources=NC(type="DA1_lPN"), by="type", min_weight=5,
    )
    connectomix.plot.compare_partners(edges)

Every row gets a ``dataset`` column (first); ``df.attrs["datasets"]`` keeps
each dataset's provenance.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pandas as pd

from .dataset import Dataset, NeuronTables
from .errors import ConnectomixError, InvalidArgumentError

__all__ = ["compare"]

_METHODS = ("fetch_neurons", "get_connectivity", "get_synapses")


def compare(datasets: Iterable[str | Dataset] | Mapping[str, str | Dataset], method: str, *args: Any,
            max_workers: int = 4, **kwargs: Any) -> pd.DataFrame:
    """Call ``Dataset.<method>(*args, **kwargs)`` on every dataset; concatenate the results.

    Parameters
    ----------
    datasets
        Names, URIs or :class:`Dataset` objects, or a mapping ``label -> dataset``
        (labels become the ``dataset`` column).
    method
        ``"fetch_neurons"`` (its ``neurons`` table), ``"get_connectivity"`` or
        ``"get_synapses"``.
    max_workers
        Datasets queried at the same time.

    Raises
    ------
    ConnectomixError
        The first failure, naming the dataset; no partial table is returned.

    Examples
    --------
    >>> import connectomix
    >>> both = connectomix.compare({"a": "sample", "b": "sample"}, "fetch_neurons", type="DA1_lPN")
    >>> both.groupby("dataset", observed=True).size().to_dict()
    {'a': 7, 'b': 7}
    """
    if not isinstance(method, str) or method not in _METHODS:
        raise InvalidArgumentError(f"method must be one of {list(_METHODS)}; got {method!r}")
    if isinstance(max_workers, bool) or not isinstance(max_workers, numbers.Integral) or max_workers < 1:
        raise InvalidArgumentError(f"max_workers must be a positive integer; got {max_workers!r}")
    if isinstance(datasets, (str, Dataset)) or not isinstance(datasets, Iterable):
        raise InvalidArgumentError(
            f"datasets must be a list of dataset names/Datasets or a dict label -> dataset; got {datasets!r}")
    items = list(datasets.items()) if isinstance(datasets, Mapping) else [
        (d if isinstance(d, str) else getattr(d, "name", None), d) for d in datasets
    ]
    for label, ds in items:
        if not isinstance(ds, (str, Dataset)) or not isinstance(label, str):
            raise InvalidArgumentError(
                f"each dataset must be a name, URI or connectomix.Dataset with a string label; got {label!r}: {ds!r}")
    try:  # arguments the method cannot take are refused before any dataset is opened
        inspect.signature(getattr(Dataset, method)).bind(None, *args, **kwargs)
    except TypeError as exc:
        raise InvalidArgumentError(f"connectomix.compare(..., {method!r}, ...): {exc}") from None
    labels = [label for label, _ in items]
    if not items:
        raise InvalidArgumentError("give at least one dataset to compare")
    if len(set(labels)) != len(labels):
        raise InvalidArgumentError(f"dataset labels must be unique; got {labels} (pass a dict to relabel)")

    def run(item: tuple[str, str | Dataset]) -> pd.DataFrame:
        label, ds = item
        with dataset_for(label, ds, "connectomix.compare") as opened:
            result = getattr(opened, method)(*args, **kwargs)
        return result.neurons if isinstance(result, NeuronTables) else result

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(items)))) as pool:
        results = list(pool.map(run, items))
    frames = []
    for label, df in zip(labels, results):
        frames.append(df.assign(dataset=label)[["dataset"] + list(df.columns)])
    out = pd.concat(_nullable_where_missing(frames), ignore_index=True)
    out["dataset"] = pd.Categorical(out["dataset"], categories=labels)
    out.attrs = {"datasets": {label: dict(df.attrs) for label, df in zip(labels, results)}, "method": method}
    return out


def _nullable_where_missing(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Integer/bool columns that some frames lack or hold no value in become nullable (``Int64``/``boolean``).

    Datasets keep different native columns, and a column with no value at all
    comes back from DuckDB/Arrow as ``float64`` (or ``object``) ``NaN``s;
    concatenating would otherwise turn another dataset's integer column into
    floats. A column is cast only when every frame that holds a value in it
    holds integers (resp. booleans), so real float columns stay floats.
    """
    columns = list(dict.fromkeys(c for df in frames for c in df.columns))
    casts: list[dict[str, str]] = [{} for _ in frames]
    for c in columns:
        kinds = {_kind(df[c]) for df in frames if c in df.columns and df[c].notna().any()}
        if kinds not in ({"i"}, {"b"}):
            continue
        target = "Int64" if kinds == {"i"} else "boolean"
        if all(c in df.columns and df[c].dtype == frames[0][c].dtype for df in frames):
            continue  # concatenation keeps the dtype as it is
        for i, df in enumerate(frames):
            if c in df.columns:
                casts[i][c] = target
    out = []
    for df, cast in zip(frames, casts):
        if cast:
            df = df.assign(**{c: (df[c].astype(t) if df[c].notna().any() else pd.array([pd.NA] * len(df), dtype=t))
                              for c, t in cast.items()})
        out.append(df)
    return out


def _kind(s: pd.Series) -> str:
    """``"i"`` for integer columns (numpy or nullable), ``"b"`` for boolean ones, else ``""``."""
    kind = getattr(s.dtype, "kind", "")
    return "i" if kind in ("i", "u") else "b" if kind == "b" else ""


def connectomix_open(name: str) -> Dataset:
    from .dataset import open as open_dataset

    return open_dataset(name)


@contextmanager
def dataset_for(label: str, ds: str | Dataset, where: str | None = None) -> Iterator[Dataset]:
    """``ds`` as a :class:`Dataset` for the length of a ``with`` block, labelled ``label`` in errors.

    A name or URI is opened, and closed when the block ends; a :class:`Dataset`
    is used as it is (whoever made it closes it). A
    :class:`~connectomix.errors.ConnectomixError` raised while opening, or
    inside the block when ``where`` is given, gets a note naming the dataset
    (``"(while querying dataset 'hb' in connectomix.compare)"``).

    Examples
    --------
    >>> with dataset_for("a", "sample", "an example") as ds:
    ...     ds.name
    'sample'
    >>> with dataset_for("a", "sample", "an example") as ds:
    ...     ds.fetch_neurons(rois="nowhere")
    Traceback (most recent call last):
    ...
    connectomix.errors.UnknownROIError: ...
    """
    opened = None
    try:
        opened = connectomix_open(ds) if isinstance(ds, str) else ds
        yield opened
    except ConnectomixError as exc:
        if opened is None:
            exc.add_note(f"(while opening dataset {label!r})")
        elif where is not None:
            exc.add_note(f"(while querying dataset {label!r} in {where})")
        raise
    finally:
        if opened is not None and opened is not ds:
            opened.close()
