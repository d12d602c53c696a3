"""Completeness checks for response bodies, shared by the remote backends.

A response cut at the wrong moment can still *parse*: an Arrow IPC stream cut
right after a complete message reads as a valid, shorter stream, and a JSON
array cut after a complete element can be re-closed by a lenient reader.
These helpers accept a body only if it is provably whole, and raise
:class:`~connectomix.errors.IncompleteResponseError` (which callers retry)
otherwise.
"""

from __future__ import annotations

import pyarrow as pa

from .errors import IncompleteResponseError

__all__ = ["ARROW_EOS", "read_arrow_stream", "check_arrow_stream"]

#: The Arrow IPC end-of-stream marker: continuation token 0xFFFFFFFF, then a zero length.
ARROW_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def read_arrow_stream(body: bytes | memoryview, *, what: str = "response", url: str | None = None) -> pa.Table:
    """Decode a whole Arrow IPC stream, or raise :class:`IncompleteResponseError`.

    The stream must end with the end-of-stream marker, and decoding must
    consume every byte: a stream cut at a message boundary (which pyarrow
    reads as a shorter, valid stream) and one cut inside a message are both
    refused.

    Examples
    --------
    >>> import pyarrow as pa
    >>> table = pa.table({"id": [1, 2, 3]})
    >>> sink = pa.BufferOutputStream()
    >>> with pa.ipc.new_stream(sink, table.schema) as writer:
    ...     writer.write_table(table)
    >>> body = sink.getvalue().to_pybytes()
    >>> read_arrow_stream(body).num_rows
    3
    >>> read_arrow_stream(body[:-8])
    Traceback (most recent call last):
    ...
    connectomix.errors.IncompleteResponseError: incomplete response: the Arrow stream has no end-of-stream marker (cut after ... bytes)
    """
    data = bytes(body) if isinstance(body, memoryview) else body
    if not data.endswith(ARROW_EOS):
        raise IncompleteResponseError(
            f"incomplete {what}: the Arrow stream has no end-of-stream marker (cut after {len(data)} bytes)",
            url=url)
    source = pa.BufferReader(data)
    try:
        table = pa.ipc.open_stream(source).read_all()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, EOFError) as exc:
        raise IncompleteResponseError(f"incomplete {what}: the Arrow stream does not decode ({exc})",
                                      url=url) from None
    if source.tell() != len(data):
        raise IncompleteResponseError(
            f"incomplete {what}: the Arrow stream ended at byte {source.tell()} of {len(data)}", url=url)
    return table


def check_arrow_stream(body: bytes | memoryview, *, what: str = "response", url: str | None = None) -> None:
    """Raise :class:`IncompleteResponseError` unless ``body`` is a whole Arrow IPC stream."""
    read_arrow_stream(body, what=what, url=url)
