import numpy as np
import pandas as pd
import pytest

from connectomix import schema
from connectomix.errors import SchemaError


def test_validate_coerces_and_orders_columns():
    df = pd.DataFrame({"weight": [3.0], "extra": ["x"], "post": [np.int32(2)], "pre": ["1"]})
    with pytest.raises(SchemaError):  # strings are not silently parsed as ids
        schema.CONNECTIVITY.validate(df.assign(pre=["one"]))
    out = schema.CONNECTIVITY.validate(df.assign(pre=[1]))
    assert list(out.columns) == ["pre", "post", "weight", "extra"]
    assert out.dtypes[["pre", "post", "weight"]].tolist() == [np.dtype("int64")] * 3


def test_missing_column_is_named():
    with pytest.raises(SchemaError, match=r"missing column\(s\) \['weight'\]"):
        schema.CONNECTIVITY.validate(pd.DataFrame({"pre": [1], "post": [2]}))


def test_nulls_rejected_where_not_nullable_and_kept_where_nullable():
    with pytest.raises(SchemaError, match="synapses.pre must not contain missing values"):
        df = schema.SYNAPSES.empty()
        df.loc[0] = [1, None, 2, 0, 0, 0, 0, 0, 0, None, None]
        schema.SYNAPSES.validate(df)
    ok = schema.SYNAPSES.empty()
    ok.loc[0] = [1, 5, 2, 0, 0, 0, 0, 0, 0, None, None]
    out = schema.SYNAPSES.validate(ok)
    assert out["roi"].isna().all() and out["score"].isna().all()
    assert str(out["roi"].dtype) == "string"


def test_fractional_ids_rejected():
    with pytest.raises(SchemaError, match="non-integral"):
        schema.CONNECTIVITY.validate(pd.DataFrame({"pre": [1.5], "post": [2], "weight": [1]}))


def test_empty_tables_have_schema_dtypes():
    for table in schema.TABLES.values():
        empty = table.empty()
        assert list(empty.columns) == list(table.names)
        assert table.validate(empty).empty


def test_provenance_records_units_and_version():
    df = schema.provenance(pd.DataFrame(), table="synapses", backend="b", dataset="d", version=7)
    assert df.attrs["units"] == "nm" and df.attrs["version"] == 7 and df.attrs["synthetic"] == {}


def test_integral_floats_and_other_int_types_become_int64():
    df = pd.DataFrame({"pre": [1.0, 3.0, -5.0], "post": np.array([2, 4, 6], dtype="uint32"), "weight": [7, 8, 9]})
    out = schema.CONNECTIVITY.validate(df)
    assert out["pre"].tolist() == [1, 3, -5] and out["post"].tolist() == [2, 4, 6]
    assert out.dtypes.tolist() == [np.dtype("int64")] * 3
    with pytest.raises(SchemaError, match=r"connectivity\.weight cannot be converted to int64: non-integral"):
        schema.CONNECTIVITY.validate(df.assign(weight=[1.0, 2.5, 3.0]))


