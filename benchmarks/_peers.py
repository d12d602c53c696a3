"""What the peer benchmark shares: timing, whole-table comparison, the physical request minimum, tables, targets.

Timing follows ``timeit``: this 2-core machine also runs the emulator, so one run can be slowed by
whatever else is scheduled, and the minimum of repeated runs is the least noisy estimate of what a
tool costs. Every repeat of a measurement asks about a *different* random set of neurons of the same
size (the same sets, in the same order, for every client), so no client can answer a repeat from a
result it memoised on the previous run; what a client memoises that does not depend on the ids
(datastack info, version lists, table metadata) stays memoised, as in a notebook. Runs stop
repeating once a client has used ``budget_s`` (neuprint-python's 1,000-neuron synapse queries
take minutes and run once).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

#: Ratio connectomix must reach against neuprint-python and fafbseg at 20 ms for 100+ neurons.
TARGET_RATIO = 3.0
#: Warm-cache wall time target for a 1,000-neuron connectivity table.
WARM_TARGET_S = 0.010
#: The clients connectomix must be this much faster than (issue 11's targets).
SLOW_PEERS = ("neuprint-python", "fafbseg")

QUERIES = ("connectivity", "connectivity_roi", "synapses", "neurons", "counts")
QUERY_TITLES = {"connectivity": "connectivity (total weights)", "connectivity_roi": "connectivity per ROI",
                "synapses": "synapses", "neurons": "neuron lookup",
                "counts": "synapse counts per neuron"}


@dataclass
class Run:
    """One client's measurement of one (query, neurons, latency)."""

    client: str
    call: str                      # the client's function, as written in the table
    seconds: float = float("nan")  # best of the repeats
    requests: int = 0              # in the first repeat
    bytes: int = 0                 # sent by the server in the first repeat
    rows: int = 0                  # rows of the first repeat's answer
    answer: str = ""               # "identical", "incomplete: ...", "DIFFERS: ...", "reference" or "not run: ..."
    warm_s: float | None = None    # second identical call in the same session
    warm_requests: int | None = None
    fresh_s: float | None = None   # connectomix only: a new process on the warm disk cache
    fresh_requests: int | None = None
    error: str = ""

    @property
    def ran(self) -> bool:
        return not math.isnan(self.seconds)


@dataclass
class Row:
    """All clients on one (backend, query, neurons, latency)."""

    backend: str
    query: str
    neurons: int
    latency_ms: float
    minimum: int = 0           # physical minimum number of requests
    minimum_note: str = ""
    runs: list[Run] = field(default_factory=list)

    def run(self, client: str) -> Run | None:
        return next((r for r in self.runs if r.client == client), None)


