"""Comparative connectomics: matched cell types, partner profiles and cosine similarity across datasets.

One call from a notebook::

    import connectomix

    c = connectomix.compare_types({"hb": "hemibrain", "fw": "flywire"}, type="DA1_lPN", min_weight=5)
    c.profiles      # inputs/outputs by matched partner type: weight, fraction of total, ipsi/contra
    c.similarity    # cosine similarity of every pair of query neurons/types (tidy)
    c.mapping       # how every type was matched across datasets; c.unmatched: types seen in one only
    c.heatmap(); c.plot_profiles()

The design follows the public R package coconatfly (natverse/coconatfly@d7d4b41:
``R/ids.R`` keys ``"<dataset>:<id>"``; ``R/partners.R`` ``cf_partner_summary``,
whose ``normalise`` divides by the query's total and whose threshold is ``>=``,
and ``match_types``, which keeps partner types seen in every dataset;
``R/cosine.R`` ``cf_cosine_plot``, cosine similarity of input and output
partner-type profiles, clustered hierarchically; ``R/meta.R`` ``cf_meta``,
whose FlyWire default takes the type from ``cell_type`` or ``hemibrain_type``)
and the Python package cocoa (flyconnectome/cocoa@54ff0e1 ``cocoa/mappers.py``:
``SimpleMapper`` matches identical labels and collapses comma-joined FlyWire
labels such as ``PS008,PS009``; ``GraphMapper`` joins labels and synonyms into a
graph and maps through its connected components). No code is copied from either.

Differences, on purpose: partner types seen in only one dataset are *kept* in the
profiles and reported (``matched`` is False, :attr:`TypeComparison.unmatched`),
and only left out of the similarity, with the weight left out recorded in
``similarity.attrs["left_out"]``; fractions are of the query's total input
or output connections, from partner pairs of any weight (autapses excluded,
as everywhere in connectomix), so the denominator does not depend on the
threshold (coconatfly's ``normalise`` divides by the thresholded sum); sides
are explicit (``partner_side`` is ``ipsi``, ``contra`` or ``unknown``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import schema
from .compare import dataset_for
from .criteria import NeuronCriteria
from .dataset import Dataset
from .errors import ConnectomixWarning, InvalidArgumentError, InvalidIdError

__all__ = ["parse_keys", "make_keys", "fetch_keys", "match_types", "cosine_similarity", "cluster", "compare_types",
           "TypeComparison", "FAMILIES"]

#: Dataset families that the cross-dataset type columns name (:data:`connectomix.schema.CROSS_TYPES`):
#: family -> the ``neurons`` column other datasets fill with that family's type.
FAMILIES = {c[: -len("_type")]: c for c in schema.CROSS_TYPES}
# words in a dataset's name that identify its family (names of the catalogue, connectomix/catalogue/*.toml)
_FAMILY_WORDS = (("hemibrain", "hemibrain"), ("flywire", "flywire"), ("fafb", "flywire"), ("malecns", "malecns"),
                 ("male-cns", "malecns"), ("male_cns", "malecns"), ("manc", "manc"))
_LABEL = re.compile(r"^[A-Za-z_][\w.-]*$")
_KEY = re.compile(r"^([^:\s,]+):(\S+)$")
_SIDE_LETTER = {"left": "L", "right": "R", "center": "C"}
_NORMALISATION = ("fraction = weight / total; total = every input (output) connection of the query neurons, "
                  "from partner pairs of any weight (before the threshold), autapses excluded")


# -- keys ----------------------------------------------------------------------------------------


def parse_keys(keys: str | Iterable[str], labels: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Split cross-dataset keys ``"<dataset>:<id>"`` into ids per dataset label.

    Keys follow coconatfly's (``hb:12345``, ``fw:720575940...``): a single
    string may hold several, separated by commas or white space.

    Parameters
    ----------
    keys
        Keys, or one string of keys.
    labels
        The dataset labels allowed (e.g. those of :func:`compare_types`).

    Returns
    -------
    dict
        ``label -> int64 ids`` in first-seen order, repeats removed.

    Raises
    ------
    InvalidIdError
        A key is not ``label:positive integer`` (naming it).
    InvalidArgumentError
        A label is not one of ``labels`` (naming the valid ones).

    Examples
    --------
    >>> parse_keys("hb:1734350788, fw:720575940600000001 hb:722817260")
    {'hb': array([1734350788,  722817260]), 'fw': array([720575940600000001])}
    """
    if isinstance(keys, str):
        items = [k for k in re.split(r"[\s,]+", keys) if k]
    elif isinstance(keys, Iterable):
        items = list(keys)
    else:
        raise InvalidIdError(f"keys must be strings like 'hb:12345'; got {keys!r}")
    allowed = None if labels is None else list(labels)
    out: dict[str, list[int]] = {}
    for key in items:
        m = _KEY.match(key) if isinstance(key, str) else None
        if m is None or not m.group(2).isdigit() or int(m.group(2)) <= 0 or int(m.group(2)) >= 2 ** 63:
            raise InvalidIdError(f"a key must be '<dataset label>:<positive int64 id>', e.g. 'hb:12345'; got {key!r}")
        label, value = m.group(1), int(m.group(2))
        if allowed is not None and label not in allowed:
            raise InvalidArgumentError(f"key {key!r} names dataset {label!r}; the datasets are {allowed}")
        ids = out.setdefault(label, [])
        if value not in ids:
            ids.append(value)
    return {label: np.asarray(ids, dtype="int64") for label, ids in out.items()}


