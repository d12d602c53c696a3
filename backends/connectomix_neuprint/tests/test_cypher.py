"""Snapshot and injection tests of the pure Cypher builders (no server)."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectomix import NeuronCriteria as NC
from connectomix_neuprint import cypher

HOSTILE = [
    "O'Brien",
    'say "hi"',
    "back`tick",
    "}) MATCH (n) DETACH DELETE n //",
    "' OR 1=1 //",
    "\\' OR true //",
    "line\nbreak\rreturn\ttab",
    "x' RETURN n UNION MATCH (m) RETURN m //",
    "\u0000nul",
    "ünïcødé ∑ 🧠",
]

_UNESCAPE = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}


def parse_literal(text: str) -> tuple[str, str]:
    """Independent reader of one Cypher single-quoted literal at the start of ``text``.

    Returns (value, rest). Mirrors the Neo4j lexer: a backslash escapes the next
    character (or starts \\uXXXX); an unescaped quote ends the literal.
    """
    assert text[0] == "'"
    out, i = [], 1
    while True:
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1]
            if nxt == "u":
                out.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
            else:
                out.append(_UNESCAPE[nxt])
                i += 2
        elif ch == "'":
            return "".join(out), text[i + 1 :]
        else:
            out.append(ch)
            i += 1


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_stay_one_literal(value):
    lit = cypher.string_literal(value)
    parsed, rest = parse_literal(lit)
    assert parsed == value and rest == ""
    assert "\n" not in lit and "\r" not in lit


@given(st.text())
def test_any_text_round_trips_as_exactly_one_literal(value):
    parsed, rest = parse_literal(cypher.string_literal(value))
    assert parsed == value and rest == ""


@given(st.text(min_size=1).filter(lambda s: all(ord(c) >= 0x20 for c in s)))
def test_identifiers_round_trip(name):
    ident = cypher.identifier(name)
    assert ident.startswith("`") and ident.endswith("`")
    assert ident[1:-1].replace("``", "`") == name
    assert "`" not in ident[1:-1].replace("``", "")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_criteria_are_confined_to_literals(value):
    q = cypher.neurons_query(NC(type=value, instance=[value, "x"], status=value, regex=False))  # not guessed
    # strip every literal; what remains must be the fixed query skeleton
    skeleton = re.sub(r"'(?:\\.|[^'\\])*'", "'?'", q)
    assert skeleton == (
        "MATCH (n:Neuron)\n"
        "WHERE n.type = '?'\n"
        "  AND n.instance IN ['?', '?']\n"
        "  AND n.status = '?'\n"
        "RETURN n.bodyId AS bodyId, n.type AS type, n.instance AS instance, n.status AS status,\n"
        "       n.pre AS pre, n.post AS post, n.upstream AS upstream, n.downstream AS downstream, n.roiInfo AS roiInfo\n"
        "ORDER BY n.bodyId"
    )


def test_neurons_query_snapshot():
    q = cypher.neurons_query(
        NC(type=["DA1_.*", "DA2.*"], regex=True, status=["Traced", "Anchor"], rois=["AL(R)", "LH(R)"],
           roi_req="any", input_rois=["CA(R)"], min_pre=10)
    )
    assert q == (
        "MATCH (n:Neuron)\n"
        "WHERE (n.type =~ 'DA1_.*' OR n.type =~ 'DA2.*')\n"
        "  AND (n.status =~ 'Traced' OR n.status =~ 'Anchor')\n"
        "  AND n.pre >= 10\n"
        "  AND (n.`AL(R)` OR n.`LH(R)`)\n"
        "  AND n.`CA(R)`\n"
        "RETURN n.bodyId AS bodyId, n.type AS type, n.instance AS instance, n.status AS status,\n"
        "       n.pre AS pre, n.post AS post, n.upstream AS upstream, n.downstream AS downstream, n.roiInfo AS roiInfo\n"
        "ORDER BY n.bodyId"
    )


def test_ids_use_segment_label():
    assert cypher.neurons_query(NC(ids=[2, 1])).startswith("MATCH (n:Segment)\nWHERE n.bodyId IN [1, 2]")


def test_connections_query_snapshot():
    assert cypher.connections_query(None, [5], include_autapses=True, with_roi_info=True) == (
        "MATCH (n:Segment)-[e:ConnectsTo]->(m:Segment)\n"
        "WHERE m.bodyId IN [5]\n"
        "RETURN n.bodyId AS pre, m.bodyId AS post, e.weight AS weight, e.roiInfo AS roiInfo"
    )


def test_synapse_query_snapshot():
    q = cypher.synapse_connections_query([7], "post", min_score=0.5, rois=["A", "C(R)"])
    assert q == (
        "MATCH (n:Segment)-[:Contains]->(nss:SynapseSet)-[:ConnectsTo]->(mss:SynapseSet)<-[:Contains]-(m:Segment),\n"
        "      (nss)-[:Contains]->(ns:Synapse)-[:SynapsesTo]->(ms:Synapse)<-[:Contains]-(mss)\n"
        "WHERE m.bodyId IN [7]\n"
        "  AND n.bodyId <> m.bodyId\n"
        "  AND ns.confidence >= 0.5 AND ms.confidence >= 0.5\n"
        "  AND (ms.`A` OR ms.`C(R)`)\n"
        "WITH DISTINCT n, m, ns, ms\n"
        "RETURN n.bodyId AS pre, m.bodyId AS post,\n"
        "       ns.location.x AS ux, ns.location.y AS uy, ns.location.z AS uz,\n"
        "       ms.location.x AS dx, ms.location.y AS dy, ms.location.z AS dz,\n"
        "       ns.confidence AS pre_score, ms.confidence AS post_score,\n"
        "       apoc.map.removeKeys(ms, ['location', 'confidence', 'type']) AS post_info"
    )


def test_builders_reject_non_integer_ids_and_bad_sides():
    with pytest.raises((ValueError, TypeError)):
        cypher.id_list(["1; MATCH (n) DELETE n"])
    with pytest.raises(ValueError):
        cypher.synapse_connections_query([1], "both")
    with pytest.raises(ValueError):
        cypher.identifier("bad\nname")


def test_literal_forms_are_exact():
    # printable text (space, '~', '"', '`' included) stays verbatim; C0 controls and DEL become \uXXXX
    assert cypher.string_literal('a b~"`') == "'a b~\"`'"
    assert cypher.string_literal(" ") == "' '"
    assert cypher.string_literal("\x00\x1f\x7f") == "'\\u0000\\u001f\\u007f'"
    assert cypher.string_literal("\\'\n\r\t\b\f") == "'\\\\\\'\\n\\r\\t\\b\\f'"
    assert cypher.string_literal("") == "''"
    with pytest.raises(TypeError, match="expected str, got int"):
        cypher.string_literal(5)


def test_identifier_accepts_spaces_and_refuses_controls_and_non_strings():
    assert cypher.identifier(" a b ") == "` a b `"
    assert cypher.identifier("x") == "`x`"
    for bad in ("", None, 5, "a\x1fb", "\x00"):
        with pytest.raises(ValueError, match="invalid identifier"):
            cypher.identifier(bad)


def test_id_list_keeps_order_and_values():
    import numpy as np

    assert cypher.id_list([3, 1, 2]) == "[3, 1, 2]"
    assert cypher.id_list(iter([5, 6])) == "[5, 6]"
    assert cypher.id_list(np.array([7, 2**62], dtype="int64")) == f"[7, {2**62}]"
    assert cypher.id_list(np.array([9], dtype="uint64")) == "[9]"
    assert cypher.id_list([]) == "[]"
    with pytest.raises((ValueError, TypeError, OverflowError)):
        cypher.id_list([2**64])


@pytest.mark.parametrize("criteria, where", [
    (NC(type="a"), "n.type = 'a'"),
    (NC(type="a", regex=True), "n.type =~ 'a'"),
    (NC(type=["a", "b"]), "n.type IN ['a', 'b']"),
    (NC(instance=["a", "b"], regex=True), "(n.instance =~ 'a' OR n.instance =~ 'b')"),
    (NC(status=["S"], regex=True), "n.status =~ 'S'"),  # regex=True applies to every string field
    (NC(status=["S"]), "n.status = 'S'"),
    (NC(rois=["A", "B"]), "(n.`A` AND n.`B`)"),
    (NC(rois=["A", "B"], roi_req="all"), "(n.`A` AND n.`B`)"),
    (NC(rois=["A", "B"], roi_req="any"), "(n.`A` OR n.`B`)"),
    (NC(min_post=3), "n.post >= 3"),
    (NC(min_pre=4, min_post=5), "n.pre >= 4\n  AND n.post >= 5"),
    (NC(input_rois=["A", "B"], output_rois=["B", "C"]), "n.`A`\n  AND n.`B`\n  AND n.`C`"),
    (NC(type="a", label="segment"), "n.type = 'a'"),
])
def test_neurons_query_conditions(criteria, where):
    q = cypher.neurons_query(criteria)
    label = "Segment" if criteria.label == "segment" else "Neuron"
    assert q.startswith(f"MATCH (n:{label})\nWHERE {where}\nRETURN n.bodyId AS bodyId,"), q


def test_neurons_query_without_conditions():
    assert cypher.neurons_query(NC()).startswith("MATCH (n:Neuron)\nRETURN n.bodyId AS bodyId,")


PROPS = {"side": "somaSide", "nt": "predictedNt", "class": "class", "superclass": "superclass"}


def test_annotation_criteria_use_the_dataset_properties_and_spellings():
    q = cypher.neurons_query(
        NC(side="left", nt="gaba", class_="KC", superclass=["a", "b"], min_upstream=2, min_downstream=3),
        properties=PROPS, native={"side": ["L", "l", "Left"], "nt": []},
        extras=("cellBodyFiber", "somaSide", "bodyId", "type", "instance", "status", "pre", "post", "upstream",
                "downstream", "roiInfo"),  # the always-returned ones are not returned twice
    )
    assert q == (
        "MATCH (n:Neuron)\n"
        "WHERE toLower(n.`somaSide`) IN ['l', 'left']\n"
        "  AND n.`class` = 'KC'\n"
        "  AND n.`superclass` IN ['a', 'b']\n"
        "  AND false\n"  # no stored spelling of 'gaba': nothing matches
        "  AND n.upstream >= 2\n"
        "  AND n.downstream >= 3\n"
        "RETURN n.bodyId AS bodyId, n.type AS type, n.instance AS instance, n.status AS status,\n"
        "       n.pre AS pre, n.post AS post, n.upstream AS upstream, n.downstream AS downstream, n.roiInfo AS roiInfo, "
        "n.`somaSide` AS `somaSide`, n.`predictedNt` AS `predictedNt`, n.`class` AS `class`, "
        "n.`superclass` AS `superclass`, n.`cellBodyFiber` AS `cellBodyFiber`\n"
        "ORDER BY n.bodyId"
    )


def test_annotation_criteria_not_pushed_down_are_left_to_the_caller():
    # a regex on a normalised column, or a column the dataset does not store, adds no condition
    q = cypher.neurons_query(NC(side="l.*", regex=True, hemibrain_type="KCg"), properties=PROPS,
                             native={"side": ["L"]})
    assert "WHERE" not in q
    # a property without native spellings is compared as stored, regex or not
    q = cypher.neurons_query(NC(class_=["K.*", "L"], regex=True), properties=PROPS)
    assert "WHERE (n.`class` =~ 'K.*' OR n.`class` =~ 'L')\n" in q
    assert cypher.neurons_query(NC(side="left"), properties=PROPS).startswith(
        "MATCH (n:Neuron)\nWHERE n.`somaSide` = 'left'\nRETURN")
