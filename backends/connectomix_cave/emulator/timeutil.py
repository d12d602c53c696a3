"""Timestamps of the emulator: integer microseconds since the epoch (UTC).

Integers avoid float round-off when a client sends a version timestamp back as
float seconds (``?timestamp=1709251200.25``) and the emulator has to decide
whether a root was "created at or before" it.
"""

from __future__ import annotations

import datetime as dt
import time

from connectomix.errors import InvalidArgumentError

__all__ = ["CAVE_TS_FORMAT", "parse_iso", "format_cave", "from_epoch_seconds", "to_epoch_seconds", "now_us"]

#: The only format caveclient accepts for ``time_stamp`` / ``expires_on`` (microseconds, no zone).
CAVE_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _to_us(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    delta = value.astimezone(dt.timezone.utc) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_iso(text: str | dt.datetime, *, what: str = "timestamp") -> int:
    """ISO-8601 text (UTC when no zone is given; ``Z`` allowed) to microseconds.

    Examples
    --------
    >>> parse_iso("1970-01-01T00:00:01.5")
    1500000
    >>> parse_iso("1970-01-01T01:00:00+01:00")
    0
    """
    if isinstance(text, dt.datetime):
        return _to_us(text)
    if not isinstance(text, str):
        raise InvalidArgumentError(f"{what} must be an ISO-8601 string like '2024-01-01T00:00:00.000000'; got {text!r}")
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        return _to_us(dt.datetime.fromisoformat(raw))
    except ValueError:
        raise InvalidArgumentError(
            f"{what} {text!r} is not an ISO-8601 timestamp like '2024-01-01T00:00:00.000000'"
        ) from None


def format_cave(us: int) -> str:
    """Microseconds to the MaterializationEngine wire format (``%Y-%m-%dT%H:%M:%S.%f``, UTC, no zone).

    Examples
    --------
    >>> format_cave(1_500_000)
    '1970-01-01T00:00:01.500000'
    """
    return (_EPOCH + dt.timedelta(microseconds=int(us))).replace(tzinfo=None).strftime(CAVE_TS_FORMAT)


def from_epoch_seconds(value: str | float, *, what: str = "timestamp") -> int:
    """Float epoch seconds (as PyChunkedGraph query parameters carry them) to microseconds."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{what} parameter {value!r} is not a valid unix timestamp") from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise InvalidArgumentError(f"{what} parameter {value!r} is not a valid unix timestamp")
    return int(round(seconds * 1_000_000))


def to_epoch_seconds(us: int) -> float:
    """Microseconds to float epoch seconds (the chunkedgraph's JSON representation)."""
    return us / 1_000_000


def now_us() -> int:
    """The current wall-clock time in microseconds."""
    return time.time_ns() // 1_000