def make_keys(label: str, ids: Iterable[int]) -> list[str]:
    """Keys ``"<label>:<id>"`` of ``ids`` in dataset ``label`` (the inverse of :func:`parse_keys`).

    Examples
    --------
    >>> make_keys("hb", [1734350788, 722817260])
    ['hb:1734350788', 'hb:722817260']
    """
    return [f"{label}:{int(i)}" for i in ids]


def fetch_keys(datasets: Mapping[str, str | Dataset], keys: str | Iterable[str]) -> pd.DataFrame:
    """The ``neurons`` rows of cross-dataset keys, stacked (coconatfly's ``cf_meta`` for keys).

    Parameters
    ----------
    datasets
        ``label -> dataset name, URI or Dataset``; every key's label must be one of them.
    keys
        Keys ``"label:id"`` (:func:`parse_keys`).

    Returns
    -------
    pandas.DataFrame
        ``dataset``, ``key``, then the :data:`connectomix.schema.NEURONS`
        columns (nullable where a dataset lacks one): datasets in the order
        of ``datasets``, keys in the order given within each.
        ``attrs["datasets"]`` holds each dataset's provenance.

    Raises
    ------
    IdsNotFoundError
        A key's id is not in its dataset (naming the dataset).

    Examples
    --------
    >>> t = fetch_keys({"a": "sample", "b": "sample"}, "a:722817260 b:1734350788")
    >>> t[["dataset", "key", "type"]].values.tolist()
    [['a', 'a:722817260', 'DA1_lPN'], ['b', 'b:1734350788', 'DA1_lPN']]
    """
    from .compare import _nullable_where_missing

    if not isinstance(datasets, Mapping) or not datasets:
        raise InvalidArgumentError(f"datasets must be a dict label -> dataset name/URI/Dataset; got {datasets!r}")
    keyed = parse_keys(keys, list(datasets))
    frames, provenance = [], {}
    for label in [label for label in datasets if label in keyed]:  # datasets in the order given
        ids, given = keyed[label], datasets[label]
        with dataset_for(label, given, "connectomix.fetch_keys") as ds:
            table = _annotations(ds, NeuronCriteria(ids=ids)).set_index("id", drop=False).loc[ids]
        provenance[label] = dict(table.attrs)
        frames.append(table.reset_index(drop=True).assign(dataset=label, key=make_keys(label, ids)))
    out = pd.concat(_nullable_where_missing(frames), ignore_index=True)
    out = out[["dataset", "key"] + [c for c in out.columns if c not in ("dataset", "key")]]
    out = out.astype({"dataset": "string", "key": "string"})
    out.attrs = {"datasets": provenance, "table": "neurons_by_key"}
    return out


# -- type matching -------------------------------------------------------------------------------


class _Components:
    """Union-find over hashable nodes."""

    def __init__(self) -> None:
        self.parent: dict[Any, Any] = {}

    def add(self, node: Any) -> None:
        self.parent.setdefault(node, node)

    def find(self, node: Any) -> Any:
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: Any, b: Any) -> None:
        self.add(a)
        self.add(b)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb, key=repr)] = min(ra, rb, key=repr)


def _synonym_rows(synonyms: Any, labels: list[str]) -> list[tuple[str | None, str, str]]:
    """User synonyms as ``(label or None for every dataset, type, matched name)`` rows."""
    if synonyms is None:
        return []
    if isinstance(synonyms, pd.DataFrame):
        missing = {"type", "matched_type"} - set(synonyms.columns)
        if missing:
            raise InvalidArgumentError(f"a synonyms table needs columns 'type' and 'matched_type' (and optionally "
                                       f"'dataset'); it lacks {sorted(missing)}")
        datasets = synonyms["dataset"] if "dataset" in synonyms else pd.Series([None] * len(synonyms))
        rows = list(zip(datasets.tolist(), synonyms["type"].tolist(), synonyms["matched_type"].tolist()))
    elif isinstance(synonyms, Mapping):
        rows = []
        for key, name in synonyms.items():
            label, sep, type_ = key.partition(":") if isinstance(key, str) else (None, "", key)
            rows.append((label, type_, name) if sep and label in labels else (None, key, name))
    else:
        raise InvalidArgumentError("synonyms must be a dict {'type' or 'label:type': matched name} or a table with "
                                   f"columns dataset, type, matched_type; got {type(synonyms).__name__}")
    out = []
    for label, type_, name in rows:
        label = None if label is None or (not isinstance(label, str) and pd.isna(label)) else label
        if label is not None and label not in labels:
            raise InvalidArgumentError(f"synonym for dataset {label!r}: the datasets are {labels}")
        for value, what in ((type_, "type"), (name, "matched name")):
            if not isinstance(value, str) or not value:
                raise InvalidArgumentError(f"synonym {what}s must be non-empty strings; got {value!r}")
        out.append((label, type_, name))
    return out