def quiet() -> contextlib.ExitStack:
    """Swallow what peers print (progress bars, "downloading..." lines) so the tables stay readable."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def best_of(fn: Callable[[Any], Any], id_sets: Sequence[Any], *, count: Callable[[], tuple[int, int]],
            reset: Callable[[], None], budget_s: float = 20.0) -> tuple[Any, float, int, int]:
    """Run ``fn(ids)`` once per id set (stopping early after ``budget_s``).

    Returns the first answer, the best seconds, and the requests and bytes counted (``count()``)
    over the first run only (``reset()`` is called right before it).
    """
    first, best, spent, counted = None, float("inf"), 0.0, (0, 0)
    for k, ids in enumerate(id_sets):
        if k == 0:
            reset()
        t0 = time.perf_counter()
        with quiet():
            value = fn(ids)
        seconds = time.perf_counter() - t0
        if k == 0:
            first, counted = value, count()
        best, spent = min(best, seconds), spent + seconds
        if spent > budget_s:
            break
    return first, best, counted[0], counted[1]


# --- whole-table comparison ------------------------------------------------------------------------------

def _keyed(df: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """How often each ``keys`` row occurs, with key columns of one type per kind (ints, rounded floats, text)."""
    out = {}
    for k in keys:
        col = df[k]
        if pd.api.types.is_integer_dtype(col.dtype):
            out[k] = col.astype("int64")
        elif pd.api.types.is_float_dtype(col.dtype):
            out[k] = col.astype("float64").round(1)
        else:
            out[k] = col.astype(object).where(col.notna(), "<NA>").astype(str)
    return pd.DataFrame(out, index=df.index).value_counts(dropna=False)


def compare(theirs: pd.DataFrame, ours: pd.DataFrame, keys: Sequence[str], *, what: str = "rows") -> str:
    """Compare two tables as multisets of ``keys`` rows.

    Returns ``"identical"``; ``"incomplete: ..."`` when every peer row is one of ours but rows are
    missing or repeated (the peer lost or duplicated rows: the peer is wrong, not us);
    ``"DIFFERS: ..."`` when the peer has rows we do not (either side may be wrong).
    """
    both = pd.concat([_keyed(theirs, keys).rename("p"), _keyed(ours, keys).rename("c")], axis=1).fillna(0)
    if (both["p"] == both["c"]).all():
        return "identical"
    extra = both[both["c"] == 0]
    if len(extra):
        sample = [v.item() if hasattr(v, "item") else v for v in extra.index[0]]
        return f"DIFFERS: {len(extra):,} {what} not in connectomix's answer (e.g. {sample})"
    missing = int((both["c"] - both["p"]).clip(lower=0).sum())
    dupes = int((both["p"] - both["c"]).clip(lower=0).sum())
    notes = []
    if missing:
        notes.append(f"{missing:,} of {int(both['c'].sum()):,} {what} missing")
    if dupes:
        notes.append(f"{dupes:,} {what} duplicated")
    return "incomplete: " + ", ".join(notes)


def weight_compare(theirs: pd.DataFrame, ours: pd.DataFrame, keys: Sequence[str]) -> str:
    """Compare weighted edge tables row by row, and say where weights were lost (or are wrong)."""
    verdict = compare(theirs, ours, [*keys, "weight"], what="edges")
    if verdict == "identical":
        return verdict
    merged = ours.merge(theirs, on=list(keys), how="outer", suffixes=("_c", "_p"), indicator=True)
    lost = int(merged["weight_c"].fillna(0).sum() - merged["weight_p"].fillna(0).sum())
    over = merged[merged["weight_p"].fillna(0) > merged["weight_c"].fillna(0)]
    if len(over):
        return f"DIFFERS: {len(over)} edges heavier than connectomix's (e.g. {over[list(keys)].iloc[0].tolist()})"
    zero = int(((merged["_merge"] == "right_only") & (merged["weight_p"] == 0)).sum())
    missing_edges = int((merged["_merge"] == "left_only").sum())
    if not lost and not missing_edges and zero:
        return f"same weights, plus {zero:,} zero-weight rows connectomix does not list"
    lighter = int(((merged["_merge"] == "both") & (merged["weight_p"] < merged["weight_c"])).sum())
    parts = [f"{lost:,} of {int(ours['weight'].sum()):,} synapses missing"]
    if missing_edges:
        parts.append(f"{missing_edges:,} edges absent")
    if lighter:
        parts.append(f"{lighter:,} edges lighter")
    return "incomplete: " + ", ".join(parts)


def count_compare(theirs: pd.DataFrame, ours: pd.DataFrame, counts: Sequence[str] = ("pre", "post"), *,
                  what: str = "synapse rows") -> str:
    """Compare per-neuron count tables (``id`` plus ``counts`` columns) neuron by neuron.

    A peer that lost rows before counting (a query cut at a row cap) has *lower* counts, which a
    row-for-row comparison would call "not in connectomix's answer" for every neuron it touched.
    Here: ``"identical"``; ``"incomplete: ..."`` when every peer count is at most ours (how many
    counted rows are missing, on how many neurons; neurons the peer left out with counts of zero
    are not a loss); ``"DIFFERS: ..."`` when the peer names neurons we do not, lists one twice, or
    counts more than we do.
    """
    if ours[list(counts)].isna().any().any():
        return "DIFFERS: not comparable (connectomix's counts hold <NA>)"
    if theirs["id"].duplicated().any():
        return f"DIFFERS: {int(theirs['id'].duplicated().sum()):,} neurons listed more than once"
    merged = ours.merge(theirs, on="id", how="outer", suffixes=("_c", "_p"), indicator=True)
    foreign = merged[merged["_merge"] == "right_only"]
    if len(foreign):
        return f"DIFFERS: {len(foreign):,} neurons not in connectomix's answer (e.g. {int(foreign['id'].iloc[0])})"
    mine = merged[[f"{c}_c" for c in counts]].to_numpy(dtype="int64")
    peer = merged[[f"{c}_p" for c in counts]].fillna(0).to_numpy(dtype="int64")
    higher = (peer > mine).any(axis=1)
    if higher.any():
        k = int(np.flatnonzero(higher)[0])
        shown = ", ".join(f"{c} {peer[k, j]} vs {mine[k, j]}" for j, c in enumerate(counts))
        return (f"DIFFERS: {int(higher.sum()):,} neurons with higher counts than connectomix's "
                f"(e.g. id {int(merged['id'].iloc[k])}: {shown})")
    lower = (peer < mine).any(axis=1)
    if not lower.any():
        return "identical"
    parts = [f"{int((mine[:, k] - peer[:, k]).sum()):,} of {int(mine[:, k].sum()):,} {c} {what} missing"
             for k, c in enumerate(counts) if (mine[:, k] > peer[:, k]).any()]
    absent = int(((merged["_merge"] == "left_only").to_numpy() & lower).sum())
    parts.append(f"{int(lower.sum()):,} of {len(merged):,} neurons undercounted"
                 + (f" ({absent:,} left out)" if absent else ""))
    return "incomplete: " + ", ".join(parts)


def complete(answer: str) -> bool:
    return answer in ("identical", "reference") or answer.startswith("same weights")


# --- the physical minimum ----------------------------------------------------------------------------------

def pages(rows: int, cap: int) -> int:
    """Requests needed to move ``rows`` rows at ``cap`` rows per request (at least one)."""
    return max(1, math.ceil(rows / cap))


# --- Markdown ------------------------------------------------------------------------------------------------

def _fmt_s(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.3f}" if v < 0.1 else f"{v:.2f}"


def markdown(rows: list[Row], clients: Sequence[str], *, backend: str, title: str) -> str:
    """One Markdown table per query for one backend."""
    out = []
    for query in QUERIES:
        qrows = [r for r in rows if r.backend == backend and r.query == query]
        if not qrows:
            continue
        calls = {}
        for r in qrows:
            for run in r.runs:
                calls.setdefault(run.client, run.call)
        present = [c for c in clients if c in calls]
        peers = [c for c in present if c != "connectomix"]
        out.append(f"{title}, **{QUERY_TITLES[query]}** — "
                   + "; ".join(f"{c}: `{calls[c]}`" for c in present))
        out.append("")
        head = (["neurons", "ms", *(f"{c} s" for c in present), "fastest peer / cx",
                 "requests " + "/".join(_short(c) for c in present), "physical min", "MB sent cx",
                 "cx warm s (req)", "cx new process s (req)",
                 *(f"{c} warm s (req)" for c in peers if c == "connecto"),
                 *(f"{c} answer" for c in peers)])
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "|".join(["---:"] * (len(head) - len(peers)) + [":---"] * len(peers)) + "|")
        for r in qrows:
            cx = r.run("connectomix")
            cells = [f"{r.neurons:,}", f"{r.latency_ms:g}"]
            cells += [_fmt_s(r.run(c).seconds) if r.run(c) and r.run(c).ran else "—" for c in present]
            fastest = min((r.run(c).seconds for c in peers if r.run(c) and r.run(c).ran), default=None)
            cells.append(f"{fastest / cx.seconds:.1f}x" if fastest and cx and cx.ran else "—")
            cells.append("/".join(str(r.run(c).requests) if r.run(c) and r.run(c).ran else "—" for c in present))
            cells.append(str(r.minimum))
            cells.append(f"{cx.bytes / 1e6:.2f}" if cx and cx.ran else "—")
            cells.append(_warm(cx.warm_s, cx.warm_requests) if cx else "—")
            cells.append(_warm(cx.fresh_s, cx.fresh_requests) if cx else "—")
            for c in peers:
                if c == "connecto":
                    run = r.run(c)
                    cells.append(_warm(run.warm_s, run.warm_requests) if run else "—")
            for c in peers:
                run = r.run(c)
                cells.append(run.answer if run else "—")
            out.append("| " + " | ".join(cells) + " |")
        notes = sorted({r.minimum_note for r in qrows if r.minimum_note})
        if notes:
            out.append("")
            out.append("Physical minimum: " + "; ".join(notes) + ".")
        out.append("")
    return "\n".join(out).rstrip()


def _short(client: str) -> str:
    return {"connectomix": "cx", "connecto": "co", "neuprint-python": "np", "fafbseg": "fs"}.get(client, client)


def _warm(seconds: float | None, requests: int | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.1f} ms ({requests})" if seconds < 1 else f"{seconds:.2f} s ({requests})"


# --- targets --------------------------------------------------------------------------------------------------

def check_targets(rows: list[Row]) -> list[str]:
    """Every missed target, one line per (row, target), with the measured numbers."""
    missed = []
    for r in rows:
        where = f"{r.backend} {r.query} {r.neurons:,} neurons {r.latency_ms:g} ms"
        cx = r.run("connectomix")
        if cx is None or not cx.ran:
            missed.append(f"{where}: connectomix did not run ({cx.error if cx else 'no run'})")
            continue
        peers = [run for run in r.runs if run.client != "connectomix" and run.ran]
        fastest = min(peers, key=lambda run: run.seconds, default=None)
        if fastest is not None and cx.seconds > fastest.seconds:
            missed.append(f"{where}: slower than {fastest.client} ({cx.seconds:.3f} s vs {fastest.seconds:.3f} s)")
        if r.latency_ms == 20 and r.neurons >= 100:
            for run in peers:
                if run.client in SLOW_PEERS and run.seconds / cx.seconds < TARGET_RATIO:
                    missed.append(f"{where}: only {run.seconds / cx.seconds:.1f}x faster than {run.client} "
                                  f"(target {TARGET_RATIO:g}x)")
        if cx.requests > 1.5 * r.minimum + 2:
            missed.append(f"{where}: {cx.requests} requests, more than 1.5 x {r.minimum} (physical minimum) + 2")
        if cx.warm_requests:
            missed.append(f"{where}: warm cache sent {cx.warm_requests} requests (target 0)")
        if cx.fresh_requests:
            missed.append(f"{where}: warm disk cache in a new process sent {cx.fresh_requests} requests (target 0)")
        if (r.query == "connectivity" and r.neurons >= 1000 and cx.warm_s is not None
                and cx.warm_s >= WARM_TARGET_S):
            missed.append(f"{where}: warm cache took {cx.warm_s * 1000:.1f} ms (target < {WARM_TARGET_S * 1000:g} ms)")
        for run in peers:
            if run.answer.startswith("DIFFERS"):
                missed.append(f"{where}: answer differs from {run.client}'s: {run.answer[9:]}")
        for run in r.runs:
            if run.error and run.client != "connectomix":
                missed.append(f"{where}: {run.client} failed ({run.error}); not compared")
    return missed


def id_sets(rng: np.random.Generator, pool: np.ndarray, n: int, repeats: int) -> list[list[int]]:
    """``repeats`` different sorted random sets of ``n`` ids from ``pool``."""
    return [sorted(int(i) for i in rng.choice(pool, n, replace=False)) for _ in range(repeats)]


def counts_option(ds) -> dict:
    """``{"counts": True}`` where ``fetch_neurons`` takes it (counts computed only when asked for), else ``{}``."""
    import inspect

    return {"counts": True} if "counts" in inspect.signature(ds.fetch_neurons).parameters else {}


def cx_counts(ds, ids, **options):
    """connectomix's synapse counts in the peers' sense: ``pre``/``post`` = synapses out of / into each neuron.

    The peers count synapse rows (FlyWire's table has one row per connection), which is connectomix's
    ``downstream``/``upstream``; connectomix's own ``pre``/``post`` count presynaptic sites and
    postsynaptic densities (``<NA>`` on CAVE, which has no sites).
    """
    df = ds.fetch_neurons(ids, **options, **counts_option(ds)).neurons
    return pd.DataFrame({"id": df["id"], "pre": df["downstream"], "post": df["upstream"]})


# --- shared by peers.py and morphology.py: warming sessions, running one client ---------------------------

def warm_up(fns: Sequence[Callable[[Any], Any] | None], ids: Any) -> None:
    """One untimed call of every client on ``ids`` (neurons no measurement uses): imports, connections,
    datastack info and metadata, as in a notebook. A failure here is left for the timed run to report."""
    for fn in fns:
        if fn is None:
            continue
        try:
            with quiet():
                fn(ids)
        except Exception:  # noqa: BLE001 - reported by the timed run
            pass


def run_client(fn: Callable[[Any], Any], id_sets: Sequence[Any], *, count: Callable[[], tuple[int, int]],
               reset: Callable[[], None], budget_s: float = 20.0) -> tuple[Any, float, int, int, str]:
    """:func:`best_of` with connecto's result cache off (``$CONNECTO_NO_CACHE``), a failure returned, not raised.

    Returns ``(first answer, best seconds, requests, bytes, error)``; on a failure the answer is None, the
    seconds NaN and ``error`` names the exception (its first line).
    """
    os.environ["CONNECTO_NO_CACHE"] = "1"
    try:
        answer, seconds, requests, sent = best_of(fn, id_sets, count=count, reset=reset, budget_s=budget_s)
        return answer, seconds, requests, sent, ""
    except Exception as exc:  # noqa: BLE001 - a failing client is a row, not a crash
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        return None, float("nan"), 0, 0, f"{type(exc).__name__}: {first}"
    finally:
        os.environ.pop("CONNECTO_NO_CACHE", None)
