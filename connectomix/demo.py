"""``connectomix demo``: a short tour of a dataset for a neuroscientist.

On the embedded sample (hemibrain DA1 olfactory projection neurons) it shows
the neurons, where their synapses are, whom they talk to, and what their
synapses look like -- every number read through the public API.
"""

from __future__ import annotations

import shutil
import textwrap

__all__ = ["run_demo"]


def _width() -> int:
    """The terminal's width (80 when it is not a terminal), at least 40: every line printed fits it."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _section(title: str) -> None:
    print(textwrap.fill(f"\n== {title} " + "=" * max(0, min(_width(), 76) - 5 - len(title)), _width(),
                        replace_whitespace=False))


def run_demo(name: str = "sample", cell_type: str = "DA1_lPN") -> None:
    """Print a tour of dataset ``name`` centred on neurons of ``cell_type``."""
    from .dataset import open as open_dataset

    with open_dataset(name) as ds:
        info = ds.info
        width = _width()
        print(textwrap.fill(f"connectomix demo: {ds!r}", width, subsequent_indent="  "))
        for key in ("source", "license"):
            if info.extra.get(key):
                print(textwrap.fill(f"{key}: {info.extra[key]}", width, subsequent_indent="  "))
        if info.synthetic:
            print("SYNTHETIC parts (labelled in df.attrs['synthetic']):")
            for table, what in info.synthetic.items():
                print(textwrap.fill(f"- {table}: {what}", width, subsequent_indent="    "))

        _section(f"{cell_type} neurons and their synapses per ROI")
        neurons, roi_counts = ds.fetch_neurons(type=cell_type, regex=False)
        if neurons.empty:
            print(f"no neurons of type {cell_type!r} in {name!r}")
            return
        print(neurons[["id", "instance", "status", "pre", "post"]].to_string(index=False))
        if not roi_counts.empty:
            per_roi = roi_counts.groupby("roi")[["pre", "post"]].sum().sort_values("post", ascending=False)
            have = roi_counts["id"].nunique()
            print("\n" + textwrap.fill(f"per ROI, summed over the {have} of them with per-ROI counts "
                                      "(pre = output sites, post = input sites):", width))
            print(per_roi.to_string())

        ids = neurons["id"].to_numpy()
        for direction, own, partner in (("downstream", "sources", "post"), ("upstream", "targets", "pre")):
            _section(f"strongest {direction} partner types of {cell_type} (weight >= 3)")
            edges = ds.get_connectivity(**{own: ids}, min_weight=3, progress=False)
            if edges.empty:
                print("(none)")
                continue
            edges = edges.assign(partner_type=edges[f"{partner}_type"].fillna("(untyped segment)"))
            by_type = (edges.groupby("partner_type")
                       .agg(neurons=(partner, "nunique"), synapses=("weight", "sum"))
                       .sort_values("synapses", ascending=False).head(10))
            print(by_type.to_string())

        try:
            syn = ds.get_synapses(ids[:1], progress=False)
        except Exception as exc:  # a dataset without synapse-level data
            print(f"\n(synapses unavailable: {exc})")
            return
        _section(f"synapses of {neurons['instance'].iloc[0]} {ids[0]} (coordinates in nm)")
        n_out, n_in = int((syn["pre"] == ids[0]).sum()), int((syn["post"] == ids[0]).sum())
        print(f"{len(syn)} synaptic connections: {n_out} outgoing, {n_in} incoming")
        if syn["score"].notna().any():
            print(f"score: median {syn['score'].median():.3f}; {(syn['score'] >= 0.9).mean():.0%} have score >= 0.9")
        print(syn["roi"].value_counts().rename("synapses").to_frame().to_string())  # 'NotPrimary': outside them
        lo = syn[["post_x", "post_y", "post_z"]].min() / 1000
        hi = syn[["post_x", "post_y", "post_z"]].max() / 1000
        print("extent (um): " + ", ".join(f"{a} {lo.iloc[i]:.0f}-{hi.iloc[i]:.0f}" for i, a in enumerate("xyz")))
        print("\nfirst rows of the synapse table:")
        print(syn.head(5).to_string(index=False, line_width=width, max_colwidth=24))