def match_types(neurons: Mapping[str, pd.DataFrame], *, families: Mapping[str, str | None] | None = None,
                synonyms: Any = None, match_names: bool = True) -> pd.DataFrame:
    """Match the cell types of several datasets: one ``matched_type`` per (dataset, type).

    Types are joined when (a) they are spelled the same (``match_names``,
    cocoa's ``SimpleMapper``), (b) a dataset's own cross-dataset column says so
    (a FlyWire neuron of type ``t`` with ``hemibrain_type`` ``u`` joins ``t`` to
    the hemibrain dataset's ``u``; comma-joined values such as ``PS008,PS009``
    join every part), or (c) the user says so (``synonyms``). Joined types form
    connected components (as in cocoa's ``GraphMapper``); a component's
    ``matched_type`` is the user's name if one is given, else its types in the
    first dataset (in ``neurons`` order) that has any, comma-joined.

    Parameters
    ----------
    neurons
        ``label -> neurons table`` (``type`` and any of
        :data:`connectomix.schema.CROSS_TYPES`), typically the query neurons
        and their partners.
    families
        ``label -> family`` (``"hemibrain"``, ``"flywire"``, ``"manc"``,
        ``"malecns"`` or None): which cross-type column names this dataset.
    synonyms
        ``{"type": "name"}`` or ``{"label:type": "name"}`` (several types may
        get one name: many-to-one), or a table with columns ``type``,
        ``matched_type`` and optionally ``dataset``.
    match_names
        Join identical type names across datasets.

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, type): ``dataset``, ``type``, ``matched_type``,
        ``n_neurons``, ``n_datasets`` (datasets in the component),
        ``matched`` (``n_datasets >= 2``) and ``evidence`` (what joined it).
        Unmatched types are rows with ``matched == False``, never dropped.
        Neurons without a type are not matched (they have no identity).

    Raises
    ------
    InvalidArgumentError
        Two user names end up in one component, or bad synonyms/families.

    Examples
    --------
    >>> import pandas as pd
    >>> hb = pd.DataFrame({"type": ["DA1_lPN", "KC"]})
    >>> fw = pd.DataFrame({"type": ["DA1_lPN_fw", "LHN"], "hemibrain_type": ["DA1_lPN", None]})
    >>> m = match_types({"hb": hb, "fw": fw}, families={"hb": "hemibrain", "fw": "flywire"})
    >>> print(m[["dataset", "type", "matched_type", "matched"]].to_string(index=False))
    dataset       type matched_type  matched
         hb    DA1_lPN      DA1_lPN     True
         hb         KC           KC    False
         fw DA1_lPN_fw      DA1_lPN     True
         fw        LHN          LHN    False
    """
    labels = list(neurons)
    families = dict(families or {})
    for label, fam in families.items():
        if label not in labels:
            raise InvalidArgumentError(f"families names dataset {label!r}; the datasets are {labels}")
        if fam is not None and fam not in FAMILIES:
            raise InvalidArgumentError(f"family of {label!r} must be one of {sorted(FAMILIES)} or None; got {fam!r}")
    comp = _Components()
    counts: dict[tuple[str, str], int] = {}
    evidence: dict[tuple[str, str], set[str]] = {}
    for label, df in neurons.items():
        if "type" not in df.columns:
            raise InvalidArgumentError(f"neurons table of {label!r} has no 'type' column")
        for t, n in df["type"].dropna().astype(str).value_counts(sort=False).items():
            counts[(label, t)] = int(n)
            comp.add((label, t))
    by_name: dict[str, list[tuple[str, str]]] = {}
    for node in counts:
        by_name.setdefault(node[1], []).append(node)
    if match_names:
        for nodes in by_name.values():
            if len({n[0] for n in nodes}) > 1:
                for node in nodes:
                    comp.union(nodes[0], node)
                    evidence.setdefault(node, set()).add("same name")
    for label, df in neurons.items():  # the datasets' own cross-type columns
        for family, column in FAMILIES.items():
            targets = [other for other in labels if other != label and families.get(other) == family]
            if column not in df.columns or not targets:
                continue
            pairs = df[["type", column]].dropna().astype(str).drop_duplicates()
            for t, value in pairs.itertuples(index=False):
                for part in (p.strip() for p in value.split(",")):
                    for other in targets:
                        if (other, part) in counts:
                            comp.union((label, t), (other, part))
                            evidence.setdefault((label, t), set()).add(f"{column} of {label}")
                            evidence.setdefault((other, part), set()).add(f"{column} of {label}")
    names: dict[Any, str] = {}
    for label, type_, name in _synonym_rows(synonyms, labels):
        hits = [node for node in counts if node[1] == type_ and (label is None or node[0] == label)]
        if hits:  # the name is a type name too: it joins the types spelled so, in every dataset
            hits += [node for node in by_name.get(name, ()) if node not in hits]
        for node in hits:
            comp.union(("user", name), node)
            evidence.setdefault(node, set()).add("synonyms")
    for node in list(comp.parent):
        if node[0] == "user":
            root = comp.find(node)
            if root in names and names[root] != node[1]:
                raise InvalidArgumentError(f"synonyms join the names {names[root]!r} and {node[1]!r} into one "
                                           "group of types; give one name per group")
            names[root] = node[1]
    members: dict[Any, list[tuple[str, str]]] = {}
    for node in counts:
        members.setdefault(comp.find(node), []).append(node)
    rows = []
    for root, nodes in members.items():
        datasets = {n[0] for n in nodes}
        if root in names:
            name = names[root]
        else:
            first = next(label for label in labels if label in datasets)
            name = ",".join(sorted(n[1] for n in nodes if n[0] == first))
        for label, t in nodes:
            rows.append((label, t, name, counts[(label, t)], len(datasets), len(datasets) >= 2,
                         "; ".join(sorted(evidence.get((label, t), ()))) or "none"))
    out = pd.DataFrame(rows, columns=["dataset", "type", "matched_type", "n_neurons", "n_datasets", "matched",
                                      "evidence"])
    order = {label: i for i, label in enumerate(labels)}
    out = out.sort_values(["dataset", "type"], key=lambda s: s.map(order) if s.name == "dataset" else s,
                          kind="stable").reset_index(drop=True)
    out = out.astype({"dataset": "string", "type": "string", "matched_type": "string", "n_neurons": "int64",
                      "n_datasets": "int64", "matched": "bool", "evidence": "string"})
    out.attrs = {"table": "type_mapping", "families": {label: families.get(label) for label in labels},
                 "match_names": match_names, "synonyms": len(_synonym_rows(synonyms, labels)),
                 "unmatched": int((~out["matched"]).sum())}
    return out


