"""Rewrite neo4j Cypher, as neuPrint clients send it, into the Cypher dialect of Kuzu.

Pure text-to-text: a tokenizer, a clause splitter and a small recursive parser
of *expressions* (primaries, calls, subscripts, property access). Infix
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import HIDDEN_PREFIX, Schema

__all__ = [
    "Token",
    "CypherError",
    "WriteQueryError",
    "Rewritten",
    "tokenize",
    "decode_string",
    "encode_string",
    "rewrite",
]


class CypherError(ValueError):
    """A query the emulator cannot run (bad syntax it detects, or an unsupported feature)."""


class WriteQueryError(CypherError):
    """A query that would modify the database; the emulator is read-only."""


# ------------------------------------------------------------------------------------------------
# tokens
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is WS, COMMENT, STRING, IDENT, BQ (backticked), NUMBER, PARAM or OP."""

    kind: str
    text: str

    def is_kw(self, *words: str) -> bool:
        return self.kind == "IDENT" and self.text.upper() in words

    @property
    def name(self) -> str:
        """The identifier a token names (backticks removed), or its text."""
        if self.kind == "BQ":
            return self.text[1:-1].replace("``", "`")
        return self.text


_TOKEN_RE = re.compile(
    r"""
    (?P<WS>\s+)
  | (?P<COMMENT>//[^\n]*|/\*.*?\*/)
  | (?P<STRING>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<BQ>`(?:[^`]|``)*`)
  | (?P<NUMBER>0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<PARAM>\$(?:[A-Za-z_][A-Za-z0-9_]*|\d+|`[^`]*`))
  | (?P<IDENT>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<OP>=~|<>|!=|<=|>=|->|<-|\.\.|\|\||[-+*/%^=<>(){}\[\],.:;|])
    """,
    re.VERBOSE | re.DOTALL,
)


def tokenize(text: str) -> list[Token]:
    """Split Cypher text into tokens.

    Raises
    ------
    CypherError
        An unterminated string, backtick identifier or comment, or a character
        Cypher does not use.
    """
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            what = {"'": "string literal", '"': "string literal", "`": "backtick identifier"}.get(ch)
            if what:
                raise CypherError(f"Invalid input: unterminated {what} at offset {pos}")
            if text.startswith("/*", pos):
                raise CypherError(f"Invalid input: unterminated comment at offset {pos}")
            raise CypherError(f"Invalid input {ch!r} at offset {pos}")
        out.append(Token(m.lastgroup, m.group()))
        pos = m.end()
    return out


def render(tokens: Sequence[Token]) -> str:
    return "".join(t.text for t in tokens)


_ESC = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "/": "/"}


