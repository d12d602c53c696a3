"""The one exception hierarchy of connectomix.

Every error connectomix raises on purpose derives from :class:`ConnectomixError`.
Errors caused by bad input also derive from :class:`ValueError` (or
:class:`LookupError` for unknown names), so generic ``except ValueError``
handlers keep working. Backends translate their native errors (``requests``,
``caveclient``, DuckDB, ...) into these classes and keep the original as
``__cause__``.

Messages name the offending value and say what would be valid.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConnectomixError",
    "InvalidArgumentError",
    "InvalidIdError",
    "InvalidRegexError",
    "UnknownROIError",
    "InvalidURIError",
    "ConfigError",
    "DatasetNotFoundError",
    "BackendNotFoundError",
    "UnsupportedOperation",
    "SchemaError",
    "DataFormatError",
    "ResourceLimitError",
    "RemoteError",
    "AuthenticationError",
    "AuthorizationError",
    "ServerError",
    "QueryError",
    "RequestTimeoutError",
    "TruncatedResultError",
    "IncompleteResponseError",
    "MaterializationError",
    "IdsNotFoundError",
    "ConnectomixWarning",
    "CacheWarning",
    "MissingDataWarning",
    "EmptyResultWarning",
]


def suggest(value: object, valid: Iterable[str], *, n: int = 5) -> str:
    """Return a short "valid values" hint, closest matches first.

    Examples
    --------
    >>> suggest("AL(r)", ["AL(R)", "LH(R)", "CA(R)"])
    "did you mean 'AL(R)'? Valid values include: 'AL(R)', 'CA(R)', 'LH(R)'"
    """
    valid = sorted(set(map(str, valid)))
    close = difflib.get_close_matches(str(value), valid, n=3, cutoff=0.75)
    shown = ", ".join(repr(v) for v in valid[:n])
    more = f" (and {len(valid) - n} more)" if len(valid) > n else ""
    hint = f"Valid values include: {shown}{more}" if valid else "There are no valid values."
    if close:
        return f"did you mean {' or '.join(repr(c) for c in close)}? {hint}"
    return hint


class ConnectomixError(Exception):
    """Base class of every error raised by connectomix."""


# --- bad input -----------------------------------------------------------------------


class InvalidArgumentError(ConnectomixError, ValueError):
    """An argument has a value connectomix cannot use."""


class InvalidIdError(InvalidArgumentError):
    """Neuron ids that are not non-negative integers (e.g. ``'abc'``, ``1.5``, ``-3``)."""


class InvalidRegexError(InvalidArgumentError):
    """A ``type``/``instance`` pattern given with ``regex=True`` does not compile."""


class UnknownROIError(InvalidArgumentError, LookupError):
    """An ROI name the dataset does not have."""

    def __init__(self, roi: str, valid: Iterable[str], dataset: str | None = None):
        from .hints import close_matches, unknown_roi_message

        self.roi = roi
        #: Every valid ROI name (sorted) and the closest ones to ``roi`` (for programs such as the CLI).
        self.valid = sorted(set(map(str, valid)))
        self.suggestions = close_matches(roi, self.valid)
        super().__init__(unknown_roi_message(roi, self.valid, dataset))


class InvalidURIError(InvalidArgumentError):
    """A dataset URI that cannot be parsed or names no installed backend."""


class ConfigError(ConnectomixError):
    """The connectomix TOML configuration file is malformed."""


class DatasetNotFoundError(ConnectomixError, LookupError):
    """A dataset name that is neither configured nor built in."""


class BackendNotFoundError(ConnectomixError, LookupError):
    """No installed backend handles the requested URI scheme or name."""


class UnsupportedOperation(ConnectomixError, NotImplementedError):
    """The backend (or this dataset) cannot do what was asked.

    Raised instead of silently ignoring an argument, e.g. ``min_score`` on a
    dataset without synapse scores, or skeletons from a backend without them.
    """


class SchemaError(ConnectomixError):
    """A backend returned a table that does not follow the documented schema.

    This is a bug in the backend, never in the caller's input.
    """


class DataFormatError(ConnectomixError):
    """Local data files (a release folder) are missing or malformed."""


class ResourceLimitError(ConnectomixError, MemoryError):
    """A local query needed more memory than it was allowed (e.g. the release backend's ``memory_limit``).

    Nothing is wrong with the data or the arguments: the message names the
    limit in force and what to change (a larger ``memory_limit=``, a
    ``temp_directory=`` on a disk with room to spill, fewer ``threads=``, or
    ``engine="dask"``).
    """


# --- talking to servers -----------------------------------------------------------------


class RemoteError(ConnectomixError):
    """Base class for failures reported by (or on the way to) a remote server.

    Attributes
    ----------
    status : int or None
        HTTP status code, if there was a response.
    server_message : str or None
        The server's own error text, kept verbatim.
    url : str or None
        The endpoint (never with credentials).
    """

    def __init__(self, message: str, *, status: int | None = None,
                 server_message: str | None = None, url: str | None = None):
        self.status = status
        self.server_message = server_message
        self.url = url
        super().__init__(message)


class AuthenticationError(RemoteError):
    """HTTP 401: the token is missing, invalid or expired. Get a new token."""


class AuthorizationError(RemoteError):
    """HTTP 403: the token is valid but lacks permission for this dataset."""


class ServerError(RemoteError):
    """The server failed (5xx) or answered something connectomix cannot read."""


class QueryError(RemoteError):
    """The server rejected a query (e.g. a Cypher error). ``query`` holds the query text."""

    def __init__(self, message: str, *, query: str | None = None, **kwargs):
        self.query = query
        super().__init__(message, **kwargs)


class RequestTimeoutError(RemoteError, TimeoutError):
    """A request (or the total retry budget) ran out of time."""


class TruncatedResultError(RemoteError):
    """A server capped a result and it could not be split into complete parts."""


class IncompleteResponseError(ServerError):
    """A response body arrived incomplete (cut stream, short body, missing end marker).

    Transient: backends retry it like a dropped connection and raise it only
    when the retry budget is spent. Never returned as a shorter table.
    """


# --- versions and ids ---------------------------------------------------------------------


class IdsNotFoundError(InvalidArgumentError, LookupError):
    """Ids that the dataset does not have (see :class:`MaterializationError` for versioned ids)."""

    def __init__(self, message: str, *, ids: Iterable[int] = ()):
        self.ids = [int(i) for i in ids]
        super().__init__(message)


class MaterializationError(IdsNotFoundError):
    """The requested ids do not (co-)exist at the requested materialization version.

    A kind of :class:`IdsNotFoundError`: the ids exist in the dataset, but not
    (all) at that version -- outdated by proofreading, or created later.

    Attributes
    ----------
    ids : list of int
        The ids that are outdated (or too new) for the version.
    """


# --- warnings -------------------------------------------------------------------------------


class ConnectomixWarning(UserWarning):
    """Base class of the warnings connectomix emits (the answer is still complete and right)."""


class CacheWarning(ConnectomixWarning):
    """The on-disk result cache discarded a corrupt entry, or is unusable and was turned off.

    Queries still return correct answers: a discarded entry is fetched again,
    and an unusable cache is bypassed.
    """


class EmptyResultWarning(ConnectomixWarning):
    """A ``type``/``instance`` value of a query matched no neuron the dataset has.

    The answer is still right (no neuron has that value); the warning says why it may not be what
    was meant: a misspelling (with the closest values the dataset has), or a value read as a
    regular expression (or not) against the intention. Filter it like any warning
    (``warnings.simplefilter("ignore", EmptyResultWarning)``).

    Attributes
    ----------
    field : str
        The criteria field (``"type"``, ``"instance"``).
    value : str
        The value that matched nothing.
    suggestions : list of str
        The dataset's closest values (may be empty).
    """

    def __init__(self, message: str, *, field: str | None = None, value: str | None = None,
                 suggestions: Iterable[str] = ()):
        self.field = field
        self.value = value
        self.suggestions = list(suggestions)
        super().__init__(message)


class MissingDataWarning(ConnectomixWarning):
    """Some of the asked neurons lack a kind of data the dataset has for others, and were left out.

    Emitted only where the caller chose it, e.g. ``get_skeletons(ids, missing="warn")`` (the default,
    ``missing="raise"``, raises :class:`IdsNotFoundError`); or to report what a release folder
    declares partial (its ``manifest.json`` ``"partial"``), such as neurons without per-ROI counts,
    which ROI criteria therefore cannot match.

    Attributes
    ----------
    ids : numpy.ndarray
        The neurons left out (int64).
    what : str
        The kind of data they lack (``"skeleton"``, ``"roi_counts"``).
    """

    def __init__(self, message: str, *, ids: Iterable[int] = (), what: str = ""):
        import numpy as np

        self.ids = np.asarray(list(ids), dtype="int64")
        self.what = what
        super().__init__(message)