def test_strings_floats_and_bools_are_coerced():
    df = pd.DataFrame({"synapse_id": [1, 2], "pre": [3, 4], "post": [5, 6], "pre_x": [1, 2], "pre_y": [1, 2],
                       "pre_z": [1, 2], "post_x": [1, 2], "post_y": [1, 2], "post_z": [1, 2],
                       "score": [None, 0.5], "roi": np.array(["A", None], dtype=object)})
    out = schema.SYNAPSES.validate(df)
    assert out["pre_x"].dtype == np.dtype("float64") and out["pre_x"].tolist() == [1.0, 2.0]
    assert str(out["roi"].dtype) == "string" and out["roi"].tolist()[0] == "A" and pd.isna(out["roi"].tolist()[1])
    assert out["score"].dtype == np.dtype("float64") and np.isnan(out["score"].iloc[0])
    assert out["roi"].dtype.storage == "python"
    arrow = df.assign(roi=pd.array(["A", None], dtype="string[pyarrow]"))
    assert schema.SYNAPSES.validate(arrow)["roi"].dtype == pd.StringDtype("python")  # one string dtype everywhere
    python = df.assign(roi=pd.array(["B", None], dtype="string[python]"))
    assert schema.SYNAPSES.validate(python)["roi"].tolist()[0] == "B"
    neurons = pd.DataFrame({"id": [1], "extra": ["kept"], "type": ["KC"], "instance": [None], "status": ["Traced"],
                            "side": ["left"], "class": [None], "superclass": [None], "nt": ["gaba"], "pre": [1.0],
                            "post": [None], "upstream": [3], "downstream": [4], "is_neuron": [1],
                            "hemibrain_type": ["KCg"]})
    out = schema.NEURONS.validate(neurons)
    assert out["is_neuron"].dtype == bool and out["is_neuron"].tolist() == [True]
    assert list(out.columns) == ["id", "type", "instance", "status", "side", "class", "superclass", "nt", "pre",
                                 "post", "upstream", "downstream", "hemibrain_type", "is_neuron", "extra"]
    # sites and connections are nullable integers (not floats): <NA> where not counted
    assert str(out["pre"].dtype) == "Int64" and out["pre"].tolist()[0] == 1 and out["post"].isna().all()
    assert str(out["upstream"].dtype) == "Int64" and out["hemibrain_type"].dtype == "string"
    assert out["extra"].tolist() == ["kept"]  # extra columns keep their values
    assert "synthetic" not in out.columns  # optional columns are not invented


def test_validate_refuses_what_is_not_a_table_and_names_the_table():
    with pytest.raises(SchemaError, match="synapses: expected a pandas DataFrame, got list"):
        schema.SYNAPSES.validate([1, 2])
    core = {"id": [1], "type": ["KC"], "instance": ["i"], "status": ["s"], "side": [None], "class": [None],
            "superclass": [None], "nt": [None], "pre": [None], "post": [2], "downstream": [2]}
    with pytest.raises(SchemaError, match=r"neurons.id must not contain missing values"):
        schema.validate(pd.DataFrame({**core, "upstream": [1], "id": [None]}), "neurons")
    # counts are nullable: <NA> where a backend did not compute them (CAVE without counts=True)
    assert schema.validate(pd.DataFrame({**core, "upstream": [None]}), "neurons")["upstream"].isna().all()
    with pytest.raises(SchemaError, match=r"neurons.pre cannot be converted to Int64"):
        schema.validate(pd.DataFrame({**core, "upstream": [1], "pre": [1.5]}), "neurons")
    assert schema.validate(pd.DataFrame({"pre": [1], "post": [2], "weight": [3]}), schema.CONNECTIVITY)["weight"].tolist() == [3]


def test_provenance_records_everything_given():
    df = schema.provenance(pd.DataFrame(), table="t", backend="b", dataset="d", version="v1",
                           synthetic={"x": "why"}, query={"min_score": 0.5})
    assert df.attrs == {"table": "t", "backend": "b", "dataset": "d", "version": "v1", "units": "nm",
                        "synthetic": {"x": "why"}, "query": {"min_score": 0.5}}


def test_nullable_counts_keep_missing_values_and_refuse_fractions():
    base = {"id": [1, 2], "type": ["KC", None], "instance": [None, None], "status": [None, None],
            "side": [None, None], "class": [None, None], "superclass": [None, None], "nt": [None, None],
            "upstream": [1, 2], "downstream": [3, 4]}
    out = schema.NEURONS.validate(pd.DataFrame({**base, "pre": [2.0, None], "post": np.array([3, None], dtype=object)}))
    assert str(out["pre"].dtype) == "Int64" and out["pre"].tolist()[0] == 2 and pd.isna(out["pre"].tolist()[1])
    assert str(out["post"].dtype) == "Int64" and out["post"].tolist()[0] == 3 and pd.isna(out["post"].tolist()[1])
    with pytest.raises(SchemaError, match=r"neurons\.pre cannot be converted to Int64: non-integral floats"):
        schema.NEURONS.validate(pd.DataFrame({**base, "pre": [1.5, None], "post": [1, 2]}))
