"""Plots for cross-dataset comparisons (matplotlib, imported on use)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import InvalidArgumentError
from .schema import UNTYPED

__all__ = ["compare_partners", "similarity_heatmap", "partner_profiles"]


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


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover
        raise InvalidArgumentError("plotting needs matplotlib: pip install matplotlib") from exc
    return plt


def _categories(values: list[Any], cmap: str, first: list[Any] = ()) -> tuple[dict[Any, Any], Any]:
    """A colour per distinct value, ``first`` first (missing values grey)."""
    plt = _pyplot()
    present = {v for v in values if not pd.isna(v)}
    distinct = [v for v in dict.fromkeys([*first, *present]) if v in present]
    colours = plt.get_cmap(cmap)
    out = {v: colours(i % colours.N) for i, v in enumerate(distinct)}
    return out, (0.85, 0.85, 0.85, 1.0)


def similarity_heatmap(comparison: Any, *, figsize: tuple[float, float] | None = None, cmap: str = "viridis",
                       title: str | None = None):
    """Clustered heatmap of cosine similarities, with a dendrogram and dataset/side colour bars.

    Parameters
    ----------
    comparison
        A :class:`connectomix.TypeComparison` (from :func:`connectomix.compare_types`).
    figsize, cmap, title
        Figure size (inches), colour map of the similarity, title.

    Returns
    -------
    matplotlib.figure.Figure
        Axes: the dendrogram, the dataset and side colour bars, the heatmap, the colour scale.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import connectomix
    >>> c = connectomix.compare_types({"a": "sample", "b": "sample"}, ids="a:722817260 b:722817260 a:754534424",
    ...                               by="neuron")
    >>> fig = similarity_heatmap(c)
    >>> [t.get_text() for t in fig.axes[3].get_yticklabels()] == c.order   # rows in dendrogram order
    True
    >>> sorted(c.order)
    ['a:722817260', 'a:754534424', 'b:722817260']
    """
    from scipy.cluster.hierarchy import dendrogram

    plt = _pyplot()
    needed = ("similarity", "neurons", "order", "linkage")
    if not all(hasattr(comparison, a) for a in needed):
        raise InvalidArgumentError("pass the result of connectomix.compare_types(...)")
    order = list(comparison.order)
    m = comparison.matrix().to_numpy(dtype="float64")
    queries = comparison.neurons.drop_duplicates("query").set_index("query")
    datasets = [queries.loc[q, "dataset"] for q in order]
    sides = [queries.loc[q, "query_side"] if "query_side" in queries else pd.NA for q in order]
    n = len(order)
    cell = 0.36  # inches per query
    side = cell * max(n, 1)
    size = figsize or (side + 4.2, side + 2.6)
    fig = plt.figure(figsize=size)
    # columns: dataset bar, side bar, heatmap, room for the row labels, colour scale
    grid = fig.add_gridspec(2, 5, width_ratios=[0.3, 0.3, side, 1.6, 0.2], height_ratios=[0.9, side],
                            wspace=0.04, hspace=0.02)
    ax_tree = fig.add_subplot(grid[0, 2])
    ax_ds = fig.add_subplot(grid[1, 0])
    ax_side = fig.add_subplot(grid[1, 1])
    ax_map = fig.add_subplot(grid[1, 2])
    ax_bar = fig.add_subplot(grid[1, 4])
    if comparison.linkage is not None:
        dendrogram(comparison.linkage, ax=ax_tree, no_labels=True, color_threshold=0, above_threshold_color="0.3")
    ax_tree.set_xlim(0, 10 * n)  # scipy puts leaf i at 10 * i + 5: aligned with the heatmap's columns
    ax_tree.set_axis_off()
    ax_tree.set_title(title or "cosine similarity of partner profiles")
    handles, names = [], []
    labels = list((comparison.attrs or {}).get("datasets") or ())
    for ax, values, cmap_name, first, label in ((ax_ds, datasets, "tab10", labels, "dataset"),
                                                (ax_side, sides, "Set2", ["left", "right", "center"], "side")):
        colours, missing = _categories(values, cmap_name, first)
        ax.imshow([[colours.get(v, missing)] for v in values], aspect="auto")
        ax.set_xticks([0])
        ax.set_xticklabels([label], rotation=90)
        ax.set_yticks([])
        handles += [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
        names += [f"{label}: {v}" for v in colours]
        if any(pd.isna(v) for v in values):
            handles.append(plt.Rectangle((0, 0), 1, 1, color=missing))
            names.append(f"{label}: unknown")
    top = ax_map.get_position().y1
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(ax_bar.get_position().x1 + 0.08, top),
               frameon=False, fontsize="small")
    image = ax_map.imshow(np.ma.masked_invalid(m), vmin=0, vmax=1, cmap=cmap, aspect="auto")
    ax_map.set_xticks(range(n))
    ax_map.set_xticklabels(order, rotation=90, fontsize="small")
    ax_map.yaxis.tick_right()
    ax_map.set_yticks(range(n))
    ax_map.set_yticklabels(order, fontsize="small")
    ax_map.set_facecolor("0.9")  # NaN: a query without partner features
    fig.colorbar(image, cax=ax_bar, label="cosine similarity (grey: no partner feature)")
    return fig


def partner_profiles(profiles: pd.DataFrame, *, direction: str = "output", value: str = "fraction", top: int = 12,
                     queries: list[str] | None = None, ax: Any = None, title: str | None = None):
    """Side-by-side bars of the partner-type profiles of several queries (datasets, types or neurons).

    Parameters
    ----------
    profiles
        :attr:`connectomix.TypeComparison.profiles`.
    direction
        ``"output"`` (downstream partners) or ``"input"``.
    value
        ``"fraction"`` (of the query's total output/input connections) or
        ``"weight"`` (connections).
    top
        The partner types with the largest value summed over the queries.
    queries
        Queries to show (default: all, in table order).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import connectomix
    >>> c = connectomix.compare_types({"a": "sample", "b": "sample"}, type="DA1_lPN")
    >>> ax = partner_profiles(c.profiles, top=4)
    >>> ax.get_xlabel()
    'fraction of total output connections (pairs with weight >= 5)'
    """
    plt = _pyplot()
    if direction not in ("output", "input") or value not in ("fraction", "weight"):
        raise InvalidArgumentError(f"direction must be 'output' or 'input' and value 'fraction' or 'weight'; "
                                   f"got {direction!r}, {value!r}")
    missing = {"query", "direction", "partner_type", value} - set(profiles.columns)
    if missing:
        raise InvalidArgumentError(f"profiles lack column(s) {sorted(missing)}; pass TypeComparison.profiles")
    p = profiles[profiles["direction"] == direction]
    shown = list(queries) if queries is not None else list(dict.fromkeys(profiles["query"]))
    wide = (p.pivot_table(index="partner_type", columns="query", values=value, aggfunc="sum", fill_value=0)
            .reindex(columns=shown, fill_value=0))
    wide = wide.loc[wide.sum(axis=1).sort_values(ascending=False, kind="stable").index[:top]].iloc[::-1]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.4 * len(wide) + 1.8))
    n = max(len(shown), 1)
    height = 0.8 / n
    y = np.arange(len(wide))
    for i, q in enumerate(shown):
        ax.barh(y + ((n - 1) / 2 - i) * height, wide[q].to_numpy(dtype=float), height=height, label=str(q))
    unmatched = set(p.loc[~p["matched"].astype(bool), "partner_type"]) if "matched" in p else set()
    ax.set_yticks(y)
    ax.set_yticklabels([f"{v} (one dataset only)" if v in unmatched and v != UNTYPED else str(v)
                        for v in wide.index])
    ax.set_ylabel(f"{direction} partner type (matched across datasets)")
    threshold = profiles.attrs.get("min_weight")
    rule = f" (pairs with weight >= {threshold})" if threshold is not None else ""
    ax.set_xlabel((f"fraction of total {direction} connections" if value == "fraction"
                   else f"{direction} connections") + rule)
    versions = profiles.attrs.get("datasets") or {}
    ax.set_title(title or "partner profiles: " + ", ".join(
        f"{label} = {info.get('dataset')} {info.get('version')}" for label, info in versions.items()),
        fontsize="medium")
    ax.legend(title="query", frameon=False, fontsize="small")
    ax.figure.tight_layout()
    return ax
