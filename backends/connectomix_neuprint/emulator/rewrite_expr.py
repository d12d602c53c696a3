"""Expression rewriting for the Cypher rewriter (see :mod:`.rewrite` for the rules).

A small recursive scanner over one expression's tokens: primaries (literals,
identifiers, calls, parenthesised groups, lists, maps) become :class:`Atom` s
that carry what is statically known about them (a :data:`Kind`), so property
access, subscripts, ``keys()`` and the APOC JSON functions can be rewritten
for Kuzu's types. Infix operators and keywords pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .cypher_lex import (
    CALLABLE,
    KEYWORDS,
    CypherError,
    Token,
    bq,
    decode_string,
    encode_string,
    match_close,
    next_sig,
    prev_sig,
    render,
    split_top,
    strip_ws,
    with_depth,
)
from .model import HIDDEN_PREFIX, Schema

__all__ = ["Kind", "Atom", "Context", "ExprRewriter", "lambda_null_tests", "int_literal"]

# ------------------------------------------------------------------------------------------------
# expression kinds
# ------------------------------------------------------------------------------------------------

# A "kind" is what the rewriter knows statically about an expression:
#   ("node", tables, neuron)      a node variable of these tables (neuron: label :Neuron required)
#   ("rel", rel_types)            a relationship variable
#   ("path",)                     a path variable
#   ("point",)                    a point (struct x, y, z, srid)
#   ("jsonprop", json_kind)       a JSON-string property (e.g. roiInfo)
#   ("map", map_kind)             a typed map: "count_map" -> "counts" -> int; "string_map" -> str
#   ("jsontext",)                 untyped JSON text (parsed when returned)
#   None                          anything else
Kind = tuple | None


@dataclass
class Atom:
    text: str
    kind: Kind = None
    primary: bool = False  # a complete primary expression (can take .prop or [index])
    var: str | None = None  # the variable it names, if it is one


class Context:
    """Per-query state: the schema, variable kinds, and flags."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.env: dict[str, Kind] = {}

    def node_kind(self, labels: Sequence[str]) -> tuple[str, frozenset, bool]:
        """(table, {table}, needs the neuron flag) for a node with all of ``labels`` (neo4j: AND)."""
        mapped = [self.map_label(label) for label in labels]
        tables = {table for table, _ in mapped}
        if len(tables) != 1:
            raise CypherError(
                f"Invalid input: a node cannot have labels {list(labels)} at once in this dataset "
                f"(they belong to different node tables {sorted(tables)})")
        (table,) = tables
        return table, frozenset(tables), any(flag for _, flag in mapped)

    def map_label(self, label: str) -> tuple[str, bool]:
        if label in self.schema.labels:
            return self.schema.labels[label]
        # neuPrintHTTP also accepts dataset-prefixed labels, e.g. `hemibrain_Neuron`
        base = label.rsplit("_", 1)[-1]
        if "_" in label and base in self.schema.labels:
            return self.schema.labels[base]
        return label, False  # unknown label: Kuzu reports it

    def props_of(self, kind: Kind) -> dict[str, Any] | None:
        """{prop: PropSpec} shared by a node/rel kind's tables, or None if unknown."""
        if kind is None:
            return None
        if kind[0] == "node" and kind[1]:
            merged: dict[str, Any] = {}
            for t in kind[1]:
                if t not in self.schema.nodes:
                    return None
                merged.update(self.schema.nodes[t].props)
            return merged
        if kind[0] == "rel" and kind[1]:
            merged = {}
            for r in kind[1]:
                if r not in self.schema.rels:
                    return None
                merged.update(self.schema.rels[r].props)
            return merged
        return None


# ------------------------------------------------------------------------------------------------
# expressions
# ------------------------------------------------------------------------------------------------

RENAMES = {
    "tointeger": "to_int64", "tofloat": "to_double", "tostring": "to_string", "tolower": "lower",
    "toupper": "upper", "toboolean": "to_bool", "split": "string_split", "relationships": "rels",
}

#: Literal integer lists at least this long are sent to Kuzu as one string (see ExprRewriter._bracket).
_LONG_LIST = 32