# -- profiles ------------------------------------------------------------------------------------


def _relation(query_side: pd.Series, partner_side: pd.Series) -> np.ndarray:
    """``ipsi`` / ``contra`` where both sides are left or right, ``unknown`` otherwise."""
    q = query_side.astype("string").to_numpy(dtype=object, na_value=None)
    p = partner_side.astype("string").to_numpy(dtype=object, na_value=None)
    lr = {"left", "right"}
    return np.array(["ipsi" if a in lr and b in lr and a == b else "contra" if a in lr and b in lr else "unknown"
                     for a, b in zip(q, p)], dtype=object)


def _profiles(label: str, query: pd.DataFrame, inputs: pd.DataFrame, outputs: pd.DataFrame,
              partners: pd.DataFrame, matched_of: Mapping[str, str], is_matched: Mapping[str, bool]) -> pd.DataFrame:
    """Long partner profiles of one dataset.

    ``query`` has ``id, type, side, total_input, total_output, query, query_type, query_side``.
    """
    side = pd.concat([query.set_index("id")["side"], partners.set_index("id")["side"]]).astype("string")
    side = side[~side.index.duplicated()]
    ptype = pd.concat([query.set_index("id")["type"], partners.set_index("id")["type"]]).astype("string")
    ptype = ptype[~ptype.index.duplicated()]
    group = query.set_index("id")["query"]
    frames = []
    for direction, edges, own, other, total in (("input", inputs, "post", "pre", "total_input"),
                                                ("output", outputs, "pre", "post", "total_output")):
        e = edges[edges[own].isin(group.index)]
        partner_t = e[other].map(ptype)
        e = e.assign(query=e[own].map(group).to_numpy(),
                     partner_type=partner_t.map(lambda t: schema.UNTYPED if pd.isna(t) else matched_of[t]).to_numpy(),
                     matched=partner_t.map(lambda t: False if pd.isna(t) else is_matched[t]).to_numpy(dtype=bool),
                     partner_side=_relation(e[own].map(side), e[other].map(side)))
        agg = (e.groupby(["query", "partner_type", "partner_side"], as_index=False, sort=False)
               .agg(weight=("weight", "sum"), n_partners=(other, "nunique"), matched=("matched", "first")))
        totals = query.groupby("query", sort=False)[total].sum()
        agg.insert(1, "direction", direction)
        agg["total"] = agg["query"].map(totals).to_numpy()
        frames.append(agg)
    out = pd.concat(frames, ignore_index=True)
    meta = query.drop_duplicates("query").set_index("query")
    n_query = query.groupby("query", sort=False).size()
    out.insert(0, "dataset", label)
    out.insert(2, "query_type", out["query"].map(meta["query_type"]).to_numpy())
    out.insert(3, "side", out["query"].map(meta["query_side"]).to_numpy())
    out.insert(4, "n_query", out["query"].map(n_query).to_numpy())
    out["fraction"] = out["weight"] / out["total"].where(out["total"] > 0)
    return out


_PROFILE_DTYPES = {"dataset": "string", "query": "string", "query_type": "string", "side": "string",
                   "n_query": "int64", "direction": "string", "partner_type": "string", "partner_side": "string",
                   "weight": "int64", "n_partners": "int64", "matched": "bool", "total": "int64",
                   "fraction": "float64"}


# -- similarity ----------------------------------------------------------------------------------


