"""Timing for the peer benchmarks: the best of a few runs, as ``timeit`` reports.

This 2-core machine also runs the emulator, so one run can be slowed by whatever else is
scheduled; the minimum of repeated runs is the least noisy estimate of what a tool costs. Runs
stop repeating once they have used ``budget_s`` (neuprint-python's 1,000-neuron synapse queries
take minutes and run once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], *, after_first: Callable[[], Any], repeat: int = 3,
            budget_s: float = 20.0) -> tuple[Any, float, Any]:
    """Run ``fn`` up to ``repeat`` times; return (its first result, the best seconds, ``after_first()``).

    ``after_first`` is called once, right after the first run (e.g. to read the emulator's
    request counters, so they describe exactly one run).
    """
    result, best, spent, counted = None, float("inf"), 0.0, None
    for k in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
        if k == 0:
            result, counted = value, after_first()
        best, spent = min(best, seconds), spent + seconds
        if spent > budget_s:
            break
    return result, best, counted
