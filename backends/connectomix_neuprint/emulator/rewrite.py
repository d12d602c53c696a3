"""Rewrite neo4j Cypher, as neuPrint clients send it, into the Cypher dialect of Kuzu.

Pure text-to-text: a tokenizer and clause splitter (:mod:`.cypher_lex`), a
small recursive parser of *expressions* (:mod:`.rewrite_expr`: primaries,
calls, subscripts, property access) and, here, patterns and clauses. Infix
operators and anything not understood pass through unchanged, so Kuzu's own
parser reports real syntax errors. Nothing here matches whole queries.

The rewrites (each has unit tests in ``tests/test_emulator_rewrite.py``):

======================================  ===========================================================
neo4j / neuPrint                        Kuzu
======================================  ===========================================================
``//`` and ``/* */`` comments           removed
string literals (``\\n``, ``\\uXXXX``,  decoded with neo4j's escape rules, re-encoded for Kuzu
``"double quoted"``)                    (which only knows ``\\\\`` and ``\\'``)
``(n:Neuron)`` in a pattern             ``(n:Segment {__neuron: true})`` (one ``Segment`` table;
                                        ``:Neuron`` is a hidden flag; see :data:`.model.LABELS`)
``n:Neuron`` as a predicate             ``(n.__neuron)``
``labels(n)`` / ``type(r)`` / ``id(n)`` ``CASE`` over the flag / ``label(r)`` / ``offset(id(n))``
``n.prop`` the graph does not have      ``NULL`` (neo4j: a missing property is null; Kuzu: error)
``exists(n.prop)``                      ``(n.prop IS NOT NULL)``
``keys(node)``                          the node's *non-null* properties, as neo4j (Kuzu lists
                                        every column); internal ``__`` properties never show
``apoc.convert.fromJsonMap(x.roiInfo)`` a typed MAP via a UDF (``__json_count_map`` /
                                        ``__json_string_map``) when the property's JSON shape is
                                        known, else the JSON text (``__json_text``), parsed when
                                        returned
``apoc.convert.fromJsonList(x)``        JSON text (``__json_text``), parsed when returned
``keys(map)``, ``map[k]``, ``map.k``    ``map_keys``; ``CASE .. list_any_value(map_extract(..))``
                                        (null when absent); on JSON text ``__json_keys`` /
                                        ``__json_get`` / ``__json_at``
``list[i]``, ``list[a..b]``             1-based ``list[i+1]``, ``list_slice(list, a+1, b)``
``[1, 2, ... 10000]`` (>= 32 integers)  ``CAST(string_split('1,2,...', ',') AS INT64[])`` (parses faster)
``[x IN l WHERE p | e]``                ``list_transform(list_filter(l, x -> p), x -> e)``
``CALL apoc.cypher.runTimeboxed(q, {},  ``q`` inlined (its final ``RETURN`` becomes ``WITH``),
ms) YIELD value ... value.c``           ``value.c`` -> ``c``; run with a timeout of ``ms`` that
                                        yields no rows instead of an error, like APOC
``apoc.map.removeKeys(n, [..])`` as a   ``n``, and the returned map loses the keys afterwards
whole ``RETURN`` item
``WITH .. ORDER BY .. WHERE``           ``SKIP 0`` added after ``ORDER BY`` (Kuzu needs it)
``RETURN count(n)`` (no alias)          ``AS `count(n)``` (neo4j names columns by their text)
identifiers after ``.`` and ``AS``,     backticked, so names that are Kuzu keywords
bound variables                         (``order``, ``group``, ``column``...) still work
``toInteger toFloat toString toLower``  ``to_int64 to_double to_string lower upper to_bool
``toUpper toBoolean split substring``   string_split substring`` (1-based)
``relationships(p)``                    ``rels(p)``
======================================  ===========================================================

Refused (:class:`WriteQueryError`, answered "not authorized to modify the
database"): ``CREATE MERGE SET DELETE DETACH REMOVE DROP ALTER LOAD COPY
INSTALL ATTACH DETACH USE IMPORT EXPORT CHECKPOINT BEGIN COMMIT ROLLBACK
FOREACH`` and any ``CALL`` other than ``apoc.cypher.runTimeboxed``.
Refused as unsupported (:class:`CypherError`): query parameters (neuPrint's
HTTP API has none), other APOC procedures, pattern predicates
(``exists((a)-->(b))``) and pattern comprehensions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .cypher_lex import (
    KEYWORDS,
    WRITE_WORDS,
    CypherError,
    Token,
    WriteQueryError,
    alias_split,
    bq,
    decode_string,
    encode_string,
    is_keyword_position,
    match_close,
    next_sig,
    prev_sig,
    render,
    split_clauses,
    split_top,
    strip_ws,
    tokenize,
    with_depth,
)
from .model import Schema
from .rewrite_expr import Context, ExprRewriter, Kind

__all__ = ["CypherError", "WriteQueryError", "Rewritten", "rewrite", "tokenize", "decode_string", "encode_string"]


# ------------------------------------------------------------------------------------------------
# result of a rewrite
# ------------------------------------------------------------------------------------------------


@dataclass
class Rewritten:
    """A query in Kuzu's dialect plus what to do with its results.

    Attributes
    ----------
    text
        The Kuzu query.
    transforms
        ``{column index: ("json",) | ("remove_keys", keys)}``: parse a JSON
        text column; turn a node into its property map minus ``keys``.
    timebox_ms
        From ``apoc.cypher.runTimeboxed``: run with this timeout and return
        no rows (not an error) when it expires.
    columns
        The result's column names as neo4j names them (Kuzu cannot hold a
        backtick in a name, so such columns get a placeholder alias).
    """

    text: str
    transforms: dict[int, tuple] = field(default_factory=dict)
    timebox_ms: int | None = None
    columns: list[str] | None = None


# ------------------------------------------------------------------------------------------------
# patterns
# ------------------------------------------------------------------------------------------------


def _rewrite_pattern(tokens: list[Token], ctx: Context) -> str:
    """Rewrite a MATCH pattern: labels of node patterns, variable kinds, property maps."""
    out: list[str] = []
    i = 0
    path_var: str | None = None
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "OP" and t.text == "(":
            j = match_close(tokens, i)
            out.append(_node_pattern(tokens[i + 1:j], ctx))
            i = j + 1
            continue
        if t.kind == "OP" and t.text == "[":
            j = match_close(tokens, i)
            out.append(_rel_pattern(tokens[i + 1:j], ctx))
            i = j + 1
            continue
        if t.kind in ("IDENT", "BQ"):
            nxt = next_sig(tokens, i)
            if nxt is not None and tokens[nxt].text == "=":
                path_var = t.name
                ctx.env[path_var] = ("path",)
                out.append(bq(path_var))
                i += 1
                continue
            if t.kind == "IDENT" and t.text.lower() in ("shortestpath", "allshortestpaths"):
                raise CypherError(f"{t.text}() is not supported by the emulator; use a variable-length pattern "
                                  "with an upper bound")
        if t.kind == "PARAM":
            raise CypherError(f"Query parameters ({t.text}) are not supported: write the values into the query")
        out.append(" " if t.kind == "COMMENT" else t.text)
        i += 1
    return "".join(out)


def _split_props(tokens: list[Token]) -> tuple[list[Token], list[Token] | None]:
    for k, t in enumerate(tokens):
        if t.kind == "OP" and t.text == "{":
            end = match_close(tokens, k)
            if strip_ws(tokens[end + 1:]):
                raise CypherError(f"Invalid input in pattern: {render(tokens)!r}")
            return tokens[:k], tokens[k + 1:end]
    return tokens, None


def _labels_and_var(head: list[Token], what: str) -> tuple[str | None, list[str], list[Token]]:
    toks = strip_ws(head)
    var = None
    if toks and toks[0].kind in ("IDENT", "BQ"):
        var = toks[0].name
        toks = strip_ws(toks[1:])
    labels: list[str] = []
    while toks and toks[0].kind == "OP" and toks[0].text == ":":
        toks = strip_ws(toks[1:])
        if not toks or toks[0].kind not in ("IDENT", "BQ"):
            raise CypherError(f"Invalid input: expected a {what} after ':'")
        labels.append(toks[0].name)
        toks = strip_ws(toks[1:])
        while toks and toks[0].kind == "OP" and toks[0].text == "|" and what == "relationship type":
            toks = strip_ws(toks[1:])
            if toks and toks[0].text == ":":
                toks = strip_ws(toks[1:])
            labels.append(toks[0].name)
            toks = strip_ws(toks[1:])
    return var, labels, toks


def _node_pattern(inner: list[Token], ctx: Context) -> str:
    head, props = _split_props(inner)
    var, labels, rest = _labels_and_var(head, "label")
    if rest:
        raise CypherError(f"Invalid input in node pattern ({render(inner)})")
    entries: list[str] = []
    if labels:
        table, tables, neuron = ctx.node_kind(labels)
        if var is not None:
            ctx.env[var] = ("node", tables, neuron)
        if neuron:
            entries.append("__neuron: true")
        label_text = ":" + bq(table)
    else:
        label_text = ""
        if var is not None and var not in ctx.env:
            ctx.env[var] = ("node", frozenset(), False)
    if props is not None:
        body = ExprRewriter(ctx).map_literal(props)
        if body:
            entries.append(body)
    prop_text = " {" + ", ".join(entries) + "}" if entries else ""
    return "(" + (bq(var) if var else "") + label_text + prop_text + ")"


def _rel_pattern(inner: list[Token], ctx: Context) -> str:
    head, props = _split_props(inner)
    var, types, rest = _labels_and_var(head, "relationship type")
    rng = render(rest).strip()
    if rng and not re.fullmatch(r"\*\s*(\d+)?\s*(\.\.\s*(\d+)?)?", rng):
        raise CypherError(f"Invalid input in relationship pattern [{render(inner)}]")
    if var is not None:
        ctx.env[var] = ("relpath",) if rng else ("rel", frozenset(types))
    text = "[" + (bq(var) if var else "")
    if types:
        text += ":" + "|".join(bq(t) for t in types)
    if rng:
        text += rng.replace(" ", "")
    if props is not None:
        body = ExprRewriter(ctx).map_literal(props)
        if body:
            text += " {" + body + "}"
    return text + "]"


# ------------------------------------------------------------------------------------------------
# clauses
# ------------------------------------------------------------------------------------------------


def _check_writes(tokens: Sequence[Token]) -> None:
    for i, t in enumerate(tokens):
        if t.kind != "IDENT" or not is_keyword_position(tokens, i):
            continue
        word = t.text.upper()
        if word in WRITE_WORDS:
            raise WriteQueryError(f"not authorized to modify the database ({word} is a write operation)")
        if word == "CALL":
            raise WriteQueryError("not authorized to modify the database (only CALL apoc.cypher.runTimeboxed "
                                  "is allowed)")


def _projection(clause: list[Token], ctx: Context, *, is_return: bool, transforms: dict[int, tuple],
                columns: list[str] | None = None) -> str:
    """WITH/RETURN items: rewrite expressions, bind aliases, note output transforms."""
    kw = clause[0]
    body = clause[1:]
    s = strip_ws(body)
    prefix = ""
    if s and s[0].is_kw("DISTINCT"):
        prefix = "DISTINCT "
        body = s[1:]
    if strip_ws(body) and render(strip_ws(body)) == "*":
        return f"{kw.text.upper()} {prefix}*"
    items_out = []
    new_env: dict[str, Kind] = {}
    for col, item in enumerate(split_top(body, ",")):
        expr_toks, alias = alias_split(item)
        expr_toks = strip_ws(expr_toks)
        if not expr_toks:
            raise CypherError(f"Invalid input: empty item in {kw.text.upper()}")
        if is_return:
            removed = _remove_keys_item(expr_toks)
            if removed is not None:
                var, keys = removed
                atom = ExprRewriter(ctx).single([var])
                transforms[col] = ("remove_keys", tuple(keys))
                name = alias.name if alias is not None else render(expr_toks)
                if columns is not None:
                    columns.append(name)
                items_out.append(f"{atom.text} AS {_alias(name, col)}")
                continue
        atom = ExprRewriter(ctx).single(expr_toks)
        if alias is not None:
            name = alias.name
        elif len(expr_toks) == 1 and expr_toks[0].kind in ("IDENT", "BQ"):
            name = expr_toks[0].name
        else:
            name = render(expr_toks).strip()
        new_env[name] = atom.kind
        if is_return and atom.kind is not None and atom.kind[0] == "jsontext":
            transforms[col] = ("json",)
        if columns is not None:
            columns.append(name)
        items_out.append(f"{atom.text.strip()} AS {_alias(name, col)}")
    ctx.env.update(new_env)
    return f"{kw.text.upper()} {prefix}" + ", ".join(items_out)


def _alias(name: str, col: int) -> str:
    """Kuzu identifiers cannot contain a backtick: use a placeholder (the real name is in ``columns``)."""
    return bq(name) if "`" not in name else f"`__column_{col}`"


def _remove_keys_item(expr: list[Token]) -> tuple[Token, list[str]] | None:
    """``apoc.map.removeKeys(var, ['a', 'b'])`` -> (var token, ['a', 'b'])."""
    text = render(expr)
    if not re.match(r"\s*apoc\s*\.\s*map\s*\.\s*removeKeys\s*\(", text, re.IGNORECASE):
        return None
    open_at = next(k for k, t in enumerate(expr) if t.text == "(")
    end = match_close(expr, open_at)
    if strip_ws(expr[end + 1:]):
        return None
    args = [strip_ws(a) for a in split_top(expr[open_at + 1:end], ",")]
    if len(args) != 2 or len(args[0]) != 1 or args[0][0].kind not in ("IDENT", "BQ"):
        raise CypherError("apoc.map.removeKeys(var, ['key', ...]) needs a variable and a list of string literals")
    lst = args[1]
    if not lst or lst[0].text != "[" or lst[-1].text != "]":
        raise CypherError("apoc.map.removeKeys(var, ['key', ...]) needs a list of string literals")
    keys = []
    for part in split_top(lst[1:-1], ","):
        part = strip_ws(part)
        if not part:
            continue
        if len(part) != 1 or part[0].kind != "STRING":
            raise CypherError("apoc.map.removeKeys(var, ['key', ...]) needs a list of string literals")
        keys.append(decode_string(part[0].text))
    return args[0][0], keys


def _unwind(clause: list[Token], ctx: Context) -> str:
    expr, alias = alias_split(clause[1:])
    if alias is None:
        raise CypherError("Invalid input: UNWIND needs AS <variable>")
    text = ExprRewriter(ctx).text(strip_ws(expr)).strip()
    ctx.env[alias.name] = None
    return f"UNWIND {text} AS {bq(alias.name)}"


def _order_by(clause: list[Token], ctx: Context) -> str:
    s = strip_ws(clause[1:])
    if not s or not s[0].is_kw("BY"):
        raise CypherError("Invalid input: ORDER must be followed by BY")
    items = []
    for item in split_top(s[1:], ","):
        item = strip_ws(item)
        direction = ""
        if item and item[-1].is_kw("ASC", "DESC", "ASCENDING", "DESCENDING"):
            direction = " " + ("DESC" if item[-1].text.upper().startswith("DESC") else "ASC")
            item = strip_ws(item[:-1])
        items.append(ExprRewriter(ctx).text(item).strip() + direction)
    return "ORDER BY " + ", ".join(items)


def _clauses_to_kuzu(tokens: list[Token], ctx: Context, transforms: dict[int, tuple], columns: list[str]) -> str:
    clauses = split_clauses(tokens)
    out: list[str] = []
    k = 0
    while k < len(clauses):
        word, toks = clauses[k]
        if word == "":
            if strip_ws(toks):
                raise CypherError(f"Invalid input: query does not start with a clause: {render(strip_ws(toks))[:60]!r}")
        elif word == "OPTIONAL" or word == "MATCH":
            body = toks[1:]
            prefix = "MATCH"
            if word == "OPTIONAL":
                body = strip_ws(toks[1:])
                if not body or not body[0].is_kw("MATCH"):
                    raise CypherError("Invalid input: OPTIONAL must be followed by MATCH")
                body = body[1:]
                prefix = "OPTIONAL MATCH"
            if word == "OPTIONAL":
                out.append(prefix + " " + _rewrite_pattern(strip_ws(body), ctx).strip())
            else:
                where = None
                if k + 1 < len(clauses) and clauses[k + 1][0] == "WHERE":
                    where = strip_ws(clauses[k + 1][1][1:])
                    k += 1
                if out and out[-1].split(" ", 1)[0] in ("MATCH", "WHERE", "OPTIONAL"):
                    out.append("WITH *")  # evaluate MATCH clauses in the order written
                out += _pipeline_match(strip_ws(body), where, ctx)
        elif word == "WHERE":
            out.append("WHERE " + ExprRewriter(ctx).text(strip_ws(toks[1:])).strip())
        elif word in ("WITH", "RETURN"):
            is_return = word == "RETURN"
            first_return = is_return and not columns
            out.append(_projection(toks, ctx, is_return=is_return,
                                   transforms=transforms if first_return else {},
                                   columns=columns if first_return else None))
            if not is_return:
                # Kuzu wants SKIP or LIMIT after ORDER BY in WITH: add SKIP 0
                m = k + 1
                while m < len(clauses) and clauses[m][0] in ("ORDER", "SKIP", "LIMIT", "WHERE"):
                    m += 1
                sub = [w for w, _ in clauses[k + 1:m]]
                needs_skip = "ORDER" in sub and "SKIP" not in sub and "LIMIT" not in sub
                for w, t2 in clauses[k + 1:m]:
                    out.append(_subclause(w, t2, ctx))
                    if w == "ORDER" and needs_skip:
                        out.append("SKIP 0")
                k = m
                continue
        elif word == "UNWIND":
            out.append(_unwind(toks, ctx))
        elif word in ("ORDER", "SKIP", "LIMIT"):
            out.append(_subclause(word, toks, ctx))
        elif word == "UNION":
            rest = strip_ws(toks[1:])
            out.append("UNION ALL" if rest and rest[0].is_kw("ALL") else "UNION")
            ctx.env.clear()
        else:
            raise CypherError(f"Invalid input: {word} is not supported here")
        k += 1
    return "\n".join(out)


def _node_groups(part: list[Token]) -> tuple[list[tuple[int, int]], str | None]:
    """Top-level ``( ... )`` groups of a pattern part (token index ranges) and its path variable."""
    groups = []
    path_var = None
    i = 0
    while i < len(part):
        t = part[i]
        if t.kind == "OP" and t.text == "(":
            j = match_close(part, i)
            groups.append((i, j))
            i = j + 1
            continue
        if t.kind == "OP" and t.text == "[":
            i = match_close(part, i) + 1
            continue
        if t.kind in ("IDENT", "BQ") and not groups:
            nxt = next_sig(part, i)
            if nxt is not None and part[nxt].text == "=":
                path_var = t.name
            elif t.kind == "IDENT" and t.text.lower() in ("shortestpath", "allshortestpaths"):
                path_var = path_var or "?"
        i += 1
    return groups, path_var


def _group_var(part: list[Token], group: tuple[int, int]) -> str | None:
    inner = strip_ws(part[group[0] + 1:group[1]])
    if inner and inner[0].kind in ("IDENT", "BQ"):
        return inner[0].name
    return None


def _referenced(tokens: Sequence[Token]) -> set[str]:
    """Names a WHERE conjunct refers to (identifiers that are not properties, functions or keywords)."""
    names = set()
    for i, t in enumerate(tokens):
        if t.kind not in ("IDENT", "BQ"):
            continue
        prev = prev_sig(tokens, i)
        nxt = next_sig(tokens, i)
        if prev is not None and tokens[prev].text in (".", ":"):
            continue
        if nxt is not None and tokens[nxt].text == "(":
            continue
        if t.kind == "IDENT" and t.text.upper() in KEYWORDS:
            continue
        names.add(t.name)
    return names


def _pipeline_match(pattern: list[Token], where: list[Token] | None, ctx: Context) -> list[str]:
    """Evaluate a MATCH's pattern parts in the order written, filtering as early as possible.

    ``MATCH p1, p2 WHERE c1 AND c2`` becomes ``MATCH p1 WHERE c1 WITH * MATCH p2
    WHERE c2`` (each conjunct after the first part that binds all its
    variables), and a chain is cut where it reaches an already bound node
    (``(a)-->(b)<--(c)`` with ``c`` bound: ``(a)-->(b) WITH * MATCH (b)<--(c)``).
    Same result (neither Kuzu nor this split checks relationship uniqueness),
    but Kuzu's optimiser picks very poor join orders for neuPrint's cyclic
    synapse patterns (gigabytes of hash tables) and follows the written order
    well. Path variables (``p = ...``) keep their part whole.
    """
    conjuncts: list[list[Token]] = []
    if where:
        has_or = any(depth == 0 and t.is_kw("OR", "XOR") for _, t, depth in with_depth(where))
        if has_or:
            conjuncts = [where]
        else:
            current: list[Token] = []
            for _, t, depth in with_depth(where):
                if depth == 0 and t.is_kw("AND"):
                    conjuncts.append(current)
                    current = []
                else:
                    current.append(t)
            conjuncts.append(current)
            conjuncts = [c for c in (strip_ws(c) for c in conjuncts) if c]

    parts = [strip_ws(p) for p in split_top(pattern, ",")]
    bound = set(ctx.env)
    segments: list[list[Token]] = []
    for part in parts:
        groups, path_var = _node_groups(part)
        names = [_group_var(part, g) for g in groups]
        if path_var is not None or len(groups) < 2:
            segments.append(part)
            bound.update(n for n in names if n)
            continue
        start = 0
        seen = set(bound)
        if names[0]:
            seen.add(names[0])
        for i in range(1, len(groups)):
            if names[i] is not None and names[i] in seen and i - 1 > start:
                segments.append(part[groups[start][0]:groups[i - 1][1] + 1])
                start = i - 1
            if names[i]:
                seen.add(names[i])
        segments.append(part[groups[start][0]:])
        bound |= seen
    out: list[str] = []
    pending = list(conjuncts)
    all_pattern_vars: set[str] = set()
    for seg in segments:
        groups, _ = _node_groups(seg)
        for g in groups:
            v = _group_var(seg, g)
            if v:
                all_pattern_vars.add(v)
        for t in seg:
            if t.kind in ("IDENT", "BQ"):
                all_pattern_vars.add(t.name)
    for n, seg in enumerate(segments):
        if n:
            out.append("WITH *")
        out.append("MATCH " + _rewrite_pattern(seg, ctx).strip())
        now_bound = set(ctx.env)
        ready = [c for c in pending if (_referenced(c) & all_pattern_vars) <= now_bound]
        if n == len(segments) - 1:
            ready = pending
        pending = [c for c in pending if c not in ready]
        if ready:
            out.append("WHERE " + " AND ".join(
                "(" + ExprRewriter(ctx).text(c).strip() + ")" if len(ready) > 1 else ExprRewriter(ctx).text(c).strip()
                for c in ready))
    return out


def _subclause(word: str, toks: list[Token], ctx: Context) -> str:
    if word == "ORDER":
        return _order_by(toks, ctx)
    return word + " " + ExprRewriter(ctx).text(strip_ws(toks[1:])).strip()


# ------------------------------------------------------------------------------------------------
# runTimeboxed
# ------------------------------------------------------------------------------------------------

_TIMEBOXED = "apoc.cypher.runtimeboxed"


def _unwrap_timeboxed(tokens: list[Token]) -> tuple[list[Token], int | None]:
    """Inline ``CALL apoc.cypher.runTimeboxed("<q>", {}, ms) YIELD value RETURN value.x ...``."""
    sig = [k for k, t in enumerate(tokens) if t.kind not in ("WS", "COMMENT")]
    if len(sig) < 2 or not tokens[sig[0]].is_kw("CALL"):
        return tokens, None
    name_toks = []
    k = 1
    while k < len(sig) and tokens[sig[k]].text != "(":
        name_toks.append(tokens[sig[k]].text)
        k += 1
    if "".join(name_toks).lower() != _TIMEBOXED:
        return tokens, None
    open_at = sig[k]
    close_at = match_close(tokens, open_at)
    args = [strip_ws(a) for a in split_top(tokens[open_at + 1:close_at], ",")]
    if len(args) != 3 or len(args[0]) != 1 or args[0][0].kind != "STRING":
        raise CypherError("apoc.cypher.runTimeboxed(query, params, timeout) needs a literal query string, "
                          "a map and a timeout in ms")
    if render(args[1]).replace(" ", "") not in ("{}", ""):
        raise CypherError("apoc.cypher.runTimeboxed: query parameters are not supported (pass {})")
    try:
        timeout = int(float(render(args[2])))
    except ValueError:
        raise CypherError(f"apoc.cypher.runTimeboxed: timeout must be a number, got {render(args[2])!r}") from None
    rest = tokens[close_at + 1:]
    rs = strip_ws(rest)
    if not rs or not rs[0].is_kw("YIELD"):
        raise CypherError("apoc.cypher.runTimeboxed must be followed by YIELD value")
    rs = strip_ws(rs[1:])
    if not rs or rs[0].name != "value":
        raise CypherError("apoc.cypher.runTimeboxed yields only 'value'")
    value_name = "value"
    rs = strip_ws(rs[1:])
    if rs and rs[0].is_kw("AS"):
        rs = strip_ws(rs[1:])
        value_name = rs[0].name
        rs = rs[1:]

    inner = [t for t in tokenize(decode_string(args[0][0].text)) if t.kind != "COMMENT"]
    clauses = split_clauses(inner)
    ret = [k2 for k2, (w, _) in enumerate(clauses) if w == "RETURN"]
    if not ret or any(w == "UNION" for w, _ in clauses):
        raise CypherError("apoc.cypher.runTimeboxed: the inner query must end with one RETURN (no UNION)")
    keys: list[str] = []
    rtoks = clauses[ret[-1]][1]
    body = rtoks[1:]
    s = strip_ws(body)
    distinct = []
    if s and s[0].is_kw("DISTINCT"):
        distinct = [Token("IDENT", "DISTINCT"), Token("WS", " ")]
        body = s[1:]
    new_items: list[Token] = []
    for n, item in enumerate(split_top(body, ",")):
        expr, alias = alias_split(item)
        expr = strip_ws(expr)
        name = alias.name if alias else (expr[0].name if len(expr) == 1 and expr[0].kind in ("IDENT", "BQ")
                                         else render(expr).strip())
        keys.append(name)
        if n:
            new_items.append(Token("OP", ","))
        new_items += [Token("WS", " "), *expr, Token("WS", " "), Token("IDENT", "AS"), Token("WS", " "),
                      Token("BQ", bq(name))]
    clauses[ret[-1]] = ("WITH", [Token("IDENT", "WITH"), Token("WS", " "), *distinct, *new_items])
    combined: list[Token] = []
    for _w, toks in clauses:
        combined += toks + [Token("WS", "\n")]
    # the whole ``value`` map, built in a WITH of its own (Kuzu cannot build it in RETURN after an aggregation)
    carried = ", ".join(f"{bq(k)} AS {bq(k)}" for k in keys)
    struct = "{" + ", ".join(f"{bq(k)}: {bq(k)}" for k in keys) + "}"
    combined += tokenize(f"WITH {carried}, {struct} AS `__value`\n")
    # outer part: value.key -> `key`, bare value -> {key: `key`, ...}
    outer: list[Token] = []
    j = 0
    while j < len(rs):
        t = rs[j]
        if t.kind in ("IDENT", "BQ") and t.name == value_name:
            a = next_sig(rs, j)
            if a is not None and rs[a].text == ".":
                b = next_sig(rs, a)
                if b is None or rs[b].kind not in ("IDENT", "BQ"):
                    raise CypherError("Invalid input after value.")
                key = rs[b].name
                if key not in keys:
                    outer.append(Token("IDENT", "NULL"))
                else:
                    outer.append(Token("BQ", bq(key)))
                j = b + 1
                continue
            outer.append(Token("BQ", "`__value`"))
            j += 1
            continue
        outer.append(t)
        j += 1
    return combined + outer, timeout


# ------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------


def rewrite(cypher: str, schema: Schema) -> Rewritten:
    """Rewrite a neo4j/neuPrint Cypher query into Kuzu's dialect.

    Parameters
    ----------
    cypher
        The query as a client sent it.
    schema
        The graph's tables (for labels, missing properties, ``keys()`` and JSON shapes).

    Raises
    ------
    WriteQueryError
        The query would modify the database.
    CypherError
        A syntax error the rewriter detects, or an unsupported feature.
    """
    tokens = [t for t in tokenize(cypher) if t.kind != "COMMENT"]
    while tokens and (tokens[-1].kind == "WS" or tokens[-1].text == ";"):
        tokens.pop()
    if any(t.kind == "OP" and t.text == ";" for t in tokens):
        raise CypherError("Invalid input: only one statement per request (found ';')")
    tokens, timebox = _unwrap_timeboxed(tokens)
    _check_writes(tokens)
    if not strip_ws(tokens):
        raise CypherError("Invalid input: the query is empty")
    ctx = Context(schema)
    transforms: dict[int, tuple] = {}
    columns: list[str] = []
    text = _clauses_to_kuzu(tokens, ctx, transforms, columns)
    return Rewritten(text=text, transforms=transforms, timebox_ms=timebox, columns=columns or None)