_MAP_LOOKUP = "(CASE WHEN size(map_extract({m}, {k})) > 0 THEN list_any_value(map_extract({m}, {k})) END)"


def map_lookup(m: str, k: str) -> str:
    return _MAP_LOOKUP.format(m=m, k=k)


def next_map_kind(map_kind: str) -> Kind:
    if map_kind == "count_map":
        return ("map", "counts")
    return None


def int_literal(tokens: Sequence[Token]) -> int | None:
    toks = strip_ws(tokens)
    sign = 1
    if len(toks) == 2 and toks[0].text == "-" and toks[1].kind == "NUMBER":
        sign, toks = -1, toks[1:]
    if len(toks) == 1 and toks[0].kind == "NUMBER" and re.fullmatch(r"\d+", toks[0].text):
        return sign * int(toks[0].text)
    return None


class ExprRewriter:
    """Rewrites one expression (token list) into Kuzu text, tracking kinds."""

    def __init__(self, ctx: Context, local: Mapping[str, Kind] | None = None, *, in_lambda: bool = False):
        self.ctx = ctx
        self.local = dict(local or {})
        self.in_lambda = in_lambda

    def lookup(self, name: str) -> tuple[bool, Kind]:
        if name in self.local:
            return True, self.local[name]
        if name in self.ctx.env:
            return True, self.ctx.env[name]
        return False, None

    # -- entry points --------------------------------------------------------------------------

    def text(self, tokens: Sequence[Token]) -> str:
        return "".join(a.text for a in self.atoms(tokens))

    def single(self, tokens: Sequence[Token]) -> Atom:
        """Rewrite; if the expression is one primary, keep its kind and variable."""
        atoms = self.atoms(tokens)
        solid = [a for a in atoms if a.text.strip()]
        if len(solid) == 1:
            return solid[0]
        return Atom("".join(a.text for a in atoms), None)

    # -- the scanner ---------------------------------------------------------------------------

    def atoms(self, tokens: Sequence[Token]) -> list[Atom]:
        toks = list(tokens)
        out: list[Atom] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind in ("WS", "COMMENT"):
                out.append(Atom(" " if t.kind == "COMMENT" else t.text))
                i += 1
                continue
            if t.kind == "PARAM":
                raise CypherError(
                    f"Query parameters ({t.text}) are not supported: neuPrint's HTTP API sends no "
                    "parameters, so write the values into the query")
            if t.kind == "STRING":
                value = decode_string(t.text)
                prev = prev_sig(toks, i)
                if prev is not None and toks[prev].kind == "OP" and toks[prev].text == "=~":
                    # Kuzu reads a regex pattern's backslash pairs once more ('a\\\\b' is the regex a\b
                    # there): double them so the pattern RE2 gets is the one the query wrote
                    value = value.replace("\\", "\\\\")
                out.append(Atom(encode_string(value), None, primary=True))
                i += 1
                continue
            if t.kind == "NUMBER":
                num = str(int(t.text, 16)) if t.text.lower().startswith("0x") else t.text
                out.append(Atom("0" + num if num.startswith(".") else num, None, primary=True))
                i += 1
                continue
            if t.kind == "OP" and t.text == ".":
                i = self._property(toks, i, out)
                continue
            if t.kind == "OP" and t.text == "[":
                i = self._bracket(toks, i, out)
                continue
            if t.kind == "OP" and t.text == "(":
                j = match_close(toks, i)
                inner_atoms = self.atoms(toks[i + 1:j])
                solid = [a for a in inner_atoms if a.text.strip()]
                kind = solid[0].kind if len(solid) == 1 else None
                out.append(Atom("(" + "".join(a.text for a in inner_atoms) + ")", kind, primary=True))
                i = j + 1
                continue
            if t.kind == "OP" and t.text == "{":
                j = match_close(toks, i)
                out.append(Atom("{" + self.map_literal(toks[i + 1:j]) + "}", None, primary=True))
                i = j + 1
                continue
            if t.kind == "OP" and t.text == ":":
                i = self._label_predicate(toks, i, out)
                continue
            if t.kind in ("IDENT", "BQ"):
                i = self._identifier(toks, i, out)
                continue
            out.append(Atom(t.text))
            i += 1
        return lambda_null_tests(out) if self.in_lambda else out

    def map_literal(self, toks: Sequence[Token]) -> str:
        parts = []
        for entry in split_top(toks, ","):
            entry = strip_ws(entry)
            if not entry:
                continue
            if len(entry) >= 2 and entry[0].kind in ("IDENT", "BQ", "STRING") and strip_ws(entry[1:])[0].text == ":":
                rest = strip_ws(entry[1:])[1:]
                key = decode_string(entry[0].text) if entry[0].kind == "STRING" else entry[0].name
                parts.append(f"{bq(key)}: {self.text(rest).strip()}")
            else:
                raise CypherError(
                    f"Invalid input: unsupported map entry {render(entry)!r} (map projections are not supported)")
        return ", ".join(parts)

    def _identifier(self, toks: list[Token], i: int, out: list[Atom]) -> int:
        t = toks[i]
        if t.kind == "IDENT":
            # a function call, possibly with a dotted name (apoc.convert.fromJsonMap)
            parts, j = [t.text], i
            if not self.lookup(t.text)[0]:
                while True:
                    a = next_sig(toks, j)
                    b = next_sig(toks, a) if a is not None and toks[a].text == "." else None
                    if b is None or toks[b].kind != "IDENT":
                        break
                    parts.append(toks[b].text)
                    j = b
            c = next_sig(toks, j)
            keyword = len(parts) == 1 and t.text.upper() in KEYWORDS and t.text.upper() not in CALLABLE \
                and not self.lookup(t.text)[0]
            if not keyword and c is not None and toks[c].kind == "OP" and toks[c].text == "(":
                end = match_close(toks, c)
                out.append(self._call(".".join(parts), toks[c + 1:end]))
                return end + 1
            if len(parts) > 1 and parts[0].lower() == "apoc":
                raise CypherError(f"Unknown APOC function {'.'.join(parts)!r}")
            if t.text.upper() in KEYWORDS and not self.lookup(t.text)[0]:
                out.append(Atom(t.text))
                return i + 1
        name = t.name
        bound, kind = self.lookup(name)
        out.append(Atom(bq(name) if bound else t.text, kind, primary=True, var=name))
        return i + 1

    def _last_primary(self, out: list[Atom]) -> int | None:
        j = len(out) - 1
        while j >= 0 and not out[j].text.strip():
            j -= 1
        if j >= 0 and out[j].primary:
            return j
        return None

    def _property(self, toks: list[Token], i: int, out: list[Atom]) -> int:
        b = next_sig(toks, i)
        if b is None or toks[b].kind not in ("IDENT", "BQ"):
            out.append(Atom("."))
            return i + 1
        prop = toks[b].name
        j = self._last_primary(out)
        if j is None:
            raise CypherError(f"Invalid input: '.{prop}' does not follow an expression")
        base = out[j]
        del out[j:]
        kind = base.kind
        props = self.ctx.props_of(kind)
        if props is not None:
            if prop not in props or prop.startswith(HIDDEN_PREFIX):
                out.append(Atom("NULL", None, primary=True))
            else:
                spec = props[prop]
                pk: Kind = ("point",) if spec.type == "POINT" else (
                    ("jsonprop", spec.json_kind) if spec.json_kind else None)
                out.append(Atom(f"{base.text}.{bq(prop)}", pk, primary=True))
        elif kind is not None and kind[0] == "map":
            out.append(Atom(map_lookup(base.text, encode_string(prop)), next_map_kind(kind[1]), primary=True))
        elif kind is not None and kind[0] == "jsontext":
            out.append(Atom(f"__json_get({base.text}, {encode_string(prop)})", ("jsontext",), primary=True))
        else:
            out.append(Atom(f"{base.text}.{bq(prop)}", None, primary=True))
        return b + 1

    def _bracket(self, toks: list[Token], i: int, out: list[Atom]) -> int:
        end = match_close(toks, i)
        inner = toks[i + 1:end]
        j = self._last_primary(out)
        if j is not None:  # subscript or slice
            base = out[j]
            del out[j:]
            out.append(self._subscript(base, inner))
            return end + 1
        s = strip_ws(inner)
        if len(s) >= 3 and s[0].kind == "IDENT" and next_sig(s, 0) is not None and s[next_sig(s, 0)].is_kw("IN"):
            out.append(self._comprehension(s))
            return end + 1
        if s and s[0].text == "(":
            raise CypherError("Pattern comprehensions ([(a)-->(b) | ...]) are not supported by the emulator")
        parts = split_top(inner, ",") if s else []
        ints = [int_literal(p) for p in parts]
        if len(parts) >= _LONG_LIST and all(v is not None for v in ints):
            # Kuzu parses long literal lists slowly (0.7 s for 10,000 ids); a string is cheap
            csv = ",".join(str(v) for v in ints)
            out.append(Atom(f"CAST(string_split('{csv}', ',') AS INT64[])", None, primary=True))
            return end + 1
        items = [self.text(p).strip() for p in parts]
        out.append(Atom("[" + ", ".join(items) + "]", None, primary=True))
        return end + 1

    def _subscript(self, base: Atom, inner: Sequence[Token]) -> Atom:
        parts = split_top(inner, "..")
        kind = base.kind
        if len(parts) == 2:
            lo, hi = (strip_ws(p) for p in parts)
            lo_t = f"({self.text(lo)}) + 1" if lo else "1"
            hi_t = self.text(hi) if hi else f"size({base.text})"
            return Atom(f"list_slice({base.text}, {lo_t}, {hi_t})", None, primary=True)
        key = self.single(inner)
        if kind is not None and kind[0] == "map":
            return Atom(map_lookup(base.text, key.text.strip()), next_map_kind(kind[1]), primary=True)
        if kind is not None and kind[0] == "jsontext":
            idx = int_literal(inner)
            if idx is not None:
                return Atom(f"__json_at({base.text}, {idx})", ("jsontext",), primary=True)
            return Atom(f"__json_get({base.text}, {key.text.strip()})", ("jsontext",), primary=True)
        idx = int_literal(inner)
        if idx is not None:
            return Atom(f"{base.text}[{idx + 1 if idx >= 0 else idx}]", None, primary=True)
        return Atom(f"{base.text}[({key.text.strip()}) + 1]", None, primary=True)

    def _comprehension(self, s: list[Token]) -> Atom:
        var = s[0].name
        rest = s[next_sig(s, next_sig(s, 0)) or 0:]
        # split "list WHERE pred | expr" at depth 0
        where_at, bar_at = None, None
        for k, t, depth in with_depth(rest):
            if depth == 0 and t.is_kw("WHERE") and where_at is None:
                where_at = k
            elif depth == 0 and t.kind == "OP" and t.text == "|" and bar_at is None:
                bar_at = k
        stop = min(x for x in (where_at, bar_at, len(rest)) if x is not None)
        source = self.single(rest[:stop])
        elem_kind: Kind = None
        inner = ExprRewriter(self.ctx, {**self.local, var: elem_kind}, in_lambda=True)
        text = source.text.strip()
        if where_at is not None:
            pred = inner.text(rest[where_at + 1:bar_at if bar_at is not None else len(rest)]).strip()
            text = f"list_filter({text}, {var} -> {pred})"
        if bar_at is not None:
            expr = inner.text(rest[bar_at + 1:]).strip()
            text = f"list_transform({text}, {var} -> {expr})"
        return Atom(text, None, primary=True)

    def _label_predicate(self, toks: list[Token], i: int, out: list[Atom]) -> int:
        """``n:Neuron`` (``n:A:B``) as a boolean expression."""
        j = self._last_primary(out)
        if j is None or out[j].var is None:
            out.append(Atom(":"))
            return i + 1
        base = out[j]
        labels: list[str] = []
        k = i
        while k < len(toks) and toks[k].kind == "OP" and toks[k].text == ":":
            b = next_sig(toks, k)
            if b is None or toks[b].kind not in ("IDENT", "BQ"):
                raise CypherError("Invalid input: expected a label after ':'")
            labels.append(toks[b].name)
            k = b + 1
            nxt = next_sig(toks, b)
            if nxt is not None and toks[nxt].kind == "OP" and toks[nxt].text == ":":
                k = nxt
        del out[j:]
        table, tables, neuron = self.ctx.node_kind(labels)
        kind = base.kind
        known = kind is not None and kind[0] == "node" and kind[1] == tables
        if neuron and not known:
            raise CypherError(f"The label predicate {base.var}:{':'.join(labels)} needs {base.var} to be "
                              f"matched with a label first (e.g. MATCH ({base.var}:Segment))")
        if known:
            cond = f"{base.text}.__neuron" if neuron and not kind[2] else f"{base.text} IS NOT NULL"
        else:
            cond = f"label({base.text}) = {encode_string(table)}"
        out.append(Atom(f"({cond})", None, primary=True))
        return k

    # -- calls -----------------------------------------------------------------------------------

    def _call(self, name: str, arg_tokens: Sequence[Token]) -> Atom:
        low = name.lower()
        if low == "count" and render(strip_ws(arg_tokens)) == "*":
            return Atom("count(*)", None, primary=True)
        raw_args = split_top(arg_tokens, ",") if strip_ws(arg_tokens) else []
        if low in ("apoc.convert.fromjsonmap", "apoc.convert.fromjsonlist"):
            if len(raw_args) != 1:
                raise CypherError(f"{name} takes one argument, got {len(raw_args)}")
            arg = self.single(raw_args[0])
            if low.endswith("map") and arg.kind is not None and arg.kind[0] == "jsonprop" \
                    and arg.kind[1] in ("count_map", "string_map"):
                return Atom(f"__json_{arg.kind[1]}({arg.text.strip()})", ("map", arg.kind[1]), primary=True)
            return Atom(f"__json_text({arg.text.strip()})", ("jsontext",), primary=True)
        if low.startswith("apoc."):
            if low == "apoc.map.removekeys":
                raise CypherError("apoc.map.removeKeys is supported only as a whole RETURN item "
                                  "(RETURN apoc.map.removeKeys(n, [...]) AS x)")
            raise CypherError(f"APOC function {name} is not supported by the emulator")
        if low == "exists":
            if raw_args and strip_ws(raw_args[0]) and strip_ws(raw_args[0])[0].text == "(":
                raise CypherError("Pattern predicates exists((a)-[..]->(b)) are not supported by the emulator")
            if len(raw_args) != 1:
                raise CypherError(f"exists() takes one argument, got {len(raw_args)}")
            arg_text = self.text(raw_args[0]).strip()
            if self.in_lambda:
                return Atom(f"(size(list_distinct([{arg_text}])) > 0)", None, primary=True)
            return Atom(f"({arg_text} IS NOT NULL)", None, primary=True)
        if low in ("all", "any", "none", "single") and raw_args:
            # quantifiers: all(x IN list WHERE pred) -> a count of list_filter (Kuzu 0.11.3's own
            # quantifiers crash on lists built per row)
            s = strip_ws(arg_tokens)
            nxt = next_sig(s, 0) if s else None
            if s and s[0].kind in ("IDENT", "BQ") and nxt is not None and s[nxt].is_kw("IN"):
                var = s[0].name
                rest = s[nxt + 1:]
                where_at = next((k for k, t in enumerate(rest) if t.is_kw("WHERE")), None)
                if where_at is None:
                    raise CypherError(f"{name}(x IN list WHERE predicate) needs a WHERE")
                source = self.text(rest[:where_at]).strip()
                inner = ExprRewriter(self.ctx, {**self.local, var: None}, in_lambda=True)
                pred = inner.text(rest[where_at + 1:]).strip()
                hits = f"size(list_filter({source}, {var} -> {pred}))"
                test = {"all": f"= size({source})", "any": "> 0", "none": "= 0", "single": "= 1"}[low]
                return Atom(f"({hits} {test})", None, primary=True)
        args = [self.single(a) for a in raw_args]
        texts = [a.text.strip() for a in args]
        if low == "keys" and len(args) == 1:
            return Atom(self._keys(args[0]), None, primary=True)
        if low == "labels" and len(args) == 1:
            kind = args[0].kind
            if kind is not None and kind[0] == "node" and len(kind[1]) == 1:
                (table,) = kind[1]
                if table == "Segment":
                    return Atom(f"(CASE WHEN {texts[0]}.__neuron THEN ['Segment', 'Neuron'] "
                                 f"ELSE ['Segment'] END)", None, primary=True)
                return Atom(f"[{encode_string(table)}]", None, primary=True)
            return Atom(f"[label({texts[0]})]", None, primary=True)
        if low == "type" and len(args) == 1:
            return Atom(f"label({texts[0]})", None, primary=True)
        if low == "id" and len(args) == 1:
            return Atom(f"offset(id({texts[0]}))", None, primary=True)
        if low == "substring" and len(args) in (2, 3):
            length = texts[2] if len(args) == 3 else f"size({texts[0]})"
            return Atom(f"substring({texts[0]}, ({texts[1]}) + 1, {length})", None, primary=True)
        if low == "nodes" and len(args) == 1:
            return Atom(f"nodes({texts[0]})", None, primary=True)
        distinct = ""
        first = strip_ws(raw_args[0]) if raw_args else []
        if first and first[0].is_kw("DISTINCT"):
            distinct = "DISTINCT "
            texts[0] = self.text(first[1:]).strip()
        fname = RENAMES.get(low, name)
        return Atom(f"{fname}({distinct}{', '.join(texts)})", None, primary=True)

    def _keys(self, arg: Atom) -> str:
        kind = arg.kind
        text = arg.text.strip()
        if kind is not None and kind[0] == "map":
            return f"map_keys({text})"
        if kind is not None and kind[0] == "jsontext":
            return f"__json_keys({text})"
        props = self.ctx.props_of(kind)
        if props is not None and arg.var is not None:
            names = [p for p in props if not p.startswith(HIDDEN_PREFIX)]
            if not names:
                return "CAST([] AS STRING[])"
            # '' marks absent properties (no property has an empty name); see lambda_null_tests
            items = ", ".join(f"CASE WHEN {text}.{bq(p)} IS NULL THEN '' ELSE {encode_string(p)} END"
                              for p in names)
            return f"list_filter([{items}], __k -> __k <> '')"
        return f"keys({text})"


