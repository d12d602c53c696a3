"""Response bodies as MaterializationEngine encodes them."""

from __future__ import annotations

import gzip
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["ARROW_CONTENT_TYPE", "arrow_stream", "ipc_compression", "json_bytes", "records_json", "resolution_header"]

#: The exact Content-Type caveclient requires for Arrow query responses.
ARROW_CONTENT_TYPE = "data.arrow"


def ipc_compression(accept_encoding: str) -> str | None:
    """The Arrow IPC body compression MaterializationEngine picks for an ``Accept-Encoding`` header."""
    accept = (accept_encoding or "").lower()
    if "lz4" in accept:
        return "lz4"
    if "zstd" in accept:
        return "zstd"
    return None


def arrow_stream(frame: pd.DataFrame, compression: str | None, max_rows: int | None = None) -> bytes:
    """One record batch (or batches of ``max_rows``) as an Arrow IPC stream (``pa.ipc.open_stream(...).read_pandas()``
    reads it)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    batch = table.combine_chunks().to_batches(max_chunksize=max_rows)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        for b in batch:
            writer.write_batch(b)
    return sink.getvalue().to_pybytes()


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, np.integer):
            return int(o)
        if isinstance(o, np.floating):
            return float(o)
        if isinstance(o, np.bool_):
            return bool(o)
        if isinstance(o, np.ndarray):
            return o.tolist()
        return super().default(o)


def json_bytes(value: Any) -> bytes:
    """JSON encoding with numpy scalars/arrays converted (ids stay JSON integers)."""
    return json.dumps(value, cls=_Encoder).encode("utf-8")


def records_json(frame: pd.DataFrame, gzip_it: bool) -> bytes:
    """``df.to_json(orient="records")`` as the server returns for ``return_pyarrow=False``."""
    body = frame.to_json(orient="records").encode("utf-8")
    return gzip.compress(body) if gzip_it else body


def resolution_header(resolution: tuple[float, float, float]) -> str:
    """``dataframe_resolution`` header value, e.g. ``"4.0, 4.0, 40.0"`` (caveclient splits on ``", "``)."""
    return ", ".join(repr(float(v)) for v in resolution)
