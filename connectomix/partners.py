"""Partner ``type``/``instance`` columns for connectivity and synapse tables.

A connectivity or synapse table names neurons by id only; every notebook then
merges the neuron table to see who the partners are. :func:`add_partner_columns`
does that merge once, in the core, for every backend:
``pre_type, pre_instance, post_type, post_instance`` (pandas ``string``), taken
from the dataset's own neuron table (``fetch_neurons`` of the ids in the
result, at the same version). An id the neuron table has no row or no label
for (a fragment, an unannotated segment) gets ``<NA>``; no row is ever dropped
or reordered.

neuprint-python's ``merge_neuron_properties(neuron_df, conn_df)`` adds the same
values as ``type_pre, instance_pre, type_post, instance_post`` (its id columns
are ``bodyId_pre``/``bodyId_post``); connectomix prefixes, like its ``pre``/``post``
id columns, ``pre_x`` coordinates and the ``pre_type`` of type-level tables.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from . import frames

__all__ = ["PARTNER_COLUMNS", "add_partner_columns", "neuron_lookup"]

#: The columns :func:`add_partner_columns` appends, in this order.
PARTNER_COLUMNS = ("pre_type", "pre_instance", "post_type", "post_instance")

_LABELS = ("type", "instance")


def add_partner_columns(df: pd.DataFrame, neurons_of: Callable[[np.ndarray], pd.DataFrame]) -> pd.DataFrame:
    """Append :data:`PARTNER_COLUMNS` to a table with ``pre`` and ``post`` id columns.

    Parameters
    ----------
    df
        A connectivity or synapse table (``pre``, ``post`` ``int64``).
    neurons_of
        Called once with the sorted unique ids of ``pre`` and ``post`` (not
        called for an empty table); returns a neuron table with ``id``,
        ``type`` and ``instance`` columns (rows for ids it does not know may be
        missing).

    Returns
    -------
    pandas.DataFrame
        ``df`` with the four columns appended (``string`` dtype, ``<NA>``
        where the neuron table has no value); the same rows in the same order.
        ``df.attrs`` are kept.

    Examples
    --------
    >>> import pandas as pd
    >>> edges = pd.DataFrame({"pre": [1, 1], "post": [2, 3], "weight": [5, 4]})
    >>> table = pd.DataFrame({"id": [1, 2], "type": ["PN", "KC"], "instance": ["PN_R", None]})
    >>> labelled = add_partner_columns(edges, lambda ids: table)
    >>> labelled[["pre_type", "post_type", "post_instance"]].values.tolist()
    [['PN', 'KC', <NA>], ['PN', <NA>, <NA>]]
    >>> labelled["post_type"].dtype
    string[python]
    """
    pre = df["pre"].to_numpy()
    post = df["post"].to_numpy()
    if len(df):
        ids = np.sort(pd.unique(np.concatenate([pre, post])))  # hashing, not sorting millions of ids
        neurons = neurons_of(ids)
        index = pd.Index(neurons["id"].to_numpy(dtype="int64"))
        if not index.is_unique:  # a neuron table has one row per id; never pick one of two labels silently
            from .errors import SchemaError

            raise SchemaError(f"the neuron table has repeated ids {sorted(set(index[index.duplicated()]))[:5]}; "
                              "cannot label connection partners")
    else:
        neurons = pd.DataFrame({"id": np.array([], dtype="int64"), "type": [], "instance": []})
        index = pd.Index(np.array([], dtype="int64"))
    columns: dict[str, pd.api.extensions.ExtensionArray] = {}
    for side, ids in (("pre", pre), ("post", post)):
        rows = index.get_indexer(ids)  # -1 where the neuron table has no row: the <NA> appended last
        for label in _LABELS:
            source = neurons[label].astype("string").to_numpy(dtype=object, na_value=pd.NA)
            columns[f"{side}_{label}"] = pd.arrays.StringArray(np.append(source, pd.NA)[rows])
    # column by column, without copying the table (synapse tables can hold millions of rows)
    out = frames.from_columns({**{c: df[c] for c in df.columns if c not in columns}, **columns})
    out.attrs = dict(df.attrs)
    return out


def neuron_lookup(dataset, version) -> Callable[[np.ndarray], pd.DataFrame]:
    """``neurons_of`` for :func:`add_partner_columns`: the dataset's neuron table of some ids at ``version``.

    Goes through the dataset's result cache under the same key as
    ``fetch_neurons(ids, counts=False)``, so an annotation table a backend
    caches per immutable version (CAVE) or a cached neuron query is reused,
    and the partner labels always come from the version the table's rows came
    from. ``counts=False``: only labels are needed, so a backend that counts
    synapses by pulling synapse rows (CAVE) does not. Ids the neuron table
    lacks are simply absent (their labels become ``<NA>``).
    """
    from . import counts
    from .criteria import NeuronCriteria

    def neurons_of(ids: np.ndarray) -> pd.DataFrame:
        crit = NeuronCriteria(ids=ids)
        raw = dataset._cached("fetch_neurons", version, counts.query_of(dataset._backend, crit, False),
                              lambda: counts.fetch(dataset._backend, crit, version, False))
        return dataset._neuron_table(raw)

    return neurons_of
