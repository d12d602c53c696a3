"""The Cypher rewrite layer (neo4j/neuPrint -> Kuzu): unit tests of each rule, and runs on the engine."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectomix_neuprint import cypher as builders
from connectomix_neuprint.emulator.engine import KuzuEngine
from connectomix_neuprint.emulator.model import build_model
from connectomix_neuprint.emulator.rewrite import (
    CypherError,
    WriteQueryError,
    decode_string,
    encode_string,
    rewrite,
    tokenize,
)
from connectomix_neuprint.emulator.synthetic import write_synthetic_release

HOSTILE = [
    "O'Brien", 'say "hi"', "back`tick", "}) MATCH (n) DETACH DELETE n //", "' OR 1=1 //", "\\' OR true //",
    "line\nbreak\rreturn\ttab", "\u0000nul", "ünïcødé ∑ 🧠", "trailing backslash \\", "/* not a comment */",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_model(write_synthetic_release(tmp_path_factory.mktemp("rw") / "release"))


@pytest.fixture(scope="module")
def schema(model):
    return model.schema


@pytest.fixture(scope="module")
def engine(model):
    with KuzuEngine(model, pool_size=2) as e:
        yield e


def rw(schema, q):
    return rewrite(q, schema)


def one_line(text):
    return re.sub(r"\s+", " ", text).strip()


# ---------------------------------------------------------------------------------------------
# lexing and literals
# ---------------------------------------------------------------------------------------------


def test_tokenizer_kinds():
    toks = tokenize("MATCH (n:`MB(R)`) // c\nWHERE n.x = 'a\\'b' AND n.y IN [1..3] RETURN $p")
    kinds = {t.kind for t in toks}
    assert {"IDENT", "BQ", "COMMENT", "STRING", "NUMBER", "OP", "PARAM", "WS"} <= kinds
    assert [t.text for t in toks if t.kind == "OP" and t.text == ".."] == [".."]
    with pytest.raises(CypherError, match="unterminated string"):
        tokenize("RETURN 'abc")


@pytest.mark.parametrize("value", HOSTILE)
def test_string_literals_survive_neo4j_escapes(engine, value):
    literal = builders.string_literal(value)  # what connectomix's neuPrint backend sends
    assert decode_string(literal) == value
    assert engine.run(f"RETURN {literal} AS v").rows == [[value]]
    assert decode_string(encode_string(value)) == value


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30))
def test_any_string_round_trips(engine, value):
    assert engine.run(f"RETURN {builders.string_literal(value)} AS v").rows == [[value]]


def test_double_quoted_and_unicode_escapes(engine):
    assert engine.run('RETURN "it\'s" AS a, \'\\u00e9\\n\' AS b').rows == [["it's", "é\n"]]


def test_comments_are_removed_but_not_inside_strings(engine, schema):
    q = "MATCH (n:Meta) // the meta node\nRETURN '// kept' AS x /* gone */"
    assert "the meta node" not in rw(schema, q).text
    assert engine.run(q).rows == [["// kept"]]


# ---------------------------------------------------------------------------------------------
# labels and properties
# ---------------------------------------------------------------------------------------------


def test_neuron_label_becomes_flag(schema):
    text = one_line(rw(schema, "MATCH (n :Neuron {bodyId: 101})-[e:ConnectsTo]->(:Neuron) RETURN n").text)
    assert "(`n`:`Segment` {__neuron: true, `bodyId`: 101})" in text
    assert "(:`Segment` {__neuron: true})" in text
    assert ":`Neuron`" not in text
    # neo4j multi-label patterns mean "all labels"
    assert "__neuron: true" in rw(schema, "MATCH (n:Segment:Neuron) RETURN n").text
    # neuPrintHTTP's dataset-prefixed labels
    assert "__neuron: true" in rw(schema, "MATCH (n:`hemibrain_Neuron`) RETURN n").text
    with pytest.raises(CypherError, match="different node tables"):
        rw(schema, "MATCH (n:Neuron:Synapse) RETURN n")


def test_label_predicates(engine, schema):
    text = rw(schema, "MATCH (n:Segment) WHERE n:Neuron RETURN n.bodyId").text
    assert "`n`.__neuron" in text
    assert len(engine.run("MATCH (n:Segment) WHERE n:Neuron RETURN n.bodyId").rows) == 10
    assert len(engine.run("MATCH (n:Segment) WHERE NOT n:Neuron RETURN n.bodyId").rows) == 3
    rows = engine.run("MATCH (n:Segment) WHERE n.bodyId IN [101, 9001] RETURN n.bodyId AS b, labels(n) AS l "
                      "ORDER BY b").rows
    assert rows == [[101, ["Segment", "Neuron"]], [9001, ["Segment"]]]


def test_missing_properties_are_null(engine, schema):
    assert "NULL" in rw(schema, "MATCH (n:Neuron) RETURN n.mito AS m").text
    rows = engine.run("MATCH (n:Neuron) WHERE n.bodyId = 101 RETURN n.mito AS m, coalesce(n.weightHP, 0) AS w, "
                      "n.__neuron AS hidden, (NOT n.mito OR NOT exists(n.mito)) AS absent").rows
    assert rows == [[None, 0, None, True]]
    rows = engine.run("MATCH (a:Segment)-[e:ConnectsTo]->(b:Segment) WHERE a.bodyId = 101 AND b.bodyId = 401 "
                      "RETURN coalesce(e.weightHP, 0) AS hp, e.weight AS w").rows
    assert rows == [[0, 11]]


def test_keyword_names_are_backticked(engine):
    rows = engine.run("MATCH (n:Segment) WHERE n.bodyId = 101 WITH n.type AS order, n.pre AS group "
                      "RETURN order, group AS column ORDER BY order").rows
    assert rows == [["DA1_lPN", 10]]


def test_exists_and_keys_of_nodes_follow_neo4j(engine, model):
    rows = engine.run("MATCH (n:Neuron) WHERE n.bodyId = 402 RETURN keys(n) AS k").rows
    seg = model.nodes["Segment"].query("bodyId == 402").iloc[0]
    expected = {k for k, v in seg.items() if not k.startswith("__") and v is not None and v == v}
    assert set(rows[0][0]) == expected and "type" not in expected  # 402 has no type
    rows = engine.run("MATCH (n:Neuron) UNWIND KEYS(n) AS k RETURN DISTINCT k AS f").rows
    assert not any(r[0].startswith("__") for r in rows)
    assert engine.run("MATCH (n:Segment) WHERE exists(n.type) RETURN count(n) AS c").rows == [[9]]


# ---------------------------------------------------------------------------------------------
# APOC
# ---------------------------------------------------------------------------------------------


def test_from_json_map_is_typed_for_known_shapes(engine, schema):
    q = ("MATCH (n:Segment) WHERE n.bodyId = 101 WITH apoc.convert.fromJsonMap(n.roiInfo) AS info "
         "UNWIND keys(info) AS roi RETURN roi, info[roi]['post'] AS post, info[roi].pre AS pre, "
         "info['nowhere']['post'] AS missing ORDER BY roi")
    text = rw(schema, q).text
    assert "__json_count_map(" in text and "map_keys(" in text and "map_extract(" in text
    assert engine.run(q).rows == [["AL(R)", 3, 1, None], ["LH(R)", 1, 4, None], ["MB(+ACA)(R)", 0, 5, None]]


def test_from_json_untyped_is_parsed_when_returned(engine, schema):
    q = ("MATCH (m:Meta) WITH apoc.convert.fromJsonMap(m.roiHierarchy) AS h, "
         "apoc.convert.fromJsonList(m.neuroglancerMeta) AS ng "
         "RETURN h, ng, h['children'][0]['name'] AS first, keys(h) AS k")
    r = rw(schema, q)
    assert r.transforms == {0: ("json",), 1: ("json",), 2: ("json",)}
    rows = engine.run(q).rows
    h, ng, first, k = rows[0]
    assert h["name"] == "emulator-synthetic" and ng == [] and first == "AL(R)" and sorted(k) == ["children", "name"]


def test_run_timeboxed_is_inlined(engine, schema):
    q = ('CALL apoc.cypher.runTimeboxed("MATCH (n:Segment) WHERE n.type = \\"KCg-m\\" '
         'RETURN count(n) as c, max(n.bodyId) as m", {}, 5000) YIELD value RETURN value.c as count, value AS v')
    r = rw(schema, q)
    assert r.timebox_ms == 5000 and "CALL" not in r.text and "WITH count(" in one_line(r.text)
    assert engine.run(q).rows == [[2, {"c": 2, "m": 202}]]
    with pytest.raises(CypherError):
        rw(schema, 'CALL apoc.cypher.runTimeboxed("MATCH (n) RETURN n", {x: 1}, 10) YIELD value RETURN value')


def test_remove_keys_only_as_return_item(engine, schema):
    q = ("MATCH (s:Synapse) WHERE s.type = 'pre' WITH s ORDER BY s.location.x LIMIT 1 "
         "RETURN apoc.map.removeKeys(s, ['location', 'confidence', 'type']) AS info")
    assert rw(schema, q).transforms == {0: ("remove_keys", ("location", "confidence", "type"))}
    (info,), = engine.run(q).rows
    assert set(info) <= {"AL(R)", "LH(R)", "MB(+ACA)(R)"} and all(v is True for v in info.values())
    with pytest.raises(CypherError, match="removeKeys"):
        rw(schema, "MATCH (s:Synapse) WITH apoc.map.removeKeys(s, ['type']) AS m RETURN m")
    with pytest.raises(CypherError, match="not supported"):
        rw(schema, "RETURN apoc.text.join(['a'], ',') AS x")


# ---------------------------------------------------------------------------------------------
# lists, clauses, naming
# ---------------------------------------------------------------------------------------------


def test_long_id_lists(engine, schema):
    ids = list(range(1, 5000)) + [9001, -3]
    text = rw(schema, f"MATCH (n:Segment) WHERE n.bodyId IN {ids} RETURN n.bodyId AS b ORDER BY b").text
    assert "string_split(" in text and len(text) < 40_000
    rows = engine.run(f"MATCH (n:Segment) WHERE n.bodyId IN {ids} RETURN n.bodyId AS b ORDER BY b").rows
    assert [r[0] for r in rows] == [101, 102, 103, 201, 202, 203, 301, 302, 401, 402, 9001]
    assert "string_split" not in rw(schema, "RETURN [1, 2, 3] AS l").text


def test_list_comprehension_and_indexing(engine, schema):
    q = "WITH [1, 2, 3, 4] AS l RETURN [x IN l WHERE x > 1 | x * 10] AS a, l[0] AS first, l[-1] AS last, l[1..3] AS s"
    text = rw(schema, q).text
    assert "list_transform(list_filter(" in text
    assert engine.run(q).rows == [[[20, 30, 40], 1, 4, [2, 3]]]
    assert engine.run("RETURN substring('neuPrint', 3, 5) AS s, toInteger('42') AS i, toLower('AB') AS l").rows \
        == [["Print", 42, "ab"]]


def test_null_tests_inside_comprehensions_do_not_crash_kuzu(engine, schema):
    # Kuzu 0.11.3 segfaults on IS NULL inside lambdas over more than 2048 rows; the rewriter avoids it
    q = ("UNWIND range(1, 5000) AS x WITH x, CASE WHEN x % 2 = 0 THEN NULL ELSE x END AS y "
         "RETURN sum(size([v IN [x, y] WHERE v IS NOT NULL])) AS n, "
         "sum(size([v IN [x, y] WHERE v IS NULL])) AS m, count(all(v IN [x, y] WHERE exists(v))) AS k")
    assert "IS NOT NULL" not in rw(schema, q).text
    assert engine.run(q).rows == [[7500, 2500, 5000]]


def test_with_order_by_gets_skip(schema, engine):
    text = rw(schema, "MATCH (n:Segment) WITH n ORDER BY n.bodyId WHERE n.pre > 0 RETURN count(n) AS c").text
    assert "SKIP 0" in text
    assert "SKIP 0" not in rw(schema, "MATCH (n:Segment) WITH n ORDER BY n.bodyId LIMIT 3 RETURN n").text
    assert engine.run("MATCH (n:Segment) WITH n ORDER BY n.bodyId WHERE n.pre > 3 RETURN count(n) AS c").rows \
        == [[4]]


def test_column_names_follow_neo4j(engine):
    r = engine.run("MATCH (n:Meta) RETURN n.neuronProperties, count(n), n.`dataset`, n.tag AS t")
    assert r.columns == ["n.neuronProperties", "count(n)", "n.`dataset`", "t"]


def test_match_parts_are_pipelined(schema, engine):
    q = ("MATCH (n:Segment)-[e:ConnectsTo]->(m:Segment), (n)-[:Contains]->(a:SynapseSet)-[:ConnectsTo]->"
         "(b:SynapseSet)<-[:Contains]-(m) WHERE n.bodyId = 101 AND m.bodyId = 401 AND a <> b RETURN count(*) AS c")
    text = rw(schema, q).text
    parts = [line for line in text.splitlines()]
    assert parts[0].startswith("MATCH (`n`:`Segment`)-[`e`")
    assert parts[1].startswith("WHERE (`n`.`bodyId` = 101) AND (`m`.`bodyId` = 401)")
    assert "WITH *" in parts and text.index("`a` <> `b`") > text.index("`b`:`SynapseSet`")
    assert engine.run(q).rows == [[1]]
    # OR at the top of WHERE: nothing is pushed early; OPTIONAL MATCH is left whole
    text = rw(schema, "MATCH (n:Segment), (m:Segment) WHERE n.bodyId = 1 OR m.bodyId = 2 RETURN n").text
    assert text.rstrip().splitlines()[-2].startswith("WHERE")
    assert "WITH *" not in rw(schema, "MATCH (n:Segment) OPTIONAL MATCH (n)-[:ConnectsTo]->(m), (m)-->(k) "
                                      "RETURN n").text.split("OPTIONAL")[1]


def test_variable_length_paths(engine):
    rows = engine.run("MATCH p = (a:Neuron {bodyId: 101})-[:ConnectsTo*1..2]->(b:Neuron {bodyId: 301}) "
                      "RETURN length(p) AS n, [x IN nodes(p) | x.bodyId] AS ids ORDER BY n").rows
    assert sorted(map(tuple, (r[1] for r in rows if r[0] == 2))) == [(101, 201, 301), (101, 202, 301)]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows) and len(rows) == 2


# ---------------------------------------------------------------------------------------------
# refusals
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["CREATE (n:Segment {bodyId: 1})", "MATCH (n) SET n.x = 1", "MATCH (n) DELETE n",
                               "LOAD CSV FROM 'x' AS l RETURN l", "CALL db.labels()", "DROP TABLE Meta",
                               "MATCH (n) RETURN n UNION MATCH (n) MERGE (m:Meta) RETURN m"])
def test_write_queries_are_refused(schema, q):
    with pytest.raises(WriteQueryError):
        rw(schema, q)


def test_words_that_only_look_like_writes(schema):
    rw(schema, "MATCH (n:Segment) WHERE n.type = 'DELETE' RETURN n.set AS `create`, {remove: 1} AS m")


def test_unsupported_features_are_explained(schema):
    with pytest.raises(CypherError, match="parameters"):
        rw(schema, "MATCH (n:Segment) WHERE n.bodyId = $body RETURN n")
    with pytest.raises(CypherError, match="one statement"):
        rw(schema, "RETURN 1 AS a; RETURN 2 AS b")
    with pytest.raises(CypherError, match="Pattern predicates"):
        rw(schema, "MATCH (n:Segment) WHERE exists((n)-[:ConnectsTo]->()) RETURN n")
    with pytest.raises(CypherError, match="Pattern comprehensions"):
        rw(schema, "MATCH (n:Segment) RETURN [(n)-[:ConnectsTo]->(m) | m.bodyId] AS l")


def test_engine_errors_carry_kuzu_messages(engine):
    from connectomix_neuprint.emulator.engine import EngineError

    with pytest.raises(EngineError, match="(?i)parser|binder"):
        engine.run("MATCH (n:Segment) RETURN n.bodyId +")


# ---------------------------------------------------------------------------------------------
# the queries connectomix's own neuPrint backend sends
# ---------------------------------------------------------------------------------------------


def test_connectomix_backend_queries_run(engine, model):
    from connectomix import NeuronCriteria

    meta = engine.run(builders.meta_query())
    assert meta.rows[0][meta.columns.index("voxelSize")] == [8.0, 8.0, 8.0]
    r = engine.run(builders.neurons_query(NeuronCriteria(type="KC.*", regex=True, rois=["MB(+ACA)(R)"])))
    assert sorted(row[0] for row in r.rows) == [201, 202, 203]
    assert sorted(row[0] for row in engine.run(builders.existing_ids_query([101, 9001, 5])).rows) == [101, 9001]
    conns = engine.run(builders.connections_query([101, 102], None, min_weight=2, with_roi_info=True))
    expected = model.rels[("ConnectsTo", "Segment", "Segment")]
    expected = expected[expected["__from"].isin([101, 102]) & (expected["weight"] >= 2)]
    assert len(conns.rows) == len(expected)
    syn = engine.run(builders.synapse_connections_query([401], "post", min_score=0.5, rois=["LH(R)"]))
    assert syn.rows and all(row[1] == 401 and row[-1] == {"LH(R)": True} for row in syn.rows)
    assert all(row[8] >= 0.5 and row[9] >= 0.5 for row in syn.rows)