def cosine_similarity(profiles: pd.DataFrame, *, partners: str = "both", value: str = "fraction",
                      matched_only: bool = True, split_sides: bool = False) -> pd.DataFrame:
    """Cosine similarity of the partner profiles of every pair of queries (neurons or types).

    Each query's profile is a vector over partner features -- ``(direction,
    partner_type)``, or ``(direction, partner_type, partner_side)`` with
    ``split_sides`` -- holding ``value``; with ``partners="both"`` the input and
    output parts are concatenated (as coconatfly's ``cf_cosine_plot`` clusters
    on inputs and outputs). The cosine of two vectors is their dot product over
    the product of their lengths: 1 for proportional profiles, 0 for profiles
    without a shared partner feature.

    Parameters
    ----------
    profiles
        :attr:`TypeComparison.profiles` (or a table with the same columns).
    partners
        ``"both"``, ``"inputs"`` or ``"outputs"``.
    value
        ``"fraction"`` (default) or ``"weight"``.
    matched_only
        Use only partner types matched across datasets (and never
        ``(untyped)``): a type seen in one dataset cannot be compared. The
        weight left out is in ``attrs["left_out"]``.
    split_sides
        Keep ipsi- and contralateral partners apart.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per ordered pair of queries: ``query_a``,
        ``dataset_a``, ``query_b``, ``dataset_b``, ``cosine`` (``NaN`` where
        a query has no partner features left). ``attrs``: the options, the
        feature count, the weight left out per query.

    Examples
    --------
    >>> import pandas as pd
    >>> p = pd.DataFrame({"dataset": ["a", "a", "b"], "query": ["a:X", "a:X", "b:X"],
    ...                   "direction": "output", "partner_type": ["P", "Q", "P"], "partner_side": "unknown",
    ...                   "weight": [3, 4, 6], "fraction": [0.3, 0.4, 0.6], "matched": True})
    >>> s = cosine_similarity(p)
    >>> s.loc[(s.query_a == "a:X") & (s.query_b == "b:X"), "cosine"].round(3).tolist()
    [0.6]
    """
    if partners not in ("both", "inputs", "outputs"):
        raise InvalidArgumentError(f"partners must be 'both', 'inputs' or 'outputs'; got {partners!r}")
    if value not in ("fraction", "weight"):
        raise InvalidArgumentError(f"value must be 'fraction' or 'weight'; got {value!r}")
    needed = {"dataset", "query", "direction", "partner_type", "partner_side", "matched", value}
    missing = needed - set(profiles.columns)
    if missing:
        raise InvalidArgumentError(f"profiles lack column(s) {sorted(missing)}; pass TypeComparison.profiles")
    p = profiles
    if partners != "both":
        p = p[p["direction"] == partners[:-1]]
    # every query, also those without a profile row (attrs["queries"] of compare_types' profiles)
    listed = dict(profiles.attrs.get("queries") or {})
    listed.update({q: d for q, d in zip(profiles["query"], profiles["dataset"]) if q not in listed})
    queries = np.asarray(list(listed), dtype=object)
    datasets = pd.Series(listed, dtype=object)
    keep = p["matched"].to_numpy(dtype=bool) & (p["partner_type"] != schema.UNTYPED).to_numpy(dtype=bool) \
        if matched_only else np.ones(len(p), dtype=bool)
    left = p[~keep].groupby("query")[value].sum()
    p = p[keep]
    features = ["direction", "partner_type"] + (["partner_side"] if split_sides else [])
    wide = p.pivot_table(index="query", columns=features, values=value, aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(queries, fill_value=0.0).astype("float64")
    x = wide.to_numpy()
    norms = np.sqrt((x * x).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = x / norms[:, None]
    sim = np.clip(unit @ unit.T, -1.0, 1.0)
    sim[norms == 0, :] = np.nan
    sim[:, norms == 0] = np.nan
    n = len(queries)
    out = pd.DataFrame({"query_a": np.repeat(queries, n), "dataset_a": np.repeat(datasets.loc[queries].to_numpy(), n),
                        "query_b": np.tile(queries, n), "dataset_b": np.tile(datasets.loc[queries].to_numpy(), n),
                        "cosine": sim.ravel()})
    out = out.astype({"query_a": "string", "dataset_a": "string", "query_b": "string", "dataset_b": "string"})
    out.attrs = {**profiles.attrs, "table": "cosine_similarity", "partners": partners, "value": value,
                 "matched_only": matched_only, "split_sides": split_sides, "n_features": int(x.shape[1]),
                 "left_out": {q: float(left.get(q, 0.0)) for q in queries},
                 "empty_profiles": [q for q, nrm in zip(queries, norms) if nrm == 0]}
    return out


def cluster(similarity: pd.DataFrame, *, method: str = "average") -> tuple[np.ndarray | None, list[str]]:
    """Hierarchical clustering (scipy) of the queries of a :func:`cosine_similarity` table.

    The distance is ``1 - cosine``; a query without partner features (``NaN``)
    is at distance 1 from every other.

    Returns
    -------
    linkage, order
        The scipy linkage matrix (``None`` for fewer than two queries) and the
        queries in dendrogram leaf order.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"query_a": ["x", "x", "y", "y"], "query_b": ["x", "y", "x", "y"],
    ...                   "cosine": [1.0, 0.2, 0.2, 1.0]})
    >>> linkage, order = cluster(s)
    >>> order, float(linkage[0, 2])
    (['x', 'y'], 0.8)
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    queries = list(pd.unique(similarity["query_a"]))
    if len(queries) < 2:
        return None, queries
    m = similarity.pivot(index="query_a", columns="query_b", values="cosine").reindex(index=queries, columns=queries)
    d = 1.0 - m.to_numpy(dtype="float64")
    d = np.nan_to_num(d, nan=1.0)
    d = np.clip((d + d.T) / 2, 0.0, 2.0)
    np.fill_diagonal(d, 0.0)
    z = linkage(squareform(d, checks=False), method=method)
    return z, [queries[i] for i in leaves_list(z)]


# -- one call ------------------------------------------------------------------------------------


@dataclass
class TypeComparison:
    """The result of :func:`compare_types` (every table carries the provenance in ``attrs``).

    Attributes
    ----------
    neurons
        The query neurons: ``dataset``, ``key`` (``label:id``), ``id``,
        ``type``, ``matched_type``, ``side``, ``query`` (the profile they
        count in), ``total_input``, ``total_output`` (every input/output
        connection, from partner pairs of any weight).
    profiles
        One row per (query, direction, partner type, partner side): ``weight``
        (connections, each neuron pair ``>= min_weight``), ``n_partners``,
        ``total`` (the query's ``total_input``/``total_output``), ``fraction``
        (weight / total), ``matched`` (partner type matched across datasets).
    similarity
        :func:`cosine_similarity` of the profiles (tidy).
    mapping
        :func:`match_types` of the query neurons' and partners' types.
    linkage, order
        :func:`cluster` of ``similarity``.
    """

    neurons: pd.DataFrame
    profiles: pd.DataFrame
    similarity: pd.DataFrame
    mapping: pd.DataFrame
    linkage: np.ndarray | None
    order: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def unmatched(self) -> pd.DataFrame:
        """Types seen in only one of the datasets (among the query neurons and their partners)."""
        return self.mapping[~self.mapping["matched"]].reset_index(drop=True)

    def matrix(self) -> pd.DataFrame:
        """The similarity as a square table, rows and columns in dendrogram order."""
        m = self.similarity.pivot(index="query_a", columns="query_b", values="cosine")
        return m.reindex(index=self.order, columns=self.order)

    def heatmap(self, **kwargs: Any):
        """:func:`connectomix.plot.similarity_heatmap` of this comparison."""
        from .plot import similarity_heatmap

        return similarity_heatmap(self, **kwargs)

    def plot_profiles(self, **kwargs: Any):
        """:func:`connectomix.plot.partner_profiles` of this comparison."""
        from .plot import partner_profiles

        return partner_profiles(self.profiles, **kwargs)


def _family(label: str, ds: Dataset) -> str | None:
    names = " ".join(str(v).lower() for v in (label, ds.name, ds.info.name))
    for word, family in _FAMILY_WORDS:
        if word in names:
            return family
    return None


def _as_list(value: Any, what: str) -> list[str]:
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, Iterable) else None
    if items is None or not all(isinstance(v, str) and v for v in items):
        raise InvalidArgumentError(f"{what} must be a type name or a list of them; got {value!r}")
    return items


def _annotations(ds: Dataset, crit: NeuronCriteria) -> pd.DataFrame:
    """Neuron rows for their annotations only (synapse totals come from the connectivity)."""
    return ds.fetch_neurons(crit, omit_rois=True, counts=False).neurons


def _select(ds: Dataset, types: list[str], ids: np.ndarray | None, cross: list[str]) -> pd.DataFrame:
    """Query neurons of ``types`` (by ``type`` or a cross-type column in ``cross``) and/or ``ids``."""
    frames = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if types:
            frames.append(_annotations(ds, NeuronCriteria(type=types, regex=False)))
            for column in cross:
                frames.append(_annotations(ds, NeuronCriteria(**{column: types}, regex=False)))
        if ids is not None and ids.size:
            frames.append(_annotations(ds, NeuronCriteria(ids=ids)))
    found = any(len(f) for f in frames)
    for w in caught:  # "no type 'X'" from one of the alternatives is expected when another finds the neurons
        if not (found and issubclass(w.category, ConnectomixWarning)):
            warnings.warn(w.message, w.category, stacklevel=4)
    if not frames:
        return schema.NEURONS.empty()
    return pd.concat(frames, ignore_index=True).drop_duplicates("id").sort_values("id").reset_index(drop=True)


def compare_types(datasets: Mapping[str, str | Dataset], type: str | Iterable[str] | Mapping[str, Any] | None = None,
                  *, ids: str | Iterable[str] | None = None, by: str = "type", by_side: bool = True,
                  min_weight: int = 5, partners: str = "both", value: str = "fraction", split_sides: bool = False,
                  matched_only: bool = True, synonyms: Any = None, families: Mapping[str, str | None] | None = None,
                  match_names: bool = True, method: str = "average") -> TypeComparison:
    """Compare cell types (or neurons) across datasets: partner profiles, cosine similarity, the type matching.

    For every dataset: the query neurons (``type`` and/or ``ids``), their
    inputs and outputs (``get_connectivity`` with the same ``min_weight``,
    ``>=``, in every dataset), their partners' types and sides. Types are
    matched across datasets (:func:`match_types`); profiles sum the weights
    by matched partner type and side; :func:`cosine_similarity` compares the
    profiles and :func:`cluster` orders them.

    Parameters
    ----------
    datasets
        ``label -> dataset name, URI or Dataset``; labels prefix keys and
        query names (``hb:DA1_lPN``).
    type
        Cell type(s) to compare, in every dataset; a neuron matches if its
        ``type`` is one of them or, as coconatfly's ``cf_meta`` does for
        FlyWire, its cross-dataset type column naming another compared
        dataset's family is (``hemibrain_type`` in FlyWire when hemibrain is
        compared). A dict ``label -> type(s)`` gives each dataset its own.
    ids
        Keys ``"label:id"`` (:func:`parse_keys`) of further query neurons.
    by
        ``"type"``: one profile per (dataset, matched type[, side]);
        ``"neuron"``: one per neuron (query ``label:id``).
    by_side
        With ``by="type"``, keep query neurons of different sides apart
        (``hb:DA1_lPN_R``).
    min_weight
        Neuron-to-neuron connections with weight ``>=`` this count, in every
        dataset.
    partners, value, split_sides, matched_only
        See :func:`cosine_similarity`.
    synonyms, families, match_names
        See :func:`match_types`; families not given are inferred from the
        dataset names (``hemibrain``, ``flywire``/``fafb``, ``manc``,
        ``malecns``/``male-cns``), else None.
    method
        scipy linkage method.

    Returns
    -------
    TypeComparison

    Raises
    ------
    InvalidArgumentError
        Bad arguments, or no query neuron in any dataset.
    ConnectomixError
        A dataset's query failed (the note names the dataset).

    Warns
    -----
    ConnectomixWarning
        A dataset has none of the query neurons (its profiles are absent;
        ``attrs["no_query_neurons"]`` names it).

    Examples
    --------
    >>> import connectomix
    >>> c = connectomix.compare_types({"a": "sample", "b": "sample"}, type="DA1_lPN", min_weight=5)
    >>> sorted(c.profiles["query"].unique())
    ['a:DA1_lPN_R', 'b:DA1_lPN_R']
    >>> float(c.similarity.query("query_a == 'a:DA1_lPN_R' and query_b == 'b:DA1_lPN_R'")["cosine"].round(6).iloc[0])
    1.0
    """
    if not isinstance(datasets, Mapping) or not datasets:
        raise InvalidArgumentError(f"datasets must be a dict label -> dataset name/URI/Dataset; got {datasets!r}")
    labels = list(datasets)
    for label, ds in datasets.items():
        if not isinstance(label, str) or not _LABEL.match(label):
            raise InvalidArgumentError(f"dataset labels must be identifiers such as 'hb' (used in keys 'hb:123'); "
                                       f"got {label!r}")
        if not isinstance(ds, (str, Dataset)):
            raise InvalidArgumentError(f"dataset {label!r} must be a name, URI or connectomix.Dataset; got {ds!r}")
    if by not in ("type", "neuron"):
        raise InvalidArgumentError(f"by must be 'type' or 'neuron'; got {by!r}")
    if isinstance(min_weight, bool) or not isinstance(min_weight, (int, np.integer)) or min_weight < 1:
        raise InvalidArgumentError(f"min_weight must be a positive integer; got {min_weight!r}")
    for flag, name in ((by_side, "by_side"), (split_sides, "split_sides"), (matched_only, "matched_only"),
                       (match_names, "match_names")):
        if not isinstance(flag, bool):
            raise InvalidArgumentError(f"{name} must be True or False; got {flag!r}")
    if partners not in ("both", "inputs", "outputs") or value not in ("fraction", "weight"):
        raise InvalidArgumentError(f"partners must be 'both', 'inputs' or 'outputs' and value 'fraction' or "
                                   f"'weight'; got {partners!r}, {value!r}")
    if isinstance(type, Mapping):
        unknown = [k for k in type if k not in labels]
        if unknown:
            raise InvalidArgumentError(f"type names dataset(s) {unknown}; the datasets are {labels}")
        types = {label: _as_list(type[label], "type") if type.get(label) is not None else [] for label in labels}
    else:
        types = {label: [] if type is None else _as_list(type, "type") for label in labels}
    keyed = parse_keys(ids, labels) if ids is not None else {}
    if not any(types.values()) and not keyed:
        raise InvalidArgumentError("give type= and/or ids= (keys 'label:id') to say what to compare")

    with ExitStack() as stack:  # datasets given by name are open for the whole comparison
        opened = {label: stack.enter_context(dataset_for(label, ds)) for label, ds in datasets.items()}
        fam = {label: _family(label, ds) for label, ds in opened.items()}
        if families is not None:
            fam.update(families)
        raw = {}
        for label, ds in opened.items():
            with dataset_for(label, ds, "connectomix.compare_types"):
                raw[label] = _fetch(ds, types[label], keyed.get(label), min_weight, fam, label)
        provenance = {label: {"dataset": ds.name, "backend": ds.backend_name, "version": _plain(ds.version),
                              "family": fam.get(label)} for label, ds in opened.items()}
        empty = [label for label in labels if raw[label][0].empty]
        if len(empty) == len(labels):
            raise InvalidArgumentError(f"no query neurons (type={type!r}, ids={ids!r}) in any of the datasets "
                                       f"{labels}")
        tables = {label: pd.concat([raw[label][0], raw[label][3]], ignore_index=True).drop_duplicates("id")
                  for label in labels}
        mapping = match_types(tables, families=fam, synonyms=synonyms, match_names=match_names)
        if len(labels) > 1 and not mapping["matched"].all():
            # a type seen in one dataset only may exist in another without being a partner there
            # (cocoa's Clustering.compile(join="existing")): look it up, so it is matched (weight 0 there)
            more = {}
            for label, ds in opened.items():
                with dataset_for(label, ds, "connectomix.compare_types"):
                    more[label] = _elsewhere(ds, label, tables, mapping, fam, _synonym_rows(synonyms, labels),
                                             match_names)
            if any(len(m) for m in more.values()):
                tables = {label: pd.concat([tables[label], more[label]], ignore_index=True).drop_duplicates("id")
                          for label in labels}
                mapping = match_types(tables, families=fam, synonyms=synonyms, match_names=match_names)

    if empty:
        warnings.warn(f"no query neurons in dataset(s) {empty}; they have no profiles", ConnectomixWarning,
                      stacklevel=2)
    neurons, profiles = [], []
    for label in labels:
        query, inputs, outputs, partner_table = raw[label]
        rows = mapping[mapping["dataset"] == label]
        matched_of = dict(zip(rows["type"], rows["matched_type"]))
        is_matched = dict(zip(rows["type"], rows["matched"]))
        q = _query_table(label, query, matched_of, by, by_side)
        neurons.append(q)
        if not q.empty:
            profiles.append(_profiles(label, q, inputs, outputs, partner_table, matched_of, is_matched))
    attrs = {"datasets": provenance, "min_weight": min_weight, "threshold_op": ">=", "by": by, "by_side": by_side,
             "normalisation": _NORMALISATION, "units": "connections (one per postsynaptic site of a connection)",
             "query": {"type": type, "ids": ids}, "no_query_neurons": empty}
    neuron_table = pd.concat(neurons, ignore_index=True)
    neuron_table.attrs = dict(attrs, table="compare_types_neurons")
    profile_table = pd.concat(profiles, ignore_index=True).astype(_PROFILE_DTYPES)
    profile_table = profile_table[list(_PROFILE_DTYPES)].sort_values(
        ["dataset", "query", "direction", "weight", "partner_type"], ascending=[True, True, True, False, True],
        key=lambda s: s.map({label: i for i, label in enumerate(labels)}) if s.name == "dataset" else s,
        kind="stable").reset_index(drop=True)
    profile_table.attrs = dict(attrs, table="partner_profiles",
                               queries=dict(zip(neuron_table["query"], neuron_table["dataset"])))
    similarity = cosine_similarity(profile_table, partners=partners, value=value, matched_only=matched_only,
                                   split_sides=split_sides)
    linkage, order = cluster(similarity, method=method)
    similarity.attrs["method"] = method
    return TypeComparison(neurons=neuron_table, profiles=profile_table, similarity=similarity, mapping=mapping,
                          linkage=linkage, order=order, attrs=attrs)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _fetch(ds: Dataset, types: list[str], ids: np.ndarray | None, min_weight: int, families: Mapping[str, Any],
           label: str):
    """Query neurons, their input and output edges and their partners' neuron rows, from one dataset."""
    columns = ds.info.neuron_columns
    others = {f for other, f in families.items() if other != label and f is not None}
    cross = [FAMILIES[f] for f in sorted(others) if columns is not None and FAMILIES[f] in columns]
    query = _select(ds, types, ids, cross)
    if query.empty:
        empty = schema.CONNECTIVITY.empty()
        return query.assign(total_input=pd.Series(dtype="int64"), total_output=pd.Series(dtype="int64")), \
            empty, empty, schema.NEURONS.empty()
    qids = query["id"].to_numpy()
    # every connection (weight >= 1) once: the totals, then the one threshold, the same in every dataset
    edges = {"min_weight": 1, "progress": False, "partner_types": False}
    outputs = ds.get_connectivity(sources=qids, **edges)[["pre", "post", "weight"]]
    inputs = ds.get_connectivity(targets=qids, **edges)[["pre", "post", "weight"]]
    query = query.assign(total_input=query["id"].map(inputs.groupby("post")["weight"].sum()).fillna(0).astype("int64"),
                         total_output=query["id"].map(outputs.groupby("pre")["weight"].sum()).fillna(0).astype("int64"))
    outputs = outputs[outputs["weight"] >= min_weight]
    inputs = inputs[inputs["weight"] >= min_weight]
    pids = np.setdiff1d(np.union1d(outputs["post"].to_numpy(), inputs["pre"].to_numpy()), qids)
    partner_table = _annotations(ds, NeuronCriteria(ids=pids)) if pids.size else schema.NEURONS.empty()
    return query, inputs, outputs, partner_table


def _elsewhere(ds: Dataset, label: str, tables: Mapping[str, pd.DataFrame], mapping: pd.DataFrame,
               families: Mapping[str, str | None], synonyms: list[tuple[str | None, str, str]],
               match_names: bool) -> pd.DataFrame:
    """Neurons of ``ds`` whose types could match the types other datasets have and ``ds`` has not shown yet."""
    lonely = mapping[~mapping["matched"] & (mapping["dataset"] != label)]
    if lonely.empty:
        return schema.NEURONS.empty()
    columns = ds.info.neuron_columns
    names: set[str] = set(lonely["type"]) if match_names else set()
    names |= {n for _, _, n in synonyms} | {t for lab, t, _ in synonyms if lab in (None, label)}
    cross: dict[str, set[str]] = {}
    own = FAMILIES.get(families.get(label) or "")
    for other, rows in lonely.groupby("dataset", sort=False):
        table = tables[other]
        if own and own in table.columns:  # the other dataset names this one's types in a cross column
            values = table.loc[table["type"].isin(rows["type"]), own].dropna().astype(str)
            names |= {p.strip() for v in values for p in v.split(",") if p.strip()}
        here = FAMILIES.get(families.get(other) or "")
        if here and columns is not None and here in columns:  # this dataset names the other's types
            cross.setdefault(here, set()).update(rows["type"])
    frames = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConnectomixWarning)  # most of these names are expected to be absent
        if names:
            frames.append(_annotations(ds, NeuronCriteria(type=sorted(names), regex=False)))
        for column, values in cross.items():
            frames.append(_annotations(ds, NeuronCriteria(**{column: sorted(values)}, regex=False)))
    if not frames:
        return schema.NEURONS.empty()
    return pd.concat(frames, ignore_index=True).drop_duplicates("id")


def _query_table(label: str, query: pd.DataFrame, matched_of: Mapping[str, str], by: str,
                 by_side: bool) -> pd.DataFrame:
    """The query neurons with their matched type and the profile (``query``) each counts in."""
    t = query["type"].astype("string")
    matched = t.map(lambda v: schema.UNTYPED if pd.isna(v) else matched_of[v]).astype("string")
    side = query["side"].astype("string")
    if by == "neuron":
        names = pd.Series(make_keys(label, query["id"]), index=query.index)
    else:
        suffix = side.map(lambda s: "" if pd.isna(s) or not by_side else f"_{_SIDE_LETTER.get(s, s)}")
        names = f"{label}:" + matched + suffix.astype("string")
    out = pd.DataFrame({"dataset": label, "key": make_keys(label, query["id"]), "id": query["id"].to_numpy(),
                        "type": t.to_numpy(), "matched_type": matched.to_numpy(), "side": side.to_numpy(),
                        "query": names.to_numpy(), "query_type": matched.to_numpy(),
                        "query_side": side.to_numpy() if (by == "neuron" or by_side) else pd.NA,
                        "total_input": query["total_input"].to_numpy(),
                        "total_output": query["total_output"].to_numpy()})
    return out.astype({"dataset": "string", "key": "string", "type": "string", "matched_type": "string",
                       "side": "string", "query": "string", "query_type": "string", "query_side": "string"})