def decode_string(literal: str) -> str:
    """The value of a neo4j string literal (single or double quoted).

    >>> decode_string(r"'O\\'Brien\\n\\u00e9'")
    "O'Brien\\né"
    """
    body = literal[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif nxt == "U" and re.fullmatch(r"[0-9a-fA-F]{8}", body[i + 2:i + 10]):
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        elif nxt in _ESC:
            out.append(_ESC[nxt])
            i += 2
        else:
            raise CypherError(f"Invalid input: unknown escape sequence '\\{nxt}' in string literal {literal}")
    return "".join(out)


def encode_string(value: str) -> str:
    """A Kuzu string literal holding exactly ``value`` (Kuzu knows only ``\\\\`` and ``\\'``)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


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
# clause splitting
# ------------------------------------------------------------------------------------------------

_CLAUSE_WORDS = {"MATCH", "OPTIONAL", "WHERE", "WITH", "RETURN", "UNWIND", "ORDER", "SKIP", "LIMIT", "UNION",
                 "CALL", "YIELD"}
_WRITE_WORDS = {"CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "ALTER", "LOAD", "COPY",
                "INSTALL", "ATTACH", "USE", "IMPORT", "EXPORT", "CHECKPOINT", "BEGIN", "COMMIT", "ROLLBACK",
                "FOREACH", "UNINSTALL"}
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CALLABLE = {"COUNT", "EXISTS", "ALL", "ANY", "NONE", "SINGLE"}
_KEYWORDS = {"AND", "OR", "XOR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE", "CASE", "WHEN", "THEN", "ELSE",
             "END", "DISTINCT", "STARTS", "ENDS", "CONTAINS", "AS", "ASC", "DESC", "ASCENDING", "DESCENDING",
             "BY", "ALL", "ANY", "NONE", "SINGLE", "EXISTS", "COUNT"} | _CLAUSE_WORDS


def _is_keyword_position(tokens: Sequence[Token], i: int) -> bool:
    """Whether IDENT ``tokens[i]`` is used as a keyword: not a property name, label or map key."""
    prev = _prev_sig(tokens, i)
    if prev is not None and (tokens[prev].text in (".", ":") or tokens[prev].is_kw("AS")):
        return False
    nxt = _next_sig(tokens, i)
    if nxt is not None and tokens[nxt].text == ":":
        return False
    if tokens[i].text.upper() == "ORDER" and (nxt is None or not tokens[nxt].is_kw("BY")):
        return False
    return True


def _prev_sig(tokens: Sequence[Token], i: int) -> int | None:
    j = i - 1
    while j >= 0 and tokens[j].kind in ("WS", "COMMENT"):
        j -= 1
    return j if j >= 0 else None


def _next_sig(tokens: Sequence[Token], i: int) -> int | None:
    j = i + 1
    while j < len(tokens) and tokens[j].kind in ("WS", "COMMENT"):
        j += 1
    return j if j < len(tokens) else None


def _match_close(tokens: Sequence[Token], i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    stack = [_OPEN[tokens[i].text]]
    j = i + 1
    while j < len(tokens):
        t = tokens[j].text if tokens[j].kind == "OP" else None
        if t in _OPEN:
            stack.append(_OPEN[t])
        elif t in (")", "]", "}"):
            if t != stack[-1]:
                raise CypherError(f"Invalid input: unbalanced {t!r} at token {j}")
            stack.pop()
            if not stack:
                return j
        j += 1
    raise CypherError(f"Invalid input: {tokens[i].text!r} is never closed")


def _split_clauses(tokens: Sequence[Token]) -> list[tuple[str, list[Token]]]:
    """Split at depth-0 clause keywords: ``[(KEYWORD or "", tokens including the keyword)]``."""
    clauses: list[tuple[str, list[Token]]] = [("", [])]
    depth = 0
    for i, t in enumerate(tokens):
        if t.kind == "OP" and t.text in _OPEN:
            depth += 1
        elif t.kind == "OP" and t.text in (")", "]", "}"):
            depth -= 1
        if depth == 0 and t.kind == "IDENT" and t.text.upper() in _CLAUSE_WORDS and _is_keyword_position(tokens, i):
            word = t.text.upper()
            prev_kw = clauses[-1][0]
            if word == "MATCH" and prev_kw == "OPTIONAL" and all(x.kind == "WS" for x in clauses[-1][1][1:]):
                clauses[-1][1].append(t)
                continue
            clauses.append((word, [t]))
        else:
            clauses[-1][1].append(t)
    if not clauses[0][1]:
        clauses.pop(0)
    return clauses


def _split_top(tokens: Sequence[Token], sep: str = ",") -> list[list[Token]]:
    """Split at depth-0 ``sep`` operators."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "OP" and t.text in _OPEN:
            depth += 1
        elif t.kind == "OP" and t.text in (")", "]", "}"):
            depth -= 1
        if depth == 0 and t.kind == "OP" and t.text == sep:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def _strip(tokens: Sequence[Token]) -> list[Token]:
    toks = list(tokens)
    while toks and toks[0].kind == "WS":
        toks.pop(0)
    while toks and toks[-1].kind == "WS":
        toks.pop()
    return toks


def _alias_split(item: Sequence[Token]) -> tuple[list[Token], Token | None]:
    """``expr AS alias`` -> (expr tokens, alias token); no depth-0 AS -> (item, None)."""
    depth = 0
    last_as = None
    for i, t in enumerate(item):
        if t.kind == "OP" and t.text in _OPEN:
            depth += 1
        elif t.kind == "OP" and t.text in (")", "]", "}"):
            depth -= 1
        elif depth == 0 and t.is_kw("AS"):
            last_as = i
    if last_as is None:
        return list(item), None
    rest = _strip(item[last_as + 1:])
    if len(rest) != 1 or rest[0].kind not in ("IDENT", "BQ"):
        raise CypherError(f"Invalid input: expected a variable name after AS, got {render(rest)!r}")
    return list(item[:last_as]), rest[0]


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
class _Atom:
    text: str
    kind: Kind = None
    primary: bool = False  # a complete primary expression (can take .prop or [index])
    var: str | None = None  # the variable it names, if it is one


class _Ctx:
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

_RENAMES = {
    "tointeger": "to_int64", "tofloat": "to_double", "tostring": "to_string", "tolower": "lower",
    "toupper": "upper", "toboolean": "to_bool", "split": "string_split", "relationships": "rels",
}

#: Literal integer lists at least this long are sent to Kuzu as one string (see _Expr._bracket).
_LONG_LIST = 32

_MAP_LOOKUP = "(CASE WHEN size(map_extract({m}, {k})) > 0 THEN list_any_value(map_extract({m}, {k})) END)"


def _map_lookup(m: str, k: str) -> str:
    return _MAP_LOOKUP.format(m=m, k=k)


def _next_map_kind(map_kind: str) -> Kind:
    if map_kind == "count_map":
        return ("map", "counts")
    return None


def _int_literal(tokens: Sequence[Token]) -> int | None:
    toks = _strip(tokens)
    sign = 1
    if len(toks) == 2 and toks[0].text == "-" and toks[1].kind == "NUMBER":
        sign, toks = -1, toks[1:]
    if len(toks) == 1 and toks[0].kind == "NUMBER" and re.fullmatch(r"\d+", toks[0].text):
        return sign * int(toks[0].text)
    return None


class _Expr:
    """Rewrites one expression (token list) into Kuzu text, tracking kinds."""

    def __init__(self, ctx: _Ctx, local: Mapping[str, Kind] | None = None, *, in_lambda: bool = False):
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

    def single(self, tokens: Sequence[Token]) -> _Atom:
        """Rewrite; if the expression is one primary, keep its kind and variable."""
        atoms = self.atoms(tokens)
        solid = [a for a in atoms if a.text.strip()]
        if len(solid) == 1:
            return solid[0]
        return _Atom("".join(a.text for a in atoms), None)

    # -- the scanner ---------------------------------------------------------------------------

    def atoms(self, tokens: Sequence[Token]) -> list[_Atom]:
        toks = list(tokens)
        out: list[_Atom] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind in ("WS", "COMMENT"):
                out.append(_Atom(" " if t.kind == "COMMENT" else t.text))
                i += 1
                continue
            if t.kind == "PARAM":
                raise CypherError(
                    f"Query parameters ({t.text}) are not supported: neuPrint's HTTP API sends no "
                    "parameters, so write the values into the query")
            if t.kind == "STRING":
                out.append(_Atom(encode_string(decode_string(t.text)), None, primary=True))
                i += 1
                continue
            if t.kind == "NUMBER":
                num = str(int(t.text, 16)) if t.text.lower().startswith("0x") else t.text
                out.append(_Atom("0" + num if num.startswith(".") else num, None, primary=True))
                i += 1
                continue
            if t.kind == "OP" and t.text == ".":
                i = self._property(toks, i, out)
                continue
            if t.kind == "OP" and t.text == "[":
                i = self._bracket(toks, i, out)
                continue
            if t.kind == "OP" and t.text == "(":
                j = _match_close(toks, i)
                inner_atoms = self.atoms(toks[i + 1:j])
                solid = [a for a in inner_atoms if a.text.strip()]
                kind = solid[0].kind if len(solid) == 1 else None
                out.append(_Atom("(" + "".join(a.text for a in inner_atoms) + ")", kind, primary=True))
                i = j + 1
                continue
            if t.kind == "OP" and t.text == "{":
                j = _match_close(toks, i)
                out.append(_Atom("{" + self._map_literal(toks[i + 1:j]) + "}", None, primary=True))
                i = j + 1
                continue
            if t.kind == "OP" and t.text == ":":
                i = self._label_predicate(toks, i, out)
                continue
            if t.kind in ("IDENT", "BQ"):
                i = self._identifier(toks, i, out)
                continue
            out.append(_Atom(t.text))
            i += 1
        return _lambda_null_tests(out) if self.in_lambda else out

    def _map_literal(self, toks: Sequence[Token]) -> str:
        parts = []
        for entry in _split_top(toks, ","):
            entry = _strip(entry)
            if not entry:
                continue
            if len(entry) >= 2 and entry[0].kind in ("IDENT", "BQ", "STRING") and _strip(entry[1:])[0].text == ":":
                rest = _strip(entry[1:])[1:]
                key = decode_string(entry[0].text) if entry[0].kind == "STRING" else entry[0].name
                parts.append(f"{_bq(key)}: {self.text(rest).strip()}")
            else:
                raise CypherError(
                    f"Invalid input: unsupported map entry {render(entry)!r} (map projections are not supported)")
        return ", ".join(parts)

    def _identifier(self, toks: list[Token], i: int, out: list[_Atom]) -> int:
        t = toks[i]
        if t.kind == "IDENT":
            # a function call, possibly with a dotted name (apoc.convert.fromJsonMap)
            parts, j = [t.text], i
            if not self.lookup(t.text)[0]:
                while True:
                    a = _next_sig(toks, j)
                    b = _next_sig(toks, a) if a is not None and toks[a].text == "." else None
                    if b is None or toks[b].kind != "IDENT":
                        break
                    parts.append(toks[b].text)
                    j = b
            c = _next_sig(toks, j)
            keyword = len(parts) == 1 and t.text.upper() in _KEYWORDS and t.text.upper() not in _CALLABLE \
                and not self.lookup(t.text)[0]
            if not keyword and c is not None and toks[c].kind == "OP" and toks[c].text == "(":
                end = _match_close(toks, c)
                out.append(self._call(".".join(parts), toks[c + 1:end]))
                return end + 1
            if len(parts) > 1 and parts[0].lower() == "apoc":
                raise CypherError(f"Unknown APOC function {'.'.join(parts)!r}")
            if t.text.upper() in _KEYWORDS and not self.lookup(t.text)[0]:
                out.append(_Atom(t.text))
                return i + 1
        name = t.name
        bound, kind = self.lookup(name)
        out.append(_Atom(_bq(name) if bound else t.text, kind, primary=True, var=name))
        return i + 1

    def _last_primary(self, out: list[_Atom]) -> int | None:
        j = len(out) - 1
        while j >= 0 and not out[j].text.strip():
            j -= 1
        if j >= 0 and out[j].primary:
            return j
        return None

    def _property(self, toks: list[Token], i: int, out: list[_Atom]) -> int:
        b = _next_sig(toks, i)
        if b is None or toks[b].kind not in ("IDENT", "BQ"):
            out.append(_Atom("."))
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
                out.append(_Atom("NULL", None, primary=True))
            else:
                spec = props[prop]
                pk: Kind = ("point",) if spec.type == "POINT" else (
                    ("jsonprop", spec.json_kind) if spec.json_kind else None)
                out.append(_Atom(f"{base.text}.{_bq(prop)}", pk, primary=True))
        elif kind is not None and kind[0] == "map":
            out.append(_Atom(_map_lookup(base.text, encode_string(prop)), _next_map_kind(kind[1]), primary=True))
        elif kind is not None and kind[0] == "jsontext":
            out.append(_Atom(f"__json_get({base.text}, {encode_string(prop)})", ("jsontext",), primary=True))
        else:
            out.append(_Atom(f"{base.text}.{_bq(prop)}", None, primary=True))
        return b + 1

    def _bracket(self, toks: list[Token], i: int, out: list[_Atom]) -> int:
        end = _match_close(toks, i)
        inner = toks[i + 1:end]
        j = self._last_primary(out)
        if j is not None:  # subscript or slice
            base = out[j]
            del out[j:]
            out.append(self._subscript(base, inner))
            return end + 1
        s = _strip(inner)
        if len(s) >= 3 and s[0].kind == "IDENT" and _next_sig(s, 0) is not None and s[_next_sig(s, 0)].is_kw("IN"):
            out.append(self._comprehension(s))
            return end + 1
        if s and s[0].text == "(":
            raise CypherError("Pattern comprehensions ([(a)-->(b) | ...]) are not supported by the emulator")
        parts = _split_top(inner, ",") if s else []
        ints = [_int_literal(p) for p in parts]
        if len(parts) >= _LONG_LIST and all(v is not None for v in ints):
            # Kuzu parses long literal lists slowly (0.7 s for 10,000 ids); a string is cheap
            csv = ",".join(str(v) for v in ints)
            out.append(_Atom(f"CAST(string_split('{csv}', ',') AS INT64[])", None, primary=True))
            return end + 1
        items = [self.text(p).strip() for p in parts]
        out.append(_Atom("[" + ", ".join(items) + "]", None, primary=True))
        return end + 1

    def _subscript(self, base: _Atom, inner: Sequence[Token]) -> _Atom:
        parts = _split_top(inner, "..")
        kind = base.kind
        if len(parts) == 2:
            lo, hi = (_strip(p) for p in parts)
            lo_t = f"({self.text(lo)}) + 1" if lo else "1"
            hi_t = self.text(hi) if hi else f"size({base.text})"
            return _Atom(f"list_slice({base.text}, {lo_t}, {hi_t})", None, primary=True)
        key = self.single(inner)
        if kind is not None and kind[0] == "map":
            return _Atom(_map_lookup(base.text, key.text.strip()), _next_map_kind(kind[1]), primary=True)
        if kind is not None and kind[0] == "jsontext":
            idx = _int_literal(inner)
            if idx is not None:
                return _Atom(f"__json_at({base.text}, {idx})", ("jsontext",), primary=True)
            return _Atom(f"__json_get({base.text}, {key.text.strip()})", ("jsontext",), primary=True)
        idx = _int_literal(inner)
        if idx is not None:
            return _Atom(f"{base.text}[{idx + 1 if idx >= 0 else idx}]", None, primary=True)
        return _Atom(f"{base.text}[({key.text.strip()}) + 1]", None, primary=True)

    def _comprehension(self, s: list[Token]) -> _Atom:
        var = s[0].name
        rest = s[_next_sig(s, _next_sig(s, 0)) or 0:]
        # split "list WHERE pred | expr" at depth 0
        depth, where_at, bar_at = 0, None, None
        for k, t in enumerate(rest):
            if t.kind == "OP" and t.text in _OPEN:
                depth += 1
            elif t.kind == "OP" and t.text in (")", "]", "}"):
                depth -= 1
            elif depth == 0 and t.is_kw("WHERE") and where_at is None:
                where_at = k
            elif depth == 0 and t.kind == "OP" and t.text == "|" and bar_at is None:
                bar_at = k
        stop = min(x for x in (where_at, bar_at, len(rest)) if x is not None)
        source = self.single(rest[:stop])
        elem_kind: Kind = None
        inner = _Expr(self.ctx, {**self.local, var: elem_kind}, in_lambda=True)
        text = source.text.strip()
        if where_at is not None:
            pred = inner.text(rest[where_at + 1:bar_at if bar_at is not None else len(rest)]).strip()
            text = f"list_filter({text}, {var} -> {pred})"
        if bar_at is not None:
            expr = inner.text(rest[bar_at + 1:]).strip()
            text = f"list_transform({text}, {var} -> {expr})"
        return _Atom(text, None, primary=True)

    def _label_predicate(self, toks: list[Token], i: int, out: list[_Atom]) -> int:
        """``n:Neuron`` (``n:A:B``) as a boolean expression."""
        j = self._last_primary(out)
        if j is None or out[j].var is None:
            out.append(_Atom(":"))
            return i + 1
        base = out[j]
        labels: list[str] = []
        k = i
        while k < len(toks) and toks[k].kind == "OP" and toks[k].text == ":":
            b = _next_sig(toks, k)
            if b is None or toks[b].kind not in ("IDENT", "BQ"):
                raise CypherError("Invalid input: expected a label after ':'")
            labels.append(toks[b].name)
            k = b + 1
            nxt = _next_sig(toks, b)
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
        out.append(_Atom(f"({cond})", None, primary=True))
        return k

    # -- calls -----------------------------------------------------------------------------------

    def _call(self, name: str, arg_tokens: Sequence[Token]) -> _Atom:
        low = name.lower()
        if low == "count" and render(_strip(arg_tokens)) == "*":
            return _Atom("count(*)", None, primary=True)
        raw_args = _split_top(arg_tokens, ",") if _strip(arg_tokens) else []
        if low in ("apoc.convert.fromjsonmap", "apoc.convert.fromjsonlist"):
            if len(raw_args) != 1:
                raise CypherError(f"{name} takes one argument, got {len(raw_args)}")
            arg = self.single(raw_args[0])
            if low.endswith("map") and arg.kind is not None and arg.kind[0] == "jsonprop" \
                    and arg.kind[1] in ("count_map", "string_map"):
                return _Atom(f"__json_{arg.kind[1]}({arg.text.strip()})", ("map", arg.kind[1]), primary=True)
            return _Atom(f"__json_text({arg.text.strip()})", ("jsontext",), primary=True)
        if low.startswith("apoc."):
            if low == "apoc.map.removekeys":
                raise CypherError("apoc.map.removeKeys is supported only as a whole RETURN item "
                                  "(RETURN apoc.map.removeKeys(n, [...]) AS x)")
            raise CypherError(f"APOC function {name} is not supported by the emulator")
        if low == "exists":
            if raw_args and _strip(raw_args[0]) and _strip(raw_args[0])[0].text == "(":
                raise CypherError("Pattern predicates exists((a)-[..]->(b)) are not supported by the emulator")
            if len(raw_args) != 1:
                raise CypherError(f"exists() takes one argument, got {len(raw_args)}")
            arg_text = self.text(raw_args[0]).strip()
            if self.in_lambda:
                return _Atom(f"(size(list_distinct([{arg_text}])) > 0)", None, primary=True)
            return _Atom(f"({arg_text} IS NOT NULL)", None, primary=True)
        if low in ("all", "any", "none", "single") and raw_args:
            # quantifiers: all(x IN list WHERE pred) -> a count of list_filter (Kuzu 0.11.3's own
            # quantifiers crash on lists built per row)
            s = _strip(arg_tokens)
            nxt = _next_sig(s, 0) if s else None
            if s and s[0].kind in ("IDENT", "BQ") and nxt is not None and s[nxt].is_kw("IN"):
                var = s[0].name
                rest = s[nxt + 1:]
                where_at = next((k for k, t in enumerate(rest) if t.is_kw("WHERE")), None)
                if where_at is None:
                    raise CypherError(f"{name}(x IN list WHERE predicate) needs a WHERE")
                source = self.text(rest[:where_at]).strip()
                inner = _Expr(self.ctx, {**self.local, var: None}, in_lambda=True)
                pred = inner.text(rest[where_at + 1:]).strip()
                hits = f"size(list_filter({source}, {var} -> {pred}))"
                test = {"all": f"= size({source})", "any": "> 0", "none": "= 0", "single": "= 1"}[low]
                return _Atom(f"({hits} {test})", None, primary=True)
        args = [self.single(a) for a in raw_args]
        texts = [a.text.strip() for a in args]
        if low == "keys" and len(args) == 1:
            return _Atom(self._keys(args[0]), None, primary=True)
        if low == "labels" and len(args) == 1:
            kind = args[0].kind
            if kind is not None and kind[0] == "node" and len(kind[1]) == 1:
                (table,) = kind[1]
                if table == "Segment":
                    return _Atom(f"(CASE WHEN {texts[0]}.__neuron THEN ['Segment', 'Neuron'] "
                                 f"ELSE ['Segment'] END)", None, primary=True)
                return _Atom(f"[{encode_string(table)}]", None, primary=True)
            return _Atom(f"[label({texts[0]})]", None, primary=True)
        if low == "type" and len(args) == 1:
            return _Atom(f"label({texts[0]})", None, primary=True)
        if low == "id" and len(args) == 1:
            return _Atom(f"offset(id({texts[0]}))", None, primary=True)
        if low == "substring" and len(args) in (2, 3):
            length = texts[2] if len(args) == 3 else f"size({texts[0]})"
            return _Atom(f"substring({texts[0]}, ({texts[1]}) + 1, {length})", None, primary=True)
        if low == "nodes" and len(args) == 1:
            return _Atom(f"nodes({texts[0]})", None, primary=True)
        distinct = ""
        first = _strip(raw_args[0]) if raw_args else []
        if first and first[0].is_kw("DISTINCT"):
            distinct = "DISTINCT "
            texts[0] = self.text(first[1:]).strip()
        fname = _RENAMES.get(low, name)
        return _Atom(f"{fname}({distinct}{', '.join(texts)})", None, primary=True)

    def _keys(self, arg: _Atom) -> str:
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
            # '' marks absent properties (no property has an empty name); see _lambda_null_tests
            items = ", ".join(f"CASE WHEN {text}.{_bq(p)} IS NULL THEN '' ELSE {encode_string(p)} END"
                              for p in names)
            return f"list_filter([{items}], __k -> __k <> '')"
        return f"keys({text})"


def _lambda_null_tests(atoms: list[_Atom]) -> list[_Atom]:
    """``x IS [NOT] NULL`` -> ``size(list_distinct([x])) = 0 / > 0`` inside lambda bodies.

    Kuzu 0.11.3 crashes (segfault) when ``IS [NOT] NULL`` appears in the body
    of ``list_filter``/``list_transform``/quantifiers over more than one
    vector of rows; ``list_distinct`` drops nulls, so this is the same test.
    """
    out: list[_Atom] = []
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
                out.append(_Atom(f"(size(list_distinct([{operand}])) {'>' if negate else '='} 0)", None,
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


# ------------------------------------------------------------------------------------------------
# patterns
# ------------------------------------------------------------------------------------------------


def _rewrite_pattern(tokens: list[Token], ctx: _Ctx) -> str:
    """Rewrite a MATCH pattern: labels of node patterns, variable kinds, property maps."""
    out: list[str] = []
    i = 0
    path_var: str | None = None
    while i < len(tokens):
        t = tokens[i]
        if t.kind == "OP" and t.text == "(":
            j = _match_close(tokens, i)
            out.append(_node_pattern(tokens[i + 1:j], ctx))
            i = j + 1
            continue
        if t.kind == "OP" and t.text == "[":
            j = _match_close(tokens, i)
            out.append(_rel_pattern(tokens[i + 1:j], ctx))
            i = j + 1
            continue
        if t.kind in ("IDENT", "BQ"):
            nxt = _next_sig(tokens, i)
            if nxt is not None and tokens[nxt].text == "=":
                path_var = t.name
                ctx.env[path_var] = ("path",)
                out.append(_bq(path_var))
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
            end = _match_close(tokens, k)
            if _strip(tokens[end + 1:]):
                raise CypherError(f"Invalid input in pattern: {render(tokens)!r}")
            return tokens[:k], tokens[k + 1:end]
    return tokens, None


def _labels_and_var(head: list[Token], what: str) -> tuple[str | None, list[str], list[Token]]:
    toks = _strip(head)
    var = None
    if toks and toks[0].kind in ("IDENT", "BQ"):
        var = toks[0].name
        toks = _strip(toks[1:])
    labels: list[str] = []
    while toks and toks[0].kind == "OP" and toks[0].text == ":":
        toks = _strip(toks[1:])
        if not toks or toks[0].kind not in ("IDENT", "BQ"):
            raise CypherError(f"Invalid input: expected a {what} after ':'")
        labels.append(toks[0].name)
        toks = _strip(toks[1:])
        while toks and toks[0].kind == "OP" and toks[0].text == "|" and what == "relationship type":
            toks = _strip(toks[1:])
            if toks and toks[0].text == ":":
                toks = _strip(toks[1:])
            labels.append(toks[0].name)
            toks = _strip(toks[1:])
    return var, labels, toks


def _node_pattern(inner: list[Token], ctx: _Ctx) -> str:
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
        label_text = ":" + _bq(table)
    else:
        label_text = ""
        if var is not None and var not in ctx.env:
            ctx.env[var] = ("node", frozenset(), False)
    if props is not None:
        body = _Expr(ctx)._map_literal(props)
        if body:
            entries.append(body)
    prop_text = " {" + ", ".join(entries) + "}" if entries else ""
    return "(" + (_bq(var) if var else "") + label_text + prop_text + ")"


def _rel_pattern(inner: list[Token], ctx: _Ctx) -> str:
    head, props = _split_props(inner)
    var, types, rest = _labels_and_var(head, "relationship type")
    rng = render(rest).strip()
    if rng and not re.fullmatch(r"\*\s*(\d+)?\s*(\.\.\s*(\d+)?)?", rng):
        raise CypherError(f"Invalid input in relationship pattern [{render(inner)}]")
    if var is not None:
        ctx.env[var] = ("relpath",) if rng else ("rel", frozenset(types))
    text = "[" + (_bq(var) if var else "")
    if types:
        text += ":" + "|".join(_bq(t) for t in types)
    if rng:
        text += rng.replace(" ", "")
    if props is not None:
        body = _Expr(ctx)._map_literal(props)
        if body:
            text += " {" + body + "}"
    return text + "]"


# ------------------------------------------------------------------------------------------------
# clauses
# ------------------------------------------------------------------------------------------------


def _check_writes(tokens: Sequence[Token]) -> None:
    for i, t in enumerate(tokens):
        if t.kind != "IDENT" or not _is_keyword_position(tokens, i):
            continue
        word = t.text.upper()
        if word in _WRITE_WORDS:
            raise WriteQueryError(f"not authorized to modify the database ({word} is a write operation)")
        if word == "CALL":
            raise WriteQueryError("not authorized to modify the database (only CALL apoc.cypher.runTimeboxed "
                                  "is allowed)")


def _projection(clause: list[Token], ctx: _Ctx, *, is_return: bool, transforms: dict[int, tuple],
                columns: list[str] | None = None) -> str:
    """WITH/RETURN items: rewrite expressions, bind aliases, note output transforms."""
    kw = clause[0]
    body = clause[1:]
    s = _strip(body)
    prefix = ""
    if s and s[0].is_kw("DISTINCT"):
        prefix = "DISTINCT "
        body = s[1:]
    if _strip(body) and render(_strip(body)) == "*":
        return f"{kw.text.upper()} {prefix}*"
    items_out = []
    new_env: dict[str, Kind] = {}
    for col, item in enumerate(_split_top(body, ",")):
        expr_toks, alias = _alias_split(item)
        expr_toks = _strip(expr_toks)
        if not expr_toks:
            raise CypherError(f"Invalid input: empty item in {kw.text.upper()}")
        if is_return:
            removed = _remove_keys_item(expr_toks)
            if removed is not None:
                var, keys = removed
                atom = _Expr(ctx).single([var])
                transforms[col] = ("remove_keys", tuple(keys))
                name = alias.name if alias is not None else render(expr_toks)
                if columns is not None:
                    columns.append(name)
                items_out.append(f"{atom.text} AS {_alias(name, col)}")
                continue
        atom = _Expr(ctx).single(expr_toks)
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
    return _bq(name) if "`" not in name else f"`__column_{col}`"


def _remove_keys_item(expr: list[Token]) -> tuple[Token, list[str]] | None:
    """``apoc.map.removeKeys(var, ['a', 'b'])`` -> (var token, ['a', 'b'])."""
    text = render(expr)
    if not re.match(r"\s*apoc\s*\.\s*map\s*\.\s*removeKeys\s*\(", text, re.IGNORECASE):
        return None
    open_at = next(k for k, t in enumerate(expr) if t.text == "(")
    end = _match_close(expr, open_at)
    if _strip(expr[end + 1:]):
        return None
    args = [_strip(a) for a in _split_top(expr[open_at + 1:end], ",")]
    if len(args) != 2 or len(args[0]) != 1 or args[0][0].kind not in ("IDENT", "BQ"):
        raise CypherError("apoc.map.removeKeys(var, ['key', ...]) needs a variable and a list of string literals")
    lst = args[1]
    if not lst or lst[0].text != "[" or lst[-1].text != "]":
        raise CypherError("apoc.map.removeKeys(var, ['key', ...]) needs a list of string literals")
    keys = []
    for part in _split_top(lst[1:-1], ","):
        part = _strip(part)
        if not part:
            continue
        if len(part) != 1 or part[0].kind != "STRING":
            raise CypherError("apoc.map.removeKeys(var, ['key', ...]) needs a list of string literals")
        keys.append(decode_string(part[0].text))
    return args[0][0], keys


def _unwind(clause: list[Token], ctx: _Ctx) -> str:
    expr, alias = _alias_split(clause[1:])
    if alias is None:
        raise CypherError("Invalid input: UNWIND needs AS <variable>")
    text = _Expr(ctx).text(_strip(expr)).strip()
    ctx.env[alias.name] = None
    return f"UNWIND {text} AS {_bq(alias.name)}"


def _order_by(clause: list[Token], ctx: _Ctx) -> str:
    s = _strip(clause[1:])
    if not s or not s[0].is_kw("BY"):
        raise CypherError("Invalid input: ORDER must be followed by BY")
    items = []
    for item in _split_top(s[1:], ","):
        item = _strip(item)
        direction = ""
        if item and item[-1].is_kw("ASC", "DESC", "ASCENDING", "DESCENDING"):
            direction = " " + ("DESC" if item[-1].text.upper().startswith("DESC") else "ASC")
            item = _strip(item[:-1])
        items.append(_Expr(ctx).text(item).strip() + direction)
    return "ORDER BY " + ", ".join(items)


def _clauses_to_kuzu(tokens: list[Token], ctx: _Ctx, transforms: dict[int, tuple], columns: list[str]) -> str:
    clauses = _split_clauses(tokens)
    out: list[str] = []
    k = 0
    while k < len(clauses):
        word, toks = clauses[k]
        if word == "":
            if _strip(toks):
                raise CypherError(f"Invalid input: query does not start with a clause: {render(_strip(toks))[:60]!r}")
        elif word == "OPTIONAL" or word == "MATCH":
            body = toks[1:]
            prefix = "MATCH"
            if word == "OPTIONAL":
                body = _strip(toks[1:])
                if not body or not body[0].is_kw("MATCH"):
                    raise CypherError("Invalid input: OPTIONAL must be followed by MATCH")
                body = body[1:]
                prefix = "OPTIONAL MATCH"
            if word == "OPTIONAL":
                out.append(prefix + " " + _rewrite_pattern(_strip(body), ctx).strip())
            else:
                where = None
                if k + 1 < len(clauses) and clauses[k + 1][0] == "WHERE":
                    where = _strip(clauses[k + 1][1][1:])
                    k += 1
                if out and out[-1].split(" ", 1)[0] in ("MATCH", "WHERE", "OPTIONAL"):
                    out.append("WITH *")  # evaluate MATCH clauses in the order written
                out += _pipeline_match(_strip(body), where, ctx)
        elif word == "WHERE":
            out.append("WHERE " + _Expr(ctx).text(_strip(toks[1:])).strip())
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
            rest = _strip(toks[1:])
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
            j = _match_close(part, i)
            groups.append((i, j))
            i = j + 1
            continue
        if t.kind == "OP" and t.text == "[":
            i = _match_close(part, i) + 1
            continue
        if t.kind in ("IDENT", "BQ") and not groups:
            nxt = _next_sig(part, i)
            if nxt is not None and part[nxt].text == "=":
                path_var = t.name
            elif t.kind == "IDENT" and t.text.lower() in ("shortestpath", "allshortestpaths"):
                path_var = path_var or "?"
        i += 1
    return groups, path_var


def _group_var(part: list[Token], group: tuple[int, int]) -> str | None:
    inner = _strip(part[group[0] + 1:group[1]])
    if inner and inner[0].kind in ("IDENT", "BQ"):
        return inner[0].name
    return None


def _referenced(tokens: Sequence[Token]) -> set[str]:
    """Names a WHERE conjunct refers to (identifiers that are not properties, functions or keywords)."""
    names = set()
    for i, t in enumerate(tokens):
        if t.kind not in ("IDENT", "BQ"):
            continue
        prev = _prev_sig(tokens, i)
        nxt = _next_sig(tokens, i)
        if prev is not None and tokens[prev].text in (".", ":"):
            continue
        if nxt is not None and tokens[nxt].text == "(":
            continue
        if t.kind == "IDENT" and t.text.upper() in _KEYWORDS:
            continue
        names.add(t.name)
    return names


def _pipeline_match(pattern: list[Token], where: list[Token] | None, ctx: _Ctx) -> list[str]:
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
        has_or = False
        depth = 0
        for t in where:
            if t.kind == "OP" and t.text in _OPEN:
                depth += 1
            elif t.kind == "OP" and t.text in (")", "]", "}"):
                depth -= 1
            elif depth == 0 and t.is_kw("OR", "XOR"):
                has_or = True
        if has_or:
            conjuncts = [where]
        else:
            current: list[Token] = []
            depth = 0
            for t in where:
                if t.kind == "OP" and t.text in _OPEN:
                    depth += 1
                elif t.kind == "OP" and t.text in (")", "]", "}"):
                    depth -= 1
                if depth == 0 and t.is_kw("AND"):
                    conjuncts.append(current)
                    current = []
                else:
                    current.append(t)
            conjuncts.append(current)
            conjuncts = [c for c in (_strip(c) for c in conjuncts) if c]

    parts = [_strip(p) for p in _split_top(pattern, ",")]
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
                "(" + _Expr(ctx).text(c).strip() + ")" if len(ready) > 1 else _Expr(ctx).text(c).strip()
                for c in ready))
    return out


def _subclause(word: str, toks: list[Token], ctx: _Ctx) -> str:
    if word == "ORDER":
        return _order_by(toks, ctx)
    return word + " " + _Expr(ctx).text(_strip(toks[1:])).strip()


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
    close_at = _match_close(tokens, open_at)
    args = [_strip(a) for a in _split_top(tokens[open_at + 1:close_at], ",")]
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
    rs = _strip(rest)
    if not rs or not rs[0].is_kw("YIELD"):
        raise CypherError("apoc.cypher.runTimeboxed must be followed by YIELD value")
    rs = _strip(rs[1:])
    if not rs or rs[0].name != "value":
        raise CypherError("apoc.cypher.runTimeboxed yields only 'value'")
    value_name = "value"
    rs = _strip(rs[1:])
    if rs and rs[0].is_kw("AS"):
        rs = _strip(rs[1:])
        value_name = rs[0].name
        rs = rs[1:]

    inner = [t for t in tokenize(decode_string(args[0][0].text)) if t.kind != "COMMENT"]
    clauses = _split_clauses(inner)
    ret = [k2 for k2, (w, _) in enumerate(clauses) if w == "RETURN"]
    if not ret or any(w == "UNION" for w, _ in clauses):
        raise CypherError("apoc.cypher.runTimeboxed: the inner query must end with one RETURN (no UNION)")
    keys: list[str] = []
    rtoks = clauses[ret[-1]][1]
    body = rtoks[1:]
    s = _strip(body)
    distinct = []
    if s and s[0].is_kw("DISTINCT"):
        distinct = [Token("IDENT", "DISTINCT"), Token("WS", " ")]
        body = s[1:]
    new_items: list[Token] = []
    for n, item in enumerate(_split_top(body, ",")):
        expr, alias = _alias_split(item)
        expr = _strip(expr)
        name = alias.name if alias else (expr[0].name if len(expr) == 1 and expr[0].kind in ("IDENT", "BQ")
                                         else render(expr).strip())
        keys.append(name)
        if n:
            new_items.append(Token("OP", ","))
        new_items += [Token("WS", " "), *expr, Token("WS", " "), Token("IDENT", "AS"), Token("WS", " "),
                      Token("BQ", _bq(name))]
    clauses[ret[-1]] = ("WITH", [Token("IDENT", "WITH"), Token("WS", " "), *distinct, *new_items])
    combined: list[Token] = []
    for _w, toks in clauses:
        combined += toks + [Token("WS", "\n")]
    # the whole ``value`` map, built in a WITH of its own (Kuzu cannot build it in RETURN after an aggregation)
    carried = ", ".join(f"{_bq(k)} AS {_bq(k)}" for k in keys)
    struct = "{" + ", ".join(f"{_bq(k)}: {_bq(k)}" for k in keys) + "}"
    combined += tokenize(f"WITH {carried}, {struct} AS `__value`\n")
    # outer part: value.key -> `key`, bare value -> {key: `key`, ...}
    outer: list[Token] = []
    j = 0
    while j < len(rs):
        t = rs[j]
        if t.kind in ("IDENT", "BQ") and t.name == value_name:
            a = _next_sig(rs, j)
            if a is not None and rs[a].text == ".":
                b = _next_sig(rs, a)
                if b is None or rs[b].kind not in ("IDENT", "BQ"):
                    raise CypherError("Invalid input after value.")
                key = rs[b].name
                if key not in keys:
                    outer.append(Token("IDENT", "NULL"))
                else:
                    outer.append(Token("BQ", _bq(key)))
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
    if not _strip(tokens):
        raise CypherError("Invalid input: the query is empty")
    ctx = _Ctx(schema)
    transforms: dict[int, tuple] = {}
    columns: list[str] = []
    text = _clauses_to_kuzu(tokens, ctx, transforms, columns)
    return Rewritten(text=text, transforms=transforms, timebox_ms=timebox, columns=columns or None)
