"""neuPrintHTTP's Arrow endpoint types every column by its *first* row (connectome-neuprint/neuPrintHTTP
api/custom/arrow.go, ``convertToArrow`` at eeca68a, v1.9.2): a column whose first value is null becomes a
text column, and every number or boolean after it is appended as null. The emulator's own encoder looks
at every row (its docstring says so), so this test serves the toy through an encoder that types like
arrow.go, and checks that a neuron lookup whose first neuron lacks a numeric property still returns every
other neuron's value -- the lookup reads JSON, which has no such typing -- and that the one-sided
connectivity query, whose id-check rows could have no partner, never puts a null in a column.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import connectomix
from connectomix.testing import make_toy_release

TOKEN = "np-first-row-token"
DATASET = "toy:v1"


def encode_like_neuprinthttp(columns, rows, *, batch_rows=None):
    """arrow.go's typing: int64/float64/bool/string from the first row's value (string when null);
    a value that does not fit the column's type is appended as null."""
    from connectomix_neuprint.emulator.values import to_json_value

    arrays, fields = [], []
    for c, name in enumerate(columns):
        values = [to_json_value(row[c]) for row in rows]
        first = values[0] if values else None
        typ = (pa.bool_() if isinstance(first, bool) else pa.int64() if isinstance(first, int)
               else pa.float64() if isinstance(first, float) else pa.string())
        fits = {pa.bool_(): lambda v: isinstance(v, bool),
                pa.int64(): lambda v: isinstance(v, int) and not isinstance(v, bool),
                pa.float64(): lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
                pa.string(): lambda v: isinstance(v, str)}[typ]
        arrays.append(pa.array([v if v is not None and fits(v) else None for v in values], type=typ))
        fields.append(pa.field(name, typ))
    sink = io.BytesIO()
    schema = pa.schema(fields)
    with pa.ipc.new_stream(sink, schema) as writer:
        if rows:
            writer.write_batch(pa.record_batch(arrays, schema=schema))
    return sink.getvalue()


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    from connectomix_neuprint.emulator import NeuprintEmulator, server

    folder = make_toy_release(tmp_path_factory.mktemp("toy"))
    neurons = pd.read_parquet(folder / "neurons.parquet")
    # a SYNTHETIC numeric property, absent on the lowest ids (as a soma radius is on neurons without a soma)
    neurons["somaRadius"] = np.where(neurons["id"] < 103, np.nan, neurons["id"] * 1.5)
    neurons.to_parquet(folder / "neurons.parquet", index=False)
    saved = server.encode_arrow
    server.encode_arrow = encode_like_neuprinthttp
    try:
        with NeuprintEmulator(folder, token=TOKEN, dataset=DATASET) as emu:
            yield emu
    finally:
        server.encode_arrow = saved


def open_np(emu):
    host = emu.url.split("://", 1)[1]
    return connectomix.open(f"neuprint://{host}/{DATASET}", token=TOKEN, verify=str(emu.cert_path), cache=False)


def test_lookup_keeps_values_after_a_null_first_row(emu):
    with open_np(emu) as ds:
        assert ds.backend.use_arrow
        neurons = ds.fetch_neurons([101, 102, 103, 104, 109]).neurons.set_index("id")
    assert neurons["somaRadius"].isna().tolist() == [True, True, False, False, False]
    assert neurons.loc[[103, 104, 109], "somaRadius"].tolist() == [154.5, 156.0, 163.5]


def test_checked_connectivity_has_no_null_partner(emu):
    with open_np(emu) as ds:
        edges = ds.get_connectivity(sources=[0, 101], partner_types=False, progress=False)  # 0: no outgoing edge
        old = open_np(emu)
        old.backend.checks_connectivity_ids = False
        pd.testing.assert_frame_equal(edges, old.get_connectivity(sources=[0, 101], partner_types=False,
                                                                   progress=False))
        old.close()
    assert len(edges) and edges["post"].notna().all() and (edges["pre"] == 101).all()
