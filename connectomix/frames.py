"""DataFrame assembly that never holds a large table twice.

``pd.concat`` keeps every part and the whole result alive at once, and
``df.take`` / ``df[mask]`` keep the input and the output: both peak at twice
the table. For millions of synapse rows that is the difference between
fitting in memory or not. The functions here work one column at a time and
*consume* their input (columns are popped as they are copied), so the peak is
the table plus one column. Frames are built with one block per column
(``copy=False``), which is what lets a popped column's memory go.

The core and the remote backends use these for synapse tables, which can be
large; small tables do not need them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["from_columns", "concat", "take", "drop_duplicates"]


def from_columns(columns: Mapping[str, np.ndarray | pd.Series | pd.api.extensions.ExtensionArray]) -> pd.DataFrame:
    """A DataFrame over ``columns`` without copying them (one block per column).

    Examples
    --------
    >>> a = np.arange(3)
    >>> df = from_columns({"a": a, "b": a * 2.0})
    >>> np.shares_memory(df["a"].to_numpy(), a)
    True
    """
    values = {name: (col.array if isinstance(col, pd.Series) else col) for name, col in columns.items()}
    n = len(next(iter(values.values()))) if values else 0
    return pd.DataFrame(values, index=pd.RangeIndex(n), copy=False)


def concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Stack ``parts`` (same columns) row-wise, emptying ``parts`` as it goes.

    Each column is concatenated, then popped from every part, so the memory
    of parts built with :func:`from_columns` is released column by column.
    ``parts`` is cleared. Column dtypes follow ``pd.concat``.

    Examples
    --------
    >>> parts = [from_columns({"a": np.array([1, 2])}), from_columns({"a": np.array([3])})]
    >>> concat(parts)["a"].tolist(), parts
    ([1, 2, 3], [])
    """
    if not parts:
        raise ValueError("concat needs at least one frame")
    names = list(parts[0].columns)
    out = {}
    for name in names:
        pieces = [part.pop(name) for part in parts]
        if all(isinstance(p.dtype, np.dtype) and p.dtype == pieces[0].dtype for p in pieces):
            out[name] = np.concatenate([p.to_numpy() for p in pieces])
        else:
            out[name] = pd.concat(pieces, ignore_index=True).array
        del pieces
    parts.clear()
    return from_columns(out)


def take(df: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows at positions ``rows`` of ``df``, one column at a time; ``df`` is emptied.

    Examples
    --------
    >>> df = from_columns({"a": np.array([10, 20, 30])})
    >>> take(df, np.array([2, 0]))["a"].tolist(), df.shape[1]
    ([30, 10], 0)
    """
    out = {}
    for name in list(df.columns):
        out[name] = df.pop(name).array.take(rows)
    return from_columns(out)


def drop_duplicates(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """``df`` with each value of ``column`` once (its first row); ``df`` itself when nothing repeats.

    Otherwise the rows are copied with :func:`take`, which empties ``df``.

    Examples
    --------
    >>> df = from_columns({"id": np.array([1, 2, 1]), "x": np.array([0.1, 0.2, 0.3])})
    >>> drop_duplicates(df, "id")["x"].tolist()
    [0.1, 0.2]
    """
    repeated = df[column].duplicated().to_numpy()
    return take(df, np.flatnonzero(~repeated)) if repeated.any() else df
