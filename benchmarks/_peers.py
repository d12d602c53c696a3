"""What the two peer benchmarks share: timing (the best of a few runs) and the Markdown table.

Timing follows ``timeit``: this 2-core machine also runs the emulator, so one run can be slowed by whatever else is
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


def markdown_table(title: str, peer: str, rows: list[dict], *, by_query: bool = False,
                   extra: dict[str, str] | None = None) -> str:
    """Rows of ``peers_cave.measure`` / ``peers_neuprint.measure`` as a Markdown table.

    ``by_query`` starts each row with the peer's function; ``extra`` adds columns before
    "identical": ``{header: format string over a row}``.
    """
    extra = extra or {}
    p = peer[0]  # "f/c", "n/c": peer / connectomix
    header = ([f"{peer} query"] if by_query else []) + [
        "neurons", "latency ms", f"{peer} s", "connectomix s", "ratio", f"round trips {p}/c", f"MB sent {p}/c",
        *extra, "identical"]
    aligns = (["---"] if by_query else []) + ["---:"] * (len(header) - 1 - by_query) + [":---:"]
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "|".join(aligns) + "|"]
    for r in rows:
        cells = ([r["query"]] if by_query else []) + [
            str(r["neurons"]), f"{r['latency_ms']:g}", f"{r['peer_s']:.2f}", f"{r['connectomix_s']:.2f}",
            f"{r['peer_s'] / r['connectomix_s']:.1f}x", f"{r['peer_trips']}/{r['connectomix_trips']}",
            f"{r['peer_bytes'] / 1e6:.2f}/{r['connectomix_bytes'] / 1e6:.2f}",
            *(fmt.format(**r) for fmt in extra.values()), "yes" if r["same"] else "NO"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
