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
