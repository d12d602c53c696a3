"""Pure Cypher builders for the neuPrint backend (no I/O; snapshot-tested).

neuPrint's HTTP API takes literal Cypher (it has no query parameters), so every
value is rendered here and nowhere else:

* ids are validated ``int64`` and rendered as integer literals;
* strings (types, instances, statuses, regexes) become single-quoted literals
  with ``\\``, ``'`` and control characters escaped -- quotes, backticks,
  braces, ``//`` or Cypher keywords inside them stay inert text;
* ROI names become backticked identifiers with backticks doubled, and are
  validated against the dataset's ROI list before they get here.

The query shapes follow neuprint-python 0.6.4 (``fetch_neurons``,
``fetch_adjacencies``, ``fetch_synapse_connections``), which the real server
and connectomix's emulator both run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from connectomix.criteria import NeuronCriteria

__all__ = [
    "string_literal",
    "identifier",
    "id_list",
    "meta_query",
    "neurons_query",
    "existing_ids_query",
    "roi_info_query",
    "connections_query",
    "synapse_connections_query",
]

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def string_literal(value: str) -> str:
    """A Cypher string literal holding exactly ``value``.

    Examples
    --------
    >>> print(string_literal("O'Brien\\\\x"))
    'O\\'Brien\\\\x'
    """
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "'" + "".join(out) + "'"


def identifier(name: str) -> str:
    """A backticked Cypher identifier (for ROI property names like ``AL(R)``).

    Examples
    --------
    >>> identifier("AL(R)")
    '`AL(R)`'
    >>> identifier("a`b")
    '`a``b`'
    """
    if not isinstance(name, str) or not name or any(ord(c) < 0x20 for c in name):
        raise ValueError(f"invalid identifier {name!r}")
    return "`" + name.replace("`", "``") + "`"


def id_list(ids: Iterable[int]) -> str:
    """``[1, 2, 3]`` from validated integer ids."""
    arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype="int64")
    return "[" + ", ".join(str(int(i)) for i in arr) + "]"


def meta_query() -> str:
    return (
        "MATCH (m:Meta)\n"
        "RETURN m.dataset AS dataset, m.tag AS tag, m.uuid AS uuid, m.lastDatabaseEdit AS lastDatabaseEdit,\n"
        "       m.primaryRois AS primaryRois, m.roiInfo AS roiInfo, m.voxelSize AS voxelSize,\n"
        "       m.postHighAccuracyThreshold AS postHighAccuracyThreshold, m.neuronProperties AS neuronProperties"
    )


def _in_or_eq(expr: str, values: Sequence[str], regex: bool) -> str:
    if regex:
        parts = [f"{expr} =~ {string_literal(v)}" for v in values]
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"
    if len(values) == 1:
        return f"{expr} = {string_literal(values[0])}"
    return f"{expr} IN [" + ", ".join(string_literal(v) for v in values) + "]"


#: connectomix criteria fields holding strings, and the core column each filters.
STRING_CRITERIA = {"type": "type", "instance": "instance", "status": "status", "side": "side",
                   "class_": "class", "superclass": "superclass", "nt": "nt", "flywire_type": "flywire_type",
                   "hemibrain_type": "hemibrain_type", "manc_type": "manc_type", "malecns_type": "malecns_type"}


def neurons_query(c: NeuronCriteria, *, properties: Mapping[str, str] | None = None,
                  native: Mapping[str, Sequence[str]] | None = None, extras: Sequence[str] = ()) -> str:
    """Neurons matching ``c`` (ROI count thresholds are applied by the caller on ``roiInfo``).

    Parameters
    ----------
    c
        The criteria.
    properties
        ``{core column: neuPrint property}`` for the columns the dataset stores
        as a property (``{"side": "somaSide", "nt": "predictedNt", "class":
        "class", ...}``). Each is returned under its property name (the
        backend normalises and renames). ``type``, ``instance``, ``status``,
        ``pre``, ``post``, ``upstream``, ``downstream`` are always returned.
    native
        ``{core column: [stored values]}`` for criteria on normalised columns
        (side, nt): the dataset's own spellings of the values asked for,
        compared case-insensitively (``toLower(n.somaSide) IN [...]``). A
        column without an entry here (or a regex on it) is not pushed down:
        the caller filters the normalised column.
    extras
        Further properties returned as they are (dataset-native columns).

    Examples
    --------
    >>> print(neurons_query(NeuronCriteria(type="KC", rois=["CA(R)"])))
    MATCH (n:Neuron)
    WHERE n.type = 'KC'
      AND (n.`CA(R)`)
    RETURN n.bodyId AS bodyId, n.type AS type, n.instance AS instance, n.status AS status,
           n.pre AS pre, n.post AS post, n.upstream AS upstream, n.downstream AS downstream, n.roiInfo AS roiInfo
    ORDER BY n.bodyId
    """
    properties = dict(properties or {})
    native = dict(native or {})
    label = "Segment" if c.label == "segment" else "Neuron"
    where: list[str] = []
    if c.ids is not None:
        where.append(f"n.bodyId IN {id_list(c.ids)}")
    for field, column in STRING_CRITERIA.items():
        values = getattr(c, field, None)
        if not values:
            continue
        regex = c.regex  # every string field, status included (the contract; neuprint-python keeps status exact)
        if column in ("type", "instance", "status"):
            where.append(_in_or_eq(f"n.{column}", values, regex))
        elif column in native and not regex:
            spelled = list(dict.fromkeys(v.lower() for v in native[column]))
            where.append(f"toLower(n.{identifier(properties[column])}) IN ["
                         + ", ".join(string_literal(v) for v in spelled) + "]" if spelled else "false")
        elif column in properties and column not in native:
            where.append(_in_or_eq(f"n.{identifier(properties[column])}", values, regex))
    for field, prop in (("min_pre", "pre"), ("min_post", "post"), ("min_upstream", "upstream"),
                        ("min_downstream", "downstream")):
        value = getattr(c, field, None)
        if value:
            where.append(f"n.{prop} >= {int(value)}")
    if c.rois:
        joiner = " AND " if c.roi_req == "all" else " OR "
        where.append("(" + joiner.join(f"n.{identifier(r)}" for r in c.rois) + ")")
    for roi in dict.fromkeys((c.input_rois or ()) + (c.output_rois or ())):
        where.append(f"n.{identifier(roi)}")
    lines = [f"MATCH (n:{label})"]
    if where:
        lines.append("WHERE " + "\n  AND ".join(where))
    returned = ["n.bodyId AS bodyId", "n.type AS type", "n.instance AS instance", "n.status AS status",
                "n.pre AS pre", "n.post AS post", "n.upstream AS upstream", "n.downstream AS downstream",
                "n.roiInfo AS roiInfo"]
    fixed = {"bodyId", "type", "instance", "status", "pre", "post", "upstream", "downstream", "roiInfo"}
    for prop in dict.fromkeys([*properties.values(), *extras]):
        if prop not in fixed:
            returned.append(f"n.{identifier(prop)} AS {identifier(prop)}")
            fixed.add(prop)
    lines.append("RETURN " + returned[0] + ", " + ", ".join(returned[1:4]) + ",")
    rest = returned[4:]
    lines.append("       " + ", ".join(rest))
    lines.append("ORDER BY n.bodyId")
    return "\n".join(lines)


def existing_ids_query(ids: Iterable[int]) -> str:
    """Which of ``ids`` exist as segments."""
    return f"MATCH (n:Segment)\nWHERE n.bodyId IN {id_list(ids)}\nRETURN n.bodyId AS bodyId"


def sizes_query(ids: Iterable[int]) -> str:
    """Which of ``ids`` exist as segments, with their synapse counts (to size the batches of later queries).

    Examples
    --------
    >>> print(sizes_query([5, 3]))
    MATCH (n:Segment)
    WHERE n.bodyId IN [5, 3]
    RETURN n.bodyId AS bodyId, n.pre AS pre, n.post AS post, n.upstream AS upstream, n.downstream AS downstream
    """
    return (f"MATCH (n:Segment)\nWHERE n.bodyId IN {id_list(ids)}\n"
            "RETURN n.bodyId AS bodyId, n.pre AS pre, n.post AS post, n.upstream AS upstream, n.downstream AS downstream")


def roi_info_query(ids: Iterable[int]) -> str:
    """Totals and ``roiInfo`` of ``ids`` (for per-ROI counts)."""
    return (
        f"MATCH (n:Segment)\nWHERE n.bodyId IN {id_list(ids)}\n"
        "RETURN n.bodyId AS bodyId, n.pre AS pre, n.post AS post, n.roiInfo AS roiInfo\nORDER BY n.bodyId"
    )


#: The partner id of the row :func:`connections_query` gives for a checked id without an edge.
NO_PARTNER = -1


def connections_query(sources: Iterable[int] | None, targets: Iterable[int] | None, *,
                      min_weight: int = 1, include_autapses: bool = False, with_roi_info: bool = False,
                      sources_label: str = "Segment", targets_label: str = "Segment",
                      check: str | None = None) -> str:
    """``ConnectsTo`` edges from ``sources`` to ``targets`` (``None``: any node with that side's label).

    ``check`` (``"sources"`` or ``"targets"``): the query also reports which ids of that side exist
    (as any segment), so that no separate id check is needed: each of them gives at least one row,
    with partner :data:`NO_PARTNER` and weight 0 when it has no edge; ids that give no row do not
    exist. A marker rather than null: neuPrintHTTP's Arrow endpoint types each column by its first
    row (connectome-neuprint/neuPrintHTTP api/custom/arrow.go, ``convertToArrow``), so a null first
    partner would make the id column text and every id in it null. Body ids are never negative.

    Examples
    --------
    >>> print(connections_query([1, 2], None, min_weight=3))
    MATCH (n:Segment)-[e:ConnectsTo]->(m:Segment)
    WHERE n.bodyId IN [1, 2]
      AND n.bodyId <> m.bodyId
      AND e.weight >= 3
    RETURN n.bodyId AS pre, m.bodyId AS post, e.weight AS weight
    >>> print(connections_query([1, 2], None, min_weight=3, check="sources"))
    MATCH (n:Segment)
    WHERE n.bodyId IN [1, 2]
    OPTIONAL MATCH (n)-[e:ConnectsTo]->(m:Segment)
    WHERE n.bodyId <> m.bodyId
      AND e.weight >= 3
    RETURN n.bodyId AS pre, coalesce(m.bodyId, -1) AS post, coalesce(e.weight, 0) AS weight
    """
    for label in (sources_label, targets_label):
        if label not in ("Segment", "Neuron"):
            raise ValueError(f"label must be 'Segment' or 'Neuron', got {label!r}")
    if check not in (None, "sources", "targets") or (check is not None and
                                                      (sources if check == "sources" else targets) is None):
        raise ValueError(f"check must be None or a side given as ids ('sources', 'targets'), got {check!r}")
    ids = {"sources": f"n.bodyId IN {id_list(sources)}" if sources is not None else None,
           "targets": f"m.bodyId IN {id_list(targets)}" if targets is not None else None}
    where = [ids[side] for side in ("sources", "targets") if ids[side] is not None and side != check]
    if not include_autapses:
        where.append("n.bodyId <> m.bodyId")
    if min_weight > 1:
        where.append(f"e.weight >= {int(min_weight)}")
    ret = "RETURN n.bodyId AS pre, m.bodyId AS post, e.weight AS weight"
    if with_roi_info:
        ret += ", e.roiInfo AS roiInfo"
    if check is None:
        return (f"MATCH (n:{sources_label})-[e:ConnectsTo]->(m:{targets_label})\nWHERE " + "\n  AND ".join(where)
                + "\n" + ret)
    # every segment of the checked side gives a row (a null partner and weight where it has no edge)
    lines = (["MATCH (n:Segment)", f"WHERE {ids[check]}", f"OPTIONAL MATCH (n)-[e:ConnectsTo]->(m:{targets_label})"]
             if check == "sources" else
             ["MATCH (m:Segment)", f"WHERE {ids[check]}", f"OPTIONAL MATCH (n:{sources_label})-[e:ConnectsTo]->(m)"])
    if where:
        lines.append("WHERE " + "\n  AND ".join(where))
    marked = {"n": f"coalesce(n.bodyId, {NO_PARTNER})", "m": f"coalesce(m.bodyId, {NO_PARTNER})"}
    partner = "m" if check == "sources" else "n"
    ret = ret.replace(f"{partner}.bodyId AS", f"{marked[partner]} AS").replace("e.weight AS", "coalesce(e.weight, 0) AS")
    return "\n".join(lines + [ret])


def synapse_connections_query(ids: Iterable[int], side: str, *, min_score: float | None = None,
                              rois: Sequence[str] | None = None, include_autapses: bool = False) -> str:
    """Synapse-level connections where ``ids`` are on ``side`` (``'pre'`` or ``'post'``).

    ``min_score`` applies to both the pre- and the postsynaptic confidence
    (``>=``); ``rois`` to the postsynaptic site.
    """
    if side not in ("pre", "post"):
        raise ValueError(f"side must be 'pre' or 'post', got {side!r}")
    node = "n" if side == "pre" else "m"
    where = [f"{node}.bodyId IN {id_list(ids)}"]
    if not include_autapses:
        where.append("n.bodyId <> m.bodyId")
    if min_score is not None:
        t = repr(float(min_score))
        where.append(f"ns.confidence >= {t} AND ms.confidence >= {t}")
    if rois:
        where.append("(" + " OR ".join(f"ms.{identifier(r)}" for r in rois) + ")")
    return (
        "MATCH (n:Segment)-[:Contains]->(nss:SynapseSet)-[:ConnectsTo]->(mss:SynapseSet)<-[:Contains]-(m:Segment),\n"
        "      (nss)-[:Contains]->(ns:Synapse)-[:SynapsesTo]->(ms:Synapse)<-[:Contains]-(mss)\n"
        "WHERE " + "\n  AND ".join(where) + "\n"
        "WITH DISTINCT n, m, ns, ms\n"
        "RETURN n.bodyId AS pre, m.bodyId AS post,\n"
        "       ns.location.x AS ux, ns.location.y AS uy, ns.location.z AS uz,\n"
        "       ms.location.x AS dx, ms.location.y AS dy, ms.location.z AS dz,\n"
        "       ns.confidence AS pre_score, ms.confidence AS post_score,\n"
        "       apoc.map.removeKeys(ms, ['location', 'confidence', 'type']) AS post_info"
    )
