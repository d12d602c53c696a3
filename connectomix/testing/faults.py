"""What the emulators' fault injectors share: a lock and an added latency per request.

Each emulator queues its own kinds of faults (the CAVE emulator truncates Arrow
streams, the neuPrint one answers neuPrint's timeout message), so only this
part is common.
"""

from __future__ import annotations

import threading

from connectomix.errors import InvalidArgumentError

__all__ = ["LatencyInjector"]


class LatencyInjector:
    """A fixed latency added to every request; thread-safe base of the emulators' ``FaultInjector``.

    Examples
    --------
    >>> faults = LatencyInjector(latency_ms=20)
    >>> faults.latency_ms = 0
    >>> faults.latency_ms = -1
    Traceback (most recent call last):
    ...
    connectomix.errors.InvalidArgumentError: latency_ms must be >= 0, got -1.0
    """

    def __init__(self, latency_ms: float = 0.0):
        self._lock = threading.Lock()
        self._latency_ms = 0.0
        self.latency_ms = latency_ms

    @property
    def latency_ms(self) -> float:
        """Milliseconds every request waits before it is handled."""
        return self._latency_ms

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        value = float(value)
        if value < 0:
            raise InvalidArgumentError(f"latency_ms must be >= 0, got {value}")
        self._latency_ms = value
