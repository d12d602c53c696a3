"""connectomix.frames: column-at-a-time assembly of large tables (same answers as pandas, no second copy)."""

import numpy as np
import pandas as pd
import pytest

from connectomix import frames, schema


def _part(lo, hi):
    n = hi - lo
    return frames.from_columns({
        "id": np.arange(lo, hi, dtype="int64"),
        "x": np.arange(lo, hi) * 0.5,
        "roi": pd.array([None if i % 3 == 0 else f"R{i % 2}" for i in range(lo, hi)], dtype="string"),
        "n": np.arange(n, dtype="int32"),
    })


def test_concat_equals_pandas_and_consumes_its_input():
    parts = [_part(0, 5), _part(5, 5), _part(5, 12)]
    expected = pd.concat([p.copy() for p in parts], ignore_index=True)
    out = frames.concat(parts)
    pd.testing.assert_frame_equal(out, expected)
    assert parts == []


def test_concat_promotes_mixed_dtypes_like_pandas():
    a = frames.from_columns({"v": np.array([1, 2], dtype="int32")})
    b = frames.from_columns({"v": np.array([1.5])})
    assert frames.concat([a, b])["v"].tolist() == [1.0, 2.0, 1.5]
    with pytest.raises(ValueError, match="at least one"):
        frames.concat([])


def test_take_equals_iloc_and_empties_the_input():
    df = frames.concat([_part(0, 10)])
    rows = np.array([9, 0, 4, 4])
    expected = df.iloc[rows].reset_index(drop=True)
    out = frames.take(df, rows)
    pd.testing.assert_frame_equal(out, expected)
    assert df.shape[1] == 0


def test_from_columns_and_validate_share_memory_instead_of_copying():
    pre = np.arange(4, dtype="int64")
    x = np.linspace(0, 1, 4)
    df = frames.from_columns({"synapse_id": pre, "pre": pre, "post": pre[::-1].copy(), "pre_x": x, "pre_y": x,
                              "pre_z": x, "post_x": x, "post_y": x, "post_z": x, "score": x,
                              "roi": pd.array(["A", None, "B", "A"], dtype="string")})
    out = schema.SYNAPSES.validate(df)
    assert np.shares_memory(out["pre_x"].to_numpy(), x)
    assert np.shares_memory(out["synapse_id"].to_numpy(), pre)
    assert out["roi"].dtype == "string" and out["roi"].isna().tolist() == [False, True, False, False]


def test_drop_duplicates_keeps_first_rows_like_pandas():
    df = frames.concat([_part(0, 6), _part(2, 8)])
    expected = df.drop_duplicates("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(frames.drop_duplicates(df, "id"), expected)
    unique = _part(0, 4)
    assert frames.drop_duplicates(unique, "id") is unique
