"""Lexing helpers for the Cypher rewriter: tokens, string literals, clause and list splitting.

Used by :mod:`.rewrite` and :mod:`.rewrite_expr`. Tokens keep their exact
text, so untouched parts of a query pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["CypherError", "WriteQueryError", "Token", "tokenize", "render", "decode_string", "encode_string", "bq",
           "prev_sig", "next_sig", "match_close", "split_clauses", "split_top", "strip_ws", "alias_split",
           "is_keyword_position", "CLAUSE_WORDS", "WRITE_WORDS", "OPEN", "CALLABLE", "KEYWORDS"]


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


def bq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# ------------------------------------------------------------------------------------------------
# clause splitting
# ------------------------------------------------------------------------------------------------

CLAUSE_WORDS = {"MATCH", "OPTIONAL", "WHERE", "WITH", "RETURN", "UNWIND", "ORDER", "SKIP", "LIMIT", "UNION",
                 "CALL", "YIELD"}
WRITE_WORDS = {"CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "ALTER", "LOAD", "COPY",
                "INSTALL", "ATTACH", "USE", "IMPORT", "EXPORT", "CHECKPOINT", "BEGIN", "COMMIT", "ROLLBACK",
                "FOREACH", "UNINSTALL"}
OPEN = {"(": ")", "[": "]", "{": "}"}
CALLABLE = {"COUNT", "EXISTS", "ALL", "ANY", "NONE", "SINGLE"}
KEYWORDS = {"AND", "OR", "XOR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE", "CASE", "WHEN", "THEN", "ELSE",
             "END", "DISTINCT", "STARTS", "ENDS", "CONTAINS", "AS", "ASC", "DESC", "ASCENDING", "DESCENDING",
             "BY", "ALL", "ANY", "NONE", "SINGLE", "EXISTS", "COUNT"} | CLAUSE_WORDS


def is_keyword_position(tokens: Sequence[Token], i: int) -> bool:
    """Whether IDENT ``tokens[i]`` is used as a keyword: not a property name, label or map key."""
    prev = prev_sig(tokens, i)
    if prev is not None and (tokens[prev].text in (".", ":") or tokens[prev].is_kw("AS")):
        return False
    nxt = next_sig(tokens, i)
    if nxt is not None and tokens[nxt].text == ":":
        return False
    if tokens[i].text.upper() == "ORDER" and (nxt is None or not tokens[nxt].is_kw("BY")):
        return False
    if (tokens[i].text.upper() == "WITH" and prev is not None and tokens[prev].kind == "IDENT"
            and tokens[prev].text.upper() in ("STARTS", "ENDS")):
        return False  # the string operators STARTS WITH / ENDS WITH, not a WITH clause
    return True


def prev_sig(tokens: Sequence[Token], i: int) -> int | None:
    j = i - 1
    while j >= 0 and tokens[j].kind in ("WS", "COMMENT"):
        j -= 1
    return j if j >= 0 else None


def next_sig(tokens: Sequence[Token], i: int) -> int | None:
    j = i + 1
    while j < len(tokens) and tokens[j].kind in ("WS", "COMMENT"):
        j += 1
    return j if j < len(tokens) else None


def match_close(tokens: Sequence[Token], i: int) -> int:
    """Index of the bracket closing the one at ``i``."""
    stack = [OPEN[tokens[i].text]]
    j = i + 1
    while j < len(tokens):
        t = tokens[j].text if tokens[j].kind == "OP" else None
        if t in OPEN:
            stack.append(OPEN[t])
        elif t in (")", "]", "}"):
            if t != stack[-1]:
                raise CypherError(f"Invalid input: unbalanced {t!r} at token {j}")
            stack.pop()
            if not stack:
                return j
        j += 1
    raise CypherError(f"Invalid input: {tokens[i].text!r} is never closed")


def with_depth(tokens: Sequence[Token]) -> Iterator[tuple[int, Token, int]]:
    """``(index, token, depth)``: the bracket depth after the token (an opening bracket counts inside).

    Every depth-0 scan of the rewrite layer walks tokens through this one function.
    """
    depth = 0
    for i, t in enumerate(tokens):
        if t.kind == "OP" and t.text in OPEN:
            depth += 1
        elif t.kind == "OP" and t.text in (")", "]", "}"):
            depth -= 1
        yield i, t, depth


def split_clauses(tokens: Sequence[Token]) -> list[tuple[str, list[Token]]]:
    """Split at depth-0 clause keywords: ``[(KEYWORD or "", tokens including the keyword)]``."""
    clauses: list[tuple[str, list[Token]]] = [("", [])]
    for i, t, depth in with_depth(tokens):
        if depth == 0 and t.kind == "IDENT" and t.text.upper() in CLAUSE_WORDS and is_keyword_position(tokens, i):
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


def split_top(tokens: Sequence[Token], sep: str = ",") -> list[list[Token]]:
    """Split at depth-0 ``sep`` operators."""
    parts: list[list[Token]] = [[]]
    for _, t, depth in with_depth(tokens):
        if depth == 0 and t.kind == "OP" and t.text == sep:
            parts.append([])
        else:
            parts[-1].append(t)
    return parts


def strip_ws(tokens: Sequence[Token]) -> list[Token]:
    toks = list(tokens)
    while toks and toks[0].kind == "WS":
        toks.pop(0)
    while toks and toks[-1].kind == "WS":
        toks.pop()
    return toks


def alias_split(item: Sequence[Token]) -> tuple[list[Token], Token | None]:
    """``expr AS alias`` -> (expr tokens, alias token); no depth-0 AS -> (item, None)."""
    last_as = None
    for i, t, depth in with_depth(item):
        if depth == 0 and t.is_kw("AS"):
            last_as = i
    if last_as is None:
        return list(item), None
    rest = strip_ws(item[last_as + 1:])
    if len(rest) != 1 or rest[0].kind not in ("IDENT", "BQ"):
        raise CypherError(f"Invalid input: expected a variable name after AS, got {render(rest)!r}")
    return list(item[:last_as]), rest[0]


