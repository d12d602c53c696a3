"""Plots for cross-dataset comparisons (matplotlib, imported on use)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidArgumentError

__all__ = ["compare_partners"]


def compare_partners(table: pd.DataFrame, *, partner: str = "post_type", top: int = 15, normalize: bool = True,
                     ax: Any = None, title: str | None = None):
    """Side-by-side bars of partner weights per dataset.

    Parameters
    ----------
    table
        A long table from :func:`connectomix.compare` with ``dataset``,
        ``weight`` and the ``partner`` column -- typically
        ``compare(..., "get_connectivity", sources=..., by="type")``.
    partner
        Column naming the partners (``post_type`` for downstream,
        ``pre_type`` for upstream, or ``post``/``pre`` for neurons).
    top
        Show the partners with the largest weight (summed over datasets).
    normalize
        Plot each dataset's weights as a fraction of its total, so datasets of
        different completeness compare fairly.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import connectomix
    >>> t = connectomix.compare({"a": "sample", "b": "sample"}, "get_connectivity",
    ...                         sources=connectomix.NC(type="DA1_lPN"), by="type")
    >>> ax = compare_partners(t, top=5)
    >>> len(ax.get_yticklabels())
    5
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise InvalidArgumentError("plotting needs matplotlib: pip install matplotlib") from exc
    missing = {"dataset", "weight", partner} - set(table.columns)
    if missing:
        raise InvalidArgumentError(f"table lacks column(s) {sorted(missing)}; pass a connectomix.compare(...) result")
    wide = table.pivot_table(index=partner, columns="dataset", values="weight", aggfunc="sum",
                             fill_value=0, observed=True)
    if normalize:
        wide = wide / wide.sum(axis=0).replace(0, np.nan)
    wide = wide.loc[wide.sum(axis=1).sort_values(ascending=False).index[:top]].iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.35 * len(wide) + 1.5))
    n = max(len(wide.columns), 1)
    height = 0.8 / n
    y = np.arange(len(wide))
    for i, dataset in enumerate(wide.columns):
        ax.barh(y + ((n - 1) / 2 - i) * height, wide[dataset].to_numpy(), height=height, label=str(dataset))
    ax.set_yticks(y)
    ax.set_yticklabels([str(v) for v in wide.index])
    ax.set_xlabel("fraction of synapses" if normalize else "synapses")
    ax.set_title(title or f"{partner.replace('_', ' ')} by dataset")
    ax.legend(title="dataset", frameon=False)
    ax.figure.tight_layout()
    return ax