def lambda_null_tests(atoms: list[Atom]) -> list[Atom]:
    """``x IS [NOT] NULL`` -> ``size(list_distinct([x])) = 0 / > 0`` inside lambda bodies.

    Kuzu 0.11.3 crashes (segfault) when ``IS [NOT] NULL`` appears in the body
    of ``list_filter``/``list_transform``/quantifiers over more than one
    vector of rows; ``list_distinct`` drops nulls, so this is the same test.
    """
    out: list[Atom] = []
    k = 0
    while k < len(atoms):
        a = atoms[k]
        if a.text.strip().upper() == "IS" and out:
            j = len(out) - 1
            while j >= 0 and not out[j].text.strip():
                j -= 1
            rest = [x for x in atoms[k + 1:k + 6] if x.text.strip()]
            words = [x.text.strip().upper() for x in rest[:2]]
            if j >= 0 and out[j].primary and (words[:1] == ["NULL"] or words[:2] == ["NOT", "NULL"]):
                negate = words[0] == "NOT"
                operand = out[j].text
                del out[j:]
                out.append(Atom(f"(size(list_distinct([{operand}])) {'>' if negate else '='} 0)", None,
                                 primary=True))
                # skip the IS, optional NOT, NULL atoms and the blanks between them
                seen = 0
                k += 1
                while k < len(atoms) and seen < (2 if negate else 1):
                    if atoms[k].text.strip():
                        seen += 1
                    k += 1
                continue
        out.append(a)
        k += 1
    return out


